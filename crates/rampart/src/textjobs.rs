//! `rampart redact` and `rampart inspect`: the gateway's content engine over files.
//!
//! Both read JSON lines, CSV or plain text from files or stdin, process records in
//! batches spread over every core, and write results in input order. `redact` rewrites
//! every string value (JSONL), every field (CSV) or every line (text) with a policy's
//! request rules — the same scanner and transforms the gateway uses — and writes to
//! stdout or, atomically, to `--output`. `inspect` prints one JSON line per input with
//! its findings (kind, byte span, confidence, action) and injection score. A malformed
//! record stops the run with `FILE:LINE: …` and exit code 2; an `--output` file is
//! only replaced when the whole run succeeded. With `--k` or `--drop`, `redact` reads
//! the input as one table (CSV with a header row, or JSON lines), holds it in memory,
//! removes the dropped columns and generalises the quasi-identifiers (`kanon.rs`).

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use rampart_config::{ContentAction, ContentPolicy};
use rampart_gateway::content::PolicyRuntime;

use crate::kanon;
use serde_json::Value;

/// Records processed per batch (split across the worker threads).
const BATCH: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// From the file extension (`.jsonl`/`.ndjson`, `.csv`), else plain text.
    Auto,
    Jsonl,
    Csv,
    Text,
}

#[derive(Args, Debug)]
pub struct Common {
    /// Config file holding the policy (`[policies.<name>]`).
    #[arg(long, short, requires = "policy")]
    config: Option<PathBuf>,
    /// Policy name; without --config, every kind is redacted and injection is scored.
    #[arg(long, requires = "config")]
    policy: Option<String>,
    #[arg(long, value_enum, default_value = "auto")]
    format: Format,
    /// JSONL: only this field (repeatable; default: every string value).
    #[arg(long)]
    field: Vec<String>,
    /// Worker threads (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Input files; none or `-` reads stdin.
    files: Vec<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RedactArgs {
    #[command(flatten)]
    common: Common,
    /// Write here (replaced only when the run succeeds) instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Tenant whose hash key derives the `hash` pseudonyms.
    #[arg(long)]
    tenant: Option<String>,
    /// k-anonymity: generalise the --quasi columns until every combination of their
    /// values is shared by at least K rows (CSV with a header row, or JSON lines).
    #[arg(long, requires = "quasi")]
    k: Option<usize>,
    /// Quasi-identifier columns for --k: `NAME` or `NAME:KIND`, KIND one of number,
    /// date, prefix, category (default: from the name and the values).
    #[arg(long, value_delimiter = ',', requires = "k")]
    quasi: Vec<String>,
    /// With --k: the largest share of rows that may be left out (0 to 1).
    #[arg(long, default_value_t = 0.05, requires = "k")]
    max_suppress: f64,
    /// Columns to remove (CSV header names or top-level JSON keys): direct identifiers
    /// no detector knows, such as names or patient numbers.
    #[arg(long, value_delimiter = ',')]
    drop: Vec<String>,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[command(flatten)]
    common: Common,
}

/// A usage or input problem: printed as is, exit code 2.
#[derive(Debug)]
struct BadInput(String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn policy(common: &Common) -> anyhow::Result<Arc<PolicyRuntime>> {
    let p = match (&common.config, &common.policy) {
        (Some(path), Some(name)) => {
            let config = crate::load(path).map_err(|_| BadInput(String::new()))?;
            let known: Vec<&str> = config.policies.keys().map(String::as_str).collect();
            config.policies.get(name).cloned().ok_or_else(|| {
                BadInput(format!(
                    "{}: no policy named \"{name}\" (known: {})",
                    path.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ))
            })?
        }
        _ => ContentPolicy {
            name: "default".to_owned(),
            min_confidence: rampart_config::defaults::MIN_CONFIDENCE,
            shadow: false,
            request: vec![("*".to_owned(), ContentAction::Redact)],
            response: Vec::new(),
            canary: false,
            hash_key: None,
            max_response_bytes: rampart_config::defaults::MAX_INSPECTED_RESPONSE_BYTES,
            injection: Some((ContentAction::Flag, None)),
            injection_review: None,
            injection_scope: rampart_config::model::INJECTION_SCOPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            fail_open: false,
        },
    };
    Ok(Arc::new(PolicyRuntime::build(&p).context("cannot build the policy")?))
}

fn format_of(path: &Path, format: Format) -> Format {
    match format {
        Format::Auto => match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl" | "ndjson") => Format::Jsonl,
            Some("csv") => Format::Csv,
            _ => Format::Text,
        },
        f => f,
    }
}

/// One input record and where it came from.
struct Record {
    line: usize,
    /// JSONL / text: the line. CSV: the fields.
    text: String,
    fields: Vec<String>,
}

/// Reads records in batches and hands each batch to `work`, in order.
fn for_each_batch(
    source: &Path,
    format: Format,
    mut work: impl FnMut(Vec<Record>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let name = source.display().to_string();
    let reader: Box<dyn std::io::Read> = if source.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(source).map_err(|e| BadInput(format!("cannot open {name}: {e}")))?)
    };
    let mut batch = Vec::with_capacity(BATCH);
    match format {
        Format::Csv => {
            let mut csv = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .from_reader(reader);
            for (i, rec) in csv.records().enumerate() {
                let rec = rec.map_err(|e| BadInput(format!("{name}:{}: not valid CSV: {e}", i + 1)))?;
                let line = rec
                    .position()
                    .map_or(i + 1, |p| usize::try_from(p.line()).unwrap_or(i + 1));
                batch.push(Record {
                    line,
                    text: String::new(),
                    fields: rec.iter().map(str::to_owned).collect(),
                });
                if batch.len() == BATCH {
                    work(std::mem::take(&mut batch))?;
                }
            }
        }
        _ => {
            for (i, line) in std::io::BufReader::new(reader).lines().enumerate() {
                let text = line.map_err(|e| BadInput(format!("{name}:{}: cannot read: {e}", i + 1)))?;
                batch.push(Record {
                    line: i + 1,
                    text,
                    fields: Vec::new(),
                });
                if batch.len() == BATCH {
                    work(std::mem::take(&mut batch))?;
                }
            }
        }
    }
    if !batch.is_empty() {
        work(batch)?;
    }
    Ok(())
}

/// Runs `f` over a batch on `jobs` threads; results in input order.
fn parallel<T: Send>(
    records: &[Record],
    jobs: usize,
    f: impl Fn(&Record) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let chunk = records.len().div_ceil(jobs.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = records
            .chunks(chunk)
            .map(|part| s.spawn(|| part.iter().map(&f).collect::<Result<Vec<T>, String>>()))
            .collect();
        let mut out = Vec::with_capacity(records.len());
        for h in handles {
            out.extend(h.join().map_err(|_| "a worker thread failed".to_owned())??);
        }
        Ok(out)
    })
}

fn walk(v: &mut Value, fields: &[String], top: bool, f: &mut dyn FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk(x, fields, false, f)),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                if !top || fields.is_empty() || fields.contains(k) {
                    walk(x, fields, false, f);
                }
            }
        }
        _ => {}
    }
}

fn inputs(common: &Common) -> Vec<PathBuf> {
    if common.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        common.files.clone()
    }
}

fn jobs(common: &Common) -> usize {
    common
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1)
}

fn finish(result: anyhow::Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match result {
        Err(e) if e.downcast_ref::<BadInput>().is_some() => {
            let msg = e.to_string();
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            Ok(ExitCode::from(2))
        }
        other => other,
    }
}

pub fn redact(args: RedactArgs) -> anyhow::Result<ExitCode> {
    finish(redact_inner(args))
}

fn redact_inner(args: RedactArgs) -> anyhow::Result<ExitCode> {
    let policy = policy(&args.common)?;
    if let Some((kind, _)) = policy
        .request_actions()
        .find(|(_, a)| *a == ContentAction::Pseudonymise)
    {
        return Err(BadInput(format!(
            "policy \"{}\" pseudonymises {kind}; files have no response to restore values from — use `hash` for consistent pseudonyms",
            policy.name
        ))
        .into());
    }
    let hash_key = policy.hash_key_for(args.tenant.as_deref());
    let jobs = jobs(&args.common);
    let (mut out, tmp): (Box<dyn Write>, Option<PathBuf>) = match &args.output {
        Some(path) => {
            let tmp = path.with_extension("rampart-partial");
            let f = std::fs::File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
            (Box::new(std::io::BufWriter::new(f)), Some(tmp))
        }
        None => (Box::new(std::io::BufWriter::new(std::io::stdout().lock())), None),
    };
    let mut counts: std::collections::BTreeMap<&'static str, u64> = std::collections::BTreeMap::new();
    let mut records = 0u64;
    let mut table_summary = None;
    let run = (|| -> anyhow::Result<()> {
        if args.k.is_some() || !args.drop.is_empty() {
            let (n, summary) = redact_table(&args, &policy, hash_key.as_ref(), jobs, &mut out, &mut counts)?;
            records = n;
            table_summary = summary;
            out.flush()?;
            return Ok(());
        }
        for source in inputs(&args.common) {
            let format = format_of(&source, args.common.format);
            let name = source.display().to_string();
            for_each_batch(&source, format, |batch| {
                let done = parallel(&batch, jobs, |r| {
                    let mut vault = rampart_detect::Vault::default();
                    let mut kinds = Vec::new();
                    let mut one = |s: &mut String| redact_value(&policy, hash_key.as_ref(), &mut vault, &mut kinds, s);
                    let line = match format {
                        Format::Jsonl => {
                            let mut v: Value = serde_json::from_str(&r.text)
                                .map_err(|e| format!("{name}:{}: not valid JSON: {e}", r.line))?;
                            walk(&mut v, &args.common.field, true, &mut one);
                            v.to_string()
                        }
                        Format::Csv => {
                            let mut fields = r.fields.clone();
                            fields.iter_mut().for_each(&mut one);
                            let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
                            w.write_record(&fields).map_err(|e| format!("{name}:{}: {e}", r.line))?;
                            let bytes = w.into_inner().map_err(|e| format!("{name}:{}: {e}", r.line))?;
                            String::from_utf8_lossy(&bytes)
                                .trim_end_matches(['\r', '\n'])
                                .to_owned()
                        }
                        _ => {
                            let mut s = r.text.clone();
                            one(&mut s);
                            s
                        }
                    };
                    Ok((line, kinds))
                })
                .map_err(BadInput)?;
                for (line, kinds) in done {
                    records += 1;
                    for k in kinds {
                        *counts.entry(k).or_default() += 1;
                    }
                    out.write_all(line.as_bytes())?;
                    out.write_all(b"\n")?;
                }
                Ok(())
            })?;
        }
        out.flush()?;
        Ok(())
    })();
    drop(out);
    match (run, tmp, &args.output) {
        (Ok(()), Some(tmp), Some(path)) => {
            std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
        }
        (Err(e), Some(tmp), _) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        (Err(e), None, _) => return Err(e),
        _ => {}
    }
    let mut summary = serde_json::json!({"records": records, "findings": counts});
    if let Some(k) = table_summary {
        summary["k_anonymity"] = k;
    }
    eprintln!("{summary}");
    Ok(ExitCode::SUCCESS)
}

/// Redacts one value with the policy's request rules; `block` cannot refuse a file, so
/// a blocked value is tagged instead.
fn redact_value(
    policy: &PolicyRuntime,
    hash_key: Option<&ring::hmac::Key>,
    vault: &mut rampart_detect::Vault,
    kinds: &mut Vec<&'static str>,
    s: &mut String,
) {
    let (text, found) = policy.apply_request_rules(s, hash_key, vault, Some(rampart_detect::Transform::Tag));
    kinds.extend(found.iter().map(|(f, _)| f.kind.name()));
    *s = text;
}

/// One row of a table read for `--k` / `--drop`.
struct TableRow {
    source: usize,
    line: usize,
    cells: Cells,
}

enum Cells {
    Csv(Vec<String>),
    Json(serde_json::Map<String, Value>),
}

/// `--quasi` as (name, kind); unknown kinds, repeats and overlaps with `--drop` refused.
fn quasi_columns(args: &RedactArgs) -> Result<Vec<(String, Option<kanon::Kind>)>, BadInput> {
    let mut out: Vec<(String, Option<kanon::Kind>)> = Vec::new();
    for q in &args.quasi {
        let (name, kind) = match q.rsplit_once(':') {
            Some((name, kind)) => {
                let k = kanon::Kind::parse(kind).ok_or_else(|| {
                    BadInput(format!(
                        "--quasi {q}: unknown kind \"{kind}\" (number, date, prefix, category)"
                    ))
                })?;
                (name, Some(k))
            }
            None => (q.as_str(), None),
        };
        if name.is_empty() || out.iter().any(|(n, _)| n == name) || args.drop.iter().any(|d| d == name) {
            return Err(BadInput(format!(
                "--quasi {q}: a column is named once, and not also in --drop"
            )));
        }
        out.push((name.to_owned(), kind));
    }
    if args.k == Some(0) {
        return Err(BadInput("--k must be at least 1".to_owned()));
    }
    if !(0.0..=1.0).contains(&args.max_suppress) {
        return Err(BadInput(format!(
            "--max-suppress {}: a share of the rows, from 0 to 1",
            args.max_suppress
        )));
    }
    Ok(out)
}

/// `redact --k / --drop`: reads every input as one table, redacts the other columns,
/// drops, generalises, writes. Returns the rows read and the k-anonymity summary.
fn redact_table(
    args: &RedactArgs,
    policy: &PolicyRuntime,
    hash_key: Option<&ring::hmac::Key>,
    jobs: usize,
    out: &mut dyn Write,
    counts: &mut std::collections::BTreeMap<&'static str, u64>,
) -> anyhow::Result<(u64, Option<Value>)> {
    let quasi = quasi_columns(args)?;
    let sources = inputs(&args.common);
    let names: Vec<String> = sources.iter().map(|s| s.display().to_string()).collect();
    let mut header: Option<(usize, Vec<String>)> = None;
    let mut rows: Vec<TableRow> = Vec::new();
    let skip = |key: &str| quasi.iter().any(|(q, _)| q == key) || args.drop.iter().any(|d| d == key);
    let mut table_format = None;
    for (si, source) in sources.iter().enumerate() {
        let format = format_of(source, args.common.format);
        let name = &names[si];
        if !matches!(format, Format::Csv | Format::Jsonl) || table_format.is_some_and(|f| f != format) {
            return Err(BadInput(format!(
                "{name}: --k and --drop read one table: CSV files with a header row, or JSON lines files (use --format)"
            ))
            .into());
        }
        table_format = Some(format);
        let mut have_header = false;
        for_each_batch(source, format, |mut batch| {
            if format == Format::Csv && !have_header {
                let mut first = batch.remove(0);
                // Spreadsheet exports start with a byte-order mark: not part of the name.
                if let Some(name) = first.fields.first_mut()
                    && let Some(rest) = name.strip_prefix('\u{feff}')
                {
                    *name = rest.to_owned();
                }
                match &header {
                    Some((from, h)) if *h != first.fields => {
                        return Err(BadInput(format!(
                            "{name}:{}: the header differs from {}'s",
                            first.line, names[*from]
                        ))
                        .into());
                    }
                    Some(_) => {}
                    None => {
                        for col in quasi.iter().map(|(q, _)| q).chain(&args.drop) {
                            let found = first.fields.iter().filter(|f| *f == col).count();
                            if found > 1 {
                                return Err(BadInput(format!(
                                    "{name}:{}: the header names \"{col}\" {found} times",
                                    first.line
                                ))
                                .into());
                            }
                            if found == 0 {
                                return Err(BadInput(format!(
                                    "{name}:{}: no column \"{col}\" (columns: {})",
                                    first.line,
                                    first.fields.join(", ")
                                ))
                                .into());
                            }
                        }
                        header = Some((si, first.fields));
                    }
                }
                have_header = true;
            }
            let width = header.as_ref().map_or(0, |(_, h)| h.len());
            let hdr: &[String] = header.as_ref().map_or(&[], |(_, h)| h.as_slice());
            let done = parallel(&batch, jobs, |r| {
                let mut vault = rampart_detect::Vault::default();
                let mut kinds = Vec::new();
                let cells = match format {
                    Format::Csv => {
                        if r.fields.len() != width {
                            return Err(format!(
                                "{name}:{}: {} fields, the header has {width}",
                                r.line,
                                r.fields.len()
                            ));
                        }
                        let mut fields = r.fields.clone();
                        for (f, col) in fields.iter_mut().zip(hdr) {
                            if !skip(col) {
                                redact_value(policy, hash_key, &mut vault, &mut kinds, f);
                            }
                        }
                        Cells::Csv(fields)
                    }
                    _ => {
                        let v: Value = serde_json::from_str(&r.text)
                            .map_err(|e| format!("{name}:{}: not valid JSON: {e}", r.line))?;
                        let Value::Object(mut map) = v else {
                            return Err(format!("{name}:{}: a JSON object per line is needed", r.line));
                        };
                        for d in &args.drop {
                            map.remove(d);
                        }
                        let fields = &args.common.field;
                        for (key, value) in map.iter_mut() {
                            if !skip(key) && (fields.is_empty() || fields.contains(key)) {
                                walk(value, &[], false, &mut |s: &mut String| {
                                    redact_value(policy, hash_key, &mut vault, &mut kinds, s);
                                });
                            }
                        }
                        Cells::Json(map)
                    }
                };
                Ok((cells, kinds))
            })
            .map_err(BadInput)?;
            for ((cells, kinds), r) in done.into_iter().zip(&batch) {
                for k in kinds {
                    *counts.entry(k).or_default() += 1;
                }
                rows.push(TableRow {
                    source: si,
                    line: r.line,
                    cells,
                });
            }
            Ok(())
        })?;
    }
    let at = |row: &TableRow| format!("{}:{}", names[row.source], row.line);
    // Each quasi-identifier's CSV column (JSON lines name it by key).
    let quasi_at: Vec<Option<usize>> = quasi
        .iter()
        .map(|(q, _)| header.as_ref().and_then(|(_, h)| h.iter().position(|c| c == q)))
        .collect();
    let outcome = match args.k {
        Some(k) => {
            let mut columns = Vec::with_capacity(quasi.len());
            for ((q, kind), col) in quasi.iter().zip(&quasi_at) {
                let mut values = Vec::with_capacity(rows.len());
                let mut seen = false;
                for row in &rows {
                    let v = match &row.cells {
                        Cells::Csv(f) => {
                            seen = true;
                            col.and_then(|i| f.get(i)).cloned().unwrap_or_default()
                        }
                        Cells::Json(m) => match m.get(q) {
                            None | Some(Value::Null) => String::new(),
                            Some(v) => {
                                seen = true;
                                match v {
                                    Value::String(s) => s.clone(),
                                    Value::Number(n) => n.to_string(),
                                    Value::Bool(b) => b.to_string(),
                                    _ => {
                                        return Err(BadInput(format!(
                                            "{}: {q}: an object or array cannot be a quasi-identifier",
                                            at(row)
                                        ))
                                        .into());
                                    }
                                }
                            }
                        },
                    };
                    values.push(v);
                }
                if !seen && !rows.is_empty() {
                    return Err(BadInput(format!("{}: no record has the key \"{q}\"", names.join(", "))).into());
                }
                columns.push(kanon::Column {
                    name: q.clone(),
                    kind: *kind,
                    values,
                });
            }
            #[allow(clippy::cast_possible_truncation, reason = "a share from 0 to 1 of the row count")]
            let budget = (args.max_suppress * rows.len() as f64).floor() as usize;
            let outcome = kanon::anonymise(&columns, k, budget).map_err(|e| match rows.get(e.row) {
                Some(row) if !e.column.is_empty() => BadInput(format!("{}: {}: {}", at(row), e.column, e.message)),
                _ => BadInput(format!("{}: {}", names.join(", "), e.message)),
            })?;
            Some(outcome)
        }
        None => None,
    };
    let keep_col: Vec<bool> = header
        .as_ref()
        .map(|(_, h)| h.iter().map(|c| !args.drop.contains(c)).collect())
        .unwrap_or_default();
    // A CSV line of the columns not dropped.
    let write_kept = |fields: &[String], out: &mut dyn Write| -> anyhow::Result<()> {
        let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(out);
        w.write_record(fields.iter().zip(&keep_col).filter(|(_, k)| **k).map(|(f, _)| f))?;
        w.flush()?;
        Ok(())
    };
    if let Some((_, h)) = &header {
        write_kept(h, out)?;
    }
    for (r, row) in rows.iter_mut().enumerate() {
        if outcome.as_ref().is_some_and(|o| !o.kept[r]) {
            continue;
        }
        match &mut row.cells {
            Cells::Csv(fields) => {
                if let Some(o) = &outcome {
                    for (c, i) in quasi_at.iter().enumerate() {
                        if let (Some(v), Some(i)) = (o.value(c, r), i) {
                            fields[*i] = v.to_owned();
                        }
                    }
                }
                write_kept(fields, out)?;
            }
            Cells::Json(map) => {
                if let Some(o) = &outcome {
                    for (c, (q, _)) in quasi.iter().enumerate() {
                        match o.value(c, r) {
                            Some("") | None => {}
                            Some(v) => {
                                map.insert(q.clone(), Value::String(v.to_owned()));
                            }
                        }
                    }
                }
                serde_json::to_writer(&mut *out, &*map)?;
                out.write_all(b"\n")?;
            }
        }
    }
    let summary = outcome.map(|o| {
        let columns: serde_json::Map<String, Value> = o
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    serde_json::json!({"kind": c.kind.name(), "level": c.level_name}),
                )
            })
            .collect();
        serde_json::json!({
            "k": args.k, "k_reached": o.k_reached, "rows_suppressed": o.suppressed,
            "rows_written": rows.len() - o.suppressed,
            "information_loss": (o.loss * 10_000.0).round() / 10_000.0,
            "columns": columns,
        })
    });
    Ok((rows.len() as u64, summary))
}

pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    finish(inspect_inner(args))
}

fn inspect_inner(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let policy = policy(&args.common)?;
    let jobs = jobs(&args.common);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for source in inputs(&args.common) {
        let format = format_of(&source, args.common.format);
        if format == Format::Csv {
            bail!(BadInput(
                "inspect reads JSON lines with a `text` field, or plain lines".to_owned()
            ));
        }
        let name = source.display().to_string();
        for_each_batch(&source, format, |batch| {
            let done = parallel(&batch, jobs, |r| {
                let text = match format {
                    Format::Jsonl => {
                        let v: Value = serde_json::from_str(&r.text)
                            .map_err(|e| format!("{name}:{}: not valid JSON: {e}", r.line))?;
                        match v.get("text") {
                            Some(Value::String(s)) => s.clone(),
                            _ => return Err(format!("{name}:{}: text: a string field `text` is required", r.line)),
                        }
                    }
                    _ => r.text.clone(),
                };
                let mut vault = rampart_detect::Vault::default();
                let (_, found) = policy.apply_request_rules(&text, None, &mut vault, None);
                let findings: Vec<Value> = found
                    .iter()
                    .map(|(f, a)| {
                        serde_json::json!({
                            "kind": f.kind.name(), "start": f.start, "end": f.end,
                            "confidence": (f64::from(f.confidence) * 1000.0).round() / 1000.0,
                            "action": format!("{a:?}").to_lowercase(),
                        })
                    })
                    .collect();
                let mut line = serde_json::json!({"source": name, "line": r.line, "findings": findings});
                if let Some(s) = policy.injection_score(&text) {
                    line["injection"] = serde_json::json!({
                        "score": (f64::from(s.score) * 1000.0).round() / 1000.0,
                        "family": s.family.map(|f| f.name()),
                    });
                }
                Ok(line.to_string())
            })
            .map_err(BadInput)?;
            for line in done {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
