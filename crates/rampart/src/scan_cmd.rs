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

/// `rampart sign DIR --key KEY`.
#[derive(Args, Debug)]
pub struct SignArgs {
    /// The model directory.
    dir: PathBuf,
    /// Ed25519 key (base64 PKCS#8, as `rampart audit keygen` writes).
    #[arg(long)]
    key: PathBuf,
}

/// `rampart verify DIR --pub KEY`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    dir: PathBuf,
    /// The public key (`.pub`).
    #[arg(long = "pub")]
    public_key: PathBuf,
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn sign(args: SignArgs) -> anyhow::Result<ExitCode> {
    use rampart_modelscan::manifest;
    let key = match manifest::load_key(&args.key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    match manifest::sign(&args.dir, &key, threads()) {
        Ok((digest, files)) => {
            println!(
                "signed {files} files in {}; wrote {}\nmanifest digest (pin it as model.manifest_digest): {digest}",
                args.dir.display(),
                args.dir.join(manifest::SIGNATURE_FILE).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
    }
}

pub fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    use rampart_modelscan::manifest;
    let key = match manifest::load_public_key(&args.public_key) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    let v = match manifest::verify(&args.dir, &key, threads()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(2));
        }
    };
    if !v.signature_ok {
        println!(
            "SIGNATURE: does not verify with {} (wrong key, or the manifest was altered)",
            args.public_key.display()
        );
    }
    for (what, names) in [
        ("ADDED", &v.added),
        ("REMOVED", &v.removed),
        ("CHANGED", &v.changed),
        ("SYMLINK", &v.symlinks),
    ] {
        for n in names {
            println!("{what}: {n}");
        }
    }
    if v.ok() {
        println!(
            "ok: {} files match the signed manifest ({})",
            v.files, v.manifest_digest
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
