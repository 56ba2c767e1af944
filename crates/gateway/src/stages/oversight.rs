//! Oversight: the stop switches (`crate::oversight`) in the request path.
//!
//! - Admission (before identify): a stop on the whole gateway, on the route or on the
//!   tenant that owns the route refuses at once — 503 `stopped_by_operator`, with
//!   `Retry-After` when the stop has a planned end. No credential is needed to learn
//!   that a service is stopped, and none is checked.
//! - Request (after `model`, when the caller and the model are known): stops on the
//!   model, the caller's tenant, and a reviewer's block on the caller (403
//!   `blocked_by_reviewer`).
//!
//! - Hold (after `content`, whose rules and injection band mark exchanges for review):
//!   a request marked `hold` waits for a reviewer — approved, it goes on; rejected, the
//!   client gets 403 `rejected_by_reviewer`; nobody in time, `[oversight.hold]
//!   on_timeout` decides (503 `review_timeout` by default); too many waiting, 503
//!   `review_queue_full`. Nothing reaches the model before the decision.
//! - Completion: an exchange marked `review` (content rules, injection band, detectors)
//!   is queued for review after the fact, with its captured payload sealed.
//!
//! Event streams in flight when a stop that cuts streams is set end with an error event
//! (`body::ExchangeBody`).

use std::sync::{Arc, LazyLock};

use rampart_detect::redact::{Transform, Vault, apply};
use rampart_detect::{Kind, Scanner};
use rampart_oversight::{Mode, ReviewItem, Status, Target};

use crate::body::RequestBody;
use crate::context::{Decision, Exchange};
use crate::error::RequestError;
use crate::oversight::{Held, Oversight, ReviewMark, target};
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};
use crate::stages::audit::AuditStage;

/// Request text shown to reviewers, at most.
const PREVIEW_BYTES: usize = 4096;

/// Every kind the detectors know, for previews.
static PREVIEW: LazyLock<Option<Scanner>> = LazyLock::new(|| Scanner::new(Kind::ALL, 0.5).ok());

/// The body as text with every detected value replaced by its kind's tag.
fn preview(body: &[u8]) -> Option<String> {
    let scanner = PREVIEW.as_ref()?;
    let mut end = body.len().min(PREVIEW_BYTES);
    while end < body.len() && end > 0 && (body[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let text = String::from_utf8_lossy(&body[..end]);
    let findings = scanner.scan(&text);
    let mut out = apply(&text, &findings, |_| Some(Transform::Tag), None, &mut Vault::default());
    if end < body.len() {
        out.push_str(" …");
    }
    Some(out)
}

#[derive(Debug, Default)]
pub struct OversightStage {
    oversight: Option<Arc<Oversight>>,
}

impl OversightStage {
    pub fn new(oversight: Option<Arc<Oversight>>) -> Self {
        Self { oversight }
    }

    pub fn oversight(&self) -> Option<&Arc<Oversight>> {
        self.oversight.as_ref()
    }

    /// Admission: stops that do not need the caller.
    pub fn admit(&self, route: &RouteRuntime) -> Result<(), RequestError> {
        let Some(o) = &self.oversight else { return Ok(()) };
        let t = Target {
            route: Some(&route.name),
            route_tenant: route.config.tenant.as_deref(),
            ..Target::default()
        };
        o.refusal(&t).map_or(Ok(()), Err)
    }
}

impl OversightStage {
    fn item(&self, o: &Oversight, ex: &Exchange, route: &RouteRuntime, mode: Mode, mark: ReviewMark) -> ReviewItem {
        let principal = ex
            .principal
            .as_ref()
            .filter(|p| p.credential != rampart_identity::Credential::Anonymous);
        let mut findings: Vec<String> = ex.findings.iter().map(|f| f.kind.to_owned()).collect();
        findings.sort();
        findings.dedup();
        ReviewItem {
            id: rampart_oversight::new_id(),
            mode,
            status: Status::Pending,
            created: rampart_identity::time::now(),
            node: o.node().to_owned(),
            request_id: ex.request_id.clone(),
            route: route.name.to_string(),
            model: ex.model.clone(),
            principal: principal.map(|p| p.subject.clone()),
            key_id: principal.and_then(|p| p.key_id.clone()),
            tenant: principal.and_then(|p| p.tenant.clone()),
            reasons: mark.reasons,
            findings,
            subject: None,
            sealed: None,
            preview: mark.preview,
            decided_by: None,
            decided_at: None,
            note: None,
            blocked_principal: false,
        }
    }

    /// Request, after `content`: holds a request marked `hold` until a reviewer
    /// decides; keeps a preview for one marked `review` (answered, reviewed after).
    pub async fn hold(
        &self,
        ex: &mut Exchange,
        route: &RouteRuntime,
        req: &RequestParts,
        audit: &AuditStage,
    ) -> Result<(), RequestError> {
        let Some(o) = &self.oversight else { return Ok(()) };
        let Some(mark) = ex.stash.get_mut::<ReviewMark>() else {
            return Ok(());
        };
        let body = match &req.body {
            RequestBody::Buffered(b) => Some(b.clone()),
            RequestBody::Streaming(_) => None,
        };
        mark.preview = body.as_deref().and_then(preview);
        if !mark.hold {
            return Ok(());
        }
        let Some(mark) = ex.stash.take::<ReviewMark>() else {
            return Ok(());
        };
        let subject = audit.subject(ex, &req.head.headers);
        let mut item = self.item(o, ex, route, Mode::Hold, mark);
        item.subject.clone_from(&subject);
        let capture = match (subject, body) {
            (Some(subject), Some(body)) if audit.captures(route) => {
                let limit = audit.capture_limit();
                Some(rampart_audit_store::payload::Capture {
                    subject,
                    request: body[..body.len().min(limit)].to_vec(),
                    response: Vec::new(),
                    truncated: body.len() > limit,
                    limit,
                })
            }
            _ => None,
        };
        match o.hold(item, capture).await {
            Held::Go => Ok(()),
            Held::Refuse(e) => {
                ex.decide(Decision::Block);
                Err(e)
            }
        }
    }

    /// Completion: queues an exchange marked `review` for a reviewer after the fact.
    pub fn on_complete(&self, ex: &mut Exchange, route: Option<&RouteRuntime>, audit: &AuditStage) {
        let (Some(o), Some(route)) = (&self.oversight, route) else {
            return;
        };
        let Some(mark) = ex.stash.take::<ReviewMark>() else {
            return;
        };
        if !mark.after {
            return;
        }
        let capture = ex
            .stash
            .get::<crate::audit::AuditState>()
            .and_then(|s| s.capture.clone());
        let mut item = self.item(o, ex, route, Mode::After, mark);
        // Marked after the request stages (a response rule, a detector): the preview
        // comes from the captured request, when there is one.
        if item.preview.is_none() {
            item.preview = capture.as_ref().and_then(|c| preview(&c.request));
        }
        item.subject = capture
            .as_ref()
            .map(|c| c.subject.clone())
            .or_else(|| audit.subject(ex, &http::HeaderMap::new()));
        if !o.after(item, capture) {
            tracing::warn!(request_id = %ex.request_id, "review queue writer is behind: an exchange was not queued for review");
        }
    }
}

impl Stage for OversightStage {
    const NAME: &'static str = "oversight";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, _req: &mut RequestParts) -> Flow {
        let Some(o) = &self.oversight else {
            return Flow::Continue;
        };
        match o.refusal(&target(ex, route)) {
            Some(e) => Flow::Reject(e),
            None => Flow::Continue,
        }
    }
}
