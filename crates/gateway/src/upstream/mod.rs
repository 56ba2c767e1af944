//! Upstream pools: the targets behind a route, how one is chosen for each request
//! (round-robin or least-outstanding), their health (passive ejection after
//! consecutive failures with re-admission after a cool-down; optional active checks),
//! and the pooled HTTP client (keep-alive, HTTP/1.1 or HTTP/2, TLS with a custom CA
//! and client certificate). Pools never retry a request that may have reached a
//! target; the proxy decides retries.
//!
//! Each worker thread has its own HTTP client (and so its own idle connections), so a
//! request and its upstream connection always live on the same event loop; health
//! state is shared by all workers through atomics.

pub mod forward;

use std::cell::Cell;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use http::{HeaderName, HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rampart_config::{Balance, Secret, Target, Upstream};
use tokio::time::Instant;

use crate::error::InitError;
use crate::metrics::{Metrics, Name};

/// Body sent to upstreams.
pub type UpstreamBody = http_body_util::combinators::BoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Marks the current thread as request worker `id` (0-based).
pub fn set_worker(id: usize) {
    WORKER.with(|w| w.set(id));
}

/// One target and its health state.
#[derive(Debug)]
pub struct TargetState {
    pub target: Target,
    pub label: Name,
    outstanding: AtomicUsize,
    failures: AtomicU32,
    /// Milliseconds since the pool's epoch until which the target is out; 0 = in.
    ejected_until: AtomicU64,
}

#[derive(Debug)]
pub struct Pool {
    pub name: Name,
    pub targets: Vec<TargetState>,
    pub headers: Vec<(HeaderName, Secret<HeaderValue>)>,
    /// One client per worker, plus one (last) for everything else (health checks).
    clients: Vec<HttpClient>,
    /// Targets are spoken to over HTTP/2.
    pub http2: bool,
    balance: Balance,
    max_failures: u32,
    cooldown: Duration,
    next: AtomicUsize,
    epoch: Instant,
    metrics: Arc<Metrics>,
}

/// Decrements the target's outstanding count when the exchange with it ends.
#[derive(Debug)]
pub struct Outstanding {
    pool: Arc<Pool>,
    index: usize,
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        if let Some(t) = self.pool.targets.get(self.index) {
            t.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Pool {
    pub fn new(key: &str, cfg: &Upstream, workers: usize, metrics: Arc<Metrics>) -> Result<Arc<Self>, InitError> {
        let tls = crate::server::tls::client_config(&format!("{key}.tls"), &cfg.tls)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match &cfg.tls.server_name {
            Some(name) => builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| InitError::Tls {
                    key: format!("{key}.tls.server_name"),
                    path: name.clone(),
                    reason: e.to_string(),
                })?,
            )),
            None => builder,
        };
        let connector = if cfg.http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        let clients = (0..=workers)
            .map(|_| {
                Client::builder(TokioExecutor::new())
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .pool_idle_timeout(cfg.pool_idle_timeout)
                    .pool_max_idle_per_host(cfg.pool_max_idle_per_target)
                    .http2_only(cfg.http2)
                    .build(connector.clone())
            })
            .collect();
        let name = Name(Arc::from(cfg.name.as_str()));
        let targets: Vec<TargetState> = cfg
            .targets
            .iter()
            .map(|t| TargetState {
                label: Name(Arc::from(t.to_string())),
                target: t.clone(),
                outstanding: AtomicUsize::new(0),
                failures: AtomicU32::new(0),
                ejected_until: AtomicU64::new(0),
            })
            .collect();
        for t in &targets {
            metrics.target_up(&name, &t.label);
        }
        let pool = Arc::new(Self {
            name,
            targets,
            headers: cfg.headers.clone(),
            clients,
            http2: cfg.http2,
            balance: cfg.balance,
            max_failures: cfg.health.max_failures,
            cooldown: cfg.health.cooldown,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            metrics,
        });
        if let Some(active) = &cfg.health.active {
            #[allow(clippy::disallowed_methods)] // holds a Weak: ends when the pool is dropped (reload)
            tokio::spawn(active_checks(
                Arc::downgrade(&pool),
                active.path.clone(),
                active.interval,
                active.timeout,
            ));
        }
        Ok(pool)
    }

    /// The HTTP client of the calling worker thread.
    pub fn client(&self) -> &HttpClient {
        let last = self.clients.len().saturating_sub(1);
        &self.clients[WORKER.with(Cell::get).min(last)]
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn available(&self, i: usize, now: u64) -> bool {
        self.targets[i].ejected_until.load(Ordering::Relaxed) <= now
    }

    /// Chooses a target that is in rotation, skipping `exclude`. `None` when every
    /// target is ejected.
    pub fn pick(self: &Arc<Self>, exclude: Option<usize>) -> Option<(usize, Outstanding)> {
        let n = self.targets.len();
        let now = self.now_ms();
        let candidate = |i: usize| Some(i) != exclude && self.available(i, now);
        let chosen = match self.balance {
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| (start + k) % n).find(|&i| candidate(i))
            }
            Balance::LeastOutstanding => {
                // Start at a rotating offset so ties spread across targets.
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| (start + k) % n)
                    .filter(|&i| candidate(i))
                    .min_by_key(|&i| self.targets[i].outstanding.load(Ordering::Relaxed))
            }
        }?;
        self.targets[chosen].outstanding.fetch_add(1, Ordering::Relaxed);
        Some((
            chosen,
            Outstanding {
                pool: Arc::clone(self),
                index: chosen,
            },
        ))
    }

    /// Passive health: record the result of one exchange with target `i`.
    pub fn report(&self, i: usize, ok: bool) {
        let t = &self.targets[i];
        if ok {
            t.failures.store(0, Ordering::Relaxed);
            if t.ejected_until.swap(0, Ordering::Relaxed) != 0 {
                self.metrics.target_up(&self.name, &t.label);
            }
            return;
        }
        let failures = t.failures.fetch_add(1, Ordering::Relaxed) + 1;
        // A target back from ejection gets one chance: the first failure ejects again.
        let on_probation = t.ejected_until.load(Ordering::Relaxed) != 0;
        if failures >= self.max_failures || on_probation {
            self.eject(i, self.cooldown);
        }
    }

    fn eject(&self, i: usize, for_how_long: Duration) {
        let t = &self.targets[i];
        let until = self.now_ms() + u64::try_from(for_how_long.as_millis()).unwrap_or(u64::MAX / 2);
        t.failures.store(0, Ordering::Relaxed);
        t.ejected_until.store(until, Ordering::Relaxed);
        self.metrics.ejected(&self.name, &t.label);
        tracing::warn!(upstream = %self.name.0, target = %t.label.0, "target ejected");
    }

    pub fn record_error(&self, i: usize, kind: &'static str) {
        self.metrics.upstream_error(&self.name, &self.targets[i].label, kind);
    }

    /// Absolute URI for `path_and_query` on target `i`.
    pub fn uri(&self, i: usize, path_and_query: &str) -> Result<Uri, http::Error> {
        let t = &self.targets[i].target;
        Uri::builder()
            .scheme(t.scheme.clone())
            .authority(t.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }

    /// Whether any target is currently in rotation (readiness).
    pub fn any_available(&self) -> bool {
        let now = self.now_ms();
        (0..self.targets.len()).any(|i| self.available(i, now))
    }
}

/// Active health checks for one pool. Ends by itself when the pool is dropped (after a
/// reload replaced it) because it only holds a weak reference.
async fn active_checks(pool: Weak<Pool>, path: String, interval: Duration, timeout: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        for i in 0..pool.targets.len() {
            let ok = match pool.uri(i, &path) {
                Ok(uri) => {
                    let req = Request::get(uri).body(Empty::new().map_err(|never| match never {}).boxed());
                    match req {
                        Ok(req) => matches!(
                            tokio::time::timeout(timeout, pool.client().request(req)).await,
                            Ok(Ok(resp)) if resp.status().is_success()
                        ),
                        Err(_) => false,
                    }
                }
                Err(_) => false,
            };
            let t = &pool.targets[i];
            if ok {
                if t.ejected_until.swap(0, Ordering::Relaxed) != 0 {
                    tracing::info!(upstream = %pool.name.0, target = %t.label.0, "target back in rotation");
                    pool.metrics.target_up(&pool.name, &t.label);
                }
                t.failures.store(0, Ordering::Relaxed);
            } else if t.ejected_until.load(Ordering::Relaxed) <= pool.now_ms() {
                pool.eject(i, interval.max(pool.cooldown));
            }
        }
    }
}
