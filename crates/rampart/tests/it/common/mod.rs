//! Shared helpers for the integration tests: demo upstreams, config templates and
//! the gateway process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::{DemoOptions, TestServer, spawn_kserve, spawn_openai};

pub const LOOPBACK: ([u8; 4], u16) = ([127, 0, 0, 1], 0);

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_rampart"))
}

pub fn loopback() -> SocketAddr {
    SocketAddr::from(LOOPBACK)
}

pub async fn openai(opts: DemoOptions) -> TestServer {
    spawn_openai(loopback(), opts).await.expect("openai demo server")
}

pub async fn kserve() -> TestServer {
    spawn_kserve(loopback(), DemoOptions::default())
        .await
        .expect("kserve demo server")
}

/// A port nothing listens on (bound, then released).
pub fn dead_target() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

/// The standard test config: one plain listener, admin, an OpenAI route and a KServe
/// route (both public), a closed route, and tight timeouts so failures show quickly.
pub fn base_config(openai: &str, kserve: &str) -> String {
    format!(
        r#"
[server]
node_id = "test-node"
shutdown_grace = "10s"

[admin]
listen = "127.0.0.1:0"
public_metrics = true

[[listeners]]
name = "main"
listen = "127.0.0.1:0"
header_read_timeout = "1s"

[defaults.limits]
max_body_bytes = 65536
max_json_depth = 32

[defaults.timeouts]
first_byte = "1s"
total = "20s"
idle = "3s"

[[upstreams]]
name = "openai"
targets = ["{openai}"]

[[upstreams]]
name = "kserve"
targets = ["{kserve}"]

[[routes]]
name = "openai"
path_prefix = "/v1/"
upstream = "openai"
protocol = "openai"
public = true

[[routes]]
name = "echo"
path = "/echo"
upstream = "openai"
public = true

[[routes]]
name = "kserve"
path_prefix = "/v2/"
upstream = "kserve"
protocol = "kserve"
public = true

[[routes]]
name = "closed"
path_prefix = "/private/"
upstream = "openai"
"#
    )
}

pub fn start(config: &str) -> GatewayProcess {
    GatewayProcess::start(bin(), config).expect("gateway starts")
}

pub async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Value of a sample in Prometheus text, summed over label sets containing `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
