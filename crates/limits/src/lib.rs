//! Abuse-limit accounting, with no HTTP in it: request rates (GCRA), concurrent
//! requests and calendar quotas (`requests`), LLM token budgets and token counting —
//! BPE vocabularies or an estimate — (`tokens`), each in-process with bounded state or
//! shared through Redis, and the circuit breaker that keeps a dead Redis from costing
//! every request its timeout (`breaker`).
//!
//! Engines take a [`Caller`] — plain keys: who, from where, on which route — and answer
//! with outcomes and refusals; the gateway's `limit` and `tokens` stages turn those into
//! HTTP. This crate never sees a request, never logs a key's secret, and never keeps
//! more than `server.limit_keys` keys per limit.

use std::sync::Arc;

pub mod breaker;
pub mod requests;
pub mod tokens;

pub use requests::{Hold, LimitStore, Limiter, Outcome, RateStatus, Refusal};
pub use tokens::{TokenAccount, TokenLimiter};

/// The caller as limits count it.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The authenticated principal (or the anonymous one), if identification ran.
    pub principal: Option<&'a rampart_identity::Principal>,
    /// The client address the gateway believes (after trusted proxies).
    pub ip: std::net::IpAddr,
    /// The route's name.
    pub route: &'a str,
}

/// Called once per decision taken while a shared backend (Redis) did not answer: the
/// gateway counts them in `rampart_limit_backend_errors_total`.
pub type OnBackendError = Arc<dyn Fn() + Send + Sync>;

/// A shared backend that cannot be set up from its config.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);
