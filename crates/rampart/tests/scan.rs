//! `rampart scan` as CI runs it: exit codes (0 clean, 1 findings at or above
//! `--fail-on`, 2 unscannable), the table, JSON and SARIF outputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::bin;
use serde_json::Value;

fn corpus(kind: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../modelscan/tests/corpus")
        .join(kind)
}

fn scan(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin()).arg("scan").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn exit_codes_follow_the_worst_result() {
    let benign = corpus("benign").display().to_string();
    let malicious = corpus("malicious").display().to_string();
    let broken = corpus("broken").display().to_string();
    let (code, out) = scan(&[&benign]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("16 files: 16 clean"), "{out}");
    let (code, out) = scan(&[&malicious]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("CRITICAL") && out.contains("os.system"), "{out}");
    let (code, _) = scan(&[&broken]);
    assert_eq!(code, 2);
    // A medium-only file passes at the default threshold and fails at --fail-on medium.
    let medium = corpus("malicious")
        .join("code_in_metadata.safetensors")
        .display()
        .to_string();
    assert_eq!(scan(&[&medium]).0, 0);
    assert_eq!(scan(&[&medium, "--fail-on", "medium"]).0, 1);
    // Findings win over unscannable files when both occur.
    assert_eq!(scan(&[&malicious, &broken]).0, 1);
}

#[test]
fn json_and_sarif_outputs() {
    let malicious = corpus("malicious").display().to_string();
    let broken = corpus("broken").display().to_string();
    let (_, out) = scan(&[&malicious, &broken, "--format", "json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let files = v["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["status"] == "unscannable" && f["error"].as_str().is_some())
    );
    let os = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("os_system_p0.pkl"))
        .unwrap();
    assert_eq!(os["worst"], "critical");
    assert_eq!(os["findings"][0]["rule"], "pickle.dangerous-import");
    let (_, out) = scan(&[&malicious, &broken, "--format", "sarif"]);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["version"], "2.1.0");
    let run = &s["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "rampart scan");
    let results = run["results"].as_array().unwrap();
    assert!(results.iter().all(
        |r| r["ruleId"].is_string() && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].is_string()
    ));
    assert!(results.iter().any(|r| r["level"] == "error"));
    assert_eq!(
        run["invocations"][0]["executionSuccessful"], false,
        "unscannable files are notifications"
    );
    let (code, out) = scan(&["/nonexistent/model.pt"]);
    assert_eq!(code, 2, "{out}");
}
