//! `rampart watch calibrate`: the reference statistics a classifier route's detectors
//! compare live traffic with (`[routes.watch] reference`), computed from the model's
//! training or validation rows in a CSV file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum WatchCommand {
    /// Compute a reference from a CSV of training rows and print it as JSON (or write
    /// it to --out).
    Calibrate(CalibrateArgs),
}

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// CSV file of rows; the first line is a header.
    pub csv: PathBuf,
    /// The feature columns, by header name or 0-based index, in the model's input
    /// order (default: every column whose values are all numbers).
    #[arg(long, value_delimiter = ',')]
    pub columns: Vec<String>,
    /// Feature names to record (default: the header's names of the chosen columns).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
    /// Queries of history the spacing test compares each query with.
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Seed of the spacing simulation (the output is reproducible).
    #[arg(long, default_value = "rampart")]
    pub seed: String,
    /// Write the JSON here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: WatchCommand) -> anyhow::Result<std::process::ExitCode> {
    match cmd {
        WatchCommand::Calibrate(args) => calibrate(&args).map(|()| std::process::ExitCode::SUCCESS),
    }
}

fn calibrate(args: &CalibrateArgs) -> anyhow::Result<()> {
    let file = args.csv.display().to_string();
    let text = std::fs::read_to_string(&args.csv).with_context(|| format!("cannot read {file}"))?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("{file}: empty file");
    };
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    let body: Vec<(usize, Vec<&str>)> = lines
        .map(|(i, l)| (i + 1, l.split(',').map(str::trim).collect()))
        .collect();
    for (line, cells) in &body {
        if cells.len() != header.len() {
            bail!(
                "{file}:{line}: {} values where the header has {}",
                cells.len(),
                header.len()
            );
        }
    }
    let columns: Vec<usize> = if args.columns.is_empty() {
        (0..header.len())
            .filter(|j| body.iter().all(|(_, c)| c[*j].parse::<f64>().is_ok()))
            .collect()
    } else {
        args.columns
            .iter()
            .map(|c| {
                header
                    .iter()
                    .position(|h| h == c)
                    .or_else(|| c.parse::<usize>().ok().filter(|j| *j < header.len()))
                    .with_context(|| format!("--columns: {file} has no column `{c}`"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    if columns.is_empty() {
        bail!("{file}: no column holds only numbers; name the feature columns with --columns");
    }
    let names: Vec<String> = if args.names.is_empty() {
        columns.iter().map(|j| header[*j].to_owned()).collect()
    } else if args.names.len() == columns.len() {
        args.names.clone()
    } else {
        bail!("--names: {} names for {} columns", args.names.len(), columns.len());
    };
    let mut rows = Vec::with_capacity(body.len());
    for (line, cells) in &body {
        let mut row = Vec::with_capacity(columns.len());
        for j in &columns {
            let v: f64 = cells[*j]
                .parse()
                .ok()
                .filter(|v: &f64| v.is_finite())
                .with_context(|| {
                    format!(
                        "{file}:{line}: column `{}` holds `{}`, not a number",
                        header[*j], cells[*j]
                    )
                })?;
            row.push(v);
        }
        rows.push(row);
    }
    let mut rng = rampart_watch::rng::KeyedStream::from_seed(args.seed.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot seed the simulation: {e}"))?;
    let reference = rampart_watch::reference::Reference::calibrate(names, &rows, args.window, &mut rng)
        .map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let json = serde_json::to_string_pretty(&reference)?;
    match &args.out {
        Some(out) => std::fs::write(out, json + "\n").with_context(|| format!("cannot write {}", out.display()))?,
        None => println!("{json}"),
    }
    Ok(())
}
