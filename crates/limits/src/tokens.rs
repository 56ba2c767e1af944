//! LLM token budgets on OpenAI routes. Before a request is forwarded its cost is
//! reserved: the prompt counted from the request body plus the completion it may
//! produce (`max_completion_tokens`, `max_tokens`, or the limit's
//! `default_completion_tokens`), times `n`. A request whose reservation does not fit the
//! budget is refused before it is sent, so concurrent requests cannot overspend.
//!
//! Prompt counting follows the route's `tokens.tokenizer`: `cl100k` / `o200k` count
//! with the real BPE vocabulary (the `bpe-openai` crate: worst-case linear time, so a
//! hostile prompt cannot make counting slow), 3 tokens per message plus its role, and
//! 3 for the reply; `estimate` (default) counts one token per 4 characters of each text
//! plus 4 per message and 3 for the reply. Tool definitions are counted as their JSON.
//!
//! When the exchange ends the reservation is replaced by the real cost: the response's
//! `usage.total_tokens` (JSON, or the usage event of a stream), else for streams the
//! prompt count plus the streamed text counted the same way; failed exchanges cost only
//! what usage says. For streams the gateway asks the upstream for usage
//! (`stream_options.include_usage`, route option `tokens.request_usage`, default on)
//! and removes that extra event before a client that did not ask for it sees it.
//!
//! Budgets are GCRA with a per-request cost: in-process per node, or with
//! `backend = "redis"` one shared budget for every node (the limits module's scripts,
//! its fail modes and its local fallback).

use std::sync::Arc;

use bytes::Bytes;
use rampart_config::{Config, LimitBackend, OnBackendError, TokenLimit, Tokenizer};
use serde_json::Value;

use crate::Caller;
use crate::requests::{Gcra, LimitStore, RateState, RedisBackend, Refusal};

/// Largest SSE line kept while looking for usage; longer lines pass unexamined.
const MAX_LINE: usize = 1024 * 1024;
/// Tail of a JSON response kept to find `usage` in.
const TAIL: usize = 16 * 1024;

/// Counts the tokens of a text the way a route is configured to.
#[derive(Clone, Copy)]
pub enum Counter {
    Estimate,
    Bpe(&'static bpe_openai::Tokenizer),
}

impl std::fmt::Debug for Counter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Counter::Estimate => "Counter::Estimate",
            Counter::Bpe(_) => "Counter::Bpe",
        })
    }
}

impl Counter {
    /// The counter for a configured tokenizer. A BPE vocabulary is loaded on first use
    /// (tens of milliseconds); [`TokenLimiter::build`] does that at config load.
    pub fn new(t: Tokenizer) -> Self {
        match t {
            Tokenizer::Estimate => Counter::Estimate,
            Tokenizer::Cl100k => Counter::Bpe(bpe_openai::cl100k_base()),
            Tokenizer::O200k => Counter::Bpe(bpe_openai::o200k_base()),
        }
    }

    pub fn count(&self, text: &str) -> u64 {
        match self {
            Counter::Estimate => (text.chars().count() as u64).div_ceil(4),
            Counter::Bpe(t) => t.count(text) as u64,
        }
    }

    fn per_message(&self) -> u64 {
        match self {
            Counter::Estimate => 4,
            Counter::Bpe(_) => 3,
        }
    }
}

fn text_tokens(counter: Counter, v: &Value) -> u64 {
    match v {
        Value::String(s) => counter.count(s),
        Value::Array(parts) => parts.iter().map(|p| text_tokens(counter, p)).sum(),
        Value::Object(o) => o.get("text").map(|t| text_tokens(counter, t)).unwrap_or(0),
        _ => 0,
    }
}

/// (prompt tokens, completion reservation) for a parsed OpenAI request body.
pub fn estimate(v: &Value, counter: Counter, default_completion: u64) -> (u64, u64) {
    let mut prompt = 3;
    if let Value::String(raw) = v {
        prompt += counter.count(raw); // a body that is not JSON, counted as text
    }
    if let Some(list) = v.get("messages").and_then(Value::as_array) {
        for m in list {
            prompt += counter.per_message();
            prompt += m.get("content").map(|c| text_tokens(counter, c)).unwrap_or(0);
            if let Counter::Bpe(_) = counter {
                prompt += m.get("role").map(|r| text_tokens(counter, r)).unwrap_or(0);
            }
            if let Some(name) = m.get("name") {
                prompt += 1 + text_tokens(counter, name);
            }
        }
    }
    for field in ["prompt", "input"] {
        if let Some(x) = v.get(field) {
            prompt += text_tokens(counter, x);
        }
    }
    for field in ["tools", "functions"] {
        if let Some(x) = v.get(field) {
            prompt += counter.count(&x.to_string());
        }
    }
    (prompt, completion(v, default_completion))
}

/// The completion tokens a request may produce: its own cap, or the budget's default,
/// times `n`.
fn completion(v: &Value, default_completion: u64) -> u64 {
    let each = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_u64))
        .unwrap_or(default_completion);
    each.saturating_mul(v.get("n").and_then(Value::as_u64).unwrap_or(1).clamp(1, 128))
}

#[derive(Debug)]
struct Budget {
    cfg: TokenLimit,
    state: Arc<RateState>,
    window_ns: u64,
}

impl Budget {
    /// GCRA increment for `tokens`, in `unit` ns (1 for local state, 1000 for Redis).
    fn increment(&self, tokens: u64, unit: u64) -> u64 {
        let ns = u128::from(tokens) * u128::from(self.window_ns) / u128::from(self.cfg.tokens.max(1));
        u64::try_from(ns / u128::from(unit)).unwrap_or(u64::MAX)
    }

    fn tolerance(&self, unit: u64) -> u64 {
        self.window_ns / unit
    }

    fn policy(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.cfg.name,
            self.cfg.tokens,
            self.cfg.window.as_secs().max(1)
        )
    }

    fn refusal(&self, cost: u64, wait_ns: u64) -> Refusal {
        let message = if cost > self.cfg.tokens {
            format!(
                "this request may use {cost} tokens, more than the whole budget \"{}\" of {} tokens per {} s",
                self.cfg.name,
                self.cfg.tokens,
                self.cfg.window.as_secs()
            )
        } else {
            format!(
                "token budget \"{}\" of {} tokens per {} s cannot fit this request's {cost} tokens now",
                self.cfg.name,
                self.cfg.tokens,
                self.cfg.window.as_secs()
            )
        };
        Refusal {
            code: "token_limited",
            limit: self.cfg.name.clone(),
            message,
            retry_after: wait_ns.div_ceil(1_000_000_000).max(1),
            policy: self.policy(),
            unavailable: false,
        }
    }
}

/// One budget's reservation: what it took and where, to settle it there.
#[derive(Debug)]
struct Reserved {
    place: Place,
    cost: u64,
}

#[derive(Debug)]
enum Place {
    Local {
        budget: Arc<Budget>,
        key: String,
    },
    Redis {
        budget: Arc<Budget>,
        backend: Arc<RedisBackend>,
        key: String,
    },
}

/// One exchange's token accounting.
#[derive(Debug)]
pub struct TokenAccount {
    counter: Counter,
    reservations: Vec<Reserved>,
    pub prompt_estimate: u64,
    pub reserved: u64,
    /// `usage.total_tokens` seen in the response.
    pub usage: Option<u64>,
    streamed_tokens: u64,
    sse: bool,
    /// The gateway added `include_usage`: drop the usage-only event on the way back.
    strip_usage: bool,
    /// Dropping a usage event: also drop the blank line that ends it.
    dropping: bool,
    /// Passing an over-long line through unexamined until its end.
    overlong: bool,
    line: Vec<u8>,
    tail: Vec<u8>,
}

/// The token budgets of one runtime.
#[derive(Debug, Default)]
pub struct TokenLimiter {
    budgets: Vec<Arc<Budget>>,
    redis: Option<Arc<RedisBackend>>,
}

impl TokenLimiter {
    pub fn build(config: &Config, store: &LimitStore, redis: Option<Arc<RedisBackend>>) -> Self {
        let budgets: Vec<Arc<Budget>> = config
            .token_limits
            .iter()
            .map(|t| {
                Arc::new(Budget {
                    state: store.rate(&t.name),
                    window_ns: u64::try_from(t.window.as_nanos()).unwrap_or(u64::MAX).max(1),
                    cfg: t.clone(),
                })
            })
            .collect();
        // Load the vocabularies now rather than on a request.
        for route in &config.routes {
            let covered = budgets
                .iter()
                .any(|b| b.cfg.routes.is_empty() || b.cfg.routes.contains(&route.name));
            if covered {
                Counter::new(route.tokenizer).count("warm up");
            }
        }
        Self { budgets, redis }
    }

    pub fn applies(&self, route: &str) -> bool {
        self.budgets
            .iter()
            .any(|b| b.cfg.routes.is_empty() || b.cfg.routes.iter().any(|r| r == route))
    }

    /// Takes `cost` tokens from one budget: `Ok(Some(reservation))` taken, `Ok(None)`
    /// passed untaken (fail-open), `Err((wait_ns, unavailable))`.
    async fn take(&self, b: &Arc<Budget>, key: String, cost: u64) -> Result<Option<Place>, (u64, bool)> {
        if let (LimitBackend::Redis, Some(redis)) = (b.cfg.backend, &self.redis) {
            let rkey = crate::requests::redis_key("tk", &b.cfg.name, &key);
            let inc = i64::try_from(b.increment(cost, 1000)).unwrap_or(i64::MAX);
            let tol = i64::try_from(b.tolerance(1000)).unwrap_or(i64::MAX);
            match redis.take_cost(&rkey, inc, tol).await {
                Ok(Ok(())) => {
                    return Ok(Some(Place::Redis {
                        budget: Arc::clone(b),
                        backend: Arc::clone(redis),
                        key: rkey,
                    }));
                }
                Ok(Err(wait_us)) => return Err((wait_us.saturating_mul(1000), false)),
                Err(_) => match b.cfg.on_backend_error {
                    OnBackendError::Local => {}
                    OnBackendError::Open => return Ok(None),
                    OnBackendError::Closed => return Err((0, true)),
                },
            }
        }
        match b.state.take(&key, b.increment(cost, 1), b.tolerance(1)) {
            Gcra::Allowed { .. } => Ok(Some(Place::Local {
                budget: Arc::clone(b),
                key,
            })),
            Gcra::Refused { wait } => Err((wait, false)),
        }
    }

    /// Reserves the request's cost in every applicable budget, or refuses.
    /// `Ok((account, shadow_refusals))`.
    pub async fn reserve(
        &self,
        who: &Caller<'_>,
        tokenizer: Tokenizer,
        body: &Value,
    ) -> Result<(TokenAccount, Vec<String>), Refusal> {
        let counter = Counter::new(tokenizer);
        let mut account = TokenAccount::new(counter);
        let mut shadow = Vec::new();
        let mut counted = None;
        for b in &self.budgets {
            if !(b.cfg.routes.is_empty() || b.cfg.routes.iter().any(|r| r == who.route)) {
                continue;
            }
            let Some(key) = crate::requests::key_for(b.cfg.per, who) else {
                continue;
            };
            // Counted once (the expensive part); the completion default is per budget.
            let prompt = *counted.get_or_insert_with(|| estimate(body, counter, 0).0);
            let cost = prompt + completion(body, b.cfg.default_completion_tokens);
            account.prompt_estimate = prompt;
            account.reserved = account.reserved.max(cost);
            // A cost above the whole budget never fits: the take always refuses it.
            match self.take(b, key, cost).await {
                Ok(r) => account.reservations.extend(r.map(|place| Reserved { place, cost })),
                Err((_, false)) if b.cfg.shadow => shadow.push(b.cfg.name.clone()),
                Err((wait, unavailable)) => {
                    account.settle_with(0); // give back what earlier budgets reserved
                    return Err(if unavailable {
                        crate::requests::unavailable(&b.cfg.name)
                    } else {
                        b.refusal(cost, wait)
                    });
                }
            }
        }
        Ok((account, shadow))
    }
}

/// Asks the upstream for a final usage event on a streamed chat request that did not
/// ask for one. Returns the rewritten body, or `None` when nothing needs to change.
pub fn request_stream_usage(v: &mut Value) -> Option<Bytes> {
    if v.get("stream").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    if v.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let obj = v.as_object_mut()?;
    let options = obj
        .entry("stream_options")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !options.is_object() {
        return None; // malformed: leave it for the upstream to refuse
    }
    options
        .as_object_mut()?
        .insert("include_usage".to_owned(), Value::Bool(true));
    serde_json::to_vec(v).ok().map(Bytes::from)
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
    fn new(counter: Counter) -> Self {
        Self {
            counter,
            reservations: Vec::new(),
            prompt_estimate: 0,
            reserved: 0,
            usage: None,
            streamed_tokens: 0,
            sse: false,
            strip_usage: false,
            dropping: false,
            overlong: false,
            line: Vec::new(),
            tail: Vec::new(),
        }
    }

    pub fn set_sse(&mut self, sse: bool) {
        self.sse = sse;
    }

    /// The gateway added `include_usage` for this exchange.
    pub fn strip_usage_event(&mut self) {
        self.strip_usage = true;
    }

    /// Looks at one response body chunk as it passes. When the gateway asked for usage
    /// on the client's behalf, the usage-only event is cut out of the stream; then a
    /// line is passed on once it is complete (SSE clients act on whole lines anyway; an
    /// unterminated last line is dropped, as an SSE client would discard it too).
    pub fn observe(&mut self, chunk: &mut Bytes) {
        if !self.sse {
            self.tail.extend_from_slice(chunk);
            if self.tail.len() > TAIL {
                let cut = self.tail.len() - TAIL;
                self.tail.drain(..cut);
            }
            return;
        }
        let mut out = self
            .strip_usage
            .then(|| Vec::with_capacity(chunk.len() + self.line.len()));
        for &b in chunk.iter() {
            if self.overlong {
                if let Some(out) = out.as_mut() {
                    out.push(b);
                }
                self.overlong = b != b'\n';
                continue;
            }
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                let keep = self.event_line(&line);
                if let Some(out) = out.as_mut()
                    && keep
                {
                    out.extend_from_slice(&line);
                    out.push(b'\n');
                }
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                // Too long to hold back: pass it through and stop examining it.
                self.overlong = true;
                let line = std::mem::take(&mut self.line);
                if let Some(out) = out.as_mut() {
                    out.extend_from_slice(&line);
                    out.push(b);
                }
            }
        }
        if let Some(out) = out {
            *chunk = Bytes::from(out);
        }
    }

    /// Reads one SSE line; returns whether it is passed on to the client.
    fn event_line(&mut self, line: &[u8]) -> bool {
        if line.trim_ascii().is_empty() {
            return !std::mem::replace(&mut self.dropping, false);
        }
        let Some(data) = line.strip_prefix(b"data:") else {
            return true;
        };
        let Ok(v) = serde_json::from_slice::<Value>(data.trim_ascii()) else {
            return true;
        };
        let total = v.pointer("/usage/total_tokens").and_then(Value::as_u64);
        if total.is_some() {
            self.usage = total;
        }
        let choices = v.get("choices").and_then(Value::as_array);
        for c in choices.into_iter().flatten() {
            if let Some(s) = c.pointer("/delta/content").and_then(Value::as_str) {
                self.streamed_tokens += self.counter.count(s);
            }
        }
        if self.strip_usage && total.is_some() && choices.is_none_or(|c| c.is_empty()) {
            self.dropping = true;
            return false;
        }
        true
    }

    /// Replaces the reservations with the real cost.
    pub fn settle(&self, success: bool) {
        let usage = self
            .usage
            .or_else(|| if self.sse { None } else { find_total_tokens(&self.tail) });
        let actual = match (usage, success) {
            (Some(u), _) => u,
            (None, false) => 0,
            (None, true) if self.sse => self.prompt_estimate + self.streamed_tokens,
            (None, true) => return, // no usage reported: the reservations stand
        };
        self.settle_with(actual);
    }

    fn settle_with(&self, actual: u64) {
        for r in &self.reservations {
            let later = actual >= r.cost;
            let delta = actual.abs_diff(r.cost);
            if delta == 0 {
                continue;
            }
            match &r.place {
                Place::Local { budget, key } => budget.state.shift(key, later, budget.increment(delta, 1)),
                Place::Redis { budget, backend, key } => {
                    let us = i64::try_from(budget.increment(delta, 1000)).unwrap_or(i64::MAX);
                    let us = if later { us } else { -us };
                    let (backend, key) = (Arc::clone(backend), key.clone());
                    // Settled off the request path; if Redis is down the reservation
                    // stands until the window passes (the budget errs on the safe side).
                    if let Ok(handle) = tokio::runtime::Handle::try_current() {
                        handle.spawn(async move {
                            let _ = backend.shift_cost(&key, us).await;
                        });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn estimates_prompt_and_completion() {
        let body = parse(
            br#"{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hello there"}]}],"max_tokens":50,"n":2}"#,
        );
        let (prompt, completion) = estimate(&body, Counter::Estimate, 256);
        // "be brief" 8 chars -> 2, "hello there" 11 -> 3, + 2 messages * 4 + 3.
        assert_eq!((prompt, completion), (16, 100));
        assert_eq!(
            estimate(&parse(br#"{"messages":[]}"#), Counter::Estimate, 256),
            (3, 256)
        );
        assert_eq!(
            estimate(&Value::String("not json".into()), Counter::Estimate, 7),
            (5, 7)
        );
    }

    #[test]
    fn bpe_counts_match_the_published_vocabularies() {
        // Counts as OpenAI's tiktoken reports them for these strings.
        let cl = Counter::new(Tokenizer::Cl100k);
        let o2 = Counter::new(Tokenizer::O200k);
        assert_eq!(cl.count("hello world"), 2);
        assert_eq!(o2.count("hello world"), 2);
        assert_eq!(cl.count(""), 0);
        // Long runs without spaces stay countable (linear time) and are not one token.
        let long = "a".repeat(100_000);
        assert!(cl.count(&long) > 1000);
        let body = parse(br#"{"messages":[{"role":"user","content":"hello world"}]}"#);
        // 3 per message + "user" (1) + "hello world" (2) + 3 for the reply.
        assert_eq!(estimate(&body, cl, 0).0, 9);
    }

    #[test]
    fn asks_for_stream_usage_only_when_needed() {
        let mut v = parse(br#"{"stream":true,"messages":[]}"#);
        let body = request_stream_usage(&mut v).unwrap();
        assert_eq!(parse(&body)["stream_options"]["include_usage"], true);
        let mut v = parse(br#"{"stream":true,"stream_options":{"include_usage":true}}"#);
        assert!(request_stream_usage(&mut v).is_none());
        let mut v = parse(br#"{"stream":false}"#);
        assert!(request_stream_usage(&mut v).is_none());
        let mut v = parse(br#"{"stream":true,"stream_options":{"include_usage":false,"x":1}}"#);
        let body = parse(&request_stream_usage(&mut v).unwrap());
        assert_eq!(
            body["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
    }

    #[test]
    fn finds_usage_in_json_and_sse() {
        assert_eq!(
            find_total_tokens(br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens": 7}}"#),
            Some(7)
        );
        assert_eq!(find_total_tokens(br#"{"total_tokens":"x"}"#), None);
        let mut acc = TokenAccount::new(Counter::Estimate);
        acc.set_sse(true);
        let mut a = Bytes::from_static(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"abcd\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"cont",
        );
        let mut b = Bytes::from_static(
            b"ent\":\"efgh\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":42}}\n\ndata: [DONE]\n\n",
        );
        let (a0, b0) = (a.clone(), b.clone());
        acc.observe(&mut a);
        acc.observe(&mut b);
        assert_eq!((a, b), (a0, b0), "a stream is not changed unless usage is stripped");
        assert_eq!(acc.streamed_tokens, 2);
        assert_eq!(acc.usage, Some(42));
    }

    #[test]
    fn strips_the_usage_event_it_asked_for_across_chunk_boundaries() {
        let stream: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: {\"choices\":[],\"usage\":{\"total_tokens\":9}}\r\n\r\ndata: [DONE]\n\n";
        let expected: &[u8] =
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n";
        for split in 0..stream.len() {
            let mut acc = TokenAccount::new(Counter::Estimate);
            acc.set_sse(true);
            acc.strip_usage_event();
            let mut out = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                let mut chunk = Bytes::copy_from_slice(part);
                acc.observe(&mut chunk);
                out.extend_from_slice(&chunk);
            }
            assert_eq!(out, expected, "split at {split}");
            assert_eq!(acc.usage, Some(9));
        }
    }
}
