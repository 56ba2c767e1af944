//! Rampart's gateway: listeners and TLS (`server`, `tls`), connection idleness from
//! accept (`conn`), routing (`router`), upstream pools and forwarding (`upstream`,
//! `proxy`), the pipeline of stages (`pipeline`, `stage`, `stages`) with its
//! per-exchange context (`context`), bodies and their timeouts (`body`), the admin API
//! (`admin`), metrics (`metrics`), the Redis backend's circuit breaker (`breaker`) and
//! the runtime that hot reload swaps (`runtime`). It must never forward a request
//! before every request stage passed, never let a stage act on a body it could not
//! read, never read an unbounded body, and never log a secret.

pub mod admin;
pub mod audit;
pub mod body;
pub mod conn;
pub mod content;
pub mod context;
pub mod error;
pub mod exchange;
pub mod identity;
pub mod json;
pub mod jwks;
pub mod metrics;
pub mod pipeline;
pub mod proxy;
pub mod route;
pub mod router;
pub mod runtime;
pub mod server;
pub mod stage;
pub mod stages;
pub mod tls;
pub mod upstream;

pub use error::{InitError, RequestError};
pub use runtime::{Gateway, Runtime};
pub use server::Server;
