//! The key file: the embedded, GitOps-friendly key store. A TOML file of `[[keys]]`
//! records holding only hashes, so it can be reviewed and committed. Writes go to a
//! temporary file that is renamed over the original, so a reader never sees half a file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::apikey::{ApiKey, KeyEnv, Pepper};
use crate::time;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub id: String,
    pub hash: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// Narrows the roles' routes; empty = as the roles allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Narrows the roles' models; empty = as the roles allow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// The key this one replaced (`rampart keys rotate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: cannot write: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: key {id}: {message}")]
    Record { path: PathBuf, id: String, message: String },
    #[error("no key with id {0}")]
    NoSuchKey(String),
    #[error("{0}")]
    Key(#[from] crate::apikey::KeyError),
}

/// What a new key may do and for how long.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub subject: String,
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub routes: Vec<String>,
    pub models: Vec<String>,
    /// Seconds from now; `None` = no expiry.
    pub expires_in: Option<i64>,
    pub note: Option<String>,
    pub test: bool,
}

impl KeyFile {
    /// Reads a key file; a missing file is an error (create it with `rampart keys create`).
    pub fn load(path: &Path) -> Result<Self, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: KeyFile = toml::from_str(&text).map_err(|e| KeyFileError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().to_owned(),
        })?;
        file.check(path)?;
        Ok(file)
    }

    /// Reads a key file, or an empty one if it does not exist yet.
    pub fn load_or_empty(path: &Path) -> Result<Self, KeyFileError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Self::default())
        }
    }

    fn check(&self, path: &Path) -> Result<(), KeyFileError> {
        let mut seen = std::collections::HashSet::new();
        for k in &self.keys {
            let bad = |message: &str| KeyFileError::Record {
                path: path.to_path_buf(),
                id: k.id.clone(),
                message: message.to_owned(),
            };
            if !seen.insert(&k.id) {
                return Err(bad("id is used twice"));
            }
            if crate::apikey::decode_hash(&k.hash).is_none() {
                return Err(bad("hash must be `hmac-sha256:` followed by 64 hex digits"));
            }
            for (field, value) in [
                ("created_at", Some(&k.created_at)),
                ("expires_at", k.expires_at.as_ref()),
                ("revoked_at", k.revoked_at.as_ref()),
            ] {
                if let Some(v) = value
                    && time::parse(v).is_none()
                {
                    return Err(bad(&format!(
                        "{field} `{v}` is not an RFC 3339 UTC time like 2026-11-22T08:00:00Z"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Writes atomically (temporary file + rename), readable by the owner only.
    pub fn save(&self, path: &Path) -> Result<(), KeyFileError> {
        let err = |source| KeyFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut text = String::from(
            "# Rampart API keys. Hashes only (HMAC-SHA256 with the server's pepper): safe to review.\n# Managed with `rampart keys create|list|revoke|rotate`.\n\n",
        );
        text.push_str(&toml::to_string(self).map_err(|e| err(std::io::Error::other(e)))?);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }

    /// Adds a new key and returns it; the secret exists only in the return value.
    pub fn create(&mut self, pepper: &Pepper, new: &NewKey) -> Result<(ApiKey, KeyRecord), KeyFileError> {
        let key = loop {
            let k = ApiKey::generate(if new.test { KeyEnv::Test } else { KeyEnv::Live })?;
            if !self.keys.iter().any(|r| r.id == k.id()) {
                break k;
            }
        };
        let now = time::now();
        let record = KeyRecord {
            id: key.id().to_owned(),
            hash: pepper.hash(&key),
            subject: new.subject.clone(),
            tenant: new.tenant.clone(),
            roles: new.roles.clone(),
            routes: new.routes.clone(),
            models: new.models.clone(),
            created_at: time::format(now),
            expires_at: new.expires_in.map(|s| time::format(now.saturating_add(s))),
            revoked_at: None,
            rotated_from: None,
            note: new.note.clone(),
        };
        self.keys.push(record.clone());
        Ok((key, record))
    }

    /// Marks a key revoked (it stays in the file for the record).
    pub fn revoke(&mut self, id: &str) -> Result<(), KeyFileError> {
        let k = self
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| KeyFileError::NoSuchKey(id.to_owned()))?;
        if k.revoked_at.is_none() {
            k.revoked_at = Some(time::format(time::now()));
        }
        Ok(())
    }

    /// Issues a replacement with the same scopes; the old key keeps working for
    /// `overlap` seconds (so clients can switch), then expires.
    pub fn rotate(&mut self, pepper: &Pepper, id: &str, overlap: i64) -> Result<(ApiKey, KeyRecord), KeyFileError> {
        let old = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .cloned()
            .ok_or_else(|| KeyFileError::NoSuchKey(id.to_owned()))?;
        let remaining = old
            .expires_at
            .as_deref()
            .and_then(time::parse)
            .map(|e| e - time::now())
            .filter(|r| *r > 0);
        let (key, mut record) = self.create(
            pepper,
            &NewKey {
                subject: old.subject.clone(),
                tenant: old.tenant.clone(),
                roles: old.roles.clone(),
                routes: old.routes.clone(),
                models: old.models.clone(),
                expires_in: remaining,
                note: old.note.clone(),
                test: false,
            },
        )?;
        record.rotated_from = Some(old.id.clone());
        if let Some(last) = self.keys.last_mut() {
            last.rotated_from = Some(old.id.clone());
        }
        let cutoff = time::now().saturating_add(overlap);
        if let Some(k) = self.keys.iter_mut().find(|k| k.id == id) {
            let current = k.expires_at.as_deref().and_then(time::parse).unwrap_or(i64::MAX);
            k.expires_at = Some(time::format(current.min(cutoff)));
        }
        Ok((key, record))
    }
}
