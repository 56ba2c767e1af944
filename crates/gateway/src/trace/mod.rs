//! OpenTelemetry traces. This module owns each exchange's W3C trace context — the
//! caller's `traceparent` / `tracestate` read and checked, the sampling decision, the
//! context passed to the upstream — and what a sampled exchange becomes: a server span,
//! a child span per pipeline stage and a client span for the upstream call, with the
//! HTTP and GenAI semantic conventions and Rampart's decision and finding kinds (never
//! a value: no prompt, no answer, no header but User-Agent). The trace stage hands the
//! spans to the exporter (`export.rs`: a bounded queue, batches, OTLP over HTTP/protobuf
//! or gRPC); `otlp.rs` encodes the protobuf.
//!
//! Propagation follows one rule: the upstream's parent is a span Rampart exports, or
//! the caller's own. A sampled exchange sends `traceparent` naming its upstream span;
//! an unsampled one passes a valid caller context on unchanged (rewriting it would
//! point the upstream at a span nobody exports and break the caller's tree), and
//! starts a fresh, unsampled context when the caller sent none. A malformed
//! `traceparent` (and with it `tracestate`) is dropped, never forwarded.

pub mod export;
pub mod otlp;

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use rampart_config::{ParentSampled, Protocol, Traces};

use crate::audit::hex;
use crate::context::{Exchange, Outcome};
use crate::error::InitError;
use crate::metrics::Metrics;
use crate::route::RouteRuntime;
use crate::stage::{Flow, Stage};
use otlp::{Kind, Span, SpanStatus, Value};

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// W3C: a `tracestate` longer than this may be dropped.
const MAX_TRACESTATE: usize = 512;
/// Response bytes kept from the start and the end of an LLM answer, to read the model,
/// id, finish reasons and usage from (never the text).
const HEAD_BYTES: usize = 2048;
const TAIL_BYTES: usize = 4096;

/// The trace settings of one runtime and its exporter.
#[derive(Debug)]
pub struct Tracer {
    /// Sampled when the trace id's low 56 bits are below this (ratio × 2^56).
    threshold: u64,
    follow_parent: bool,
    stages: bool,
    queue: Option<export::Queue>,
}

impl Tracer {
    /// Whether sampled exchanges get a child span per stage.
    pub fn stages(&self) -> bool {
        self.stages
    }

    /// Starts the exporter (when `endpoint` is set). Must run inside a Tokio runtime.
    pub fn start(config: &Traces, node: &str, metrics: Arc<Metrics>) -> Result<Self, InitError> {
        // Exact at 1.0 (2^56 is above every 56-bit value); the cast saturates.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let threshold = (config.sample_ratio * (1u64 << 56) as f64).round() as u64;
        let queue = match &config.endpoint {
            Some(endpoint) => Some(export::Queue::start(config, endpoint, node, metrics)?),
            None => None,
        };
        Ok(Self {
            threshold,
            follow_parent: config.parent_sampled == ParentSampled::Follow,
            stages: config.stages,
            queue,
        })
    }

    /// The exchange's trace context, from the caller's headers when they hold a valid
    /// one. Called once, before any stage runs.
    pub fn begin(&self, ex: &Exchange, headers: &HeaderMap) -> Trace {
        let caller = parse_traceparent(headers);
        let trace_id = caller.map_or_else(new_trace_id, |c| c.trace_id);
        let low = u64::from_be_bytes([
            0,
            trace_id[9],
            trace_id[10],
            trace_id[11],
            trace_id[12],
            trace_id[13],
            trace_id[14],
            trace_id[15],
        ]);
        let sampled = match caller {
            Some(c) if self.follow_parent => c.sampled,
            _ => low < self.threshold,
        } && self.queue.is_some();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let wall_start = now.saturating_sub(ex.started.elapsed());
        Trace {
            trace_id,
            span_id: new_span_id(),
            upstream_span: new_span_id(),
            parent: caller.map(|c| c.parent_id),
            caller_valid: caller.is_some(),
            sampled,
            wall_start_ns: u64::try_from(wall_start.as_nanos()).unwrap_or(0),
            upstream_status: None,
            llm: LlmRequest::default(),
            answer: AnswerScan::default(),
        }
    }
}

/// One exchange's trace context and what its spans are made from.
#[derive(Debug)]
pub struct Trace {
    pub trace_id: [u8; 16],
    /// The exchange's server span.
    pub span_id: [u8; 8],
    /// The upstream call's client span (the upstream's parent when sampled).
    pub upstream_span: [u8; 8],
    /// The caller's span, from its `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// The caller sent a valid `traceparent` (an invalid one is replaced).
    caller_valid: bool,
    pub sampled: bool,
    wall_start_ns: u64,
    upstream_status: Option<u16>,
    llm: LlmRequest,
    answer: AnswerScan,
}

impl Trace {
    /// The trace id as 32 lower-case hex digits (the access log's `trace.id`).
    pub fn trace_hex(&self) -> String {
        hex(&self.trace_id)
    }

    pub fn span_hex(&self) -> String {
        hex(&self.span_id)
    }

    /// The upstream's status, before the response stages.
    pub fn upstream_answered(&mut self, status: http::StatusCode) {
        self.upstream_status = Some(status.as_u16());
    }

    /// Reads the request settings the GenAI conventions name, from the parsed body.
    pub fn llm_request(&mut self, body: &serde_json::Value) {
        if self.sampled {
            self.llm = LlmRequest::read(body);
        }
    }

    /// Sets the headers the upstream sees (see the module docs for the rule).
    pub fn propagate(&self, headers: &mut HeaderMap) {
        if self.sampled {
            set(
                headers,
                TRACEPARENT,
                &traceparent(&self.trace_id, &self.upstream_span, true),
            );
            if !self.caller_valid {
                headers.remove(TRACESTATE);
            }
        } else if !self.caller_valid {
            headers.remove(TRACESTATE);
            set(headers, TRACEPARENT, &traceparent(&self.trace_id, &self.span_id, false));
        }
        if self.caller_valid && !tracestate_ok(headers) {
            headers.remove(TRACESTATE);
        }
    }
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

fn traceparent(trace_id: &[u8; 16], span_id: &[u8; 8], sampled: bool) -> String {
    format!(
        "00-{}-{}-{}",
        hex(trace_id),
        hex(span_id),
        if sampled { "01" } else { "00" }
    )
}

/// A caller's valid `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub sampled: bool,
}

/// W3C Trace Context level 1: exactly one header, `version-traceid-parentid-flags` in
/// lower-case hex; version `ff` and all-zero ids are invalid; a later version may
/// append fields after a `-`.
pub fn parse_traceparent(headers: &HeaderMap) -> Option<Caller> {
    let mut all = headers.get_all(TRACEPARENT).iter();
    let value = all.next()?;
    if all.next().is_some() {
        return None;
    }
    let s = value.as_bytes();
    if s.len() < 55 {
        return None;
    }
    let version = unhex::<1>(&s[0..2])?;
    let exact = version[0] == 0;
    if version[0] == 0xff || (exact && s.len() != 55) || (!exact && s.len() > 55 && s[55] != b'-') {
        return None;
    }
    if s[2] != b'-' || s[35] != b'-' || s[52] != b'-' {
        return None;
    }
    let trace_id = unhex::<16>(&s[3..35])?;
    let parent_id = unhex::<8>(&s[36..52])?;
    let flags = unhex::<1>(&s[53..55])?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(Caller {
        trace_id,
        parent_id,
        sampled: flags[0] & 1 == 1,
    })
}

/// `tracestate` kept only when every value is at most 512 printable ASCII bytes in all.
fn tracestate_ok(headers: &HeaderMap) -> bool {
    let mut total = 0;
    for v in headers.get_all(TRACESTATE) {
        total += v.len() + 1;
        if !v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)) {
            return false;
        }
    }
    total <= MAX_TRACESTATE + 1
}

fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    fn digit(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            _ => None,
        }
    }
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

thread_local! {
    /// A per-thread splitmix64 state, seeded from the system's randomness: ids must be
    /// unique and unguessable enough to not collide across a fleet, not secret.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut b).is_ok() {
        return u64::from_le_bytes(b);
    }
    // No system randomness: the clock and this thread's identity still differ per thread.
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let here = Cell::new(0u8);
    u64::try_from(t.as_nanos() & u128::from(u64::MAX)).unwrap_or(0) ^ (std::ptr::from_ref(&here) as usize as u64)
}

fn next_random() -> u64 {
    RNG.with(|s| {
        let x = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn new_trace_id() -> [u8; 16] {
    loop {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&next_random().to_be_bytes());
        id[8..].copy_from_slice(&next_random().to_be_bytes());
        if id != [0; 16] {
            return id;
        }
    }
}

fn new_span_id() -> [u8; 8] {
    loop {
        let id = next_random().to_be_bytes();
        if id != [0; 8] {
            return id;
        }
    }
}

/// The request settings the GenAI conventions record (numbers only).
#[derive(Debug, Default, Clone)]
struct LlmRequest {
    max_tokens: Option<i64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stream: Option<bool>,
}

impl LlmRequest {
    fn read(body: &serde_json::Value) -> Self {
        let int = |k: &str| body.get(k).and_then(serde_json::Value::as_i64);
        Self {
            max_tokens: int("max_completion_tokens")
                .or_else(|| int("max_tokens"))
                .or_else(|| int("max_output_tokens")),
            temperature: body.get("temperature").and_then(serde_json::Value::as_f64),
            top_p: body.get("top_p").and_then(serde_json::Value::as_f64),
            stream: body.get("stream").and_then(serde_json::Value::as_bool),
        }
    }
}

/// The first and last bytes of an LLM answer as the client receives it: enough to read
/// the response model and id (at the start) and the finish reasons and usage (at the
/// end of a JSON body, in the last events of a stream).
#[derive(Debug, Default)]
struct AnswerScan {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl AnswerScan {
    fn feed(&mut self, chunk: &[u8]) {
        if self.head.len() < HEAD_BYTES {
            let take = chunk.len().min(HEAD_BYTES - self.head.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > TAIL_BYTES {
            let cut = self.tail.len() - TAIL_BYTES;
            self.tail.drain(..cut);
        }
    }
}

/// Where `"key"` starts in `text`, looking only at quote characters.
fn key_positions<'a>(text: &'a [u8], key: &'a str) -> impl DoubleEndedIterator<Item = usize> + 'a {
    text.iter().enumerate().filter_map(move |(i, &b)| {
        let rest = &text[i + 1..];
        (b == b'"' && rest.starts_with(key.as_bytes()) && rest.get(key.len()) == Some(&b'"')).then_some(i)
    })
}

/// The value of the `"key"` starting at `at`: a number or a short string without
/// escapes; `None` for anything else (null, an object, a long or escaped string).
fn value_at(text: &[u8], at: usize, key: &str) -> Option<String> {
    let rest = text.get(at + key.len() + 2..)?.trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let value = match rest.strip_prefix(b"\"") {
        Some(s) => {
            let end = s.iter().position(|&b| b == b'"' || b == b'\\')?;
            (end <= 128 && s[end] == b'"').then(|| &s[..end])?
        }
        None => {
            let end = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
            (end > 0 && end < 19).then(|| &rest[..end])?
        }
    };
    std::str::from_utf8(value).ok().map(str::to_owned)
}

/// The value after the last (or first) `"key":` in `text` that is a number or a short
/// string.
fn json_field(text: &[u8], key: &str, last: bool) -> Option<String> {
    let value = |at| value_at(text, at, key);
    if last {
        key_positions(text, key).rev().find_map(value)
    } else {
        key_positions(text, key).find_map(value)
    }
}

fn finish_reasons(text: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in key_positions(text, "finish_reason").filter_map(|at| value_at(text, at, "finish_reason")) {
        if !out.contains(&v) && out.len() < 8 {
            out.push(v);
        }
    }
    out
}

/// `gen_ai.operation.name` for an OpenAI-protocol path.
fn operation(path: &str) -> Option<&'static str> {
    if path.ends_with("/chat/completions") {
        Some("chat")
    } else if path.ends_with("/completions") {
        Some("text_completion")
    } else if path.ends_with("/embeddings") {
        Some("embeddings")
    } else {
        None
    }
}

/// Ships a sampled exchange's spans when it ends; reads an LLM answer's head and tail
/// as it streams.
#[derive(Debug)]
pub struct TraceStage {
    tracer: Option<Arc<Tracer>>,
    node: Arc<str>,
}

impl TraceStage {
    pub fn new(tracer: Option<Arc<Tracer>>, node: Arc<str>) -> Self {
        Self { tracer, node }
    }

    pub fn tracer(&self) -> Option<&Tracer> {
        self.tracer.as_deref()
    }

    fn exporting(&self) -> bool {
        self.tracer.as_ref().is_some_and(|t| t.queue.is_some())
    }

    /// The spans of one finished exchange.
    fn spans(&self, ex: &Exchange, t: &Trace) -> Vec<Span> {
        let at = |d: Duration| t.wall_start_ns.saturating_add(u64::try_from(d.as_nanos()).unwrap_or(0));
        let end = ex
            .timings
            .response_end
            .or(ex.timings.response_headers)
            .unwrap_or_else(|| ex.started.elapsed());
        let llm_op = (ex.protocol == Protocol::Openai).then(|| operation(&ex.path)).flatten();
        let stages = ex.stage_times.as_deref().unwrap_or_default();
        let mut spans = Vec::with_capacity(stages.len() + 2);

        let mut attrs: Vec<(&'static str, Value)> = vec![
            ("http.request.method", Value::Str(ex.method.as_str().to_owned())),
            ("url.path", Value::Str(ex.path.clone())),
            ("url.scheme", Value::Static(if ex.conn.tls { "https" } else { "http" })),
            ("client.address", Value::Str(ex.client_ip.to_string())),
            ("network.peer.address", Value::Str(ex.conn.peer.ip().to_string())),
            ("server.port", Value::Int(i64::from(ex.conn.local.port()))),
            ("rampart.node", Value::Str(self.node.to_string())),
            ("rampart.listener", Value::Str(ex.conn.listener.to_string())),
            ("rampart.request_id", Value::Str(ex.request_id.clone())),
            ("rampart.decision", Value::Static(ex.decision.as_str())),
            (
                "rampart.findings",
                Value::Int(i64::try_from(ex.findings.len()).unwrap_or(i64::MAX)),
            ),
        ];
        if let Some(s) = ex.status {
            attrs.push(("http.response.status_code", Value::Int(i64::from(s.as_u16()))));
        }
        if let Some(ua) = &ex.user_agent {
            attrs.push(("user_agent.original", Value::Str(ua.clone())));
        }
        if let Some(r) = &ex.route {
            attrs.push(("rampart.route", Value::Str(r.to_string())));
        }
        if let Some(e) = &ex.error {
            attrs.push(("rampart.error.code", Value::Static(e.code())));
        }
        let mut kinds: Vec<String> = Vec::new();
        for f in &ex.findings {
            if !kinds.iter().any(|k| k == f.kind) {
                kinds.push(f.kind.to_owned());
            }
        }
        if !kinds.is_empty() {
            attrs.push(("rampart.finding_kinds", Value::Strs(kinds)));
        }
        if let Some(p) = &ex.principal {
            if let Some(tenant) = &p.tenant {
                attrs.push(("rampart.tenant", Value::Str(tenant.clone())));
            }
            if let Some(key) = &p.key_id {
                attrs.push(("rampart.auth.key_id", Value::Str(key.clone())));
            }
        }
        if let Some(o) = ex.outcome {
            let o = match o {
                Outcome::Complete => "complete",
                Outcome::Failed => "failed",
                Outcome::ClientGone => "client_gone",
            };
            attrs.push(("rampart.outcome", Value::Static(o)));
        }
        let gen_ai = self.gen_ai(ex, t, llm_op);
        attrs.extend(gen_ai.iter().cloned());
        let server_error = ex.status.is_some_and(|s| s.is_server_error()) || ex.outcome == Some(Outcome::Failed);
        let name = match &ex.route {
            Some(r) => format!("{} {r}", ex.method),
            None => ex.method.to_string(),
        };
        spans.push(Span {
            trace_id: t.trace_id,
            span_id: t.span_id,
            parent: t.parent,
            remote_parent: t.parent.is_some(),
            name_prefix: "",
            name: name.into(),
            kind: Kind::Server,
            start: t.wall_start_ns,
            end: at(end),
            attrs,
            status: if server_error {
                SpanStatus::Error(ex.error.as_ref().map_or("failed", |e| e.code()).to_owned())
            } else {
                SpanStatus::Unset
            },
        });

        for m in stages {
            spans.push(Span {
                trace_id: t.trace_id,
                span_id: new_span_id(),
                parent: Some(t.span_id),
                remote_parent: false,
                name_prefix: "rampart.",
                name: m.stage.into(),
                kind: Kind::Internal,
                start: at(m.start),
                end: at(m.end),
                attrs: if m.refused {
                    vec![("rampart.stage.refused", Value::Bool(true))]
                } else {
                    Vec::new()
                },
                status: if m.refused {
                    SpanStatus::Error(ex.error.as_ref().map_or("refused", |e| e.code()).to_owned())
                } else {
                    SpanStatus::Unset
                },
            });
        }

        if let Some(sent) = ex.timings.upstream_sent {
            let done = ex.timings.upstream_end.or(ex.timings.response_end).unwrap_or(end);
            let mut attrs = vec![("http.request.method", Value::Str(ex.method.as_str().to_owned()))];
            if let Some(u) = &ex.upstream {
                attrs.push(("rampart.upstream", Value::Str(u.to_string())));
            }
            if let Some(target) = ex.target.as_deref().and_then(|t| t.parse::<http::Uri>().ok()) {
                if let Some(host) = target.host() {
                    attrs.push(("server.address", Value::Str(host.trim_matches(['[', ']']).to_owned())));
                }
                let port = target
                    .port_u16()
                    .unwrap_or(if target.scheme_str() == Some("https") { 443 } else { 80 });
                attrs.push(("server.port", Value::Int(i64::from(port))));
            }
            if let Some(s) = t.upstream_status {
                attrs.push(("http.response.status_code", Value::Int(i64::from(s))));
            }
            attrs.extend(gen_ai);
            let failed = t.upstream_status.is_none_or(|s| s >= 400);
            let name = match (llm_op, ex.model.as_deref()) {
                (Some(op), Some(model)) => format!("{op} {model}"),
                (Some(op), None) => op.to_owned(),
                (None, _) => ex.method.to_string(),
            };
            spans.push(Span {
                trace_id: t.trace_id,
                span_id: t.upstream_span,
                parent: Some(t.span_id),
                remote_parent: false,
                name_prefix: "",
                name: name.into(),
                kind: Kind::Client,
                start: at(sent),
                end: at(done.max(sent)),
                attrs,
                status: if failed {
                    SpanStatus::Error(
                        t.upstream_status
                            .map_or_else(|| "no response".to_owned(), |s| format!("HTTP {s}")),
                    )
                } else {
                    SpanStatus::Unset
                },
            });
        }
        spans
    }

    /// The GenAI semantic conventions on an LLM exchange: the request's model and
    /// settings, the answer's model, id, finish reasons and token usage.
    fn gen_ai(&self, ex: &Exchange, t: &Trace, op: Option<&'static str>) -> Vec<(&'static str, Value)> {
        let Some(op) = op else { return Vec::new() };
        let mut a = vec![("gen_ai.operation.name", Value::Static(op))];
        if let Some(m) = &ex.model {
            a.push(("gen_ai.request.model", Value::Str(m.clone())));
        }
        if let Some(n) = t.llm.max_tokens {
            a.push(("gen_ai.request.max_tokens", Value::Int(n)));
        }
        if let Some(x) = t.llm.temperature {
            a.push(("gen_ai.request.temperature", Value::Double(x)));
        }
        if let Some(x) = t.llm.top_p {
            a.push(("gen_ai.request.top_p", Value::Double(x)));
        }
        if let Some(s) = t.llm.stream {
            a.push(("rampart.request.stream", Value::Bool(s)));
        }
        let (head, tail) = (&t.answer.head[..], &t.answer.tail[..]);
        if ex.status.is_some_and(|s| s.is_success()) && !head.is_empty() {
            if let Some(m) = json_field(head, "model", false) {
                a.push(("gen_ai.response.model", Value::Str(m)));
            }
            if let Some(id) = json_field(head, "id", false) {
                a.push(("gen_ai.response.id", Value::Str(id)));
            }
            let reasons = finish_reasons(tail);
            if !reasons.is_empty() {
                a.push(("gen_ai.response.finish_reasons", Value::Strs(reasons)));
            }
            let number = |keys: [&str; 2]| {
                keys.iter()
                    .find_map(|k| json_field(tail, k, true))
                    .and_then(|v| v.parse::<i64>().ok())
            };
            if let Some(n) = number(["prompt_tokens", "input_tokens"]) {
                a.push(("gen_ai.usage.input_tokens", Value::Int(n)));
            }
            if let Some(n) = number(["completion_tokens", "output_tokens"]) {
                a.push(("gen_ai.usage.output_tokens", Value::Int(n)));
            }
        }
        a
    }
}

impl Stage for TraceStage {
    const NAME: &'static str = "trace";

    fn wants_chunks(&self, route: &RouteRuntime) -> bool {
        self.exporting() && route.config.protocol == Protocol::Openai
    }

    fn on_response_chunk(&self, ex: &mut Exchange, chunk: &mut Bytes) -> Flow {
        if let Some(t) = ex.stash.get_mut::<Trace>()
            && t.sampled
        {
            t.answer.feed(chunk);
        }
        Flow::Continue
    }

    fn on_complete(&self, ex: &Exchange) {
        let Some(queue) = self.tracer.as_deref().and_then(|t| t.queue.as_ref()) else {
            return;
        };
        if let Some(t) = ex.stash.get::<Trace>()
            && t.sampled
        {
            queue.offer(self.spans(ex, t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn traceparent_is_parsed_as_w3c_says() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let c = parse_traceparent(&headers(&[("traceparent", good)])).unwrap();
        assert_eq!(hex(&c.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&c.parent_id), "00f067aa0ba902b7");
        assert!(c.sampled);
        let unsampled = parse_traceparent(&headers(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]))
        .unwrap();
        assert!(!unsampled.sampled);
        // A later version may add fields; version 00 may not.
        assert!(
            parse_traceparent(&headers(&[(
                "traceparent",
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
            )]))
            .is_some()
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "",
        ] {
            assert!(parse_traceparent(&headers(&[("traceparent", bad)])).is_none(), "{bad}");
        }
        // Two headers: which one is meant is unknowable.
        assert!(parse_traceparent(&headers(&[("traceparent", good), ("traceparent", good)])).is_none());
    }

    fn traces(ratio: f64, parent: ParentSampled) -> Traces {
        Traces {
            endpoint: Some("http://127.0.0.1:9/v1/traces".parse().unwrap()),
            protocol: rampart_config::OtlpProtocol::HttpProtobuf,
            sample_ratio: ratio,
            parent_sampled: parent,
            service_name: "rampart".into(),
            headers: Vec::new(),
            ca: None,
            queue: 10,
            batch: 10,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            stages: true,
        }
    }

    fn exchange() -> Exchange {
        let conn = Arc::new(crate::context::ConnInfo {
            listener: Arc::from("main"),
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: "127.0.0.1:8080".parse().unwrap(),
            tls: false,
            client_cert: None,
        });
        Exchange::new(conn, http::Method::POST, "/v1/chat/completions".into(), None)
    }

    /// A client cannot force its requests into the trace pipeline: under the default
    /// `ignore` only the ratio decides; `follow` hands the decision to the caller.
    #[tokio::test]
    async fn a_caller_decides_sampling_only_when_told_to() {
        let metrics = Arc::new(Metrics::new());
        let sampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let begin = |ratio, parent, header: Option<&str>| {
            let tracer = Tracer::start(&traces(ratio, parent), "n", Arc::clone(&metrics)).unwrap();
            let h = header.map_or_else(HeaderMap::new, |v| headers(&[("traceparent", v)]));
            tracer.begin(&exchange(), &h).sampled
        };
        assert!(
            !begin(0.0, ParentSampled::Ignore, Some(sampled)),
            "forced by the caller"
        );
        assert!(begin(1.0, ParentSampled::Ignore, Some(unsampled)), "the ratio decides");
        assert!(begin(0.0, ParentSampled::Follow, Some(sampled)));
        assert!(!begin(1.0, ParentSampled::Follow, Some(unsampled)));
        // No valid caller context: the ratio decides, also under `follow`.
        assert!(!begin(0.0, ParentSampled::Follow, None));
        assert!(begin(1.0, ParentSampled::Follow, Some("00-bogus")));
        // The ratio is applied to the trace id, so every node agrees on one trace.
        let a = begin(0.5, ParentSampled::Ignore, Some(unsampled));
        for _ in 0..20 {
            assert_eq!(begin(0.5, ParentSampled::Ignore, Some(unsampled)), a);
        }
    }

    /// The next variations of a hostile trace context: an over-long or unprintable
    /// `tracestate` beside a valid `traceparent` is dropped; a sampled exchange names
    /// its own upstream span.
    #[tokio::test]
    async fn hostile_tracestate_is_not_forwarded() {
        let tracer = Tracer::start(&traces(1.0, ParentSampled::Ignore), "n", Arc::new(Metrics::new())).unwrap();
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let long = format!("v={}", "x".repeat(600));
        for state in [long.as_str(), "v=a\tb", "v=ok"] {
            let mut h = headers(&[("traceparent", caller)]);
            h.insert(TRACESTATE, HeaderValue::from_str(state).unwrap());
            let t = tracer.begin(&exchange(), &h);
            t.propagate(&mut h);
            assert_eq!(h.get(TRACESTATE).is_some(), state == "v=ok", "{state}");
            let sent = h[TRACEPARENT].to_str().unwrap();
            assert_eq!(sent, traceparent(&t.trace_id, &t.upstream_span, true));
        }
    }

    #[test]
    fn ids_are_unique_and_never_zero() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = new_span_id();
            assert_ne!(id, [0; 8]);
            assert!(seen.insert(id));
        }
        assert_ne!(new_trace_id(), new_trace_id());
    }

    #[test]
    fn answer_fields_are_read_from_head_and_tail_only_as_numbers_and_short_names() {
        let body = br#"{"id":"chatcmpl-7","object":"chat.completion","model":"m-1","choices":[{"message":{"content":"the \"model\": secret"},"finish_reason":"stop"},{"finish_reason":"length"}],"usage":{"prompt_tokens":12,"completion_tokens": 34,"total_tokens":46}}"#;
        let mut scan = AnswerScan::default();
        for chunk in body.chunks(7) {
            scan.feed(chunk);
        }
        assert_eq!(json_field(&scan.head, "model", false).as_deref(), Some("m-1"));
        assert_eq!(json_field(&scan.head, "id", false).as_deref(), Some("chatcmpl-7"));
        assert_eq!(json_field(&scan.tail, "prompt_tokens", true).as_deref(), Some("12"));
        assert_eq!(json_field(&scan.tail, "completion_tokens", true).as_deref(), Some("34"));
        assert_eq!(finish_reasons(&scan.tail), ["stop", "length"]);
        // A long body keeps only its ends.
        let mut big = AnswerScan::default();
        big.feed(&vec![b'x'; 100_000]);
        big.feed(br#""usage":{"prompt_tokens":5}"#);
        assert_eq!(big.head.len(), HEAD_BYTES);
        assert_eq!(big.tail.len(), TAIL_BYTES);
        assert_eq!(json_field(&big.tail, "prompt_tokens", true).as_deref(), Some("5"));
        // Strings with escapes or longer than a name are not read.
        assert_eq!(json_field(br#"{"model":"a\"b"}"#, "model", false), None);
        assert_eq!(
            json_field(
                format!(r#"{{"model":"{}"}}"#, "m".repeat(200)).as_bytes(),
                "model",
                false
            ),
            None
        );
    }

    #[test]
    fn gen_ai_operations_follow_the_openai_paths() {
        assert_eq!(operation("/v1/chat/completions"), Some("chat"));
        assert_eq!(operation("/v1/completions"), Some("text_completion"));
        assert_eq!(operation("/v1/embeddings"), Some("embeddings"));
        assert_eq!(operation("/v1/models"), None);
    }
}
