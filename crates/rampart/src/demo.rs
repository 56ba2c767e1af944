//! `rampart demo`: the gateway in front of the built-in demo model servers (an
//! OpenAI-compatible chat/embeddings server and a KServe v2 iris classifier), all on
//! loopback in one process, with curl commands that work as printed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rampart_gateway::{Gateway, Server};
use rampart_testkit::{DemoOptions, spawn_kserve, spawn_openai};

/// `preferred` if it can be bound now, else a free port on the same interface.
fn free_or_fallback(preferred: SocketAddr) -> SocketAddr {
    match std::net::TcpListener::bind(preferred) {
        Ok(_) => preferred,
        Err(_) => SocketAddr::new(preferred.ip(), 0),
    }
}

pub async fn run(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<ExitCode> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let openai = spawn_openai(
        loopback,
        DemoOptions {
            chunk_delay: Duration::from_millis(40),
            ..DemoOptions::default()
        },
    )
    .await
    .context("cannot start the demo OpenAI server")?;
    let kserve = spawn_kserve(loopback, DemoOptions::default())
        .await
        .context("cannot start the demo KServe server")?;
    let listen = free_or_fallback(listen);
    let admin = free_or_fallback(admin);
    // The audit trail, with a fresh signing key, in a directory of its own.
    let audit_dir = std::env::temp_dir().join(format!("rampart-demo-{}", std::process::id()));
    std::fs::create_dir_all(&audit_dir).with_context(|| format!("cannot create {}", audit_dir.display()))?;
    let (pkcs8, public) =
        rampart_audit::chain::generate_key().map_err(|_| anyhow::anyhow!("cannot generate an audit key"))?;
    {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        std::fs::write(audit_dir.join("audit.key"), b64.encode(&pkcs8)).context("cannot write the demo audit key")?;
        std::fs::write(audit_dir.join("audit.key.pub"), b64.encode(&public))
            .context("cannot write the demo audit public key")?;
    }
    let trail = audit_dir.join("trail");
    let toml = format!(
        r#"
[server]
node_id = "demo"

[admin]
listen = "{admin}"
public_metrics = true

# Every exchange leaves one hash-chained record; checkpoints are signed.
[audit]
dir = "{trail}"
signing_key = {{ file = "{key}" }}
checkpoint_interval = "10s"

[[listeners]]
name = "main"
listen = "{listen}"

[[upstreams]]
name = "demo-openai"
targets = ["{openai}"]
health.path = "/health"

[[upstreams]]
name = "demo-kserve"
targets = ["{kserve}"]
health.path = "/v2/health/ready"

# The demo routes are public: no credentials needed. Real routes are closed by
# default and need `public = true` to be reachable without authentication.
[[routes]]
name = "openai"
path_prefix = "/v1/"
upstream = "demo-openai"
protocol = "openai"
public = true

[[routes]]
name = "kserve"
path_prefix = "/v2/"
upstream = "demo-kserve"
protocol = "kserve"
public = true
"#,
        openai = openai.url(),
        kserve = kserve.url(),
        trail = trail.display(),
        key = audit_dir.join("audit.key").display(),
    );
    let config = rampart_config::from_str(&toml, "demo", std::path::Path::new("."))
        .map_err(|e| anyhow::anyhow!("demo config is invalid: {e}"))?;
    let gateway = Gateway::new(config.clone())?;
    let server = Server::bind(Arc::clone(&gateway), &config).await?;
    let addrs = server.addresses();
    let gw = addrs
        .iter()
        .find(|(n, _)| n == "main")
        .map(|(_, a)| *a)
        .context("gateway listener missing")?;
    let adm = addrs
        .iter()
        .find(|(n, _)| n == "admin")
        .map(|(_, a)| *a)
        .context("admin listener missing")?;
    crate::announce(&server);
    print_banner(gw, adm, &openai.url(), &kserve.url());
    println!(
        "Audit trail: {trail}\nAfter Ctrl-C, verify it offline:\n  rampart audit verify {trail} --pub {pubkey}\n",
        trail = trail.display(),
        pubkey = audit_dir.join("audit.key.pub").display()
    );
    server.run(crate::shutdown_signal()).await;
    openai.stop().await;
    kserve.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn print_banner(gw: SocketAddr, admin: SocketAddr, openai: &str, kserve: &str) {
    let g = format!("http://{gw}");
    let a = format!("http://{admin}");
    let json = "-H 'content-type: application/json'";
    println!(
        r#"
Rampart demo is running.
  gateway  {g}   -> demo OpenAI server {openai} (/v1/*) and demo KServe v2 server {kserve} (/v2/*)
  admin    {a}   (/healthz, /readyz, /metrics, POST /admin/reload)

Try these (each line is a complete command):
  curl -sf {g}/v1/models
  curl -sf {g}/v1/chat/completions {json} -d '{{"model":"rampart-demo-chat","messages":[{{"role":"user","content":"Hello, Rampart!"}}]}}'
  curl -sfN {g}/v1/chat/completions {json} -d '{{"model":"rampart-demo-chat","stream":true,"messages":[{{"role":"user","content":"Stream this answer word by word"}}]}}'
  curl -sf {g}/v1/embeddings {json} -d '{{"model":"rampart-demo-embed","input":"a security gateway for models"}}'
  curl -sf {g}/v2/models/iris
  curl -sf {g}/v2/models/iris/infer {json} -d '{{"inputs":[{{"name":"input-0","shape":[2,4],"datatype":"FP32","data":[5.1,3.5,1.4,0.2,6.7,3.0,5.2,2.3]}}]}}'
  curl -s {g}/internal/admin
  curl -s {g}/v1/chat/completions {json} -d '{{"messages":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}'
  curl -sf {a}/metrics

The last-but-one is refused (JSON nested deeper than the limit of 64); the one before it
gets a 404 (unmatched routes are refused). One JSON access-log line per request follows
below. Press Ctrl-C to stop.
"#
    );
}
