//! The integration tests, in one binary (one link instead of seventeen; docs/BENCHMARKS.md
//! has the build times): each module is one area, and every test starts the real
//! `rampart` binary on random ports against real upstreams, Redis and PostgreSQL where
//! the area needs them. `common` holds the shared helpers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

mod common;

mod abuse;
mod attacks;
mod audit;
mod chaos;
mod console;
mod content;
mod demo;
mod deploy;
mod identity;
mod jwt;
mod keystore_pg;
mod lifecycle;
mod limits;
mod limits_redis;
mod output;
mod oversight;
mod probe;
mod proxy;
mod scan;
mod textjobs;
mod tls;
mod tokens;
mod traces;
mod validate;
mod watch;
