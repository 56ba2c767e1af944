//! Rampart's data plane, and only that: listeners with TLS, connection idleness and the
//! admin API (`server/`), routing (`router`, `route`), upstream pools, health checks and
//! forwarding (`upstream/`), one exchange end to end (`exchange`) through the pipeline of
//! stages (`pipeline`, `stage`, `stages/`) with its per-exchange context (`context`),
//! request and response bodies with their timeouts (`body`), the content policy engine
//! the content stage runs (`content/`), credentials to principals (`identity/`: API keys,
//! JWTs with their JWKS, mTLS), the stage that turns a finished exchange into an audit
//! record and the trail's lifecycle (`audit`), output hardening (`output`), detector
//! state (`watch`) and alert delivery (`alerts`), stop switches and the review queue in
//! the request path (`oversight`), metrics, and the runtime that hot
//! reload swaps (`runtime`).
//!
//! Engines that know nothing of HTTP live in their own crates: limits and token budgets
//! (`rampart-limits`), the trail's format, chain and writer (`rampart-audit`) and its
//! stores and readers (`rampart-audit-store`), keys and their stores
//! (`rampart-identity`), detectors and parsers (`rampart-detect`).
//!
//! It must never forward a request before every request stage passed, never let a stage
//! act on a body it could not read, never read an unbounded body, and never log a
//! secret. No module imports a module that imports it back (`tests/module_graph.rs`);
//! the context names no stage and no engine — each stage keeps its own state in the
//! exchange's `Stash`.

pub mod alerts;
pub mod audit;
pub mod body;
pub mod content;
pub mod context;
pub mod error;
pub mod exchange;
pub mod identity;
pub mod json;
pub mod metrics;
pub mod output;
pub mod oversight;
pub mod pipeline;
pub mod route;
pub mod router;
pub mod runtime;
pub mod server;
pub mod stage;
pub mod stages;
pub mod trace;
pub mod upstream;
pub mod watch;

pub use error::{InitError, RequestError};
pub use runtime::{Gateway, Runtime};
pub use server::Server;
