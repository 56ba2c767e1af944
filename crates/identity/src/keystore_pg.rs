//! The PostgreSQL key store: API key records (hashes only) in one table shared by many
//! gateway nodes. Each write takes a new `version` from a sequence; nodes poll
//! `max(version)` and `count(*)` every `reload_interval` and reload on change, so a
//! revocation reaches every node within that interval. The table is created if missing.
//! Records are stored as the same JSON the key file holds, so both stores share one
//! format and one verifier.

use std::future::Future;

use crate::{KeyFile, KeyRecord};
pub use tokio_postgres::Client;
use tokio_postgres::NoTls;

const SCHEMA: &str = "
CREATE SEQUENCE IF NOT EXISTS rampart_api_keys_version;
CREATE TABLE IF NOT EXISTS rampart_api_keys (
    id         text PRIMARY KEY,
    record     text NOT NULL,
    version    bigint NOT NULL DEFAULT nextval('rampart_api_keys_version'),
    updated_at timestamptz NOT NULL DEFAULT now()
);";

/// Connects and makes sure the table exists. The connection task ends when the
/// returned client is dropped.
pub async fn connect(url: &str) -> Result<Client, String> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
    #[allow(clippy::disallowed_methods)] // drives the connection; ends when the client is dropped
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL key-store connection ended");
        }
    });
    client
        .batch_execute(SCHEMA)
        .await
        .map_err(|e| format!("cannot create the key table: {e}"))?;
    Ok(client)
}

/// `(max(version), count(*))`: changes whenever a key is added or changed.
pub async fn stamp(client: &Client) -> Result<(i64, i64), String> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint, count(*)::bigint FROM rampart_api_keys",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((row.get(0), row.get(1)))
}

/// Every record, as a key file.
pub async fn load(client: &Client) -> Result<KeyFile, String> {
    let rows = client
        .query("SELECT id, record FROM rampart_api_keys ORDER BY version", &[])
        .await
        .map_err(|e| e.to_string())?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let id: String = row.get(0);
        let text: String = row.get(1);
        let record: KeyRecord = serde_json::from_str(&text).map_err(|e| format!("key {id}: bad record: {e}"))?;
        keys.push(record);
    }
    Ok(KeyFile { keys })
}

/// Inserts or replaces records (each write gets a new version).
pub async fn upsert(client: &Client, records: &[KeyRecord]) -> Result<(), String> {
    for r in records {
        let text = serde_json::to_string(r).map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO rampart_api_keys (id, record) VALUES ($1, $2)
                 ON CONFLICT (id) DO UPDATE SET record = excluded.record,
                     version = nextval('rampart_api_keys_version'), updated_at = now()",
                &[&r.id, &text],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs an async job to completion from synchronous code (start-up, reload, CLI) on a
/// short-lived event loop of its own thread.
pub fn run_blocking<F, T>(job: F) -> Result<T, String>
where
    F: Future<Output = Result<T, String>> + Send,
    T: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())?
                    .block_on(job)
            })
            .join()
            .unwrap_or_else(|_| Err("key-store thread failed".to_owned()))
    })
}
