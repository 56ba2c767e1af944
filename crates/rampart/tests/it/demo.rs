//! `rampart demo` as a newcomer meets it: every command the tour prints is run as
//! printed and must give the result printed under it; and the client libraries AI
//! engineers use — the OpenAI Python and Node SDKs, LangChain's ChatOpenAI and
//! tritonclient — work against it unchanged (`clients/`, installed at pinned versions
//! by `scripts/clients.sh`, which `scripts/test.sh` runs first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::common::bin;

/// A running demo and what its banner said.
pub(crate) struct Demo {
    child: Child,
    banner: Vec<String>,
    /// Standard output after the banner (the access log and alert lines).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Demo {
    pub(crate) fn start() -> Self {
        Self::start_with(&[])
    }

    /// The demo with more command-line arguments (`--otlp URL`).
    pub(crate) fn start_with(extra: &[&str]) -> Self {
        let mut child = Command::new(bin())
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--secure",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let end = line.contains("Press Ctrl-C");
            banner.push(line);
            if end {
                break;
            }
        }
        // Keep draining stdout (the access log) so the demo never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        assert!(banner.iter().any(|l| l.contains("Press Ctrl-C")), "{banner:#?}");
        Self { child, banner, log }
    }

    /// The value printed after `label` in the banner's header (`  secure   http://…`).
    pub(crate) fn field(&self, label: &str) -> String {
        self.banner
            .iter()
            .find_map(|l| {
                let rest = l.strip_prefix("  ")?.strip_prefix(label)?;
                rest.split_whitespace().next().map(str::to_owned)
            })
            .unwrap_or_else(|| panic!("no `{label}` in the banner"))
    }

    /// (command, expectation) pairs: a command line followed by its `=>` line.
    fn steps(&self) -> Vec<(String, String)> {
        self.banner
            .windows(2)
            .filter_map(|w| {
                let expect = w[1].strip_prefix("    => ")?;
                Some((w[0].trim().to_owned(), expect.to_owned()))
            })
            .collect()
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Demo {
    /// A failed test does not leave its demo running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One checkable claim of an `=>` line.
#[derive(Debug)]
enum Claim {
    Status(String),
    Contains(String),
    Lacks(String),
}

/// Parses `HTTP 200, "text", no "other"`.
fn claims(line: &str) -> Vec<Claim> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(r) = rest.strip_prefix("HTTP ") {
            let code: String = r.chars().take_while(char::is_ascii_digit).collect();
            rest = &r[code.len()..];
            out.push(Claim::Status(code));
        } else if let Some(r) = rest.strip_prefix("no \"") {
            let end = r.find('"').expect("unterminated quote");
            out.push(Claim::Lacks(r[..end].to_owned()));
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').expect("unterminated quote");
            out.push(Claim::Contains(r[..end].to_owned()));
            rest = &r[end + 1..];
        } else if !rest.is_empty() {
            panic!("cannot read the expectation {line:?} at {rest:?}");
        }
    }
    out
}

#[test]
fn every_printed_command_gives_the_printed_result() {
    let demo = Demo::start();
    let steps = demo.steps();
    // The plain proxy (9 commands) and the protected tour (13): keys, pseudonymisation
    // seen from both sides, injection, redaction whole and streamed, the canary,
    // KServe validation, an extraction client blocked, and the audit trail verified.
    assert_eq!(steps.len(), 22, "{steps:#?}");
    let exe = bin().canonicalize().unwrap();
    let verify = steps
        .iter()
        .find(|(c, _)| c.contains(" audit verify "))
        .expect("the tour verifies the audit trail");
    assert!(
        verify.0.starts_with(&exe.display().to_string()),
        "the verify command names the binary by its full path: {}",
        verify.0
    );
    for (command, expect) in &steps {
        let claims = claims(expect);
        assert!(!claims.is_empty(), "{command} has no stated result");
        let out = Command::new("sh").arg("-c").arg(command).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command} failed: {text}");
        for claim in claims {
            let ok = match &claim {
                Claim::Status(code) => text.contains(&format!(" HTTP {code}")),
                Claim::Contains(s) => text.contains(s.as_str()),
                Claim::Lacks(s) => !text.contains(s.as_str()),
            };
            assert!(ok, "{command}\n=> {expect}\n{claim:?} does not hold for:\n{text}");
        }
    }
    // The extraction step made the gateway print an alert (an ECS line on its output).
    let alert = demo.log.lock().unwrap().iter().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["event"]["kind"] == "alert").then_some(v)
    });
    let alert = alert.expect("the demo printed no alert");
    assert!(
        alert["rule"]["name"].as_str().unwrap().starts_with("extraction"),
        "{alert}"
    );
    assert_eq!(alert["event"]["action"], "block");

    // The banner's console link signs in once; the console shows the tour's traffic
    // and the extraction alert.
    let link = demo.field("console");
    assert!(link.contains("/console/signin?token="), "{link}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let c = rampart_testkit::client::TestClient::http1();
        let r = c.request(http::Method::GET, &link, &[], "").await.unwrap();
        assert_eq!(r.status, http::StatusCode::SEE_OTHER);
        let cookie = crate::oversight::session_cookie(&r).unwrap();
        let admin = demo.field("admin");
        let o = c
            .request(
                http::Method::GET,
                &format!("{admin}/console/api/overview"),
                &[("cookie", &cookie)],
                "",
            )
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.body).unwrap();
        assert!(v["requests"].as_u64().unwrap() >= 20, "the tour's traffic: {v}");
        assert!(v["refused"].as_u64().unwrap() >= 5, "the tour's refusals: {v}");
        let alerts = c
            .request(
                http::Method::GET,
                &format!("{admin}/console/alerts"),
                &[("cookie", &cookie)],
                "",
            )
            .await
            .unwrap();
        assert!(
            String::from_utf8_lossy(&alerts.body).contains("extraction"),
            "the alert is listed"
        );
        // The link works once.
        let again = c.request(http::Method::GET, &link, &[], "").await.unwrap();
        assert_eq!(again.status, http::StatusCode::UNAUTHORIZED);
    });
    demo.stop();
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a client check script with the demo's addresses; asserts it passed every check.
fn run_client(demo: &Demo, program: PathBuf, script: &str, checks: &[&str]) {
    assert!(
        program.exists() || program.is_relative(),
        "{} is missing: run scripts/clients.sh (scripts/test.sh runs it) to install the pinned client libraries",
        program.display()
    );
    let out = Command::new(&program)
        .arg(repo().join(script))
        .env("RAMPART_OPEN", demo.field("open"))
        .env("RAMPART_SECURE", demo.field("secure"))
        .env("RAMPART_ADMIN", demo.field("admin"))
        .env("RAMPART_KEY", demo.field("API key"))
        .env("NO_PROXY", "*")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL PASSED"),
        "{script} failed:\n{stdout}\n{stderr}"
    );
    for check in checks {
        assert!(
            stdout.lines().any(|l| l.starts_with("PASS ") && l.contains(check)),
            "{script}: no PASS line for {check:?}:\n{stdout}"
        );
    }
}

#[test]
fn python_sdk_langchain_and_tritonclient_work_unchanged() {
    let demo = Demo::start();
    let python = repo().join("target/clients/venv/bin/python");
    run_client(
        &demo,
        python,
        "clients/python/sdk_check.py",
        &[
            "openai sync chat",
            "openai async chat and stream",
            "openai stream",
            "openai embeddings",
            "openai AuthenticationError",
            "openai BadRequestError",
            "not retried",
            "langchain invoke",
            "langchain stream",
            "tritonclient JSON infer",
            "tritonclient binary infer",
            "tritonclient live/ready/metadata/server metadata",
            "refused with a v2 error",
            "refusals read as v2 errors",
        ],
    );
    demo.stop();
}

#[test]
fn node_sdk_works_unchanged() {
    let demo = Demo::start();
    assert!(
        repo().join("clients/node/node_modules/openai").exists(),
        "clients/node/node_modules is missing: run scripts/clients.sh (scripts/test.sh runs it)"
    );
    run_client(
        &demo,
        PathBuf::from("node"),
        "clients/node/sdk_check.mjs",
        &[
            "node chat",
            "node stream",
            "node default embeddings",
            "node AuthenticationError",
        ],
    );
    demo.stop();
}
