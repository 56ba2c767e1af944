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
    /// More records in a row than the writer ever leaves unsigned: checkpoints were
    /// removed, or records appended after the last one.
    Unsigned {
        first_seq: u64,
        last_seq: u64,
        limit: u64,
        tail: bool,
    },
    /// Records but no checkpoint at all, while signatures were to be checked.
    NoCheckpoint { records: u64 },
    /// The witness names a checkpoint the trail does not have (another head), or its
    /// signature does not verify.
    WitnessMismatch { seq: u64 },
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
            Problem::Unsigned {
                first_seq,
                last_seq,
                limit,
                tail,
            } => write!(
                f,
                "records {first_seq}..{last_seq} ({}) are not covered by a signed checkpoint, more than the {limit} the writer leaves unsigned: {}",
                last_seq - first_seq + 1,
                if *tail {
                    "records were appended after the last checkpoint, the checkpoints after them removed, or (sync durability) the writer crashed between writing a group and signing it, before answering those requests — a restart signs them"
                } else {
                    "checkpoints were removed"
                }
            ),
            Problem::NoCheckpoint { records } => write!(
                f,
                "{records} records and no signed checkpoint: the trail cannot be authenticated (checkpoints stripped?)"
            ),
            Problem::WitnessMismatch { seq } => write!(
                f,
                "the witness checkpoint for record {seq} does not match the trail (another head, or a bad signature)"
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
    /// The most records the trail may hold in a row without a checkpoint, when known.
    pub max_unsigned: Option<u64>,
}

/// What a verification checks beyond the chain itself.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// The writer's `checkpoint_every`: a longer unsigned gap or tail is a problem.
    pub max_unsigned: Option<u64>,
    /// The witness's checkpoint (the latest the writer kept elsewhere): the trail must
    /// reach it, with the same head.
    pub witness: Option<Checkpoint>,
}

/// Reads a witness file (one checkpoint line).
pub fn read_witness(path: &Path) -> std::io::Result<Checkpoint> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str::<CheckpointLine>(text.trim())
        .map(|l| l.checkpoint)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
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
    verify_dir_with(dir, node, public_key, Limits::default())
}

/// [`verify_dir`] with the writer's limits (unsigned window, witness).
pub fn verify_dir_with(dir: &Path, node: &str, public_key: Option<&[u8]>, limits: Limits) -> std::io::Result<Report> {
    let mut v = Verifier::new(public_key);
    v.limits(limits);
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
    limits: Limits,
    /// The first record after the last checkpoint, and how many followed it.
    unsigned_from: Option<u64>,
    unsigned: u64,
    /// The witness's head was found at its sequence number.
    witness_seen: bool,
    /// What the latest lifecycle record says of the writer: `sync` durability, and
    /// its `checkpoint_every`.
    writer_sync: bool,
    writer_every: Option<u64>,
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
            limits: Limits::default(),
            unsigned_from: None,
            unsigned: 0,
            witness_seen: false,
            writer_sync: false,
            writer_every: None,
        }
    }

    /// Checks the unsigned window and the witness too (see [`Limits`]).
    pub fn limits(&mut self, limits: Limits) {
        self.report.max_unsigned = limits.max_unsigned;
        self.limits = limits;
    }

    /// Records a run of unsigned records that is longer than the limit: the writer's
    /// `checkpoint_every` (given, or named by the trail's lifecycle records); for the
    /// tail of a `sync` trail, none — a sync writer signs every group before it
    /// acknowledges it, so only a crash between the two leaves an unsigned tail, and
    /// the next start seals it.
    fn end_unsigned_run(&mut self, tail: bool) {
        let limit = match self.limits.max_unsigned.or(self.writer_every) {
            Some(_) if tail && self.writer_sync => Some(0),
            l => l,
        };
        if let (Some(limit), Some(first), Some(last)) = (limit, self.unsigned_from, self.last_seq)
            && self.unsigned > limit
        {
            self.report.problems.push(Problem::Unsigned {
                first_seq: first,
                last_seq: last,
                limit,
                tail,
            });
        }
        self.unsigned_from = None;
        self.unsigned = 0;
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
            self.end_unsigned_run(false);
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
        if record.contains("\"lifecycle\"")
            && let Ok(v) = serde_json::from_str::<Value>(record)
            && v.get("type").and_then(Value::as_str) == Some("lifecycle")
        {
            self.writer_sync = v.get("durability").and_then(Value::as_str) == Some("sync");
            if let Some(n) = v.get("checkpoint_every").and_then(Value::as_u64) {
                self.writer_every = Some(n);
            }
            if v.get("event").and_then(Value::as_str) == Some("recovered") {
                self.report.notes.push(format!(
                    "{file}:{line_no}: record {}: unclean restart: {}",
                    entry.seq,
                    v.get("detail").and_then(Value::as_str).unwrap_or("")
                ));
            }
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
        if self.unsigned_from.is_none() {
            self.unsigned_from = Some(entry.seq);
        }
        self.unsigned += 1;
        if let Some(w) = &self.limits.witness
            && w.seq == entry.seq
        {
            if w.head == entry.hash {
                self.witness_seen = true;
            } else {
                self.report.problems.push(Problem::WitnessMismatch { seq: w.seq });
            }
        }
    }

    pub fn finish(mut self) -> Report {
        self.end_unsigned_run(true);
        if self.public_key.is_some() && self.report.records > 0 && self.report.checkpoints == 0 {
            self.report.problems.push(Problem::NoCheckpoint {
                records: self.report.records,
            });
        }
        if let Some(w) = self.limits.witness.take() {
            if self.public_key.is_some_and(|k| !w.verify(k)) {
                self.report.problems.push(Problem::WitnessMismatch { seq: w.seq });
            } else if !self.witness_seen && self.purged_through.is_none_or(|p| w.seq > p) {
                let end = self.last_seq.or(self.purged_through);
                if end.is_none_or(|s| s < w.seq) {
                    self.report.problems.push(Problem::Truncated {
                        last_seq: end,
                        checkpoint_seq: w.seq,
                    });
                }
            }
        }
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
