//! Scan results for people (a table), programs (JSON) and code-scanning tools (SARIF
//! 2.1.0), and the exit code CI reads.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::{FileReport, Severity};

/// 0 clean, 1 a finding at or above `fail_on`, 2 a file could not be scanned (and no
/// such finding: a dangerous file is the more urgent news).
pub fn exit_code(reports: &[FileReport], fail_on: Severity) -> u8 {
    if reports.iter().any(|r| r.worst().is_some_and(|w| w >= fail_on)) {
        1
    } else if reports.iter().any(|r| r.error.is_some()) {
        2
    } else {
        0
    }
}

pub fn table(reports: &[FileReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let verdict = match (r.status(), r.worst()) {
            ("unscannable", _) => "UNSCANNABLE".to_owned(),
            ("clean", _) => "clean".to_owned(),
            (_, Some(w)) => w.as_str().to_uppercase(),
            _ => String::new(),
        };
        let _ = writeln!(out, "{verdict:<12} {} ({}, {} bytes)", r.path, r.format, r.bytes);
        if let Some(e) = &r.error {
            let _ = writeln!(out, "             could not scan: {e}");
        }
        for f in &r.findings {
            let _ = writeln!(
                out,
                "  {:<9} {} — {} [{}]",
                f.severity.as_str(),
                f.message,
                f.location,
                f.rule
            );
        }
    }
    let count = |s: &str| reports.iter().filter(|r| r.status() == s).count();
    let _ = writeln!(
        out,
        "{} files: {} clean, {} with findings, {} unscannable",
        reports.len(),
        count("clean"),
        count("findings"),
        count("unscannable")
    );
    out
}

pub fn json(reports: &[FileReport]) -> Value {
    json!({
        "files": reports.iter().map(|r| json!({
            "path": r.path,
            "format": r.format,
            "bytes": r.bytes,
            "status": r.status(),
            "worst": r.worst().map(Severity::as_str),
            "error": r.error,
            "findings": r.findings,
        })).collect::<Vec<_>>(),
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// SARIF 2.1.0: one result per finding, and one `notifications` entry per file that
/// could not be scanned.
pub fn sarif(reports: &[FileReport], version: &str) -> Value {
    let mut rules: Vec<&str> = reports.iter().flat_map(|r| r.findings.iter().map(|f| f.rule)).collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = reports
        .iter()
        .flat_map(|r| {
            r.findings.iter().map(move |f| {
                json!({
                    "ruleId": f.rule,
                    "level": level(f.severity),
                    "message": {"text": format!("{} ({})", f.message, f.location)},
                    "properties": {"severity": f.severity.as_str()},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.path}}}],
                })
            })
        })
        .collect();
    let notifications: Vec<Value> = reports
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| (r, e)))
        .map(|(r, e)| {
            json!({
                "level": "error",
                "message": {"text": e},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": r.path}}}],
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "rampart scan",
                "version": version,
                "informationUri": "https://github.com/rampart",
                "rules": rules.iter().map(|r| json!({"id": r, "shortDescription": {"text": r}})).collect::<Vec<_>>(),
            }},
            "results": results,
            "invocations": [{"executionSuccessful": notifications.is_empty(), "toolExecutionNotifications": notifications}],
        }],
    })
}
