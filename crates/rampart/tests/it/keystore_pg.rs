//! The PostgreSQL key store with a real PostgreSQL: two gateway processes share one
//! key table; a key created with the CLI works on both; a revocation reaches both
//! within the documented bound (`identity.api_keys.reload_interval`).
//!
//! Needs PostgreSQL at `RAMPART_TEST_PG_ADMIN` (default: host=127.0.0.1 user=postgres,
//! trust auth), which `scripts/services.sh` starts. It fails, never skips, without one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;
use http::{Method, StatusCode};
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::{DemoOptions, TempDir};
use serde_json::json;

fn admin_url() -> String {
    std::env::var("RAMPART_TEST_PG_ADMIN")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into())
}

async fn admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&admin_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running for this test (scripts/services.sh starts it)");
    tokio::spawn(conn);
    client
}

const PEPPER: &str = "0123456789abcdef0123456789abcdef-pg-test";

fn config(openai: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "main"
listen = "127.0.0.1:0"

[identity]
pepper = {{ env = "RAMPART_TEST_PEPPER" }}
api_keys = {{ postgres = {{ env = "RAMPART_TEST_PG" }}, reload_interval = "200ms" }}

[roles.chat]
routes = ["chat"]
models = ["*"]
actions = ["infer"]

[[upstreams]]
name = "openai"
targets = ["{openai}"]

[[routes]]
name = "chat"
path_prefix = "/v1/"
upstream = "openai"
protocol = "openai"
"#
    )
}

async fn status(c: &TestClient, gw: &GatewayProcess, key: &str) -> StatusCode {
    c.request(
        Method::POST,
        &format!("{}/v1/chat/completions", gw.url("main")),
        &[
            ("authorization", &format!("Bearer {key}")),
            ("content-type", "application/json"),
        ],
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await
    .unwrap()
    .status
}

/// Polls until every gateway answers `want` for `key`; returns how long it took.
async fn until_all(c: &TestClient, gws: &[&GatewayProcess], key: &str, want: StatusCode) -> Duration {
    let started = Instant::now();
    loop {
        let mut all = true;
        for gw in gws {
            all &= status(c, gw, key).await == want;
        }
        if all {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "gateways never answered {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_every_node_within_the_bound() {
    let db = format!(
        "rampart_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let pg = admin().await;
    pg.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let url = format!("{} dbname={db}", admin_url().replace("dbname=postgres", ""));
    let env = [("RAMPART_TEST_PG", url.as_str()), ("RAMPART_TEST_PEPPER", PEPPER)];

    let o = openai(DemoOptions::default()).await;
    let text = config(&o.url());
    let node = |name: &str| {
        let dir = TempDir::new(name).unwrap();
        GatewayProcess::start_with_env(bin(), &text, dir, &env).unwrap()
    };
    let (a, b) = (node("rampart-pg-a"), node("rampart-pg-b"));

    // The CLI writes to the same table.
    let cfg_dir = TempDir::new("rampart-pg-cli").unwrap();
    std::fs::write(cfg_dir.join("rampart.toml"), &text).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(bin())
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(cfg_dir.join("rampart.toml"))
            .envs(env)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let key = cli(&["create", "--subject", "shared-app", "--role", "chat"]);
    let other = cli(&["create", "--subject", "other-app", "--role", "chat"]);

    let c = TestClient::http1();
    until_all(&c, &[&a, &b], &key, StatusCode::OK).await;
    until_all(&c, &[&a, &b], &other, StatusCode::OK).await;

    // Only hashes in the database.
    let conn = {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    };
    let rows = conn.query("SELECT record FROM rampart_api_keys", &[]).await.unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        let record: String = row.get(0);
        assert!(record.contains("hmac-sha256:") && !record.contains(&key[21..]));
    }

    cli(&["revoke", &key[8..20]]);
    let took = until_all(&c, &[&a, &b], &key, StatusCode::UNAUTHORIZED).await;
    // Documented bound: reload_interval (200 ms) plus one poll; generous for a busy CI box.
    assert!(took < Duration::from_secs(2), "revocation took {took:?}");
    assert_eq!(status(&c, &a, &other).await, StatusCode::OK);
    assert_eq!(status(&c, &b, &other).await, StatusCode::OK);
    let logged = a
        .wait_for_access_log(Duration::from_secs(5), |l| l["rampart.error.code"] == "key_revoked")
        .expect("revocation logged");
    assert_eq!(logged["http.response.status_code"], 401);

    drop(conn);
    drop((a, b));
    pg.batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}
