//! The audit trail in PostgreSQL, for many nodes: every node keeps its own chain in
//! shared tables (`rampart_audit_records`, keyed by node and sequence number, and
//! `rampart_audit_checkpoints`), and verification runs against the database as it does
//! against files.
//!
//! The store is called from the audit writer thread only (`rampart_audit::Store`), so
//! it drives its own single-threaded Tokio runtime and blocks on each round trip, with
//! a timeout. A failed call drops the connection; the next call reconnects. A batch is
//! one `INSERT … SELECT FROM UNNEST(…)` statement: all or nothing, durable on commit.
//! Redelivering records the database already has (after a spill, or a crash between
//! insert and acknowledgement) is a no-op; a different record under the same node and
//! sequence number is an error (two gateways sharing one node id).
//!
//! Records are stored as the exact JSON text that was hashed, never re-encoded.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::Duration;

use rampart_audit::chain::{Checkpoint, Entry};
use rampart_audit::retention::{Anchor, Fate, Purge, must_stay};
use rampart_audit::{Report, Verifier};
use tokio_postgres::{Client, NoTls};

/// One round trip (connect, insert, query) must finish within this.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Rows fetched per query when verifying.
const PAGE: i64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rampart_audit_records (
    node   text   NOT NULL,
    seq    bigint NOT NULL,
    prev   text   NOT NULL,
    hash   text   NOT NULL,
    record text   NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE TABLE IF NOT EXISTS rampart_audit_checkpoints (
    node    text        NOT NULL,
    seq     bigint      NOT NULL,
    line    text        NOT NULL,
    written timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS rampart_audit_checkpoints_node_seq ON rampart_audit_checkpoints (node, seq);
CREATE TABLE IF NOT EXISTS rampart_audit_subject_keys (
    subject text PRIMARY KEY,
    line    text NOT NULL
);
CREATE TABLE IF NOT EXISTS rampart_audit_anchors (
    node text PRIMARY KEY,
    line text NOT NULL
);
";

fn err(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

pub struct PgStore {
    url: String,
    node: String,
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    last: Option<Entry>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("node", &self.node)
            .field("connected", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

async fn connect(url: &str) -> io::Result<Client> {
    let (client, connection) = tokio::time::timeout(TIMEOUT, tokio_postgres::connect(url, NoTls))
        .await
        .map_err(|_| err("connecting to PostgreSQL timed out"))?
        .map_err(|e| err(format!("cannot connect to PostgreSQL: {e}")))?;
    // Runs while the store's runtime is driven (every call blocks on it); ends with
    // the connection.
    #[allow(clippy::disallowed_methods)] // ends with the connection (above)
    tokio::spawn(async move {
        let _ = connection.await;
    });
    tokio::time::timeout(TIMEOUT, client.batch_execute(SCHEMA))
        .await
        .map_err(|_| err("creating the audit tables timed out"))?
        .map_err(|e| err(format!("cannot create the audit tables: {e}")))?;
    Ok(client)
}

fn entry_from_row(row: &tokio_postgres::Row) -> io::Result<Entry> {
    let seq: i64 = row.try_get(0).map_err(err)?;
    let record: String = row.try_get(3).map_err(err)?;
    Ok(Entry {
        seq: u64::try_from(seq).map_err(err)?,
        prev: row.try_get(1).map_err(err)?,
        hash: row.try_get(2).map_err(err)?,
        record: serde_json::value::RawValue::from_string(record).map_err(err)?,
    })
}

impl PgStore {
    /// Connects, creates the tables if needed and reads the node's chain head. The
    /// gateway does not start without it: a chain cannot continue from an unknown head.
    pub fn open(url: &str, node: &str) -> io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut store = Self {
            url: url.to_owned(),
            node: node.to_owned(),
            rt,
            client: None,
            last: None,
        };
        let row = store.run(|c, node| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT seq, prev, hash, record FROM rampart_audit_records WHERE node = $1 ORDER BY seq DESC LIMIT 1",
                    &[&node],
                )
                .await
            })
        })?;
        store.last = row.as_ref().map(entry_from_row).transpose()?;
        Ok(store)
    }

    /// One call with the connected client (see [`blocking_call`]); `f` also gets the
    /// node id.
    fn run<T>(&mut self, f: impl for<'c> FnOnce(&'c Client, String) -> Query<'c, T>) -> io::Result<T> {
        let node = self.node.clone();
        blocking_call(&self.rt, &self.url, &mut self.client, move |c| f(c, node))
    }
}

/// A query future borrowing the client.
type Query<'c, T> = Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + 'c>>;

/// One blocking call on `rt` with the client in `slot` (connecting first when there is
/// none or it closed), within [`TIMEOUT`]. On failure the connection is dropped, so the
/// next call reconnects.
fn blocking_call<T>(
    rt: &tokio::runtime::Runtime,
    url: &str,
    slot: &mut Option<Client>,
    f: impl for<'c> FnOnce(&'c Client) -> Query<'c, T>,
) -> io::Result<T> {
    if slot.as_ref().is_none_or(Client::is_closed) {
        *slot = None;
        *slot = Some(rt.block_on(connect(url))?);
    }
    let client = slot.as_ref().ok_or_else(|| err("not connected to PostgreSQL"))?;
    let out = rt.block_on(async { tokio::time::timeout(TIMEOUT, f(client)).await });
    match out {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            *slot = None;
            Err(err(format!("PostgreSQL: {e}")))
        }
        Err(_) => {
            *slot = None;
            Err(err("PostgreSQL did not answer in time"))
        }
    }
}

impl rampart_audit::Store for PgStore {
    fn last(&self) -> Option<&Entry> {
        self.last.as_ref()
    }

    fn write_entries(&mut self, entries: &[Entry]) -> io::Result<()> {
        let Some(tail) = entries.last().cloned() else {
            return Ok(());
        };
        let seqs: Vec<i64> = entries
            .iter()
            .map(|e| i64::try_from(e.seq).unwrap_or(i64::MAX))
            .collect();
        // Owned: the query future must not borrow the caller's entries.
        let prevs: Vec<String> = entries.iter().map(|e| e.prev.clone()).collect();
        let hashes: Vec<String> = entries.iter().map(|e| e.hash.clone()).collect();
        let records: Vec<String> = entries.iter().map(|e| e.record.get().to_owned()).collect();
        let inserted = self.run(|c, node| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO rampart_audit_records (node, seq, prev, hash, record)
                     SELECT $1, s, p, h, r FROM UNNEST($2::int8[], $3::text[], $4::text[], $5::text[]) AS t(s, p, h, r)
                     ON CONFLICT (node, seq) DO NOTHING",
                    &[&node, &seqs, &prevs, &hashes, &records],
                )
                .await
            })
        })?;
        if inserted < entries.len() as u64 {
            // Some were there already: fine when they are the same records (a
            // redelivery), an error when they are not.
            let seqs: Vec<i64> = entries
                .iter()
                .map(|e| i64::try_from(e.seq).unwrap_or(i64::MAX))
                .collect();
            let rows = self.run(|c, node| {
                Box::pin(async move {
                    c.query(
                        "SELECT seq, hash FROM rampart_audit_records WHERE node = $1 AND seq = ANY($2)",
                        &[&node, &seqs],
                    )
                    .await
                })
            })?;
            for row in rows {
                let seq: i64 = row.try_get(0).map_err(err)?;
                let hash: String = row.try_get(1).map_err(err)?;
                if entries
                    .iter()
                    .any(|e| i64::try_from(e.seq).ok() == Some(seq) && e.hash != hash)
                {
                    return Err(err(format!(
                        "record {seq} of node {} in PostgreSQL is a different record: is another gateway using the same node id?",
                        self.node
                    )));
                }
            }
        }
        self.last = Some(tail);
        Ok(())
    }

    fn write_checkpoint(&mut self, cp: &Checkpoint) -> io::Result<()> {
        let line = serde_json::json!({ "checkpoint": cp }).to_string();
        let seq = i64::try_from(cp.seq).unwrap_or(i64::MAX);
        self.run(|c, node| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO rampart_audit_checkpoints (node, seq, line) VALUES ($1, $2, $3)",
                    &[&node, &seq, &line],
                )
                .await
            })
        })?;
        Ok(())
    }

    /// Every statement commits on its own; a committed row is durable.
    fn sync(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Payload subject keys (wrapped by the master key) in PostgreSQL, shared by every node.
/// Blocking: called from the audit writer thread, the admin API's blocking pool and the
/// CLI, never from an async task.
pub struct PgKeys {
    url: String,
    /// `None` only while dropping (see `Drop`).
    rt: Option<tokio::runtime::Runtime>,
    client: std::sync::Mutex<Option<Client>>,
}

impl Drop for PgKeys {
    /// The gateway drops its key store inside its async runtime, where dropping another
    /// runtime the ordinary way panics; shut this one down in the background instead.
    fn drop(&mut self) {
        if let Ok(mut c) = self.client.lock() {
            c.take();
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgKeys").finish_non_exhaustive()
    }
}

impl PgKeys {
    pub fn new(url: &str) -> io::Result<Self> {
        Ok(Self {
            url: url.to_owned(),
            rt: Some(tokio::runtime::Builder::new_current_thread().enable_all().build()?),
            client: std::sync::Mutex::new(None),
        })
    }

    fn with<T>(&self, f: impl for<'c> FnOnce(&'c Client) -> Query<'c, T>) -> io::Result<T> {
        let rt = self
            .rt
            .as_ref()
            .ok_or_else(|| err("the subject key store is shutting down"))?;
        let mut guard = self.client.lock().map_err(|_| err("subject key connection poisoned"))?;
        blocking_call(rt, &self.url, &mut guard, f)
    }

    pub fn load(&self, subject: &str) -> io::Result<Option<String>> {
        let subject = subject.to_owned();
        let row = self.with(move |c| {
            Box::pin(async move {
                c.query_opt(
                    "SELECT line FROM rampart_audit_subject_keys WHERE subject = $1",
                    &[&subject],
                )
                .await
            })
        })?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Stores a new key unless the subject has one; returns whether this one was stored.
    pub fn insert(&self, subject: &str, line: &str) -> io::Result<bool> {
        let (subject, line) = (subject.to_owned(), line.to_owned());
        let n = self.with(move |c| {
            Box::pin(async move {
                c.execute(
                    "INSERT INTO rampart_audit_subject_keys (subject, line) VALUES ($1, $2) ON CONFLICT (subject) DO NOTHING",
                    &[&subject, &line],
                )
                .await
            })
        })?;
        Ok(n == 1)
    }

    pub fn delete(&self, subject: &str) -> io::Result<bool> {
        let subject = subject.to_owned();
        let n = self.with(move |c| {
            Box::pin(async move {
                c.execute("DELETE FROM rampart_audit_subject_keys WHERE subject = $1", &[&subject])
                    .await
            })
        })?;
        Ok(n > 0)
    }
}

/// The next page of `node`'s records after sequence number `after`, in order.
async fn page(client: &Client, node: &str, after: i64) -> io::Result<Vec<tokio_postgres::Row>> {
    client
        .query(
            "SELECT seq, prev, hash, record FROM rampart_audit_records WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            &[&node, &after, &PAGE],
        )
        .await
        .map_err(err)
}

/// Verifies one node's chain in PostgreSQL, page by page (bounded memory): records in
/// sequence order, each checkpoint checked after the record it covers. Problems name
/// `postgres:<node>` and the record's sequence number as the line.
pub async fn verify(
    url: &str,
    node: &str,
    public_key: Option<&[u8]>,
    limits: rampart_audit::Limits,
) -> io::Result<Report> {
    let client = connect(url).await?;
    let cps = client
        .query(
            "SELECT seq, line FROM rampart_audit_checkpoints WHERE node = $1 ORDER BY seq, written",
            &[&node],
        )
        .await
        .map_err(err)?;
    let mut checkpoints = cps
        .iter()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
        .peekable();
    let place = format!("postgres:{node}");
    let mut v = Verifier::new(public_key);
    v.limits(limits);
    if let Some(anchor) = read_anchor(&client, node).await? {
        v.start_after(&format!("{place}:anchor"), &anchor);
    }
    let mut after: i64 = -1;
    loop {
        let rows = page(&client, node, after).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let e = entry_from_row(row)?;
            let seq = i64::try_from(e.seq).unwrap_or(i64::MAX);
            // Checkpoints over earlier records come first.
            while let Some((cs, line)) = checkpoints.next_if(|(cs, _)| *cs < seq) {
                v.line(&place, usize::try_from(cs).unwrap_or(0), &line);
            }
            v.line(&place, usize::try_from(seq).unwrap_or(0), &e.line());
            after = seq;
        }
    }
    for (cs, line) in checkpoints {
        v.line(&place, usize::try_from(cs).unwrap_or(0), &line);
    }
    Ok(v.finish())
}

/// Calls `f` with every record entry of `node`, in order, page by page.
pub async fn for_each_entry(url: &str, node: &str, mut f: impl FnMut(Entry)) -> io::Result<()> {
    let client = connect(url).await?;
    let mut after: i64 = -1;
    loop {
        let rows = page(&client, node, after).await?;
        if rows.is_empty() {
            return Ok(());
        }
        for row in &rows {
            let e = entry_from_row(row)?;
            after = i64::try_from(e.seq).unwrap_or(i64::MAX);
            f(e);
        }
    }
}

async fn read_anchor(client: &Client, node: &str) -> io::Result<Option<Anchor>> {
    let row = client
        .query_opt("SELECT line FROM rampart_audit_anchors WHERE node = $1", &[&node])
        .await
        .map_err(err)?;
    row.map(|r| serde_json::from_str::<Anchor>(&r.get::<_, String>(0)).map_err(err))
        .transpose()
}

/// Retention in the database: deletes the oldest records of `node`, front to back, while
/// `fate` allows at `now` (never the newest record, the chain head), and in the same
/// transaction stores a signed anchor naming the last one deleted.
pub async fn purge(
    url: &str,
    node: &str,
    fate: impl Fn(&serde_json::Value) -> Fate,
    now: i64,
    key: &rampart_audit::chain::SigningKey,
    time: &str,
    dry_run: bool,
) -> io::Result<Purge> {
    let mut client = connect(url).await?;
    let mut out = Purge::default();
    let head: Option<i64> = client
        .query_one("SELECT max(seq) FROM rampart_audit_records WHERE node = $1", &[&node])
        .await
        .map_err(err)?
        .get(0);
    let mut last: Option<(u64, String)> = None;
    let mut after: i64 = -1;
    'pages: loop {
        let rows = page(&client, node, after).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let e = entry_from_row(row)?;
            after = i64::try_from(e.seq).unwrap_or(i64::MAX);
            if Some(after) == head {
                out.stopped = Some("the newest record (the chain head) is never purged".into());
                break 'pages;
            }
            if let Some(why) = must_stay(&e, &fate, now) {
                out.stopped = Some(why);
                break 'pages;
            }
            out.records += 1;
            last = Some((e.seq, e.hash));
        }
    }
    out.through = last.as_ref().map(|(s, _)| *s);
    let Some((seq, hash)) = last.filter(|_| !dry_run) else {
        return Ok(out);
    };
    let previous = read_anchor(&client, node).await?.map_or(0, |a| a.records);
    let anchor = Anchor::sign(key, node, seq, &hash, time, previous + out.records);
    let line = serde_json::to_string(&anchor).map_err(err)?;
    let through = i64::try_from(seq).unwrap_or(i64::MAX);
    let tx = client.transaction().await.map_err(err)?;
    tx.execute(
        "INSERT INTO rampart_audit_anchors (node, line) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET line = EXCLUDED.line",
        &[&node, &line],
    )
    .await
    .map_err(err)?;
    tx.execute(
        "DELETE FROM rampart_audit_records WHERE node = $1 AND seq <= $2",
        &[&node, &through],
    )
    .await
    .map_err(err)?;
    tx.execute(
        "DELETE FROM rampart_audit_checkpoints WHERE node = $1 AND seq <= $2",
        &[&node, &through],
    )
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    Ok(out)
}

/// The node ids that have records in the database.
pub async fn nodes(url: &str) -> io::Result<Vec<String>> {
    let client = connect(url).await?;
    let rows = client
        .query("SELECT DISTINCT node FROM rampart_audit_records ORDER BY node", &[])
        .await
        .map_err(err)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
