//! `rampart stop`, `rampart resume`, `rampart stops` and `rampart review`: the stop
//! switch and the review queue from a terminal, through a running gateway's admin API
//! (the same calls, checks and audit records as the console). The admin key comes from
//! `RAMPART_ADMIN_KEY` or `--key-file`, never from the command line, where other users
//! of the machine could read it in the process list.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args, Debug)]
pub struct Admin {
    /// The gateway's admin listener.
    #[arg(long, default_value = "http://127.0.0.1:9901")]
    pub admin: String,
    /// A file holding the admin API key (default: the RAMPART_ADMIN_KEY variable).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// What to stop: gateway, route:NAME, model:NAME, tenant:NAME or principal:SUBJECT.
    pub scope: String,
    /// Why (kept in the audit trail; clients only learn that an operator stopped it).
    #[arg(long)]
    pub reason: String,
    /// Planned duration (30m, 2h): clients get Retry-After and the stop lifts itself.
    #[arg(long = "for", conflicts_with = "until")]
    pub duration: Option<String>,
    /// Planned end, RFC 3339 (2026-12-07T18:00:00Z).
    #[arg(long)]
    pub until: Option<String>,
    /// End event streams in flight now (default: let them finish).
    #[arg(long)]
    pub cut_streams: bool,
    #[command(flatten)]
    pub admin: Admin,
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The scope to resume, as it was stopped.
    pub scope: String,
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub admin: Admin,
}

#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// Review items, newest first.
    List {
        /// pending, approved, rejected, expired, acceptable, unacceptable or all.
        #[arg(long, default_value = "pending")]
        status: String,
        #[command(flatten)]
        admin: Admin,
    },
    /// One item in full (its payload opened when the key may read payloads).
    Show {
        id: String,
        #[command(flatten)]
        admin: Admin,
    },
    /// Decide: approve or reject a held request; acceptable or unacceptable after
    /// the fact.
    Decide {
        id: String,
        decision: String,
        /// Required to reject, to mark unacceptable and to block the caller.
        #[arg(long)]
        reason: Option<String>,
        /// Also block the caller (a stop on principal:SUBJECT).
        #[arg(long)]
        block_principal: bool,
        #[command(flatten)]
        admin: Admin,
    },
}

fn key(admin: &Admin) -> anyhow::Result<String> {
    let key = match &admin.key_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .trim()
            .to_owned(),
        None => std::env::var("RAMPART_ADMIN_KEY").unwrap_or_default(),
    };
    if key.is_empty() {
        bail!("no admin key: set RAMPART_ADMIN_KEY or pass --key-file");
    }
    Ok(key)
}

/// Calls the admin API; prints the answer as JSON. Exit 0 on 2xx, 1 otherwise.
async fn call(
    admin: &Admin,
    method: http::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(ExitCode, Value)> {
    let key = key(admin)?;
    let auth = format!("Bearer {key}");
    let url = format!("{}{path}", admin.admin.trim_end_matches('/'));
    let client = rampart_testkit::client::TestClient::http1();
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let bytes = body.map(|b| b.to_string()).unwrap_or_default();
    let r = client
        .request(method, &url, &headers, bytes)
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let value: Value =
        serde_json::from_slice(&r.body).unwrap_or_else(|_| json!({"body": String::from_utf8_lossy(&r.body)}));
    let code = if r.status.is_success() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{url}: {}", r.status);
        ExitCode::from(1)
    };
    Ok((code, value))
}

fn print(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

async fn run_call(admin: &Admin, method: http::Method, path: &str, body: Option<Value>) -> anyhow::Result<ExitCode> {
    let (code, v) = call(admin, method, path, body).await?;
    print(&v);
    Ok(code)
}

pub async fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let body = json!({
        "scope": args.scope,
        "reason": args.reason,
        "for": args.duration,
        "until": args.until,
        "cut_streams": args.cut_streams,
    });
    run_call(&args.admin, http::Method::POST, "/admin/stops", Some(body)).await
}

pub async fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    let body = json!({"scope": args.scope, "reason": args.reason});
    run_call(&args.admin, http::Method::POST, "/admin/resume", Some(body)).await
}

pub async fn stops(admin: Admin) -> anyhow::Result<ExitCode> {
    run_call(&admin, http::Method::GET, "/admin/stops", None).await
}

/// An id as it may appear in a path: the store's ids are hex.
fn checked_id(id: &str) -> anyhow::Result<&str> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        bail!("`{id}` is not a review item id");
    }
    Ok(id)
}

pub async fn review(cmd: ReviewCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReviewCommand::List { status, admin } => {
            if !status.bytes().all(|b| b.is_ascii_lowercase()) {
                bail!("`{status}` is not a status");
            }
            run_call(
                &admin,
                http::Method::GET,
                &format!("/admin/reviews?status={status}"),
                None,
            )
            .await
        }
        ReviewCommand::Show { id, admin } => {
            let id = checked_id(&id)?;
            run_call(&admin, http::Method::GET, &format!("/admin/reviews/{id}"), None).await
        }
        ReviewCommand::Decide {
            id,
            decision,
            reason,
            block_principal,
            admin,
        } => {
            let id = checked_id(&id)?;
            let body = json!({"decision": decision, "reason": reason, "block_principal": block_principal});
            run_call(&admin, http::Method::POST, &format!("/admin/reviews/{id}"), Some(body)).await
        }
    }
}
