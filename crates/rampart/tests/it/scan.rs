//! `rampart scan` as CI runs it: exit codes (0 clean, 1 findings at or above
//! `--fail-on`, 2 unscannable), the table, JSON and SARIF outputs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;

use crate::common::bin;
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
    assert!(out.contains("clean, 0 with findings, 0 unscannable"), "{out}");
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

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn sign_and_verify_name_every_difference_and_reject_a_wrong_key() {
    let dir = rampart_testkit::TempDir::new("rampart-sign").unwrap();
    let model = dir.join("model");
    std::fs::create_dir_all(model.join("tokenizer")).unwrap();
    std::fs::write(model.join("weights.safetensors"), vec![7u8; 3 << 20]).unwrap();
    std::fs::write(model.join("config.json"), b"{\"layers\": 2}").unwrap();
    std::fs::write(model.join("tokenizer/vocab.txt"), b"a\nb\n").unwrap();
    let key = dir.join("sign.key").display().to_string();
    let other = dir.join("other.key").display().to_string();
    assert_eq!(run(&["audit", "keygen", "--out", &key]).0, 0);
    assert_eq!(run(&["audit", "keygen", "--out", &other]).0, 0);
    let m = model.display().to_string();
    let (code, out) = run(&["sign", &m, "--key", &key]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("signed 3 files") && out.contains("sha256:"), "{out}");
    let envelope: Value = serde_json::from_str(&std::fs::read_to_string(model.join("model.sig")).unwrap()).unwrap();
    assert_eq!(envelope["payloadType"], "application/vnd.in-toto+json");
    let public = format!("{key}.pub");
    let (code, out) = run(&["verify", &m, "--pub", &public]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok: 3 files match"), "{out}");

    // A wrong key is rejected.
    let (code, out) = run(&["verify", &m, "--pub", &format!("{other}.pub")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("SIGNATURE: does not verify"), "{out}");

    // Tampered, added and removed files are each named.
    std::fs::write(model.join("config.json"), b"{\"layers\": 3}").unwrap();
    std::fs::write(model.join("extra.pkl"), b"\x80\x02N.").unwrap();
    std::fs::remove_file(model.join("tokenizer/vocab.txt")).unwrap();
    let (code, out) = run(&["verify", &m, "--pub", &public]);
    assert_eq!(code, 1, "{out}");
    for line in [
        "CHANGED: config.json",
        "ADDED: extra.pkl",
        "REMOVED: tokenizer/vocab.txt",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }

    // An edited manifest no longer verifies.
    let mut env = envelope.clone();
    env["payload"] = Value::String(env["payload"].as_str().unwrap().replacen('A', "B", 1));
    std::fs::write(model.join("model.sig"), env.to_string()).unwrap();
    let (code, out) = run(&["verify", &m, "--pub", &public]);
    assert_ne!(code, 0, "{out}");
}
