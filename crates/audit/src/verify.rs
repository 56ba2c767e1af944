//! Offline verification of a node's trail: every record's hash, every link, the
//! sequence, every checkpoint's signature and head, and truncation after the last
//! checkpoint. Problems name the file, the line and the sequence number.

use std::collections::VecDeque;

/// Record hashes kept for checking checkpoints (see [`Verifier`]).
const RECENT: usize = 4096;
use std::io::BufRead as _;
use std::path::Path;

use serde_json::Value;

use crate::chain::{Checkpoint, GENESIS, record_hash};

/// A record line, borrowed from the text: the record's bytes are hashed as they are.
#[derive(serde::Deserialize)]
struct EntryRef<'a> {
    seq: u64,
    prev: &'a str,
    hash: &'a str,
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
}

#[derive(serde::Deserialize)]
struct CheckpointLine {
    checkpoint: Checkpoint,
}

/// One thing wrong with a trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A line that is neither a record nor a checkpoint.
    Malformed { file: String, line: usize },
    /// The record's content no longer matches its hash.
    Altered { file: String, line: usize, seq: u64 },
    /// Records are missing: `expected` was next, `found` came.
    Missing {
        file: String,
        line: usize,
        expected: u64,
        found: u64,
    },
    /// A record out of order or not from this chain: its sequence or link is wrong.
    OutOfPlace { file: String, line: usize, seq: u64 },
    /// A checkpoint whose signature does not verify.
    BadSignature { file: String, line: usize },
    /// A checkpoint naming a head the records do not have.
    CheckpointMismatch { file: String, line: usize, seq: u64 },
    /// The trail ends before the last checkpoint's head: records were cut off.
    Truncated { last_seq: Option<u64>, checkpoint_seq: u64 },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Malformed { file, line } => write!(f, "{file}:{line}: not a record or checkpoint"),
            Problem::Altered { file, line, seq } => {
                write!(f, "{file}:{line}: record {seq} was altered (its hash does not match)")
            }
            Problem::Missing {
                file,
                line,
                expected,
                found,
            } => write!(
                f,
                "{file}:{line}: records {expected}..{} are missing (found record {found})",
                found.saturating_sub(1)
            ),
            Problem::OutOfPlace { file, line, seq } => write!(
                f,
                "{file}:{line}: record {seq} is out of place (inserted or reordered: its link does not follow)"
            ),
            Problem::BadSignature { file, line } => write!(f, "{file}:{line}: checkpoint signature is invalid"),
            Problem::CheckpointMismatch { file, line, seq } => {
                write!(
                    f,
                    "{file}:{line}: checkpoint names a head for record {seq} that the trail does not have"
                )
            }
            Problem::Truncated {
                last_seq,
                checkpoint_seq,
            } => write!(
                f,
                "the trail was truncated: it ends at record {} but a checkpoint covers record {checkpoint_seq}",
                last_seq.map_or("(none)".to_owned(), |s| s.to_string())
            ),
        }
    }
}

/// What verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub records: u64,
    pub checkpoints: u64,
    pub problems: Vec<Problem>,
    /// Sequence number of the last record.
    pub last_seq: Option<u64>,
    /// The highest record a checkpoint covers. Records after it are chained but not
    /// yet signed: cutting them off would go unnoticed until the next checkpoint.
    pub last_checkpoint: Option<u64>,
    /// What the trail says about itself: `lifecycle` records of an unclean stop
    /// (`recovered`), with file, line and their detail.
    pub notes: Vec<String>,
    /// Records up to this sequence number were deleted by retention (signed anchor).
    pub purged_through: Option<u64>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Records after the last checkpoint.
    pub fn unsealed(&self) -> u64 {
        match (self.last_seq, self.last_checkpoint) {
            (Some(l), Some(c)) => l.saturating_sub(c),
            (Some(l), None) => l + 1,
            _ => 0,
        }
    }
}

/// Verifies `node`'s trail in `dir`; checkpoint signatures too when `public_key` (raw
/// Ed25519) is given.
pub fn verify_dir(dir: &Path, node: &str, public_key: Option<&[u8]>) -> std::io::Result<Report> {
    let mut v = Verifier::new(public_key);
    if let Some(anchor) = crate::retention::read_anchor(dir, node)? {
        v.start_after(&crate::retention::anchor_path(dir, node).display().to_string(), &anchor);
    }
    for path in crate::store::segments(dir, node)? {
        let file = path.display().to_string();
        let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
        for (i, line) in reader.lines().enumerate() {
            v.line(&file, i + 1, &line?);
        }
    }
    Ok(v.finish())
}

/// Checks a trail line by line, wherever the lines come from (segment files, rows of
/// a database rendered as lines). `file` and `line` only name places in problems.
#[derive(Debug)]
pub struct Verifier<'k> {
    public_key: Option<&'k [u8]>,
    report: Report,
    expected_seq: u64,
    prev: String,
    /// Hashes of the most recent records, for checkpoints to be checked against: a
    /// checkpoint follows the record it covers, so a bounded window suffices.
    recent: VecDeque<(u64, String)>,
    last_checkpoint: Option<u64>,
    last_seq: Option<u64>,
    /// Records up to here were deleted by a retention purge (a signed anchor).
    purged_through: Option<u64>,
}

impl<'k> Verifier<'k> {
    /// The chain starts after a retention anchor: records up to `anchor.seq` were
    /// deleted on purpose, and the signature (with a public key) says so.
    pub fn start_after(&mut self, file: &str, anchor: &crate::retention::Anchor) {
        if self.public_key.is_some_and(|k| !anchor.verify(k)) {
            self.report.problems.push(Problem::BadSignature {
                file: file.to_owned(),
                line: 1,
            });
        }
        self.expected_seq = anchor.seq + 1;
        anchor.hash.clone_into(&mut self.prev);
        self.purged_through = Some(anchor.seq);
        self.report.purged_through = Some(anchor.seq);
    }

    pub fn new(public_key: Option<&'k [u8]>) -> Self {
        Self {
            public_key,
            report: Report::default(),
            expected_seq: 0,
            prev: GENESIS.to_owned(),
            recent: VecDeque::with_capacity(RECENT),
            last_checkpoint: None,
            last_seq: None,
            purged_through: None,
        }
    }

    /// One line of the trail, in order.
    pub fn line(&mut self, file: &str, line_no: usize, text: &str) {
        if text.trim().is_empty() {
            return;
        }
        let malformed = |r: &mut Report| {
            r.problems.push(Problem::Malformed {
                file: file.to_owned(),
                line: line_no,
            });
        };
        if text.starts_with("{\"checkpoint\"") {
            self.report.checkpoints += 1;
            let Ok(CheckpointLine { checkpoint: cp }) = serde_json::from_str::<CheckpointLine>(text) else {
                malformed(&mut self.report);
                return;
            };
            if self.public_key.is_some_and(|k| !cp.verify(k)) {
                self.report.problems.push(Problem::BadSignature {
                    file: file.to_owned(),
                    line: line_no,
                });
            }
            let covered = self.recent.iter().rev().find(|(seq, _)| *seq == cp.seq);
            if covered.is_some_and(|(_, h)| *h != cp.head) {
                self.report.problems.push(Problem::CheckpointMismatch {
                    file: file.to_owned(),
                    line: line_no,
                    seq: cp.seq,
                });
            }
            self.last_checkpoint = Some(self.last_checkpoint.map_or(cp.seq, |s| s.max(cp.seq)));
            return;
        }
        let Ok(entry) = serde_json::from_str::<EntryRef<'_>>(text) else {
            malformed(&mut self.report);
            return;
        };
        if self.purged_through.is_some_and(|p| entry.seq <= p) {
            // Left over from a purge interrupted between anchor and deletion.
            return;
        }
        self.report.records += 1;
        let record = entry.record.get();
        if record.contains("\"recovered\"")
            && let Ok(v) = serde_json::from_str::<Value>(record)
            && v.get("type").and_then(Value::as_str) == Some("lifecycle")
            && v.get("event").and_then(Value::as_str) == Some("recovered")
        {
            self.report.notes.push(format!(
                "{file}:{line_no}: record {}: unclean restart: {}",
                entry.seq,
                v.get("detail").and_then(Value::as_str).unwrap_or("")
            ));
        }
        let problem = if record_hash(entry.prev, record) != entry.hash {
            Some(Problem::Altered {
                file: file.to_owned(),
                line: line_no,
                seq: entry.seq,
            })
        } else if entry.seq > self.expected_seq && entry.prev != self.prev {
            Some(Problem::Missing {
                file: file.to_owned(),
                line: line_no,
                expected: self.expected_seq,
                found: entry.seq,
            })
        } else if entry.seq != self.expected_seq || entry.prev != self.prev {
            Some(Problem::OutOfPlace {
                file: file.to_owned(),
                line: line_no,
                seq: entry.seq,
            })
        } else {
            None
        };
        self.report.problems.extend(problem);
        // Continue from what is there, so one problem is reported once.
        self.expected_seq = entry.seq + 1;
        entry.hash.clone_into(&mut self.prev);
        self.last_seq = Some(entry.seq);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((entry.seq, entry.hash.to_owned()));
    }

    pub fn finish(mut self) -> Report {
        self.report.last_seq = self.last_seq;
        self.report.last_checkpoint = self.last_checkpoint;
        // The chain ends at its last record, or at the anchor when retention deleted
        // every record a checkpoint covered.
        let end = self.last_seq.or(self.purged_through);
        if let Some(cp) = self.last_checkpoint
            && end.is_none_or(|s| s < cp)
        {
            self.report.problems.push(Problem::Truncated {
                last_seq: end,
                checkpoint_seq: cp,
            });
        }
        self.report
    }
}
