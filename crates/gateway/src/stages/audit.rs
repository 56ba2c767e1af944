//! Audit: every exchange ends in exactly one audit record (`crate::audit` builds it).
//!
//! - admission, before any other request stage: when the trail cannot take another
//!   record (queue full, or store down with nothing to spill to), the request is
//!   refused with 503 `audit_unavailable` and counted — fail closed, never a silent
//!   drop;
//! - request, after the body stage: the SHA-256 of the body as the client sent it;
//! - response chunks: the SHA-256 of the body as the client receives it;
//! - completion: the record is handed to the writer. In `sync` mode the body holds its
//!   last frame until the record is durable (`body::ExchangeBody`), so no client sees a
//!   complete response whose record could still be lost.

use std::sync::Arc;

use bytes::Bytes;

use crate::audit::{AuditState, AuditTrail, hex};
use crate::body::RequestBody;
use crate::context::Exchange;
use crate::error::RequestError;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};

#[derive(Debug)]
pub struct AuditStage {
    trail: Option<Arc<AuditTrail>>,
    config_sha256: Arc<str>,
}

impl AuditStage {
    pub fn new(trail: Option<Arc<AuditTrail>>, config_sha256: &str) -> Self {
        Self {
            trail,
            config_sha256: Arc::from(config_sha256),
        }
    }

    /// Admission: `Err` when the trail cannot take another record.
    pub fn admit(&self, ex: &mut Exchange) -> Result<(), RequestError> {
        let Some(trail) = &self.trail else { return Ok(()) };
        if !trail.admit() {
            ex.audit_refused = true;
            return Err(RequestError::AuditUnavailable);
        }
        ex.stash.put(crate::audit::AuditState::default());
        Ok(())
    }

    /// After every request stage (the body is what goes upstream, redacted): on routes
    /// with `capture_payloads`, keeps the body for the record and names its data
    /// subject — the subject header (removed here, it is not for the upstream), else
    /// the OpenAI `user` field, else the caller.
    /// The data subject's pseudonym: the subject header, else the OpenAI `user`, else
    /// the caller; `None` without an audit trail.
    pub fn subject(&self, ex: &Exchange, headers: &http::HeaderMap) -> Option<String> {
        let trail = self.trail.as_ref()?;
        let subject = headers
            .get(&trail.subject_header)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| {
                ex.body_json
                    .as_ref()
                    .and_then(|v| v.get("user"))
                    .and_then(|u| u.as_str())
                    .map(str::to_owned)
            })
            .or_else(|| ex.principal.as_ref().map(|p| p.subject.clone()))
            .unwrap_or_else(|| "anonymous".into());
        Some(trail.pseudonym(&subject))
    }

    /// Whether the route's payloads are captured (sealed) in the trail.
    pub fn captures(&self, route: &RouteRuntime) -> bool {
        route.config.capture_payloads && self.trail.as_ref().is_some_and(|t| t.keys.is_some())
    }

    /// The largest body captured.
    pub fn capture_limit(&self) -> usize {
        self.trail.as_ref().map_or(0, |t| t.max_payload_bytes)
    }

    pub fn capture_request(&self, ex: &mut Exchange, route: &RouteRuntime, req: &mut RequestParts) {
        let Some(trail) = &self.trail else { return };
        if !self.captures(route) {
            req.head.headers.remove(&trail.subject_header);
            return;
        }
        let Some(subject) = self.subject(ex, &req.head.headers) else {
            return;
        };
        req.head.headers.remove(&trail.subject_header);
        let limit = trail.max_payload_bytes;
        let mut capture = rampart_audit_store::payload::Capture {
            subject,
            limit,
            ..Default::default()
        };
        if let RequestBody::Buffered(body) = &req.body {
            capture.truncated = body.len() > limit;
            capture.request = body[..body.len().min(limit)].to_vec();
        }
        if let Some(state) = ex.stash.get_mut::<crate::audit::AuditState>() {
            state.capture = Some(capture);
        }
    }

    /// Completion: hands the record over (taking the exchange's digests and captured
    /// bodies). `Some` in sync mode: resolves once durable.
    pub fn record(
        &self,
        ex: &mut Exchange,
        route: Option<&RouteRuntime>,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let trail = self.trail.as_ref()?;
        if ex.audit_refused {
            return None;
        }
        let policy = route.and_then(|r| r.policy.as_ref()).map(|p| Arc::clone(&p.name));
        trail.record_exchange(
            ex,
            &self.config_sha256,
            policy,
            route.and_then(|r| r.config.model.as_ref()),
        )
    }
}

impl Stage for AuditStage {
    const NAME: &'static str = "audit";

    async fn on_request(&self, ex: &mut Exchange, _route: &RouteRuntime, req: &mut RequestParts) -> Flow {
        if let (Some(state), RequestBody::Buffered(body)) = (ex.stash.get_mut::<crate::audit::AuditState>(), &req.body)
        {
            state.request_sha256 = Some(hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref()));
        }
        Flow::Continue
    }

    fn wants_chunks(&self, _route: &RouteRuntime) -> bool {
        self.trail.is_some()
    }

    fn on_response_chunk(&self, ex: &mut Exchange, chunk: &mut Bytes) -> Flow {
        if let Some(state) = ex.stash.get_mut::<crate::audit::AuditState>() {
            state.response.update(chunk);
            if let Some(c) = state.capture.as_mut() {
                c.push_response(chunk);
            }
        }
        Flow::Continue
    }
}

impl Default for AuditState {
    fn default() -> Self {
        Self {
            request_sha256: None,
            response: ring::digest::Context::new(&ring::digest::SHA256),
            capture: None,
        }
    }
}
