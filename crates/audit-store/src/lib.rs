//! The audit trail beyond its own files: the PostgreSQL store many nodes share (`pg`),
//! captured payloads encrypted per data subject and erased by destroying the subject's
//! key (`payload`), and reading a configured store back out — every entry of every
//! node, the SIEM export and the compliance report (`report`).
//!
//! `rampart-audit` owns the record format, the chain, the writer and verification and
//! does no network I/O; this crate is where the trail meets a database and where it is
//! read for people. It never decides what a record says (the gateway's audit stage
//! does), never writes a plaintext payload or a raw subject id, and never changes a
//! record it reads.

pub mod payload;
pub mod pg;
pub mod report;
