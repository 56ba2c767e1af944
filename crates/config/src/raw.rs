//! Raw configuration exactly as written in the TOML file. Every table denies unknown
//! keys so that a typo is an error, not a silently ignored setting. Nothing here is
//! validated; [`crate::validate`] turns these into the runtime types.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    #[serde(default)]
    pub defaults: RawRouteSettings,
    #[serde(default)]
    pub upstreams: Vec<RawUpstream>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub identity: RawIdentity,
    #[serde(default)]
    pub roles: BTreeMap<String, RawRole>,
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    #[serde(default)]
    pub concurrency_limits: Vec<RawConcurrencyLimit>,
    #[serde(default)]
    pub quotas: Vec<RawQuota>,
    #[serde(default)]
    pub token_limits: Vec<RawTokenLimit>,
    pub redis: Option<RawRedis>,
    #[serde(default)]
    pub policies: BTreeMap<String, RawPolicy>,
    pub audit: Option<RawAudit>,
    /// Behaviour detectors, penalties and where alerts go.
    pub watch: Option<RawWatch>,
    /// Stop switches, the review queue and incidents: where they are kept.
    pub oversight: Option<RawOversight>,
    /// OpenTelemetry traces: W3C trace context, sampling, OTLP export.
    pub traces: Option<RawTraces>,
}

/// `[traces]`: a span per exchange, exported over OTLP; trace ids in the access log
/// and `traceparent` to the upstream.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTraces {
    /// The collector: `http(s)://host:4318[/v1/traces]` (HTTP/protobuf) or
    /// `http(s)://host:4317` (gRPC). Absent: trace ids are kept and propagated, no span
    /// is exported.
    pub endpoint: Option<String>,
    pub protocol: Option<OtlpProtocol>,
    /// Share of new traces sampled, 0.0 to 1.0.
    pub sample_ratio: Option<f64>,
    /// Whether a caller's `traceparent` sampled flag decides (`follow`) or only the
    /// ratio does (`ignore`).
    pub parent_sampled: Option<ParentSampled>,
    pub service_name: Option<String>,
    /// Request headers for the collector (an API key): secrets, never inline.
    #[serde(default)]
    pub headers: BTreeMap<String, RawSecretRef>,
    /// Extra root CA (PEM) for an https collector.
    pub ca: Option<String>,
    /// Spans waiting for export; more are dropped and counted.
    pub queue: Option<usize>,
    /// Spans per export request.
    pub batch: Option<usize>,
    /// How long a partial batch waits.
    pub interval: Option<String>,
    /// Per export attempt.
    pub timeout: Option<String>,
    /// A child span per pipeline stage (default true).
    pub stages: Option<bool>,
}

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// `POST /v1/traces`, `application/x-protobuf`.
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
    /// `opentelemetry.proto.collector.trace.v1.TraceService/Export` over HTTP/2.
    #[serde(rename = "grpc")]
    Grpc,
}

/// Whose sampling decision a traced request follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParentSampled {
    /// Only `sample_ratio`, applied to the trace id (so every node agrees): a client
    /// cannot force its requests into the trace pipeline.
    #[default]
    Ignore,
    /// The caller's sampled flag, when it sent a valid `traceparent`.
    Follow,
}

/// `[oversight]`: where stop switches, review items and incidents are kept, and how
/// held requests wait.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOversight {
    /// A journal file (one node).
    pub path: Option<String>,
    /// PostgreSQL shared by every node (a secret: the URL may hold a password).
    pub postgres: Option<RawSecretRef>,
    /// How often each node reads stops and decisions from PostgreSQL.
    pub sync_interval: Option<String>,
    /// Review items kept (pending and decided).
    pub max_reviews: Option<usize>,
    #[serde(default)]
    pub hold: RawHold,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHold {
    /// Requests waiting for a reviewer at once on this node; more are refused.
    pub max_held: Option<usize>,
    /// How long a held request waits for a decision.
    pub timeout: Option<String>,
    /// What happens when nobody decided in time.
    pub on_timeout: Option<OnHoldTimeout>,
}

/// What happens to a held request nobody decided on in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnHoldTimeout {
    /// The client gets 503 `review_timeout` (fail closed).
    #[default]
    Refuse,
    /// The request goes on to the model.
    Allow,
}

/// `[watch]`: the gateway-wide detectors (behaviour per principal), the penalties
/// detectors impose, and alert delivery.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub alert_cooldown: Option<String>,
    pub penalty: Option<String>,
    pub throttle_per_minute: Option<u32>,
    pub principals: Option<usize>,
    /// One ECS JSON line per alert on standard output, for SIEMs.
    pub alert_log: Option<bool>,
    /// `redis`: penalties (blocks, throttles) shared by every node.
    pub backend: Option<LimitBackend>,
    #[serde(default)]
    pub behaviour: RawBehaviour,
    pub webhook: Option<RawWebhook>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBehaviour {
    pub rate_factor: Option<f64>,
    pub rate_floor: Option<u32>,
    pub token_floor: Option<u64>,
    pub denied_per_minute: Option<u32>,
    pub refusals: Option<u32>,
    pub rate_spike: Option<rampart_watch::signal::Action>,
    pub token_spike: Option<rampart_watch::signal::Action>,
    pub denied_burst: Option<rampart_watch::signal::Action>,
    pub on_refusals: Option<rampart_watch::signal::Action>,
}

/// Alerts POSTed as JSON, signed with HMAC-SHA256 over the timestamp and the body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub url: String,
    pub secret: RawSecretRef,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub queue: Option<usize>,
}

/// `[routes.watch]`: extraction, out-of-distribution and drift detection on a
/// classifier route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteWatch {
    /// The reference statistics (`rampart watch calibrate` writes them).
    pub reference: Option<String>,
    /// KServe: the input tensor holding the features (the first input when absent).
    pub input: Option<String>,
    /// JSON routes: where the feature rows are (`instances[*]`).
    pub path: Option<String>,
    pub window: Option<usize>,
    pub min_queries: Option<usize>,
    pub false_alarm: Option<f64>,
    pub low_margin: Option<f64>,
    pub drift_window: Option<usize>,
    pub drift_threshold: Option<f64>,
    pub extraction: Option<rampart_watch::signal::Action>,
    pub out_of_distribution: Option<rampart_watch::signal::Action>,
    pub drift: Option<rampart_watch::signal::Action>,
}

/// The audit trail (docs/AUDIT.md): where records go, how durable they are, what
/// happens when the store falls behind, and how records are signed and pseudonymised.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAudit {
    pub enabled: Option<bool>,
    pub dir: Option<String>,
    pub durability: Option<Durability>,
    pub batch_interval: Option<String>,
    pub queue: Option<usize>,
    pub on_backlog: Option<OnBacklog>,
    pub spill_dir: Option<String>,
    pub checkpoint_interval: Option<String>,
    pub checkpoint_every: Option<u64>,
    pub witness: Option<String>,
    pub max_segment_bytes: Option<u64>,
    pub signing_key: Option<RawSecretRef>,
    pub pseudonym_key: Option<RawSecretRef>,
    pub client_ip: Option<IpPolicy>,
    pub store: Option<AuditStoreKind>,
    pub postgres: Option<RawSecretRef>,
    pub master_key: Option<RawSecretRef>,
    pub subject_header: Option<String>,
    pub max_payload_bytes: Option<usize>,
    #[serde(default)]
    pub retention: RawRetention,
}

/// How long audit records are kept, per record class, and legal holds.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetention {
    pub exchange: Option<String>,
    pub admin: Option<String>,
    pub lifecycle: Option<String>,
    /// Allow `exchange` below the six-month floor.
    pub allow_short: Option<bool>,
    #[serde(default)]
    pub legal_holds: Vec<RawLegalHold>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLegalHold {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Where the audit chain is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStoreKind {
    /// Segment files in `dir`.
    File,
    /// PostgreSQL (`postgres` names the URL): one chain per node in shared tables.
    Postgres,
}

/// When a record counts as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The response is held until its record is on disk (fdatasync).
    Sync,
    /// Records are written as they come and made durable every `batch_interval`.
    Batch,
}

/// What happens when the store is down or the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBacklog {
    /// New requests are refused (503) until the backlog drains: fail closed.
    Block,
    /// Records go to local spill files while the store is down, and are delivered
    /// in order when it is back; requests keep flowing.
    Spill,
}

/// How the client address appears in audit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpPolicy {
    Full,
    /// IPv4 /24, IPv6 /48.
    Truncate,
    /// Keyed hash (the pseudonym key): linkable, not reversible.
    Pseudonymise,
    Omit,
}

/// A content policy: what happens to each kind of finding, per direction.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub min_confidence: Option<f32>,
    pub shadow: Option<bool>,
    #[serde(default)]
    pub request: BTreeMap<String, ContentAction>,
    #[serde(default)]
    pub response: BTreeMap<String, ContentAction>,
    pub canary: Option<bool>,
    pub hash_key: Option<RawSecretRef>,
    pub max_response_bytes: Option<u64>,
    pub injection: Option<RawInjection>,
    /// Pass responses the policy cannot parse and inspect instead of refusing them.
    pub fail_open: Option<bool>,
}

/// Prompt-injection scoring of request text.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInjection {
    /// `block` or `flag`.
    pub action: Option<ContentAction>,
    /// Score at or above which the action applies; default: the shipped classifier's
    /// validated threshold.
    pub threshold: Option<f32>,
    /// Which parts of an OpenAI request are scored: message roles and
    /// `tool_definitions`; default all of them.
    pub scope: Option<Vec<String>>,
    /// A band below `threshold` sent to people: `hold` or `review`.
    pub review: Option<ContentAction>,
    /// Where the review band starts (scores from here up to `threshold`).
    pub review_threshold: Option<f32>,
}

/// What a content policy does with a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContentAction {
    /// Nothing (not even recorded).
    Allow,
    /// Recorded as a finding; the text passes unchanged.
    Flag,
    /// Letters and digits replaced by `*` (cards, IBANs and phones keep the last four).
    Mask,
    /// Replaced by the kind's tag, e.g. `[EMAIL]`.
    Redact,
    /// Replaced by a keyed hash: the same value gives the same pseudonym per tenant.
    Hash,
    /// Replaced by a placeholder upstream, restored in the response (request only).
    Pseudonymise,
    /// The exchange is refused.
    Block,
    /// The request waits for a reviewer's approval before it reaches the model
    /// (`[oversight.hold]`); requests only.
    Hold,
    /// The exchange is answered and queued for a reviewer after the fact.
    Review,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://host:port/db` (a secret: it may hold a password).
    pub url: RawSecretRef,
    pub timeout: Option<String>,
}

/// Where a limit keeps its counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitBackend {
    /// In this process (per node).
    #[default]
    Local,
    /// In Redis, shared by every node.
    Redis,
}

/// What a Redis-backed limit does while Redis is unreachable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    /// Enforce the same limit per node until Redis is back.
    #[default]
    Local,
    /// Let requests through.
    Open,
    /// Refuse requests (503).
    Closed,
}

/// Whose traffic a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// The authenticated caller (its key id or subject).
    Principal,
    Tenant,
    /// The client IP address.
    Ip,
    Route,
    /// Everything the limit applies to, together.
    Global,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub name: String,
    pub per: LimitKey,
    pub backend: Option<LimitBackend>,
    pub on_backend_error: Option<OnBackendError>,
    pub requests: u64,
    pub window: String,
    pub burst: Option<u64>,
    #[serde(default)]
    pub routes: Vec<String>,
    pub shadow: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConcurrencyLimit {
    pub name: String,
    pub per: LimitKey,
    pub backend: Option<LimitBackend>,
    pub on_backend_error: Option<OnBackendError>,
    pub max: u64,
    #[serde(default)]
    pub routes: Vec<String>,
    pub shadow: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenLimit {
    pub name: String,
    pub per: LimitKey,
    pub tokens: u64,
    pub window: String,
    pub default_completion_tokens: Option<u64>,
    pub backend: Option<LimitBackend>,
    pub on_backend_error: Option<OnBackendError>,
    #[serde(default)]
    pub routes: Vec<String>,
    pub shadow: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuotaPeriod {
    Day,
    Month,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub name: String,
    pub per: LimitKey,
    pub backend: Option<LimitBackend>,
    pub on_backend_error: Option<OnBackendError>,
    pub requests: u64,
    pub period: QuotaPeriod,
    #[serde(default)]
    pub routes: Vec<String>,
    pub shadow: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Server-side secret API keys are hashed with (HMAC-SHA256).
    pub pepper: Option<RawSecretRef>,
    pub api_keys: Option<RawApiKeys>,
    #[serde(default)]
    pub jwt: Vec<RawJwtIssuer>,
    pub client_certs: Option<RawClientCerts>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientCerts {
    #[serde(default)]
    pub subjects: Vec<RawCertSubject>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCertSubject {
    /// Exact subject, or a prefix ending in `*`.
    #[serde(rename = "match")]
    pub pattern: String,
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawJwtIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<String>,
    pub ca: Option<String>,
    pub leeway: Option<String>,
    pub subject_claim: Option<String>,
    pub tenant_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub refresh_interval: Option<String>,
    pub min_refresh_interval: Option<String>,
    pub max_stale: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKeys {
    pub file: Option<String>,
    /// PostgreSQL connection string (a secret: it may hold a password).
    pub postgres: Option<RawSecretRef>,
    pub headers: Option<Vec<String>>,
    pub reload_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRole {
    #[serde(default)]
    pub routes: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub actions: Vec<String>,
}

/// `server.node_id`: a name, or `{ env = "POD_NAME" }` / `{ file = … }` to take it from
/// the environment (each replica of a fleet needs its own).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawNodeId {
    Name(String),
    From(RawSecretRef),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub node_id: Option<RawNodeId>,
    pub shutdown_grace: Option<String>,
    pub watch_config: Option<String>,
    pub access_log: Option<bool>,
    pub workers: Option<usize>,
    pub limit_keys: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    pub public_metrics: Option<bool>,
    /// The web console on the admin listener.
    pub console: Option<RawConsole>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsole {
    pub enabled: Option<bool>,
    /// A session ends after this long without a request.
    pub session_idle: Option<String>,
    /// A session ends this long after sign-in, however active.
    pub session_max: Option<String>,
    /// Sign-in through an OpenID Connect provider (authorization code with PKCE).
    pub oidc: Option<RawConsoleOidc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConsoleOidc {
    /// The provider's issuer URL; an `[[identity.jwt]]` entry must trust it.
    pub issuer: String,
    pub client_id: String,
    /// A confidential client's secret (sent with HTTP Basic to the token endpoint).
    pub client_secret: Option<RawSecretRef>,
    /// Where the provider sends the browser back: this console's `/console/oidc/callback`.
    pub redirect_url: String,
    pub scopes: Option<Vec<String>>,
    /// The sign-in button's label.
    pub name: Option<String>,
    /// An extra CA for the provider's https endpoints.
    pub ca: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub name: String,
    pub listen: String,
    pub h2c: Option<bool>,
    pub tls: Option<RawListenerTls>,
    pub max_header_bytes: Option<usize>,
    pub header_read_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_ip: Option<usize>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub cert: String,
    pub key: String,
    pub client_ca: Option<String>,
    pub client_auth: Option<ClientAuth>,
    pub hsts: Option<String>,
}

/// Whether a TLS listener with a `client_ca` demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    Required,
    Optional,
}

/// Limits and timeouts; `[defaults]` sets them for every route, a route may override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteSettings {
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub timeouts: RawTimeouts,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    pub max_body_bytes: Option<u64>,
    pub max_json_depth: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub first_byte: Option<String>,
    pub total: Option<String>,
    pub idle: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub name: String,
    pub targets: Vec<String>,
    pub balance: Option<Balance>,
    pub connect_timeout: Option<String>,
    pub http2: Option<bool>,
    pub pool_idle_timeout: Option<String>,
    pub pool_max_idle_per_target: Option<usize>,
    #[serde(default)]
    pub health: RawHealth,
    pub tls: Option<RawUpstreamTls>,
    #[serde(default)]
    pub headers: BTreeMap<String, RawSecretRef>,
}

/// How a pool picks a target for each request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    LeastOutstanding,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub max_failures: Option<u32>,
    pub cooldown: Option<String>,
    pub path: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    pub server_name: Option<String>,
}

/// A secret named by where it lives. Exactly one of `env` and `file`; `prefix` is
/// prepended (e.g. `"Bearer "`). There is deliberately no inline form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecretRef {
    pub env: Option<String>,
    pub file: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: String,
    pub path: Option<String>,
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub listeners: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub upstream: String,
    pub protocol: Option<Protocol>,
    pub public: Option<bool>,
    pub tenant: Option<String>,
    pub forward_credentials: Option<bool>,
    #[serde(default)]
    pub allow_ips: Vec<String>,
    #[serde(default)]
    pub deny_ips: Vec<String>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub tokens: RawRouteTokens,
    /// Name of a `[policies.<name>]` content policy.
    pub policy: Option<String>,
    #[serde(default)]
    pub validation: RawValidation,
    /// Keep the request and response bodies in the audit trail, encrypted per data
    /// subject (needs `audit.master_key`).
    pub capture_payloads: Option<bool>,
    /// The model version this route serves, pinned to a signed manifest.
    pub model: Option<RawModelPin>,
    /// What a classifier route's answers may reveal (output hardening).
    pub output: Option<RawOutput>,
    /// Extraction, out-of-distribution and drift detection on a classifier route.
    pub watch: Option<RawRouteWatch>,
}

/// `[routes.output]`: hardening of a classifier's probability outputs against model
/// extraction and inversion.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    pub label_only: Option<bool>,
    pub top_k: Option<u64>,
    pub decimals: Option<u32>,
    pub noise: Option<RawNoise>,
    pub allow_label_change: Option<bool>,
    /// KServe routes: the output tensors to harden (every floating-point one when empty).
    #[serde(default)]
    pub outputs: Vec<String>,
    /// JSON routes: where the probability rows are (`predictions[*].probabilities`).
    pub path: Option<String>,
    pub budget: Option<RawPrivacyBudget>,
    /// OpenAI routes: `strip` removes logprobs from answers (`keep` by default).
    pub logprobs: Option<LogprobsMode>,
    /// OpenAI routes: most alternatives per token left in answers.
    pub top_logprobs: Option<u64>,
    /// OpenAI routes: σ of Gaussian noise added to each embedding component.
    pub embedding_noise: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogprobsMode {
    #[default]
    Keep,
    Strip,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNoise {
    pub mechanism: Option<NoiseMechanism>,
    pub epsilon: f64,
    pub delta: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMechanism {
    #[default]
    Laplace,
    Gaussian,
}

/// The privacy budget each principal may spend on noisy answers per window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrivacyBudget {
    pub epsilon: f64,
    pub delta: Option<f64>,
    pub window: Option<String>,
    pub when_spent: Option<WhenSpent>,
    pub backend: Option<LimitBackend>,
}

/// What a principal whose privacy budget is spent gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenSpent {
    /// 429 with Retry-After until the window renews.
    #[default]
    Refuse,
    /// The label alone (no confidences), which costs no budget.
    LabelOnly,
}

/// `[routes.model]`: which approved model version a route serves.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModelPin {
    pub version: Option<String>,
    /// `sha256:<hex>` of the signed manifest (`rampart sign` prints it).
    pub manifest_digest: String,
    /// The `model.sig` to check against the digest at start and reload.
    pub manifest: Option<String>,
    /// Public key the manifest's signature must verify with.
    pub public_key: Option<String>,
}

/// Protocol validation of request bodies (OpenAI and KServe routes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawValidation {
    pub enabled: Option<bool>,
    pub max_messages: Option<u64>,
    pub max_n: Option<u64>,
    pub max_tokens: Option<u64>,
    pub allow_logit_bias: Option<bool>,
    pub allow_logprobs: Option<bool>,
    pub allow_logit_bias_with_logprobs: Option<bool>,
    pub max_top_logprobs: Option<u64>,
    pub allow_tools: Option<bool>,
    pub max_inputs: Option<u64>,
    pub max_elements: Option<u64>,
    pub only_listed_inputs: Option<bool>,
    #[serde(default)]
    pub inputs: Vec<RawInputRule>,
    /// A JSON Schema file request bodies must follow (any JSON protocol).
    pub json_schema: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInputRule {
    pub name: String,
    pub datatype: Option<String>,
    pub shape: Option<Vec<i64>>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// How an OpenAI route counts LLM tokens for token budgets.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteTokens {
    pub tokenizer: Option<Tokenizer>,
    pub request_usage: Option<bool>,
}

/// How prompt tokens are counted before a request is forwarded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// One token per 4 characters of text plus 3 per message (no vocabulary needed).
    #[default]
    Estimate,
    /// The BPE vocabulary of GPT-3.5 / GPT-4.
    Cl100k,
    /// The BPE vocabulary of GPT-4o, GPT-4.1, o-series and later.
    O200k,
}

/// What the route speaks; decides error shapes and, later, which validators run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OpenAI-compatible API: errors are OpenAI-shaped.
    Openai,
    /// KServe / Open Inference Protocol v2.
    Kserve,
    /// Any JSON API.
    #[default]
    Json,
    /// Opaque HTTP: bodies are streamed, never parsed.
    Http,
}
