//! Human oversight state (EU AI Act Art. 14): what operators decided about a running
//! gateway, kept where every node can read it and a restart cannot lose it.
//!
//! - [`Stop`]: a stop switch on the whole gateway, a route, a model or a tenant, with
//!   who set it, why, and an optional planned end.
//! - [`ReviewItem`]: an exchange a policy sent to people — held before it reaches the
//!   model, or answered and queued for a decision after the fact — and the decision.
//! - [`Incident`]: a serious-incident record with the Art. 73 reporting deadline.
//!
//! [`store::Store`] keeps them in a local journal file (one node, nothing to install)
//! or in PostgreSQL (a fleet). This crate owns the data and its persistence only: it
//! never sees a request, never decides what is reviewed, and never renders anything.

pub mod store;

use serde::{Deserialize, Serialize};

/// What a stop switch covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Every route of the gateway.
    Gateway,
    /// One route, by name.
    Route(String),
    /// Requests naming this model (OpenAI `model`, the KServe model in the path).
    Model(String),
    /// Routes owned by this tenant and callers belonging to it.
    Tenant(String),
    /// One caller (its authenticated subject): a reviewer's block. Refused with 403,
    /// not 503: the service runs, this caller may not use it.
    Principal(String),
}

impl Scope {
    /// `gateway`, `route:NAME`, `model:NAME` or `tenant:NAME`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "gateway" {
            return Ok(Self::Gateway);
        }
        let (kind, name) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}`: a scope is `gateway`, `route:NAME`, `model:NAME` or `tenant:NAME`"))?;
        if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
            return Err(format!("`{text}`: the name must be 1 to 256 printable characters"));
        }
        let name = name.to_owned();
        match kind {
            "route" => Ok(Self::Route(name)),
            "model" => Ok(Self::Model(name)),
            "tenant" => Ok(Self::Tenant(name)),
            "principal" => Ok(Self::Principal(name)),
            _ => Err(format!(
                "`{text}`: unknown scope kind `{kind}` (gateway, route, model, tenant or principal)"
            )),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Route(_) => "route",
            Self::Model(_) => "model",
            Self::Tenant(_) => "tenant",
            Self::Principal(_) => "principal",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Gateway => f.write_str("gateway"),
            Self::Route(n) => write!(f, "route:{n}"),
            Self::Model(n) => write!(f, "model:{n}"),
            Self::Tenant(n) => write!(f, "tenant:{n}"),
            Self::Principal(n) => write!(f, "principal:{n}"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Scope::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What an exchange is, for matching it against stop switches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub route: Option<&'a str>,
    /// The tenant that owns the route.
    pub route_tenant: Option<&'a str>,
    /// The caller's tenant (known after authentication).
    pub caller_tenant: Option<&'a str>,
    pub model: Option<&'a str>,
    /// The caller's subject (known after authentication).
    pub principal: Option<&'a str>,
}

/// One stop switch in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    pub scope: Scope,
    /// Why, in the operator's words (shown to operators and in the audit trail, never
    /// to clients).
    pub reason: String,
    /// Who set it: the principal's subject (and key id).
    pub by: String,
    /// Unix seconds.
    pub at: i64,
    /// Planned end (unix seconds): clients get `Retry-After`, and the stop lifts itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// Event streams in flight were ended when the stop was set (otherwise they were
    /// left to finish).
    #[serde(default)]
    pub cut_streams: bool,
}

impl Stop {
    pub fn covers(&self, t: &Target<'_>) -> bool {
        match &self.scope {
            Scope::Gateway => true,
            Scope::Route(n) => t.route == Some(n.as_str()),
            Scope::Model(n) => t.model == Some(n.as_str()),
            Scope::Tenant(n) => t.route_tenant == Some(n.as_str()) || t.caller_tenant == Some(n.as_str()),
            Scope::Principal(n) => t.principal == Some(n.as_str()),
        }
    }

    /// Whether the planned end has passed at `now`.
    pub fn expired(&self, now: i64) -> bool {
        self.until.is_some_and(|u| u <= now)
    }
}

/// Hold the request until a reviewer decides, or answer it and review afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Hold,
    After,
}

/// Where a review item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a reviewer.
    Pending,
    /// Held: sent on to the model.
    Approved,
    /// Held: refused; the client got an error.
    Rejected,
    /// Held: nobody decided in time; the route's timeout rule applied.
    Expired,
    /// After the fact: the answer was acceptable.
    Acceptable,
    /// After the fact: the answer was not acceptable.
    Unacceptable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Expired => "expired",
            Self::Acceptable => "acceptable",
            Self::Unacceptable => "unacceptable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "pending" => Self::Pending,
            "approved" | "approve" => Self::Approved,
            "rejected" | "reject" => Self::Rejected,
            "expired" => Self::Expired,
            "acceptable" => Self::Acceptable,
            "unacceptable" => Self::Unacceptable,
            _ => return None,
        })
    }

    /// Whether a reviewer may give this decision to an item of `mode`.
    pub fn decides(self, mode: Mode) -> bool {
        matches!(
            (mode, self),
            (Mode::Hold, Self::Approved | Self::Rejected) | (Mode::After, Self::Acceptable | Self::Unacceptable)
        )
    }
}

/// Why an exchange was sent for review: a finding kind and its score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// A finding kind (`pii.email`, `injection`) or a detector (`extraction_ood`).
    pub kind: String,
    pub score: f32,
}

/// One exchange sent to reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: String,
    pub mode: Mode,
    pub status: Status,
    /// Unix seconds.
    pub created: i64,
    pub node: String,
    pub request_id: String,
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The caller: subject, key id and tenant as authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub reasons: Vec<Reason>,
    /// Every finding kind of the exchange (not only those that asked for review).
    #[serde(default)]
    pub findings: Vec<String>,
    /// The data subject's pseudonym, when a payload was captured: erasure clears the
    /// item's preview and destroys the key its sealed payload needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The captured payload, encrypted with the subject's key (the audit trail's
    /// payload keys): base64 of the sealed record; only a reviewer allowed to read
    /// payloads gets it opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<serde_json::Value>,
    /// The request text with every detected value replaced by its kind's tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The reviewer blocked the caller's key when deciding.
    #[serde(default)]
    pub blocked_principal: bool,
}

/// A decision on a review item.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub status: Status,
    pub by: String,
    pub at: i64,
    pub note: Option<String>,
    pub block_principal: bool,
}

impl ReviewItem {
    pub fn apply(&mut self, d: &Decision) {
        self.status = d.status;
        self.decided_by = Some(d.by.clone());
        self.decided_at = Some(d.at);
        self.note.clone_from(&d.note);
        self.blocked_principal = d.block_principal;
    }
}

/// Why a decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecideError {
    NotFound,
    /// Someone decided first (or it expired): the item is no longer pending.
    AlreadyDecided(Status),
    /// The decision does not fit the item's mode (approve an after-the-fact item).
    WrongMode,
    Store(String),
}

impl std::fmt::Display for DecideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound => f.write_str("no such review item"),
            Self::AlreadyDecided(s) => write!(f, "the item was already decided: {}", s.as_str()),
            Self::WrongMode => f.write_str(
                "held items are approved or rejected; items reviewed after the fact are acceptable or unacceptable",
            ),
            Self::Store(e) => write!(f, "the review store failed: {e}"),
        }
    }
}

/// Serious-incident kinds with the AI Act Art. 73 reporting deadline (days from the
/// provider becoming aware).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Art. 73(2): any serious incident — 15 days.
    Serious,
    /// Art. 73(4): serious and irreversible disruption of critical infrastructure or a
    /// widespread infringement — 2 days.
    Widespread,
    /// Art. 73(4): death of a person — 10 days.
    Death,
}

impl Severity {
    pub fn deadline_days(self) -> i64 {
        match self {
            Self::Serious => 15,
            Self::Death => 10,
            Self::Widespread => 2,
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "serious" => Self::Serious,
            "widespread" => Self::Widespread,
            "death" => Self::Death,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serious => "serious",
            Self::Widespread => "widespread",
            Self::Death => "death",
        }
    }
}

/// A serious-incident record (Art. 73): opened from an alert, an exchange or a review
/// item; the report is due `deadline_days` after `aware`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    pub severity: Severity,
    pub title: String,
    /// What it was opened from: `alert:<id>`, `exchange:<request id>`, `review:<id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub opened_by: String,
    /// Unix seconds when the provider became aware (the clock starts here).
    pub aware: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<i64>,
}

impl Incident {
    /// Unix seconds by which the authority must have the report.
    pub fn due(&self) -> i64 {
        self.aware + self.severity.deadline_days() * 86_400
    }
}

/// A random identifier: 16 hex digits.
pub fn new_id() -> String {
    use ring::rand::SecureRandom;
    use std::fmt::Write;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // Never seen on Linux; still unique within this process.
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes = (n ^ rampart_identity::time::now().unsigned_abs().rotate_left(32)).to_be_bytes();
    }
    bytes.iter().fold(String::with_capacity(16), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_reject_nonsense() {
        for s in [
            "gateway",
            "route:chat",
            "model:gpt-4o-mini",
            "tenant:acme",
            "principal:key:abc",
        ] {
            assert_eq!(Scope::parse(s).map(|x| x.to_string()).as_deref(), Ok(s));
        }
        for bad in ["", "route", "route:", "node:x", "gateways", "model:a\nb"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_stop_covers_only_its_scope() {
        let stop = |scope: &str| Stop {
            scope: Scope::parse(scope).unwrap_or(Scope::Gateway),
            reason: String::new(),
            by: String::new(),
            at: 0,
            until: None,
            cut_streams: false,
        };
        let t = Target {
            route: Some("chat"),
            route_tenant: None,
            caller_tenant: Some("acme"),
            model: Some("m1"),
            principal: Some("bob"),
        };
        assert!(stop("principal:bob").covers(&t));
        assert!(!stop("principal:bo").covers(&t));
        assert!(stop("gateway").covers(&t));
        assert!(stop("route:chat").covers(&t));
        assert!(!stop("route:chat2").covers(&t));
        assert!(stop("model:m1").covers(&t));
        assert!(!stop("model:m").covers(&t));
        assert!(stop("tenant:acme").covers(&t));
        assert!(!stop("tenant:other").covers(&t));
        let owned = Target {
            route_tenant: Some("other"),
            ..t
        };
        assert!(stop("tenant:other").covers(&owned));
    }

    #[test]
    fn decisions_fit_the_mode() {
        assert!(Status::Approved.decides(Mode::Hold));
        assert!(!Status::Approved.decides(Mode::After));
        assert!(Status::Unacceptable.decides(Mode::After));
        assert!(!Status::Pending.decides(Mode::Hold));
        assert!(!Status::Expired.decides(Mode::Hold));
    }

    #[test]
    fn deadlines_follow_article_73() {
        let i = Incident {
            id: new_id(),
            severity: Severity::Widespread,
            title: "t".into(),
            source: None,
            opened_by: "ops".into(),
            aware: 1000,
            reported: None,
            closed: None,
        };
        assert_eq!(i.due(), 1000 + 2 * 86_400);
        assert_eq!(Severity::Death.deadline_days(), 10);
        assert_eq!(Severity::Serious.deadline_days(), 15);
        assert_eq!(i.id.len(), 16);
        assert_ne!(new_id(), new_id());
    }
}
