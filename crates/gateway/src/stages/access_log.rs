//! Access log: one JSON line per exchange, with Elastic Common Schema field names, written
//! to stdout by a dedicated thread so the request path never blocks on the terminal or
//! a pipe. Each worker thread collects lines in its own buffer and hands them over in
//! batches (at 32 KiB, and every 100 ms from the worker's flush tick), so the request
//! path does not wake the writer thread once per request. Only the method, path (never the query string, which may carry keys), status,
//! sizes, timings, client address, user agent and the gateway's own decisions are
//! logged: no header other than User-Agent, and no body, ever reaches this log.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::SystemTime;

use serde::Serialize;

use crate::context::{Exchange, Outcome};
use crate::metrics::Metrics;
use crate::stage::Stage;

/// Batches queued between the workers and the writer thread before batches are
/// dropped (their lines counted in `rampart_access_log_dropped_total`): at most
/// 1024 × 32 KiB = 32 MiB of pending log.
const QUEUE_BATCHES: usize = 1024;

/// A worker hands its buffer to the writer once it holds this much.
const BATCH_BYTES: usize = 32 * 1024;

/// How often workers hand over partial batches.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

thread_local! {
    static PENDING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn send_batch(sender: &SyncSender<Message>, metrics: &Metrics, batch: Vec<u8>) {
    if batch.is_empty() {
        return;
    }
    if let Err(TrySendError::Full(Message::Line(lost)) | TrySendError::Disconnected(Message::Line(lost))) =
        sender.try_send(Message::Line(batch))
    {
        for _ in lost.iter().filter(|&&b| b == b'\n') {
            metrics.access_log_dropped();
        }
    }
}

#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    #[serde(rename = "event.dataset")]
    dataset: &'static str,
    #[serde(rename = "event.duration")]
    duration_ns: u64,
    #[serde(rename = "event.outcome")]
    outcome: &'static str,
    #[serde(rename = "service.node.name")]
    node: &'a str,
    #[serde(rename = "http.request.id")]
    request_id: &'a str,
    /// The W3C trace and the exchange's span (with `[traces]`).
    #[serde(rename = "trace.id", skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    #[serde(rename = "span.id", skip_serializing_if = "Option::is_none")]
    span_id: Option<String>,
    #[serde(rename = "http.request.method")]
    method: &'a str,
    #[serde(rename = "url.path")]
    path: &'a str,
    #[serde(rename = "http.request.body.bytes")]
    request_bytes: u64,
    #[serde(rename = "http.response.status_code")]
    status: u16,
    #[serde(rename = "http.response.body.bytes")]
    response_bytes: u64,
    #[serde(rename = "client.ip")]
    client_ip: String,
    /// The TCP peer (a proxy, when the client came through a trusted one).
    #[serde(rename = "source.ip")]
    source_ip: String,
    #[serde(rename = "client.port")]
    client_port: u16,
    #[serde(rename = "tls.established")]
    tls: bool,
    #[serde(rename = "user_agent.original", skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
    #[serde(rename = "user.id", skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(rename = "rampart.tenant", skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    #[serde(rename = "rampart.auth.credential", skip_serializing_if = "Option::is_none")]
    credential: Option<&'static str>,
    #[serde(rename = "rampart.auth.key_id", skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(rename = "rampart.model", skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(rename = "rampart.listener")]
    listener: &'a str,
    #[serde(rename = "rampart.route", skip_serializing_if = "Option::is_none")]
    route: Option<&'a str>,
    #[serde(rename = "rampart.upstream", skip_serializing_if = "Option::is_none")]
    upstream: Option<&'a str>,
    #[serde(rename = "rampart.upstream.target", skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
    #[serde(rename = "rampart.decision")]
    decision: &'static str,
    #[serde(rename = "rampart.error.code", skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
    #[serde(rename = "rampart.findings")]
    findings: usize,
    /// The kinds found (each once), never the values.
    #[serde(rename = "rampart.finding_kinds", skip_serializing_if = "Vec::is_empty")]
    finding_kinds: Vec<&'static str>,
    #[serde(rename = "rampart.gateway_added_us", skip_serializing_if = "Option::is_none")]
    gateway_added_us: Option<u64>,
    #[serde(rename = "rampart.upstream_us", skip_serializing_if = "Option::is_none")]
    upstream_us: Option<u64>,
    #[serde(rename = "rampart.client_disconnected")]
    client_gone: bool,
}

/// RFC 3339 UTC timestamp with microseconds.
pub fn rfc3339(t: SystemTime) -> String {
    rampart_identity::time::format_micros(t)
}

/// What the request path sends to the writer thread.
#[derive(Debug)]
pub enum Message {
    Line(Vec<u8>),
    /// Write everything queued before this, then acknowledge.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The writer thread's handle. The thread ends when the last sender is dropped.
#[derive(Debug)]
pub struct AccessLogWriter {
    sender: SyncSender<Message>,
}

impl AccessLogWriter {
    /// Starts the writer thread, writing to stdout.
    pub fn start() -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Message>(QUEUE_BATCHES);
        std::thread::Builder::new()
            .name("rampart-access-log".into())
            .spawn(move || write_loop(receiver))?;
        Ok(Self { sender })
    }

    pub fn sender(&self) -> SyncSender<Message> {
        self.sender.clone()
    }

    /// Hands the calling thread's buffered lines to the writer (workers call this on
    /// their flush tick and when they stop).
    pub fn flush_thread(&self, metrics: &Metrics) {
        let batch = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
        send_batch(&self.sender, metrics, batch);
    }

    /// Waits (up to `timeout`) until every line queued before now is written.
    pub fn flush(&self, timeout: std::time::Duration) {
        let (ack, done) = std::sync::mpsc::channel();
        if self.sender.send(Message::Flush(ack)).is_ok() {
            let _ = done.recv_timeout(timeout);
        }
    }
}

fn write_loop(receiver: Receiver<Message>) {
    // Not `stdout.lock()`: holding the lock for the thread's life would block every
    // other writer to stdout (the demo's banner, for one).
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let handle = |msg: Message, out: &mut std::io::BufWriter<std::io::Stdout>| match msg {
        Message::Line(line) => {
            let _ = out.write_all(&line);
        }
        Message::Flush(ack) => {
            let _ = out.flush();
            let _ = ack.send(());
        }
    };
    while let Ok(msg) = receiver.recv() {
        handle(msg, &mut out);
        // Batch whatever else is already queued, then flush once.
        while let Ok(more) = receiver.try_recv() {
            handle(more, &mut out);
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

#[derive(Debug)]
pub struct AccessLogStage {
    enabled: bool,
    node: Arc<str>,
    sender: SyncSender<Message>,
    metrics: Arc<Metrics>,
}

impl AccessLogStage {
    pub fn new(enabled: bool, node: Arc<str>, sender: SyncSender<Message>, metrics: Arc<Metrics>) -> Self {
        Self {
            enabled,
            node,
            sender,
            metrics,
        }
    }
}

impl Stage for AccessLogStage {
    const NAME: &'static str = "access_log";

    fn on_complete(&self, ex: &Exchange) {
        if !self.enabled {
            return;
        }
        let failed = matches!(ex.outcome, Some(Outcome::Failed)) || ex.status.is_none_or(|s| s.as_u16() >= 500);
        let trace = ex.stash.get::<crate::trace::Trace>();
        let line = Line {
            timestamp: rfc3339(ex.started_wall),
            dataset: "rampart.access",
            duration_ns: u64::try_from(ex.started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            outcome: if failed { "failure" } else { "success" },
            node: &self.node,
            request_id: &ex.request_id,
            trace_id: trace.map(crate::trace::Trace::trace_hex),
            span_id: trace.map(crate::trace::Trace::span_hex),
            method: ex.method.as_str(),
            path: &ex.path,
            request_bytes: ex.request_bytes,
            status: ex.status.map(|s| s.as_u16()).unwrap_or(0),
            response_bytes: ex.response_bytes,
            client_ip: ex.client_ip.to_string(),
            source_ip: ex.conn.peer.ip().to_canonical().to_string(),
            client_port: ex.conn.peer.port(),
            tls: ex.conn.tls,
            user_agent: ex.user_agent.as_deref(),
            user: ex.principal.as_ref().map(|p| p.subject.as_str()),
            tenant: ex.principal.as_ref().and_then(|p| p.tenant.as_deref()),
            credential: ex.principal.as_ref().map(|p| p.credential.as_str()),
            key_id: ex.principal.as_ref().and_then(|p| p.key_id.as_deref()),
            model: ex.model.as_deref(),
            listener: &ex.conn.listener,
            route: ex.route.as_deref(),
            upstream: ex.upstream.as_deref(),
            target: ex.target.as_deref(),
            decision: ex.decision.as_str(),
            error: ex.error.as_ref().map(|e| e.code()),
            findings: ex.findings.len(),
            finding_kinds: {
                let mut kinds: Vec<&'static str> = ex.findings.iter().map(|f| f.kind).collect();
                kinds.sort_unstable();
                kinds.dedup();
                kinds
            },
            gateway_added_us: ex
                .gateway_added()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            upstream_us: ex
                .upstream_time()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
            client_gone: matches!(ex.outcome, Some(Outcome::ClientGone)),
        };
        let full = PENDING.with(|p| {
            let mut buf = p.borrow_mut();
            let before = buf.len();
            if serde_json::to_writer(&mut *buf, &line).is_err() {
                buf.truncate(before);
                return None;
            }
            buf.push(b'\n');
            (buf.len() >= BATCH_BYTES).then(|| std::mem::take(&mut *buf))
        });
        if let Some(batch) = full {
            send_batch(&self.sender, &self.metrics, batch);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40.123456Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
