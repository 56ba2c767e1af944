//! What the gateway writes to the audit trail, and the process-wide writer it hands
//! records to (`rampart_audit::Writer`: chain, store, durability, spill).
//!
//! The record schema (version 1, docs/AUDIT.md) lives here: one `exchange` record per
//! exchange, `admin` records for administrative actions (config reloads), and
//! `lifecycle` records when the node starts, stops, or finds it stopped uncleanly.
//! Records hold kinds and counts of findings, digests of bodies, and the principal as
//! a keyed pseudonym: never a body, a credential or a detected value.
//!
//! The request path builds a small typed record and hands it over; the JSON is built
//! and hashed on the writer thread.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use rampart_audit::writer::{Ack, Observer, Options};
use rampart_config::{Audit, Durability, IpPolicy, OnBacklog};
use ring::hmac;
use ring::signature::Ed25519KeyPair;
use serde::Serialize;

use crate::context::{Exchange, Outcome};
use crate::error::InitError;
use crate::metrics::Metrics;

/// Version of the record schema (docs/AUDIT.md).
pub const SCHEMA: u32 = 1;

/// How long a sync-mode response waits for its record to become durable before the
/// client gets a failed response instead (the store is down and nothing spills).
pub const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Record {
    Exchange(Box<ExchangeRecord>),
    Admin(AdminRecord),
    Lifecycle(LifecycleRecord),
    Alert(AlertRecord),
}

/// A detector's alert (`crate::alerts`): what fired, about whom, and what was done.
#[derive(Debug, Clone, Serialize)]
pub struct AlertRecord {
    pub v: u32,
    pub time: String,
    #[serde(serialize_with = "arc_str")]
    pub node: Arc<str>,
    pub id: String,
    pub detector: &'static str,
    pub action: &'static str,
    pub score: f64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_arc_str")]
    pub route: Option<Arc<str>>,
    /// The principal as a keyed pseudonym (absent for route-wide detectors).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<AlertPrincipal>,
    /// The exchange that tipped the detector.
    pub request_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertPrincipal {
    /// Keyed pseudonym of the subject, or of the client address for anonymous callers.
    pub id: String,
    /// `subject` or `address`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ExchangeRecord {
    pub v: u32,
    pub time: String,
    pub end: String,
    #[serde(serialize_with = "arc_str")]
    pub node: Arc<str>,
    pub request_id: String,
    #[serde(serialize_with = "arc_str")]
    pub listener: Arc<str>,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_arc_str")]
    pub route: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<ModelRef>,
    /// SHA-256 of the config in force: the policy version.
    #[serde(serialize_with = "arc_str")]
    pub config_sha256: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "opt_arc_str")]
    pub policy: Option<Arc<str>>,
    pub principal: PrincipalRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    pub decision: &'static str,
    /// Kind → count; never values.
    pub findings: BTreeMap<&'static str, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'static str>,
    pub status: u16,
    pub outcome: &'static str,
    pub latency_us: Latency,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<Tokens>,
    pub request: BodyRef,
    pub response: BodyRef,
    /// The bodies, encrypted under the data subject's key (routes with
    /// `capture_payloads`); unreadable once the subject is erased.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<rampart_audit_store::payload::Sealed>,
}

fn arc_str<S: serde::Serializer>(v: &Arc<str>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v)
}

fn opt_arc_str<S: serde::Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v),
        None => s.serialize_none(),
    }
}

#[derive(Debug, Serialize)]
pub struct ModelRef {
    /// What the request asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The route's pinned version and its signed manifest digest (`[routes.model]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PrincipalRef {
    /// Keyed pseudonym of the subject (HMAC-SHA256 with the pseudonym key, 32 hex).
    pub id: String,
    pub credential: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub total: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct Tokens {
    pub reserved: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct BodyRef {
    pub bytes: u64,
    /// SHA-256 (hex) of the body as it crossed the gateway's edge (the client's
    /// request, the response the client got); absent for request bodies streamed
    /// without buffering.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct AdminRecord {
    pub v: u32,
    pub time: String,
    #[serde(serialize_with = "arc_str")]
    pub node: Arc<str>,
    /// `config_reload`, ...
    pub action: &'static str,
    /// `signal`, `admin_api`, ...
    pub via: &'static str,
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who acted (oversight actions): the principal's subject and key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// What was acted on: a stop's scope, `review:<id>`, `incident:<id>`, `key:<id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LifecycleRecord {
    pub v: u32,
    pub time: String,
    #[serde(serialize_with = "arc_str")]
    pub node: Arc<str>,
    /// `start`, `stop`, `recovered`.
    pub event: &'static str,
    pub version: &'static str,
    pub durability: &'static str,
    /// Most records the writer leaves between checkpoints (`sync` leaves none
    /// unsigned once acknowledged): `verify` holds the trail to it.
    pub checkpoint_every: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Per-exchange audit state: body digests as they pass, and captured bodies.
#[derive(Clone)]
pub struct AuditState {
    pub request_sha256: Option<String>,
    pub response: ring::digest::Context,
    pub capture: Option<rampart_audit_store::payload::Capture>,
}

impl std::fmt::Debug for AuditState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditState").finish_non_exhaustive()
    }
}

pub use rampart_audit::chain::hex;

/// How long an oversight action waits for its audit record to be synced.
const OVERSIGHT_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// The process-wide audit trail: outlives reloads (its settings need a restart).
pub struct AuditTrail {
    writer: rampart_audit::Writer,
    /// The writer thread; it ends when the process does, after `close` sealed the trail.
    _handle: rampart_audit::writer::Handle,
    pseudonym_key: hmac::Key,
    pub client_ip: IpPolicy,
    pub durability: Durability,
    /// The writer's checkpoint bound, named in lifecycle records for `verify`.
    checkpoint_every: u64,
    pub node: Arc<str>,
    metrics: Arc<Metrics>,
    /// Subject keys for captured payloads (`audit.master_key`).
    pub keys: Option<Arc<rampart_audit_store::payload::SubjectKeys>>,
    pub subject_header: http::HeaderName,
    pub max_payload_bytes: usize,
}

impl std::fmt::Debug for AuditTrail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditTrail")
            .field("writer", &self.writer)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// The subject-key store the config names: PostgreSQL with `store = "postgres"`, else
/// files beside the trail.
pub fn subject_keys(cfg: &Audit, master_key: &[u8]) -> std::io::Result<rampart_audit_store::payload::SubjectKeys> {
    match &cfg.postgres {
        Some(url) => rampart_audit_store::payload::SubjectKeys::in_postgres(&cfg.dir, master_key, url.expose()),
        None => rampart_audit_store::payload::SubjectKeys::new(&cfg.dir, master_key),
    }
}

/// HMAC-SHA256 of `value` under `key`, first 16 bytes in hex: how records name
/// principals and data subjects.
pub fn keyed_pseudonym(key: &hmac::Key, value: &str) -> String {
    hex(&hmac::sign(key, value.as_bytes()).as_ref()[..16])
}

/// The pseudonym of `value` under the config's `audit.pseudonym_key`.
pub fn pseudonym_for(cfg: &Audit, value: &str) -> String {
    keyed_pseudonym(&hmac::Key::new(hmac::HMAC_SHA256, cfg.pseudonym_key.expose()), value)
}

/// A record's JSON text (an `error` record if it cannot be encoded, never nothing).
fn encode(record: &Record) -> String {
    serde_json::to_string(record).unwrap_or_else(|e| {
        serde_json::json!({"type": "error", "v": SCHEMA, "detail": format!("record could not be encoded: {e}")})
            .to_string()
    })
}

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Sync => "sync",
        Durability::Batch => "batch",
    }
}

fn now() -> String {
    rampart_identity::time::format_micros(std::time::SystemTime::now())
}

impl AuditTrail {
    /// Opens the node's trail, starts the writer, and writes the `start` record (and a
    /// `recovered` record first when the last run did not stop cleanly).
    /// Checks what `open` would refuse, without opening any store or writing a byte:
    /// the signing key, the subject header, and a file store's directory.
    /// `rampart check-config` uses this, so checking a config never touches the trail.
    pub fn check(cfg: &Audit) -> Result<(), InitError> {
        let fail = |reason: String| InitError::Audit { reason };
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(cfg.signing_key.expose())
            .map_err(|_| fail("audit.signing_key is not an Ed25519 key".into()))?;
        http::HeaderName::from_bytes(cfg.subject_header.as_bytes()).map_err(|_| {
            fail(format!(
                "audit.subject_header `{}` is not a header name",
                cfg.subject_header
            ))
        })?;
        if cfg.postgres.is_none() && cfg.dir.exists() && !cfg.dir.is_dir() {
            return Err(fail(format!("audit.dir {} is not a directory", cfg.dir.display())));
        }
        Ok(())
    }

    pub fn open(cfg: &Audit, node: &str, config_sha256: &str, metrics: Arc<Metrics>) -> Result<Arc<Self>, InitError> {
        let fail = |reason: String| InitError::Audit { reason };
        let (store, torn): (Box<dyn rampart_audit::Store>, _) = match &cfg.postgres {
            Some(url) => {
                // The store blocks on its own runtime: open it off this async context.
                let (url, owned_node) = (url.expose().clone(), node.to_owned());
                #[allow(clippy::disallowed_methods)] // joined on the next line
                let opened = std::thread::spawn(move || rampart_audit_store::pg::PgStore::open(&url, &owned_node))
                    .join()
                    .map_err(|_| fail("opening the PostgreSQL audit store panicked".into()))?
                    .map_err(|e| fail(format!("cannot open the audit store in PostgreSQL: {e}")))?;
                (Box::new(opened), None)
            }
            None => {
                let fs = rampart_audit::FileStore::open(&cfg.dir, node, cfg.max_segment_bytes)
                    .map_err(|e| fail(format!("cannot open the audit trail in {}: {e}", cfg.dir.display())))?;
                let torn = fs.torn().cloned();
                (Box::new(fs), torn)
            }
        };
        let clean = store.last().is_none_or(|e| {
            let v = e.value();
            v.get("type").and_then(|t| t.as_str()) == Some("lifecycle")
                && v.get("event").and_then(|t| t.as_str()) == Some("stop")
        });
        let recovered = (!clean).then(|| {
            let last = store.last().map_or(0, |e| e.seq);
            let mut detail = format!("the previous run ended without a stop record; the trail ends at record {last}");
            if let Some(t) = &torn {
                detail.push_str(&format!(
                    "; a partial last line of {} bytes was moved to {}",
                    t.bytes,
                    t.moved_to.display()
                ));
            }
            detail
                .push_str("; in batch mode, records of exchanges completed in the last batch interval may be missing");
            detail
        });
        let key = Ed25519KeyPair::from_pkcs8_maybe_unchecked(cfg.signing_key.expose())
            .map_err(|_| fail("audit.signing_key is not an Ed25519 key".into()))?;
        metrics.audit_queue_capacity(cfg.queue);
        let observer: Observer = {
            let m = Arc::clone(&metrics);
            Arc::new(move |e| m.audit_event(e))
        };
        let opts = Options {
            node: node.to_owned(),
            durability: match cfg.durability {
                Durability::Sync => rampart_audit::Durability::Sync,
                Durability::Batch => rampart_audit::Durability::Batch,
            },
            batch_interval: cfg.batch_interval,
            checkpoint_interval: cfg.checkpoint_interval,
            checkpoint_every: cfg.checkpoint_every,
            witness: cfg.witness.clone(),
            queue: cfg.queue,
            spill_dir: (cfg.on_backlog == OnBacklog::Spill).then(|| cfg.spill_dir.clone()),
            max_segment_bytes: cfg.max_segment_bytes,
        };
        let (writer, handle) = rampart_audit::Writer::start(store, key, opts, observer)
            .map_err(|e| fail(format!("cannot start the audit writer: {e}")))?;
        let trail = Arc::new(Self {
            writer,
            _handle: handle,
            pseudonym_key: hmac::Key::new(hmac::HMAC_SHA256, cfg.pseudonym_key.expose()),
            client_ip: cfg.client_ip,
            durability: cfg.durability,
            checkpoint_every: cfg.checkpoint_every,
            node: Arc::from(node),
            metrics,
            keys: match &cfg.master_key {
                Some(k) => Some(Arc::new(
                    subject_keys(cfg, k.expose()).map_err(|e| fail(format!("audit.master_key: {e}")))?,
                )),
                None => None,
            },
            subject_header: http::HeaderName::from_bytes(cfg.subject_header.as_bytes()).map_err(|_| {
                fail(format!(
                    "audit.subject_header `{}` is not a header name",
                    cfg.subject_header
                ))
            })?,
            max_payload_bytes: cfg.max_payload_bytes,
        });
        if let Some(detail) = recovered {
            tracing::warn!(event = "audit_recovered", "{detail}");
            trail.lifecycle("recovered", Some(config_sha256), Some(detail));
        }
        trail.lifecycle("start", Some(config_sha256), None);
        Ok(trail)
    }

    /// Whether a new exchange may start (see `rampart_audit::Writer::admit`). A refusal
    /// is counted, not recorded: recording it would grow the backlog it protects.
    pub fn admit(&self) -> bool {
        let ok = self.writer.admit();
        if !ok {
            self.metrics.audit_refused();
        }
        ok
    }

    fn submit(&self, record: Record, ack: Option<Ack>) {
        self.hand_over(Box::new(move || encode(&record)), ack);
    }

    /// Hands a record builder to the writer, sampling the queue depth.
    fn hand_over(&self, make: rampart_audit::writer::MakeRecord, ack: Option<Ack>) {
        self.metrics.audit_queue_depth(self.writer.pending() + 1);
        self.writer.submit(make, ack);
    }

    pub fn lifecycle(&self, event: &'static str, config_sha256: Option<&str>, detail: Option<String>) {
        self.submit(
            Record::Lifecycle(LifecycleRecord {
                v: SCHEMA,
                time: now(),
                node: Arc::clone(&self.node),
                event,
                version: env!("CARGO_PKG_VERSION"),
                durability: durability_name(self.durability),
                checkpoint_every: self.checkpoint_every,
                config_sha256: config_sha256.map(str::to_owned),
                detail,
            }),
            None,
        );
    }

    /// An administrative record's common part.
    fn admin_base(&self, action: &'static str, via: &'static str, ok: bool) -> AdminRecord {
        AdminRecord {
            v: SCHEMA,
            time: now(),
            node: Arc::clone(&self.node),
            action,
            via,
            result: if ok { "success" } else { "failure" },
            config_sha256: None,
            detail: None,
            actor: None,
            target: None,
        }
    }

    pub fn admin(
        &self,
        action: &'static str,
        via: &'static str,
        ok: bool,
        config_sha256: Option<String>,
        detail: Option<String>,
    ) {
        let record = AdminRecord {
            config_sha256,
            detail,
            ..self.admin_base(action, via, ok)
        };
        self.submit(Record::Admin(record), None);
    }

    /// A console sign-in. It changes nothing, so unlike [`AuditTrail::oversight`] it
    /// goes with the batch: the page it opens does not wait for a sync.
    pub fn sign_in(&self, actor: &str) {
        self.submit_oversight("console_sign_in", "console", true, actor, "console", None);
    }

    fn submit_oversight(
        &self,
        action: &'static str,
        via: &'static str,
        ok: bool,
        actor: &str,
        target: &str,
        reason: Option<String>,
    ) {
        let record = AdminRecord {
            detail: reason,
            actor: Some(actor.to_owned()),
            target: Some(target.to_owned()),
            ..self.admin_base(action, via, ok)
        };
        self.submit(Record::Admin(record), None);
    }

    /// An operator's or reviewer's action (stop, resume, review decision, incident,
    /// key): who, on what, and why.
    pub fn oversight(
        &self,
        action: &'static str,
        via: &'static str,
        ok: bool,
        actor: &str,
        target: &str,
        reason: Option<String>,
    ) {
        self.submit_oversight(action, via, ok, actor, target, reason);
        // A person's action is on the record before it is acknowledged, whatever the
        // durability mode: a crash right after "stopped" must not lose who stopped
        // what. Operator actions are rare, so the short wait (one write and sync,
        // bounded) costs nothing a client would see.
        if !self.writer.flush(OVERSIGHT_FLUSH) {
            tracing::warn!(
                action,
                "the audit record of an oversight action could not be synced in time"
            );
        }
    }

    /// An alert's record (chained like every other).
    pub fn alert(&self, record: AlertRecord) {
        self.submit(Record::Alert(record), None);
    }

    /// Keyed pseudonym of a subject (or any identifier): 32 hex digits.
    pub fn pseudonym(&self, value: &str) -> String {
        keyed_pseudonym(&self.pseudonym_key, value)
    }

    fn client_ip(&self, ip: IpAddr) -> Option<String> {
        match self.client_ip {
            IpPolicy::Full => Some(ip.to_string()),
            IpPolicy::Omit => None,
            IpPolicy::Pseudonymise => Some(self.pseudonym(&ip.to_string())),
            IpPolicy::Truncate => Some(match ip {
                IpAddr::V4(v4) => {
                    let o = v4.octets();
                    format!("{}.{}.{}.0/24", o[0], o[1], o[2])
                }
                IpAddr::V6(v6) => {
                    let s = v6.segments();
                    format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
                }
            }),
        }
    }

    /// Hands over the exchange's record. In sync mode the returned receiver resolves
    /// when the record is durable (`true`) or cannot be made so (`false`).
    pub fn record_exchange(
        &self,
        ex: &mut Exchange,
        config_sha256: &Arc<str>,
        policy: Option<Arc<str>>,
        pin: Option<&rampart_config::ModelPin>,
    ) -> Option<tokio::sync::oneshot::Receiver<bool>> {
        let us = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mut findings = BTreeMap::new();
        for f in &ex.findings {
            *findings.entry(f.kind).or_insert(0u32) += 1;
        }
        // The exchange ends here: its digests and captured bodies move into the record.
        let (request_sha256, response_sha256, capture) = match ex.stash.take::<AuditState>() {
            Some(a) => (a.request_sha256, Some(hex(a.response.finish().as_ref())), a.capture),
            None => (None, None, None),
        };
        let principal = match &ex.principal {
            Some(p) => PrincipalRef {
                id: self.pseudonym(&p.subject),
                credential: p.credential.as_str(),
                key_id: p.key_id.clone(),
                tenant: p.tenant.clone(),
            },
            None => PrincipalRef {
                id: self.pseudonym("anonymous"),
                credential: "none",
                key_id: None,
                tenant: None,
            },
        };
        let record = ExchangeRecord {
            v: SCHEMA,
            time: rampart_identity::time::format_micros(ex.started_wall),
            end: now(),
            node: Arc::clone(&self.node),
            request_id: ex.request_id.clone(),
            listener: Arc::clone(&ex.conn.listener),
            method: ex.method.as_str().to_owned(),
            path: ex.path.clone(),
            route: ex.route.clone(),
            model: (ex.model.is_some() || pin.is_some()).then(|| ModelRef {
                name: ex.model.clone(),
                version: pin.and_then(|p| p.version.clone()),
                digest: pin.map(|p| p.manifest_digest.clone()),
            }),
            config_sha256: Arc::clone(config_sha256),
            policy,
            principal,
            client_ip: self.client_ip(ex.client_ip),
            decision: ex.decision.as_str(),
            findings,
            error: ex.error.as_ref().map(|e| e.code()),
            status: ex.status.map_or(0, |s| s.as_u16()),
            outcome: match ex.outcome {
                Some(Outcome::Complete) => "complete",
                Some(Outcome::Failed) => "failed",
                Some(Outcome::ClientGone) => "client_gone",
                None => "unknown",
            },
            latency_us: Latency {
                total: us(ex.started.elapsed()),
                gateway: ex.gateway_added().map(us),
                upstream: ex.upstream_time().map(us),
            },
            tokens: ex.stash.get::<rampart_limits::TokenAccount>().map(|t| Tokens {
                reserved: t.reserved,
                used: t.usage,
            }),
            request: BodyRef {
                bytes: ex.request_bytes,
                sha256: request_sha256,
            },
            response: BodyRef {
                bytes: ex.response_bytes,
                sha256: response_sha256,
            },
            payload: None,
        };
        let wait = self.durability == Durability::Sync && ex.outcome == Some(Outcome::Complete);
        let (ack, rx): (Option<Ack>, _) = if wait {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (
                Some(Box::new(move |ok| {
                    let _ = tx.send(ok);
                })),
                Some(rx),
            )
        } else {
            (None, None)
        };
        match (capture, &self.keys) {
            (Some(capture), Some(keys)) => {
                let keys = Arc::clone(keys);
                let mut record = record;
                self.hand_over(
                    Box::new(move || {
                        // On the writer thread: the subject's key may need creating.
                        let aad = rampart_audit_store::payload::payload_aad(&record.node, &record.request_id);
                        match keys.seal(capture, &aad) {
                            Ok(sealed) => record.payload = Some(sealed),
                            Err(e) => tracing::error!(error = %e, "audit payload not captured: cannot encrypt it"),
                        }
                        encode(&Record::Exchange(Box::new(record)))
                    }),
                    ack,
                );
            }
            _ => self.submit(Record::Exchange(Box::new(record)), ack),
        }
        rx
    }

    /// Writes and syncs everything queued.
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        self.writer.flush(timeout)
    }

    /// Writes the `stop` record and a final checkpoint, and waits until both are
    /// durable. The writer thread then idles until the process exits.
    pub fn close(&self, config_sha256: Option<&str>) -> bool {
        self.lifecycle("stop", config_sha256, None);
        self.writer.seal(std::time::Duration::from_secs(10))
    }
}
