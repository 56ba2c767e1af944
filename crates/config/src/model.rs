//! The validated runtime configuration. Every value here has passed validation; the
//! gateway builds its runtime from these types and never sees raw TOML.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Method};

pub use crate::raw::{
    AuditStoreKind, Balance, ClientAuth, ContentAction, Durability, IpPolicy, LimitBackend, LimitKey, OnBackendError,
    OnBacklog, OtlpProtocol, ParentSampled, Protocol, QuotaPeriod, Tokenizer,
};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this config came from, if any (used by reload).
    pub source: Option<PathBuf>,
    pub server: Server,
    pub admin: Admin,
    pub listeners: Vec<Listener>,
    pub upstreams: Vec<Upstream>,
    pub routes: Vec<Route>,
    pub identity: Identity,
    /// Role name → what it grants.
    pub roles: std::collections::BTreeMap<String, RoleConfig>,
    pub rate_limits: Vec<RateLimit>,
    pub concurrency_limits: Vec<ConcurrencyLimit>,
    pub quotas: Vec<Quota>,
    pub token_limits: Vec<TokenLimit>,
    pub policies: std::collections::BTreeMap<String, ContentPolicy>,
    /// Shared limit state for many nodes; required by `backend = "redis"` limits.
    pub redis: Option<Redis>,
    /// The audit trail; `None` when `[audit]` is absent or disabled.
    pub audit: Option<Audit>,
    /// Behaviour detectors, penalties and alert delivery; `None` without `[watch]`.
    pub watch: Option<Watch>,
    /// Stop switches, the review queue and incidents (always on).
    pub oversight: Oversight,
    /// Trace context and OTLP export; `None` without `[traces]`.
    pub traces: Option<Traces>,
    /// SHA-256 (hex) of the config text: the policy version every audit record names.
    pub digest: String,
}

/// `[traces]`: trace context on every exchange, spans exported over OTLP.
#[derive(Debug, Clone)]
pub struct Traces {
    /// The full export URL (`…/v1/traces` for HTTP, the server's base for gRPC);
    /// `None`: ids are kept and propagated, nothing is exported.
    pub endpoint: Option<http::Uri>,
    pub protocol: OtlpProtocol,
    pub sample_ratio: f64,
    pub parent_sampled: ParentSampled,
    pub service_name: String,
    pub headers: Vec<(HeaderName, Secret<String>)>,
    pub ca: Option<PathBuf>,
    pub queue: usize,
    pub batch: usize,
    pub interval: Duration,
    pub timeout: Duration,
    pub stages: bool,
}

/// `[oversight]`: where human-oversight state lives and how held requests wait.
#[derive(Debug, Clone)]
pub struct Oversight {
    pub store: OversightStore,
    pub sync_interval: Duration,
    pub max_reviews: usize,
    pub max_held: usize,
    pub hold_timeout: Duration,
    pub on_timeout: crate::raw::OnHoldTimeout,
}

/// Where oversight state is kept.
#[derive(Debug, Clone)]
pub enum OversightStore {
    /// Lost at restart: only when neither a path, PostgreSQL nor a file audit trail is
    /// configured (the gateway warns at start).
    Memory,
    File(PathBuf),
    Postgres(Secret<String>),
}

/// `[watch]`: gateway-wide detection settings (docs/CONFIG.md).
#[derive(Debug, Clone)]
pub struct Watch {
    /// One alert per detector, principal (or route) within this period.
    pub alert_cooldown: Duration,
    /// How long a block or throttle lasts.
    pub penalty: Duration,
    pub throttle_per_minute: u32,
    /// Principals each detector table tracks per node.
    pub principals: usize,
    pub alert_log: bool,
    /// `redis`: penalties shared by every node (within a second).
    pub backend: LimitBackend,
    pub behaviour: rampart_watch::behaviour::BehaviourConfig,
    pub rate_spike: rampart_watch::signal::Action,
    pub token_spike: rampart_watch::signal::Action,
    pub denied_burst: rampart_watch::signal::Action,
    pub refusals: rampart_watch::signal::Action,
    pub webhook: Option<Webhook>,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: http::Uri,
    pub secret: Secret<String>,
    pub timeout: Duration,
    pub retries: u32,
    pub queue: usize,
}

/// `[routes.watch]`: a classifier route's detectors.
#[derive(Debug, Clone)]
pub struct RouteWatch {
    /// The reference statistics, loaded and checked; input detectors need it.
    pub reference: Option<std::sync::Arc<rampart_watch::reference::Reference>>,
    pub input: Option<String>,
    pub path: Option<rampart_watch::tensor::JsonPath>,
    pub extraction: rampart_watch::extraction::ExtractionConfig,
    pub drift_window: usize,
    pub drift_threshold: f64,
    pub on_extraction: rampart_watch::signal::Action,
    pub on_out_of_distribution: rampart_watch::signal::Action,
    pub on_drift: rampart_watch::signal::Action,
}

/// The audit trail's settings (docs/AUDIT.md).
#[derive(Debug, Clone)]
pub struct Audit {
    /// Segment files of this node's chain.
    pub dir: PathBuf,
    pub durability: Durability,
    /// `batch`: how often written records are made durable (the power-loss window).
    pub batch_interval: Duration,
    /// Records that may wait for the writer before new requests are refused.
    pub queue: usize,
    pub on_backlog: OnBacklog,
    /// Where records go while the store is down (`on_backlog = "spill"`).
    pub spill_dir: PathBuf,
    /// `batch`: a checkpoint at most this long after a record (`sync` checkpoints every
    /// group before acknowledging it).
    pub checkpoint_interval: Duration,
    /// At most this many records between two checkpoints; `verify` fails a trail
    /// whose unsigned gap or tail is longer.
    pub checkpoint_every: u64,
    /// A file (on another disk or mount) that keeps the latest checkpoint, so a trail
    /// cut back to an earlier checkpoint is detected by `verify`.
    pub witness: Option<PathBuf>,
    pub max_segment_bytes: u64,
    /// Ed25519 key pair (PKCS#8 DER) that signs checkpoints.
    pub signing_key: Secret<Vec<u8>>,
    /// HMAC key for principal and client-address pseudonyms.
    pub pseudonym_key: Secret<Vec<u8>>,
    pub client_ip: IpPolicy,
    /// `Some(url)`: records go to PostgreSQL instead of segment files in `dir`.
    pub postgres: Option<Secret<String>>,
    /// 32-byte key that wraps the per-subject payload keys; required when a route
    /// captures payloads.
    pub master_key: Option<Secret<Vec<u8>>>,
    /// Request header naming the data subject of a captured payload (lower case).
    pub subject_header: String,
    /// Captured bytes per body; longer bodies are cut and marked `truncated`.
    pub max_payload_bytes: usize,
    pub retention: Retention,
}

/// Retention per record class, in seconds, and legal holds.
#[derive(Debug, Clone)]
pub struct Retention {
    pub exchange: i64,
    pub admin: i64,
    pub lifecycle: i64,
    pub legal_holds: Vec<LegalHold>,
}

/// Records whose time falls in `[from, to]` (Unix seconds) are never purged.
#[derive(Debug, Clone)]
pub struct LegalHold {
    pub from: i64,
    pub to: i64,
    pub reason: String,
}

impl Retention {
    /// Seconds a record of `class` (its `type`) is kept; unknown classes: the longest.
    pub fn for_class(&self, class: &str) -> i64 {
        match class {
            "exchange" => self.exchange,
            "admin" => self.admin,
            "lifecycle" => self.lifecycle,
            _ => self.exchange.max(self.admin).max(self.lifecycle),
        }
    }

    /// The legal hold covering `time`, if any.
    pub fn held(&self, time: i64) -> Option<&LegalHold> {
        self.legal_holds.iter().find(|h| h.from <= time && time <= h.to)
    }
}

#[derive(Debug, Clone)]
pub struct Redis {
    pub url: Secret<String>,
    /// One Redis round trip must answer within this, else the limit's
    /// `on_backend_error` applies.
    pub timeout: Duration,
}

/// Requests per window, enforced with GCRA (a token bucket without timers).
#[derive(Debug, Clone)]
pub struct RateLimit {
    pub name: String,
    pub per: LimitKey,
    pub backend: LimitBackend,
    pub on_backend_error: OnBackendError,
    pub requests: u64,
    pub window: Duration,
    /// Requests that may arrive at once after a quiet period.
    pub burst: u64,
    /// Route names it applies to; empty = every route.
    pub routes: Vec<String>,
    /// Count and report, never refuse.
    pub shadow: bool,
}

/// LLM tokens per window on OpenAI routes: reserved before forwarding (estimated
/// prompt plus `max_tokens` or `default_completion_tokens`), reconciled with the real
/// `usage` (or, for streams without usage, the streamed text) when the exchange ends.
#[derive(Debug, Clone)]
pub struct TokenLimit {
    pub name: String,
    pub per: LimitKey,
    pub backend: LimitBackend,
    pub on_backend_error: OnBackendError,
    pub tokens: u64,
    pub window: Duration,
    pub default_completion_tokens: u64,
    pub routes: Vec<String>,
    pub shadow: bool,
}

#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    pub name: String,
    pub per: LimitKey,
    pub backend: LimitBackend,
    pub on_backend_error: OnBackendError,
    pub max: u64,
    pub routes: Vec<String>,
    pub shadow: bool,
}

#[derive(Debug, Clone)]
pub struct Quota {
    pub name: String,
    pub per: LimitKey,
    pub backend: LimitBackend,
    pub on_backend_error: OnBackendError,
    pub requests: u64,
    /// Calendar period in UTC.
    pub period: QuotaPeriod,
    pub routes: Vec<String>,
    pub shadow: bool,
}

/// An IPv4 or IPv6 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Self> {
        let (ip, prefix) = match text.split_once('/') {
            Some((ip, p)) => (ip.parse::<std::net::IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let ip = text.parse::<std::net::IpAddr>().ok()?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if ip.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Self { addr: ip, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.addr, ip) {
            (std::net::IpAddr::V4(net), std::net::IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (std::net::IpAddr::V6(net), std::net::IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// Secret API keys are hashed with; required when `api_keys` is set.
    pub pepper: Option<Secret<Vec<u8>>>,
    pub api_keys: Option<ApiKeys>,
    pub jwt: Vec<JwtIssuer>,
    /// Client certificates (verified by an mTLS listener) as credentials; `None` = not used.
    pub client_certs: Option<Vec<CertSubject>>,
}

/// Maps a client certificate subject (first URI SAN, else first DNS SAN, else CN) to a
/// tenant and roles.
#[derive(Debug, Clone)]
pub struct CertSubject {
    /// Exact subject, or a prefix when it ends with `*`.
    pub pattern: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
}

impl CertSubject {
    pub fn matches(&self, subject: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => subject.starts_with(prefix),
            None => subject == self.pattern,
        }
    }
}

/// Where an issuer's signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    Url(http::Uri),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct JwtIssuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<rampart_identity::jwt::Alg>,
    pub jwks: JwksSource,
    /// Extra CA for an https JWKS URL.
    pub ca: Option<PathBuf>,
    pub leeway: Duration,
    pub subject_claim: String,
    pub tenant_claim: Option<String>,
    pub roles_claim: Option<String>,
    pub refresh_interval: Duration,
    pub min_refresh_interval: Duration,
    pub max_stale: Duration,
}

#[derive(Debug, Clone)]
pub struct ApiKeys {
    /// Where keys (hashes only) live, managed with `rampart keys`.
    pub store: KeyStoreConfig,
    /// Headers a key is read from, in order: `authorization` (as `Bearer <key>`) and/or
    /// any other header carrying the bare key (e.g. `x-api-key`).
    pub headers: Vec<HeaderName>,
    /// How often the key file is checked for changes (the revocation bound).
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub enum KeyStoreConfig {
    /// A TOML file, for GitOps: the embedded default.
    File(PathBuf),
    /// A PostgreSQL table shared by many nodes (connection string from a secret).
    Postgres(Secret<String>),
}

#[derive(Debug, Clone, Default)]
pub struct RoleConfig {
    pub routes: Vec<String>,
    pub models: Vec<String>,
    pub actions: Vec<rampart_identity::Action>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub node_id: String,
    pub shutdown_grace: Duration,
    pub access_log: bool,
    /// Request-serving threads, each with its own event loop, listener socket
    /// (SO_REUSEPORT) and upstream connection pool.
    pub workers: usize,
    /// Keys each in-process limit tracks at most (memory: about 100 bytes a key);
    /// read at start.
    pub limit_keys: usize,
    /// How often the config file is checked for a change, which is then reloaded as
    /// SIGHUP would (a mounted Kubernetes ConfigMap changes in place); read at start.
    pub watch_config: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Admin {
    /// `None` when the admin listener is disabled.
    pub listen: Option<SocketAddr>,
    /// Serve `/metrics` without credentials (only allowed on a loopback address).
    pub public_metrics: bool,
    /// The web console at `/console/` on the admin listener.
    pub console: Console,
}

/// `[admin.console]`.
#[derive(Debug, Clone)]
pub struct Console {
    pub enabled: bool,
    pub session_idle: Duration,
    pub session_max: Duration,
    pub oidc: Option<ConsoleOidc>,
}

/// `[admin.console.oidc]`: sign-in with an OpenID Connect provider.
#[derive(Debug, Clone)]
pub struct ConsoleOidc {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<Secret<String>>,
    pub redirect_url: http::Uri,
    pub scopes: Vec<String>,
    pub name: String,
    pub ca: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub name: String,
    pub addr: SocketAddr,
    /// Accept HTTP/2 with prior knowledge on a plaintext listener.
    pub h2c: bool,
    pub tls: Option<ListenerTls>,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    /// Open connections one client IP may hold, trusted proxies included; `None`:
    /// `defaults::MAX_CONNECTIONS_PER_IP` for every peer but the trusted proxies.
    pub max_connections_per_ip: Option<usize>,
    /// Peers whose X-Forwarded-For / Forwarded are believed: the client address is then
    /// the right-most address in X-Forwarded-For that is not a trusted proxy, and the
    /// forwarding headers are kept and appended to instead of replaced.
    pub trusted_proxies: Vec<Cidr>,
}

#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// The `Strict-Transport-Security` value put on every answer of this listener
    /// (`None`: turned off with `hsts = ""`).
    pub hsts: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub name: String,
    pub targets: Vec<Target>,
    pub balance: Balance,
    pub connect_timeout: Duration,
    /// Speak HTTP/2 (prior knowledge on http, ALPN on https) to the targets.
    pub http2: bool,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_target: usize,
    pub health: Health,
    pub tls: UpstreamTls,
    /// Headers added to every upstream request (credentials for the model server).
    pub headers: Vec<(HeaderName, Secret<HeaderValue>)>,
}

/// One upstream server: `http://host:port` or `https://host:port`, no path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub authority: Authority,
}

impl Target {
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

#[derive(Debug, Clone)]
pub struct Health {
    pub max_failures: u32,
    pub cooldown: Duration,
    /// Active checks: `GET path` every `interval`; `None` means passive health only.
    pub active: Option<ActiveHealth>,
}

#[derive(Debug, Clone)]
pub struct ActiveHealth {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// Extra root CA (PEM); when absent the Mozilla roots are trusted.
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub server_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub path: PathMatch,
    /// Lower-case host names without port; empty means any host.
    pub hosts: Vec<String>,
    /// Names of the listeners this route answers on; empty means every listener.
    pub listeners: Vec<String>,
    /// Empty means any method.
    pub methods: Vec<Method>,
    /// Index into [`Config::upstreams`].
    pub upstream: usize,
    pub protocol: Protocol,
    /// Reachable without authentication. Routes are closed unless this is set.
    pub public: bool,
    /// Only principals of this tenant may use the route.
    pub tenant: Option<String>,
    /// Send the client's credential headers upstream (stripped by default).
    pub forward_credentials: bool,
    /// When non-empty, only clients in these networks may use the route.
    pub allow_ips: Vec<Cidr>,
    /// Clients in these networks are refused (checked before `allow_ips`).
    pub deny_ips: Vec<Cidr>,
    pub limits: Limits,
    pub timeouts: Timeouts,
    /// How prompt tokens are counted for token budgets.
    pub tokenizer: Tokenizer,
    /// Add `stream_options.include_usage` to streamed requests that a token budget
    /// covers, so the real usage can be charged; the extra usage event is removed
    /// before the client sees it when the client did not ask for it.
    pub request_usage: bool,
    /// The content policy, by name in [`Config::policies`].
    pub policy: Option<String>,
    /// Protocol validation of request bodies; `None` when off.
    pub validation: Option<Validation>,
    /// A JSON Schema request bodies must follow (`validation.json_schema`).
    pub json_schema: Option<rampart_detect::protocol::JsonSchema>,
    /// Bodies go into the audit trail, encrypted per data subject.
    pub capture_payloads: bool,
    /// The approved model version this route serves.
    pub model: Option<ModelPin>,
    /// Output hardening of a classifier route (`[routes.output]`).
    pub output: Option<OutputHardening>,
    pub watch: Option<RouteWatch>,
}

/// A route's output hardening: what each probability row may reveal, where the rows
/// are, and the privacy budget noisy answers spend.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputHardening {
    pub policy: rampart_watch::harden::Policy,
    /// KServe: output tensor names (every floating-point output when empty).
    pub outputs: Vec<String>,
    /// JSON routes: where the rows are.
    pub path: Option<rampart_watch::tensor::JsonPath>,
    pub budget: Option<PrivacyBudget>,
    /// OpenAI routes: logprobs and embeddings.
    pub llm: Option<rampart_watch::llm::LlmPolicy>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrivacyBudget {
    pub epsilon: f64,
    pub delta: f64,
    pub window: Duration,
    pub when_spent: crate::raw::WhenSpent,
    /// `local`: per node; `redis`: one budget per principal for every node.
    pub backend: LimitBackend,
}

/// A route's pinned model version (`[routes.model]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPin {
    pub version: Option<String>,
    /// `sha256:<64 hex digits>`.
    pub manifest_digest: String,
    pub manifest: Option<PathBuf>,
    pub public_key: Option<PathBuf>,
}

/// What protocol validation checks on a route.
#[derive(Debug, Clone, PartialEq)]
pub enum Validation {
    Openai(rampart_detect::protocol::OpenAiRules),
    Kserve(rampart_detect::protocol::KserveRules),
}

/// A validated content policy. Rules map a kind selector — a kind name such as
/// `pii.email`, a family `pii.*` / `secret.*`, or `*` — to an action; the most
/// specific selector wins.
#[derive(Debug, Clone)]
pub struct ContentPolicy {
    pub name: String,
    pub min_confidence: f32,
    pub shadow: bool,
    pub request: Vec<(String, ContentAction)>,
    pub response: Vec<(String, ContentAction)>,
    pub canary: bool,
    pub hash_key: Option<Secret<String>>,
    /// Largest non-streamed response body held for inspection.
    pub max_response_bytes: u64,
    /// Prompt-injection scoring: (action, threshold); `None` when off.
    pub injection: Option<(ContentAction, Option<f32>)>,
    /// Scores from this threshold up to the injection threshold go to reviewers:
    /// (`hold` or `review`, band start).
    pub injection_review: Option<(ContentAction, f32)>,
    /// What injection scoring reads on OpenAI routes: message roles and
    /// `tool_definitions` ([`INJECTION_SCOPES`]); every one by default.
    pub injection_scope: Vec<String>,
    /// Responses that cannot be parsed and inspected pass (flagged, counted, logged)
    /// instead of being refused.
    pub fail_open: bool,
}

/// What `injection.scope` may name: the roles of chat messages, and tool definitions.
pub const INJECTION_SCOPES: [&str; 7] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
    "tool_definitions",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            // At a segment boundary: `/v2/` and `/v2` both match `/v2` itself and
            // `/v2/…`, never `/v2x` (what clients such as tritonclient expect of a
            // route for a protocol's base path, and no sibling path leaks in).
            PathMatch::Prefix(p) => {
                let base = p.strip_suffix('/').unwrap_or(p);
                path.strip_prefix(base)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

#[cfg(test)]
mod path_tests {
    use super::PathMatch;

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        let v2 = PathMatch::Prefix("/v2/".into());
        assert!(v2.matches("/v2"));
        assert!(v2.matches("/v2/"));
        assert!(v2.matches("/v2/models/iris/infer"));
        assert!(!v2.matches("/v2x"));
        assert!(!v2.matches("/v"));
        let chat = PathMatch::Prefix("/v1/chat".into());
        assert!(chat.matches("/v1/chat/completions"));
        assert!(chat.matches("/v1/chat"));
        assert!(!chat.matches("/v1/chatty"));
        let root = PathMatch::Prefix("/".into());
        assert!(root.matches("/"));
        assert!(root.matches("/anything/at/all"));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub max_json_depth: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub first_byte: Duration,
    pub total: Duration,
    pub idle: Duration,
}
