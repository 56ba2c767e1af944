//! `rampart probe` against the demo model server directly (no protection: access and
//! output-exposure findings) and through the gateway with protection (those findings
//! gone), asserting on the JSON report; the budget counted at the upstream; Ctrl-C
//! gives a valid partial report; the exit code follows `--fail-on`; `--diff` names what
//! changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use rampart_testkit::{DemoOptions, TempDir};
use serde_json::Value;

fn probe(args: &[&str], env: &[(&str, &str)]) -> (i32, String, Value, std::path::PathBuf) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out_dir = std::env::temp_dir().join(format!("rampart-probe-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut cmd = Command::new(bin());
    cmd.arg("probe").args(args).arg("--out").arg(&out_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let report = std::fs::read_to_string(out_dir.join("report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), stdout, report, out_dir)
}

/// Where the HTML report's screenshot goes (`RAMPART_SCREENSHOTS=docs/probe` for the docs).
fn screenshots() -> std::path::PathBuf {
    match std::env::var("RAMPART_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/probe-screenshots"),
    }
}

fn verdict(report: &Value, id: &str) -> String {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id}"))["verdict"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_what_an_unprotected_endpoint_lets_through_and_not_behind_the_gateway() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(Arc::clone(&received)),
        ..DemoOptions::default()
    })
    .await;

    // The model server itself: anyone may call it, and it hands out logprobs.
    let (code, text, direct, dir) = probe(
        &[
            &o.url(),
            "--protocol",
            "openai",
            "--model",
            "rampart-demo-chat",
            "--budget",
            "requests=60,rps=50",
        ],
        &[],
    );
    assert_eq!(code, 1, "findings at or above high: exit 1\n{text}");
    assert_eq!(verdict(&direct, "access.no_credential"), "fail");
    assert_eq!(verdict(&direct, "access.malformed_credential"), "fail");
    assert_eq!(verdict(&direct, "access.jwt_alg_none"), "fail");
    assert_eq!(verdict(&direct, "exposure.logprobs"), "fail");
    assert_eq!(verdict(&direct, "exposure.logit_bias_with_logprobs"), "fail");
    // It follows injected instructions (the canary from the probe's system prompt comes
    // back) and gives planted data back through its instructions.
    assert_eq!(verdict(&direct, "injection.direct_override"), "fail");
    assert_eq!(verdict(&direct, "leakage.via_instructions"), "fail");
    // Nothing limits it: a burst all answered, a slow client never cut off.
    assert_eq!(verdict(&direct, "abuse.rate_limit"), "fail");
    assert_eq!(verdict(&direct, "abuse.slow_client"), "fail");
    assert!(direct["requests_sent"].as_u64().unwrap() <= 80);
    // The budget, counted where it matters: at the model server.
    assert!(received.lock().unwrap().len() as u64 <= direct["requests_sent"].as_u64().unwrap());
    for file in ["report.md", "report.html", "report.sarif", "junit.xml"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("### API2:2023 Broken Authentication") && md.contains("### LLM10:2025 Unbounded Consumption"),
        "grouped by OWASP item"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuite name=\"access\"") && junit.contains("<failure"));
    // The HTML report in a real browser: it renders, with no script error.
    let b = rampart_testkit::webdriver::Browser::start().await.unwrap();
    b.goto(&format!("file://{}", dir.join("report.html").display()))
        .await
        .unwrap();
    let findings = b.text_of("[data-testid=findings]").await.unwrap();
    assert!(
        findings.ends_with("findings") && !findings.starts_with('0'),
        "{findings}"
    );
    assert!(b.source().await.unwrap().contains("LLM01:2025 Prompt Injection"));
    assert!(b.errors().await.unwrap().is_empty());
    b.screenshot(&screenshots().join("report.png")).await.unwrap();
    drop(b);

    // The same model behind `rampart demo`'s secure listener: a key, a content policy
    // (injection blocked, a canary, personal data pseudonymised, secrets blocked) and
    // logprobs capped.
    let demo = crate::demo::Demo::start();
    let secure = demo.field("secure");
    let key = demo.field("API key");
    let (_, out, behind, _) = probe(
        &[
            &secure,
            "--protocol",
            "openai",
            "--model",
            "rampart-demo-chat",
            "--budget",
            "requests=80,rps=50",
        ],
        &[("RAMPART_PROBE_KEY", &key)],
    );
    assert_eq!(verdict(&behind, "access.baseline"), "pass", "{out}");
    let failing = |r: &Value, family: &str| {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["family"] == family && c["verdict"] == "fail")
            .count()
    };
    for family in ["injection", "leakage", "exposure"] {
        assert!(
            failing(&direct, family) > 0,
            "the unprotected model has {family} findings"
        );
        assert_eq!(
            failing(&behind, family),
            0,
            "{family} findings behind the gateway\n{out}"
        );
    }
    for id in [
        "access.no_credential",
        "access.malformed_credential",
        "access.jwt_alg_none",
        "access.jwt_weak_hmac",
        "access.jwt_expired_unsigned",
        "access.key_in_query",
        "access.admin_paths",
        "input.malformed_json",
        "input.deep_nesting",
        "input.duplicate_keys",
        "input.protocol_violation",
        "abuse.slow_client",
    ] {
        assert_eq!(verdict(&behind, id), "pass", "{id} behind the gateway\n{out}");
    }
    // No credential and no planted secret in any report.
    let all = serde_json::to_string(&behind).unwrap();
    assert!(!all.contains(&key[21..]), "the key is masked in the evidence");
    demo.stop();

    // --diff: what the gateway fixed.
    let a = std::env::temp_dir().join(format!("probe-before-{}.json", std::process::id()));
    let b = std::env::temp_dir().join(format!("probe-after-{}.json", std::process::id()));
    std::fs::write(&a, direct.to_string()).unwrap();
    std::fs::write(&b, behind.to_string()).unwrap();
    let out = Command::new(bin())
        .args(["probe", "--diff"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("| `access.no_credential` | fail | pass |"), "{diff}");
    assert!(diff.contains("| `injection.direct_override` | fail | pass |"), "{diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_never_exceeded_and_ctrl_c_writes_a_partial_report() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(Arc::clone(&received)),
        ..DemoOptions::default()
    })
    .await;
    // A budget of 5 requests: five are sent, the rest of the cases say they did not run.
    let (_, out, report, _) = probe(&[&o.url(), "--budget", "requests=5,rps=100"], &[]);
    assert_eq!(report["requests_sent"], 5, "{out}");
    assert_eq!(report["partial"], true);
    assert!(received.lock().unwrap().len() <= 5);
    let not_run = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "skipped")
        .count();
    assert!(not_run >= 5, "{report}");

    // Ctrl-C (SIGINT) mid-run: a valid partial report.
    let out_dir = TempDir::new("rampart-probe-int").unwrap();
    let mut child = Command::new(bin())
        .args(["probe", &o.url(), "--budget", "requests=100,rps=2", "--out"])
        .arg(out_dir.path())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.code().is_some(), "it exits by itself after Ctrl-C");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["partial"], true);
    let sent = report["requests_sent"].as_u64().unwrap();
    assert!((3..=8).contains(&sent), "about 2 per second for 2.5 s: {sent}");
    // A bad budget is a usage error naming it.
    let (code, out, _, _) = probe(&[&o.url(), "--budget", "requests=0"], &[]);
    assert_eq!(code, 2);
    assert!(out.contains("requests must be a positive number"), "{out}");
}
