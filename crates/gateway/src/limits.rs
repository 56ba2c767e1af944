//! Abuse limits enforced in-process: request rates (GCRA — a token bucket kept as one
//! "theoretical arrival time" per key, no timers), concurrent requests, and calendar
//! quotas (per UTC day or month), each counted per principal, tenant, client IP, route
//! or globally. A request passes only if every applicable limit allows it; when one
//! refuses, what earlier limits took is given back. Shadow limits count and report but
//! never refuse. State lives in [`LimitStore`], which outlives config reloads.
//!
//! Memory is bounded: each limit tracks at most [`MAX_KEYS`] keys; expired entries are
//! purged first, and past that new keys pass untracked and are counted in metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rampart_config::{Config, LimitKey, QuotaPeriod};

use crate::context::Exchange;
use crate::runtime::RouteRuntime;

/// Keys tracked per limit before new keys go untracked.
pub const MAX_KEYS: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key a limit counts this exchange under; `None` when it does not apply (a
/// tenant limit for a caller without a tenant).
fn key_for(per: LimitKey, ex: &Exchange, route: &RouteRuntime) -> Option<String> {
    match per {
        LimitKey::Principal => ex.principal.as_ref().map(|p| match (&p.key_id, p.credential) {
            (Some(id), c) => format!("{}:{id}", c.as_str()),
            (None, rampart_identity::Credential::Anonymous) => format!("ip:{}", ex.conn.peer.ip().to_canonical()),
            (None, c) => format!("{}:{}", c.as_str(), p.subject),
        }),
        LimitKey::Tenant => ex.principal.as_ref().and_then(|p| p.tenant.clone()),
        LimitKey::Ip => Some(ex.conn.peer.ip().to_canonical().to_string()),
        LimitKey::Route => Some(route.name.to_string()),
        LimitKey::Global => Some(String::new()),
    }
}

#[derive(Debug)]
pub struct RateState {
    epoch: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

#[derive(Debug)]
pub struct ConcurrencyState {
    counts: Mutex<HashMap<String, u64>>,
}

#[derive(Debug)]
pub struct QuotaState {
    counts: Mutex<HashMap<String, (i64, u64)>>,
}

/// Limit state by limit name; kept by the gateway across reloads.
#[derive(Debug, Default)]
pub struct LimitStore {
    rates: Mutex<HashMap<String, Arc<RateState>>>,
    concurrency: Mutex<HashMap<String, Arc<ConcurrencyState>>>,
    quotas: Mutex<HashMap<String, Arc<QuotaState>>>,
}

impl LimitStore {
    fn rate(&self, name: &str) -> Arc<RateState> {
        Arc::clone(lock(&self.rates).entry(name.to_owned()).or_insert_with(|| {
            Arc::new(RateState {
                epoch: Instant::now(),
                tats: Mutex::new(HashMap::new()),
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
pub struct Hold {
    state: Arc<ConcurrencyState>,
    key: String,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut counts = lock(&self.state.counts);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
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

/// The limits of one runtime, over the shared state.
#[derive(Debug, Default)]
pub struct Limiter {
    rates: Vec<Rate>,
    concurrency: Vec<Concurrency>,
    quotas: Vec<QuotaLimit>,
}

impl Limiter {
    pub fn build(config: &Config, store: &LimitStore) -> Self {
        Self {
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
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rates.is_empty() && self.concurrency.is_empty() && self.quotas.is_empty()
    }

    /// Checks every applicable limit; all or nothing.
    pub fn check(&self, ex: &Exchange, route: &RouteRuntime) -> Result<Outcome, Refusal> {
        let mut out = Outcome::default();
        let mut taken_rates: Vec<(&Rate, String)> = Vec::new();
        let mut taken_quotas: Vec<(&QuotaLimit, String, i64)> = Vec::new();
        let refuse = |out: Outcome,
                      taken_rates: Vec<(&Rate, String)>,
                      taken_quotas: Vec<(&QuotaLimit, String, i64)>,
                      r: Refusal| {
            for (rate, key) in taken_rates {
                rate.give_back(&key);
            }
            for (q, key, period) in taken_quotas {
                q.give_back(&key, period);
            }
            drop(out); // releases concurrency holds taken so far
            Err(r)
        };

        for rate in self.rates.iter().filter(|r| applies(&r.cfg.routes, &route.name)) {
            let Some(key) = key_for(rate.cfg.per, ex, route) else {
                continue;
            };
            match rate.take(&key) {
                Ok(status) => {
                    if out.status.as_ref().is_none_or(|s| status.remaining < s.remaining) {
                        out.status = Some(status);
                    }
                    taken_rates.push((rate, key));
                }
                Err(_) if rate.cfg.shadow => out.shadow_refusals.push(rate.cfg.name.clone()),
                Err(r) => return refuse(out, taken_rates, taken_quotas, r),
            }
        }
        for c in self.concurrency.iter().filter(|c| applies(&c.cfg.routes, &route.name)) {
            let Some(key) = key_for(c.cfg.per, ex, route) else {
                continue;
            };
            match c.acquire(&key) {
                Some(hold) => out.holds.push(hold),
                None if c.cfg.shadow => out.shadow_refusals.push(c.cfg.name.clone()),
                None => {
                    let r = Refusal {
                        code: "concurrency_limited",
                        limit: c.cfg.name.clone(),
                        message: format!(
                            "too many requests in flight for limit \"{}\" (max {})",
                            c.cfg.name, c.cfg.max
                        ),
                        retry_after: 1,
                        policy: format!("\"{}\";q={}", c.cfg.name, c.cfg.max),
                    };
                    return refuse(out, taken_rates, taken_quotas, r);
                }
            }
        }
        let now = rampart_identity::time::now();
        for q in self.quotas.iter().filter(|q| applies(&q.cfg.routes, &route.name)) {
            let Some(key) = key_for(q.cfg.per, ex, route) else {
                continue;
            };
            let (start, next) = period_bounds(q.cfg.period, now);
            if q.take(&key, start) {
                taken_quotas.push((q, key, start));
            } else if q.cfg.shadow {
                out.shadow_refusals.push(q.cfg.name.clone());
            } else {
                let reset = rampart_identity::time::format(next);
                let r = Refusal {
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
                };
                return refuse(out, taken_rates, taken_quotas, r);
            }
        }
        Ok(out)
    }
}

impl Rate {
    fn policy(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.cfg.name,
            self.cfg.requests,
            self.cfg.window.as_secs().max(1)
        )
    }

    fn now(&self) -> u64 {
        u64::try_from(self.state.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// GCRA: allow when the new theoretical arrival time is within the burst tolerance.
    fn take(&self, key: &str) -> Result<RateStatus, Refusal> {
        let now = self.now();
        let mut tats = lock(&self.state.tats);
        if tats.len() >= MAX_KEYS && !tats.contains_key(key) {
            tats.retain(|_, tat| *tat > now);
            if tats.len() >= MAX_KEYS {
                // Bounded memory: past the cap a new key is not tracked.
                return Ok(RateStatus {
                    policy: self.policy(),
                    name: self.cfg.name.clone(),
                    remaining: self.cfg.burst,
                    reset: 0,
                });
            }
        }
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + self.interval;
        let allow_at = new_tat.saturating_sub(self.tolerance);
        if now < allow_at {
            return Err(Refusal {
                code: "rate_limited",
                limit: self.cfg.name.clone(),
                message: format!(
                    "rate limit \"{}\" of {} requests per {} s exceeded",
                    self.cfg.name,
                    self.cfg.requests,
                    self.cfg.window.as_secs_f64()
                ),
                retry_after: ceil_secs(allow_at - now),
                policy: self.policy(),
            });
        }
        tats.insert(key.to_owned(), new_tat);
        let used = new_tat - now;
        Ok(RateStatus {
            policy: self.policy(),
            name: self.cfg.name.clone(),
            remaining: self.tolerance.saturating_sub(used) / self.interval,
            reset: ceil_secs(used),
        })
    }

    fn give_back(&self, key: &str) {
        if let Some(tat) = lock(&self.state.tats).get_mut(key) {
            *tat = tat.saturating_sub(self.interval);
        }
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
        Some(Hold {
            state: Arc::clone(&self.state),
            key: key.to_owned(),
        })
    }
}

impl QuotaLimit {
    fn take(&self, key: &str, period: i64) -> bool {
        let mut counts = lock(&self.state.counts);
        if counts.len() >= MAX_KEYS && !counts.contains_key(key) {
            counts.retain(|_, (p, _)| *p == period);
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
                requests,
                window,
                burst,
                routes: vec![],
                shadow: false,
            },
            state: Arc::new(RateState {
                epoch: Instant::now(),
                tats: Mutex::new(HashMap::new()),
            }),
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
}
