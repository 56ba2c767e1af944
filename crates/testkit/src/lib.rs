#![allow(clippy::disallowed_methods)] // test servers and the gateway harness: their tasks and threads end with the test
//! Rampart's test kit: the demo model servers that `rampart demo` and the tests put
//! behind the gateway (`demo`: an OpenAI-compatible server and a KServe v2 server with
//! a real iris classifier), a harness that starts the real `rampart` binary on random
//! ports and reads its logs (`harness`), certificate generation for TLS and mTLS tests
//! (`certs`), JWT signing and a JWKS server for identity tests (`jwt`), HTTP client
//! helpers (`client`), and a WebDriver client for browser tests (`webdriver`). The demo servers are honest servers:
//! they parse what they receive and answer from real computation, never canned bytes.

pub mod certs;
pub mod client;
pub mod config;
pub mod demo;
pub mod harness;
pub mod http_server;
pub mod iris;
pub mod jwt;
pub mod oidc;
pub mod postgres;
pub mod tempdir;
pub mod webdriver;

pub use demo::{DemoOptions, spawn_kserve, spawn_openai};
pub use http_server::TestServer;
pub use tempdir::TempDir;
