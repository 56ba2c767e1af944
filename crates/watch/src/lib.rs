//! Rampart's defences against model inversion and model extraction, pure and free of
//! I/O (the gateway wires them into its pipeline; Redis-shared state lives beside the
//! limits):
//!
//! - [`harden`]: what a classifier's answer may reveal — label only, top-k, rounding to
//!   a grid, calibrated Laplace or Gaussian noise — applied to probability rows with the
//!   invariants clients rely on kept (rows in [0, 1] summing to 1, the top label
//!   unchanged unless the policy allows it);
//! - [`llm`]: what an OpenAI answer reveals — logprobs stripped, capped or rounded,
//!   embeddings rounded or blurred;
//! - [`budget`]: the privacy budget a principal spends on noisy answers, per window;
//! - [`tensor`]: where the probability rows are in a response (KServe v2 output tensors,
//!   a JSON path for other JSON model APIs), read and written back in place;
//! - [`rng`]: the randomness noise is drawn from (a keyed stream seeded by the system);
//! - [`reference`]: what honest inputs look like (ranges, covariance, quantile bins,
//!   query spacing), calibrated from training rows;
//! - [`extraction`]: per principal — out-of-distribution queries, PRADA-style relative spacing,
//!   the share of out-of-distribution queries and of boundary answers;
//! - [`drift`]: per route — inputs against the reference, answers against the first
//!   window (PSI);
//! - [`behaviour`]: per principal — rate spikes, bursts of denials, refusals — and the
//!   penalties (block, throttle) detectors impose;
//! - [`signal`]: what detectors report and the actions a policy maps them to;
//! - [`stats`]: the binomial tail and PSI.
//!
//! This crate never reads a socket, a file or the clock: callers pass `now`.

pub mod behaviour;
pub mod budget;
pub mod drift;
pub mod extraction;
pub mod harden;
pub mod llm;
pub mod reference;
pub mod rng;
pub mod signal;
pub mod stats;
pub mod tensor;
