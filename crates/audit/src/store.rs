//! Append-only segment files: `{node}-{index:06}.jsonl` in one directory, a new segment
//! when the current one passes its size limit. Opening a store resumes the node's chain
//! from the last record on disk; a last line cut short by a crash (no newline) is moved
//! aside into `{node}-torn-{n}.partial` and reported, never silently dropped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use ring::signature::Ed25519KeyPair;
use serde_json::Value;

use crate::chain::{Chain, Checkpoint, Entry};

/// Where a node's chain is kept. The writer thread owns it and calls it from that
/// thread only; implementations may block (a database round trip).
pub trait Store: Send + std::fmt::Debug {
    /// The last record entry the store holds.
    fn last(&self) -> Option<&Entry>;
    /// Appends entries already linked into the chain, all or nothing, in order.
    fn write_entries(&mut self, entries: &[Entry]) -> std::io::Result<()>;
    fn write_checkpoint(&mut self, cp: &Checkpoint) -> std::io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> std::io::Result<()>;
}

/// One node's trail in a directory.
#[derive(Debug)]
pub struct FileStore {
    dir: PathBuf,
    node: String,
    index: u32,
    file: File,
    size: u64,
    max_segment: u64,
    chain: Chain,
    last: Option<Entry>,
    torn: Option<TornTail>,
}

/// A partial last line found when the store was opened (the process died mid-write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment it was cut from.
    pub segment: PathBuf,
    pub bytes: u64,
    /// Where the bytes were moved.
    pub moved_to: PathBuf,
}

/// The segment files of `node` in `dir`, in order.
pub fn segments(dir: &Path, node: &str) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("{node}-");
    let mut out: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.strip_prefix(&prefix)
                        .and_then(|rest| rest.strip_suffix(".jsonl"))
                        .is_some_and(|idx| !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()))
                })
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    out.sort();
    Ok(out)
}

/// The node names that have segment files in `dir`.
pub fn nodes(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut out: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter_map(|n| {
            let stem = n.strip_suffix(".jsonl")?;
            let (node, idx) = stem.rsplit_once('-')?;
            (idx.len() == 6 && idx.bytes().all(|b| b.is_ascii_digit())).then(|| node.to_owned())
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

fn segment_path(dir: &Path, node: &str, index: u32) -> PathBuf {
    dir.join(format!("{node}-{index:06}.jsonl"))
}

/// Cuts a partial last line off `path` and saves it beside, returning what was done.
fn cut_torn_tail(dir: &Path, node: &str, path: &Path) -> std::io::Result<Option<TornTail>> {
    let data = std::fs::read(path)?;
    if data.is_empty() || data.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = data.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut n = 0u32;
    let moved_to = loop {
        let candidate = dir.join(format!("{node}-torn-{n}.partial"));
        if !candidate.exists() {
            break candidate;
        }
        n += 1;
    };
    std::fs::write(&moved_to, &data[keep..])?;
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    Ok(Some(TornTail {
        segment: path.to_owned(),
        bytes: (data.len() - keep) as u64,
        moved_to,
    }))
}

impl FileStore {
    /// Opens (or starts) `node`'s trail in `dir`.
    pub fn open(dir: &Path, node: &str, max_segment: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let existing = segments(dir, node)?;
        let torn = match existing.last() {
            Some(last) => cut_torn_tail(dir, node, last)?,
            None => None,
        };
        let mut chain = Chain::new(node);
        let mut last = None;
        for path in &existing {
            for line in BufReader::new(File::open(path)?).lines() {
                if let Ok(entry) = serde_json::from_str::<Entry>(&line?) {
                    chain = Chain::resume(node, entry.seq + 1, &entry.hash);
                    last = Some(entry);
                }
            }
        }
        let index = existing
            .last()
            .and_then(|p| p.file_stem()?.to_str()?.rsplit_once('-')?.1.parse::<u32>().ok())
            .unwrap_or(1);
        let path = segment_path(dir, node, index);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            dir: dir.to_owned(),
            node: node.to_owned(),
            index,
            file,
            size,
            max_segment,
            chain,
            last,
            torn,
        })
    }

    /// The last record on disk when the store was opened or last written.
    pub fn last_entry(&self) -> Option<&Entry> {
        self.last.as_ref()
    }

    /// What `open` cut off the end of the trail, if anything.
    pub fn torn(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    fn rotate_if_needed(&mut self, next: usize) -> std::io::Result<()> {
        if self.size > 0 && self.size + next as u64 > self.max_segment {
            self.file.sync_data()?;
            let file = OpenOptions::new().create(true).append(true).open(segment_path(
                &self.dir,
                &self.node,
                self.index + 1,
            ))?;
            self.index += 1;
            self.file = file;
            self.size = 0;
        }
        Ok(())
    }

    fn write_buf(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.rotate_if_needed(buf.len())?;
        if let Err(e) = self.file.write_all(buf) {
            // A short write (disk full) must not leave half a line: cut back to the last
            // whole line so the records can be written again, in order, later.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Writes entries already linked by a [`Chain`] elsewhere (the writer's) with one
    /// `write`, all or nothing (a segment may pass its size limit by one batch). They
    /// must continue this store's chain.
    pub fn append_entries(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(entries.len() * 512);
        for e in entries {
            buf.extend_from_slice(e.line().as_bytes());
            buf.push(b'\n');
        }
        if !buf.is_empty() {
            self.write_buf(&buf)?;
        }
        if let Some(e) = entries.last() {
            self.chain = Chain::resume(&self.node, e.seq + 1, &e.hash);
            self.last = Some(e.clone());
        }
        Ok(())
    }

    /// Links and appends one record; returns its chain entry.
    pub fn append(&mut self, record: Value) -> std::io::Result<Entry> {
        let mut chain = Chain::resume(&self.node, self.chain.next_seq(), self.chain.head());
        let entry = chain.link(record.to_string());
        self.append_entries(std::slice::from_ref(&entry))?;
        Ok(entry)
    }

    /// Appends a checkpoint line.
    pub fn append_checkpoint(&mut self, cp: &Checkpoint) -> std::io::Result<()> {
        let mut line = serde_json::json!({ "checkpoint": cp }).to_string().into_bytes();
        line.push(b'\n');
        self.write_buf(&line)
    }

    /// Appends a signed checkpoint over the current head.
    pub fn checkpoint(&mut self, key: &Ed25519KeyPair, time: &str) -> std::io::Result<Option<Checkpoint>> {
        let Some(cp) = self.chain.checkpoint(key, time) else {
            return Ok(None);
        };
        self.append_checkpoint(&cp)?;
        Ok(Some(cp))
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

impl Store for FileStore {
    fn last(&self) -> Option<&Entry> {
        self.last_entry()
    }

    fn write_entries(&mut self, entries: &[Entry]) -> std::io::Result<()> {
        self.append_entries(entries)
    }

    fn write_checkpoint(&mut self, cp: &Checkpoint) -> std::io::Result<()> {
        self.append_checkpoint(cp)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        FileStore::sync(self)
    }
}

/// Reads every record entry of `node` in `dir`, in order (checkpoints skipped).
pub fn read_entries(dir: &Path, node: &str) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for_each_entry(dir, node, |e| out.push(e))?;
    Ok(out)
}

/// Calls `f` with every record entry of `node` in `dir`, in order, one line at a time.
pub fn for_each_entry(dir: &Path, node: &str, mut f: impl FnMut(Entry)) -> std::io::Result<()> {
    for path in segments(dir, node)? {
        segment_entries(&path, &mut f)?;
    }
    Ok(())
}

/// Calls `f` with every record entry of one segment file (checkpoints skipped).
pub fn segment_entries(path: &Path, mut f: impl FnMut(Entry)) -> std::io::Result<()> {
    for line in BufReader::new(File::open(path)?).lines() {
        if let Ok(entry) = serde_json::from_str::<Entry>(&line?) {
            f(entry);
        }
    }
    Ok(())
}
