//! Retention: deleting a node's oldest segment files once every record in them has
//! expired and none is under a legal hold, without breaking verification. Before any
//! file is deleted, a signed anchor (`{node}.anchor.json`) names the last deleted record
//! (sequence number and hash); verification then continues the chain from the anchor.
//! Deletion is by whole segments and only from the front (the chain stays one unbroken
//! run), and never touches the newest segment, which a running node appends to.
//!
//! The caller decides when a record may go (`Fate`); this module decides nothing about
//! record classes or periods.

use std::path::{Path, PathBuf};

use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::key_id;

/// What may happen to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It may be deleted once this time (Unix seconds) has passed.
    After(i64),
    /// It must be kept (a legal hold, or a record whose time cannot be read).
    Keep(String),
}

/// A signed statement that the chain's records up to `seq` were deleted on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub node: String,
    /// The last deleted record and its hash: the chain continues from here.
    pub seq: u64,
    pub hash: String,
    pub time: String,
    /// Records deleted by all purges so far.
    pub records: u64,
    pub key_id: String,
    pub sig: String,
}

impl Anchor {
    pub fn message(node: &str, seq: u64, hash: &str, time: &str, records: u64) -> Vec<u8> {
        format!("rampart-audit-anchor-v1\n{node}\n{seq}\n{hash}\n{time}\n{records}\n").into_bytes()
    }

    /// A signed anchor after deleting through `seq` (`records` deleted in all).
    pub fn sign(key: &Ed25519KeyPair, node: &str, seq: u64, hash: &str, time: &str, records: u64) -> Self {
        use base64::Engine as _;
        let sig = key.sign(&Self::message(node, seq, hash, time, records));
        Self {
            node: node.to_owned(),
            seq,
            hash: hash.to_owned(),
            time: time.to_owned(),
            records,
            key_id: key_id(key.public_key().as_ref()),
            sig: base64::engine::general_purpose::STANDARD.encode(sig.as_ref()),
        }
    }

    pub fn verify(&self, public_key: &[u8]) -> bool {
        use base64::Engine as _;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(&self.sig) else {
            return false;
        };
        signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
            .verify(
                &Self::message(&self.node, self.seq, &self.hash, &self.time, self.records),
                &sig,
            )
            .is_ok()
    }
}

pub fn anchor_path(dir: &Path, node: &str) -> PathBuf {
    dir.join(format!("{node}.anchor.json"))
}

pub fn read_anchor(dir: &Path, node: &str) -> std::io::Result<Option<Anchor>> {
    match std::fs::read_to_string(anchor_path(dir, node)) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Why `entry` must stay at `now` (the message a purge stops with), or `None` when it
/// may be deleted.
pub fn must_stay(entry: &crate::chain::Entry, fate: impl Fn(&Value) -> Fate, now: i64) -> Option<String> {
    match fate(&entry.value()) {
        Fate::After(t) if t <= now => None,
        Fate::After(t) => Some(format!(
            "record {} must be kept until {}",
            entry.seq,
            rampart_identity::time::format(t)
        )),
        Fate::Keep(why) => Some(format!("record {} must be kept: {why}", entry.seq)),
    }
}

/// What a purge did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Purge {
    pub segments: Vec<PathBuf>,
    pub records: u64,
    /// The last record deleted.
    pub through: Option<u64>,
    /// Why the purge stopped where it did (the first record that must stay).
    pub stopped: Option<String>,
}

/// Deletes the oldest segments of `node` whose every record's fate allows it at `now`.
pub fn purge_dir(
    dir: &Path,
    node: &str,
    fate: impl Fn(&Value) -> Fate,
    now: i64,
    key: &Ed25519KeyPair,
    time: &str,
    dry_run: bool,
) -> std::io::Result<Purge> {
    let segs = crate::store::segments(dir, node)?;
    let mut out = Purge::default();
    let mut last: Option<(u64, String)> = None;
    let Some((_, older)) = segs.split_last() else {
        return Ok(out);
    };
    'segments: for seg in older {
        let mut count = 0;
        let mut seg_last = None;
        let text = std::fs::read_to_string(seg)?;
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<crate::chain::Entry>(line) else {
                continue; // checkpoints
            };
            if let Some(why) = must_stay(&entry, &fate, now) {
                out.stopped = Some(why);
                break 'segments;
            }
            count += 1;
            seg_last = Some((entry.seq, entry.hash));
        }
        out.segments.push(seg.clone());
        out.records += count;
        if seg_last.is_some() {
            last = seg_last;
        }
    }
    if out.stopped.is_none() && !older.is_empty() {
        out.stopped = Some("the newest segment is never purged (a running node appends to it)".into());
    }
    out.through = last.as_ref().map(|(s, _)| *s);
    if dry_run || out.segments.is_empty() {
        return Ok(out);
    }
    let Some((seq, hash)) = last else {
        return Ok(out);
    };
    // The anchor is durable before any file goes: a crash in between leaves records
    // the anchor already covers, which verification skips.
    let previous = read_anchor(dir, node)?.map_or(0, |a| a.records);
    let anchor = Anchor::sign(key, node, seq, &hash, time, previous + out.records);
    let path = anchor_path(dir, node);
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(
            serde_json::to_string(&anchor)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    for seg in &out.segments {
        std::fs::remove_file(seg)?;
    }
    Ok(out)
}
