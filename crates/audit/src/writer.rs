//! The writer: one thread per node that owns the chain and the store. The request path
//! hands it records through a queue whose depth is bounded by admission control
//! ([`Writer::admit`] says no once `queue` records wait), so a record is never dropped:
//! an exchange that was admitted always has a place, and new requests are refused
//! while the backlog is full.
//!
//! Durability: in [`Durability::Sync`] every batch is fdatasynced before its records
//! are acknowledged (callers hold the response until then); in [`Durability::Batch`]
//! records are written within [`GATHER`] of arriving (a process crash loses only what
//! is still in the queue) and fdatasynced every `batch_interval` (a power loss loses at
//! most that). The writer gathers for that long after each write in batch mode instead
//! of waking for every record: a wake-up per request (a futex call on the request path
//! and a context switch) cost a third of the CPU of an audited exchange.
//! Either way the writer drains everything queued at once and writes it with one
//! `write`, so one sync covers a whole group of requests (group commit).
//!
//! When the store fails (disk full, permissions), records are kept in order: with a
//! spill directory they go to spill segment files and are delivered to the store, and
//! the spill files removed, once it accepts writes again; without one they wait in
//! memory, the writer reports itself unhealthy and [`Writer::admit`] refuses new work
//! until the store is back. Records are linked into the chain before either, so the
//! chain is the same whichever way a record travelled.
//!
//! Signed checkpoints bound what could be cut or appended unnoticed: in `sync` mode
//! every group is checkpointed before it is acknowledged (no acknowledged record is
//! ever unsigned); in `batch` mode a checkpoint follows at most `checkpoint_every`
//! records and at most `checkpoint_interval` after a record; and one is written when
//! the writer stops. With a `witness` path, the latest checkpoint is also written
//! there (atomically, at most once a second and at the end), so a trail cut back to an
//! earlier checkpoint is caught by `verify --witness`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

use ring::signature::Ed25519KeyPair;

use crate::chain::{Chain, Entry};
use crate::store::{FileStore, Store};

/// When a record counts as written. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Sync,
    Batch,
}

/// Called once per record with `true` when it is durable (sync mode) or written
/// (batch mode), `false` when the writer is gone.
pub type Ack = Box<dyn FnOnce(bool) + Send>;

/// Builds a record's JSON text, on the writer thread (keeps the request path short).
pub type MakeRecord = Box<dyn FnOnce() -> String + Send>;

/// What the writer reports, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Records written to the store.
    Written(u64),
    /// Records written to spill files instead (the store failed).
    Spilled(u64),
    /// Spilled records delivered to the store.
    Delivered(u64),
    /// A store write or sync failed.
    StoreError,
    /// A checkpoint was written.
    Checkpoint,
}

pub type Observer = Arc<dyn Fn(Event) + Send + Sync>;

#[derive(Debug, Clone)]
pub struct Options {
    pub node: String,
    pub durability: Durability,
    pub batch_interval: Duration,
    pub checkpoint_interval: Duration,
    /// Most records between two checkpoints.
    pub checkpoint_every: u64,
    /// Where the latest checkpoint is also kept (another disk or mount).
    pub witness: Option<PathBuf>,
    pub queue: usize,
    pub spill_dir: Option<PathBuf>,
    pub max_segment_bytes: u64,
}

enum Msg {
    Record(MakeRecord, Option<Ack>),
    /// Write and sync everything before this (and, when `seal`, write a checkpoint
    /// over the head), then acknowledge.
    Flush {
        ack: Ack,
        seal: bool,
    },
}

/// The request path's handle. Cloning shares the writer.
#[derive(Clone)]
pub struct Writer {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("pending", &self.shared.pending.load(Ordering::Relaxed))
            .field("healthy", &self.shared.healthy.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

struct Shared {
    pending: AtomicUsize,
    capacity: usize,
    healthy: AtomicBool,
    spill: bool,
}

/// The writer thread. It ends with the process, after `Writer::seal` wrote the final
/// checkpoint; holding the handle keeps that ownership visible.
#[derive(Debug)]
pub struct Handle {
    _thread: std::thread::JoinHandle<()>,
}

impl Writer {
    /// Starts the writer thread over `store`, whose chain it continues.
    pub fn start(
        store: Box<dyn Store>,
        key: Ed25519KeyPair,
        opts: Options,
        observer: Observer,
    ) -> std::io::Result<(Self, Handle)> {
        let (tx, rx) = channel();
        let shared = Arc::new(Shared {
            pending: AtomicUsize::new(0),
            capacity: opts.queue,
            healthy: AtomicBool::new(true),
            spill: opts.spill_dir.is_some(),
        });
        let spill = match &opts.spill_dir {
            Some(dir) => Some(FileStore::open(dir, &opts.node, opts.max_segment_bytes)?),
            None => None,
        };
        let chain = match (store.last(), spill.as_ref().and_then(FileStore::last_entry)) {
            (_, Some(s)) if store.last().is_none_or(|p| s.seq > p.seq) => Chain::resume(&opts.node, s.seq + 1, &s.hash),
            (Some(p), _) => Chain::resume(&opts.node, p.seq + 1, &p.hash),
            _ => Chain::new(&opts.node),
        };
        let mut state = State {
            store,
            spill,
            spilled: false,
            backlog: VecDeque::new(),
            chain,
            key,
            opts,
            observer,
            shared: Arc::clone(&shared),
            dirty: false,
            checkpointed_seq: None,
            since_checkpoint: 0,
            last_witness: None,
            witness: None,
        };
        state.deliver_spill();
        let thread = std::thread::Builder::new()
            .name("rampart-audit".into())
            .spawn(move || state.run(rx))?;
        Ok((Self { tx, shared }, Handle { _thread: thread }))
    }

    /// Whether a new exchange may start: the queue has room, and the store is
    /// accepting records (or a spill directory takes them).
    pub fn admit(&self) -> bool {
        self.shared.pending.load(Ordering::Relaxed) < self.shared.capacity
            && (self.shared.spill || self.shared.healthy.load(Ordering::Relaxed))
    }

    /// Records waiting for the writer.
    pub fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Relaxed)
    }

    /// Hands over one record. Never drops it: admission control bounds the queue.
    pub fn submit(&self, record: MakeRecord, ack: Option<Ack>) {
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.tx.send(Msg::Record(record, ack)) {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
            if let Msg::Record(_, Some(ack)) = e.0 {
                ack(false);
            }
        }
    }

    /// Writes and syncs everything queued so far; waits up to `timeout`.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.flush_inner(timeout, false)
    }

    /// Like [`Writer::flush`], then a signed checkpoint over the head: call it last,
    /// when the node stops.
    pub fn seal(&self, timeout: Duration) -> bool {
        self.flush_inner(timeout, true)
    }

    fn flush_inner(&self, timeout: Duration, seal: bool) -> bool {
        let (tx, rx) = channel();
        let ack: Ack = Box::new(move |ok| {
            let _ = tx.send(ok);
        });
        if self.tx.send(Msg::Flush { ack, seal }).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).unwrap_or(false)
    }
}

struct State {
    store: Box<dyn Store>,
    spill: Option<FileStore>,
    /// The spill files hold records the store has not got yet.
    spilled: bool,
    /// Records the store refused and no spill took, in order.
    backlog: VecDeque<Entry>,
    chain: Chain,
    key: Ed25519KeyPair,
    opts: Options,
    observer: Observer,
    shared: Arc<Shared>,
    /// Written but not synced (batch mode).
    dirty: bool,
    checkpointed_seq: Option<u64>,
    /// Records written since the last checkpoint.
    since_checkpoint: u64,
    /// When the witness was last written.
    last_witness: Option<Instant>,
    /// The latest checkpoint, for the witness.
    witness: Option<crate::chain::Checkpoint>,
}

/// The witness is rewritten at most this often (and always at the end).
const WITNESS_INTERVAL: Duration = Duration::from_secs(1);

/// Most messages handled in one group.
const MAX_GROUP: usize = 8192;
/// Batch mode: how long the writer lets records gather after a write before it waits
/// for the next one. Senders do not wake a writer that is not waiting.
pub const GATHER: Duration = Duration::from_millis(1);
/// How often a failed store is tried again.
const RETRY: Duration = Duration::from_millis(200);

impl State {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut next_sync: Option<Instant> = None;
        let mut next_checkpoint = Instant::now() + self.opts.checkpoint_interval;
        let mut next_retry: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let wake = [Some(next_checkpoint), next_sync, next_retry]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next_checkpoint);
            let mut group = Vec::new();
            match rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok(msg) => {
                    group.push(msg);
                    while group.len() < MAX_GROUP
                        && let Ok(m) = rx.try_recv()
                    {
                        group.push(m);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if !group.is_empty() {
                self.handle(group);
                if self.dirty && next_sync.is_none() {
                    next_sync = Some(Instant::now() + self.opts.batch_interval);
                }
                if self.opts.durability == Durability::Batch {
                    std::thread::sleep(GATHER.min(self.opts.batch_interval));
                }
            }
            let now = Instant::now();
            if next_sync.is_some_and(|t| now >= t) {
                self.sync();
                next_sync = None;
            }
            if !self.backlog.is_empty() || self.spilled {
                if next_retry.is_none_or(|t| now >= t) {
                    self.retry();
                    next_retry = (!self.backlog.is_empty() || self.spilled).then(|| Instant::now() + RETRY);
                }
            } else {
                next_retry = None;
            }
            if now >= next_checkpoint {
                self.checkpoint();
                self.sync();
                self.write_witness(false);
                next_checkpoint = now + self.opts.checkpoint_interval;
            }
        }
        // Every sender is gone: the gateway is stopping. Write the rest and seal.
        self.retry();
        self.checkpoint();
        self.sync();
        self.write_witness(true);
    }

    fn handle(&mut self, group: Vec<Msg>) {
        let mut entries = Vec::with_capacity(group.len());
        let mut acks = Vec::new();
        let mut flush = false;
        let mut seal = false;
        for msg in group {
            match msg {
                Msg::Record(make, ack) => {
                    entries.push(self.chain.link(make()));
                    if let Some(a) = ack {
                        acks.push(a);
                    }
                }
                Msg::Flush { ack, seal: s } => {
                    flush = true;
                    seal |= s;
                    acks.push(ack);
                }
            }
        }
        let n = entries.len();
        // Never more than `checkpoint_every` records without a checkpoint between them.
        let every = self.opts.checkpoint_every.max(1);
        let mut written = true;
        let mut rest = entries;
        while !rest.is_empty() {
            let room = usize::try_from(every.saturating_sub(self.since_checkpoint).max(1)).unwrap_or(usize::MAX);
            let tail = rest.split_off(room.min(rest.len()));
            let k = rest.len() as u64;
            let last = rest.last().map(|e| (e.seq, e.hash.clone()));
            written &= self.write(rest);
            self.since_checkpoint += k;
            if self.since_checkpoint >= every
                && let Some((seq, hash)) = last
            {
                self.checkpoint_at(seq, &hash);
            }
            rest = tail;
        }
        if written && self.opts.durability == Durability::Sync {
            // Signed before acknowledged: the checkpoint's sync covers the records.
            self.checkpoint();
        }
        if written && (self.opts.durability == Durability::Sync || flush) {
            self.sync();
        }
        if seal {
            self.retry();
            self.checkpoint();
            self.sync();
            self.write_witness(true);
        }
        // A record kept in memory (the store failed, no spill) is not acknowledged as
        // written: a sync-mode client then gets a failed response, never a complete one
        // without its record. The record itself stays queued and is written later.
        let must_sync = self.opts.durability == Durability::Sync || flush;
        let ok = written && (!must_sync || !self.dirty);
        for a in acks {
            a(ok);
        }
        self.shared.pending.fetch_sub(n, Ordering::Relaxed);
    }

    /// Writes entries to the store, or the spill, or keeps them. Returns whether they
    /// reached a file.
    fn write(&mut self, entries: Vec<Entry>) -> bool {
        if entries.is_empty() {
            return true;
        }
        let n = entries.len() as u64;
        if self.backlog.is_empty() && !self.spilled {
            match self.store.write_entries(&entries) {
                Ok(()) => {
                    self.dirty = true;
                    (self.observer)(Event::Written(n));
                    return true;
                }
                Err(e) => {
                    (self.observer)(Event::StoreError);
                    tracing::error!(error = %e, "audit store write failed; records are kept in order");
                    self.shared.healthy.store(false, Ordering::Relaxed);
                }
            }
        }
        if let Some(spill) = self.spill.as_mut()
            && self.backlog.is_empty()
        {
            match spill.append_entries(&entries).and_then(|()| {
                if self.opts.durability == Durability::Sync {
                    spill.sync()
                } else {
                    Ok(())
                }
            }) {
                Ok(()) => {
                    self.spilled = true;
                    (self.observer)(Event::Spilled(n));
                    return true;
                }
                Err(e) => {
                    (self.observer)(Event::StoreError);
                    tracing::error!(error = %e, "audit spill write failed; records are kept in memory");
                }
            }
        }
        self.backlog.extend(entries);
        false
    }

    fn sync(&mut self) {
        if !self.dirty {
            return;
        }
        match self.store.sync() {
            Ok(()) => {
                self.dirty = false;
                // The witness only ever names a checkpoint that is durable in the trail.
                self.write_witness(false);
            }
            Err(e) => {
                (self.observer)(Event::StoreError);
                tracing::error!(error = %e, "audit store sync failed");
            }
        }
    }

    /// Moves spilled and backlogged records to the store once it accepts writes.
    fn retry(&mut self) {
        if self.spilled {
            self.deliver_spill();
        }
        if !self.spilled && !self.backlog.is_empty() {
            let entries: Vec<Entry> = self.backlog.iter().cloned().collect();
            if self.write_signed(&entries).is_ok() {
                (self.observer)(Event::Written(entries.len() as u64));
                self.backlog.clear();
            }
        }
        if self.backlog.is_empty() && !self.spilled {
            self.shared.healthy.store(true, Ordering::Relaxed);
        }
    }

    /// Delivers spill records the store does not have yet, then removes the spill
    /// files. Safe to repeat after a crash: records at or below the store's head are
    /// skipped.
    fn deliver_spill(&mut self) {
        let Some(dir) = self.opts.spill_dir.clone() else { return };
        let Ok(segs) = crate::store::segments(&dir, &self.opts.node) else {
            return;
        };
        // One segment at a time (each at most `max_segment_bytes`), so a long outage's
        // spill never has to fit in memory at once.
        for seg in &segs {
            let mut entries = Vec::new();
            if crate::store::segment_entries(seg, |e| entries.push(e)).is_err() {
                self.spilled = true;
                return;
            }
            let head = self.store.last().map(|e| e.seq);
            let todo: Vec<Entry> = entries.into_iter().filter(|e| head.is_none_or(|h| e.seq > h)).collect();
            if todo.is_empty() {
                continue;
            }
            if self.write_signed(&todo).is_err() {
                (self.observer)(Event::StoreError);
                self.spilled = true;
                return;
            }
            (self.observer)(Event::Delivered(todo.len() as u64));
        }
        // Everything is in the store now: start a fresh spill.
        for s in segs {
            let _ = std::fs::remove_file(s);
        }
        self.spill = FileStore::open(&dir, &self.opts.node, self.opts.max_segment_bytes).ok();
        self.spilled = false;
    }

    /// Writes records that reach the store late (delivered from the spill, or kept in
    /// memory while it was down) with a signed checkpoint after every
    /// `checkpoint_every` of them, so late records are no less covered; then syncs.
    fn write_signed(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let every = self.opts.checkpoint_every.max(1);
        let time = rampart_identity::time::format_micros(std::time::SystemTime::now());
        let mut rest = entries;
        while !rest.is_empty() {
            // Records already unsigned in the store count toward the first chunk.
            let room = usize::try_from(every.saturating_sub(self.since_checkpoint).max(1)).unwrap_or(usize::MAX);
            let (chunk, tail) = rest.split_at(room.min(rest.len()));
            self.store.write_entries(chunk)?;
            self.since_checkpoint += chunk.len() as u64;
            if let Some(last) = chunk.last() {
                let cp = crate::chain::Checkpoint::sign(&self.opts.node, last.seq, &last.hash, &self.key, &time);
                self.store.write_checkpoint(&cp)?;
                self.since_checkpoint = 0;
                self.checkpointed_seq = self.checkpointed_seq.max(Some(last.seq));
                self.witness = Some(cp);
            }
            rest = tail;
        }
        self.store.sync()?;
        self.dirty = false;
        Ok(())
    }

    /// A checkpoint over the chain head (everything linked is written by now).
    fn checkpoint(&mut self) {
        let Some(seq) = self.chain.next_seq().checked_sub(1) else {
            return;
        };
        let head = self.chain.head().to_owned();
        self.checkpoint_at(seq, &head);
    }

    /// A checkpoint over record `seq` (hash `hash`), once it is in the store.
    fn checkpoint_at(&mut self, seq: u64, hash: &str) {
        if self.checkpointed_seq.is_some_and(|c| c >= seq) || !self.backlog.is_empty() || self.spilled {
            return;
        }
        let head = Some(seq);
        let time = rampart_identity::time::format_micros(std::time::SystemTime::now());
        let cp = crate::chain::Checkpoint::sign(&self.opts.node, seq, hash, &self.key, &time);
        // `sync` makes the checkpoint durable with its group; `batch` leaves it to the
        // next group sync (one fdatasync per `batch_interval`, not one per checkpoint).
        let written = self.store.write_checkpoint(&cp).and_then(|()| {
            if self.opts.durability == Durability::Sync {
                self.store.sync()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.dirty = self.opts.durability != Durability::Sync;
                self.checkpointed_seq = head;
                self.since_checkpoint = 0;
                (self.observer)(Event::Checkpoint);
                self.witness = Some(cp);
                if !self.dirty {
                    self.write_witness(false);
                }
            }
            Err(_) => (self.observer)(Event::StoreError),
        }
    }

    /// Keeps the latest checkpoint at the witness path: written to a temporary file,
    /// synced, renamed over the old one. `force` ignores the rate limit.
    fn write_witness(&mut self, force: bool) {
        let (Some(path), Some(cp)) = (self.opts.witness.clone(), self.witness.as_ref()) else {
            return;
        };
        if !force && self.last_witness.is_some_and(|t| t.elapsed() < WITNESS_INTERVAL) {
            return;
        }
        let line = match serde_json::to_string(&serde_json::json!({ "checkpoint": cp })) {
            Ok(l) => l,
            Err(_) => return,
        };
        let tmp = path.with_extension("tmp");
        let result = (|| -> std::io::Result<()> {
            use std::io::Write as _;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(line.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)
        })();
        match result {
            Ok(()) => self.last_witness = Some(Instant::now()),
            Err(e) => {
                (self.observer)(Event::StoreError);
                tracing::error!(error = %e, path = %path.display(), "audit witness write failed");
            }
        }
    }
}
