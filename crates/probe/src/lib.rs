//! `rampart probe`: a bounded red-team battery against one model endpoint —
//! OpenAI-compatible, KServe v2 or a JSON API, with or without Rampart in front — and
//! its reports.
//!
//! - `budget`: every request passes one budget (requests, seconds, rate, Ctrl-C); a case
//!   the budget stops is reported as not run, never as passed.
//! - `client`: sending, and keeping each exchange as evidence with credentials masked.
//! - `families`: the cases, family by family; each judges what came back, not whether
//!   something was sent.
//! - `report`: the verdicts and the writers (JSON, Markdown, HTML, SARIF, JUnit, diff).
//!
//! It never sends more than the budget, never writes to the target beyond the requests a
//! case names, and never puts a credential in a report.

pub mod budget;
pub mod client;
pub mod families;
pub mod report;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub use report::{Case, Report, Severity, Verdict};

/// The attack texts' version (bumped whenever a text changes, so reports compare).
pub const CORPUS: &str = "2026.12.2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Openai,
    Kserve,
    Json,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "openai" => Self::Openai,
            "kserve" => Self::Kserve,
            "json" => Self::Json,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Kserve => "kserve",
            Self::Json => "json",
        }
    }
}

/// The families, in the order they run.
pub const FAMILIES: [&str; 7] = [
    "access",
    "transport",
    "input",
    "injection",
    "leakage",
    "exposure",
    "abuse",
];

/// What to probe and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The server's base URL (OpenAI, KServe) or the endpoint itself (JSON).
    pub url: String,
    pub protocol: Protocol,
    pub key: Option<String>,
    pub model: Option<String>,
    pub limits: budget::Limits,
    /// Families to run; empty: all.
    pub only: Vec<String>,
    /// A PEM bundle trusted beside the public roots (a private CA).
    pub ca: Option<std::path::PathBuf>,
}

/// Runs the battery; `stop` ends it early (Ctrl-C) with a partial report.
pub async fn run(settings: &Settings, stop: Arc<AtomicBool>) -> Result<Report, String> {
    for f in &settings.only {
        if !FAMILIES.contains(&f.as_str()) {
            return Err(format!("unknown family `{f}` (known: {})", FAMILIES.join(", ")));
        }
    }
    let budget = Arc::new(budget::Budget::new(settings.limits, stop));
    let prober = client::Prober::new(
        &settings.url,
        settings.key.clone(),
        settings.ca.as_deref(),
        Arc::clone(&budget),
    )?;
    let started = rampart_identity::time::format(rampart_identity::time::now());
    let ctx = families::Ctx {
        prober,
        protocol: settings.protocol,
        model: settings.model.clone(),
    };
    let mut cases = Vec::new();
    for family in FAMILIES {
        if !settings.only.is_empty() && !settings.only.iter().any(|f| f == family) {
            continue;
        }
        let got = match family {
            "access" => families::access::run(&ctx).await,
            "transport" => families::transport::run(&ctx).await,
            "input" => families::input::run(&ctx).await,
            "injection" => families::injection::run(&ctx).await,
            "leakage" => families::leakage::run(&ctx).await,
            "abuse" => families::abuse::run(&ctx).await,
            _ => families::exposure::run(&ctx).await,
        };
        cases.extend(got);
    }
    let partial = cases
        .iter()
        .any(|c| c.verdict == Verdict::Skipped && c.detail.starts_with("not run"));
    let l = settings.limits;
    Ok(Report {
        tool: "rampart probe",
        version: env!("CARGO_PKG_VERSION"),
        corpus: CORPUS,
        target: settings.url.clone(),
        protocol: settings.protocol.as_str().to_owned(),
        started,
        seconds: (budget.elapsed().as_secs_f64() * 10.0).round() / 10.0,
        requests_sent: budget.sent(),
        budget: serde_json::json!({"requests": l.requests, "seconds": l.seconds, "rps": l.rps}),
        partial: partial || budget.stopped_by_user(),
        cases,
    })
}
