//! Behaviour anomalies per principal, against the principal's own baseline, and the
//! penalties detectors impose:
//!
//! - **rate spike**: requests this minute above `rate_factor` × the principal's baseline
//!   (an exponentially weighted mean of its past minutes, idle minutes included) and
//!   above `rate_floor`, once three minutes of history exist;
//! - **token spike**: the same for LLM tokens (on routes that count them), above
//!   `token_floor` a minute;
//! - **denied burst**: `denied_per_minute` answers of 401, 403 or 404 within a minute —
//!   credential stuffing, key guessing, model or route enumeration;
//! - **refusals**: `refusals` of the principal's last 20 exchanges refused by policy
//!   (injection scores, content rules, validation) — an attacker iterating on a prompt.
//!
//! [`Penalties`] holds who is blocked or throttled until when. Both tables are bounded:
//! when full, the least recently seen tenth is forgotten.

use std::collections::{HashMap, VecDeque};

use crate::signal::{Detector, Signal};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BehaviourConfig {
    pub rate_factor: f64,
    pub rate_floor: u32,
    pub token_floor: u64,
    pub denied_per_minute: u32,
    pub refusals: u32,
}

/// Recent exchanges the refusal count looks at.
const RECENT: usize = 20;
/// Weight of the newest minute in the baseline.
const ALPHA: f64 = 0.3;

/// A per-minute count with its exponentially weighted baseline.
#[derive(Debug, Clone, Copy, Default)]
struct PerMinute {
    this_minute: u64,
    baseline: f64,
}

impl PerMinute {
    /// `gap` minutes have passed since the current one began.
    fn roll(&mut self, gap: u64) {
        #[allow(clippy::cast_precision_loss)] // counts per minute are far below 2^52
        let last = self.this_minute as f64;
        self.baseline = ALPHA * last + (1.0 - ALPHA) * self.baseline;
        self.baseline *= (1.0 - ALPHA).powi(i32::try_from(gap.saturating_sub(1)).unwrap_or(i32::MAX));
        self.this_minute = 0;
    }

    /// The spike ratio when this minute is above `floor` and `factor` × the baseline.
    fn spike(&self, factor: f64, floor: u64) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        let now = self.this_minute as f64;
        (self.this_minute > floor && now > factor * self.baseline.max(1.0))
            .then(|| now / (factor * self.baseline.max(1.0)))
    }
}

#[derive(Debug, Clone, Default)]
struct Principal {
    minute: u64,
    requests: PerMinute,
    tokens: PerMinute,
    minutes: u64,
    denied: VecDeque<u64>,
    recent: VecDeque<bool>,
    refused: u32,
    last_seen: u64,
}

#[derive(Debug)]
pub struct Behaviour {
    config: BehaviourConfig,
    principals: HashMap<String, Principal>,
    max: usize,
}

/// Forgets the least recently seen tenth of a table that holds `max` entries or more
/// (`last_seen` of each entry); does nothing below that.
pub fn make_room<V>(map: &mut HashMap<String, V>, max: usize, last_seen: impl Fn(&V) -> u64) {
    if map.len() < max {
        return;
    }
    let mut seen: Vec<u64> = map.values().map(&last_seen).collect();
    let cut = seen.len() / 10;
    let (_, nth, _) = seen.select_nth_unstable(cut);
    let nth = *nth;
    map.retain(|_, v| last_seen(v) > nth);
}

impl Behaviour {
    pub fn new(config: BehaviourConfig, max: usize) -> Self {
        Self {
            config,
            principals: HashMap::new(),
            max: max.max(10),
        }
    }

    /// One finished exchange of `key` at `now` (seconds): its status, whether a policy
    /// refused it, and the LLM tokens it used (when the route counts them).
    pub fn observe(
        &mut self,
        key: &str,
        now: u64,
        status: u16,
        refused: bool,
        tokens: Option<u64>,
        out: &mut Vec<Signal>,
    ) {
        if !self.principals.contains_key(key) {
            make_room(&mut self.principals, self.max, |p| p.last_seen);
        }
        let c = self.config;
        let p = self.principals.entry(key.to_owned()).or_default();
        let minute = now / 60;
        if p.minutes == 0 && p.requests.this_minute == 0 {
            p.minute = minute;
        }
        if minute > p.minute {
            let gap = minute - p.minute;
            p.requests.roll(gap);
            p.tokens.roll(gap);
            p.minutes += gap;
            p.minute = minute;
        }
        p.requests.this_minute += 1;
        p.tokens.this_minute += tokens.unwrap_or(0);
        p.last_seen = now;
        if p.minutes >= 3 {
            if let Some(score) = p.requests.spike(c.rate_factor, u64::from(c.rate_floor)) {
                out.push(Signal {
                    detector: Detector::RateSpike,
                    score,
                    reason: format!(
                        "{} requests this minute against a baseline of {:.1} per minute",
                        p.requests.this_minute, p.requests.baseline
                    ),
                });
            }
            if tokens.is_some()
                && let Some(score) = p.tokens.spike(c.rate_factor, c.token_floor)
            {
                out.push(Signal {
                    detector: Detector::TokenSpike,
                    score,
                    reason: format!(
                        "{} tokens this minute against a baseline of {:.0} per minute",
                        p.tokens.this_minute, p.tokens.baseline
                    ),
                });
            }
        }
        if matches!(status, 401 | 403 | 404) {
            p.denied.push_back(now);
        }
        while p.denied.front().is_some_and(|t| *t + 60 <= now) {
            p.denied.pop_front();
        }
        while p.denied.len() > c.denied_per_minute as usize * 2 {
            p.denied.pop_front();
        }
        let denied = u32::try_from(p.denied.len()).unwrap_or(u32::MAX);
        if matches!(status, 401 | 403 | 404) && denied >= c.denied_per_minute {
            out.push(Signal {
                detector: Detector::DeniedBurst,
                score: f64::from(denied) / f64::from(c.denied_per_minute),
                reason: format!("{denied} answers of 401, 403 or 404 within a minute"),
            });
        }
        p.recent.push_back(refused);
        p.refused += u32::from(refused);
        if p.recent.len() > RECENT && p.recent.pop_front() == Some(true) {
            p.refused -= 1;
        }
        if refused && p.refused >= c.refusals {
            out.push(Signal {
                detector: Detector::Refusals,
                score: f64::from(p.refused) / f64::from(c.refusals),
                reason: format!(
                    "{} of the last {} requests were refused by policy",
                    p.refused,
                    p.recent.len()
                ),
            });
        }
    }
}

/// A penalty a detector imposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    Block,
    Throttle,
}

/// Why a principal's request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub penalty: Penalty,
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    penalty: Penalty,
    until: u64,
    minute: u64,
    count: u32,
}

/// Who is blocked or throttled, until when (seconds).
#[derive(Debug)]
pub struct Penalties {
    entries: HashMap<String, Entry>,
    max: usize,
    /// Requests a throttled principal may make per minute.
    pub throttle_per_minute: u32,
}

impl Penalties {
    pub fn new(throttle_per_minute: u32, max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            max: max.max(10),
            throttle_per_minute,
        }
    }

    /// Imposes `penalty` on `key` until `until`; a block is never shortened or
    /// softened into a throttle.
    pub fn impose(&mut self, key: &str, penalty: Penalty, until: u64) {
        if !self.entries.contains_key(key) {
            make_room(&mut self.entries, self.max, |e| e.until);
        }
        let e = self.entries.entry(key.to_owned()).or_insert(Entry {
            penalty,
            until,
            minute: 0,
            count: 0,
        });
        if penalty == Penalty::Block || e.penalty == Penalty::Throttle {
            e.penalty = penalty;
        }
        e.until = e.until.max(until);
    }

    /// Whether `key` may make a request at `now`.
    pub fn check(&mut self, key: &str, now: u64) -> Result<(), Refused> {
        let Some(e) = self.entries.get_mut(key) else {
            return Ok(());
        };
        if e.until <= now {
            self.entries.remove(key);
            return Ok(());
        }
        match e.penalty {
            Penalty::Block => Err(Refused {
                penalty: Penalty::Block,
                retry_after: e.until - now,
            }),
            Penalty::Throttle => {
                if now / 60 != e.minute {
                    e.minute = now / 60;
                    e.count = 0;
                }
                e.count += 1;
                if e.count > self.throttle_per_minute {
                    Err(Refused {
                        penalty: Penalty::Throttle,
                        retry_after: 60 - now % 60,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BehaviourConfig {
        BehaviourConfig {
            rate_factor: 10.0,
            rate_floor: 60,
            token_floor: 10_000,
            denied_per_minute: 20,
            refusals: 5,
        }
    }

    #[test]
    fn a_spike_against_the_own_baseline_fires_and_steady_load_does_not() {
        let mut b = Behaviour::new(config(), 100);
        let mut out = Vec::new();
        // Steady: 100 per minute for an hour — above the floor, never a spike.
        for minute in 0..60u64 {
            for i in 0..100 {
                b.observe("steady", minute * 60 + i % 60, 200, false, None, &mut out);
            }
        }
        assert!(out.is_empty(), "{out:?}");
        // 5 per minute for ten minutes, then 200 in one minute.
        for minute in 0..10u64 {
            for i in 0..5 {
                b.observe("spiky", minute * 60 + i, 200, false, None, &mut out);
            }
        }
        assert!(out.is_empty());
        for i in 0..200 {
            b.observe("spiky", 600 + i % 60, 200, false, None, &mut out);
        }
        assert!(out.iter().any(|s| s.detector == Detector::RateSpike));
    }

    #[test]
    fn a_token_spike_against_the_own_baseline_fires() {
        let mut b = Behaviour::new(config(), 100);
        let mut out = Vec::new();
        // Ten minutes of 5 requests of 500 tokens, then one minute of 5 requests of
        // 20 000: the request rate is steady, the token rate is not.
        for minute in 0..10u64 {
            for i in 0..5 {
                b.observe("sub:a", minute * 60 + i, 200, false, Some(500), &mut out);
            }
        }
        assert!(out.is_empty(), "{out:?}");
        for i in 0..5 {
            b.observe("sub:a", 600 + i, 200, false, Some(20_000), &mut out);
        }
        assert!(out.iter().any(|s| s.detector == Detector::TokenSpike), "{out:?}");
        assert!(out.iter().all(|s| s.detector != Detector::RateSpike));
    }

    #[test]
    fn denied_bursts_and_refusals() {
        let mut b = Behaviour::new(config(), 100);
        let mut out = Vec::new();
        // A 401 every 4 s never makes 20 in a minute.
        for i in 0..100 {
            b.observe("ip:a", i * 4, 401, false, None, &mut out);
        }
        assert!(out.is_empty(), "{out:?}");
        for i in 0..20 {
            b.observe("ip:b", 1000 + i, 404, false, None, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].detector, Detector::DeniedBurst);
        out.clear();
        for i in 0..40 {
            b.observe("sub:c", 2000 + i, 400, i % 5 == 0, None, &mut out);
        }
        assert!(out.is_empty(), "one refusal in five stays under 5 of 20");
        for i in 0..5 {
            b.observe("sub:d", 3000 + i, 400, true, None, &mut out);
        }
        assert_eq!(out.last().map(|s| s.detector), Some(Detector::Refusals));
    }

    #[test]
    fn penalties_block_throttle_and_expire_and_tables_stay_bounded() {
        let mut p = Penalties::new(2, 20);
        p.impose("a", Penalty::Throttle, 200);
        p.impose("a", Penalty::Block, 100);
        assert_eq!(p.check("a", 50).unwrap_err().penalty, Penalty::Block);
        assert_eq!(
            p.check("a", 50).unwrap_err().retry_after,
            150,
            "a block is never shortened"
        );
        p.impose("b", Penalty::Throttle, 300);
        assert!(p.check("b", 120).is_ok());
        assert!(p.check("b", 121).is_ok());
        assert_eq!(p.check("b", 122).unwrap_err().penalty, Penalty::Throttle);
        assert!(p.check("b", 180).is_ok(), "a new minute");
        assert!(p.check("b", 300).is_ok() && p.check("a", 300).is_ok());
        for i in 0..1000 {
            p.impose(&format!("k{i}"), Penalty::Block, 10_000 + i);
        }
        assert!(p.entries.len() <= 20);
        assert!(p.check("k999", 5000).is_err(), "the newest penalties are kept");
        let mut b = Behaviour::new(config(), 50);
        let mut out = Vec::new();
        for i in 0..1000 {
            b.observe(&format!("ip:{i}"), i, 200, false, None, &mut out);
        }
        assert!(b.principals.len() <= 50);
    }
}
