//! The per-exchange context: one typed value that travels through every stage of one
//! request/response exchange. Stages read and write it instead of request extensions.
//! Findings and the decision are data here; the access log, metrics and (later) the
//! audit trail are written from it when the exchange ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{Method, StatusCode};
use rampart_config::Protocol;

use crate::error::RequestError;

/// What the connection told us about the client.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub listener: Arc<str>,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub tls: bool,
    /// The client certificate chain's leaf (DER), when mTLS presented one.
    pub client_cert: Option<Arc<[u8]>>,
}

/// Where in the exchange a finding was made. Never the raw value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    RequestHeaders,
    RequestBody,
    ResponseHeaders,
    ResponseBody,
}

/// One thing a stage noticed: its kind (`pii.email`, `secret.aws_key`, `injection`,
/// ...), how sure it is, and where. Stages must never store the matched text.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    pub confidence: f32,
    pub location: Location,
    /// Byte range in the inspected text, when meaningful.
    pub span: Option<(usize, usize)>,
}

/// What the gateway did with the exchange, worst action wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Decision {
    #[default]
    Allow,
    Flag,
    Redact,
    Block,
    Error,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Flag => "flag",
            Decision::Redact => "redact",
            Decision::Block => "block",
            Decision::Error => "error",
        }
    }
}

/// Timing marks, all relative to `Exchange::started` (the first byte of the request
/// read from the connection, see `server::conn::Activity`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Request sent to the upstream (all request stages done).
    pub upstream_sent: Option<Duration>,
    /// Upstream response headers received.
    pub upstream_headers: Option<Duration>,
    /// The upstream's response body ended (read whole, or its last frame passed on).
    pub upstream_end: Option<Duration>,
    /// Response headers handed to the client connection.
    pub response_headers: Option<Duration>,
    /// The response's last byte handed to the client connection.
    pub response_end: Option<Duration>,
}

/// How the exchange ended, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The full response body was delivered.
    Complete,
    /// The body ended with an error (upstream reset, timeout).
    Failed,
    /// The client went away before the body ended.
    ClientGone,
}

#[derive(Debug)]
pub struct Exchange {
    pub request_id: String,
    pub started: Instant,
    pub started_wall: SystemTime,
    pub conn: Arc<ConnInfo>,
    pub method: Method,
    pub path: String,
    /// The client's address: the TCP peer, or, behind a trusted proxy, the address it
    /// reported in X-Forwarded-For. Limits, IP rules and logs use this.
    pub client_ip: std::net::IpAddr,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    /// Matched route name and protocol; `None` until routing.
    pub route: Option<Arc<str>>,
    pub protocol: Protocol,
    pub upstream: Option<Arc<str>>,
    pub target: Option<Arc<str>>,
    /// Who is calling; set by the identify stage (anonymous on public routes).
    pub principal: Option<rampart_identity::Principal>,
    /// The model the request names (OpenAI `model` field, KServe path), when known.
    pub model: Option<String>,
    /// The request body parsed as JSON, by the first stage that needed it; a stage that
    /// rewrites the body keeps this in step, so later stages do not parse again.
    pub body_json: Option<serde_json::Value>,
    /// Each stage's own per-exchange state, by type (concurrency holds, token
    /// reservations, the content policy's vault, audit digests, …): the stage that
    /// creates a state owns its type, so this context names no stage and no engine.
    pub stash: Stash,
    /// A stage ended the response stream (a block mid-stream): the body stops after
    /// the current chunk.
    pub end_stream: bool,
    /// The audit trail refused this exchange (503): it is counted, not recorded.
    pub audit_refused: bool,
    pub findings: Vec<Finding>,
    pub decision: Decision,
    pub error: Option<RequestError>,
    pub status: Option<StatusCode>,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub timings: Timings,
    pub outcome: Option<Outcome>,
    /// Each request stage's run, when something asked for them (a sampled trace).
    pub stage_times: Option<Vec<StageTime>>,
}

/// One request stage's run: offsets from `Exchange::started`, and whether it refused.
#[derive(Debug, Clone, Copy)]
pub struct StageTime {
    pub stage: &'static str,
    pub start: Duration,
    pub end: Duration,
    pub refused: bool,
}

impl Exchange {
    /// Runs `phase` and, when stage times are kept, records its run as `stage`'s.
    pub async fn timed<T, E>(
        &mut self,
        stage: &'static str,
        phase: impl AsyncFnOnce(&mut Self) -> Result<T, E>,
    ) -> Result<T, E> {
        let Some(start) = self.stage_times.is_some().then(|| self.started.elapsed()) else {
            return phase(self).await;
        };
        let result = phase(self).await;
        let end = self.started.elapsed();
        if let Some(times) = self.stage_times.as_mut() {
            times.push(StageTime {
                stage,
                start,
                end,
                refused: result.is_err(),
            });
        }
        result
    }
}

impl Exchange {
    /// `started` is when the request's first byte was read, when the connection knows
    /// it (HTTP/1), else now.
    pub fn new(conn: Arc<ConnInfo>, method: Method, path: String, started: Option<Instant>) -> Self {
        Self {
            request_id: String::new(),
            started: started.unwrap_or_else(Instant::now),
            started_wall: SystemTime::now(),
            client_ip: conn.peer.ip().to_canonical(),
            conn,
            method,
            path,
            host: None,
            user_agent: None,
            route: None,
            protocol: Protocol::Json,
            upstream: None,
            target: None,
            principal: None,
            model: None,
            end_stream: false,
            body_json: None,
            stash: Stash::default(),
            audit_refused: false,
            findings: Vec::new(),
            decision: Decision::Allow,
            error: None,
            status: None,
            request_bytes: 0,
            response_bytes: 0,
            timings: Timings::default(),
            outcome: None,
            stage_times: None,
        }
    }

    /// Records a finding and raises the decision to at least `decision`.
    /// Who per-principal state (privacy budgets, detectors, penalties) is kept for: the
    /// credential's subject with its tenant, or the client's address for anonymous
    /// callers.
    pub fn principal_key(&self) -> String {
        match &self.principal {
            Some(p) if p.credential != rampart_identity::Credential::Anonymous => {
                format!("sub:{}/{}", p.tenant.as_deref().unwrap_or(""), p.subject)
            }
            _ => format!("ip:{}", self.client_ip),
        }
    }

    pub fn add_finding(&mut self, finding: Finding, decision: Decision) {
        self.findings.push(finding);
        self.decide(decision);
    }

    pub fn decide(&mut self, decision: Decision) {
        self.decision = self.decision.max(decision);
    }

    /// Gateway-added time: from the request's first byte read to the response's last
    /// byte handed to the connection (its headers, while the body has not ended),
    /// minus the time the upstream took from receiving the request to the end of its
    /// answer. Waiting for a worker, for an upstream connection and for the stages
    /// all count; a streamed body's chunk inspection, which runs between upstream
    /// frames, counts as the upstream's.
    pub fn gateway_added(&self) -> Option<Duration> {
        let end = self.timings.response_end.or(self.timings.response_headers)?;
        let upstream = match (self.timings.upstream_sent, self.timings.upstream_end) {
            (Some(sent), Some(done)) if end >= done => done.saturating_sub(sent),
            _ => self.upstream_time().unwrap_or_default(),
        };
        Some(end.saturating_sub(upstream))
    }

    /// From sending the request upstream to receiving its response headers.
    pub fn upstream_time(&self) -> Option<Duration> {
        match (self.timings.upstream_sent, self.timings.upstream_headers) {
            (Some(sent), Some(got)) => Some(got.saturating_sub(sent)),
            _ => None,
        }
    }
}

/// Per-exchange state keyed by its type: one slot per type, kept for the whole
/// exchange (so a slot emptied with [`Stash::take`] and filled again with
/// [`Stash::put`] costs no allocation — the content stage does that per chunk). What
/// it holds is dropped with the exchange, after the completion stages ran.
#[derive(Default)]
pub struct Stash(Vec<Box<dyn std::any::Any + Send + Sync>>);

impl Stash {
    fn slot<T: std::any::Any + Send + Sync>(&mut self) -> Option<&mut Option<T>> {
        self.0.iter_mut().find_map(|b| b.downcast_mut::<Option<T>>())
    }

    /// Stores `value`, replacing what its type's slot held.
    pub fn put<T: std::any::Any + Send + Sync>(&mut self, value: T) {
        match self.slot::<T>() {
            Some(slot) => *slot = Some(value),
            None => self.0.push(Box::new(Some(value))),
        }
    }

    pub fn get<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.0
            .iter()
            .find_map(|b| b.downcast_ref::<Option<T>>())
            .and_then(Option::as_ref)
    }

    pub fn get_mut<T: std::any::Any + Send + Sync>(&mut self) -> Option<&mut T> {
        self.slot::<T>().and_then(Option::as_mut)
    }

    /// Takes the value out, leaving its slot empty.
    pub fn take<T: std::any::Any + Send + Sync>(&mut self) -> Option<T> {
        self.slot::<T>().and_then(Option::take)
    }
}

impl std::fmt::Debug for Stash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Stash({} slots)", self.0.len())
    }
}

#[cfg(test)]
mod stash_tests {
    use super::Stash;

    #[test]
    fn one_slot_per_type_taken_and_put_back() {
        let mut s = Stash::default();
        assert!(s.get::<u32>().is_none());
        s.put(7u32);
        s.put(String::from("x"));
        assert_eq!(s.get::<u32>(), Some(&7));
        *s.get_mut::<String>().unwrap() += "y";
        assert_eq!(s.take::<String>().as_deref(), Some("xy"));
        assert!(s.get::<String>().is_none());
        s.put(String::from("z"));
        s.put(8u32);
        assert_eq!(
            (s.get::<u32>(), s.get::<String>().map(String::as_str)),
            (Some(&8), Some("z"))
        );
        assert_eq!(format!("{s:?}"), "Stash(2 slots)");
    }
}
