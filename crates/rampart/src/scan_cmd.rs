//! `rampart scan PATH...`: is each model file safe to load? A table by default, JSON or
//! SARIF for tools; exit 0 clean, 1 a finding at or above `--fail-on`, 2 a file could
//! not be scanned. Files are parsed, never loaded or unpickled.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use rampart_modelscan::{Bounds, Severity, report};

#[derive(Args, Debug)]
pub struct ScanArgs {
    /// Files and directories (walked; symlinks are not followed).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[arg(long, value_parser = ["table", "json", "sarif"], default_value = "table")]
    format: String,
    /// The lowest severity that fails the scan (exit 1).
    #[arg(long, value_parser = ["low", "medium", "high", "critical"], default_value = "high")]
    fail_on: String,
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let fail_on = Severity::parse(&args.fail_on).unwrap_or(Severity::High);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let reports = rampart_modelscan::scan(&args.paths, &Bounds::default(), threads);
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report::json(&reports))?),
        "sarif" => println!(
            "{}",
            serde_json::to_string_pretty(&report::sarif(&reports, env!("CARGO_PKG_VERSION")))?
        ),
        _ => print!("{}", report::table(&reports)),
    }
    Ok(ExitCode::from(report::exit_code(&reports, fail_on)))
}
