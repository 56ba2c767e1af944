//! LLM token budgets on OpenAI routes. Before a request is forwarded its cost is
//! reserved: the prompt estimated from the request body (a documented cheap estimate —
//! one token per 4 characters of message text plus 4 per message; no BPE tokenizer yet)
//! plus the completion it may produce (`max_completion_tokens`, `max_tokens`, or the
//! limit's `default_completion_tokens`), times `n`. A request whose reservation does not
//! fit the budget is refused before it is sent, so concurrent requests cannot overspend.
//! When the exchange ends the reservation is replaced by the real cost: the response's
//! `usage.total_tokens` (JSON, or the usage event of a stream when the client asked for
//! `stream_options.include_usage`), else for streams the prompt estimate plus the
//! streamed text at 4 characters per token; failed exchanges cost only what usage says.
//! Budgets are GCRA with a per-request cost, in-process (per node).

use std::sync::Arc;

use rampart_config::{Config, TokenLimit};
use serde_json::Value;

use crate::context::Exchange;
use crate::limits::{Gcra, LimitStore, RateState, Refusal};
use crate::runtime::RouteRuntime;

/// Largest SSE line kept while looking for usage; longer lines are skipped.
const MAX_LINE: usize = 1024 * 1024;
/// Tail of a JSON response kept to find `usage` in.
const TAIL: usize = 16 * 1024;

#[derive(Debug)]
struct Budget {
    cfg: TokenLimit,
    state: Arc<RateState>,
    /// Nanoseconds of budget one token uses, and the whole budget.
    per_token: u64,
    tolerance: u64,
}

#[derive(Debug)]
struct Reservation {
    state: Arc<RateState>,
    key: String,
    per_token: u64,
}

/// One exchange's token accounting.
#[derive(Debug, Default)]
pub struct TokenAccount {
    reservations: Vec<Reservation>,
    pub prompt_estimate: u64,
    pub reserved: u64,
    /// `usage.total_tokens` seen in the response.
    pub usage: Option<u64>,
    streamed_chars: u64,
    sse: bool,
    line: Vec<u8>,
    tail: Vec<u8>,
}

fn text_chars(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.chars().count() as u64,
        Value::Array(parts) => parts.iter().map(text_chars).sum(),
        Value::Object(o) => o.get("text").map(text_chars).unwrap_or(0),
        _ => 0,
    }
}

/// (prompt estimate, completion reservation) for an OpenAI request body.
pub fn estimate(body: &[u8], default_completion: u64) -> (u64, u64) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return (body.len().div_ceil(4) as u64, default_completion);
    };
    let mut chars = 0;
    let mut messages = 0;
    if let Some(list) = v.get("messages").and_then(Value::as_array) {
        messages = list.len() as u64;
        chars += list
            .iter()
            .map(|m| m.get("content").map(text_chars).unwrap_or(0))
            .sum::<u64>();
    }
    for field in ["prompt", "input"] {
        if let Some(x) = v.get(field) {
            chars += text_chars(x);
        }
    }
    let prompt = chars.div_ceil(4) + 4 * messages + 3;
    let completion = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_u64))
        .unwrap_or(default_completion);
    let n = v.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 128);
    (prompt, completion.saturating_mul(n))
}

/// The token budgets of one runtime.
#[derive(Debug, Default)]
pub struct TokenLimiter {
    budgets: Vec<Budget>,
}

impl TokenLimiter {
    pub fn build(config: &Config, store: &LimitStore) -> Self {
        Self {
            budgets: config
                .token_limits
                .iter()
                .map(|t| {
                    let window = u64::try_from(t.window.as_nanos()).unwrap_or(u64::MAX);
                    let per_token = (window / t.tokens.max(1)).max(1);
                    Budget {
                        state: store.rate(&t.name),
                        per_token,
                        tolerance: per_token.saturating_mul(t.tokens),
                        cfg: t.clone(),
                    }
                })
                .collect(),
        }
    }

    pub fn applies(&self, route: &str) -> bool {
        self.budgets
            .iter()
            .any(|b| b.cfg.routes.is_empty() || b.cfg.routes.iter().any(|r| r == route))
    }

    /// Reserves the request's cost in every applicable budget, or refuses.
    /// `Ok((account, shadow_refusals))`.
    pub fn reserve(
        &self,
        ex: &Exchange,
        route: &RouteRuntime,
        body: &[u8],
    ) -> Result<(TokenAccount, Vec<String>), Refusal> {
        let mut account = TokenAccount::default();
        let mut shadow = Vec::new();
        for b in &self.budgets {
            if !(b.cfg.routes.is_empty() || b.cfg.routes.iter().any(|r| r == &*route.name)) {
                continue;
            }
            let Some(key) = crate::limits::key_for(b.cfg.per, ex, route) else {
                continue;
            };
            let (prompt, completion) = estimate(body, b.cfg.default_completion_tokens);
            let cost = prompt + completion;
            account.prompt_estimate = prompt;
            account.reserved = cost;
            // A cost above the whole budget never fits: the take always refuses it.
            if let Gcra::Refused { wait } = b.state.take(&key, cost.saturating_mul(b.per_token), b.tolerance) {
                if b.cfg.shadow {
                    shadow.push(b.cfg.name.clone());
                    continue;
                }
                account.settle_with(0); // give back what earlier budgets reserved
                let message = if cost > b.cfg.tokens {
                    format!(
                        "this request may use {cost} tokens, more than the whole budget \"{}\" of {} tokens per {} s",
                        b.cfg.name,
                        b.cfg.tokens,
                        b.cfg.window.as_secs()
                    )
                } else {
                    format!(
                        "token budget \"{}\" of {} tokens per {} s cannot fit this request's {cost} tokens now",
                        b.cfg.name,
                        b.cfg.tokens,
                        b.cfg.window.as_secs()
                    )
                };
                return Err(Refusal {
                    code: "token_limited",
                    limit: b.cfg.name.clone(),
                    message,
                    retry_after: wait.div_ceil(1_000_000_000).max(1),
                    policy: format!(
                        "\"{}\";q={};w={}",
                        b.cfg.name,
                        b.cfg.tokens,
                        b.cfg.window.as_secs().max(1)
                    ),
                    unavailable: false,
                });
            }
            account.reservations.push(Reservation {
                state: Arc::clone(&b.state),
                key,
                per_token: b.per_token,
            });
        }
        Ok((account, shadow))
    }
}

fn find_total_tokens(text: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = b"\"total_tokens\"";
    let at = text.windows(NEEDLE.len()).rposition(|w| w == NEEDLE)? + NEEDLE.len();
    let rest = &text[at..];
    let start = rest.iter().position(|b| b.is_ascii_digit())?;
    if rest[..start]
        .iter()
        .any(|b| !matches!(b, b':' | b' ' | b'\t' | b'\n' | b'\r'))
    {
        return None;
    }
    let digits: Vec<u8> = rest[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .copied()
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

impl TokenAccount {
    pub fn set_sse(&mut self, sse: bool) {
        self.sse = sse;
    }

    /// Looks at one response body chunk as it passes.
    pub fn observe(&mut self, chunk: &[u8]) {
        if !self.sse {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > TAIL {
                let cut = self.tail.len() - TAIL;
                self.tail.drain(..cut);
            }
            return;
        }
        for &b in chunk {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.event_line(&line);
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }

    fn event_line(&mut self, line: &[u8]) {
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return;
        };
        if let Some(total) = v.pointer("/usage/total_tokens").and_then(Value::as_u64) {
            self.usage = Some(total);
        }
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                if let Some(s) = c.pointer("/delta/content").and_then(Value::as_str) {
                    self.streamed_chars += s.chars().count() as u64;
                }
            }
        }
    }

    /// Replaces the reservations with the real cost.
    pub fn settle(&self, success: bool) {
        let usage = self
            .usage
            .or_else(|| if self.sse { None } else { find_total_tokens(&self.tail) });
        let actual = match (usage, success) {
            (Some(u), _) => u,
            (None, false) => 0,
            (None, true) if self.sse => self.prompt_estimate + self.streamed_chars.div_ceil(4),
            (None, true) => self.reserved,
        };
        self.settle_with(actual);
    }

    fn settle_with(&self, actual: u64) {
        let later = actual >= self.reserved;
        let delta = actual.abs_diff(self.reserved);
        for r in &self.reservations {
            r.state.shift(&r.key, later, delta.saturating_mul(r.per_token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_prompt_and_completion() {
        let body = br#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello there"}]}],"max_tokens":50,"n":2}"#;
        let (prompt, completion) = estimate(body, 256);
        // 8 + 11 = 19 chars -> 5 tokens, + 2 messages * 4 + 3.
        assert_eq!((prompt, completion), (16, 100));
        assert_eq!(estimate(br#"{"messages":[]}"#, 256), (3, 256));
        assert_eq!(estimate(b"not json", 7), (2, 7));
    }

    #[test]
    fn finds_usage_in_json_and_sse() {
        assert_eq!(
            find_total_tokens(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens": 7}}"#),
            Some(7)
        );
        assert_eq!(find_total_tokens(br#"{"total_tokens":"x"}"#), None);
        let mut acc = TokenAccount {
            sse: true,
            ..Default::default()
        };
        acc.observe(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"cont",
        );
        acc.observe(
            b"ent\":\"efgh\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":42}}\n\ndata: [DONE]\n\n",
        );
        assert_eq!(acc.streamed_chars, 8);
        assert_eq!(acc.usage, Some(42));
    }
}
