//! A route's output hardening as the data plane runs it (`[routes.output]`): its
//! validated config, the privacy budgets spent on its noisy answers (per node, per
//! principal, in memory), and the keyed stream its noise is drawn from. Plain data
//! the router hands out with the route; the `output` stage (`stages/output.rs`) uses it.

use std::sync::Mutex;

use rampart_config::OutputHardening;
use rampart_watch::budget::{Accountant, BudgetConfig, Cost, Spent};
use rampart_watch::rng::KeyedStream;

use crate::error::InitError;

#[derive(Debug)]
pub struct OutputRuntime {
    pub config: OutputHardening,
    accountant: Option<Mutex<Accountant>>,
    rng: Mutex<KeyedStream>,
}

/// A lock was poisoned by a panic elsewhere: the caller refuses the answer.
#[derive(Debug)]
pub struct Unavailable;

impl OutputRuntime {
    pub fn build(config: &OutputHardening) -> Result<Self, InitError> {
        let rng = KeyedStream::from_system().map_err(|e| InitError::Keys(e.to_string()))?;
        Ok(Self {
            accountant: config.budget.map(|b| {
                Mutex::new(Accountant::new(
                    BudgetConfig {
                        epsilon: b.epsilon,
                        delta: b.delta,
                        window_secs: b.window.as_secs().max(1),
                    },
                    rampart_config::defaults::PRIVACY_PRINCIPALS,
                ))
            }),
            config: config.clone(),
            rng: Mutex::new(rng),
        })
    }

    /// Pays `cost` from `principal`'s budget at `now` (seconds); `Ok(None)` when the
    /// route has no budget.
    pub fn spend(&self, principal: &str, cost: Cost, now: u64) -> Result<Option<Result<f64, Spent>>, Unavailable> {
        match &self.accountant {
            None => Ok(None),
            Some(a) => Ok(Some(a.lock().map_err(|_| Unavailable)?.spend(principal, cost, now))),
        }
    }

    /// Runs `f` with the route's noise source.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut KeyedStream) -> T) -> Result<T, Unavailable> {
        Ok(f(&mut *self.rng.lock().map_err(|_| Unavailable)?))
    }
}
