//! A route's output hardening as the data plane runs it (`[routes.output]`): its
//! validated config, the privacy budgets spent on its noisy answers — in memory per
//! node, or in Redis for every node (`budget.backend = "redis"`) — and the keyed stream
//! its noise is drawn from. Plain data the router hands out with the route; the
//! `output` stage (`stages/output.rs`) uses it.

use std::sync::{Arc, Mutex};

use rampart_config::OutputHardening;
use rampart_config::raw::LimitBackend;
use rampart_limits::requests::RedisBackend;
use rampart_watch::budget::{Accountant, BudgetConfig, Cost};
use rampart_watch::rng::KeyedStream;

use crate::error::InitError;

/// ε is kept in Redis in units of 10⁻⁹, δ in units of 10⁻¹⁵ (integers: every node adds
/// the same way).
const EPSILON_UNIT: f64 = 1e9;
const DELTA_UNIT: f64 = 1e15;
/// Rounding slack in Redis units, so k answers of ε/k fit a budget of ε (10⁻⁶ of ε).
const SLACK_UNITS: i64 = 1000;

#[derive(Debug)]
enum Budgets {
    None,
    Local(Mutex<Accountant>),
    Shared {
        redis: Arc<RedisBackend>,
        route: String,
        window_secs: u64,
        limit: [i64; 2],
    },
}

#[derive(Debug)]
pub struct OutputRuntime {
    pub config: OutputHardening,
    budgets: Budgets,
    rng: Mutex<KeyedStream>,
}

/// A lock was poisoned by a panic elsewhere: the caller refuses the answer.
#[derive(Debug)]
pub struct Unavailable;

/// What paying for one answer came to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Payment {
    /// The route keeps no budget.
    Free,
    Paid,
    /// The budget is spent until the window renews.
    Spent {
        retry_after: u64,
    },
    /// The shared budget cannot be read (Redis down): treated like a spent budget.
    Unknown,
}

#[allow(clippy::cast_possible_truncation)] // finite and ≥ 0 by validation; `as` saturates
fn units(x: f64, unit: f64) -> i64 {
    (x * unit).round() as i64
}

impl OutputRuntime {
    pub fn build(route: &str, config: &OutputHardening, redis: Option<Arc<RedisBackend>>) -> Result<Self, InitError> {
        let rng = KeyedStream::from_system().map_err(|e| InitError::Keys(e.to_string()))?;
        let budgets = match (config.budget, redis) {
            (None, _) => Budgets::None,
            (Some(b), Some(redis)) if b.backend == LimitBackend::Redis => Budgets::Shared {
                redis,
                route: route.to_owned(),
                window_secs: b.window.as_secs().max(1),
                limit: [
                    units(b.epsilon, EPSILON_UNIT).saturating_add(SLACK_UNITS),
                    units(b.delta, DELTA_UNIT).saturating_add(SLACK_UNITS),
                ],
            },
            (Some(b), _) => Budgets::Local(Mutex::new(Accountant::new(
                BudgetConfig {
                    epsilon: b.epsilon,
                    delta: b.delta,
                    window_secs: b.window.as_secs().max(1),
                },
                rampart_config::defaults::PRIVACY_PRINCIPALS,
            ))),
        };
        Ok(Self {
            budgets,
            config: config.clone(),
            rng: Mutex::new(rng),
        })
    }

    /// Pays `cost` from `principal`'s budget, all or nothing.
    pub async fn spend(&self, principal: &str, cost: Cost) -> Result<Payment, Unavailable> {
        match &self.budgets {
            Budgets::None => Ok(Payment::Free),
            Budgets::Local(a) => {
                let now = u64::try_from(rampart_identity::time::now()).unwrap_or(0);
                let paid = a.lock().map_err(|_| Unavailable)?.spend(principal, cost, now);
                Ok(match paid {
                    Ok(_) => Payment::Paid,
                    Err(s) => Payment::Spent {
                        retry_after: s.retry_after,
                    },
                })
            }
            Budgets::Shared {
                redis,
                route,
                window_secs,
                limit,
            } => {
                let cost = [units(cost.epsilon, EPSILON_UNIT), units(cost.delta, DELTA_UNIT)];
                Ok(
                    match redis
                        .spend_budget("pb", route, principal, *window_secs, cost, *limit)
                        .await
                    {
                        Ok(Ok(_)) => Payment::Paid,
                        Ok(Err(retry_after)) => Payment::Spent { retry_after },
                        Err(_) => Payment::Unknown,
                    },
                )
            }
        }
    }

    /// Runs `f` with the route's noise source.
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut KeyedStream) -> T) -> Result<T, Unavailable> {
        Ok(f(&mut *self.rng.lock().map_err(|_| Unavailable)?))
    }
}
