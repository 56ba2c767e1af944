//! The identity runtime: the key store built from the key file (re-read whenever the
//! file changes, checked every `api_keys.reload_interval`, which bounds how long a
//! revoked key keeps working), JWT issuers with their cached key sets (`jwks.rs`), the
//! authorization policy built from `[roles]`, and credential extraction from request
//! headers. Stages and the admin API use it; it never logs a credential.

pub mod jwks;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderName, header};
use rampart_config::Config;
use rampart_identity::jwt::{self, JwtError};
use rampart_identity::{AuthError, KeyFile, KeyStore, Pepper, Policy, Principal, Role};

use crate::error::InitError;

/// A PostgreSQL connection kept by the key watcher (reconnects after errors).
struct PgConn(Option<rampart_identity::keystore_pg::Client>);

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PgConn(connected)"
        } else {
            "PgConn(none)"
        })
    }
}

#[derive(Debug)]
enum Backing {
    File {
        path: PathBuf,
        /// (modified time, length) of the file the store was built from.
        stamp: Mutex<Option<(SystemTime, u64)>>,
    },
    Postgres {
        url: rampart_config::Secret<String>,
        /// (max version, count) the store was built from.
        stamp: Mutex<(i64, i64)>,
        conn: tokio::sync::Mutex<PgConn>,
    },
}

#[derive(Debug)]
struct KeySource {
    pepper: Arc<Pepper>,
    store: ArcSwap<KeyStore>,
    backing: Backing,
}

#[derive(Debug)]
pub struct IdentityRuntime {
    pub policy: Policy,
    /// Headers credentials are read from (and stripped before proxying).
    pub headers: Vec<HeaderName>,
    keys: Option<KeySource>,
    issuers: Vec<Arc<crate::identity::jwks::Issuer>>,
    /// Client-certificate subjects; `None` when certificates are not credentials.
    cert_subjects: Option<Vec<rampart_config::CertSubject>>,
    /// Tokens that verified, by SHA-256 of the token: a client reusing a token pays one
    /// signature check, not one per request.
    verified: Mutex<std::collections::HashMap<[u8; 32], CachedToken>>,
    /// Key changes picked up by the watcher are recorded here.
    audit: Option<Arc<crate::audit::AuditTrail>>,
}

/// Verified tokens kept at most; the cache is emptied when it is full.
const TOKEN_CACHE_ENTRIES: usize = 10_000;

/// A token that verified. It is only used while its issuer's key set is the very one it
/// verified against (a refresh or `max_stale` expiry replaces the set) and until `exp`.
#[derive(Debug)]
struct CachedToken {
    issuer: usize,
    keys: Arc<rampart_identity::jwt::KeySet>,
    expires: i64,
    principal: Principal,
}

/// The subject a client certificate names: its first URI SAN (e.g. a SPIFFE id), else
/// its first DNS SAN, else its subject common name.
pub fn certificate_subject(der: &[u8]) -> Option<String> {
    let der = rustls_pki_types::CertificateDer::from(der);
    let cert = webpki::EndEntityCert::try_from(&der).ok()?;
    if let Some(uri) = cert.valid_uri_names().next() {
        return Some(uri.to_owned());
    }
    if let Some(dns) = cert.valid_dns_names().next() {
        return Some(dns.to_owned());
    }
    common_name(cert.subject())
}

/// The commonName (OID 2.5.4.3) of a DER-encoded X.501 Name.
fn common_name(name: &[u8]) -> Option<String> {
    const CN_OID: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let at = name.windows(CN_OID.len()).position(|w| w == CN_OID)? + CN_OID.len();
    let tag = *name.get(at)?;
    // UTF8String, PrintableString, IA5String, TeletexString.
    if !matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
        return None;
    }
    let len = usize::from(*name.get(at + 1)?);
    if len >= 0x80 {
        return None; // a CN is at most 64 characters: short-form length only
    }
    let value = name.get(at + 2..at + 2 + len)?;
    std::str::from_utf8(value).ok().map(str::to_owned)
}

fn stamp(path: &std::path::Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl IdentityRuntime {
    /// Builds from config and loads the key file; starts the file watcher (which ends
    /// when this runtime is dropped by a reload).
    pub fn build(config: &Config, audit: Option<Arc<crate::audit::AuditTrail>>) -> Result<Arc<Self>, InitError> {
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
                let (file, backing) = match &k.store {
                    rampart_config::KeyStoreConfig::File(path) => {
                        if !path.exists() {
                            return Err(InitError::Keys(format!(
                                "{} does not exist; create it with `rampart keys create --config <this file>`",
                                path.display()
                            )));
                        }
                        let file = KeyFile::load(path).map_err(|e| InitError::Keys(e.to_string()))?;
                        let backing = Backing::File {
                            path: path.clone(),
                            stamp: Mutex::new(stamp(path)),
                        };
                        (file, backing)
                    }
                    rampart_config::KeyStoreConfig::Postgres(url) => {
                        // Start-up needs the keys now: refuse to start without the database.
                        let text = url.expose().clone();
                        let (file, at) = rampart_identity::keystore_pg::run_blocking(async move {
                            let client = rampart_identity::keystore_pg::connect(&text).await?;
                            Ok((
                                rampart_identity::keystore_pg::load(&client).await?,
                                rampart_identity::keystore_pg::stamp(&client).await?,
                            ))
                        })
                        .map_err(|e| InitError::Keys(format!("postgres: {e}")))?;
                        let backing = Backing::Postgres {
                            url: url.clone(),
                            stamp: Mutex::new(at),
                            conn: tokio::sync::Mutex::new(PgConn(None)),
                        };
                        (file, backing)
                    }
                };
                let source = KeySource {
                    store: ArcSwap::from_pointee(KeyStore::from_file(Arc::clone(&pepper), &file)),
                    pepper,
                    backing,
                };
                (Some(source), k.headers.clone(), Some(k.reload_interval))
            }
            _ => (None, vec![header::AUTHORIZATION], None),
        };
        let issuers = config
            .identity
            .jwt
            .iter()
            .enumerate()
            .map(|(i, cfg)| crate::identity::jwks::Issuer::start(&format!("identity.jwt[{i}]"), cfg))
            .collect::<Result<Vec<_>, _>>()?;
        let runtime = Arc::new(Self {
            policy,
            headers,
            keys,
            issuers,
            cert_subjects: config.identity.client_certs.clone(),
            verified: Mutex::new(std::collections::HashMap::new()),
            audit,
        });
        if let Some(every) = interval {
            #[allow(clippy::disallowed_methods)] // holds a Weak: ends when the runtime is dropped (reload)
            tokio::spawn(watch_keys(Arc::downgrade(&runtime), every));
        }
        Ok(runtime)
    }

    /// Re-reads the key store if it changed. A broken file or an unreachable
    /// database keeps the previous keys.
    pub async fn refresh(self: &Arc<Self>) {
        let Some(src) = &self.keys else { return };
        match &src.backing {
            Backing::File { .. } => {
                let me = Arc::clone(self);
                let _ = tokio::task::spawn_blocking(move || me.refresh_file()).await;
            }
            Backing::Postgres { url, stamp, conn } => {
                let mut conn = conn.lock().await;
                let result = async {
                    if conn.0.is_none() {
                        conn.0 = Some(rampart_identity::keystore_pg::connect(url.expose()).await?);
                    }
                    let client = conn.0.as_ref().ok_or("not connected")?;
                    let now = rampart_identity::keystore_pg::stamp(client).await?;
                    if now == *stamp.lock().unwrap_or_else(|p| p.into_inner()) {
                        return Ok::<_, String>(None);
                    }
                    Ok(Some((rampart_identity::keystore_pg::load(client).await?, now)))
                }
                .await;
                match result {
                    Ok(None) => {}
                    Ok(Some((file, now))) => {
                        let store = KeyStore::from_file(Arc::clone(&src.pepper), &file);
                        tracing::info!(
                            event = "keys_reloaded",
                            keys = store.len(),
                            "API keys reloaded from PostgreSQL"
                        );
                        self.record_changes(&store.changes_since(&src.store.load()), "key_store_postgres");
                        src.store.store(Arc::new(store));
                        *stamp.lock().unwrap_or_else(|p| p.into_inner()) = now;
                    }
                    Err(e) => {
                        conn.0 = None;
                        tracing::warn!(event = "keys_reload_failed", error = %e, "PostgreSQL key store unreachable; previous keys stay");
                    }
                }
            }
        }
    }

    fn refresh_file(&self) {
        let Some(KeySource {
            backing: Backing::File { path, stamp: last },
            pepper,
            store,
        }) = &self.keys
        else {
            return;
        };
        let now = stamp(path);
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        if now == *last {
            return;
        }
        match KeyFile::load(path) {
            Ok(file) => {
                let fresh = KeyStore::from_file(Arc::clone(pepper), &file);
                tracing::info!(event = "keys_reloaded", keys = fresh.len(), "API key file reloaded");
                self.record_changes(&fresh.changes_since(&store.load()), "key_file");
                store.store(Arc::new(fresh));
                *last = now;
            }
            Err(e) => {
                tracing::error!(event = "keys_reload_failed", error = %e, "API key file rejected; previous keys stay")
            }
        }
    }

    /// One `admin` audit record per key created, revoked or removed (ids only).
    fn record_changes(&self, c: &rampart_identity::KeyChanges, via: &'static str) {
        let Some(audit) = &self.audit else { return };
        for (action, ids) in [
            ("api_key_created", &c.created),
            ("api_key_revoked", &c.revoked),
            ("api_key_removed", &c.removed),
        ] {
            for id in ids {
                audit.admin(action, via, true, None, Some(format!("key id {id}")));
            }
        }
    }

    /// Who presented the request's credentials: a JWT (bearer token with three parts)
    /// from a configured issuer, or an API key.
    pub async fn authenticate(&self, headers: &HeaderMap, client_cert: Option<&[u8]>) -> Result<Principal, AuthError> {
        let mut presented = false;
        for name in &self.headers {
            let Some(value) = headers.get(name) else { continue };
            presented = true;
            let Ok(text) = value.to_str() else { continue };
            let from_authorization = name == header::AUTHORIZATION;
            let token = if from_authorization {
                match text.split_once(' ') {
                    Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
                    _ => continue,
                }
            } else {
                text.trim()
            };
            if from_authorization && jwt::looks_like_jwt(token) {
                return self.verify_jwt(token).await;
            }
            return match &self.keys {
                Some(src) => src.store.load().verify(token, rampart_identity::time::now()),
                None => Err(AuthError::Invalid),
            };
        }
        if presented {
            return Err(AuthError::Invalid);
        }
        // No credential header: a client certificate the listener verified (mTLS).
        match (client_cert, &self.cert_subjects) {
            (Some(der), Some(subjects)) => {
                let subject = certificate_subject(der).ok_or(AuthError::Invalid)?;
                let mapped = subjects.iter().find(|s| s.matches(&subject));
                Ok(Principal {
                    tenant: mapped.and_then(|m| m.tenant.clone()),
                    roles: mapped.map(|m| m.roles.clone()).unwrap_or_default(),
                    credential: rampart_identity::Credential::ClientCertificate,
                    key_id: None,
                    routes: rampart_identity::Scope::default(),
                    models: rampart_identity::Scope::default(),
                    subject,
                })
            }
            _ => Err(AuthError::Missing),
        }
    }

    async fn verify_jwt(&self, token: &str) -> Result<Principal, AuthError> {
        let now = rampart_identity::time::now();
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(digest.as_ref());
        if let Some(hit) = self.cached(&id, now) {
            return Ok(hit);
        }
        let unverified = jwt::decode(token).map_err(|_| AuthError::Invalid)?;
        // The (unverified) issuer only selects which rules and keys to verify with.
        let (index, issuer) = unverified
            .issuer()
            .and_then(|iss| self.issuers.iter().enumerate().find(|(_, i)| i.rules.issuer == iss))
            .ok_or(AuthError::Invalid)?;
        let mut keys = issuer.keys();
        let mut result = jwt::verify(token, &unverified, &issuer.rules, &keys, now);
        if result == Err(JwtError::UnknownKey) && issuer.refresh_for_unknown_kid().await {
            keys = issuer.keys();
            result = jwt::verify(token, &unverified, &issuer.rules, &keys, now);
        }
        if let (Ok(principal), Some(exp)) = (
            &result,
            unverified.claims.get("exp").and_then(serde_json::Value::as_i64),
        ) {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= TOKEN_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(
                id,
                CachedToken {
                    issuer: index,
                    keys,
                    expires: exp.saturating_add(issuer.rules.leeway),
                    principal: principal.clone(),
                },
            );
        }
        result.map_err(|e| match e {
            JwtError::Expired => AuthError::TokenExpired,
            JwtError::NotYetValid => AuthError::TokenNotYetValid,
            JwtError::Invalid | JwtError::UnknownKey => AuthError::Invalid,
        })
    }
}

impl IdentityRuntime {
    /// A previously verified token, if it is still valid against the same key set.
    fn cached(&self, id: &[u8; 32], now: i64) -> Option<Principal> {
        let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.get(id)?;
        let issuer = self.issuers.get(entry.issuer)?;
        if now < entry.expires && Arc::ptr_eq(&entry.keys, &issuer.keys()) {
            return Some(entry.principal.clone());
        }
        cache.remove(id);
        None
    }
}

async fn watch_keys(runtime: Weak<IdentityRuntime>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(rt) = runtime.upgrade() else { return };
        rt.refresh().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_is_read_from_a_der_name() {
        // SEQUENCE { SET { SEQUENCE { OID 2.5.4.3, UTF8String "svc-a" } } }
        let name = [
            0x30, 0x10, 0x31, 0x0e, 0x30, 0x0c, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x05, b's', b'v', b'c', b'-', b'a',
        ];
        assert_eq!(common_name(&name).as_deref(), Some("svc-a"));
        // Truncated or odd encodings give nothing rather than garbage.
        assert_eq!(common_name(&name[..name.len() - 2]), None);
        let mut long = name;
        long[12] = 0x81;
        assert_eq!(common_name(&long), None);
        assert_eq!(common_name(&[]), None);
        assert_eq!(certificate_subject(b"not a certificate"), None);
    }
}
