//! The identity runtime: the key store built from the key file (re-read whenever the
//! file changes, checked every `api_keys.reload_interval`, which bounds how long a
//! revoked key keeps working), the authorization policy built from `[roles]`, and
//! credential extraction from request headers. Stages and the admin API use it; it
//! never logs a credential.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, header};
use rampart_config::Config;
use rampart_identity::{AuthError, KeyFile, KeyStore, Pepper, Policy, Principal, Role};

use crate::error::InitError;

#[derive(Debug)]
struct KeySource {
    file: PathBuf,
    pepper: Arc<Pepper>,
    store: ArcSwap<KeyStore>,
    /// (modified time, length) of the file the store was built from.
    stamp: Mutex<Option<(SystemTime, u64)>>,
}

#[derive(Debug)]
pub struct IdentityRuntime {
    pub policy: Policy,
    /// Headers credentials are read from (and stripped before proxying).
    pub headers: Vec<HeaderName>,
    keys: Option<KeySource>,
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl IdentityRuntime {
    /// Builds from config and loads the key file; starts the file watcher (which ends
    /// when this runtime is dropped by a reload).
    pub fn build(config: &Config) -> Result<Arc<Self>, InitError> {
        let policy = Policy {
            roles: config
                .roles
                .iter()
                .map(|(name, r)| {
                    (
                        name.clone(),
                        Role {
                            routes: r.routes.clone(),
                            models: r.models.clone(),
                            actions: r.actions.clone(),
                        },
                    )
                })
                .collect(),
        };
        let (keys, headers, interval) = match (&config.identity.api_keys, &config.identity.pepper) {
            (Some(k), Some(pepper)) => {
                let pepper = Arc::new(Pepper::new(pepper.expose()));
                if !k.file.exists() {
                    return Err(InitError::Keys(format!(
                        "{} does not exist; create it with `rampart keys create --config <this file>`",
                        k.file.display()
                    )));
                }
                let file = KeyFile::load(&k.file).map_err(|e| InitError::Keys(e.to_string()))?;
                let source = KeySource {
                    stamp: Mutex::new(stamp(&k.file)),
                    store: ArcSwap::from_pointee(KeyStore::from_file(Arc::clone(&pepper), &file)),
                    file: k.file.clone(),
                    pepper,
                };
                (Some(source), k.headers.clone(), Some(k.reload_interval))
            }
            _ => (None, Vec::new(), None),
        };
        let runtime = Arc::new(Self { policy, headers, keys });
        if let Some(every) = interval {
            tokio::spawn(watch_keys(Arc::downgrade(&runtime), every));
        }
        Ok(runtime)
    }

    /// Re-reads the key file if it changed. A broken file keeps the previous keys.
    pub fn refresh(&self) {
        let Some(src) = &self.keys else { return };
        let now = stamp(&src.file);
        let mut last = src.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if now == *last {
            return;
        }
        match KeyFile::load(&src.file) {
            Ok(file) => {
                let store = KeyStore::from_file(Arc::clone(&src.pepper), &file);
                tracing::info!(event = "keys_reloaded", keys = store.len(), "API key file reloaded");
                src.store.store(Arc::new(store));
                *last = now;
            }
            Err(e) => {
                tracing::error!(event = "keys_reload_failed", error = %e, "API key file rejected; previous keys stay")
            }
        }
    }

    /// Who presented the request's credentials.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let Some(src) = &self.keys else {
            return Err(AuthError::Missing);
        };
        let mut presented = false;
        for name in &self.headers {
            let Some(value) = headers.get(name) else { continue };
            presented = true;
            let Ok(text) = value.to_str() else { continue };
            let token = if name == header::AUTHORIZATION {
                match text.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => continue,
                }
            } else {
                text.trim()
            };
            return src.store.load().verify(token, rampart_identity::time::now());
        }
        Err(if presented {
            AuthError::Invalid
        } else {
            AuthError::Missing
        })
    }
}

async fn watch_keys(runtime: Weak<IdentityRuntime>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(rt) = runtime.upgrade() else { return };
        // File reads are blocking; keep them off the event loop.
        let _ = tokio::task::spawn_blocking(move || rt.refresh()).await;
    }
}
