//! Append-only segment files: `{node}-{index:06}.jsonl` in one directory, a new segment
//! when the current one passes its size limit. Opening a store resumes the node's chain
//! from the last record on disk.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use ring::signature::Ed25519KeyPair;
use serde_json::Value;

use crate::chain::{Chain, Checkpoint, Entry};

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
}

/// The segment files of `node` in `dir`, in order.
pub fn segments(dir: &Path, node: &str) -> std::io::Result<Vec<PathBuf>> {
    let prefix = format!("{node}-");
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".jsonl"))
        })
        .collect();
    out.sort();
    Ok(out)
}

fn segment_path(dir: &Path, node: &str, index: u32) -> PathBuf {
    dir.join(format!("{node}-{index:06}.jsonl"))
}

impl FileStore {
    /// Opens (or starts) `node`'s trail in `dir`.
    pub fn open(dir: &Path, node: &str, max_segment: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let existing = segments(dir, node)?;
        let mut chain = Chain::new(node);
        for path in &existing {
            for line in BufReader::new(File::open(path)?).lines() {
                if let Ok(entry) = serde_json::from_str::<Entry>(&line?) {
                    chain = Chain::resume(node, entry.seq + 1, &entry.hash);
                }
            }
        }
        let index = u32::try_from(existing.len()).unwrap_or(u32::MAX).max(1);
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
        })
    }

    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_segment {
            self.index += 1;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(segment_path(&self.dir, &self.node, self.index))?;
            self.size = 0;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        self.file.write_all(&buf)?;
        self.size += buf.len() as u64;
        Ok(())
    }

    /// Appends one record; returns its chain entry.
    pub fn append(&mut self, record: Value) -> std::io::Result<Entry> {
        let entry = self.chain.link(record);
        let line = serde_json::to_string(&entry).map_err(std::io::Error::other)?;
        self.write_line(&line)?;
        Ok(entry)
    }

    /// Appends a signed checkpoint over the current head.
    pub fn checkpoint(&mut self, key: &Ed25519KeyPair, time: &str) -> std::io::Result<Option<Checkpoint>> {
        let Some(cp) = self.chain.checkpoint(key, time) else {
            return Ok(None);
        };
        let line = serde_json::json!({ "checkpoint": cp }).to_string();
        self.write_line(&line)?;
        Ok(Some(cp))
    }

    /// Makes everything written so far durable.
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}
