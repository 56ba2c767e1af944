//! Abuse limits enforced in-process: request rates (GCRA — a token bucket kept as one
//! "theoretical arrival time" per key, no timers), concurrent requests, and calendar
//! quotas (per UTC day or month), each counted per principal, tenant, client IP, route
//! or globally. A request passes only if every applicable limit allows it; when one
//! refuses, what earlier limits took is given back. Shadow limits count and report but
//! never refuse. State lives in [`LimitStore`], which outlives config reloads.
//!
//! Memory is bounded: each limit tracks at most `server.limit_keys` keys (about
//! [`BYTES_PER_KEY`] bytes each: ~10 MB per limit at the default 100 000). When a new key finds
//! the table full, entries that carry no state are dropped first (expired rate
//! entries, quota counts of past periods); if that is not enough, the idlest eighth
//! (rate keys closest to expiry, quota keys that used least) is evicted. A new key is
//! therefore always tracked and judged like any other: a full table never admits or
//! refuses everyone, and an evicted key merely restarts with a fresh allowance.
//!
//! Rate limits and quotas with `backend = "redis"` keep their counters in Redis, shared
//! by every node: GCRA and quota counting run as atomic Lua scripts on one key each
//! (cluster-safe: the whole key is a hash tag), with Redis's own clock. When Redis does
//! not answer within `redis.timeout`, the limit's `on_backend_error` applies — the same
//! limit per node (`local`, default), `open`, or `closed` (503) — with a metric and a log
//! line on each change of state, and Redis is used again as soon as it answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_config::{Config, LimitBackend, LimitKey, OnBackendError, QuotaPeriod};

use crate::{BackendError, Caller, OnBackendError as Hook};

/// Memory one tracked key costs, measured by `limits::tests::memory_per_key_is_bounded`
/// (key text of an IPv6 address, hash-table slot and growth headroom).
pub const BYTES_PER_KEY: usize = 100;

/// Makes room for one new key in a full table: drops what `stale` says carries no
/// state; when that frees nothing, evicts the eighth of the table that `rank` orders
/// lowest (the idlest keys).
fn make_room<V, R: Ord + Copy>(
    table: &mut HashMap<String, V>,
    max: usize,
    stale: impl Fn(&V) -> bool,
    rank: impl Fn(&V) -> R,
) {
    if table.len() < max {
        return;
    }
    table.retain(|_, v| !stale(v));
    if table.len() < max {
        return;
    }
    let mut ranks: Vec<R> = table.values().map(&rank).collect();
    let cut = ranks.len() / 8;
    let (_, threshold, _) = ranks.select_nth_unstable(cut);
    let threshold = *threshold;
    table.retain(|_, v| rank(v) > threshold);
    // Ties at the threshold could leave the table full: then drop any one more.
    if table.len() >= max
        && let Some(k) = table.keys().next().cloned()
    {
        table.remove(&k);
    }
    // Removals leave tombstones that would make the table grow past what `max` keys
    // need; rebuilding keeps its capacity at the bound.
    table.shrink_to(max);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key a limit counts this caller under; `None` when it does not apply (a tenant
/// limit for a caller without a tenant).
pub fn key_for(per: LimitKey, who: &Caller<'_>) -> Option<String> {
    match per {
        LimitKey::Principal => who.principal.map(|p| match (&p.key_id, p.credential) {
            (Some(id), c) => format!("{}:{id}", c.as_str()),
            (None, rampart_identity::Credential::Anonymous) => format!("ip:{}", who.ip),
            (None, c) => format!("{}:{}", c.as_str(), p.subject),
        }),
        LimitKey::Tenant => who.principal.and_then(|p| p.tenant.clone()),
        LimitKey::Ip => Some(who.ip.to_string()),
        LimitKey::Route => Some(who.route.to_owned()),
        LimitKey::Global => Some(String::new()),
    }
}

#[derive(Debug)]
pub struct RateState {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
    max_keys: usize,
}

/// The answer of one GCRA step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gcra {
    /// Allowed; `used` ns of the burst tolerance are now in use.
    Allowed { used: u64 },
    /// Refused; it would fit in `wait` ns.
    Refused { wait: u64 },
}

impl RateState {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// GCRA with a cost: allow when adding `increment` ns to the key's theoretical
    /// arrival time stays within `tolerance` ns of now (a token bucket without timers).
    /// Shared by request rates (increment = one interval) and token budgets (increment =
    /// tokens × per-token interval).
    pub(crate) fn take(&self, key: &str, increment: u64, tolerance: u64) -> Gcra {
        let now = self.now();
        let mut tats = lock(&self.tats);
        if !tats.contains_key(key) {
            // An expired arrival time is the same as no entry; the soonest to expire
            // carry the least state.
            make_room(&mut tats, self.max_keys, |tat| *tat <= now, |tat| *tat);
        }
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat.saturating_add(increment);
        let allow_at = new_tat.saturating_sub(tolerance);
        if now < allow_at {
            return Gcra::Refused { wait: allow_at - now };
        }
        tats.insert(key.to_owned(), new_tat);
        Gcra::Allowed { used: new_tat - now }
    }

    /// Moves a key's arrival time later (`later`) or earlier by `by` ns: charges more, or
    /// gives back what a take reserved.
    pub(crate) fn shift(&self, key: &str, later: bool, by: u64) {
        if let Some(tat) = lock(&self.tats).get_mut(key) {
            *tat = if later {
                tat.saturating_add(by)
            } else {
                tat.saturating_sub(by)
            };
        }
    }
}

#[derive(Debug)]
pub struct ConcurrencyState {
    counts: Mutex<HashMap<String, u64>>,
}

#[derive(Debug)]
pub struct QuotaState {
    counts: Mutex<HashMap<String, (i64, u64)>>,
    max_keys: usize,
}

/// Limit state by limit name; kept by the gateway across reloads.
#[derive(Debug)]
pub struct LimitStore {
    rates: Mutex<HashMap<String, Arc<RateState>>>,
    concurrency: Mutex<HashMap<String, Arc<ConcurrencyState>>>,
    quotas: Mutex<HashMap<String, Arc<QuotaState>>>,
    /// Keys each limit tracks at most (`server.limit_keys`).
    max_keys: usize,
}

impl Default for LimitStore {
    fn default() -> Self {
        Self::new(rampart_config::defaults::LIMIT_KEYS)
    }
}

impl LimitStore {
    pub fn new(max_keys: usize) -> Self {
        Self {
            rates: Mutex::default(),
            concurrency: Mutex::default(),
            quotas: Mutex::default(),
            max_keys: max_keys.max(8),
        }
    }

    /// Keys tracked by every in-process limit and token budget, by name.
    pub fn key_counts(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = lock(&self.rates)
            .iter()
            .map(|(n, s)| (n.clone(), lock(&s.tats).len()))
            .collect();
        out.extend(
            lock(&self.quotas)
                .iter()
                .map(|(n, s)| (n.clone(), lock(&s.counts).len())),
        );
        out.extend(
            lock(&self.concurrency)
                .iter()
                .map(|(n, s)| (n.clone(), lock(&s.counts).len())),
        );
        out
    }

    /// The GCRA state of a rate limit or token budget (limit names are unique).
    pub(crate) fn rate(&self, name: &str) -> Arc<RateState> {
        Arc::clone(lock(&self.rates).entry(name.to_owned()).or_insert_with(|| {
            Arc::new(RateState {
                epoch: Instant::now(),
                tats: Mutex::new(HashMap::new()),
                max_keys: self.max_keys,
            })
        }))
    }

    fn concurrency(&self, name: &str) -> Arc<ConcurrencyState> {
        Arc::clone(lock(&self.concurrency).entry(name.to_owned()).or_insert_with(|| {
            Arc::new(ConcurrencyState {
                counts: Mutex::new(HashMap::new()),
            })
        }))
    }

    fn quota(&self, name: &str) -> Arc<QuotaState> {
        Arc::clone(lock(&self.quotas).entry(name.to_owned()).or_insert_with(|| {
            Arc::new(QuotaState {
                counts: Mutex::new(HashMap::new()),
                max_keys: self.max_keys,
            })
        }))
    }
}

#[derive(Debug)]
struct Rate {
    cfg: rampart_config::RateLimit,
    state: Arc<RateState>,
    /// Emission interval and burst tolerance, in nanoseconds.
    interval: u64,
    tolerance: u64,
}

#[derive(Debug)]
struct Concurrency {
    cfg: rampart_config::ConcurrencyLimit,
    state: Arc<ConcurrencyState>,
}

#[derive(Debug)]
struct QuotaLimit {
    cfg: rampart_config::Quota,
    state: Arc<QuotaState>,
}

/// Releases a concurrency slot when the exchange ends.
#[derive(Debug)]
pub enum Hold {
    Local {
        state: Arc<ConcurrencyState>,
        key: String,
    },
    /// A slot counted in Redis; released with a bounded DECR when dropped.
    Redis {
        backend: Arc<RedisBackend>,
        key: String,
    },
}

impl Drop for Hold {
    fn drop(&mut self) {
        match self {
            Hold::Local { state, key } => {
                let mut counts = lock(&state.counts);
                if let Some(n) = counts.get_mut(key.as_str()) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        counts.remove(key.as_str());
                    }
                }
            }
            Hold::Redis { backend, key } => {
                // A short task with its own timeout; if it cannot run (no runtime, Redis
                // down) the key's expiry releases the slot.
                if let Ok(handle) = tokio::runtime::Handle::try_current() {
                    let (backend, key) = (Arc::clone(backend), std::mem::take(key));
                    handle.spawn(async move {
                        let mut conn = backend.conn.clone();
                        let _ = tokio::time::timeout(
                            backend.timeout,
                            redis::cmd("DECR").arg(key).query_async::<i64>(&mut conn),
                        )
                        .await;
                    });
                }
            }
        }
    }
}

/// Why a request was limited, for the 429 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub limit: String,
    pub message: String,
    /// Seconds until a retry can succeed.
    pub retry_after: u64,
    /// `RateLimit-Policy` value of the refusing limit.
    pub policy: String,
    /// The limit's shared store was unreachable and it fails closed (503, not 429).
    pub unavailable: bool,
}

/// The most constrained rate limit that applied, for `RateLimit` response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateStatus {
    pub policy: String,
    pub name: String,
    pub remaining: u64,
    pub reset: u64,
}

/// What the limit stage found for one exchange.
#[derive(Debug, Default)]
pub struct Outcome {
    pub holds: Vec<Hold>,
    pub status: Option<RateStatus>,
    /// Shadow limits that would have refused.
    pub shadow_refusals: Vec<String>,
}

fn applies(routes: &[String], route: &str) -> bool {
    routes.is_empty() || routes.iter().any(|r| r == route)
}

fn ceil_secs(nanos: u64) -> u64 {
    nanos.div_ceil(1_000_000_000).max(1)
}

/// Start of the current period and of the next, in Unix seconds (UTC).
fn period_bounds(period: QuotaPeriod, now: i64) -> (i64, i64) {
    match period {
        QuotaPeriod::Day => {
            let start = now - now.rem_euclid(86_400);
            (start, start + 86_400)
        }
        QuotaPeriod::Month => {
            let today = rampart_identity::time::format(now);
            let (y, m) = (
                today.get(0..4).and_then(|s| s.parse::<i64>().ok()).unwrap_or(1970),
                today.get(5..7).and_then(|s| s.parse::<i64>().ok()).unwrap_or(1),
            );
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let start = rampart_identity::time::parse(&format!("{y:04}-{m:02}-01T00:00:00Z")).unwrap_or(now);
            let next = rampart_identity::time::parse(&format!("{ny:04}-{nm:02}-01T00:00:00Z")).unwrap_or(now + 86_400);
            (start, next)
        }
    }
}

const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then return {0, allow_at - now} end
redis.call('SET', KEYS[1], new_tat, 'PX', math.floor((new_tat - now) / 1000) + 1)
return {1, new_tat - now}
";

const GIVE_BACK_LUA: &str = r"
local v = tonumber(redis.call('GET', KEYS[1]))
if v then redis.call('SET', KEYS[1], v - tonumber(ARGV[1]), 'KEEPTTL') end
return {1}
";

/// Moves a GCRA arrival time by ARGV[1] µs (negative: earlier), keeping the key alive
/// as long as it holds debt: token budgets charge the real cost after the exchange.
const SHIFT_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local v = tonumber(redis.call('GET', KEYS[1]))
if not v or v < now then v = now end
local nv = v + tonumber(ARGV[1])
if nv > now then
  redis.call('SET', KEYS[1], nv, 'PX', math.floor((nv - now) / 1000) + 1)
else
  redis.call('DEL', KEYS[1])
end
return {1}
";

/// Takes a concurrency slot; the key expires after ARGV[2] ms without new takers, which
/// bounds how long a crashed node's slots stay counted.
const SLOT_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return {0} end
return {1}
";

/// Spends from a windowed pair of budgets (a privacy budget's ε and δ, in integer
/// units), all or nothing. ARGV: window length (s), cost 1, cost 2, limit 1, limit 2.
/// Windows are aligned on Redis's clock, so every node agrees. Returns {1, left of
/// budget 1} when paid, {0, seconds until the window renews} when not.
const BUDGET_LUA: &str = r"
local t = redis.call('TIME')
local len = tonumber(ARGV[1])
local w = math.floor(tonumber(t[1]) / len)
local v = redis.call('HMGET', KEYS[1], 'w', 'a', 'b')
local a, b = 0, 0
if tonumber(v[1]) == w then a = tonumber(v[2]) or 0 b = tonumber(v[3]) or 0 end
a = a + tonumber(ARGV[2])
b = b + tonumber(ARGV[3])
if a > tonumber(ARGV[4]) or b > tonumber(ARGV[5]) then
  return {0, (w + 1) * len - tonumber(t[1])}
end
redis.call('HSET', KEYS[1], 'w', w, 'a', a, 'b', b)
redis.call('EXPIRE', KEYS[1], len + 60)
return {1, tonumber(ARGV[4]) - a}
";

/// The detectors' shared penalties (`[watch] backend = "redis"`): a sorted set of
/// `<kind>|<principal>` scored by the penalty's end (unix seconds).
const PENALTY_KEY: &str = "rampart:penalties:{watch}";

/// Adds a penalty, keeping a longer one already there; sweeps the expired.
const PENALTY_LUA: &str = r"
local t = redis.call('TIME')
local old = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
if (not old) or old < tonumber(ARGV[2]) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(t[1]))
return {1}
";

/// The penalties still running on Redis's clock, at most ARGV[1], with their ends.
const PENALTIES_LUA: &str = r"
local t = redis.call('TIME')
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. t[1], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
";

/// Slots of a crashed node are released this long after the last request took one.
const SLOT_TTL_MS: i64 = 15 * 60 * 1000;

const QUOTA_LUA: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIREAT', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then redis.call('DECR', KEYS[1]) return {0} end
return {1}
";

/// The shared store for `backend = "redis"` limits.
pub struct RedisBackend {
    conn: redis::aio::ConnectionManager,
    timeout: Duration,
    gcra: redis::Script,
    give_back: redis::Script,
    quota: redis::Script,
    slot: redis::Script,
    shift: redis::Script,
    budget: redis::Script,
    penalty: redis::Script,
    penalty_list: redis::Script,
    healthy: AtomicBool,
    /// After consecutive failures, requests apply the fail mode at once while a
    /// background probe waits for Redis (a refused connection no longer costs every
    /// request its full timeout).
    breaker: crate::breaker::Breaker,
    /// The verdict of the probe in flight, if any.
    probe_result: Mutex<Option<tokio::sync::oneshot::Receiver<bool>>>,
    on_error: Hook,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// PINGs one breaker probe may send, and the pause between them.
const PROBE_ATTEMPTS: u32 = 3;
const PROBE_PAUSE: Duration = Duration::from_millis(100);

impl RedisBackend {
    fn new(cfg: &rampart_config::Redis, on_error: Hook) -> Result<Self, BackendError> {
        let bad = |e: redis::RedisError| BackendError(format!("redis.url: {e}"));
        let client = redis::Client::open(cfg.url.expose().as_str()).map_err(bad)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout.max(Duration::from_millis(200))))
            .set_response_timeout(Some(cfg.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = redis::aio::ConnectionManager::new_lazy_with_config(client, config).map_err(bad)?;
        Ok(Self {
            conn,
            timeout: cfg.timeout,
            gcra: redis::Script::new(GCRA_LUA),
            give_back: redis::Script::new(GIVE_BACK_LUA),
            quota: redis::Script::new(QUOTA_LUA),
            slot: redis::Script::new(SLOT_LUA),
            shift: redis::Script::new(SHIFT_LUA),
            budget: redis::Script::new(BUDGET_LUA),
            penalty: redis::Script::new(PENALTY_LUA),
            penalty_list: redis::Script::new(PENALTIES_LUA),
            healthy: AtomicBool::new(true),
            breaker: crate::breaker::Breaker::default(),
            probe_result: Mutex::new(None),
            on_error,
        })
    }

    /// Whether to call Redis now; `Err` (after starting a background probe when one
    /// is due) while the breaker is open.
    fn admit(&self) -> Result<(), String> {
        match self.breaker.admit() {
            crate::breaker::Admit::Call => Ok(()),
            admit => {
                if admit == crate::breaker::Admit::Probe {
                    self.probe();
                }
                let e = "Redis failed repeatedly; the breaker is open while a probe waits for it".to_owned();
                (self.on_error)();
                Err(e)
            }
        }
    }

    /// A PING off the request path; its answer closes or keeps open the breaker. The
    /// connection manager answers the first command after an outage with the old
    /// connection's error while it reconnects, so a failed PING is tried again (up to
    /// [`PROBE_ATTEMPTS`] times, [`PROBE_PAUSE`] apart, each bounded by the timeout):
    /// otherwise a Redis that is back would stay unused for one more cool-down (up to
    /// 5 s). The task ends by itself.
    fn probe(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            self.breaker.failure();
            return;
        };
        let mut conn = self.conn.clone();
        let timeout = self.timeout.max(Duration::from_millis(200));
        let (tx, rx) = tokio::sync::oneshot::channel::<bool>();
        handle.spawn(async move {
            let mut ok = false;
            for attempt in 0..PROBE_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(PROBE_PAUSE).await;
                }
                ok = matches!(
                    tokio::time::timeout(timeout, redis::cmd("PING").query_async::<String>(&mut conn)).await,
                    Ok(Ok(_))
                );
                if ok {
                    break;
                }
            }
            let _ = tx.send(ok);
        });
        // The verdict is applied when the next request looks (no shared task state).
        *lock(&self.probe_result) = Some(rx);
    }

    /// Applies a finished probe's verdict.
    fn settle_probe(&self) {
        let mut slot = lock(&self.probe_result);
        if let Some(rx) = slot.as_mut() {
            match rx.try_recv() {
                Ok(true) => {
                    *slot = None;
                    drop(slot);
                    self.breaker.success();
                    self.note::<()>(&Ok(()));
                }
                Ok(false) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    *slot = None;
                    self.breaker.failure();
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => {}
            }
        }
    }

    async fn call(&self, script: &redis::Script, key: &str, args: &[i64]) -> Result<Vec<i64>, String> {
        let mut inv = script.key(key);
        for a in args {
            inv.arg(*a);
        }
        self.invoke(inv).await
    }

    /// One script call through the breaker, bounded by the timeout, its outcome noted.
    async fn invoke<T: redis::FromRedisValue>(&self, inv: redis::ScriptInvocation<'_>) -> Result<T, String> {
        self.settle_probe();
        self.admit()?;
        let mut conn = self.conn.clone();
        let result = match tokio::time::timeout(self.timeout, inv.invoke_async::<T>(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        self.note(&result);
        result
    }

    /// Runs several single-key scripts in one pipelined round trip (each stays atomic
    /// on its own key, so Redis Cluster still works). One result per call, in order.
    async fn batch(&self, calls: &[(&redis::Script, String, Vec<i64>)]) -> Vec<Result<Vec<i64>, String>> {
        self.settle_probe();
        if let Err(e) = self.admit() {
            return calls.iter().map(|_| Err(e.clone())).collect();
        }
        let run = |load: bool| {
            let mut pipe = redis::pipe();
            if load {
                for script in [&self.gcra, &self.quota, &self.slot] {
                    pipe.cmd("SCRIPT").arg("LOAD").arg(script_code(script, self)).ignore();
                }
            }
            for (script, key, args) in calls {
                pipe.cmd("EVALSHA").arg(script.get_hash()).arg(1).arg(key).arg(args);
            }
            let mut conn = self.conn.clone();
            async move { pipe.query_async::<Vec<Vec<i64>>>(&mut conn).await }
        };
        let mut outcome = tokio::time::timeout(self.timeout, run(false)).await;
        if matches!(&outcome, Ok(Err(e)) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)) {
            outcome = tokio::time::timeout(self.timeout, run(true)).await;
        }
        let result = match outcome {
            Ok(Ok(v)) if v.len() == calls.len() => Ok(v),
            Ok(Ok(_)) => Err("pipeline answered the wrong number of results".to_owned()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        };
        self.note(&result);
        match result {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => calls.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn note<T>(&self, result: &Result<T, String>) {
        match result {
            Ok(_) => {
                self.breaker.success();
                if !self.healthy.swap(true, Ordering::Relaxed) {
                    tracing::info!(
                        event = "limit_backend_recovered",
                        "Redis answers again; shared limits resume"
                    );
                }
            }
            Err(e) => {
                self.breaker.failure();
                (self.on_error)();
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(event = "limit_backend_failed", error = %e, "Redis unreachable; limits apply their on_backend_error mode");
                }
            }
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// One GCRA take with a cost on a shared key: `Ok(Ok(()))` allowed, `Ok(Err(wait_us))`
    /// refused, `Err` Redis did not answer.
    pub(crate) async fn take_cost(
        &self,
        key: &str,
        cost_us: i64,
        tolerance_us: i64,
    ) -> Result<Result<(), u64>, String> {
        let v = self.call(&self.gcra, key, &[cost_us, tolerance_us]).await?;
        Ok(if v.first() == Some(&1) {
            Ok(())
        } else {
            Err(u64::try_from(v.get(1).copied().unwrap_or(0)).unwrap_or(0))
        })
    }

    /// Spends `cost` from a shared windowed pair of budgets of `limit` (integer units;
    /// windows of `window_secs`, aligned on Redis's clock), all or nothing:
    /// `Ok(Ok(left))` paid, `Ok(Err(retry_after_secs))` spent, `Err` Redis did not answer.
    pub async fn spend_budget(
        &self,
        kind: &str,
        name: &str,
        key: &str,
        window_secs: u64,
        cost: [i64; 2],
        limit: [i64; 2],
    ) -> Result<Result<i64, u64>, String> {
        let window = i64::try_from(window_secs.max(1)).unwrap_or(i64::MAX);
        let v = self
            .call(
                &self.budget,
                &redis_key(kind, name, key),
                &[window, cost[0], cost[1], limit[0], limit[1]],
            )
            .await?;
        let second = v.get(1).copied().unwrap_or(0);
        Ok(if v.first() == Some(&1) {
            Ok(second)
        } else {
            Err(u64::try_from(second).unwrap_or(1).max(1))
        })
    }

    /// Adds a detector's penalty to the table every node reads (`member` is
    /// `<kind>|<principal>`, `until` its end in unix seconds); a longer one already
    /// there is kept.
    pub async fn add_penalty(&self, member: &str, until: u64) -> Result<(), String> {
        let mut inv = self.penalty.key(PENALTY_KEY);
        inv.arg(member).arg(until);
        self.invoke::<Vec<i64>>(inv).await.map(|_| ())
    }

    /// The penalties still running, `(member, end)`, at most `max` of them.
    pub async fn penalties(&self, max: usize) -> Result<Vec<(String, u64)>, String> {
        let mut inv = self.penalty_list.key(PENALTY_KEY);
        inv.arg(max);
        Ok(self
            .invoke::<Vec<String>>(inv)
            .await?
            .chunks(2)
            .filter_map(|c| {
                let end = c.get(1)?.parse::<f64>().ok()?;
                // Scores are whole seconds the gateway wrote.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let end = end.max(0.0) as u64;
                Some((c[0].clone(), end))
            })
            .collect())
    }

    /// Moves a shared GCRA key's arrival time by `delta_us` (negative gives back).
    pub(crate) async fn shift_cost(&self, key: &str, delta_us: i64) -> Result<(), String> {
        self.call(&self.shift, key, &[delta_us]).await.map(|_| ())
    }
}

/// The source of one of the backend's scripts (for SCRIPT LOAD).
fn script_code(script: &redis::Script, backend: &RedisBackend) -> &'static str {
    if std::ptr::eq(script, &backend.gcra) {
        GCRA_LUA
    } else if std::ptr::eq(script, &backend.quota) {
        QUOTA_LUA
    } else {
        SLOT_LUA
    }
}

pub(crate) fn redis_key(kind: &str, limit: &str, key: &str) -> String {
    // The whole identity is the hash tag: one slot per key in a Redis Cluster.
    format!("rampart:{kind}:{{{limit}:{key}}}")
}

pub(crate) fn unavailable(name: &str) -> Refusal {
    Refusal {
        code: "limit_backend_unavailable",
        limit: name.to_owned(),
        message: format!("limit \"{name}\" cannot be checked right now"),
        retry_after: 1,
        policy: format!("\"{name}\""),
        unavailable: true,
    }
}

/// The limits of one runtime, over the shared state.
#[derive(Debug, Default)]
pub struct Limiter {
    rates: Vec<Rate>,
    concurrency: Vec<Concurrency>,
    quotas: Vec<QuotaLimit>,
    redis: Option<Arc<RedisBackend>>,
}

/// How to give back a pipelined take that was never used (a limit before it refused).
#[derive(Debug, Clone, Copy)]
enum Undo {
    /// Move a GCRA arrival time back by this many microseconds.
    Rate(i64),
    /// Decrement a counter (slot or quota).
    Decr,
}

/// Pipelined Redis results by key, for one limit check.
type Prefetched = HashMap<String, (Result<Vec<i64>, String>, Undo)>;

enum Taken<'a> {
    Rate(&'a Rate, String, bool),
    Quota(&'a QuotaLimit, String, i64, bool),
}

impl Limiter {
    pub fn build(config: &Config, store: &LimitStore, on_error: Hook) -> Result<Self, BackendError> {
        let redis = match &config.redis {
            Some(r) => Some(Arc::new(RedisBackend::new(r, on_error)?)),
            None => None,
        };
        Ok(Self {
            rates: config
                .rate_limits
                .iter()
                .map(|r| {
                    let window = u64::try_from(r.window.as_nanos()).unwrap_or(u64::MAX);
                    let interval = (window / r.requests.max(1)).max(1);
                    Rate {
                        state: store.rate(&r.name),
                        interval,
                        tolerance: interval.saturating_mul(r.burst),
                        cfg: r.clone(),
                    }
                })
                .collect(),
            concurrency: config
                .concurrency_limits
                .iter()
                .map(|c| Concurrency {
                    state: store.concurrency(&c.name),
                    cfg: c.clone(),
                })
                .collect(),
            quotas: config
                .quotas
                .iter()
                .map(|q| QuotaLimit {
                    state: store.quota(&q.name),
                    cfg: q.clone(),
                })
                .collect(),
            redis,
        })
    }

    /// The shared Redis store, when one is configured (token budgets use it too).
    pub fn redis(&self) -> Option<Arc<RedisBackend>> {
        self.redis.clone()
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty() && self.concurrency.is_empty() && self.quotas.is_empty()
    }

    /// Sends every Redis-backed limit that applies to this exchange in one pipelined
    /// round trip; the results are consumed by the `take_*` calls below.
    async fn prefetch(&self, who: &Caller<'_>, now: i64) -> Prefetched {
        let Some(redis) = &self.redis else {
            return Prefetched::new();
        };
        let mut calls: Vec<(&redis::Script, String, Vec<i64>)> = Vec::new();
        let mut undo: Vec<Undo> = Vec::new();
        for rate in self.rates.iter().filter(|r| r.cfg.backend == LimitBackend::Redis) {
            if !applies(&rate.cfg.routes, who.route) {
                continue;
            }
            if let Some(key) = key_for(rate.cfg.per, who) {
                let (interval, tolerance) = rate.redis_args();
                calls.push((
                    &redis.gcra,
                    redis_key("rl", &rate.cfg.name, &key),
                    vec![interval, tolerance],
                ));
                undo.push(Undo::Rate(interval));
            }
        }
        for c in self.concurrency.iter().filter(|c| c.cfg.backend == LimitBackend::Redis) {
            if !applies(&c.cfg.routes, who.route) {
                continue;
            }
            if let Some(key) = key_for(c.cfg.per, who) {
                let max = i64::try_from(c.cfg.max).unwrap_or(i64::MAX);
                calls.push((&redis.slot, redis_key("c", &c.cfg.name, &key), vec![max, SLOT_TTL_MS]));
                undo.push(Undo::Decr);
            }
        }
        for q in self.quotas.iter().filter(|q| q.cfg.backend == LimitBackend::Redis) {
            if !applies(&q.cfg.routes, who.route) {
                continue;
            }
            if let Some(key) = key_for(q.cfg.per, who) {
                let (start, next) = period_bounds(q.cfg.period, now);
                let limit = i64::try_from(q.cfg.requests).unwrap_or(i64::MAX);
                calls.push((
                    &redis.quota,
                    redis_key("q", &q.cfg.name, &format!("{key}:{start}")),
                    vec![limit, next + 60],
                ));
                undo.push(Undo::Decr);
            }
        }
        if calls.is_empty() {
            return Prefetched::new();
        }
        let results = redis.batch(&calls).await;
        calls
            .into_iter()
            .map(|(_, key, _)| key)
            .zip(results.into_iter().zip(undo))
            .collect()
    }

    async fn fetch(
        pre: &mut Prefetched,
        redis: &RedisBackend,
        script: &redis::Script,
        key: &str,
        args: &[i64],
    ) -> Result<Vec<i64>, String> {
        match pre.remove(key) {
            Some((result, _)) => result,
            None => redis.call(script, key, args).await,
        }
    }

    async fn take_rate(&self, rate: &Rate, key: &str, pre: &mut Prefetched) -> Result<(RateStatus, bool), Refusal> {
        if let (LimitBackend::Redis, Some(redis)) = (rate.cfg.backend, &self.redis) {
            let (interval, tolerance) = rate.redis_args();
            let rkey = redis_key("rl", &rate.cfg.name, key);
            match Self::fetch(pre, redis, &redis.gcra, &rkey, &[interval, tolerance]).await {
                Ok(v) if v.first() == Some(&1) => {
                    let used = u64::try_from(v.get(1).copied().unwrap_or(0)).unwrap_or(0);
                    return Ok((
                        RateStatus {
                            policy: rate.policy(),
                            name: rate.cfg.name.clone(),
                            remaining: u64::try_from(tolerance).unwrap_or(0).saturating_sub(used)
                                / u64::try_from(interval).unwrap_or(1),
                            reset: ceil_secs(used.saturating_mul(1000)),
                        },
                        true,
                    ));
                }
                Ok(v) => {
                    let wait = u64::try_from(v.get(1).copied().unwrap_or(0)).unwrap_or(0);
                    return Err(rate.refusal(ceil_secs(wait.saturating_mul(1000))));
                }
                Err(_) => match rate.cfg.on_backend_error {
                    OnBackendError::Local => {}
                    OnBackendError::Open => {
                        return Ok((
                            RateStatus {
                                policy: rate.policy(),
                                name: rate.cfg.name.clone(),
                                remaining: rate.cfg.burst,
                                reset: 0,
                            },
                            false,
                        ));
                    }
                    OnBackendError::Closed => return Err(unavailable(&rate.cfg.name)),
                },
            }
        }
        rate.take(key).map(|s| (s, false))
    }

    /// `Ok(Some(hold))` taken (a `None` hold when Redis is down and the limit fails
    /// open: nothing to release), `Ok(None)` full, `Err` refused because Redis is down
    /// and the limit fails closed.
    async fn take_slot(
        &self,
        c: &Concurrency,
        key: &str,
        pre: &mut Prefetched,
    ) -> Result<Option<Option<Hold>>, Refusal> {
        if let (LimitBackend::Redis, Some(redis)) = (c.cfg.backend, &self.redis) {
            let rkey = redis_key("c", &c.cfg.name, key);
            let max = i64::try_from(c.cfg.max).unwrap_or(i64::MAX);
            match Self::fetch(pre, redis, &redis.slot, &rkey, &[max, SLOT_TTL_MS]).await {
                Ok(v) if v.first() == Some(&1) => {
                    return Ok(Some(Some(Hold::Redis {
                        backend: Arc::clone(redis),
                        key: rkey,
                    })));
                }
                Ok(_) => return Ok(None),
                Err(_) => match c.cfg.on_backend_error {
                    OnBackendError::Local => {}
                    OnBackendError::Open => return Ok(Some(None)),
                    OnBackendError::Closed => return Err(unavailable(&c.cfg.name)),
                },
            }
        }
        Ok(c.acquire(key).map(Some))
    }

    async fn take_quota(
        &self,
        q: &QuotaLimit,
        key: &str,
        start: i64,
        next: i64,
        pre: &mut Prefetched,
    ) -> Result<bool, Refusal> {
        if let (LimitBackend::Redis, Some(redis)) = (q.cfg.backend, &self.redis) {
            let rkey = redis_key("q", &q.cfg.name, &format!("{key}:{start}"));
            let limit = i64::try_from(q.cfg.requests).unwrap_or(i64::MAX);
            match Self::fetch(pre, redis, &redis.quota, &rkey, &[limit, next + 60]).await {
                Ok(v) => return Ok(v.first() == Some(&1)),
                Err(_) => match q.cfg.on_backend_error {
                    OnBackendError::Local => {}
                    OnBackendError::Open => return Ok(true),
                    OnBackendError::Closed => return Err(unavailable(&q.cfg.name)),
                },
            }
        }
        Ok(q.take(key, start))
    }

    async fn give_back(&self, taken: Vec<Taken<'_>>) {
        for t in taken {
            match t {
                Taken::Rate(rate, key, true) => {
                    if let Some(redis) = &self.redis {
                        let interval = i64::try_from(rate.interval / 1000).unwrap_or(i64::MAX);
                        let _ = redis
                            .call(&redis.give_back, &redis_key("rl", &rate.cfg.name, &key), &[interval])
                            .await;
                    }
                }
                Taken::Rate(rate, key, false) => rate.give_back(&key),
                Taken::Quota(q, key, start, true) => {
                    if let Some(redis) = &self.redis {
                        let mut conn = redis.conn.clone();
                        let rkey = redis_key("q", &q.cfg.name, &format!("{key}:{start}"));
                        let _ = tokio::time::timeout(
                            redis.timeout,
                            redis::cmd("DECR").arg(rkey).query_async::<i64>(&mut conn),
                        )
                        .await;
                    }
                }
                Taken::Quota(q, key, start, false) => q.give_back(&key, start),
            }
        }
    }

    /// Checks every applicable limit; all or nothing.
    pub async fn check(&self, who: &Caller<'_>) -> Result<Outcome, Refusal> {
        let mut out = Outcome::default();
        let mut taken: Vec<Taken<'_>> = Vec::new();
        let now = rampart_identity::time::now();
        let mut pre = self.prefetch(who, now).await;
        let refusal = 'check: {
            for rate in self.rates.iter().filter(|r| applies(&r.cfg.routes, who.route)) {
                let Some(key) = key_for(rate.cfg.per, who) else {
                    continue;
                };
                match self.take_rate(rate, &key, &mut pre).await {
                    Ok((status, shared)) => {
                        if out.status.as_ref().is_none_or(|s| status.remaining < s.remaining) {
                            out.status = Some(status);
                        }
                        taken.push(Taken::Rate(rate, key, shared));
                    }
                    Err(r) if rate.cfg.shadow && !r.unavailable => out.shadow_refusals.push(rate.cfg.name.clone()),
                    Err(r) => break 'check Some(r),
                }
            }
            for c in self.concurrency.iter().filter(|c| applies(&c.cfg.routes, who.route)) {
                let Some(key) = key_for(c.cfg.per, who) else {
                    continue;
                };
                match self.take_slot(c, &key, &mut pre).await {
                    Err(r) => break 'check Some(r),
                    Ok(Some(hold)) => out.holds.extend(hold),
                    Ok(None) if c.cfg.shadow => out.shadow_refusals.push(c.cfg.name.clone()),
                    Ok(None) => {
                        break 'check Some(Refusal {
                            code: "concurrency_limited",
                            limit: c.cfg.name.clone(),
                            message: format!(
                                "too many requests in flight for limit \"{}\" (max {})",
                                c.cfg.name, c.cfg.max
                            ),
                            retry_after: 1,
                            policy: format!("\"{}\";q={}", c.cfg.name, c.cfg.max),
                            unavailable: false,
                        });
                    }
                }
            }
            for q in self.quotas.iter().filter(|q| applies(&q.cfg.routes, who.route)) {
                let Some(key) = key_for(q.cfg.per, who) else {
                    continue;
                };
                let (start, next) = period_bounds(q.cfg.period, now);
                let shared = q.cfg.backend == LimitBackend::Redis && self.redis.as_ref().is_some_and(|r| r.healthy());
                match self.take_quota(q, &key, start, next, &mut pre).await {
                    Ok(true) => taken.push(Taken::Quota(q, key, start, shared)),
                    Ok(false) if q.cfg.shadow => out.shadow_refusals.push(q.cfg.name.clone()),
                    Ok(false) => {
                        let reset = rampart_identity::time::format(next);
                        break 'check Some(Refusal {
                            code: "quota_exceeded",
                            limit: q.cfg.name.clone(),
                            message: format!(
                                "quota \"{}\" of {} requests per {} is used up; it resets at {reset}",
                                q.cfg.name,
                                q.cfg.requests,
                                match q.cfg.period {
                                    QuotaPeriod::Day => "day",
                                    QuotaPeriod::Month => "month",
                                }
                            ),
                            retry_after: u64::try_from(next - now).unwrap_or(1).max(1),
                            policy: format!("\"{}\";q={};w={}", q.cfg.name, q.cfg.requests, next - start),
                            unavailable: false,
                        });
                    }
                    Err(r) => break 'check Some(r),
                }
            }
            None
        };
        match refusal {
            None => Ok(out),
            Some(r) => {
                // Give back what the other limits took; dropping `out` frees its slots.
                self.give_back(taken).await;
                // Pipelined takes of limits never reached (a limit before them refused).
                if let Some(redis) = &self.redis {
                    for (key, (result, undo)) in pre {
                        if !matches!(result, Ok(v) if v.first() == Some(&1)) {
                            continue;
                        }
                        match undo {
                            Undo::Rate(interval) => {
                                let _ = redis.call(&redis.give_back, &key, &[interval]).await;
                            }
                            Undo::Decr => {
                                let mut conn = redis.conn.clone();
                                let _ = tokio::time::timeout(
                                    redis.timeout,
                                    redis::cmd("DECR").arg(key).query_async::<i64>(&mut conn),
                                )
                                .await;
                            }
                        }
                    }
                }
                drop(out);
                Err(r)
            }
        }
    }
}

impl Rate {
    /// (interval, tolerance) in microseconds, as the Redis script takes them.
    fn redis_args(&self) -> (i64, i64) {
        (
            i64::try_from(self.interval / 1000).unwrap_or(i64::MAX).max(1),
            i64::try_from(self.tolerance / 1000).unwrap_or(i64::MAX),
        )
    }

    fn policy(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.cfg.name,
            self.cfg.requests,
            self.cfg.window.as_secs().max(1)
        )
    }

    fn refusal(&self, retry_after: u64) -> Refusal {
        Refusal {
            code: "rate_limited",
            limit: self.cfg.name.clone(),
            message: format!(
                "rate limit \"{}\" of {} requests per {} s exceeded",
                self.cfg.name,
                self.cfg.requests,
                self.cfg.window.as_secs_f64()
            ),
            retry_after,
            policy: self.policy(),
            unavailable: false,
        }
    }

    /// GCRA: allow when the new theoretical arrival time is within the burst tolerance.
    fn take(&self, key: &str) -> Result<RateStatus, Refusal> {
        let status = |remaining, reset| RateStatus {
            policy: self.policy(),
            name: self.cfg.name.clone(),
            remaining,
            reset,
        };
        match self.state.take(key, self.interval, self.tolerance) {
            Gcra::Allowed { used } => Ok(status(
                self.tolerance.saturating_sub(used) / self.interval,
                ceil_secs(used),
            )),
            Gcra::Refused { wait } => Err(self.refusal(ceil_secs(wait))),
        }
    }

    fn give_back(&self, key: &str) {
        self.state.shift(key, false, self.interval);
    }
}

impl Concurrency {
    fn acquire(&self, key: &str) -> Option<Hold> {
        let mut counts = lock(&self.state.counts);
        let n = counts.entry(key.to_owned()).or_insert(0);
        if *n >= self.cfg.max {
            return None;
        }
        *n += 1;
        Some(Hold::Local {
            state: Arc::clone(&self.state),
            key: key.to_owned(),
        })
    }
}

impl QuotaLimit {
    fn take(&self, key: &str, period: i64) -> bool {
        let mut counts = lock(&self.state.counts);
        if !counts.contains_key(key) {
            // Counts of a past period are spent; of this period, the smallest matter least.
            make_room(&mut counts, self.state.max_keys, |(p, _)| *p != period, |(_, n)| *n);
        }
        let entry = counts.entry(key.to_owned()).or_insert((period, 0));
        if entry.0 != period {
            *entry = (period, 0);
        }
        if entry.1 >= self.cfg.requests {
            return false;
        }
        entry.1 += 1;
        true
    }

    fn give_back(&self, key: &str, period: i64) {
        if let Some(entry) = lock(&self.state.counts).get_mut(key)
            && entry.0 == period
        {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u64, window_ms: u64, burst: u64) -> Rate {
        let window = std::time::Duration::from_millis(window_ms);
        let interval = u64::try_from(window.as_nanos()).unwrap() / requests;
        Rate {
            cfg: rampart_config::RateLimit {
                name: "t".into(),
                per: LimitKey::Global,
                backend: LimitBackend::Local,
                on_backend_error: OnBackendError::Local,
                requests,
                window,
                burst,
                routes: vec![],
                shadow: false,
            },
            state: LimitStore::default().rate("t"),
            interval,
            tolerance: interval * burst,
        }
    }

    #[test]
    fn gcra_allows_the_burst_then_one_per_interval() {
        let r = rate(10, 60_000, 3);
        let remaining: Vec<u64> = (0..3).map(|_| r.take("k").unwrap().remaining).collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = r.take("k").unwrap_err();
        assert_eq!(refused.code, "rate_limited");
        assert!((5..=6).contains(&refused.retry_after), "{refused:?}");
        // Other keys have their own budget; giving back frees one slot.
        assert!(r.take("other").is_ok());
        r.give_back("k");
        assert!(r.take("k").is_ok());
        assert!(r.take("k").is_err());
    }

    #[test]
    fn gcra_refills_over_time() {
        let r = rate(1000, 1000, 1); // one per millisecond
        assert!(r.take("k").is_ok());
        assert!(r.take("k").is_err());
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert!(r.take("k").is_ok());
    }

    #[test]
    fn quota_periods_are_calendar_aligned() {
        let t = rampart_identity::time::parse("2026-02-14T15:30:00Z").unwrap();
        let (s, n) = period_bounds(QuotaPeriod::Day, t);
        assert_eq!(rampart_identity::time::format(s), "2026-02-14T00:00:00Z");
        assert_eq!(rampart_identity::time::format(n), "2026-02-15T00:00:00Z");
        let (s, n) = period_bounds(QuotaPeriod::Month, t);
        assert_eq!(rampart_identity::time::format(s), "2026-02-01T00:00:00Z");
        assert_eq!(rampart_identity::time::format(n), "2026-03-01T00:00:00Z");
        let dec = rampart_identity::time::parse("2026-12-31T23:59:59Z").unwrap();
        assert_eq!(
            rampart_identity::time::format(period_bounds(QuotaPeriod::Month, dec).1),
            "2027-01-01T00:00:00Z"
        );
    }

    #[test]
    fn a_full_table_evicts_the_idlest_and_judges_new_keys_like_any_other() {
        let store = LimitStore::new(1000);
        let state = store.rate("per-ip");
        let hour = 3_600_000_000_000u64;
        // 5 000 distinct keys, none expiring within the test: every one is judged
        // (allowed once), none goes untracked, and the table never exceeds its bound.
        for i in 0..5000u32 {
            let key = format!("2001:db8::{i:x}");
            assert!(matches!(state.take(&key, hour, hour), Gcra::Allowed { .. }), "{key}");
            assert!(lock(&state.tats).len() <= 1000);
        }
        // A key that just used its allowance is still limited: it is among the
        // newest, so it was not evicted.
        assert!(matches!(state.take("2001:db8::1387", hour, hour), Gcra::Refused { .. }));
        assert_eq!(store.key_counts(), vec![("per-ip".to_owned(), lock(&state.tats).len())]);
    }

    #[test]
    fn memory_per_key_is_bounded() {
        // The documented bound, measured: a full table of IPv6 keys (the longest text
        // a client address takes) costs at most BYTES_PER_KEY per key — hash-table
        // slots at their power-of-two capacity plus each key's own allocation.
        let max = 100_000;
        let store = LimitStore::new(max);
        let state = store.rate("per-ip");
        for i in 0..300_000u32 {
            let key = format!("2001:db8:ffff:ffff:ffff:ffff:{:x}:{:x}", i >> 16, i & 0xffff);
            let _ = state.take(&key, 1 << 50, 1 << 50);
        }
        let tats = lock(&state.tats);
        assert!(tats.len() <= max);
        let slot = std::mem::size_of::<(String, u64)>() + 1;
        let table = tats.capacity().next_power_of_two() * slot;
        let keys: usize = tats.keys().map(String::capacity).sum();
        let per_key = (table + keys) / max;
        eprintln!("limit table: {per_key} bytes a key at {} keys", tats.len());
        assert!(per_key <= BYTES_PER_KEY, "{per_key} bytes a key");
    }
}
