//! Changing the key store from outside the request path — `rampart keys` and the
//! admin console: load every record, change them, write back what changed. Gateways
//! pick changes up within `identity.api_keys.reload_interval`. Blocking: call it from
//! a thread that may block (the console uses the blocking pool).

use std::path::PathBuf;

use crate::KeyFile;
use crate::keyfile::KeyFileError;

/// Where keys live: the key file or the PostgreSQL table.
#[derive(Debug, Clone)]
pub enum KeyStoreTarget {
    File(PathBuf),
    Postgres(String),
}

impl KeyStoreTarget {
    pub fn load(&self) -> Result<KeyFile, String> {
        match self {
            Self::File(path) => KeyFile::load_or_empty(path).map_err(|e| e.to_string()),
            Self::Postgres(url) => {
                let url = url.clone();
                crate::keystore_pg::run_blocking(async move {
                    let client = crate::keystore_pg::connect(&url).await?;
                    crate::keystore_pg::load(&client).await
                })
            }
        }
    }

    /// Writes `after`; for PostgreSQL only the records that differ from `before`.
    pub fn save(&self, before: &KeyFile, after: &KeyFile) -> Result<(), String> {
        match self {
            Self::File(path) => after.save(path).map_err(|e| e.to_string()),
            Self::Postgres(url) => {
                let changed: Vec<_> = after
                    .keys
                    .iter()
                    .filter(|k| !before.keys.contains(k))
                    .cloned()
                    .collect();
                let url = url.clone();
                crate::keystore_pg::run_blocking(async move {
                    let client = crate::keystore_pg::connect(&url).await?;
                    crate::keystore_pg::upsert(&client, &changed).await
                })
            }
        }
    }

    /// Loads the store, applies `change`, and writes back what changed.
    pub fn update<R>(&self, change: impl FnOnce(&mut KeyFile) -> Result<R, KeyFileError>) -> Result<R, String> {
        let before = self.load()?;
        let mut after = before.clone();
        let result = change(&mut after).map_err(|e| e.to_string())?;
        self.save(&before, &after)?;
        Ok(result)
    }

    pub fn describe(&self) -> String {
        match self {
            Self::File(path) => path.display().to_string(),
            Self::Postgres(_) => "the PostgreSQL key store".to_owned(),
        }
    }
}
