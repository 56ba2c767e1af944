//! The `rampart` binary: command-line parsing, logging setup, signal handling and
//! exit codes. Glue only; everything else lives in the library crates.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.

mod audit_cmd;
mod demo;
mod kanon;
mod keys;
mod oversight_cmd;
mod probe_cmd;
mod scan_cmd;
mod textjobs;
mod watch_cmd;

/// mimalloc: the request path allocates many small, short-lived buffers and glibc's
/// allocator showed up at ~8% of CPU in profiles of the proxy under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use rampart_gateway::{Gateway, Server};

#[derive(Parser, Debug)]
#[command(name = "rampart", version, about = "A security gateway for AI model endpoints")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway with a config file.
    Serve {
        /// Path to the TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file (including certificates and secrets) and exit.
    CheckConfig {
        /// Path to the TOML config file.
        config: PathBuf,
    },
    /// Manage API keys in the key file named by the config (`identity.api_keys.file`).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Scan model files (pickle, PyTorch, NumPy, Keras, safetensors, GGUF, zip) without
    /// loading them: exit 0 clean, 1 findings at or above --fail-on, 2 unscannable.
    Scan(scan_cmd::ScanArgs),
    /// Sign a model directory: a DSSE-wrapped in-toto manifest of every file's SHA-256
    /// (`model.sig`), Ed25519.
    Sign(scan_cmd::SignArgs),
    /// Verify a model directory against its `model.sig`: names added, removed and
    /// changed files; exit 1 on any difference or a bad signature.
    Verify(scan_cmd::VerifyArgs),
    /// The audit trail: create the signing key, verify a trail offline.
    Audit {
        #[command(subcommand)]
        command: audit_cmd::AuditCommand,
    },
    /// Redact PII and secrets in JSONL, CSV or text files (or stdin) with a policy's
    /// request rules, using every core; output in input order.
    Redact(textjobs::RedactArgs),
    /// Print each input's findings and injection score as one JSON line, in order.
    Inspect(textjobs::InspectArgs),
    /// Detectors: compute the reference statistics a classifier route's extraction,
    /// out-of-distribution and drift detectors compare traffic with.
    Watch {
        #[command(subcommand)]
        command: watch_cmd::WatchCommand,
    },
    /// Stop a running gateway, route, model or tenant (the stop switch): requests get
    /// 503 `stopped_by_operator` on every node until `rampart resume`.
    Stop(oversight_cmd::StopArgs),
    /// Lift a stop.
    Resume(oversight_cmd::ResumeArgs),
    /// The stops in force.
    Stops(oversight_cmd::Admin),
    /// The review queue: list, show and decide held and flagged exchanges.
    Review {
        #[command(subcommand)]
        command: oversight_cmd::ReviewCommand,
    },
    /// Red-team a model endpoint within a budget (access, input handling, output
    /// exposure, …) and write Markdown, HTML, JSON, SARIF and JUnit reports; exit 1 on a
    /// finding at or above --fail-on.
    Probe(probe_cmd::ProbeArgs),
    /// Start the gateway in front of built-in demo model servers and print curl examples.
    Demo {
        #[command(subcommand)]
        action: Option<DemoAction>,
        /// Address for the open listener (plain public routes); falls back to a free
        /// port if taken.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Address for the secure listener (the same routes behind a key and a
        /// content policy); falls back to a free port if taken.
        #[arg(long, default_value = "127.0.0.1:8081")]
        secure: std::net::SocketAddr,
        /// Address for the admin API; falls back to a free port if taken.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin: std::net::SocketAddr,
        /// Export every exchange's spans to this OpenTelemetry collector
        /// (`http://127.0.0.1:4318` for OTLP/HTTP, `http://127.0.0.1:4317` with
        /// `--otlp-protocol grpc`).
        #[arg(long)]
        otlp: Option<String>,
        /// `http/protobuf` or `grpc`.
        #[arg(long, default_value = "http/protobuf", value_parser = ["http/protobuf", "grpc"])]
        otlp_protocol: String,
    },
}

#[derive(Subcommand, Debug)]
enum DemoAction {
    /// The demo's own model-extraction client: random queries at a KServe iris model
    /// until the gateway stops it.
    Extract(demo::ExtractArgs),
}

fn init_logging() {
    let level = match std::env::var("RAMPART_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => tracing::Level::ERROR,
        "warn" => tracing::Level::WARN,
        "debug" => tracing::Level::DEBUG,
        "trace" => tracing::Level::TRACE,
        _ => tracing::Level::INFO,
    };
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rampart-worker")
        .build()
        .context("cannot start the async runtime")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Serve { config } => serve(&config),
        Command::CheckConfig { config } => check_config(&config),
        Command::Keys { command } => keys::run(command),
        Command::Audit { command } => audit_cmd::run(command),
        Command::Scan(args) => scan_cmd::run(args),
        Command::Sign(args) => scan_cmd::sign(args),
        Command::Verify(args) => scan_cmd::verify(args),
        Command::Redact(args) => textjobs::redact(args),
        Command::Inspect(args) => textjobs::inspect(args),
        Command::Watch { command } => watch_cmd::run(command),
        Command::Probe(args) => runtime().and_then(|rt| rt.block_on(probe_cmd::run(args))),
        Command::Stop(args) => runtime().and_then(|rt| rt.block_on(oversight_cmd::stop(args))),
        Command::Resume(args) => runtime().and_then(|rt| rt.block_on(oversight_cmd::resume(args))),
        Command::Stops(admin) => runtime().and_then(|rt| rt.block_on(oversight_cmd::stops(admin))),
        Command::Review { command } => runtime().and_then(|rt| rt.block_on(oversight_cmd::review(command))),
        Command::Demo {
            action: Some(DemoAction::Extract(args)),
            ..
        } => runtime().and_then(|rt| rt.block_on(demo::extract(args))),
        Command::Demo {
            action: None,
            listen,
            secure,
            admin,
            otlp,
            otlp_protocol,
        } => runtime().and_then(|rt| {
            rt.block_on(demo::run(
                demo::Addresses {
                    open: listen,
                    secure,
                    admin,
                },
                otlp.map(|url| (url, otlp_protocol)),
            ))
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub(crate) fn load(path: &Path) -> Result<rampart_config::Config, ExitCode> {
    rampart_config::load(path).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn check_config(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let summary = format!(
        "{}: ok ({} listeners, {} upstreams, {} routes)",
        path.display(),
        config.listeners.len(),
        config.upstreams.len(),
        config.routes.len()
    );
    // Build the runtime too (certificates and keys are only parsed there), but open
    // nothing for writing: a running gateway's audit trail is not touched.
    let built = runtime()?.block_on(async { Gateway::check(config) });
    match built {
        Ok(()) => {
            println!("{summary}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            Ok(ExitCode::from(2))
        }
    }
}

fn serve(path: &Path) -> anyhow::Result<ExitCode> {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    runtime()?.block_on(async move {
        let gateway = match Gateway::new(config.clone()) {
            Ok(g) => g,
            Err(e) => {
                eprintln!("{}: {e}", path.display());
                return Ok(ExitCode::from(2));
            }
        };
        let server = Server::bind(Arc::clone(&gateway), &config).await?;
        announce(&server);
        #[allow(clippy::disallowed_methods)] // aborted when the server returns (reloader)
        let reloader = tokio::spawn(reload_on_sighup(Arc::clone(&gateway)));
        #[allow(clippy::disallowed_methods)] // aborted when the server returns (watcher)
        let watcher = config
            .server
            .watch_config
            .map(|every| tokio::spawn(reload_on_change(Arc::clone(&gateway), path.to_path_buf(), every)));
        server.run(shutdown_signal()).await;
        reloader.abort();
        if let Some(w) = watcher {
            w.abort();
        }
        tracing::info!(event = "shutdown", "stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Logs every bound address, then `ready` (the test harness and operators wait for it).
pub(crate) fn announce(server: &Server) {
    for (name, addr) in server.addresses() {
        tracing::info!(listener = %name, address = %addr, "listening");
    }
    tracing::info!("ready");
}

async fn reload_on_sighup(gateway: Arc<Gateway>) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload through the admin API only");
        return;
    };
    while hup.recv().await.is_some() {
        let gw = Arc::clone(&gateway);
        // Reload reads files; keep it off the request workers.
        let _ = tokio::task::spawn_blocking(move || gw.reload("signal")).await;
    }
}

/// `server.watch_config`: every `every`, hashes the config file and reloads when it
/// differs from the running config, as SIGHUP would. A version that was rejected is
/// not tried again (one error, not one per tick) until the file changes once more.
async fn reload_on_change(gateway: Arc<Gateway>, path: std::path::PathBuf, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rejected: Option<String> = None;
    loop {
        tick.tick().await;
        let (gw, file) = (Arc::clone(&gateway), path.clone());
        // File reads stay off the request workers.
        let changed = tokio::task::spawn_blocking(move || {
            let digest = rampart_config::sha256_hex(&std::fs::read(&file).ok()?);
            (digest != gw.current().config.digest).then_some(digest)
        })
        .await
        .ok()
        .flatten();
        let Some(digest) = changed else {
            rejected = None;
            continue;
        };
        if rejected.as_deref() == Some(digest.as_str()) {
            continue;
        }
        let gw = Arc::clone(&gateway);
        if let Ok(Err(_)) = tokio::task::spawn_blocking(move || gw.reload("file_change")).await {
            rejected = Some(digest);
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
