//! Reading a configured audit store back out: every entry of every node (files or
//! PostgreSQL), the SIEM export (JSON lines, or Elastic Common Schema), and the
//! compliance report (Markdown and HTML) that summarises a period for an auditor.
//!
//! Nothing here writes to the trail; the report verifies the chains it summarises.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use rampart_audit::Checkpoint;
use rampart_audit::chain::Entry;
use rampart_config::{Audit, Config, ContentAction};
use serde_json::{Value, json};

/// A runtime for the blocking commands that read the PostgreSQL store.
fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// The node ids with records in the store `audit` names.
pub fn nodes(audit: &Audit) -> io::Result<Vec<String>> {
    match &audit.postgres {
        Some(url) => runtime()?.block_on(crate::pg::nodes(url.expose())),
        None => Ok(rampart_audit::store::nodes(&audit.dir).unwrap_or_default()),
    }
}

/// Verifies `nodes` (every node when empty) in the store `audit` names.
/// The limits a trail written under `audit` must meet: its unsigned window, and, for
/// `node`, the witness when one is configured and names that node.
/// `witness` overrides the configured witness file.
pub fn limits(audit: &Audit, node: &str, witness: Option<&Checkpoint>) -> io::Result<rampart_audit::Limits> {
    let witness = match (witness, &audit.witness) {
        (Some(w), _) => Some(w.clone()),
        (None, Some(path)) if path.exists() => Some(rampart_audit::read_witness(path)?),
        _ => None,
    }
    .filter(|w| w.node == node);
    Ok(rampart_audit::Limits {
        max_unsigned: Some(audit.checkpoint_every),
        witness,
    })
}

pub fn verify_store(
    audit: &Audit,
    nodes: Vec<String>,
    public_key: Option<&[u8]>,
    witness: Option<&Checkpoint>,
) -> io::Result<Vec<(String, rampart_audit::Report)>> {
    let nodes = if nodes.is_empty() { self::nodes(audit)? } else { nodes };
    let rt = match &audit.postgres {
        Some(_) => Some(runtime()?),
        None => None,
    };
    nodes
        .into_iter()
        .map(|node| {
            let limits = limits(audit, &node, witness)?;
            let report = match (&rt, &audit.postgres) {
                (Some(rt), Some(url)) => rt.block_on(crate::pg::verify(url.expose(), &node, public_key, limits))?,
                _ => rampart_audit::verify_dir_with(&audit.dir, &node, public_key, limits)?,
            };
            Ok((node, report))
        })
        .collect()
}

/// Calls `f(node, entry)` for every record entry in the store `audit` names, node by
/// node, in chain order, without holding a whole trail in memory.
pub fn for_each_entry(audit: &Audit, mut f: impl FnMut(&str, Entry)) -> io::Result<()> {
    match &audit.postgres {
        Some(url) => {
            let rt = runtime()?;
            for node in rt.block_on(crate::pg::nodes(url.expose()))? {
                rt.block_on(crate::pg::for_each_entry(url.expose(), &node, |e| f(&node, e)))?;
            }
        }
        None => {
            for node in rampart_audit::store::nodes(&audit.dir).unwrap_or_default() {
                rampart_audit::store::for_each_entry(&audit.dir, &node, |e| f(&node, e))?;
            }
        }
    }
    Ok(())
}

/// A time window, Unix seconds, either end open.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl Window {
    pub fn contains(&self, record: &Value) -> bool {
        let Some(t) = record["time"].as_str().and_then(rampart_identity::time::parse) else {
            return false;
        };
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t < to)
    }
}

/// One SIEM line: the entry as stored (`jsonl`, re-verifiable) or mapped to Elastic
/// Common Schema field names (`ecs`).
pub fn siem_line(node: &str, entry: &Entry, ecs: bool) -> String {
    if !ecs {
        return entry.line();
    }
    let r = entry.value();
    let kind = r["type"].as_str().unwrap_or("");
    let mut doc = json!({
        "@timestamp": r["time"],
        "ecs": {"version": "8.11.0"},
        "event": {"kind": "event", "dataset": "rampart.audit", "module": "rampart"},
        "service": {"node": {"name": node}, "type": "rampart"},
        "rampart": {"audit": {"type": kind, "seq": entry.seq, "hash": entry.hash}},
    });
    match kind {
        "exchange" => {
            let failure = r["status"].as_u64().is_none_or(|s| s >= 500) || r["outcome"] != "complete";
            doc["event"]["category"] = json!(["web"]);
            doc["event"]["type"] = json!(["access"]);
            doc["event"]["action"] = r["decision"].clone();
            doc["event"]["outcome"] = json!(if failure { "failure" } else { "success" });
            doc["event"]["duration"] = json!(r["latency_us"]["total"].as_u64().map(|us| us * 1000));
            doc["event"]["start"] = r["time"].clone();
            doc["event"]["end"] = r["end"].clone();
            doc["http"] = json!({
                "request": {"id": r["request_id"], "method": r["method"], "body": {"bytes": r["request"]["bytes"]}},
                "response": {"status_code": r["status"], "body": {"bytes": r["response"]["bytes"]}},
            });
            doc["url"] = json!({"path": r["path"]});
            doc["client"] = json!({"address": r["client_ip"]});
            doc["user"] = json!({"id": r["principal"]["id"]});
            doc["organization"] = json!({"id": r["principal"]["tenant"]});
            doc["rampart"]["route"] = r["route"].clone();
            doc["rampart"]["model"] = r["model"]["name"].clone();
            doc["rampart"]["policy"] = r["policy"].clone();
            doc["rampart"]["findings"] = r["findings"].clone();
            doc["rampart"]["error_code"] = r["error"].clone();
            doc["rampart"]["credential"] = r["principal"]["credential"].clone();
            doc["rampart"]["key_id"] = r["principal"]["key_id"].clone();
            doc["rampart"]["config_sha256"] = r["config_sha256"].clone();
            if r["payload"].is_object() {
                doc["rampart"]["payload_captured"] = json!(true);
            }
        }
        "admin" => {
            doc["event"]["category"] = json!(["configuration"]);
            doc["event"]["type"] = json!(["change"]);
            doc["event"]["action"] = r["action"].clone();
            doc["event"]["outcome"] = json!(if r["result"] == "success" { "success" } else { "failure" });
            doc["event"]["reason"] = r["detail"].clone();
            doc["rampart"]["via"] = r["via"].clone();
            doc["rampart"]["config_sha256"] = r["config_sha256"].clone();
        }
        _ => {
            doc["event"]["category"] = json!(["process"]);
            doc["event"]["type"] = json!([if r["event"] == "stop" { "end" } else { "start" }]);
            doc["event"]["action"] = r["event"].clone();
            doc["event"]["reason"] = r["detail"].clone();
        }
    }
    strip_nulls(&mut doc);
    doc.to_string()
}

fn strip_nulls(v: &mut Value) {
    if let Value::Object(map) = v {
        map.retain(|_, x| !x.is_null());
        for x in map.values_mut() {
            strip_nulls(x);
        }
        map.retain(|_, x| !matches!(x, Value::Object(m) if m.is_empty()));
    }
}

/// Counts per route and model.
#[derive(Debug, Default)]
struct Traffic {
    requests: u64,
    decisions: BTreeMap<String, u64>,
}

/// One administrative record as the report shows it.
#[derive(Debug, Default, Clone)]
struct AdminLine {
    time: String,
    action: String,
    via: String,
    result: String,
    actor: String,
    target: String,
    detail: String,
}

/// What the report says, gathered in one pass over the store.
#[derive(Debug, Default)]
pub struct Summary {
    traffic: BTreeMap<(String, String), Traffic>,
    blocked: BTreeMap<String, u64>,
    findings: BTreeMap<String, u64>,
    admin: Vec<AdminLine>,
    lifecycle: Vec<(String, String, String)>,
    nodes: BTreeMap<String, (u64, Option<String>, Option<String>)>,
    exchanges: u64,
}

impl Summary {
    pub fn add(&mut self, node: &str, entry: &Entry, window: &Window) {
        let r = entry.value();
        let time = r["time"].as_str().unwrap_or("").to_owned();
        let n = self.nodes.entry(node.to_owned()).or_default();
        n.0 += 1;
        if n.1.is_none() {
            n.1 = Some(time.clone());
        }
        n.2 = Some(time.clone());
        if !window.contains(&r) {
            return;
        }
        match r["type"].as_str().unwrap_or("") {
            "exchange" => {
                self.exchanges += 1;
                let route = r["route"].as_str().unwrap_or("(no route)").to_owned();
                let model = r["model"]["name"].as_str().unwrap_or("-").to_owned();
                let t = self.traffic.entry((route, model)).or_default();
                t.requests += 1;
                *t.decisions
                    .entry(r["decision"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
                let blocked = r["decision"] == "block";
                if let Some(f) = r["findings"].as_object() {
                    for (kind, count) in f {
                        let c = count.as_u64().unwrap_or(0);
                        *self.findings.entry(kind.clone()).or_default() += c;
                        if blocked {
                            *self.blocked.entry(kind.clone()).or_default() += c;
                        }
                    }
                }
                if blocked && r["findings"].as_object().is_none_or(serde_json::Map::is_empty) {
                    let code = r["error"].as_str().unwrap_or("blocked").to_owned();
                    *self.blocked.entry(format!("refused: {code}")).or_default() += 1;
                }
            }
            "admin" => {
                let s = |k: &str| r[k].as_str().unwrap_or("").to_owned();
                self.admin.push(AdminLine {
                    time,
                    action: s("action"),
                    via: s("via"),
                    result: s("result"),
                    actor: s("actor"),
                    target: s("target"),
                    detail: s("detail"),
                });
            }
            "lifecycle" => self
                .lifecycle
                .push((time, node.to_owned(), r["event"].as_str().unwrap_or("").to_owned())),
            _ => {}
        }
    }
}

/// One control: what it is, whether the config turns it on, and what it evidences.
struct Control {
    name: &'static str,
    enabled: bool,
    detail: String,
    articles: &'static str,
}

fn controls(config: &Config) -> Vec<Control> {
    let routes = config.routes.len();
    let closed = config.routes.iter().filter(|r| !r.public).count();
    let tls = config.listeners.iter().filter(|l| l.tls.is_some()).count();
    let limited = config.rate_limits.len() + config.concurrency_limits.len() + config.quotas.len();
    let validated = config
        .routes
        .iter()
        .filter(|r| r.validation.is_some() || r.json_schema.is_some())
        .count();
    let with_policy = config.routes.iter().filter(|r| r.policy.is_some()).count();
    let reviewing = config
        .policies
        .values()
        .filter(|p| {
            p.injection_review.is_some()
                || p.request
                    .iter()
                    .chain(&p.response)
                    .any(|(_, a)| matches!(a, ContentAction::Hold | ContentAction::Review))
                || p.injection
                    .is_some_and(|(a, _)| matches!(a, ContentAction::Hold | ContentAction::Review))
        })
        .count();
    let pseudonymising = config.policies.values().any(|p| {
        p.request.iter().any(|(_, a)| {
            matches!(
                a,
                ContentAction::Pseudonymise | ContentAction::Redact | ContentAction::Mask | ContentAction::Hash
            )
        })
    });
    let injection = config.policies.values().filter(|p| p.injection.is_some()).count();
    let canary = config.policies.values().filter(|p| p.canary).count();
    let captured = config.routes.iter().filter(|r| r.capture_payloads).count();
    let audit = config.audit.as_ref();
    vec![
        Control {
            name: "Tamper-evident audit trail",
            enabled: audit.is_some(),
            detail: audit.map_or("off".into(), |a| {
                format!(
                    "one hash-chained record per exchange, signed checkpoints every {} s, {} durability, store: {}",
                    a.checkpoint_interval.as_secs(),
                    match a.durability {
                        rampart_config::Durability::Sync => "sync",
                        rampart_config::Durability::Batch => "batch",
                    },
                    if a.postgres.is_some() {
                        "PostgreSQL"
                    } else {
                        "segment files"
                    }
                )
            }),
            articles: "AI Act Art. 12 (record-keeping), Art. 19 (logs kept); GDPR Art. 30 (records of processing)",
        },
        Control {
            name: "Authentication and access control",
            enabled: closed > 0,
            detail: format!("{closed} of {routes} routes need a credential; deny-by-default roles"),
            articles: "AI Act Art. 15 (cybersecurity); GDPR Art. 32 (security of processing)",
        },
        Control {
            name: "Encryption in transit",
            enabled: tls > 0,
            detail: format!("{tls} of {} listeners terminate TLS", config.listeners.len()),
            articles: "GDPR Art. 32",
        },
        Control {
            name: "Abuse limits",
            enabled: limited > 0 || !config.token_limits.is_empty(),
            detail: format!("{limited} request limits, {} token budgets", config.token_limits.len()),
            articles: "AI Act Art. 15 (robustness against misuse)",
        },
        Control {
            name: "Input validation",
            enabled: validated > 0,
            detail: format!("{validated} of {routes} routes validate their payloads"),
            articles: "AI Act Art. 15 (accuracy, robustness)",
        },
        Control {
            name: "PII minimisation (redact / pseudonymise before the model)",
            enabled: pseudonymising,
            detail: format!("{with_policy} routes have a content policy"),
            articles: "GDPR Art. 25 (data protection by design), Art. 5(1)(c) (minimisation)",
        },
        Control {
            name: "Prompt-injection and system-prompt-leak defences",
            enabled: injection + canary > 0,
            detail: format!("{injection} policies score injection, {canary} add canaries"),
            articles: "AI Act Art. 15 (resilience against manipulation)",
        },
        Control {
            name: "Pseudonymised audit records",
            enabled: audit.is_some(),
            detail: audit.map_or("off".into(), |a| {
                format!("principals as keyed pseudonyms; client addresses: {:?}", a.client_ip).to_lowercase()
            }),
            articles: "GDPR Art. 25, Art. 32(1)(a) (pseudonymisation)",
        },
        Control {
            name: "Payload capture with per-subject encryption (erasable)",
            enabled: captured > 0,
            detail: format!("{captured} routes capture payloads, AES-256-GCM per data subject"),
            articles: "GDPR Art. 17 (erasure by crypto-shredding), Art. 15 (access: export), Art. 32",
        },
        Control {
            name: "Human oversight (stop switch, review queue)",
            enabled: true,
            detail: format!(
                "stop switch on every route, model and tenant (state kept in {}); {} policies send findings to reviewers",
                match &config.oversight.store {
                    rampart_config::OversightStore::Memory => "memory: lost at restart",
                    rampart_config::OversightStore::File(_) => "a journal file",
                    rampart_config::OversightStore::Postgres(_) => "PostgreSQL, shared by every node",
                },
                reviewing
            ),
            articles: "AI Act Art. 14 (human oversight), Art. 73 (serious incidents)",
        },
    ]
}

/// The chain check of each node, as the report states it.
#[derive(Debug)]
pub struct NodeCheck {
    pub node: String,
    pub ok: bool,
    pub records: u64,
    pub detail: String,
}

/// Writes the report as Markdown; `html` renders the same content as a page.
pub fn report_markdown(
    config: &Config,
    summary: &Summary,
    checks: &[NodeCheck],
    period: (&str, &str),
    generated: &str,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Rampart compliance report\n");
    let _ = writeln!(
        md,
        "Period: {} to {}. Generated {generated} from the audit trail by `rampart audit report`.\n",
        period.0, period.1
    );
    let _ = writeln!(md, "## Integrity of the trail\n");
    let _ = writeln!(md, "| node | records | chain | detail |\n|---|---|---|---|");
    for c in checks {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.node,
            c.records,
            if c.ok { "intact" } else { "PROBLEMS" },
            c.detail
        );
    }
    let _ = writeln!(md, "\n## Traffic and decisions per route and model\n");
    let _ = writeln!(
        md,
        "{} exchanges in the period.\n\n| route | model | requests | allow | flag | redact | block | error |\n|---|---|---|---|---|---|---|---|",
        summary.exchanges
    );
    for ((route, model), t) in &summary.traffic {
        let d = |k: &str| t.decisions.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            md,
            "| {route} | {model} | {} | {} | {} | {} | {} | {} |",
            t.requests,
            d("allow"),
            d("flag"),
            d("redact"),
            d("block"),
            d("error")
        );
    }
    kind_counts(&mut md, "Blocked requests by kind", &summary.blocked);
    kind_counts(&mut md, "Findings by kind (all decisions)", &summary.findings);
    oversight_sections(&mut md, summary, generated);
    let _ = writeln!(md, "\n## Administrative actions\n");
    if summary.admin.is_empty() {
        let _ = writeln!(md, "None in the period.");
    } else {
        let _ = writeln!(
            md,
            "| time | action | via | by | on | result |\n|---|---|---|---|---|---|"
        );
        for a in &summary.admin {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                a.time,
                a.action,
                a.via,
                escape(&a.actor),
                escape(&a.target),
                a.result
            );
        }
    }
    let _ = writeln!(md, "\n## Starts and stops\n");
    let _ = writeln!(md, "| time | node | event |\n|---|---|---|");
    for (t, n, e) in &summary.lifecycle {
        let _ = writeln!(md, "| {t} | {n} | {e} |");
    }
    let _ = writeln!(md, "\n## Controls in force (from the configuration)\n");
    let _ = writeln!(md, "| control | enabled | detail | evidence for |\n|---|---|---|---|");
    for c in controls(config) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            c.name,
            if c.enabled { "yes" } else { "no" },
            c.detail,
            c.articles
        );
    }
    let _ = writeln!(md, "\n## Retention\n");
    if let Some(a) = &config.audit {
        let days = |s: i64| s / 86_400;
        let _ = writeln!(
            md,
            "Exchange records are kept {} days, administrative {} days, lifecycle {} days.",
            days(a.retention.exchange),
            days(a.retention.admin),
            days(a.retention.lifecycle)
        );
        if a.retention.legal_holds.is_empty() {
            let _ = writeln!(md, "No legal hold is in force.");
        } else {
            for h in &a.retention.legal_holds {
                let _ = writeln!(
                    md,
                    "Legal hold {} to {}: {}.",
                    rampart_identity::time::format(h.from),
                    rampart_identity::time::format(h.to),
                    h.reason
                );
            }
        }
        let _ = writeln!(
            md,
            "\n| node | records held | oldest record | newest record |\n|---|---|---|---|"
        );
        for (node, (n, first, last)) in &summary.nodes {
            let _ = writeln!(
                md,
                "| {node} | {n} | {} | {} |",
                first.as_deref().unwrap_or("-"),
                last.as_deref().unwrap_or("-")
            );
        }
    }
    md
}

/// Stop switches, review decisions and serious incidents (AI Act Art. 14 and 73), from
/// the administrative records.
fn oversight_sections(md: &mut String, summary: &Summary, generated: &str) {
    let of = |actions: &[&str]| -> Vec<&AdminLine> {
        summary
            .admin
            .iter()
            .filter(|a| actions.contains(&a.action.as_str()))
            .collect()
    };
    let _ = writeln!(md, "\n## Human oversight: stop switches\n");
    let stops = of(&["stop", "resume"]);
    if stops.is_empty() {
        let _ = writeln!(md, "No stop switch was used in the period.");
    } else {
        let _ = writeln!(md, "| time | action | scope | by | why |\n|---|---|---|---|---|");
        for a in stops {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                a.time,
                a.action,
                escape(&a.target),
                escape(&a.actor),
                escape(&a.detail)
            );
        }
    }
    let _ = writeln!(md, "\n## Human oversight: review decisions\n");
    let reviews = of(&["review_decision"]);
    if reviews.is_empty() {
        let _ = writeln!(md, "No review decision in the period.");
    } else {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for a in &reviews {
            // target: `review:<id> <decision> (<mode>)`
            let decision = a.target.split(' ').nth(1).unwrap_or("?").to_owned();
            *counts.entry(decision).or_default() += 1;
        }
        let _ = writeln!(md, "| decision | count |\n|---|---|");
        for (d, n) in &counts {
            let _ = writeln!(md, "| {d} | {n} |");
        }
        let _ = writeln!(md, "\n| time | item | reviewer | reason |\n|---|---|---|---|");
        for a in reviews {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                a.time,
                escape(&a.target),
                escape(&a.actor),
                escape(&a.detail)
            );
        }
    }
    let _ = writeln!(md, "\n## Serious incidents (AI Act Art. 73)\n");
    // The latest record of each incident says where it stands.
    let mut incidents: BTreeMap<&str, &AdminLine> = BTreeMap::new();
    for a in of(&["incident_opened", "incident_reported", "incident_closed"]) {
        incidents.insert(&a.target, a);
    }
    if incidents.is_empty() {
        let _ = writeln!(md, "No serious incident was opened in the period.");
        return;
    }
    let now = rampart_identity::time::parse(generated).unwrap_or(0);
    let _ = writeln!(
        md,
        "| incident | title | severity | aware | report due | status |\n|---|---|---|---|---|---|"
    );
    for (id, a) in incidents {
        let mut parts = a.detail.split("; ");
        let title = parts.next().unwrap_or("");
        let fields: BTreeMap<&str, &str> = parts.filter_map(|p| p.split_once('=')).collect();
        let due = fields.get("due").copied().unwrap_or("");
        let status = match (fields.get("reported"), fields.get("closed")) {
            (Some(r), _) if *r <= due => format!("reported {r} (on time)"),
            (Some(r), _) => format!("reported {r} (LATE)"),
            (None, Some(c)) => format!("closed {c} without a report"),
            (None, None) => match rampart_identity::time::parse(due) {
                Some(d) if d >= now => format!("open: {} days left", (d - now + 86_399) / 86_400),
                Some(_) => "OVERDUE: report not filed".to_owned(),
                None => "open".to_owned(),
            },
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {due} | {status} |",
            escape(id),
            escape(title),
            fields.get("severity").copied().unwrap_or(""),
            fields.get("aware").copied().unwrap_or("")
        );
    }
}

/// A section with a kind → count table, or "None in the period."
fn kind_counts(md: &mut String, title: &str, counts: &BTreeMap<String, u64>) {
    let _ = writeln!(md, "\n## {title}\n");
    if counts.is_empty() {
        let _ = writeln!(md, "None in the period.");
    } else {
        let _ = writeln!(md, "| kind | count |\n|---|---|");
        for (k, n) in counts {
            let _ = writeln!(md, "| {k} | {n} |");
        }
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The Markdown report as a self-contained HTML page (headings, paragraphs, tables).
pub fn markdown_to_html(md: &str) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Rampart compliance report</title>\n<style>body{font-family:system-ui,sans-serif;max-width:70em;margin:2em auto;padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}h1{border-bottom:2px solid #333}</style></head><body>\n",
    );
    let mut in_table = false;
    let mut header_done = false;
    for line in md.lines() {
        let t = line.trim();
        if t.starts_with('|') {
            let cells: Vec<&str> = t.trim_matches('|').split('|').map(str::trim).collect();
            if cells.iter().all(|c| c.chars().all(|ch| ch == '-')) {
                continue;
            }
            if !in_table {
                html.push_str("<table>\n");
                in_table = true;
                header_done = false;
            }
            let tag = if header_done { "td" } else { "th" };
            html.push_str("<tr>");
            for c in cells {
                let _ = write!(html, "<{tag}>{}</{tag}>", escape(c));
            }
            html.push_str("</tr>\n");
            header_done = true;
            continue;
        }
        if in_table {
            html.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = t.strip_prefix("## ") {
            let _ = writeln!(html, "<h2>{}</h2>", escape(h));
        } else if let Some(h) = t.strip_prefix("# ") {
            let _ = writeln!(html, "<h1>{}</h1>", escape(h));
        } else if !t.is_empty() {
            let _ = writeln!(html, "<p>{}</p>", escape(t));
        }
    }
    if in_table {
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// Whether an exchange record is about the subject with this pseudonym.
fn about(record: &Value, pseudonym: &str) -> bool {
    record["type"] == "exchange"
        && (record["principal"]["id"] == pseudonym || record["payload"]["subject"] == pseudonym)
}

/// A data subject's records (GDPR Art. 15), payloads decrypted where the subject's key
/// still exists (`erased` where it was destroyed). Returns the records as
/// `{"seq", "record"}` and the first payload that could not be read, if any.
pub fn subject_records(
    audit: &Audit,
    keys: Option<&crate::payload::SubjectKeys>,
    pseudonym: &str,
) -> io::Result<(Vec<Value>, Option<String>)> {
    // Collect the subject's records first, decrypt after: reading the store and the
    // key store may both need a blocking database connection.
    let mut mine = Vec::new();
    for_each_entry(audit, |_, e| {
        let record = e.value();
        if about(&record, pseudonym) {
            mine.push((e.seq, record));
        }
    })?;
    let mut out = Vec::new();
    let mut problem = None;
    for (seq, mut record) in mine {
        if let Some(sealed) = record.get("payload").cloned().filter(|p| !p.is_null()) {
            let opened = serde_json::from_value::<crate::payload::Sealed>(sealed)
                .map_err(io::Error::other)
                .and_then(|s| {
                    let aad = crate::payload::payload_aad(
                        record["node"].as_str().unwrap_or(""),
                        record["request_id"].as_str().unwrap_or(""),
                    );
                    match keys {
                        Some(k) => k.open(&s, &aad),
                        None => Ok(None),
                    }
                });
            record["payload"] = match opened {
                Ok(Some(plain)) => {
                    serde_json::json!({"status": "readable", "request": plain.request, "response": plain.response, "truncated": plain.truncated})
                }
                Ok(None) => serde_json::json!({"status": "erased"}),
                Err(e) => {
                    problem.get_or_insert(format!("record {seq}: {e}"));
                    serde_json::json!({"status": "unreadable", "error": e.to_string()})
                }
            };
        }
        out.push(serde_json::json!({"seq": seq, "record": record}));
    }
    Ok((out, problem))
}
