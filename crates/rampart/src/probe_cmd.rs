//! `rampart probe`: red-team one model endpoint within a budget and write the reports;
//! `rampart probe --diff before.json after.json`: what changed between two runs.
//! Exit codes: 0 no finding at or above `--fail-on`, 1 such findings, 2 bad usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::Args;

#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The endpoint: a server's base URL (openai, kserve) or the JSON API's URL.
    #[arg(required_unless_present = "diff")]
    pub url: Option<String>,
    /// openai, kserve or json.
    #[arg(long, default_value = "openai")]
    pub protocol: String,
    /// A credential to send as `Authorization: Bearer` (prefer RAMPART_PROBE_KEY: the
    /// command line is visible to other users of the machine).
    #[arg(long)]
    pub key: Option<String>,
    /// The model to name (OpenAI `model`, the KServe model in the path).
    #[arg(long)]
    pub model: Option<String>,
    /// requests=N,seconds=S,rps=R (default requests=500,seconds=300,rps=20).
    #[arg(long, default_value = "")]
    pub budget: String,
    /// A PEM CA bundle to trust beside the public roots (an endpoint with a private CA).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Families to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where the reports go (report.json, report.md, report.html, report.sarif, junit.xml).
    #[arg(long, default_value = "probe-report")]
    pub out: PathBuf,
    /// Exit 1 when a finding at or above this severity exists: info, low, medium, high, critical.
    #[arg(long, default_value = "high")]
    pub fail_on: String,
    /// Compare two report.json files instead of probing.
    #[arg(long, num_args = 2, value_names = ["BEFORE", "AFTER"])]
    pub diff: Option<Vec<PathBuf>>,
}

pub async fn run(args: ProbeArgs) -> anyhow::Result<ExitCode> {
    if let Some(files) = &args.diff {
        let read = |p: &PathBuf| -> anyhow::Result<serde_json::Value> {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("{}: not a probe report (JSON)", p.display()))
        };
        let (before, after) = (read(&files[0])?, read(&files[1])?);
        print!("{}", rampart_probe::report::diff(&before, &after));
        return Ok(ExitCode::SUCCESS);
    }
    let usage = |m: String| {
        eprintln!("rampart probe: {m}");
        Ok(ExitCode::from(2))
    };
    let Some(url) = args.url.clone() else {
        return usage("give the endpoint's URL".into());
    };
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return usage(format!("`{url}` is not an http:// or https:// URL"));
    }
    let Some(protocol) = rampart_probe::Protocol::parse(&args.protocol) else {
        return usage(format!("`{}`: the protocol is openai, kserve or json", args.protocol));
    };
    let limits = match rampart_probe::budget::Limits::parse(&args.budget) {
        Ok(l) => l,
        Err(e) => return usage(e),
    };
    let Some(fail_on) = rampart_probe::Severity::parse(&args.fail_on) else {
        return usage(format!(
            "`{}`: --fail-on is info, low, medium, high or critical",
            args.fail_on
        ));
    };
    let key = args
        .key
        .clone()
        .or_else(|| std::env::var("RAMPART_PROBE_KEY").ok().filter(|k| !k.is_empty()));
    let settings = rampart_probe::Settings {
        url,
        protocol,
        key,
        model: args.model.clone(),
        limits,
        only: args.only.clone(),
        ca: args.ca.clone(),
    };
    // Ctrl-C: stop sending, finish the report with what was done.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    #[allow(clippy::disallowed_methods)] // ends with the process; sets a flag once
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("rampart probe: stopping; writing a partial report");
            flag.store(true, Ordering::SeqCst);
        }
    });
    let report = match rampart_probe::run(&settings, stop).await {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    report
        .write(&args.out)
        .with_context(|| format!("cannot write the reports to {}", args.out.display()))?;
    let failing = report.failures_at_or_above(fail_on);
    let findings = report
        .cases
        .iter()
        .filter(|c| c.verdict == rampart_probe::Verdict::Fail)
        .count();
    println!(
        "{} cases, {findings} findings ({failing} at or above {}), {} requests in {:.1} s{}; reports in {}",
        report.cases.len(),
        fail_on.as_str(),
        report.requests_sent,
        report.seconds,
        if report.partial { " (partial)" } else { "" },
        args.out.display()
    );
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
