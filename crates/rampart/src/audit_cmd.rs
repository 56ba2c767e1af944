//! `rampart audit keygen|verify`: create the checkpoint signing key, and verify a
//! trail offline — every record's hash and link, the sequence, every checkpoint's
//! signature (with the public key) and truncation — naming file, line and record.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Subcommand;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Create an Ed25519 checkpoint signing key: FILE (secret, for `audit.signing_key`)
    /// and FILE.pub (the public key, for `verify --pub`).
    Keygen {
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Verify a trail — a directory of segment files, or the store a config names
    /// (files or PostgreSQL): exit 0 intact, 1 problems found, 2 unreadable.
    Verify {
        /// The audit directory (`audit.dir`).
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        dir: Option<PathBuf>,
        /// Verify the trail this config's `[audit]` writes (PostgreSQL included).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Only these nodes (default: every node with segments in DIR).
        #[arg(long = "node")]
        nodes: Vec<String>,
        /// Public key file (`keygen`'s FILE.pub): checkpoint signatures are checked,
        /// and a trail without any checkpoint fails.
        #[arg(long = "pub")]
        public_key: Option<PathBuf>,
        /// The writer's `checkpoint_every`: a longer run of unsigned records (a gap
        /// or the tail) fails. Default: the config's value with --config, else the
        /// default `checkpoint_every`.
        #[arg(long)]
        max_unsigned: Option<u64>,
        /// The witness file (`audit.witness`): the trail must reach its checkpoint.
        /// With --config, the config's witness is used.
        #[arg(long)]
        witness: Option<PathBuf>,
    },
    /// Right of access: every exchange record about a data subject (as caller or as
    /// the subject of a captured payload), with the payloads decrypted, as JSON.
    Export {
        #[arg(long, short)]
        config: PathBuf,
        /// The subject's id as the gateway saw it (subject header, OpenAI `user`, or
        /// the caller's subject).
        #[arg(long)]
        subject: String,
    },
    /// Retention: deletes the oldest segments whose every record is past its class's
    /// retention and outside every legal hold; a signed anchor keeps the rest
    /// verifiable. Safe while the gateway runs (the newest segment is never touched).
    Purge {
        #[arg(long, short)]
        config: PathBuf,
        /// Say what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Judge expiry as of this time (RFC 3339) instead of now: for planning.
        #[arg(long)]
        now: Option<String>,
    },
    /// Export records for a SIEM: JSON lines as stored (re-verifiable), or mapped to
    /// Elastic Common Schema.
    Siem {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long, value_parser = ["jsonl", "ecs"], default_value = "jsonl")]
        format: String,
        /// Only records at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<String>,
        /// Only records before this time (RFC 3339).
        #[arg(long)]
        to: Option<String>,
    },
    /// A compliance report for a period: traffic and decisions, blocked attacks,
    /// administrative actions, controls mapped to the AI Act and GDPR, retention;
    /// writes report.md and report.html into --out.
    Report {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// Directory for report.md and report.html.
        #[arg(long)]
        out: PathBuf,
        /// Public key: the report states whether checkpoint signatures verify.
        #[arg(long = "pub")]
        public_key: Option<PathBuf>,
    },
    /// Right to erasure: destroys the subject's payload key (crypto-shredding). The
    /// records stay and the chain still verifies; their payloads become unreadable.
    Erase {
        #[arg(long, short)]
        config: PathBuf,
        #[arg(long)]
        subject: String,
    },
}

pub fn run(cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Keygen { out } => keygen(&out),
        AuditCommand::Export { config, subject } => export(&config, &subject),
        AuditCommand::Erase { config, subject } => erase(&config, &subject),
        AuditCommand::Purge { config, dry_run, now } => purge(&config, dry_run, now.as_deref()),
        AuditCommand::Siem {
            config,
            format,
            from,
            to,
        } => siem(&config, &format, from.as_deref(), to.as_deref()),
        AuditCommand::Report {
            config,
            from,
            to,
            out,
            public_key,
        } => report(&config, from.as_deref(), to.as_deref(), &out, public_key.as_deref()),
        AuditCommand::Verify {
            dir,
            config,
            nodes,
            public_key,
            max_unsigned,
            witness,
        } => {
            let key = match public_key.as_deref().map(read_public_key).transpose() {
                Ok(k) => k,
                Err(code) => return Ok(code),
            };
            let witness = match witness.as_deref().map(rampart_audit::read_witness).transpose() {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("--witness: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let limits = rampart_audit::Limits {
                max_unsigned: Some(max_unsigned.unwrap_or(rampart_config::defaults::AUDIT_CHECKPOINT_EVERY)),
                witness,
            };
            match (dir, config) {
                (Some(dir), _) => verify_dir(&dir, nodes, key.as_deref(), &limits),
                (None, Some(config)) => verify_config(&config, nodes, key.as_deref(), max_unsigned, limits.witness),
                (None, None) => Ok(ExitCode::from(2)),
            }
        }
    }
}

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    if out.exists() {
        bail!("{} exists; refusing to overwrite a signing key", out.display());
    }
    let (pkcs8, public) = rampart_audit::chain::generate_key().map_err(|_| anyhow::anyhow!("cannot generate a key"))?;
    write_private(out, &format!("{}\n", B64.encode(&pkcs8)))?;
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    std::fs::write(&pub_path, format!("{}\n", B64.encode(&public)))
        .with_context(|| format!("cannot write {}", pub_path.display()))?;
    println!(
        "signing key: {} (keep it secret)\npublic key:  {} (key id {})",
        out.display(),
        pub_path.display(),
        rampart_audit::chain::key_id(&public)
    );
    Ok(ExitCode::SUCCESS)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

fn read_public_key(p: &Path) -> Result<Vec<u8>, ExitCode> {
    let text = std::fs::read_to_string(p).map_err(|e| {
        eprintln!("{}: cannot read: {e}", p.display());
        ExitCode::from(2)
    })?;
    match B64.decode(text.trim()) {
        Ok(k) if k.len() == 32 => Ok(k),
        _ => {
            eprintln!("{}: not an Ed25519 public key (base64 of 32 bytes)", p.display());
            Err(ExitCode::from(2))
        }
    }
}

fn verify_config(
    path: &Path,
    nodes: Vec<String>,
    key: Option<&[u8]>,
    max_unsigned: Option<u64>,
    witness: Option<rampart_audit::Checkpoint>,
) -> anyhow::Result<ExitCode> {
    let config = match crate::load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(mut audit) = config.audit else {
        eprintln!("{}: no [audit] section", path.display());
        return Ok(ExitCode::from(2));
    };
    if let Some(n) = max_unsigned {
        audit.checkpoint_every = n;
    }
    let reports = rampart_audit_store::report::verify_store(&audit, nodes, key, witness.as_ref())?;
    if reports.is_empty() {
        eprintln!("{}: no audit records found", path.display());
        return Ok(ExitCode::from(2));
    }
    let mut bad = false;
    for (node, r) in &reports {
        bad |= !print_report(node, r, key.is_some());
    }
    Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Prints one node's report; returns whether it is intact.
fn print_report(node: &str, r: &rampart_audit::Report, signatures: bool) -> bool {
    println!(
        "node {node}: {} records, {} checkpoints{}",
        r.records,
        r.checkpoints,
        if signatures {
            " (signatures checked)"
        } else {
            " (signatures NOT checked: pass --pub)"
        }
    );
    match r.last_checkpoint {
        Some(c) => println!(
            "  last checkpoint covers record {c}; {} records after it are not yet signed{}",
            r.unsealed(),
            r.max_unsigned
                .map(|m| format!(" (the writer leaves at most {m})"))
                .unwrap_or_default()
        ),
        None => println!("  no checkpoint yet: none of the {} records is signed", r.records),
    }
    if let Some(p) = r.purged_through {
        println!("  records 0..={p} were deleted by retention (signed anchor); the chain continues from there");
    }
    for note in &r.notes {
        println!("  note: {note}");
    }
    for p in &r.problems {
        println!("  PROBLEM: {p}");
    }
    if r.ok() {
        println!("  ok: the chain is intact");
    }
    r.ok()
}

fn verify_dir(
    dir: &Path,
    nodes: Vec<String>,
    key: Option<&[u8]>,
    limits: &rampart_audit::Limits,
) -> anyhow::Result<ExitCode> {
    if !dir.is_dir() {
        eprintln!("{}: not a directory", dir.display());
        return Ok(ExitCode::from(2));
    }
    let nodes = if nodes.is_empty() {
        rampart_audit::store::nodes(dir).with_context(|| format!("cannot list {}", dir.display()))?
    } else {
        nodes
    };
    if nodes.is_empty() {
        eprintln!("{}: no audit segments found", dir.display());
        return Ok(ExitCode::from(2));
    }
    let mut bad = false;
    for node in &nodes {
        let limits = rampart_audit::Limits {
            max_unsigned: limits.max_unsigned,
            witness: limits.witness.clone().filter(|w| w.node == *node),
        };
        let r = rampart_audit::verify_dir_with(dir, node, key, limits)
            .with_context(|| format!("cannot read the trail of node {node}"))?;
        bad |= !print_report(node, &r, key.is_some());
    }
    Ok(if bad { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The `[audit]` section of a config, or the exit code after saying what is wrong.
fn audit_section(path: &Path) -> Result<rampart_config::Audit, ExitCode> {
    let config = crate::load(path)?;
    config.audit.ok_or_else(|| {
        eprintln!("{}: no [audit] section", path.display());
        ExitCode::from(2)
    })
}

fn subject_keys(audit: &rampart_config::Audit, path: &Path) -> Result<SubjectKeys, ExitCode> {
    let Some(master) = &audit.master_key else {
        eprintln!(
            "{}: audit.master_key is not set: no payloads were captured",
            path.display()
        );
        return Err(ExitCode::from(2));
    };
    rampart_gateway::audit::subject_keys(audit, master.expose()).map_err(|e| {
        eprintln!("{}: audit.master_key: {e}", path.display());
        ExitCode::from(2)
    })
}

use rampart_audit_store::payload::SubjectKeys;

fn erase(path: &Path, subject: &str) -> anyhow::Result<ExitCode> {
    let audit = match audit_section(path) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let keys = match subject_keys(&audit, path) {
        Ok(k) => k,
        Err(code) => return Ok(code),
    };
    let pseudonym = rampart_gateway::audit::pseudonym_for(&audit, subject);
    let existed = keys.erase(&pseudonym).context("cannot erase the subject key")?;
    if existed {
        println!(
            "erased: the payload key of subject pseudonym {pseudonym} is destroyed; its payloads can no longer be read"
        );
    } else {
        println!(
            "nothing to erase: no payload key for subject pseudonym {pseudonym} (none captured, or erased before)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn export(path: &Path, subject: &str) -> anyhow::Result<ExitCode> {
    let audit = match audit_section(path) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let keys = audit.master_key.is_some().then(|| subject_keys(&audit, path));
    let keys = match keys.transpose() {
        Ok(k) => k,
        Err(code) => return Ok(code),
    };
    let pseudonym = rampart_gateway::audit::pseudonym_for(&audit, subject);
    let (out, problem) = rampart_audit_store::report::subject_records(&audit, keys.as_ref(), &pseudonym)?;
    let doc = serde_json::json!({"subject": subject, "pseudonym": pseudonym, "records": out});
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if let Some(p) = problem {
        eprintln!("warning: some payloads could not be read: {p}");
    }
    Ok(ExitCode::SUCCESS)
}

fn purge(path: &Path, dry_run: bool, now: Option<&str>) -> anyhow::Result<ExitCode> {
    use rampart_audit::retention::{Fate, purge_dir};
    let audit = match audit_section(path) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let now = match now {
        None => rampart_identity::time::now(),
        Some(t) => match rampart_identity::time::parse(t) {
            Some(n) => n,
            None => {
                eprintln!("--now: `{t}` is not an RFC 3339 UTC time like 2027-06-01T00:00:00Z");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let key = ring_key(&audit)?;
    let retention = &audit.retention;
    let fate = |v: &serde_json::Value| {
        let Some(t) = v["time"].as_str().and_then(rampart_identity::time::parse) else {
            return Fate::Keep("its time cannot be read".into());
        };
        if let Some(h) = retention.held(t) {
            return Fate::Keep(format!("legal hold ({})", h.reason));
        }
        Fate::After(t.saturating_add(retention.for_class(v["type"].as_str().unwrap_or(""))))
    };
    let stamp = rampart_identity::time::format(now);
    let nodes = rampart_audit_store::report::nodes(&audit)?;
    let pg = match &audit.postgres {
        Some(url) => Some((
            tokio::runtime::Builder::new_current_thread().enable_all().build()?,
            url.expose(),
        )),
        None => None,
    };
    for node in nodes {
        let p = match &pg {
            Some((rt, url)) => rt.block_on(rampart_audit_store::pg::purge(
                url, &node, fate, now, &key, &stamp, dry_run,
            )),
            None => purge_dir(&audit.dir, &node, fate, now, &key, &stamp, dry_run),
        }
        .with_context(|| format!("cannot purge the trail of node {node}"))?;
        println!(
            "node {node}: {} {} records{}{}",
            if dry_run { "would delete" } else { "deleted" },
            p.records,
            if pg.is_some() {
                String::new()
            } else {
                format!(" in {} segment files", p.segments.len())
            },
            p.through.map(|s| format!(", through record {s}")).unwrap_or_default()
        );
        if let Some(why) = p.stopped {
            println!("  kept from there on: {why}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ring_key(audit: &rampart_config::Audit) -> anyhow::Result<rampart_audit::chain::SigningKey> {
    rampart_audit::chain::signing_key(audit.signing_key.expose()).context("audit.signing_key is not an Ed25519 key")
}

/// `--from` / `--to` as a window, or the exit code after naming the bad one.
fn window(from: Option<&str>, to: Option<&str>) -> Result<Window, ExitCode> {
    let parse = |name: &str, v: Option<&str>| match v {
        None => Ok(None),
        Some(t) => rampart_identity::time::parse(t).map(Some).ok_or_else(|| {
            eprintln!("--{name}: `{t}` is not an RFC 3339 UTC time like 2026-12-01T00:00:00Z");
            ExitCode::from(2)
        }),
    };
    Ok(Window {
        from: parse("from", from)?,
        to: parse("to", to)?,
    })
}

use rampart_audit_store::report::{NodeCheck, Summary, Window};

fn siem(path: &Path, format: &str, from: Option<&str>, to: Option<&str>) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let audit = match audit_section(path) {
        Ok(a) => a,
        Err(code) => return Ok(code),
    };
    let w = match window(from, to) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let ecs = format == "ecs";
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = None;
    rampart_audit_store::report::for_each_entry(&audit, |node, e| {
        if failed.is_none() && w.contains(&e.value()) {
            let line = rampart_audit_store::report::siem_line(node, &e, ecs);
            if let Err(err) = writeln!(out, "{line}") {
                failed = Some(err);
            }
        }
    })?;
    out.flush()?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    Ok(ExitCode::SUCCESS)
}

fn report(
    path: &Path,
    from: Option<&str>,
    to: Option<&str>,
    out: &Path,
    public_key: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let config = match crate::load(path) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let Some(audit) = config.audit.clone() else {
        eprintln!("{}: no [audit] section", path.display());
        return Ok(ExitCode::from(2));
    };
    let w = match window(from, to) {
        Ok(w) => w,
        Err(code) => return Ok(code),
    };
    let key = match public_key.map(read_public_key).transpose() {
        Ok(k) => k,
        Err(code) => return Ok(code),
    };
    let mut summary = Summary::default();
    rampart_audit_store::report::for_each_entry(&audit, |node, e| summary.add(node, &e, &w))?;
    // The report states whether each chain it summarises is intact.
    let mut checks = Vec::new();
    let reports = rampart_audit_store::report::verify_store(&audit, Vec::new(), key.as_deref(), None)?;
    for (node, r) in reports {
        checks.push(NodeCheck {
            ok: r.ok(),
            records: r.records,
            detail: match (r.ok(), key.is_some()) {
                (true, true) => format!("hashes, links and {} checkpoint signatures verified", r.checkpoints),
                (true, false) => "hashes and links verified; signatures not checked (no public key given)".into(),
                (false, _) => r
                    .problems
                    .iter()
                    .take(3)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            },
            node,
        });
    }
    let period = (from.unwrap_or("the first record"), to.unwrap_or("the last record"));
    let now = rampart_identity::time::format(rampart_identity::time::now());
    let md = rampart_audit_store::report::report_markdown(&config, &summary, &checks, period, &now);
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(out.join("report.md"), &md).context("cannot write report.md")?;
    std::fs::write(
        out.join("report.html"),
        rampart_audit_store::report::markdown_to_html(&md),
    )
    .context("cannot write report.html")?;
    println!(
        "wrote {} and {}",
        out.join("report.md").display(),
        out.join("report.html").display()
    );
    Ok(if checks.iter().all(|c| c.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
