//! Rampart's tamper-evident audit trail: the record format, the per-node hash chain,
//! signed checkpoints, append-only segment files, and verification.
//!
//! Every line of a segment file is one JSON object: a record `{"seq", "prev", "hash",
//! "record"}` or a checkpoint `{"checkpoint": {...}}`. A record's `hash` is
//! SHA-256 over `prev` and the canonical JSON of `record`, and `prev` is the hash of
//! the record before it (64 zeros for the first), so altering, deleting, inserting or
//! reordering a record breaks the chain at that record. A checkpoint signs (Ed25519) the
//! node, the sequence number and hash of the chain head and the time; a trail whose
//! records stop before the last checkpoint's head was truncated.
//!
//! This crate owns the format, the writer thread and the checks. It does no network
//! I/O and decides nothing about what a record says: the gateway builds records and
//! hands them to [`writer::Writer`], whose queue is bounded by admission control.

pub mod chain;
pub mod retention;
pub mod store;
pub mod verify;
pub mod writer;

pub use chain::{Chain, Checkpoint, Entry, GENESIS};
pub use store::{FileStore, Store, TornTail};
pub use verify::{Limits, Problem, Report, Verifier, read_witness, verify_dir, verify_dir_with};
pub use writer::{Durability, Writer};
