//! Verifying a presented API key against the key store. Every failure that does not
//! prove knowledge of the secret looks the same to the caller (`Invalid`): an unknown
//! id and a wrong secret are indistinguishable. Only after the secret verified does
//! the answer say `Revoked` or `Expired`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::apikey::{ApiKey, Pepper, decode_hash};
use crate::keyfile::{KeyFile, KeyRecord};
use crate::principal::{Credential, Principal, Scope};
use crate::time;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("credentials are required")]
    Missing,
    #[error("the credentials are not valid")]
    Invalid,
    #[error("the API key has been revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    #[error("the token has expired")]
    TokenExpired,
    #[error("the token is not valid yet")]
    TokenNotYetValid,
}

impl AuthError {
    pub fn code(self) -> &'static str {
        match self {
            AuthError::Missing => "missing_credentials",
            AuthError::Invalid => "invalid_credentials",
            AuthError::Revoked => "key_revoked",
            AuthError::Expired => "key_expired",
            AuthError::TokenExpired => "token_expired",
            AuthError::TokenNotYetValid => "token_not_yet_valid",
        }
    }
}

#[derive(Debug)]
struct Stored {
    tag: Vec<u8>,
    expires_at: Option<i64>,
    revoked: bool,
    principal: Principal,
}

/// What changed between two snapshots of a key store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyChanges {
    pub created: Vec<String>,
    pub revoked: Vec<String>,
    pub removed: Vec<String>,
}

/// An in-memory snapshot of a key store, ready to verify keys.
#[derive(Debug)]
pub struct KeyStore {
    pepper: Arc<Pepper>,
    keys: HashMap<String, Stored>,
}

impl KeyStore {
    pub fn new(pepper: Arc<Pepper>, records: &[KeyRecord]) -> Self {
        let keys = records
            .iter()
            .filter_map(|r| {
                let tag = decode_hash(&r.hash)?;
                Some((
                    r.id.clone(),
                    Stored {
                        tag,
                        expires_at: r.expires_at.as_deref().and_then(time::parse),
                        revoked: r.revoked_at.is_some(),
                        principal: Principal {
                            subject: r.subject.clone(),
                            tenant: r.tenant.clone(),
                            roles: r.roles.clone(),
                            credential: Credential::ApiKey,
                            key_id: Some(r.id.clone()),
                            routes: Scope(r.routes.clone()),
                            models: Scope(r.models.clone()),
                        },
                    },
                ))
            })
            .collect();
        Self { pepper, keys }
    }

    pub fn from_file(pepper: Arc<Pepper>, file: &KeyFile) -> Self {
        Self::new(pepper, &file.keys)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Key ids created, revoked and removed since `old` (ids only, never secrets), each
    /// sorted.
    pub fn changes_since(&self, old: &KeyStore) -> KeyChanges {
        let mut c = KeyChanges::default();
        for (id, k) in &self.keys {
            match old.keys.get(id) {
                None => c.created.push(id.clone()),
                Some(o) if k.revoked && !o.revoked => c.revoked.push(id.clone()),
                Some(_) => {}
            }
        }
        c.removed = old
            .keys
            .keys()
            .filter(|id| !self.keys.contains_key(*id))
            .cloned()
            .collect();
        c.created.sort();
        c.revoked.sort();
        c.removed.sort();
        c
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the text a client presented.
    pub fn verify(&self, presented: &str, now: i64) -> Result<Principal, AuthError> {
        let key = ApiKey::parse(presented).map_err(|_| AuthError::Invalid)?;
        let Some(stored) = self.keys.get(key.id()) else {
            // Spend the same work as a known id would, so timing does not tell.
            let _ = self.pepper.verify(&key, &[0u8; 32]);
            return Err(AuthError::Invalid);
        };
        if !self.pepper.verify(&key, &stored.tag) {
            return Err(AuthError::Invalid);
        }
        if stored.revoked {
            return Err(AuthError::Revoked);
        }
        if stored.expires_at.is_some_and(|e| now >= e) {
            return Err(AuthError::Expired);
        }
        Ok(stored.principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyfile::NewKey;

    fn setup() -> (KeyFile, Arc<Pepper>) {
        (KeyFile::default(), Arc::new(Pepper::new(b"test pepper")))
    }

    #[test]
    fn lifecycle_create_verify_rotate_revoke() {
        let (mut file, pepper) = setup();
        let (key, rec) = file
            .create(
                &pepper,
                &NewKey {
                    subject: "app".into(),
                    tenant: Some("acme".into()),
                    roles: vec!["inference".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(
            !toml::to_string(&file).unwrap().contains(&key.expose()[20..]),
            "secret stored"
        );
        let now = time::now();
        let store = KeyStore::from_file(Arc::clone(&pepper), &file);
        let p = store.verify(key.expose(), now).unwrap();
        assert_eq!((p.subject.as_str(), p.tenant.as_deref()), ("app", Some("acme")));
        assert_eq!(p.key_id.as_deref(), Some(rec.id.as_str()));

        // Wrong secret with the right id, unknown id, garbage: all the same answer.
        let mut wrong = key.expose().to_owned();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'a' { 'b' } else { 'a' });
        assert_eq!(store.verify(&wrong, now), Err(AuthError::Invalid));
        let other = ApiKey::generate(crate::apikey::KeyEnv::Live).unwrap();
        assert_eq!(store.verify(other.expose(), now), Err(AuthError::Invalid));
        assert_eq!(store.verify("Bearer nonsense", now), Err(AuthError::Invalid));
        // Same key under another pepper: invalid.
        let foreign = KeyStore::from_file(Arc::new(Pepper::new(b"other")), &file);
        assert_eq!(foreign.verify(key.expose(), now), Err(AuthError::Invalid));

        // Rotation: both work during the overlap; the old one expires after it.
        let (new_key, new_rec) = file.rotate(&pepper, &rec.id, 3600).unwrap();
        assert_eq!(new_rec.rotated_from.as_deref(), Some(rec.id.as_str()));
        let store = KeyStore::from_file(Arc::clone(&pepper), &file);
        assert!(store.verify(key.expose(), now).is_ok());
        assert!(store.verify(new_key.expose(), now).is_ok());
        assert_eq!(store.verify(key.expose(), now + 3601), Err(AuthError::Expired));
        assert!(store.verify(new_key.expose(), now + 3601).is_ok());

        file.revoke(&new_rec.id).unwrap();
        let store = KeyStore::from_file(pepper, &file);
        assert_eq!(store.verify(new_key.expose(), now), Err(AuthError::Revoked));
        assert!(file.revoke("nope").is_err());
    }

    #[test]
    fn key_files_round_trip_and_reject_damage() {
        let (mut file, pepper) = setup();
        file.create(
            &pepper,
            &NewKey {
                subject: "a".into(),
                expires_in: Some(60),
                ..Default::default()
            },
        )
        .unwrap();
        let dir = std::env::temp_dir().join(format!("rampart-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys.toml");
        file.save(&path).unwrap();
        assert_eq!(KeyFile::load(&path).unwrap(), file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("hmac-sha256:", "md5:")).unwrap();
        assert!(KeyFile::load(&path).unwrap_err().to_string().contains("hash must be"));
        std::fs::write(&path, "[[keys]]\nid = \"x\"\nbogus = 1\n").unwrap();
        assert!(KeyFile::load(&path).unwrap_err().to_string().contains("bogus"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
