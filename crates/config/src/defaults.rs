//! Every default value of the configuration, each a named constant with the reason for
//! its value. docs/CONFIG.md quotes these; change both together.

use std::time::Duration;

/// Request bodies above this are refused with 413. A 128k-token prompt is about 0.5 MB
/// of JSON; 4 MiB leaves room for a few inline images while bounding memory per request.
pub const MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;

/// JSON documents nested deeper than this are refused with 400. Real model APIs nest
/// fewer than 10 levels; deep nesting is only useful to attack recursive parsers.
pub const MAX_JSON_DEPTH: u32 = 64;

/// Upper bound for one request's header block (HTTP/1.1 read buffer, HTTP/2 header
/// list). Browsers and SDKs send under 4 KiB; 16 KiB allows large JWTs.
/// `Strict-Transport-Security` on TLS listeners' answers: one year, as browsers'
/// preload lists ask for.
pub const HSTS: &str = "max-age=31536000";

pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// A client must finish sending request headers within this time (slowloris defence).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connecting to an upstream target. Model servers sit on the same network; a slow
/// connect means the target is down and another target should be tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Until the upstream's response headers arrive. LLM prefill of a long prompt can take
/// tens of seconds, so this is generous.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(120);

/// Whole exchange, including a streamed response. Long generations finish well within.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest silence between two body chunks, in either direction, before the exchange
/// is cut. Token streams produce a chunk every few tens of milliseconds.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long in-flight requests may run after SIGTERM before they are cut.
/// Kubernetes' default termination grace period is 30 s.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// Consecutive failures (connect errors, 5xx, timeouts) before a target is ejected.
pub const HEALTH_MAX_FAILURES: u32 = 3;

/// How long an ejected target stays out before it is tried again.
pub const HEALTH_COOLDOWN: Duration = Duration::from_secs(10);

/// Interval between active health checks, when a health path is configured.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(5);

/// One active health check must answer within this.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Idle upstream connections are closed after this; below typical server keep-alive
/// limits (uvicorn 5 s is lower, so the pool also retries a request that hit a
/// connection the server closed before it was used).
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per upstream target.
pub const POOL_MAX_IDLE_PER_TARGET: usize = 256;

/// The admin listener (health, metrics, reload) binds to loopback only by default.
pub const ADMIN_LISTEN: &str = "127.0.0.1:9901";

/// Open client connections per listener; over it, new connections wait in the
/// kernel's backlog instead of exhausting file descriptors.
pub const MAX_CONNECTIONS: usize = 10_000;

/// Open connections one client address may hold on a listener. A browser opens 6 per
/// host and an SDK's pool tens; 256 lets any real client through while one address
/// cannot take the listener's whole `max_connections` with silent sockets. Trusted
/// proxies (a load balancer, every connection from its address) are exempt.
pub const MAX_CONNECTIONS_PER_IP: usize = 256;

/// Keys each in-process limit tracks (per client IP, principal, tenant): at about 100
/// bytes a key, 100 000 keys cost ~10 MB per limit. Past it the idlest keys are
/// evicted and restart with a fresh allowance; no key is ever let through untracked.
pub const LIMIT_KEYS: usize = 100_000;

/// Request-serving threads when none are configured: one per available core, like
/// nginx's `worker_processes auto`.
pub fn workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Headers an API key is read from when none are configured.
pub const API_KEY_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

/// How often the key file is checked for changes: a revoked key stops working within
/// this time on every node that reads the file.
pub const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Shortest accepted pepper: 32 bytes, the HMAC-SHA256 block-size-safe minimum for a
/// key that must resist offline guessing.
pub const MIN_PEPPER_BYTES: usize = 32;

/// Clock skew tolerated on `exp`, `nbf` and `iat` (RFC 8725 asks for a small bound).
pub const JWT_LEEWAY: Duration = Duration::from_secs(30);

/// Regular JWKS refresh, so rotated keys are known before the first token uses them.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// An unknown `kid` triggers a JWKS fetch at most this often per issuer, so forged
/// key ids cannot turn the gateway into a traffic amplifier against the IdP.
pub const JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// While the identity provider is unreachable, cached keys keep working this long;
/// after that the issuer's tokens are refused (fail closed).
pub const JWKS_MAX_STALE: Duration = Duration::from_secs(3600);

/// A Redis round trip for a limit decision must answer within this; then the limit's
/// `on_backend_error` applies. Redis answers in well under a millisecond on a LAN.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// Completion tokens reserved for a request that sets no `max_tokens`: a typical chat
/// answer; the real usage replaces the reservation when the response ends.
pub const DEFAULT_COMPLETION_TOKENS: u64 = 256;

/// Node identity written to logs (and later audit records) when none is configured.
pub const NODE_ID: &str = "rampart-1";

/// Findings below this confidence are not acted on: validated values (check digits,
/// known key shapes) score 0.6–0.99, bare look-alikes without context score lower.
pub const MIN_CONFIDENCE: f32 = 0.5;

/// A non-streamed response is held whole while a content policy inspects it; 16 MiB
/// covers large JSON answers (embeddings of a big batch) without unbounded memory.
pub const MAX_INSPECTED_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

/// Audit segment files go here (relative to the config file) unless `audit.dir` says.
pub const AUDIT_DIR: &str = "audit";

/// `batch` durability: written records are fsynced this often. Group commit amortises
/// one fdatasync over every record of the interval; 10 ms bounds what a power loss
/// can take while keeping disk flushes to 100 a second.
pub const AUDIT_BATCH_INTERVAL: Duration = Duration::from_millis(10);

/// Records waiting for the writer before new requests are refused (503) or spilled:
/// about 64 MiB at ~1 KiB a record, seconds of peak traffic.
pub const AUDIT_QUEUE: usize = 65_536;

/// `batch` durability: a signed checkpoint at most this long after a record (and at
/// shutdown). Records after the last checkpoint could be cut off or extended without a
/// signature noticing; one second keeps that window short at the cost of at most one
/// Ed25519 signature (~20 µs) a second. `sync` checkpoints every group commit.
pub const AUDIT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// At most this many records between two checkpoints: bounds the unsigned window in
/// records (at 100k records/s, 100 signatures a second), and `rampart audit verify`
/// fails a trail with a longer unsigned gap or tail.
pub const AUDIT_CHECKPOINT_EVERY: u64 = 1000;

/// A new segment file after this many bytes: small enough to archive and ship daily,
/// large enough that rotation is rare.
pub const AUDIT_MAX_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

/// Header that names the data subject of captured payloads (the end user a prompt is
/// about), when the request carries no OpenAI `user` field.
pub const AUDIT_SUBJECT_HEADER: &str = "x-rampart-subject";

/// Captured bytes per request or response body: enough for long chat exchanges, small
/// enough that one record stays well under a megabyte.
pub const AUDIT_MAX_PAYLOAD_BYTES: usize = 256 * 1024;

/// Exchange records are kept at least this long: the EU AI Act asks deployers to keep
/// high-risk systems' logs for at least six months (Art. 26(6)); 183 days covers any six
/// calendar months. Shorter needs `retention.allow_short = true`.
pub const AUDIT_RETENTION_EXCHANGE_DAYS: i64 = 183;

/// Administrative and lifecycle records (reloads, key changes, starts and stops) are
/// the evidence of how the system was run: three years, a common audit cycle.
pub const AUDIT_RETENTION_ADMIN_DAYS: i64 = 3 * 365;

/// The window a route's privacy budget renews over (`[routes.output.budget] window`):
/// a day, so a principal's ε per day is what the route states — long enough that an
/// extraction or averaging attack cannot simply wait for a fresh budget every minute.
pub const PRIVACY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Principals whose privacy budget one node tracks per route; beyond it, new principals
/// are refused until a window ends (forgetting a live one would reset its budget).
pub const PRIVACY_PRINCIPALS: usize = 100_000;

/// Detectors (`[watch]`, `[routes.watch]`): one alert per detector and principal (or
/// route) per cooldown, so an attack produces an alert, not a flood.
pub const ALERT_COOLDOWN: Duration = Duration::from_secs(600);
/// How long a detector's block or throttle lasts.
pub const WATCH_PENALTY: Duration = Duration::from_secs(900);
pub const THROTTLE_PER_MINUTE: u32 = 10;
/// Principals each detector table tracks per node (the least recently seen tenth is
/// forgotten when full).
pub const WATCH_PRINCIPALS: usize = 100_000;
/// A rate spike: this many times the principal's own per-minute baseline ...
pub const RATE_FACTOR: f64 = 10.0;
/// ... and more than this many requests in the minute.
pub const RATE_FLOOR: u32 = 120;
/// ... and, for LLM tokens, more than this many in the minute.
pub const TOKEN_FLOOR: u64 = 20_000;
/// 401/403/404 answers within a minute that make a denied burst.
pub const DENIED_PER_MINUTE: u32 = 20;
/// Policy refusals among a principal's last 20 exchanges that fire.
pub const REFUSALS: u32 = 5;
/// OTLP export: spans waiting, spans per request, how long a partial batch waits,
/// per attempt.
pub const TRACE_QUEUE: usize = 8192;
pub const TRACE_BATCH: usize = 512;
pub const TRACE_INTERVAL: Duration = Duration::from_secs(1);
pub const TRACE_TIMEOUT: Duration = Duration::from_secs(10);
/// Webhook delivery: per attempt, attempts after the first, alerts waiting.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
pub const WEBHOOK_RETRIES: u32 = 5;
pub const WEBHOOK_QUEUE: usize = 1000;
/// Extraction detectors: spacings and flags kept per principal, and how many the
/// tests wait for.
pub const WATCH_WINDOW: usize = 100;
pub const WATCH_MIN_QUERIES: usize = 40;
/// False-alarm rate of one extraction test on honest traffic.
pub const WATCH_FALSE_ALARM: f64 = 1e-6;
/// An answer whose top two probabilities differ by less than this is at the boundary.
pub const LOW_MARGIN: f64 = 0.1;
/// Drift: the sliding window (queries or answers) and the PSI that fires.
pub const DRIFT_WINDOW: usize = 500;
pub const DRIFT_THRESHOLD: f64 = 0.25;

/// `[oversight]`: how often nodes read shared stops and decisions from PostgreSQL (the
/// bound within which a stop set on one node holds on all).
pub const OVERSIGHT_SYNC: Duration = Duration::from_secs(1);
/// Review items kept.
pub const MAX_REVIEWS: usize = 10_000;
/// Requests held for review at once, per node.
pub const MAX_HELD: usize = 64;
/// How long a held request waits for a reviewer.
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(120);
/// Journal file name in the audit directory when `[oversight] path` is not set.
pub const OVERSIGHT_FILE: &str = "oversight.jsonl";
/// `[admin.console]`: a console session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::from_secs(15 * 60);
/// A console session ends this long after sign-in.
pub const SESSION_MAX: Duration = Duration::from_secs(8 * 3600);
