//! Audit trail benchmark: records appended per second in `batch` and `sync` mode
//! through the real writer (chain, SHA-256, JSON, segment files, fdatasync), the
//! request-path cost of handing one record over, and offline verification speed.
//!
//!   cargo run --release -p rampart-bench --bin audit [-- RECORDS]
//!
//! Records are the gateway's own exchange records (about 800 bytes of JSON), built on
//! the writer thread as in the gateway. The
//! trail is written under the system temp directory (its disk is what `sync` measures)
//! and removed afterwards.

use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use rampart_audit::writer::{Durability, Options, Writer};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// A realistic exchange record, built with the gateway's own record types.
fn record(i: u64) -> String {
    use rampart_gateway::audit::*;
    let r = Record::Exchange(Box::new(ExchangeRecord {
        v: SCHEMA,
        time: "2026-12-02T03:00:00.123456Z".into(),
        end: "2026-12-02T03:00:00.124456Z".into(),
        node: Arc::from("bench-node"),
        request_id: format!("bench-{i}"),
        listener: Arc::from("main"),
        method: "POST".into(),
        path: "/v1/chat/completions".into(),
        route: Some(Arc::from("chat")),
        model: Some(ModelRef {
            name: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
            version: Some("2026-11-30".into()),
            digest: Some("sha256:9b1c0e2d3b4a59687766554433221100ffeeddccbbaa99887766554433221100".into()),
        }),
        config_sha256: Arc::from("5f0c7e1d3c2b8a9f4e6d1c0b9a8f7e6d5c4b3a291807f6e5d4c3b2a190817263"),
        policy: Some(Arc::from("pii-safe")),
        principal: PrincipalRef {
            id: "8c1f0e2d3b4a59687766554433221100".into(),
            credential: "api_key",
            key_id: Some("k_8f3a2b1c".into()),
            tenant: Some("acme".into()),
        },
        client_ip: Some("10.1.2.0/24".into()),
        decision: "redact",
        findings: [("pii.email", 1), ("pii.phone", 1)].into_iter().collect(),
        error: None,
        status: 200,
        outcome: "complete",
        latency_us: Latency {
            total: 812,
            gateway: Some(41),
            upstream: Some(771),
        },
        tokens: Some(Tokens {
            reserved: 412,
            used: Some(380),
        }),
        request: BodyRef {
            bytes: 898,
            sha256: Some("0d5b1f3c7e9a2b4d6f8a0c2e4f6a8b0d2c4e6f8a0b2d4f6a8c0e2f4a6b8d0f2a".into()),
        },
        response: BodyRef {
            bytes: 1412,
            sha256: Some("a1b2c3d4e5f60718293a4b5c6d7e8f9001a2b3c4d5e6f708192a3b4c5d6e7f80".into()),
        },
        payload: None,
    }));
    serde_json::to_string(&r).unwrap_or_default()
}

fn start(dir: &std::path::Path, durability: Durability) -> Result<Writer, Error> {
    let store = rampart_audit::FileStore::open(dir, "bench-node", 64 * 1024 * 1024)?;
    let (pkcs8, _) = rampart_audit::chain::generate_key().map_err(|_| "keygen")?;
    let key = ring::signature::Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| "key")?;
    let opts = Options {
        node: "bench-node".into(),
        durability,
        batch_interval: Duration::from_millis(10),
        checkpoint_interval: rampart_config::defaults::AUDIT_CHECKPOINT_INTERVAL,
        checkpoint_every: rampart_config::defaults::AUDIT_CHECKPOINT_EVERY,
        witness: None,
        queue: 1 << 20,
        spill_dir: None,
        max_segment_bytes: 64 * 1024 * 1024,
    };
    let (w, _handle) = Writer::start(Box::new(store), key, opts, Arc::new(|_| {}))?;
    Ok(w)
}

/// Microseconds per `AuditTrail::record_exchange` on a realistic finished exchange.
fn request_path(dir: &std::path::Path, n: u32) -> Result<f64, Error> {
    use base64::Engine as _;
    std::fs::create_dir_all(dir)?;
    let (pkcs8, _) = rampart_audit::chain::generate_key().map_err(|_| "keygen")?;
    std::fs::write(dir.join("k"), base64::engine::general_purpose::STANDARD.encode(pkcs8))?;
    let toml = format!(
        "[[listeners]]\nname = \"m\"\nlisten = \"127.0.0.1:0\"\n[[upstreams]]\nname = \"u\"\ntargets = [\"http://127.0.0.1:9\"]\n[[routes]]\nname = \"r\"\npath_prefix = \"/\"\nupstream = \"u\"\npublic = true\n[audit]\ndir = \"{}\"\nsigning_key = {{ file = \"{}\" }}\nqueue = 1000000\n",
        dir.join("trail").display(),
        dir.join("k").display()
    );
    let config = rampart_config::from_str(&toml, "bench", dir).map_err(|e| e.to_string())?;
    let audit = config.audit.as_ref().ok_or("no audit")?;
    let metrics = Arc::new(rampart_gateway::metrics::Metrics::new());
    let trail = rampart_gateway::audit::AuditTrail::open(audit, "bench-node", &config.digest, metrics)?;
    let conn = Arc::new(rampart_gateway::context::ConnInfo {
        listener: Arc::from("main"),
        peer: "10.1.2.3:40000".parse()?,
        local: "10.1.2.1:8443".parse()?,
        tls: true,
        client_cert: None,
    });
    let mut ex = rampart_gateway::context::Exchange::new(conn, http::Method::POST, "/v1/chat/completions".into(), None);
    ex.request_id = "bench-7f3a2b1c-0000000001".into();
    ex.route = Some(Arc::from("chat"));
    ex.model = Some("meta-llama/Llama-3.1-8B-Instruct".into());
    ex.status = Some(http::StatusCode::OK);
    ex.outcome = Some(rampart_gateway::context::Outcome::Complete);
    ex.request_bytes = 898;
    ex.response_bytes = 1412;
    for kind in ["pii.email", "pii.phone"] {
        ex.findings.push(rampart_gateway::context::Finding {
            kind,
            confidence: 0.9,
            location: rampart_gateway::context::Location::RequestBody,
            span: Some((10, 30)),
        });
    }
    let mut state = rampart_gateway::audit::AuditState {
        request_sha256: Some("0d5b1f3c7e9a2b4d6f8a0c2e4f6a8b0d2c4e6f8a0b2d4f6a8c0e2f4a6b8d0f2a".into()),
        response: ring::digest::Context::new(&ring::digest::SHA256),
        capture: None,
    };
    state.response.update(&[b'x'; 1412]);
    let state = state;
    let sha: Arc<str> = Arc::from(config.digest.as_str());
    let policy: Option<Arc<str>> = Some(Arc::from("pii-safe"));
    let mut runs = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..n {
            // record_exchange takes the exchange's audit state: give each call its own.
            ex.stash.put(state.clone());
            let _ = trail.record_exchange(&mut ex, &sha, policy.clone(), None);
        }
        runs.push(t0.elapsed().as_secs_f64() * 1e6 / f64::from(n));
        trail.flush(Duration::from_secs(60));
    }
    runs.sort_by(f64::total_cmp);
    Ok(runs[2])
}

fn main() -> Result<(), Error> {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let root = std::env::temp_dir().join(format!("rampart-bench-audit-{}", std::process::id()));
    println!(
        "Run: `cargo run --release -p rampart-bench --bin audit -- {n}` on {} cores, trail in {}",
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        root.display()
    );
    println!();
    println!("| measurement | result |");
    println!("|---|---|");

    // Batch: two producer threads hand over records as fast as they can.
    let dir = root.join("batch");
    let w = start(&dir, Durability::Batch)?;
    let t0 = Instant::now();
    let handoff: Vec<Duration> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|p| {
                let w = w.clone();
                s.spawn(move || {
                    let start = Instant::now();
                    for i in 0..n / 2 {
                        let id = p * n + i;
                        w.submit(Box::new(move || record(id)), None);
                    }
                    start.elapsed()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    w.flush(Duration::from_secs(120));
    let batch = t0.elapsed();
    let per_submit = handoff.iter().map(Duration::as_nanos).sum::<u128>() as f64 / n as f64;
    println!(
        "| batch: records appended (2 producers, written, fsync every 10 ms) | {:.0} records/s |",
        n as f64 / batch.as_secs_f64()
    );
    println!(
        "| request path: hand one record to the writer (submit) | {:.2} µs |",
        per_submit / 1000.0
    );

    // The whole request-path cost as the gateway pays it at completion: build the typed
    // record from a finished exchange (principal pseudonym, findings, the response
    // digest) and hand it over.
    let per_record = request_path(&root.join("request-path"), 50_000)?;
    println!("| request path: build an exchange's record and hand it over (`record_exchange`) | {per_record:.2} µs |");

    // Sync: 64 concurrent "requests", each waiting until its record is durable.
    let dir_sync = root.join("sync");
    let w = start(&dir_sync, Durability::Sync)?;
    let sync_n = (n / 4).max(1000);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for p in 0..64u64 {
            let w = w.clone();
            s.spawn(move || {
                for i in 0..sync_n / 64 {
                    let (tx, rx) = channel();
                    let id = p * sync_n + i;
                    w.submit(
                        Box::new(move || record(id)),
                        Some(Box::new(move |ok| {
                            let _ = tx.send(ok);
                        })),
                    );
                    let _ = rx.recv();
                }
            });
        }
    });
    let sync = t0.elapsed();
    println!(
        "| sync: records durable (64 concurrent waiters, group commit, fdatasync per group) | {:.0} records/s |",
        (sync_n / 64 * 64) as f64 / sync.as_secs_f64()
    );

    // Verify the batch trail.
    let t0 = Instant::now();
    let report = rampart_audit::verify_dir(&dir, "bench-node", None)?;
    let took = t0.elapsed();
    if !report.ok() {
        return Err(format!("the benchmark trail does not verify: {:?}", report.problems.first()).into());
    }
    println!(
        "| verify: records checked (hash, link, sequence) | {:.0} records/s ({} records) |",
        report.records as f64 / took.as_secs_f64(),
        report.records
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
