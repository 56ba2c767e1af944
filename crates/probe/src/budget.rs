//! The traffic budget every probe request passes through: at most `requests`
//! requests, none after `seconds`, no faster than `rps`, none after a stop (Ctrl-C).
//! A request the budget refuses is never sent; the case that wanted it is reported as
//! not run (`skipped: budget`), so a partial report says what it did not test.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// `requests=N,seconds=S,rps=R` (any subset; the rest default).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    pub requests: u64,
    pub seconds: u64,
    pub rps: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            requests: 500,
            seconds: 300,
            rps: 20.0,
        }
    }
}

impl Limits {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut l = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: the budget is requests=N,seconds=S,rps=R"))?;
            let bad = || format!("`{part}`: {k} must be a positive number");
            match k {
                "requests" => l.requests = v.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?,
                "seconds" => l.seconds = v.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?,
                "rps" => {
                    l.rps = v
                        .parse()
                        .ok()
                        .filter(|n: &f64| n.is_finite() && *n > 0.0)
                        .ok_or_else(bad)?
                }
                _ => return Err(format!("`{k}`: the budget knows requests, seconds and rps")),
            }
        }
        Ok(l)
    }
}

/// The budget of one run, shared by every family.
#[derive(Debug)]
pub struct Budget {
    limits: Limits,
    started: Instant,
    sent: AtomicU64,
    stopped: Arc<AtomicBool>,
    /// When the next request may go (rps), as nanoseconds after `started`.
    next: tokio::sync::Mutex<u64>,
}

impl Budget {
    pub fn new(limits: Limits, stopped: Arc<AtomicBool>) -> Self {
        Self {
            limits,
            started: Instant::now(),
            sent: AtomicU64::new(0),
            stopped,
            next: tokio::sync::Mutex::new(0),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Requests sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Whether the run was stopped (Ctrl-C) or ran out of time or requests.
    pub fn exhausted(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
            || self.sent() >= self.limits.requests
            || self.started.elapsed() >= Duration::from_secs(self.limits.seconds)
    }

    pub fn stopped_by_user(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Takes one request from the budget, waiting for the rate; `false`: do not send.
    pub async fn take(&self) -> bool {
        let gap = Duration::from_secs_f64(1.0 / self.limits.rps);
        let mut next = self.next.lock().await;
        if self.exhausted() {
            return false;
        }
        let now = self.started.elapsed();
        let at = Duration::from_nanos(*next);
        if at > now {
            tokio::time::sleep(at - now).await;
            if self.exhausted() {
                return false;
            }
        }
        // Counted before the request goes, so no two callers overrun the limit.
        if self.sent.fetch_add(1, Ordering::SeqCst) >= self.limits.requests {
            self.sent.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        let base = at.max(now);
        *next = u64::try_from((base + gap).as_nanos()).unwrap_or(u64::MAX);
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)] // test code; its tasks are awaited
    use super::*;

    #[test]
    fn budgets_parse_and_name_what_is_wrong() {
        assert_eq!(
            Limits::parse("requests=50,rps=2").unwrap(),
            Limits {
                requests: 50,
                seconds: 300,
                rps: 2.0
            }
        );
        for bad in ["requests=0", "rps=-1", "seconds=x", "minutes=3", "requests"] {
            assert!(Limits::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn never_more_than_the_budget_and_never_faster_than_the_rate() {
        let stop = Arc::new(AtomicBool::new(false));
        let b = Arc::new(Budget::new(
            Limits {
                requests: 7,
                seconds: 60,
                rps: 50.0,
            },
            Arc::clone(&stop),
        ));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let b = Arc::clone(&b);
            tasks.push(tokio::spawn(async move { b.take().await }));
        }
        let mut granted = 0;
        for t in tasks {
            granted += usize::from(t.await.unwrap());
        }
        assert_eq!(granted, 7);
        assert_eq!(b.sent(), 7);
        // Seven requests at 50/s take at least six gaps of 20 ms.
        assert!(
            started.elapsed() >= Duration::from_millis(115),
            "{:?}",
            started.elapsed()
        );
        let b2 = Budget::new(Limits::default(), Arc::clone(&stop));
        stop.store(true, Ordering::SeqCst);
        assert!(!b2.take().await, "nothing after a stop");
    }
}
