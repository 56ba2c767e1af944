//! The privacy budget: how much ε (and δ) each principal may spend on noisy answers per
//! window. Every noisy row costs its mechanism's ε and δ (basic sequential
//! composition: the guarantees of k answers add up), so repeating one query k times
//! cannot average the noise away beyond what the budget allows: the (k+1)-th answer,
//! once the budget is spent, is refused or degraded to the label, as the route says.
//!
//! Windows are fixed and aligned to multiples of their length, so every node that
//! shares the state (in Redis, by the gateway) agrees on the window from the clock.
//! This is the in-process accountant; its entries are bounded.

use std::collections::HashMap;

/// A budget per principal per window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// ε a principal may spend per window.
    pub epsilon: f64,
    /// δ a principal may spend per window (0 for Laplace-only routes).
    pub delta: f64,
    pub window_secs: u64,
}

/// What one answer costs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cost {
    pub epsilon: f64,
    pub delta: f64,
}

/// Why an answer was not paid for: the budget is spent until the window ends.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("the privacy budget for this window is spent; it renews in {retry_after} s")]
pub struct Spent {
    pub retry_after: u64,
}

/// The in-process accountant: principal → (window index, ε spent, δ spent).
#[derive(Debug)]
pub struct Accountant {
    config: BudgetConfig,
    spent: HashMap<String, (u64, f64, f64)>,
    max_entries: usize,
}

/// Slack for floating-point sums, so k answers of ε/k fit a budget of ε.
const SLACK: f64 = 1e-9;

impl Accountant {
    pub fn new(config: BudgetConfig, max_entries: usize) -> Self {
        Self {
            config,
            spent: HashMap::new(),
            max_entries: max_entries.max(1),
        }
    }

    /// The window `now` (seconds since the epoch) falls in, and the seconds left in it.
    pub fn window(&self, now: u64) -> (u64, u64) {
        let w = self.config.window_secs.max(1);
        (now / w, w - now % w)
    }

    /// Pays `cost` from `principal`'s budget for the window of `now`, all or nothing.
    /// Returns the ε left.
    pub fn spend(&mut self, principal: &str, cost: Cost, now: u64) -> Result<f64, Spent> {
        let (window, left) = self.window(now);
        if !self.spent.contains_key(principal) && self.spent.len() >= self.max_entries {
            // Entries of past windows are worth nothing: drop them first.
            self.spent.retain(|_, (w, _, _)| *w == window);
            if self.spent.len() >= self.max_entries {
                // Still full of live principals: refusing is the safe answer (an
                // attacker rotating identities must not reset anyone's budget).
                return Err(Spent { retry_after: left });
            }
        }
        let entry = self.spent.entry(principal.to_owned()).or_insert((window, 0.0, 0.0));
        if entry.0 != window {
            *entry = (window, 0.0, 0.0);
        }
        let (eps, delta) = (entry.1 + cost.epsilon, entry.2 + cost.delta);
        if eps > self.config.epsilon + SLACK || delta > self.config.delta + SLACK {
            return Err(Spent { retry_after: left });
        }
        entry.1 = eps;
        entry.2 = delta;
        Ok(self.config.epsilon - eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::harden::{Mechanism, Noise, Policy, harden_row};
    use crate::rng::KeyedStream;

    #[test]
    fn spends_per_principal_per_window_and_renews() {
        let mut a = Accountant::new(
            BudgetConfig {
                epsilon: 1.0,
                delta: 0.0,
                window_secs: 60,
            },
            100,
        );
        let c = Cost {
            epsilon: 0.25,
            delta: 0.0,
        };
        for _ in 0..4 {
            assert!(a.spend("alice", c, 120).is_ok());
        }
        assert_eq!(a.spend("alice", c, 130), Err(Spent { retry_after: 50 }));
        assert!(a.spend("bob", c, 130).is_ok(), "budgets are per principal");
        assert!(a.spend("alice", c, 180).is_ok(), "a new window renews it");
        let gaussian = Cost {
            epsilon: 0.1,
            delta: 1e-6,
        };
        assert!(a.spend("carol", gaussian, 0).is_err(), "δ over a δ budget of 0");
    }

    #[test]
    fn a_full_table_refuses_new_principals_instead_of_forgetting_live_ones() {
        let mut a = Accountant::new(
            BudgetConfig {
                epsilon: 1.0,
                delta: 0.0,
                window_secs: 60,
            },
            2,
        );
        let c = Cost {
            epsilon: 1.0,
            delta: 0.0,
        };
        assert!(a.spend("a", c, 0).is_ok());
        assert!(a.spend("b", c, 0).is_ok());
        assert!(a.spend("c", c, 0).is_err());
        assert!(a.spend("a", c, 1).is_err(), "a's spent budget was not forgotten");
        assert!(a.spend("c", c, 60).is_ok(), "past windows' entries make room");
    }

    /// Repeating one query to average the noise away: with a budget of B and ε per
    /// answer an attacker gets at most B/ε answers, so the mean of what it gets keeps
    /// the error of B/ε samples — several times the error of an attacker the budget does
    /// not stop, which averages 100 times as many answers.
    #[test]
    fn repeated_queries_cannot_average_the_noise_away_beyond_the_budget() {
        let truth = [0.6, 0.3, 0.1];
        // Laplace scale 2/ε = 0.04: small enough that clipping at 0 rarely biases.
        let noise = Noise {
            mechanism: Mechanism::Laplace,
            epsilon: 50.0,
            delta: 0.0,
        };
        let policy = Policy {
            noise: Some(noise),
            decimals: Some(6),
            allow_label_change: true,
            ..Policy::passthrough()
        };
        let budget = BudgetConfig {
            epsilon: 500.0,
            delta: 0.0,
            window_secs: 3600,
        };
        let cost = Cost {
            epsilon: noise.epsilon,
            delta: 0.0,
        };
        let mut rng = KeyedStream::from_seed(b"average").unwrap();
        let mean_error = |answers: usize, rng: &mut KeyedStream| {
            let mut sum = 0.0;
            for _ in 0..answers {
                let mut row = truth.to_vec();
                harden_row(&mut row, &policy, rng).unwrap();
                sum += row[0];
            }
            (sum / answers as f64 - truth[0]).abs()
        };
        let (mut capped, mut free) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let mut a = Accountant::new(budget, 10);
            let mut answers = 0;
            while a.spend("attacker", cost, 5).is_ok() {
                answers += 1;
                assert!(answers <= 10, "more than B/ε answers");
            }
            assert_eq!(answers, 10);
            capped.push(mean_error(answers, &mut rng));
            free.push(mean_error(answers * 100, &mut rng));
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (capped, free) = (median(&mut capped), median(&mut free));
        assert!(capped > 5.0 * free, "capped {capped} vs unlimited {free}");
        assert!(
            capped > 0.005,
            "the capped attacker's error stays near scale·√2/√10: {capped}"
        );
    }
}
