//! Rampart's detectors, pure and I/O-free: PII and secrets found in one pass over the
//! text (`scan`), confirmed by check digits and context words (`checks`, `rules`), and
//! transformed — masked, tagged, hashed or reversibly pseudonymised (`redact`). It also
//! owns the gateway's readings of what crosses it: the one strict parse of a JSON body
//! (`json`) and the event-stream parser (`sse`), both refusing what two readers could
//! understand differently, and the KServe binary tensor extension (`kserve_binary`).
//!
//! This crate owns what counts as a finding and how a value is rewritten. It never
//! logs, never does I/O, and never returns a detected value except where the caller
//! holds the text anyway (the [`redact::Vault`] of one exchange).

pub mod checks;
pub mod injection;
pub mod json;
pub mod kinds;
pub mod kserve_binary;
pub mod normalize;
pub mod protocol;
pub mod redact;
pub mod rules;
pub mod scan;
pub mod sse;

pub use kinds::Kind;
pub use redact::{Restorer, Transform, Vault};
pub use scan::{Finding, Scanner};
