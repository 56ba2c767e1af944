//! Output: hardens a classifier route's answers (`[routes.output]`; the transforms are
//! `rampart_watch`'s) before the client sees them — label only, calibrated noise, top-k,
//! rounding — and spends the caller's privacy budget on noisy answers, all or nothing
//! per response: a response of N rows costs N·ε. A principal whose budget is spent gets
//! 429 with `Retry-After`, or the label alone, as the route says.
//!
//! Whole responses only: the pipeline holds a successful (2xx) non-streamed answer (on
//! KServe routes, to an inference request: health and metadata pass as they are)
//! ([`OutputStage::holds_response`]) and hands it over after the content stage
//! ([`OutputStage::on_response_body`]). An answer whose rows cannot be read — not JSON,
//! a named output missing, a row that is not a probability distribution, FP16 or BF16 in the
//! binary extension, a content coding — is refused (502), never passed on unhardened.
//! Answers in KServe's binary tensor extension are hardened in their binary tail, in
//! place and in the tensor's own type, so tritonclient's default (binary outputs) works.
//!
//! Budgets are counted per route, per principal (API key or JWT subject with its
//! tenant; the client address for anonymous callers), in fixed windows: per node in
//! memory (they start afresh when the gateway restarts or reloads its config), or in
//! Redis for every node (`budget.backend = "redis"`), where a budget that cannot be
//! read counts as spent.

use bytes::Bytes;
use http::header;
use rampart_config::Protocol;
use rampart_config::raw::WhenSpent;
use rampart_watch::budget::Cost;
use rampart_watch::harden::{Policy, RowError, harden_row};
use rampart_watch::llm::harden_openai;
use rampart_watch::tensor::{harden_json, harden_kserve, harden_kserve_binary};
use serde_json::Value;

use crate::context::{Decision, Exchange, Finding, Location};
use crate::error::RequestError;
use crate::output::Payment;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

/// Deepest JSON a classifier answer may nest.
const MAX_DEPTH: u32 = 64;

#[derive(Debug, Default)]
pub struct OutputStage;

fn readable(head: &http::response::Parts) -> Result<(), &'static str> {
    if crate::stages::content::encoded(head) {
        return Err("the upstream answered in a content coding the gateway does not decode");
    }
    Ok(())
}

impl OutputStage {
    /// Whether the pipeline must hold this response whole for the route's hardening:
    /// a successful answer on a hardened route that is not an event stream — on KServe
    /// routes, an inference answer (`…/infer`); health and metadata carry no outputs.
    pub fn holds_response(&self, ex: &Exchange, route: &RouteRuntime, head: &http::response::Parts) -> bool {
        if let Some(output) = &route.output
            && output.config.llm.is_some()
        {
            // OpenAI routes: JSON answers (streams are hardened chunk by chunk).
            return head.status.is_success()
                && head
                    .headers
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json"));
        }
        let inference = route.config.protocol != Protocol::Kserve
            || ex
                .path
                .split('?')
                .next()
                .is_some_and(|p| p.trim_end_matches('/').ends_with("/infer"));
        route.output.is_some()
            && inference
            && head.status.is_success()
            && !head
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(crate::body::is_event_stream)
    }

    /// Hardens a whole response body; returns the body to send or the refusal.
    pub async fn on_response_body(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        head: &mut http::response::Parts,
        body: Bytes,
    ) -> Result<Bytes, RequestError> {
        let Some(output) = &route.output else {
            return Ok(body);
        };
        readable(head).map_err(RequestError::ResponseUninspectable)?;
        let protocol = route.config.protocol;
        // A KServe answer in the binary tensor extension: its JSON header, and the tail
        // that holds the binary outputs (hardened in place).
        let binary = head
            .headers
            .get(rampart_detect::kserve_binary::HEADER)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let (json, mut tail) = match &binary {
            Some(len) if protocol == Protocol::Kserve => {
                let (h, t) = rampart_detect::kserve_binary::split(&body, len).map_err(|_| {
                    RequestError::ResponseUninspectable("the binary tensor header does not fit the body")
                })?;
                (h, Some(t.to_vec()))
            }
            Some(_) => {
                return Err(RequestError::ResponseUninspectable(
                    "a binary tensor answer on a route that is not KServe",
                ));
            }
            None => (&body[..], None),
        };
        let mut value = rampart_detect::json::parse_strict(json, MAX_DEPTH)
            .map_err(|_| RequestError::ResponseUninspectable("the model's answer is not JSON"))?;
        if let Some(llm) = &output.config.llm {
            output
                .with_rng(|rng| harden_openai(&mut value, llm, rng))
                .map_err(|_| RequestError::ResponseUninspectable("the noise source is unavailable"))?
                .map_err(|_| RequestError::ResponseUninspectable("an embedding in the answer cannot be read"))?;
            return serde_json::to_vec(&value)
                .map(Bytes::from)
                .map_err(|_| RequestError::ResponseUninspectable("the hardened answer could not be encoded"));
        }
        let config = &output.config;
        let apply = |v: &mut Value,
                     tail: &mut Option<Vec<u8>>,
                     f: &mut dyn FnMut(&mut [f64]) -> Result<(), RowError>| {
            match (protocol, &config.path, tail) {
                (Protocol::Json, Some(path), _) => harden_json(v, path, f),
                (_, _, Some(tail)) => harden_kserve_binary(v, tail, &config.outputs, f),
                _ => harden_kserve(v, &config.outputs, f),
            }
        };
        let unreadable = |e: rampart_watch::tensor::TensorError| {
            tracing::warn!(route = %route.name, error = %e, "output hardening could not read the answer");
            RequestError::ResponseUninspectable("the classifier's answer has no probability rows where the route says")
        };
        // Rows first (a pass that changes nothing), so a response is paid for whole or
        // not at all.
        let mut seen = route.watch.as_ref().map(|_| Vec::new());
        let rows = apply(&mut value, &mut tail, &mut |row| {
            if let Some(seen) = seen.as_mut() {
                seen.push(row.to_vec());
            }
            Ok(())
        })
        .map_err(unreadable)?;
        if let Some(seen) = seen {
            ex.stash.put(crate::watch::AnswerRows(seen));
        }
        let mut policy = config.policy.clone();
        if let (Some(noise), Some(budget)) = (policy.cost_per_row(), config.budget) {
            let n = rows as f64;
            let cost = Cost {
                epsilon: noise.epsilon * n,
                delta: noise.delta * n,
            };
            let paid = output
                .spend(&ex.principal_key(), cost)
                .await
                .map_err(|_| RequestError::ResponseUninspectable("the privacy budget is unavailable"))?;
            let retry_after = match paid {
                Payment::Free | Payment::Paid => None,
                Payment::Spent { retry_after } => Some(retry_after),
                Payment::Unknown => Some(1),
            };
            if let Some(retry_after) = retry_after {
                let refuse = budget.when_spent == WhenSpent::Refuse;
                let kind = if paid == Payment::Unknown {
                    "privacy_budget_unavailable"
                } else {
                    "privacy_budget_spent"
                };
                ex.add_finding(
                    Finding {
                        kind,
                        confidence: 1.0,
                        location: Location::ResponseBody,
                        span: None,
                    },
                    if refuse { Decision::Block } else { Decision::Flag },
                );
                if refuse {
                    return Err(RequestError::PrivacyBudgetSpent { retry_after });
                }
                policy = Policy {
                    label_only: true,
                    ..Policy::passthrough()
                };
            }
        }
        output
            .with_rng(|rng| apply(&mut value, &mut tail, &mut |row| harden_row(row, &policy, rng)))
            .map_err(|_| RequestError::ResponseUninspectable("the noise source is unavailable"))?
            .map_err(unreadable)?;
        let mut out = serde_json::to_vec(&value)
            .map_err(|_| RequestError::ResponseUninspectable("the hardened answer could not be encoded"))?;
        if let Some(tail) = tail {
            head.headers.insert(
                http::HeaderName::from_static(rampart_detect::kserve_binary::HEADER),
                http::HeaderValue::from(out.len()),
            );
            out.extend_from_slice(&tail);
        }
        Ok(Bytes::from(out))
    }
}

/// A streamed OpenAI answer being hardened: events are parsed as they complete and
/// written back hardened; a partial event waits for its end.
struct Stream {
    parser: rampart_detect::sse::Parser,
    output: std::sync::Arc<crate::output::OutputRuntime>,
}

impl Stream {
    /// Hardens the complete events of `bytes`; `Err` when the stream cannot be read
    /// (the stream is cut rather than pass unhardened scores).
    fn feed(&mut self, bytes: &[u8], end: bool) -> Result<Bytes, ()> {
        let mut events = Vec::new();
        self.parser.push(bytes, &mut events).map_err(|_| ())?;
        if end && let Some(last) = self.parser.finish().map_err(|_| ())? {
            events.push(last);
        }
        let Some(llm) = &self.output.config.llm else {
            return Err(());
        };
        let mut out = Vec::with_capacity(bytes.len() + 16);
        for mut event in events {
            if let Some(data) = &event.data
                && data.trim() != "[DONE]"
                && let Ok(mut value) = serde_json::from_str::<Value>(data)
            {
                self.output
                    .with_rng(|rng| harden_openai(&mut value, llm, rng))
                    .map_err(|_| ())?
                    .map_err(|_| ())?;
                event.data = Some(serde_json::to_string(&value).map_err(|_| ())?);
            }
            event.write(&mut out);
        }
        Ok(Bytes::from(out))
    }
}

impl OutputStage {
    /// The end of a stream: `tail` (bytes an earlier stage held back) and whatever
    /// partial event this stage still holds, hardened.
    pub fn on_stream_end(&self, ex: &mut Exchange, tail: Option<Bytes>) -> Option<Bytes> {
        let Some(mut stream) = ex.stash.take::<Stream>() else {
            return tail;
        };
        match stream.feed(tail.as_deref().unwrap_or_default(), true) {
            Ok(b) if b.is_empty() => None,
            Ok(b) => Some(b),
            Err(()) => None,
        }
    }
}

impl Stage for OutputStage {
    const NAME: &'static str = "output";

    fn on_response(&self, ex: &mut Exchange, route: &RouteRuntime, head: &mut http::response::Parts) -> Flow {
        let Some(output) = route.output.as_ref().filter(|o| o.config.llm.is_some()) else {
            return Flow::Continue;
        };
        let sse = head
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(crate::body::is_event_stream);
        if sse && head.status.is_success() {
            if let Err(e) = readable(head) {
                return Flow::Reject(RequestError::ResponseUninspectable(e));
            }
            head.headers.remove(header::CONTENT_LENGTH);
            ex.stash.put(Stream {
                parser: rampart_detect::sse::Parser::default(),
                output: std::sync::Arc::clone(output),
            });
        }
        Flow::Continue
    }

    fn wants_chunks(&self, route: &RouteRuntime) -> bool {
        route.output.as_ref().is_some_and(|o| o.config.llm.is_some())
    }

    fn on_response_chunk(&self, ex: &mut Exchange, chunk: &mut Bytes) -> Flow {
        let Some(mut stream) = ex.stash.take::<Stream>() else {
            return Flow::Continue;
        };
        match stream.feed(chunk, false) {
            Ok(b) => {
                *chunk = b;
                ex.stash.put(stream);
            }
            Err(()) => {
                // Unreadable mid-stream: the head is gone, so the stream ends here
                // rather than carry scores the route does not release.
                tracing::warn!("output hardening could not read a streamed answer; the stream is cut");
                *chunk = Bytes::new();
                ex.end_stream = true;
            }
        }
        Flow::Continue
    }

    async fn on_request(&self, _ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        if route.output.is_some() {
            // The answer must come in a form the hardening can read.
            req.head
                .headers
                .insert(header::ACCEPT_ENCODING, http::HeaderValue::from_static("identity"));
        }
        Flow::Continue
    }
}
