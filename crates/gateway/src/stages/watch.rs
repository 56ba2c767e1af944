//! Watch: the detectors in the request path (`[watch]`, `[routes.watch]`; the
//! statistics are `rampart_watch`'s, the state `crate::watch`'s) and what their policy
//! does about a signal.
//!
//! - Admission (before identify): a client address under a penalty is refused — 403
//!   `principal_blocked` or, beyond the throttle rate, 429 `principal_throttled`.
//! - Request (after validate): the same for the identified principal; then, on
//!   classifier routes with a reference, the request's feature rows feed the
//!   extraction and out-of-distribution detectors and the input drift window.
//! - Answers (whole bodies, through `handle`, after `output`): the probability rows as
//!   the model gave them, before hardening, feed the boundary detector and the output
//!   drift window (routes with `[routes.output]`, which says where the rows are).
//! - Completion: the exchange's status, decision and (on routes that count them) LLM
//!   tokens feed the behaviour detectors.
//!
//! Every signal becomes a finding on the exchange (`watch.<detector>`) and a count in
//! `rampart_detections_total`; the route's or `[watch]`'s action for the detector then
//! alerts (`crate::alerts`), throttles or blocks the principal for the penalty period
//! — a block refuses the request that tipped it when it can still be refused. `review`
//! alerts and queues the exchange for a reviewer after the fact (`crate::oversight`).

use std::sync::Arc;

use rampart_config::Protocol;
use rampart_watch::behaviour::Penalty;
use rampart_watch::signal::{Action, Detector, Signal};

use crate::alerts::Alert;
use crate::context::{Decision, Exchange, Finding, Location};
use crate::error::RequestError;
use crate::route::RouteRuntime;
use crate::stage::{Flow, RequestParts, Stage};
use crate::watch::{AnswerRows, Shared};

#[derive(Debug, Default)]
pub struct WatchStage {
    shared: Option<Arc<Shared>>,
}

fn now() -> u64 {
    u64::try_from(rampart_identity::time::now()).unwrap_or(0)
}

impl WatchStage {
    pub fn new(shared: Option<Arc<Shared>>) -> Self {
        Self { shared }
    }

    /// The penalties table's verdict for the key `key` makes; the key is only built when
    /// some penalty is in force (the common case pays one lock and no allocation).
    fn check(&self, key: impl FnOnce() -> String) -> Result<(), RequestError> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let Ok(mut penalties) = shared.penalties.lock() else {
            return Ok(());
        };
        if penalties.is_empty() {
            return Ok(());
        }
        penalties.check(&key(), now()).map_err(|r| match r.penalty {
            Penalty::Block => RequestError::PrincipalBlocked {
                retry_after: r.retry_after,
            },
            Penalty::Throttle => RequestError::PrincipalThrottled {
                retry_after: r.retry_after,
            },
        })
    }

    /// Before identify: the client address's penalty.
    pub fn admit(&self, ex: &Exchange) -> Result<(), RequestError> {
        self.check(|| format!("ip:{}", ex.client_ip))
    }

    /// The action a route (or `[watch]`) takes on `detector`.
    fn action(shared: &Shared, route: Option<&RouteRuntime>, detector: Detector) -> Action {
        let rw = route.and_then(|r| r.watch.as_ref()).map(|w| &w.config);
        match detector {
            Detector::ExtractionSpacing | Detector::ExtractionOod | Detector::ExtractionBoundary => {
                rw.map_or(Action::Alert, |w| w.on_extraction)
            }
            Detector::OutOfDistribution => rw.map_or(Action::Record, |w| w.on_out_of_distribution),
            Detector::DriftInput | Detector::DriftOutput => rw.map_or(Action::Alert, |w| w.on_drift),
            Detector::RateSpike => shared.config.as_ref().map_or(Action::Alert, |w| w.rate_spike),
            Detector::TokenSpike => shared.config.as_ref().map_or(Action::Alert, |w| w.token_spike),
            Detector::DeniedBurst => shared.config.as_ref().map_or(Action::Alert, |w| w.denied_burst),
            Detector::Refusals => shared.config.as_ref().map_or(Action::Alert, |w| w.refusals),
        }
    }

    /// Acts on what the detectors reported; `Err` when the exchange must be refused
    /// (only while it still can be: `refusable`).
    fn act(
        &self,
        ex: &mut Exchange,
        route: Option<&RouteRuntime>,
        signals: Vec<Signal>,
        location: Location,
        refusable: bool,
    ) -> Result<(), RequestError> {
        let Some(shared) = &self.shared else { return Ok(()) };
        let mut refuse = None;
        for s in signals {
            let action = Self::action(shared, route, s.detector);
            shared.metrics.detection(s.detector.as_str(), action.as_str());
            #[allow(clippy::cast_possible_truncation)] // a confidence in [0, 1]
            let confidence = (s.score / 2.0).clamp(0.5, 1.0) as f32;
            if !ex.findings.iter().any(|f| f.kind == s.detector.finding()) {
                ex.add_finding(
                    Finding {
                        kind: s.detector.finding(),
                        confidence,
                        location,
                        span: None,
                    },
                    Decision::Flag,
                );
            }
            let key = s.detector.per_principal().then(|| ex.principal_key());
            if action.alerts() {
                let principal = ex
                    .principal
                    .as_ref()
                    .filter(|p| p.credential != rampart_identity::Credential::Anonymous);
                shared.alerts.raise(Alert {
                    detector: s.detector,
                    action,
                    score: s.score,
                    reason: s.reason,
                    route: ex.route.clone(),
                    principal: key.clone(),
                    key_id: principal.and_then(|p| p.key_id.clone()),
                    tenant: principal.and_then(|p| p.tenant.clone()),
                    request_id: ex.request_id.clone(),
                });
            }
            if action == Action::Review {
                crate::oversight::mark(ex, rampart_oversight::Mode::After, s.detector.finding(), confidence);
            }
            let penalty = match action {
                Action::Block => Some(Penalty::Block),
                Action::Throttle => Some(Penalty::Throttle),
                _ => None,
            };
            if let (Some(penalty), Some(key)) = (penalty, key) {
                shared.impose(&key, penalty, now() + shared.penalty_secs);
                if penalty == Penalty::Block && refusable {
                    refuse = Some(RequestError::PrincipalBlocked {
                        retry_after: shared.penalty_secs,
                    });
                }
            }
        }
        match refuse {
            Some(e) => {
                ex.decide(Decision::Block);
                Err(e)
            }
            None => Ok(()),
        }
    }

    /// Answers (before hardening) the output stage read for the detectors.
    pub fn on_answers(&self, ex: &mut Exchange, route: &RouteRuntime) -> Result<(), RequestError> {
        let (Some(watch), Some(AnswerRows(rows))) = (&route.watch, ex.stash.take::<AnswerRows>()) else {
            return Ok(());
        };
        let mut signals = Vec::new();
        watch.observe_answers(&ex.principal_key(), now(), &rows, &mut signals);
        self.act(ex, Some(route), signals, Location::ResponseBody, true)
    }

    /// Completion: the behaviour detectors (and an LLM route's outcome drift) see how
    /// the exchange ended.
    pub fn on_complete(&self, ex: &mut Exchange, route: Option<&RouteRuntime>) {
        if self.shared.is_none() {
            return;
        }
        if matches!(
            ex.error,
            Some(RequestError::PrincipalBlocked { .. } | RequestError::PrincipalThrottled { .. })
        ) {
            // Refused for a penalty already imposed: not new behaviour to judge (a
            // blocked client retrying must not keep extending its own block).
            return;
        }
        let status = ex.status.map_or(0, |s| s.as_u16());
        // Refused by a content or protocol policy (denials have their own detector).
        let refused = matches!(
            ex.error,
            Some(
                RequestError::ContentBlocked { .. }
                    | RequestError::ResponseBlocked { .. }
                    | RequestError::InvalidRequest { .. }
            )
        );
        let mut signals = Vec::new();
        if let Some(watch) = route.and_then(|r| r.watch.as_ref()).filter(|w| w.watches_prompts()) {
            watch.observe_outcome(refused, status, &mut signals);
        }
        if let Some(shared) = &self.shared
            && let Some(behaviour) = &shared.behaviour
            && let Ok(mut b) = behaviour.lock()
        {
            // LLM tokens, on routes that count them (token limits): the answer's usage,
            // or the prompt's count when none came back.
            let tokens = ex
                .stash
                .get::<rampart_limits::TokenAccount>()
                .map(|a| a.usage.unwrap_or(a.prompt_estimate));
            b.observe(&ex.principal_key(), now(), status, refused, tokens, &mut signals);
        }
        if !signals.is_empty() {
            // The exchange is over: penalties apply from the next request on.
            let _ = self.act(ex, route, signals, Location::RequestHeaders, false);
        }
    }
}

/// The text of an OpenAI request a prompt-drift row is made of: every message's text
/// (string contents and text parts), `prompt` and `input` strings, up to 64 KiB.
fn prompt_text(body: &serde_json::Value) -> String {
    use serde_json::Value;
    const MAX: usize = 64 * 1024;
    let mut out = String::new();
    let mut push = |s: &str| {
        if out.len() < MAX {
            out.push_str(&s[..s.floor_char_boundary(MAX - out.len())]);
            out.push('\n');
        }
    };
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            Value::Object(o) => {
                if let Some(Value::String(t)) = o.get("text") {
                    out.push(t);
                }
            }
            _ => {}
        }
    }
    let mut parts = Vec::new();
    for m in body.get("messages").and_then(Value::as_array).into_iter().flatten() {
        if let Some(c) = m.get("content") {
            strings(c, &mut parts);
        }
    }
    for key in ["prompt", "input"] {
        if let Some(v) = body.get(key) {
            strings(v, &mut parts);
        }
    }
    for p in parts {
        push(p);
    }
    out
}

impl Stage for WatchStage {
    const NAME: &'static str = "watch";

    async fn on_request(&self, ex: &mut Exchange, route: &RouteRuntime, _req: &mut RequestParts) -> Flow {
        if self.shared.is_none() {
            return Flow::Continue;
        }
        if ex
            .principal
            .as_ref()
            .is_some_and(|p| p.credential != rampart_identity::Credential::Anonymous)
            && let Err(e) = self.check(|| ex.principal_key())
        {
            ex.decide(Decision::Block);
            return Flow::Reject(e);
        }
        if let Some(watch) = route.watch.as_ref().filter(|w| w.watches_prompts()) {
            let text = ex.body_json.as_ref().map(prompt_text).unwrap_or_default();
            let mut signals = Vec::new();
            watch.observe_prompt(&text, &mut signals);
            return match self.act(ex, Some(route), signals, Location::RequestBody, true) {
                Ok(()) => Flow::Continue,
                Err(e) => Flow::Reject(e),
            };
        }
        let Some(watch) = route.watch.as_ref().filter(|w| w.reads_inputs()) else {
            return Flow::Continue;
        };
        let Some(body) = ex.body_json.as_mut() else {
            return Flow::Continue;
        };
        let rows = match (route.config.protocol, &watch.config.path) {
            (Protocol::Json, Some(path)) => rampart_watch::tensor::json_rows(body, path),
            _ => rampart_watch::tensor::kserve_input_rows(body, watch.config.input.as_deref()),
        };
        // A request whose features cannot be read is the model's to refuse; the
        // detectors only see what they can read.
        let Ok(rows) = rows else { return Flow::Continue };
        let mut signals = Vec::new();
        watch.observe_inputs(&ex.principal_key(), now(), &rows, &mut signals);
        match self.act(ex, Some(route), signals, Location::RequestBody, true) {
            Ok(()) => Flow::Continue,
            Err(e) => Flow::Reject(e),
        }
    }
}
