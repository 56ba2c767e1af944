//! Alerts: what a detector's `alert` (or stronger) action produces, and where it goes.
//!
//! One alert per detector and principal (or route, for drift) per `alert_cooldown`, so
//! an attack gives an alert, not one per request. Each alert is
//!
//! - an `alert` record in the audit trail, chained like every other record, with the
//!   principal as a keyed pseudonym;
//! - a count in `rampart_alerts_total{detector,action}`;
//! - one ECS JSON line on standard output (`[watch] alert_log = true`), for SIEMs;
//! - a signed webhook (`[watch.webhook]`): the record as JSON, POSTed with
//!   `Rampart-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` —
//!   the receiver recomputes it with the shared secret and rejects stale timestamps.
//!   Deliveries wait in a bounded queue (full: the alert is dropped from the webhook
//!   and counted, never blocking traffic; the audit record still exists) and are
//!   retried with exponential back-off on network errors, 429 and 5xx.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ring::hmac;

use crate::audit::{AlertPrincipal, AlertRecord, AuditTrail};
use crate::error::InitError;
use crate::metrics::Metrics;

/// Header carrying the webhook signature.
pub const SIGNATURE_HEADER: &str = "rampart-signature";
/// First retry delay; doubled per attempt, capped at [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Cooldown entries kept before old ones are swept.
const MAX_COOLDOWNS: usize = 50_000;

/// What a detector asks to be alerted.
#[derive(Debug, Clone)]
pub struct Alert {
    pub detector: rampart_watch::signal::Detector,
    pub action: rampart_watch::signal::Action,
    pub score: f64,
    pub reason: String,
    pub route: Option<Arc<str>>,
    /// The principal's key (`sub:…` or `ip:…`) for per-principal detectors.
    pub principal: Option<String>,
    pub key_id: Option<String>,
    pub tenant: Option<String>,
    pub request_id: String,
}

type WebhookClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub struct Alerts {
    node: Arc<str>,
    audit: Option<Arc<AuditTrail>>,
    metrics: Arc<Metrics>,
    cooldown: u64,
    last: Mutex<HashMap<(&'static str, String), u64>>,
    seq: AtomicU64,
    /// Pseudonyms when there is no audit trail (per process).
    pseudonym_key: hmac::Key,
    log: Option<std::sync::mpsc::SyncSender<crate::stages::access_log::Message>>,
    webhook: Option<tokio::sync::mpsc::Sender<Bytes>>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl Alerts {
    /// Builds the alert sinks and starts the webhook sender (it ends when the alerts
    /// are dropped, on reload, after its queue drains).
    pub fn start(
        config: &rampart_config::Watch,
        node: &str,
        audit: Option<Arc<AuditTrail>>,
        metrics: Arc<Metrics>,
        log: std::sync::mpsc::SyncSender<crate::stages::access_log::Message>,
    ) -> Result<Self, InitError> {
        let rng = ring::rand::SystemRandom::new();
        let pseudonym_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng)
            .map_err(|_| InitError::Keys("no system randomness for alert pseudonyms".to_owned()))?;
        let webhook = match &config.webhook {
            None => None,
            Some(w) => {
                let tls = crate::server::tls::client_config("watch.webhook", &rampart_config::UpstreamTls::default())?;
                let mut http = HttpConnector::new();
                http.enforce_http(false);
                http.set_connect_timeout(Some(w.timeout));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                let client: WebhookClient = Client::builder(TokioExecutor::new()).build(connector);
                let (tx, rx) = tokio::sync::mpsc::channel(w.queue);
                let key = hmac::Key::new(hmac::HMAC_SHA256, w.secret.expose().as_bytes());
                #[allow(clippy::disallowed_methods)] // ends when every sender (these alerts) is dropped
                tokio::spawn(deliver(rx, client, w.clone(), key, Arc::clone(&metrics)));
                Some(tx)
            }
        };
        Ok(Self {
            node: Arc::from(node),
            audit,
            metrics,
            cooldown: config.alert_cooldown.as_secs(),
            last: Mutex::new(HashMap::new()),
            seq: AtomicU64::new(0),
            pseudonym_key,
            log: config.alert_log.then_some(log),
            webhook,
        })
    }

    fn pseudonym(&self, value: &str) -> String {
        match &self.audit {
            Some(a) => a.pseudonym(value),
            None => crate::audit::keyed_pseudonym(&self.pseudonym_key, value),
        }
    }

    /// Whether this detector may alert about this principal (or route) now; starts
    /// its cooldown when it may.
    fn due(&self, detector: &'static str, who: String, now: u64) -> bool {
        let Ok(mut last) = self.last.lock() else { return true };
        if last.len() >= MAX_COOLDOWNS {
            let cooldown = self.cooldown;
            last.retain(|_, t| *t + cooldown > now);
            if last.len() >= MAX_COOLDOWNS {
                // Still full of live cooldowns (many principals alerting at once): forget
                // them rather than grow — the cost is a repeated alert, never memory.
                last.clear();
            }
        }
        match last.get(&(detector, who.clone())) {
            Some(t) if *t + self.cooldown > now => false,
            _ => {
                last.insert((detector, who), now);
                true
            }
        }
    }

    /// Raises an alert unless one is cooling down; returns whether it was raised.
    pub fn raise(&self, alert: Alert) -> bool {
        let now = u64::try_from(rampart_identity::time::now()).unwrap_or(0);
        let who = alert
            .principal
            .clone()
            .or_else(|| alert.route.as_deref().map(|r| format!("route:{r}")))
            .unwrap_or_default();
        if !self.due(alert.detector.as_str(), who, now) {
            return false;
        }
        self.metrics.alert(alert.detector.as_str(), alert.action.as_str());
        let principal = alert.principal.as_deref().map(|p| {
            let (kind, value) = match p.split_once(':') {
                Some(("ip", v)) => ("address", v),
                Some((_, v)) => ("subject", v.rsplit_once('/').map_or(v, |(_, s)| s)),
                None => ("subject", p),
            };
            AlertPrincipal {
                id: self.pseudonym(value),
                kind,
                key_id: alert.key_id.clone(),
                tenant: alert.tenant.clone(),
            }
        });
        let record = AlertRecord {
            v: crate::audit::SCHEMA,
            time: rampart_identity::time::format_micros(std::time::SystemTime::now()),
            node: Arc::clone(&self.node),
            id: format!("{}-{:x}", self.node, self.seq.fetch_add(1, Ordering::Relaxed)),
            detector: alert.detector.as_str(),
            action: alert.action.as_str(),
            score: (alert.score * 1000.0).round() / 1000.0,
            reason: alert.reason,
            route: alert.route,
            principal,
            request_id: alert.request_id,
        };
        tracing::warn!(
            event = "alert",
            detector = record.detector,
            action = record.action,
            route = record.route.as_deref().unwrap_or(""),
            reason = %record.reason,
            "a detector raised an alert"
        );
        if let Some(log) = &self.log {
            let mut line = serde_json::to_vec(&ecs(&record)).unwrap_or_default();
            line.push(b'\n');
            if log.try_send(crate::stages::access_log::Message::Line(line)).is_err() {
                self.metrics.access_log_dropped();
            }
        }
        if let Some(tx) = &self.webhook {
            let mut body = serde_json::to_value(&record).unwrap_or_default();
            body["type"] = serde_json::Value::from("alert");
            let sent = serde_json::to_vec(&body).is_ok_and(|b| tx.try_send(Bytes::from(b)).is_ok());
            if !sent {
                self.metrics.alert_delivery("dropped");
            }
        }
        remember(&record);
        if let Some(audit) = &self.audit {
            audit.alert(record);
        }
        true
    }
}

/// Alerts the console lists (this node's, newest last).
const RECENT: usize = 200;

static RECENT_ALERTS: std::sync::Mutex<std::collections::VecDeque<serde_json::Value>> =
    std::sync::Mutex::new(std::collections::VecDeque::new());

fn remember(r: &AlertRecord) {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    // The console shows the key id, never the principal's pseudonym input.
    if let Some(key) = r.principal.as_ref().and_then(|p| p.key_id.clone()) {
        v["key_id"] = serde_json::Value::from(key);
    }
    let mut recent = RECENT_ALERTS.lock().unwrap_or_else(|p| p.into_inner());
    if recent.len() >= RECENT {
        recent.pop_front();
    }
    recent.push_back(v);
}

/// This node's most recent alerts, newest first (they outlive reloads, not restarts;
/// the audit trail keeps them all).
pub fn recent() -> Vec<serde_json::Value> {
    RECENT_ALERTS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .cloned()
        .collect()
}

/// The alert as an ECS event (`event.kind = "alert"`).
fn ecs(r: &AlertRecord) -> serde_json::Value {
    serde_json::json!({
        "@timestamp": r.time,
        "ecs": {"version": "8.11.0"},
        "event": {
            "kind": "alert",
            "category": ["intrusion_detection"],
            "type": ["indicator"],
            "action": r.action,
            "id": r.id,
            "reason": r.reason,
            "risk_score": (r.score * 50.0).min(100.0),
            "dataset": "rampart.alert",
            "module": "rampart",
        },
        "rule": {"name": r.detector, "ruleset": "rampart.watch"},
        "service": {"node": {"name": &*r.node}, "type": "rampart"},
        "user": {"id": r.principal.as_ref().map(|p| p.id.clone())},
        "organization": {"id": r.principal.as_ref().and_then(|p| p.tenant.clone())},
        "http": {"request": {"id": r.request_id}},
        "rampart": {"route": r.route.as_deref(), "key_id": r.principal.as_ref().and_then(|p| p.key_id.clone())},
    })
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256 over "<t>.<body>">`.
pub fn signature(key: &hmac::Key, t: u64, body: &[u8]) -> String {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(t.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("t={t},v1={}", crate::audit::hex(ctx.sign().as_ref()))
}

/// The webhook sender: one delivery at a time, in order, each retried with back-off.
async fn deliver(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    client: WebhookClient,
    config: rampart_config::Webhook,
    key: hmac::Key,
    metrics: Arc<Metrics>,
) {
    while let Some(body) = rx.recv().await {
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let t = u64::try_from(rampart_identity::time::now()).unwrap_or(0);
            let request = http::Request::post(config.url.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::USER_AGENT, concat!("rampart/", env!("CARGO_PKG_VERSION")))
                .header(SIGNATURE_HEADER, signature(&key, t, &body))
                .body(Full::new(body.clone()));
            let Ok(request) = request else {
                metrics.alert_delivery("failed");
                break;
            };
            let outcome = tokio::time::timeout(config.timeout, client.request(request)).await;
            let retry = match outcome {
                Ok(Ok(resp)) if resp.status().is_success() => {
                    metrics.alert_delivery("delivered");
                    break;
                }
                Ok(Ok(resp)) => resp.status().is_server_error() || resp.status() == http::StatusCode::TOO_MANY_REQUESTS,
                Ok(Err(_)) | Err(_) => true,
            };
            if !retry || attempt >= config.retries {
                tracing::warn!(
                    event = "alert_webhook_failed",
                    attempts = attempt + 1,
                    "an alert could not be delivered to the webhook"
                );
                metrics.alert_delivery("failed");
                break;
            }
            metrics.alert_delivery("retried");
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}
