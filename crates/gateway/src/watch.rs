//! Detector state as the data plane keeps it, per node, in memory:
//!
//! - [`RouteWatch`]: one classifier route's detectors (`[routes.watch]`) — each
//!   principal's extraction state, the route's drift windows and its share of
//!   low-margin answers;
//! - [`Shared`]: the gateway-wide part (`[watch]`) — behaviour per principal, the
//!   penalties detectors imposed, and the alert sinks.
//!
//! Tables are bounded (`[watch] principals`; the least recently seen tenth is forgotten
//! when full) and start afresh when the config is reloaded. With `[watch] backend =
//! "redis"`, penalties are also written to Redis and every node reads the others'
//! each second; detector state stays per node. The `watch` stage
//! (`stages/watch.rs`) feeds them and acts on what they report.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_limits::requests::RedisBackend;
use rampart_watch::behaviour::{Behaviour, Penalties, Penalty};
use rampart_watch::drift::{Categorical, Drift};
use rampart_watch::extraction::{self, Model, State};
use rampart_watch::signal::Signal;

use crate::alerts::Alerts;
use crate::error::InitError;
use crate::metrics::Metrics;

/// The probability rows of an answer as the model gave them, which the output stage
/// leaves in the exchange's stash for the watch stage.
#[derive(Debug)]
pub struct AnswerRows(pub Vec<Vec<f64>>);

/// Rows of one request the input detectors look at (an even sample of larger batches).
const MAX_ROWS_PER_REQUEST: usize = 256;

/// Weight of one answer in the route's running share of low-margin answers.
const SHARE_WEIGHT: f64 = 0.001;
/// The share assumed before answers arrive.
const INITIAL_LOW_MARGIN_SHARE: f64 = 0.05;

#[derive(Debug)]
pub struct RouteWatch {
    pub config: rampart_config::RouteWatch,
    model: Option<Model>,
    principals: Mutex<HashMap<String, (u64, State)>>,
    drift: Mutex<Drift>,
    /// LLM routes: prompts and outcomes against the route's first window.
    llm: Option<Mutex<(Categorical, Categorical)>>,
    low_margin_share: Mutex<f64>,
    max: usize,
}

/// A lock was poisoned by a panic elsewhere: detection is skipped for this exchange.
fn lock<T>(m: &Mutex<T>) -> Option<std::sync::MutexGuard<'_, T>> {
    m.lock().ok()
}

impl RouteWatch {
    pub fn build(
        config: &rampart_config::RouteWatch,
        protocol: rampart_config::Protocol,
        max: usize,
    ) -> Result<Self, InitError> {
        use rampart_watch::drift::{OUTCOME_BINS, OUTCOME_QUANTITIES, PROMPT_BINS, PROMPT_QUANTITIES};
        use rampart_watch::signal::Detector;
        let llm = (protocol == rampart_config::Protocol::Openai).then(|| {
            Mutex::new((
                Categorical::new(
                    Detector::DriftInput,
                    PROMPT_QUANTITIES,
                    &PROMPT_BINS,
                    config.drift_window,
                    config.drift_threshold,
                ),
                Categorical::new(
                    Detector::DriftOutput,
                    OUTCOME_QUANTITIES,
                    &OUTCOME_BINS,
                    config.drift_window,
                    config.drift_threshold,
                ),
            ))
        });
        let model = match &config.reference {
            Some(r) => Some(
                Model::new((**r).clone(), config.extraction)
                    .map_err(|e| InitError::Keys(format!("routes.watch.reference: {e}")))?,
            ),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            model,
            principals: Mutex::new(HashMap::new()),
            drift: Mutex::new(Drift::new(config.drift_window, config.drift_threshold)),
            llm,
            low_margin_share: Mutex::new(INITIAL_LOW_MARGIN_SHARE),
            max: max.max(10),
        })
    }

    /// Whether the input detectors run (a reference is configured).
    pub fn reads_inputs(&self) -> bool {
        self.model.is_some()
    }

    fn with_state(&self, principal: &str, now: u64, f: impl FnOnce(&Model, &mut State)) {
        let Some(model) = &self.model else { return };
        let Some(mut map) = lock(&self.principals) else { return };
        if !map.contains_key(principal) {
            rampart_watch::behaviour::make_room(&mut map, self.max, |(t, _)| *t);
        }
        let entry = map.entry(principal.to_owned()).or_default();
        entry.0 = now;
        f(model, &mut entry.1);
    }

    /// One request's feature rows (in reference order).
    pub fn observe_inputs(&self, principal: &str, now: u64, rows: &[Vec<f64>], out: &mut Vec<Signal>) {
        let Some(model) = &self.model else { return };
        let dims = model.dims();
        // A large batch is judged on an even sample of its rows, so one request cannot
        // buy unbounded detector work (every row still reaches the model).
        let step = rows.len().div_ceil(MAX_ROWS_PER_REQUEST).max(1);
        let sample = || rows.iter().step_by(step).filter(|r| r.len() == dims);
        self.with_state(principal, now, |model, state| {
            for row in sample() {
                model.observe_query(state, row, out);
            }
        });
        if let Some(mut drift) = lock(&self.drift) {
            for row in sample() {
                out.extend(drift.observe_input(&model.reference, row));
            }
        }
    }

    /// LLM routes: one request's prompt text.
    pub fn observe_prompt(&self, text: &str, out: &mut Vec<Signal>) {
        if let Some(llm) = &self.llm
            && let Some(mut l) = lock(llm)
        {
            out.extend(l.0.observe(rampart_watch::drift::prompt_row(text)));
        }
    }

    /// LLM routes: how one exchange ended.
    pub fn observe_outcome(&self, refused: bool, status: u16, out: &mut Vec<Signal>) {
        if let Some(llm) = &self.llm
            && let Some(mut l) = lock(llm)
        {
            out.extend(l.1.observe(rampart_watch::drift::outcome_row(refused, status)));
        }
    }

    /// Whether this is an LLM route's drift watch.
    pub fn watches_prompts(&self) -> bool {
        self.llm.is_some()
    }

    /// One answer's probability rows, before any hardening.
    pub fn observe_answers(&self, principal: &str, now: u64, rows: &[Vec<f64>], out: &mut Vec<Signal>) {
        if let Some(mut drift) = lock(&self.drift) {
            for row in rows {
                out.extend(drift.observe_output(row));
            }
        }
        let low = self.config.extraction.low_margin;
        let expected = {
            let Some(mut share) = lock(&self.low_margin_share) else {
                return;
            };
            for row in rows {
                let is_low = extraction::margin(row) < low;
                *share += SHARE_WEIGHT * (f64::from(u8::from(is_low)) - *share);
            }
            *share
        };
        self.with_state(principal, now, |model, state| {
            for row in rows {
                model.observe_margin(state, extraction::margin(row), expected, out);
            }
        });
    }
}

/// The gateway-wide detectors, penalties and alerts.
#[derive(Debug)]
pub struct Shared {
    /// `None` when only routes have detectors (no `[watch]`): behaviour is not watched.
    pub config: Option<rampart_config::Watch>,
    pub behaviour: Option<Mutex<Behaviour>>,
    pub penalties: Mutex<Penalties>,
    pub alerts: Alerts,
    pub metrics: Arc<Metrics>,
    /// How long a block or throttle lasts.
    pub penalty_secs: u64,
    /// Where penalties are shared with the other nodes (`[watch] backend = "redis"`).
    redis: Option<Arc<RedisBackend>>,
}

/// How often a node reads the penalties the others imposed.
const PENALTY_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

fn member(penalty: Penalty, key: &str) -> String {
    match penalty {
        Penalty::Block => format!("b|{key}"),
        Penalty::Throttle => format!("t|{key}"),
    }
}

/// Reads the shared penalties every [`PENALTY_SYNC`] into this node's table; ends when
/// the runtime that owns `shared` is dropped.
async fn sync_penalties(shared: std::sync::Weak<Shared>, redis: Arc<RedisBackend>, max: usize) {
    let mut tick = tokio::time::interval(PENALTY_SYNC);
    loop {
        tick.tick().await;
        if shared.strong_count() == 0 {
            return;
        }
        let Ok(list) = redis.penalties(max).await else { continue };
        let Some(shared) = shared.upgrade() else { return };
        let Ok(mut table) = shared.penalties.lock() else { return };
        for (m, until) in list {
            match m.split_once('|') {
                Some(("b", key)) => table.impose(key, Penalty::Block, until),
                Some(("t", key)) => table.impose(key, Penalty::Throttle, until),
                _ => {}
            }
        }
    }
}

impl Shared {
    /// Built when the config has `[watch]` or any route has `[routes.watch]`.
    pub fn build(
        config: &rampart_config::Config,
        audit: Option<Arc<crate::audit::AuditTrail>>,
        metrics: Arc<Metrics>,
        log: std::sync::mpsc::SyncSender<crate::stages::access_log::Message>,
        redis: Option<Arc<RedisBackend>>,
    ) -> Result<Option<Arc<Self>>, InitError> {
        if config.watch.is_none() && config.routes.iter().all(|r| r.watch.is_none()) {
            return Ok(None);
        }
        let defaults = rampart_config::Watch {
            alert_cooldown: rampart_config::defaults::ALERT_COOLDOWN,
            penalty: rampart_config::defaults::WATCH_PENALTY,
            throttle_per_minute: rampart_config::defaults::THROTTLE_PER_MINUTE,
            principals: rampart_config::defaults::WATCH_PRINCIPALS,
            alert_log: false,
            backend: rampart_config::raw::LimitBackend::Local,
            behaviour: rampart_watch::behaviour::BehaviourConfig {
                rate_factor: rampart_config::defaults::RATE_FACTOR,
                rate_floor: rampart_config::defaults::RATE_FLOOR,
                token_floor: rampart_config::defaults::TOKEN_FLOOR,
                denied_per_minute: rampart_config::defaults::DENIED_PER_MINUTE,
                refusals: rampart_config::defaults::REFUSALS,
            },
            rate_spike: rampart_watch::signal::Action::Alert,
            token_spike: rampart_watch::signal::Action::Alert,
            denied_burst: rampart_watch::signal::Action::Alert,
            refusals: rampart_watch::signal::Action::Alert,
            webhook: None,
        };
        let effective = config.watch.as_ref().unwrap_or(&defaults);
        let alerts = Alerts::start(effective, &config.server.node_id, audit, Arc::clone(&metrics), log)?;
        let redis = redis.filter(|_| effective.backend == rampart_config::raw::LimitBackend::Redis);
        let shared = Arc::new(Self {
            behaviour: config
                .watch
                .as_ref()
                .map(|w| Mutex::new(Behaviour::new(w.behaviour, w.principals))),
            penalties: Mutex::new(Penalties::new(effective.throttle_per_minute, effective.principals)),
            penalty_secs: effective.penalty.as_secs().max(1),
            config: config.watch.clone(),
            alerts,
            metrics,
            redis: redis.clone(),
        });
        if let Some(redis) = redis {
            #[allow(clippy::disallowed_methods)] // holds a Weak: ends when a reload drops the runtime
            tokio::spawn(sync_penalties(Arc::downgrade(&shared), redis, effective.principals));
        }
        Ok(Some(shared))
    }

    /// Imposes a penalty here, and on every node when penalties are shared (the
    /// others read it within [`PENALTY_SYNC`]; if Redis does not answer, this node's
    /// penalty still holds).
    pub fn impose(&self, key: &str, penalty: Penalty, until: u64) {
        if let Ok(mut table) = self.penalties.lock() {
            table.impose(key, penalty, until);
        }
        if let (Some(redis), Ok(handle)) = (&self.redis, tokio::runtime::Handle::try_current()) {
            let (redis, m) = (Arc::clone(redis), member(penalty, key));
            #[allow(clippy::disallowed_methods)] // one Redis call bounded by its timeout
            handle.spawn(async move {
                let _ = redis.add_penalty(&m, until).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_batch_is_judged_on_a_bounded_sample() {
        let rows: Vec<Vec<f64>> = (0..200)
            .map(|i| vec![f64::from(i), f64::from(i % 17), f64::from(i % 5)])
            .collect();
        let mut rng = rampart_watch::rng::KeyedStream::from_seed(b"batch").unwrap();
        let names = vec!["a".into(), "b".into(), "c".into()];
        let reference = rampart_watch::reference::Reference::calibrate(names, &rows, 16, &mut rng).unwrap();
        let config = rampart_config::RouteWatch {
            reference: Some(Arc::new(reference)),
            input: None,
            path: None,
            extraction: rampart_watch::extraction::ExtractionConfig {
                window: 100,
                min_queries: 40,
                alpha: 1e-6,
                low_margin: 0.1,
            },
            drift_window: 500,
            drift_threshold: 0.25,
            on_extraction: rampart_watch::signal::Action::Alert,
            on_out_of_distribution: rampart_watch::signal::Action::Record,
            on_drift: rampart_watch::signal::Action::Alert,
        };
        let watch = RouteWatch::build(&config, rampart_config::Protocol::Kserve, 100).unwrap();
        let batch: Vec<Vec<f64>> = (0..10_000).map(|i| vec![f64::from(i) * 0.01, 1.0, 2.0]).collect();
        let mut out = Vec::new();
        watch.observe_inputs("ip:10.0.0.1", 0, &batch, &mut out);
        let map = watch.principals.lock().unwrap();
        let queries = map.get("ip:10.0.0.1").unwrap().1.queries;
        assert!((200..=MAX_ROWS_PER_REQUEST as u64).contains(&queries), "{queries}");
    }
}
