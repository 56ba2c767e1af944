//! Where oversight state lives.
//!
//! - **Journal file** (one node, the default): every change is one JSON line appended
//!   and made durable (`fdatasync`) before the call returns; opening replays the
//!   journal, and it is rewritten compacted (write, sync, rename) when it holds more
//!   than twice the live state. A torn last line (power loss mid-append) is skipped
//!   with a warning; a bad line elsewhere is an error naming the file and line.
//! - **PostgreSQL** (a fleet): three tables, created if missing. Each node reads the
//!   stops every sync interval, so a stop set on one node holds on every node within
//!   that interval. Decisions are conditional updates (`WHERE status = 'pending'`):
//!   two reviewers deciding at once cannot both win.
//! - **Memory**: nothing survives a restart (only when no file or database is
//!   configured; the gateway warns at start).
//!
//! Review items are bounded (`max_reviews`): past the bound the oldest decided items
//! go first, then the oldest items reviewed after the fact. Held items are bounded by
//! the gateway, never dropped here.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio_postgres::NoTls;

use crate::{DecideError, Decision, Incident, Mode, ReviewItem, Scope, Status, Stop};

/// The state a journal replays to (and the memory store holds).
#[derive(Debug, Default, Clone)]
struct State {
    stops: BTreeMap<Scope, Stop>,
    reviews: BTreeMap<String, ReviewItem>,
    incidents: BTreeMap<String, Incident>,
}

impl State {
    fn apply(&mut self, e: Event) {
        match e {
            Event::Stop(s) => {
                self.stops.insert(s.scope.clone(), s);
            }
            Event::Lift { scope } => {
                self.stops.remove(&scope);
            }
            Event::Review(item) => {
                self.reviews.insert(item.id.clone(), *item);
            }
            Event::Decide {
                id,
                status,
                by,
                at,
                note,
                block_principal,
            } => {
                if let Some(item) = self.reviews.get_mut(&id) {
                    item.apply(&Decision {
                        status,
                        by,
                        at,
                        note,
                        block_principal,
                    });
                }
            }
            Event::Forget { subject } => {
                for item in self.reviews.values_mut() {
                    if item.subject.as_deref() == Some(subject.as_str()) {
                        item.preview = None;
                        item.sealed = None;
                    }
                }
            }
            Event::Incident(i) => {
                self.incidents.insert(i.id.clone(), i);
            }
        }
    }

    fn len(&self) -> usize {
        self.stops.len() + self.reviews.len() + self.incidents.len()
    }

    /// Drops items past `max`: decided first, then after-the-fact, oldest first.
    /// Returns the ids dropped.
    fn prune(&mut self, max: usize) -> Vec<String> {
        let mut dropped = Vec::new();
        while self.reviews.len() > max {
            let victim = self
                .reviews
                .values()
                .filter(|i| i.status != Status::Pending)
                .min_by_key(|i| i.created)
                .or_else(|| {
                    self.reviews
                        .values()
                        .filter(|i| i.mode == Mode::After)
                        .min_by_key(|i| i.created)
                })
                .map(|i| i.id.clone());
            let Some(id) = victim else { break };
            self.reviews.remove(&id);
            dropped.push(id);
        }
        dropped
    }

    fn events(&self) -> Vec<Event> {
        let mut out: Vec<Event> = self.stops.values().cloned().map(Event::Stop).collect();
        let mut items: Vec<&ReviewItem> = self.reviews.values().collect();
        items.sort_by_key(|i| i.created);
        out.extend(items.into_iter().map(|i| Event::Review(Box::new(i.clone()))));
        out.extend(self.incidents.values().cloned().map(Event::Incident));
        out
    }
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Stop(Stop),
    Lift {
        scope: Scope,
    },
    Review(Box<ReviewItem>),
    Decide {
        id: String,
        status: Status,
        by: String,
        at: i64,
        #[serde(default)]
        note: Option<String>,
        #[serde(default)]
        block_principal: bool,
    },
    Forget {
        subject: String,
    },
    Incident(Incident),
}

#[derive(Debug)]
struct Journal {
    path: PathBuf,
    file: std::fs::File,
    lines: usize,
}

#[derive(Debug)]
struct Local {
    state: State,
    journal: Option<Journal>,
    max_reviews: usize,
}

impl Local {
    fn write(&mut self, events: &[Event]) -> Result<(), String> {
        let Some(j) = self.journal.as_mut() else {
            return Ok(());
        };
        let mut text = String::new();
        for e in events {
            text.push_str(&serde_json::to_string(e).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        j.file
            .write_all(text.as_bytes())
            .and_then(|()| j.file.sync_data())
            .map_err(|e| format!("{}: cannot write: {e}", j.path.display()))?;
        j.lines += events.len();
        Ok(())
    }

    /// Applies and journals `events`; the state changes only if the journal took them.
    fn commit(&mut self, events: Vec<Event>) -> Result<(), String> {
        self.write(&events)?;
        for e in events {
            self.state.apply(e);
        }
        let dropped = self.state.prune(self.max_reviews);
        if !dropped.is_empty() {
            tracing::warn!(
                dropped = dropped.len(),
                "review queue full: the oldest items were dropped"
            );
        }
        self.compact_if_due();
        Ok(())
    }

    fn compact_if_due(&mut self) {
        let live = self.state.len();
        let Some(j) = self.journal.as_mut() else { return };
        if j.lines <= 2 * live + 1000 {
            return;
        }
        match rewrite(&j.path, &self.state.events()) {
            Ok(file) => {
                j.file = file;
                j.lines = live;
            }
            Err(e) => tracing::warn!(error = %e, "oversight journal not compacted; it keeps growing until it can be"),
        }
    }
}

/// Writes `events` to a fresh file beside `path`, syncs it and renames it over `path`;
/// returns the new file open for appending.
fn rewrite(path: &Path, events: &[Event]) -> Result<std::fs::File, String> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut text = String::new();
    for e in events {
        text.push_str(&serde_json::to_string(e).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    let err = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Replays a journal file (missing: empty).
fn replay(path: &Path) -> Result<(State, usize, bool), String> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((State::default(), 0, false)),
        Err(e) => return Err(format!("{}: cannot read: {e}", path.display())),
    };
    let lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let mut state = State::default();
    let last = lines.len();
    let mut torn = false;
    for (n, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => state.apply(e),
            Err(e) if n + 1 == last => {
                torn = true;
                tracing::warn!(file = %path.display(), line = n + 1, error = %e, "torn last journal line skipped");
            }
            Err(e) => return Err(format!("{}: line {}: {e}", path.display(), n + 1)),
        }
    }
    Ok((state, last, torn))
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rampart_stops (
    scope      text PRIMARY KEY,
    record     text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS rampart_reviews (
    id       text PRIMARY KEY,
    created  bigint NOT NULL,
    status   text NOT NULL,
    subject  text,
    record   jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS rampart_reviews_status ON rampart_reviews (status, created);
CREATE TABLE IF NOT EXISTS rampart_incidents (
    id     text PRIMARY KEY,
    aware  bigint NOT NULL,
    record text NOT NULL
);";

/// A PostgreSQL connection that reconnects after the server went away.
#[derive(Debug)]
struct Pg {
    url: String,
    client: tokio::sync::Mutex<Option<Arc<tokio_postgres::Client>>>,
    max_reviews: usize,
}

impl Pg {
    async fn client(&self) -> Result<Arc<tokio_postgres::Client>, String> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.is_closed()
        {
            return Ok(Arc::clone(c));
        }
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        #[allow(clippy::disallowed_methods)] // drives the connection; ends when the client is dropped
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL oversight connection ended");
            }
        });
        client
            .batch_execute(SCHEMA)
            .await
            .map_err(|e| format!("cannot create the oversight tables: {e}"))?;
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }
}

fn pg_err(e: tokio_postgres::Error) -> String {
    format!("PostgreSQL: {e}")
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("bad oversight record: {e}"))
}

#[derive(Debug)]
enum Inner {
    Local(Arc<Mutex<Local>>),
    Postgres(Pg),
}

/// The oversight store: a journal file, PostgreSQL, or memory.
#[derive(Debug)]
pub struct Store {
    inner: Inner,
}

/// Runs `f` on the local store off the async threads (it may fsync).
async fn local<T: Send + 'static>(
    l: &Arc<Mutex<Local>>,
    f: impl FnOnce(&mut Local) -> T + Send + 'static,
) -> Result<T, String> {
    let l = Arc::clone(l);
    tokio::task::spawn_blocking(move || {
        let mut guard = l.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    })
    .await
    .map_err(|e| format!("oversight store task failed: {e}"))
}

impl Store {
    /// Nothing survives a restart.
    pub fn memory(max_reviews: usize) -> Self {
        Self {
            inner: Inner::Local(Arc::new(Mutex::new(Local {
                state: State::default(),
                journal: None,
                max_reviews,
            }))),
        }
    }

    /// Opens (or creates) a journal file and replays it.
    pub fn file(path: &Path, max_reviews: usize) -> Result<Self, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        }
        let (state, lines, torn) = replay(path)?;
        // A torn tail is rewritten away before anything is appended after it.
        let file = if torn {
            rewrite(path, &state.events())?
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{}: cannot open for writing: {e}", path.display()))?
        };
        let mut l = Local {
            state,
            journal: Some(Journal {
                path: path.to_owned(),
                file,
                lines,
            }),
            max_reviews,
        };
        l.compact_if_due();
        Ok(Self {
            inner: Inner::Local(Arc::new(Mutex::new(l))),
        })
    }

    /// PostgreSQL; connects (and creates the tables if missing) on first use, and
    /// again whenever the connection was lost.
    pub fn postgres(url: &str, max_reviews: usize) -> Self {
        Self {
            inner: Inner::Postgres(Pg {
                url: url.to_owned(),
                client: tokio::sync::Mutex::new(None),
                max_reviews,
            }),
        }
    }

    /// The stops in force, read from a synchronous context before the gateway serves
    /// (a stop must hold from the first request after a restart). PostgreSQL is read
    /// over a connection of its own, on a thread of its own.
    pub fn stops_blocking(&self) -> Result<Vec<Stop>, String> {
        match &self.inner {
            Inner::Local(l) => {
                let l = l.lock().unwrap_or_else(|p| p.into_inner());
                Ok(l.state.stops.values().cloned().collect())
            }
            Inner::Postgres(pg) => {
                let url = pg.url.clone();
                #[allow(clippy::disallowed_methods)] // one query at start; joined below
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(async move {
                        let once = Pg {
                            url,
                            client: tokio::sync::Mutex::new(None),
                            max_reviews: 0,
                        };
                        let store = Store {
                            inner: Inner::Postgres(once),
                        };
                        store.stops().await
                    })
                })
                .join()
                .map_err(|_| "the PostgreSQL reader thread failed".to_owned())?
            }
        }
    }

    /// Whether several nodes share this store (their stops and decisions arrive
    /// through [`Store::stops`] and [`Store::decided`] polls).
    pub fn shared(&self) -> bool {
        matches!(self.inner, Inner::Postgres(_))
    }

    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::Local(l) => {
                let l = l.lock().unwrap_or_else(|p| p.into_inner());
                match &l.journal {
                    Some(j) => format!("file {}", j.path.display()),
                    None => "memory".into(),
                }
            }
            Inner::Postgres(_) => "postgres".into(),
        }
    }

    pub async fn stops(&self) -> Result<Vec<Stop>, String> {
        match &self.inner {
            Inner::Local(l) => local(l, |l| l.state.stops.values().cloned().collect()).await,
            Inner::Postgres(pg) => {
                let rows = pg
                    .client()
                    .await?
                    .query("SELECT record FROM rampart_stops ORDER BY scope", &[])
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| parse(r.get::<_, &str>(0))).collect()
            }
        }
    }

    /// Sets (or replaces) the stop on its scope.
    pub async fn set_stop(&self, stop: Stop) -> Result<(), String> {
        match &self.inner {
            Inner::Local(l) => local(l, move |l| l.commit(vec![Event::Stop(stop)])).await?,
            Inner::Postgres(pg) => {
                let text = serde_json::to_string(&stop).map_err(|e| e.to_string())?;
                pg.client()
                    .await?
                    .execute(
                        "INSERT INTO rampart_stops (scope, record) VALUES ($1, $2)
                         ON CONFLICT (scope) DO UPDATE SET record = excluded.record, updated_at = now()",
                        &[&stop.scope.to_string(), &text],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(())
            }
        }
    }

    /// Lifts the stop on `scope`; with `only` set, only if the stop is still exactly
    /// that one (so when several nodes lift an expired stop, one of them does).
    /// Returns the stop lifted.
    pub async fn lift_stop(&self, scope: &Scope, only: Option<&Stop>) -> Result<Option<Stop>, String> {
        match &self.inner {
            Inner::Local(l) => {
                let scope = scope.clone();
                let only = only.cloned();
                local(l, move |l| {
                    let current = l.state.stops.get(&scope).cloned();
                    match current {
                        Some(s) if only.as_ref().is_none_or(|o| *o == s) => {
                            l.commit(vec![Event::Lift { scope }])?;
                            Ok(Some(s))
                        }
                        _ => Ok(None),
                    }
                })
                .await?
            }
            Inner::Postgres(pg) => {
                let client = pg.client().await?;
                let key = scope.to_string();
                let row = match only {
                    Some(o) => {
                        let text = serde_json::to_string(o).map_err(|e| e.to_string())?;
                        client
                            .query_opt(
                                "DELETE FROM rampart_stops WHERE scope = $1 AND record = $2 RETURNING record",
                                &[&key, &text],
                            )
                            .await
                    }
                    None => {
                        client
                            .query_opt("DELETE FROM rampart_stops WHERE scope = $1 RETURNING record", &[&key])
                            .await
                    }
                }
                .map_err(pg_err)?;
                row.map(|r| parse(r.get::<_, &str>(0))).transpose()
            }
        }
    }

    pub async fn add_review(&self, item: ReviewItem) -> Result<(), String> {
        match &self.inner {
            Inner::Local(l) => local(l, move |l| l.commit(vec![Event::Review(Box::new(item))])).await?,
            Inner::Postgres(pg) => {
                let text = serde_json::to_string(&item).map_err(|e| e.to_string())?;
                let client = pg.client().await?;
                client
                    .execute(
                        "INSERT INTO rampart_reviews (id, created, status, subject, record)
                         VALUES ($1, $2, $3, $4, ($5::text)::jsonb)",
                        &[&item.id, &item.created, &item.status.as_str(), &item.subject, &text],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(())
            }
        }
    }

    /// Decides a pending item. Exactly one decision wins; later ones get
    /// [`DecideError::AlreadyDecided`].
    pub async fn decide(&self, id: &str, d: Decision) -> Result<ReviewItem, DecideError> {
        match &self.inner {
            Inner::Local(l) => {
                let id = id.to_owned();
                local(l, move |l| {
                    let item = l.state.reviews.get(&id).ok_or(DecideError::NotFound)?;
                    if item.status != Status::Pending {
                        return Err(DecideError::AlreadyDecided(item.status));
                    }
                    if d.status != Status::Expired && !d.status.decides(item.mode) {
                        return Err(DecideError::WrongMode);
                    }
                    let mut out = item.clone();
                    out.apply(&d);
                    l.commit(vec![Event::Decide {
                        id,
                        status: d.status,
                        by: d.by,
                        at: d.at,
                        note: d.note,
                        block_principal: d.block_principal,
                    }])
                    .map_err(DecideError::Store)?;
                    Ok(out)
                })
                .await
                .map_err(DecideError::Store)?
            }
            Inner::Postgres(pg) => {
                let client = pg.client().await.map_err(DecideError::Store)?;
                let current = client
                    .query_opt("SELECT record::text FROM rampart_reviews WHERE id = $1", &[&id])
                    .await
                    .map_err(|e| DecideError::Store(pg_err(e)))?
                    .ok_or(DecideError::NotFound)?;
                let mut item: ReviewItem = parse(current.get::<_, &str>(0)).map_err(DecideError::Store)?;
                if item.status != Status::Pending {
                    return Err(DecideError::AlreadyDecided(item.status));
                }
                if d.status != Status::Expired && !d.status.decides(item.mode) {
                    return Err(DecideError::WrongMode);
                }
                item.apply(&d);
                let text = serde_json::to_string(&item).map_err(|e| DecideError::Store(e.to_string()))?;
                let won = client
                    .execute(
                        "UPDATE rampart_reviews SET status = $2, record = ($3::text)::jsonb
                         WHERE id = $1 AND status = 'pending'",
                        &[&id, &item.status.as_str(), &text],
                    )
                    .await
                    .map_err(|e| DecideError::Store(pg_err(e)))?;
                if won == 0 {
                    // Someone else decided between the read and the write.
                    let now = self.review(id).await.map_err(DecideError::Store)?;
                    return Err(now.map_or(DecideError::NotFound, |i| DecideError::AlreadyDecided(i.status)));
                }
                Ok(item)
            }
        }
    }

    pub async fn review(&self, id: &str) -> Result<Option<ReviewItem>, String> {
        match &self.inner {
            Inner::Local(l) => {
                let id = id.to_owned();
                local(l, move |l| l.state.reviews.get(&id).cloned()).await
            }
            Inner::Postgres(pg) => pg
                .client()
                .await?
                .query_opt("SELECT record::text FROM rampart_reviews WHERE id = $1", &[&id])
                .await
                .map_err(pg_err)?
                .map(|r| parse(r.get::<_, &str>(0)))
                .transpose(),
        }
    }

    /// Items, newest first; `status` narrows to one status.
    pub async fn reviews(&self, status: Option<Status>, limit: usize) -> Result<Vec<ReviewItem>, String> {
        match &self.inner {
            Inner::Local(l) => {
                local(l, move |l| {
                    let mut v: Vec<ReviewItem> = l
                        .state
                        .reviews
                        .values()
                        .filter(|i| status.is_none_or(|s| i.status == s))
                        .cloned()
                        .collect();
                    v.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| b.id.cmp(&a.id)));
                    v.truncate(limit);
                    v
                })
                .await
            }
            Inner::Postgres(pg) => {
                let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                let client = pg.client().await?;
                let rows = match status {
                    Some(s) => {
                        client
                            .query(
                                "SELECT record::text FROM rampart_reviews WHERE status = $1
                                 ORDER BY created DESC, id DESC LIMIT $2",
                                &[&s.as_str(), &limit],
                            )
                            .await
                    }
                    None => {
                        client
                            .query(
                                "SELECT record::text FROM rampart_reviews ORDER BY created DESC, id DESC LIMIT $1",
                                &[&limit],
                            )
                            .await
                    }
                }
                .map_err(pg_err)?;
                rows.iter().map(|r| parse(r.get::<_, &str>(0))).collect()
            }
        }
    }

    /// The items among `ids` that are no longer pending (a held request's answer).
    pub async fn decided(&self, ids: &[String]) -> Result<Vec<ReviewItem>, String> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        match &self.inner {
            Inner::Local(l) => {
                let ids = ids.to_vec();
                local(l, move |l| {
                    ids.iter()
                        .filter_map(|id| l.state.reviews.get(id))
                        .filter(|i| i.status != Status::Pending)
                        .cloned()
                        .collect()
                })
                .await
            }
            Inner::Postgres(pg) => {
                let rows = pg
                    .client()
                    .await?
                    .query(
                        "SELECT record::text FROM rampart_reviews WHERE id = ANY($1) AND status <> 'pending'",
                        &[&ids],
                    )
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| parse(r.get::<_, &str>(0))).collect()
            }
        }
    }

    /// Erasure: clears the preview and sealed payload of every item of `subject` (a
    /// pseudonym). Returns how many items held one.
    pub async fn forget_subject(&self, subject: &str) -> Result<u64, String> {
        match &self.inner {
            Inner::Local(l) => {
                let subject = subject.to_owned();
                local(l, move |l| {
                    let n = l
                        .state
                        .reviews
                        .values()
                        .filter(|i| {
                            i.subject.as_deref() == Some(subject.as_str())
                                && (i.preview.is_some() || i.sealed.is_some())
                        })
                        .count() as u64;
                    if n > 0 {
                        l.commit(vec![Event::Forget { subject }])?;
                    }
                    Ok(n)
                })
                .await?
            }
            Inner::Postgres(pg) => pg
                .client()
                .await?
                .execute(
                    "UPDATE rampart_reviews SET record = record - 'preview' - 'sealed'
                     WHERE subject = $1 AND (record ? 'preview' OR record ? 'sealed')",
                    &[&subject],
                )
                .await
                .map_err(pg_err),
        }
    }

    /// Keeps the review table within its bound (PostgreSQL; the file store prunes on
    /// every write).
    pub async fn prune(&self) -> Result<u64, String> {
        let Inner::Postgres(pg) = &self.inner else {
            return Ok(0);
        };
        let max = i64::try_from(pg.max_reviews).unwrap_or(i64::MAX);
        pg.client()
            .await?
            .execute(
                "DELETE FROM rampart_reviews WHERE id IN (
                     SELECT id FROM rampart_reviews
                     WHERE status <> 'pending' OR record->>'mode' = 'after'
                     ORDER BY (status = 'pending'), created
                     LIMIT greatest(0, (SELECT count(*) FROM rampart_reviews) - $1))",
                &[&max],
            )
            .await
            .map_err(pg_err)
    }

    /// Opens or updates an incident record.
    pub async fn put_incident(&self, incident: Incident) -> Result<(), String> {
        match &self.inner {
            Inner::Local(l) => local(l, move |l| l.commit(vec![Event::Incident(incident)])).await?,
            Inner::Postgres(pg) => {
                let text = serde_json::to_string(&incident).map_err(|e| e.to_string())?;
                pg.client()
                    .await?
                    .execute(
                        "INSERT INTO rampart_incidents (id, aware, record) VALUES ($1, $2, $3)
                         ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                        &[&incident.id, &incident.aware, &text],
                    )
                    .await
                    .map_err(pg_err)?;
                Ok(())
            }
        }
    }

    /// Every incident, newest first.
    pub async fn incidents(&self) -> Result<Vec<Incident>, String> {
        match &self.inner {
            Inner::Local(l) => {
                local(l, |l| {
                    let mut v: Vec<Incident> = l.state.incidents.values().cloned().collect();
                    v.sort_by_key(|i| std::cmp::Reverse(i.aware));
                    v
                })
                .await
            }
            Inner::Postgres(pg) => {
                let rows = pg
                    .client()
                    .await?
                    .query("SELECT record FROM rampart_incidents ORDER BY aware DESC", &[])
                    .await
                    .map_err(pg_err)?;
                rows.iter().map(|r| parse(r.get::<_, &str>(0))).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Reason, Severity};

    fn item(id: &str, mode: Mode, created: i64) -> ReviewItem {
        ReviewItem {
            id: id.into(),
            mode,
            status: Status::Pending,
            created,
            node: "n".into(),
            request_id: format!("req-{id}"),
            route: "chat".into(),
            model: None,
            principal: Some("alice".into()),
            key_id: None,
            tenant: None,
            reasons: vec![Reason {
                kind: "injection".into(),
                score: 0.7,
            }],
            findings: vec!["injection".into()],
            subject: Some("subj".into()),
            sealed: None,
            preview: Some("hello [EMAIL]".into()),
            decided_by: None,
            decided_at: None,
            note: None,
            blocked_principal: false,
        }
    }

    fn decision(status: Status) -> Decision {
        Decision {
            status,
            by: "rev".into(),
            at: 5,
            note: Some("ok".into()),
            block_principal: false,
        }
    }

    fn stop(scope: &str) -> Stop {
        Stop {
            scope: Scope::parse(scope).unwrap_or(Scope::Gateway),
            reason: "maintenance".into(),
            by: "ops".into(),
            at: 1,
            until: None,
            cut_streams: true,
        }
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rampart-oversight-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("oversight.jsonl")
    }

    #[tokio::test]
    async fn a_journal_survives_reopening() {
        let path = tmp("reopen");
        {
            let s = Store::file(&path, 100).unwrap();
            s.set_stop(stop("route:chat")).await.unwrap();
            s.set_stop(stop("gateway")).await.unwrap();
            s.lift_stop(&Scope::Gateway, None).await.unwrap();
            s.add_review(item("a", Mode::Hold, 1)).await.unwrap();
            s.add_review(item("b", Mode::After, 2)).await.unwrap();
            s.decide("a", decision(Status::Approved)).await.unwrap();
            s.put_incident(Incident {
                id: "i1".into(),
                severity: Severity::Serious,
                title: "t".into(),
                source: None,
                opened_by: "ops".into(),
                aware: 3,
                reported: None,
                closed: None,
            })
            .await
            .unwrap();
        }
        let s = Store::file(&path, 100).unwrap();
        let stops = s.stops().await.unwrap();
        assert_eq!(stops, vec![stop("route:chat")]);
        let a = s.review("a").await.unwrap().unwrap();
        assert_eq!(a.status, Status::Approved);
        assert_eq!(a.decided_by.as_deref(), Some("rev"));
        assert_eq!(s.reviews(Some(Status::Pending), 10).await.unwrap().len(), 1);
        assert_eq!(s.incidents().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn only_one_decision_wins_and_it_must_fit_the_mode() {
        let s = Store::memory(100);
        s.add_review(item("a", Mode::Hold, 1)).await.unwrap();
        s.add_review(item("b", Mode::After, 1)).await.unwrap();
        assert_eq!(
            s.decide("b", decision(Status::Approved)).await,
            Err(DecideError::WrongMode)
        );
        assert!(s.decide("a", decision(Status::Rejected)).await.is_ok());
        assert_eq!(
            s.decide("a", decision(Status::Approved)).await,
            Err(DecideError::AlreadyDecided(Status::Rejected))
        );
        assert_eq!(
            s.decide("zz", decision(Status::Approved)).await,
            Err(DecideError::NotFound)
        );
        let decided = s.decided(&["a".into(), "b".into()]).await.unwrap();
        assert_eq!(decided.len(), 1);
    }

    #[tokio::test]
    async fn the_queue_is_bounded_and_drops_decided_items_first() {
        let s = Store::memory(3);
        s.add_review(item("a", Mode::After, 1)).await.unwrap();
        s.add_review(item("b", Mode::Hold, 2)).await.unwrap();
        s.add_review(item("c", Mode::After, 3)).await.unwrap();
        s.decide("c", decision(Status::Acceptable)).await.unwrap();
        s.add_review(item("d", Mode::Hold, 4)).await.unwrap();
        let ids: Vec<String> = s.reviews(None, 10).await.unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, vec!["d", "b", "a"]);
        s.add_review(item("e", Mode::Hold, 5)).await.unwrap();
        let ids: Vec<String> = s.reviews(None, 10).await.unwrap().into_iter().map(|i| i.id).collect();
        // No decided item left: the oldest after-the-fact item goes, never a held one.
        assert_eq!(ids, vec!["e", "d", "b"]);
    }

    #[tokio::test]
    async fn erasure_clears_previews() {
        let s = Store::memory(10);
        s.add_review(item("a", Mode::After, 1)).await.unwrap();
        assert_eq!(s.forget_subject("subj").await.unwrap(), 1);
        assert_eq!(s.review("a").await.unwrap().unwrap().preview, None);
        assert_eq!(s.forget_subject("subj").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped_and_a_bad_middle_line_is_named() {
        let path = tmp("torn");
        {
            let s = Store::file(&path, 10).unwrap();
            s.set_stop(stop("route:a")).await.unwrap();
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"event\":\"stop\",\"sco").unwrap();
        drop(f);
        let s = Store::file(&path, 10).unwrap();
        assert_eq!(s.stops().await.unwrap().len(), 1);
        s.set_stop(stop("route:b")).await.unwrap();
        drop(s);
        let s = Store::file(&path, 10).unwrap();
        assert_eq!(s.stops().await.unwrap().len(), 2);
        drop(s);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("garbage\n{text}")).unwrap();
        let err = Store::file(&path, 10).err().unwrap_or_default();
        assert!(err.contains("line 1"), "{err}");
    }

    #[tokio::test]
    async fn a_long_journal_is_compacted() {
        let path = tmp("compact");
        let s = Store::file(&path, 10).unwrap();
        for i in 0..1100 {
            let mut st = stop("route:a");
            st.at = i;
            s.set_stop(st).await.unwrap();
        }
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines < 1000, "{lines}");
        drop(s);
        let s = Store::file(&path, 10).unwrap();
        assert_eq!(s.stops().await.unwrap()[0].at, 1099);
    }
}
