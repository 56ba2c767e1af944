//! The stages. Each file owns one stage; `pipeline.rs` decides their order.

pub mod access_log;
pub mod audit;
pub mod authorize;
pub mod body;
pub mod content;
pub mod identify;
pub mod limit;
pub mod metrics;
pub mod model;
pub mod output;
pub mod oversight;
pub mod request_id;
pub mod tokens;
pub mod validate;
pub mod watch;
