//! One JWT issuer at run time: its verification rules and its cached key set. Keys come
//! from a JWKS URL (fetched at start and every `refresh_interval`; an unknown `kid`
//! triggers a fetch at most every `min_refresh_interval`; while fetches fail the cached
//! keys keep working for `max_stale`, then the issuer's tokens are refused) or from a
//! local JWKS file (re-read every `refresh_interval`). Key URLs inside tokens (`jku`,
//! `x5u`) are never followed: this is the only place keys are fetched from.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rampart_config::{JwksSource, JwtIssuer};
use rampart_identity::jwt::{IssuerRules, KeySet};
use tokio::time::Instant;

use crate::error::InitError;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// One JWKS fetch must finish within this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

type FetchClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

#[derive(Debug)]
pub struct Issuer {
    pub rules: IssuerRules,
    source: JwksSource,
    client: FetchClient,
    keys: ArcSwap<KeySet>,
    /// Unix seconds of the last successful load; 0 = never.
    loaded_at: AtomicI64,
    /// Milliseconds since `epoch` of the last fetch attempt.
    last_attempt: AtomicU64,
    epoch: Instant,
    refresh_lock: tokio::sync::Mutex<()>,
    min_refresh: Duration,
    max_stale: Duration,
}

impl Issuer {
    /// Builds the issuer and starts its refresher (which ends when a reload drops it).
    pub fn start(key: &str, cfg: &JwtIssuer) -> Result<Arc<Self>, InitError> {
        let connector = crate::server::tls::fetch_connector(&format!("{key}.ca"), cfg.ca.clone(), FETCH_TIMEOUT)?;
        let issuer = Arc::new(Self {
            rules: IssuerRules {
                issuer: cfg.issuer.clone(),
                audiences: cfg.audiences.clone(),
                algorithms: cfg.algorithms.clone(),
                leeway: i64::try_from(cfg.leeway.as_secs()).unwrap_or(0),
                subject_claim: cfg.subject_claim.clone(),
                tenant_claim: cfg.tenant_claim.clone(),
                roles_claim: cfg.roles_claim.clone(),
            },
            source: cfg.jwks.clone(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            keys: ArcSwap::from_pointee(KeySet::default()),
            loaded_at: AtomicI64::new(0),
            last_attempt: AtomicU64::new(0),
            epoch: Instant::now(),
            refresh_lock: tokio::sync::Mutex::new(()),
            min_refresh: cfg.min_refresh_interval,
            max_stale: cfg.max_stale,
        });
        if let JwksSource::File(path) = &cfg.jwks {
            // A broken local key file is a configuration error, not a runtime surprise.
            let bytes = std::fs::read(path).map_err(|e| InitError::Keys(format!("{}: {e}", path.display())))?;
            let set = KeySet::from_json(&bytes).map_err(|e| InitError::Keys(format!("{}: {e}", path.display())))?;
            issuer.install(set);
        }
        #[allow(clippy::disallowed_methods)] // holds a Weak: ends when the issuer is dropped (reload)
        tokio::spawn(refresh_loop(Arc::downgrade(&issuer), cfg.refresh_interval));
        Ok(issuer)
    }

    fn install(&self, set: KeySet) {
        self.keys.store(Arc::new(set));
        self.loaded_at.store(rampart_identity::time::now(), Ordering::Relaxed);
    }

    /// The keys to verify with; empty once the cache is older than `max_stale`.
    pub fn keys(&self) -> Arc<KeySet> {
        let age = rampart_identity::time::now() - self.loaded_at.load(Ordering::Relaxed);
        if age > i64::try_from(self.max_stale.as_secs()).unwrap_or(i64::MAX) {
            return Arc::new(KeySet::default());
        }
        self.keys.load_full()
    }

    fn since_attempt(&self) -> Duration {
        let last = self.last_attempt.load(Ordering::Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(last))
    }

    /// Fetches the key set because a token named an unknown `kid`, unless a fetch
    /// happened within `min_refresh_interval`. True if new keys were installed.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        // Waits for a fetch already under way (the start-up one, say) instead of failing.
        let _one_at_a_time = self.refresh_lock.lock().await;
        if self.last_attempt.load(Ordering::Relaxed) != 0 && self.since_attempt() < self.min_refresh {
            // Fetched recently (perhaps while we waited): verify against what we have.
            return true;
        }
        self.refresh().await
    }

    async fn refresh(&self) -> bool {
        self.last_attempt.store(
            u64::try_from(self.epoch.elapsed().as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            Ordering::Relaxed,
        );
        match self.fetch().await {
            Ok(set) => {
                tracing::info!(event = "jwks_refreshed", issuer = %self.rules.issuer, keys = set.len(), "JWKS loaded");
                self.install(set);
                true
            }
            Err(e) => {
                tracing::warn!(event = "jwks_refresh_failed", issuer = %self.rules.issuer, error = %e, "JWKS fetch failed; cached keys stay in use until max_stale");
                false
            }
        }
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let bytes = match &self.source {
            JwksSource::File(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(&path))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?
            }
            JwksSource::Url(uri) => {
                let req = http::Request::get(uri.clone())
                    .header(http::header::ACCEPT, "application/json")
                    .body(Empty::new())
                    .map_err(|e| e.to_string())?;
                let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(req))
                    .await
                    .map_err(|_| "timed out".to_owned())?
                    .map_err(|e| e.to_string())?;
                if !resp.status().is_success() {
                    return Err(format!("HTTP {}", resp.status()));
                }
                let body =
                    tokio::time::timeout(FETCH_TIMEOUT, Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect())
                        .await
                        .map_err(|_| "timed out reading the body".to_owned())?
                        .map_err(|e| e.to_string())?;
                body.to_bytes().to_vec()
            }
        };
        KeySet::from_json(&bytes)
    }
}

async fn refresh_loop(issuer: std::sync::Weak<Issuer>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(issuer) = issuer.upgrade() else { return };
        let _one_at_a_time = issuer.refresh_lock.lock().await;
        issuer.refresh().await;
    }
}
