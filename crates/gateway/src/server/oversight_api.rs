//! The oversight part of the admin API (JSON in, JSON out):
//!
//! | method and path | who (actions any of) | what |
//! |---|---|---|
//! | `GET /admin/stops` | metrics, review, operate, admin | the stops in force |
//! | `POST /admin/stops` | operate, admin | set a stop: `{"scope", "reason", "until" or "for", "cut_streams"}` |
//! | `POST /admin/resume` | operate, admin | lift one: `{"scope", "reason"}` |
//! | `GET /admin/reviews?status=&limit=` | metrics, review, operate, admin | review items, newest first |
//! | `GET /admin/reviews/{id}` | metrics, review, operate, admin | one item; its payload opened for `audit-read` |
//! | `POST /admin/reviews/{id}` | review, admin | decide: `{"decision", "reason", "block_principal"}` |
//! | `GET /admin/incidents` | metrics, review, operate, admin | serious-incident records with their deadlines |
//! | `POST /admin/incidents` | operate, admin | open one: `{"title", "severity", "source", "aware"}` |
//! | `POST /admin/incidents/{id}` | operate, admin | `{"reported": true}` or `{"closed": true}` |
//!
//! Every change is an audit record naming the caller.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use rampart_identity::{Action, Principal};
use rampart_oversight::{DecideError, Decision, Scope, Status, Stop};
use serde_json::{Value, json};

use crate::oversight::Actor;
use crate::runtime::Gateway;
use crate::server::guard::{authorize, json as reply};

const VIEW: &[Action] = &[Action::Metrics, Action::Review, Action::Operate, Action::Admin];
const OPERATE: &[Action] = &[Action::Operate, Action::Admin];
const REVIEW: &[Action] = &[Action::Review, Action::Admin];

/// Longest free text (a reason, a note) kept.
const MAX_TEXT: usize = 1000;

/// A refusal on its way out (boxed: it travels through `Result`s).
type Refused = Box<Response<Full<Bytes>>>;

fn bad(code: &str, message: impl Into<String>) -> Refused {
    Box::new(reply(
        StatusCode::BAD_REQUEST,
        json!({"error": {"code": code, "message": message.into()}}),
    ))
}

fn unavailable(message: String) -> Response<Full<Bytes>> {
    reply(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({"error": {"code": "oversight_store_unavailable", "message": message}}),
    )
}

/// `subject` or `subject (key id)`.
pub fn actor_name(p: &Principal) -> String {
    match &p.key_id {
        Some(k) if *k != p.subject => format!("{} ({k})", p.subject),
        _ => p.subject.clone(),
    }
}

fn body_json(body: Option<&Bytes>) -> Result<serde_json::Map<String, Value>, Refused> {
    let Some(b) = body else {
        return Err(bad("invalid_request", "send a JSON object (at most 16 KiB)"));
    };
    match serde_json::from_slice::<Value>(b) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(bad(
            "invalid_request",
            "the body must be a JSON object (at most 16 KiB)",
        )),
    }
}

/// A free-text field: printable, at most [`MAX_TEXT`] characters.
fn text(m: &serde_json::Map<String, Value>, key: &str, required: bool) -> Result<Option<String>, Refused> {
    match m.get(key) {
        None | Some(Value::Null) if !required => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => {
            if s.chars().count() > MAX_TEXT {
                return Err(bad(
                    "invalid_request",
                    format!("`{key}` is longer than {MAX_TEXT} characters"),
                ));
            }
            Ok(Some(s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()))
        }
        _ => Err(bad(
            "invalid_request",
            format!("`{key}` is required: a non-empty string saying why"),
        )),
    }
}

/// The stop a `POST /admin/stops` body describes.
pub fn parse_stop(m: &serde_json::Map<String, Value>, by: String) -> Result<Stop, Refused> {
    let scope = match m.get("scope").and_then(Value::as_str).map(Scope::parse) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(bad("invalid_scope", e)),
        None => {
            return Err(bad(
                "invalid_scope",
                "`scope` is required: gateway, route:NAME, model:NAME, tenant:NAME or principal:SUBJECT",
            ));
        }
    };
    let reason = text(m, "reason", true)?.unwrap_or_default();
    let now = rampart_identity::time::now();
    let given = |k: &str| m.get(k).filter(|v| !v.is_null());
    let until = match (given("until"), given("for")) {
        (Some(_), Some(_)) => return Err(bad("invalid_request", "give `until` or `for`, not both")),
        (Some(Value::String(t)), None) => match rampart_identity::time::parse(t) {
            Some(u) if u > now => Some(u),
            Some(_) => return Err(bad("invalid_request", "`until` is in the past")),
            None => {
                return Err(bad(
                    "invalid_request",
                    "`until` must be an RFC 3339 time such as 2026-12-07T18:00:00Z",
                ));
            }
        },
        (None, Some(Value::String(d))) => match rampart_identity::time::parse_duration(d) {
            Some(s) if s > 0 => Some(now + s),
            _ => return Err(bad("invalid_request", "`for` must be a duration such as 30m or 2h")),
        },
        (None, None) => None,
        _ => return Err(bad("invalid_request", "`until` and `for` are strings")),
    };
    let cut_streams = match m.get("cut_streams") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("invalid_request", "`cut_streams` is true or false")),
    };
    Ok(Stop {
        scope,
        reason,
        by,
        at: now,
        until,
        cut_streams,
    })
}

pub(crate) fn stop_json(s: &Stop) -> Value {
    json!({
        "scope": s.scope.to_string(),
        "reason": s.reason,
        "by": s.by,
        "at": rampart_identity::time::format(s.at),
        "until": s.until.map(rampart_identity::time::format),
        "cut_streams": s.cut_streams,
    })
}

/// An item as a reviewer sees it: the sealed payload opened for callers that may read
/// payloads, removed otherwise (the redacted preview stays).
pub(crate) fn item_json(gateway: &Gateway, item: &rampart_oversight::ReviewItem, open: bool) -> Value {
    let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
    let sealed = v.as_object_mut().and_then(|o| o.remove("sealed"));
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "created".into(),
            Value::String(rampart_identity::time::format(item.created)),
        );
        if let Some(at) = item.decided_at {
            o.insert("decided_at".into(), Value::String(rampart_identity::time::format(at)));
        }
        o.insert("payload_captured".into(), Value::Bool(sealed.is_some()));
        if open && let Some(sealed) = sealed {
            o.insert("payload".into(), open_payload(gateway, item, &sealed));
        }
    }
    v
}

fn open_payload(gateway: &Gateway, item: &rampart_oversight::ReviewItem, sealed: &Value) -> Value {
    let Some(keys) = gateway.audit.as_ref().and_then(|a| a.keys.clone()) else {
        return Value::Null;
    };
    let Ok(sealed) = serde_json::from_value::<rampart_audit_store::payload::Sealed>(sealed.clone()) else {
        return Value::Null;
    };
    let aad = rampart_audit_store::payload::payload_aad(&item.node, &item.request_id);
    match keys.open(&sealed, &aad) {
        Ok(Some(plain)) => json!({
            "request": plain.request,
            "response": plain.response,
            "truncated": plain.truncated,
        }),
        // The subject's key was destroyed (erasure): nothing can be read.
        Ok(None) => json!({"erased": true}),
        Err(_) => Value::Null,
    }
}

fn query<'a>(uri: &'a http::Uri, key: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Whether `path` is one of this module's.
pub fn owns(path: &str) -> bool {
    matches!(path, "/admin/stops" | "/admin/resume")
        || path.starts_with("/admin/reviews")
        || path.starts_with("/admin/incidents")
}

pub(crate) fn incident_json(i: &rampart_oversight::Incident, now: i64) -> Value {
    let t = rampart_identity::time::format;
    json!({
        "id": i.id,
        "title": i.title,
        "severity": i.severity.as_str(),
        "deadline_days": i.severity.deadline_days(),
        "source": i.source,
        "opened_by": i.opened_by,
        "aware": t(i.aware),
        "due": t(i.due()),
        "seconds_left": if i.reported.is_some() || i.closed.is_some() { Value::Null } else { json!(i.due() - now) },
        "reported": i.reported.map(t),
        "closed": i.closed.map(t),
    })
}

async fn incidents(
    o: &crate::oversight::Oversight,
    method: &Method,
    path: &str,
    body: Option<&Bytes>,
    actor: &Actor,
) -> Response<Full<Bytes>> {
    let now = rampart_identity::time::now();
    match (method, path) {
        (&Method::GET, "/admin/incidents") => match o.incidents().await {
            Ok(list) => {
                let list: Vec<Value> = list.iter().map(|i| incident_json(i, now)).collect();
                reply(StatusCode::OK, json!({"incidents": list}))
            }
            Err(e) => unavailable(e),
        },
        (&Method::POST, "/admin/incidents") => {
            let m = match body_json(body) {
                Ok(m) => m,
                Err(r) => return *r,
            };
            let title = match text(&m, "title", true) {
                Ok(t) => t.unwrap_or_default(),
                Err(r) => return *r,
            };
            let severity = match m
                .get("severity")
                .and_then(Value::as_str)
                .map(rampart_oversight::Severity::parse)
            {
                None => rampart_oversight::Severity::Serious,
                Some(Some(s)) => s,
                Some(None) => {
                    return *bad(
                        "invalid_request",
                        "`severity` is serious (15 days), death (10 days) or widespread (2 days)",
                    );
                }
            };
            let source = match text(&m, "source", false) {
                Ok(s) => s,
                Err(r) => return *r,
            };
            let aware = match m.get("aware") {
                None | Some(Value::Null) => now,
                Some(Value::String(t)) => match rampart_identity::time::parse(t) {
                    Some(a) if a <= now => a,
                    _ => return *bad("invalid_request", "`aware` is an RFC 3339 time, not in the future"),
                },
                Some(_) => return *bad("invalid_request", "`aware` is an RFC 3339 time"),
            };
            let incident = rampart_oversight::Incident {
                id: rampart_oversight::new_id(),
                severity,
                title,
                source,
                opened_by: actor.name.clone(),
                aware,
                reported: None,
                closed: None,
            };
            match o.open_incident(incident.clone(), actor).await {
                Ok(()) => reply(StatusCode::CREATED, incident_json(&incident, now)),
                Err(e) => unavailable(e),
            }
        }
        (&Method::POST, p) => {
            let id = p.trim_start_matches("/admin/incidents/");
            let m = match body_json(body) {
                Ok(m) => m,
                Err(r) => return *r,
            };
            let flag = |k: &str| m.get(k).and_then(Value::as_bool).unwrap_or(false);
            let (reported, closed) = (flag("reported"), flag("closed"));
            if !reported && !closed {
                return *bad("invalid_request", "send {\"reported\": true} or {\"closed\": true}");
            }
            match o.update_incident(id, reported, closed, actor).await {
                Ok(Some(i)) => reply(StatusCode::OK, incident_json(&i, now)),
                Ok(None) => reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": {"code": "not_found", "message": "no such incident"}}),
                ),
                Err(e) => unavailable(e),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not_found", "message": "no such admin endpoint"}}),
        ),
    }
}

pub async fn handle(
    gateway: Arc<Gateway>,
    method: &Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: Option<Bytes>,
    via: &'static str,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    if !matches!(*method, Method::GET | Method::POST) {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": {"code": "method_not_allowed", "message": "method not allowed"}}),
        );
    }
    let needs = needs(method, path);
    let principal = match authorize(&gateway, headers, needs).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    handle_as(gateway, &principal, method, uri, body, via).await
}

/// The actions (any of) a request to `method path` needs.
pub fn needs(method: &Method, path: &str) -> &'static [Action] {
    match (method, path) {
        (&Method::POST, "/admin/stops" | "/admin/resume") => OPERATE,
        (&Method::POST, p) if p.starts_with("/admin/incidents") => OPERATE,
        (&Method::POST, _) => REVIEW,
        _ => VIEW,
    }
}

/// Serves a request for a caller already authenticated and authorized for
/// [`needs`] (the console comes through here with `via = "console"`).
pub async fn handle_as(
    gateway: Arc<Gateway>,
    principal: &Principal,
    method: &Method,
    uri: &http::Uri,
    body: Option<Bytes>,
    via: &'static str,
) -> Response<Full<Bytes>> {
    let path = uri.path();
    let actor = Actor {
        name: actor_name(principal),
        via,
    };
    let o = &gateway.oversight;
    if path.starts_with("/admin/incidents") {
        return incidents(o, method, path, body.as_ref(), &actor).await;
    }
    match (method, path) {
        (&Method::GET, "/admin/stops") => {
            let stops: Vec<Value> = o.stops().iter().map(stop_json).collect();
            reply(StatusCode::OK, json!({"stops": stops, "store": o.describe_store()}))
        }
        (&Method::POST, "/admin/stops") => {
            let stop = match body_json(body.as_ref()).and_then(|m| parse_stop(&m, actor.name.clone())) {
                Ok(s) => s,
                Err(r) => return *r,
            };
            let persisted = o.set_stop(stop.clone(), &actor).await;
            let mut v = stop_json(&stop);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("status".into(), Value::String("stopped".into()));
                obj.insert("persisted".into(), Value::Bool(persisted));
            }
            reply(StatusCode::OK, v)
        }
        (&Method::POST, "/admin/resume") => {
            let m = match body_json(body.as_ref()) {
                Ok(m) => m,
                Err(r) => return *r,
            };
            let scope = match m.get("scope").and_then(Value::as_str).map(Scope::parse) {
                Some(Ok(s)) => s,
                Some(Err(e)) => return *bad("invalid_scope", e),
                None => return *bad("invalid_scope", "`scope` is required"),
            };
            let reason = match text(&m, "reason", false) {
                Ok(r) => r,
                Err(r) => return *r,
            };
            match o.lift_stop(&scope, &actor, reason).await {
                Ok(Some(s)) => reply(
                    StatusCode::OK,
                    json!({"status": "resumed", "scope": s.scope.to_string()}),
                ),
                Ok(None) => reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": {"code": "not_stopped", "message": format!("no stop is in force on {scope}")}}),
                ),
                Err(e) => unavailable(e),
            }
        }
        (&Method::GET, "/admin/reviews") => {
            let status = match query(uri, "status") {
                None | Some("" | "all") => None,
                Some(s) => match Status::parse(s) {
                    Some(s) => Some(s),
                    None => return *bad("invalid_request", format!("unknown status `{s}`")),
                },
            };
            let limit = query(uri, "limit")
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(100)
                .min(1000);
            match o.reviews(status, limit).await {
                Ok(items) => {
                    let items: Vec<Value> = items.iter().map(|i| item_json(&gateway, i, false)).collect();
                    reply(StatusCode::OK, json!({"items": items, "held_here": o.held()}))
                }
                Err(e) => unavailable(e),
            }
        }
        (_, p) => {
            let id = p.trim_start_matches("/admin/reviews/");
            if id.is_empty() || id == p || id.contains('/') {
                return reply(
                    StatusCode::NOT_FOUND,
                    json!({"error": {"code": "not_found", "message": "no such admin endpoint"}}),
                );
            }
            if method == Method::GET {
                let rt = gateway.current();
                let open = rt.identity.policy.action(principal, Action::AuditRead).is_ok();
                return match o.review(id).await {
                    Ok(Some(item)) => reply(StatusCode::OK, item_json(&gateway, &item, open)),
                    Ok(None) => reply(
                        StatusCode::NOT_FOUND,
                        json!({"error": {"code": "not_found", "message": "no such review item"}}),
                    ),
                    Err(e) => unavailable(e),
                };
            }
            decide(&gateway, id, body.as_ref(), &actor).await
        }
    }
}

async fn decide(gateway: &Gateway, id: &str, body: Option<&Bytes>, actor: &Actor) -> Response<Full<Bytes>> {
    let m = match body_json(body) {
        Ok(m) => m,
        Err(r) => return *r,
    };
    let status = match m.get("decision").and_then(Value::as_str).and_then(Status::parse) {
        Some(s @ (Status::Approved | Status::Rejected | Status::Acceptable | Status::Unacceptable)) => s,
        _ => {
            return *bad(
                "invalid_request",
                "`decision` is approve or reject (held items), acceptable or unacceptable (after the fact)",
            );
        }
    };
    let block = match m.get("block_principal") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return *bad("invalid_request", "`block_principal` is true or false"),
    };
    // Refusing something, or blocking someone, needs a reason on the record.
    let note = match text(
        &m,
        "reason",
        block || matches!(status, Status::Rejected | Status::Unacceptable),
    ) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let o = &gateway.oversight;
    let decision = Decision {
        status,
        by: actor.name.clone(),
        at: rampart_identity::time::now(),
        note: note.clone(),
        block_principal: block,
    };
    match o.decide(id, decision, actor).await {
        Ok(item) => {
            if block && let Some(subject) = &item.principal {
                let stop = Stop {
                    scope: Scope::Principal(subject.clone()),
                    reason: note.unwrap_or_default(),
                    by: actor.name.clone(),
                    at: rampart_identity::time::now(),
                    until: None,
                    cut_streams: true,
                };
                o.set_stop(stop, actor).await;
            }
            reply(StatusCode::OK, item_json(gateway, &item, false))
        }
        Err(DecideError::NotFound) => reply(
            StatusCode::NOT_FOUND,
            json!({"error": {"code": "not_found", "message": "no such review item"}}),
        ),
        Err(e @ DecideError::AlreadyDecided(_)) => reply(
            StatusCode::CONFLICT,
            json!({"error": {"code": "already_decided", "message": e.to_string()}}),
        ),
        Err(e @ DecideError::WrongMode) => *bad("wrong_decision", e.to_string()),
        Err(DecideError::Store(e)) => unavailable(e),
    }
}
