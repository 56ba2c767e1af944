//! A circuit breaker for a shared backend (Redis limits): after
//! [`Breaker::THRESHOLD`] failures in a row it opens, and requests stop waiting for a
//! backend that is down — they get the configured fail mode at once. While open, one
//! probe at a time is let through every cool-down (the caller runs it off the request
//! path); its success closes the breaker, its failure doubles the cool-down up to
//! [`Breaker::MAX_COOLDOWN`]. It owns only this state machine: no I/O, no timers.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Closed: call the backend.
    Call,
    /// Open: do not call; apply the fail mode.
    Skip,
    /// Open, cool-down over: apply the fail mode, and probe the backend in the
    /// background (report the probe's result with `success` / `failure`).
    Probe,
}

#[derive(Debug)]
pub struct Breaker {
    failures: AtomicU32,
    /// Milliseconds after `base` until which the breaker stays open; 0 when closed.
    open_until: AtomicU64,
    cooldown_ms: AtomicU64,
    probing: AtomicBool,
    base: Instant,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            cooldown_ms: AtomicU64::new(Self::COOLDOWN_MS),
            probing: AtomicBool::new(false),
            base: Instant::now(),
        }
    }
}

impl Breaker {
    /// Consecutive failures that open the breaker.
    pub const THRESHOLD: u32 = 3;
    const COOLDOWN_MS: u64 = 250;
    const MAX_COOLDOWN_MS: u64 = 5_000;
    /// First wait before a probe.
    pub const COOLDOWN: Duration = Duration::from_millis(Self::COOLDOWN_MS);
    /// Longest wait between probes while the backend stays down.
    pub const MAX_COOLDOWN: Duration = Duration::from_millis(Self::MAX_COOLDOWN_MS);

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    pub fn admit(&self) -> Admit {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            return Admit::Call;
        }
        if self.now_ms() < until || self.probing.swap(true, Ordering::AcqRel) {
            return Admit::Skip;
        }
        Admit::Probe
    }

    /// Whether calls are being skipped.
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) != 0
    }

    pub fn success(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open_until.store(0, Ordering::Relaxed);
        self.cooldown_ms.store(Self::COOLDOWN_MS, Ordering::Relaxed);
        self.probing.store(false, Ordering::Release);
    }

    pub fn failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let was_open = self.is_open();
        if n >= Self::THRESHOLD || was_open {
            let cooldown = self.cooldown_ms.load(Ordering::Relaxed);
            self.open_until.store(self.now_ms() + cooldown, Ordering::Relaxed);
            if was_open {
                let next = (cooldown * 2).min(Self::MAX_COOLDOWN_MS);
                self.cooldown_ms.store(next, Ordering::Relaxed);
            }
        }
        self.probing.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_probes_once_and_closes_on_success() {
        let b = Breaker::default();
        for _ in 0..Breaker::THRESHOLD - 1 {
            b.failure();
            assert_eq!(b.admit(), Admit::Call);
        }
        b.failure();
        assert_eq!(b.admit(), Admit::Skip);
        std::thread::sleep(Breaker::COOLDOWN + Duration::from_millis(20));
        assert_eq!(b.admit(), Admit::Probe);
        assert_eq!(b.admit(), Admit::Skip, "one probe at a time");
        b.failure();
        assert_eq!(b.admit(), Admit::Skip, "a failed probe keeps it open");
        std::thread::sleep(Breaker::COOLDOWN * 2 + Duration::from_millis(20));
        assert_eq!(b.admit(), Admit::Probe);
        b.success();
        assert_eq!(b.admit(), Admit::Call);
        // A success in between resets the count.
        b.failure();
        b.success();
        b.failure();
        b.failure();
        assert_eq!(b.admit(), Admit::Call);
    }
}
