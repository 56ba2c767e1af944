//! Identity and access through the real gateway: API keys created with the real CLI,
//! an attack suite of credentials that must be refused with the right status and
//! code, tenant isolation, model permissions, admin permissions, revocation through the
//! key file, rotation, and credential hygiene.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use bytes::Bytes;
use http::{Method, StatusCode};
use rampart_testkit::client::{TestClient, TestResponse};
use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::{DemoOptions, TempDir};
use serde_json::json;

fn config(openai: &str, kserve: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "main"
listen = "127.0.0.1:0"

[identity]
pepper = {{ file = "pepper" }}
api_keys = {{ file = "keys.toml", reload_interval = "200ms" }}

[roles.chat]
routes = ["acme-chat", "chat", "echo", "iris"]
models = ["rampart-demo-chat", "iris"]
actions = ["infer"]

[roles.ops]
actions = ["admin", "metrics"]

[[upstreams]]
name = "openai"
targets = ["{openai}"]

[[upstreams]]
name = "kserve"
targets = ["{kserve}"]

[[routes]]
name = "acme-chat"
hosts = ["acme.test"]
path_prefix = "/v1/"
upstream = "openai"
protocol = "openai"
tenant = "acme"

[[routes]]
name = "chat"
path_prefix = "/v1/"
upstream = "openai"
protocol = "openai"

[[routes]]
name = "echo"
path = "/echo"
upstream = "openai"

[[routes]]
name = "iris"
path_prefix = "/v2/"
upstream = "kserve"
protocol = "kserve"
"#
    )
}

fn keys(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("keys")
        .args(args)
        .args(["--config", dir.join("rampart.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn key_id(key: &str) -> &str {
    &key[8..20]
}

struct Setup {
    gw: GatewayProcess,
    acme: String,
    globex: String,
    ops: String,
    expiring: String,
    dir: std::path::PathBuf,
    _servers: (rampart_testkit::TestServer, rampart_testkit::TestServer),
}

async fn setup() -> Setup {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let dir = TempDir::new("rampart-identity").unwrap();
    std::fs::write(dir.join("pepper"), "0123456789abcdef0123456789abcdef-test-pepper\n").unwrap();
    let text = config(&o.url(), &k.url());
    std::fs::write(dir.join("rampart.toml"), &text).unwrap();
    let acme = keys(
        dir.path(),
        &[
            "create",
            "--subject",
            "billing-app",
            "--tenant",
            "acme",
            "--role",
            "chat",
        ],
    );
    let globex = keys(
        dir.path(),
        &[
            "create",
            "--subject",
            "globex-app",
            "--tenant",
            "globex",
            "--role",
            "chat",
        ],
    );
    let ops = keys(dir.path(), &["create", "--subject", "sre", "--role", "ops"]);
    let expiring = keys(
        dir.path(),
        &["create", "--subject", "short", "--role", "chat", "--expires-in", "1s"],
    );
    assert!(acme.starts_with("rk_live_") && acme.len() == 61, "{acme}");
    let key_file = std::fs::read_to_string(dir.join("keys.toml")).unwrap();
    for k in [&acme, &globex, &ops] {
        assert!(!key_file.contains(&k[21..]), "a key's secret is in the key file");
    }
    let path = dir.path().to_path_buf();
    let gw = GatewayProcess::start_in(bin(), &text, dir).unwrap();
    Setup {
        gw,
        acme,
        globex,
        ops,
        expiring,
        dir: path,
        _servers: (o, k),
    }
}

async fn chat(c: &TestClient, gw: &GatewayProcess, headers: &[(&str, &str)], model: &str) -> TestResponse {
    let mut h = vec![("content-type", "application/json")];
    h.extend_from_slice(headers);
    c.request(
        Method::POST,
        &format!("{}/v1/chat/completions", gw.url("main")),
        &h,
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await
    .unwrap()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn assert_refused(r: &TestResponse, status: StatusCode, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], code, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_attack_suite() {
    let s = setup().await;
    let c = TestClient::http1();
    let gw = &s.gw;
    let model = "rampart-demo-chat";

    // Valid keys, through either header.
    let ok = chat(&c, gw, &[("authorization", &bearer(&s.acme))], model).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let ok = chat(&c, gw, &[("x-api-key", &s.globex)], model).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    let lower = chat(&c, gw, &[("authorization", &format!("bearer {}", s.acme))], model).await;
    assert_eq!(lower.status, StatusCode::OK);

    // No credentials.
    let r = chat(&c, gw, &[], model).await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, "missing_credentials");
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"rampart\""));

    // Wrong secret, right id; unknown id; wrong prefix; garbage; other schemes;
    // truncated; oversized; path characters: all the same 401, none says which part.
    let mut wrong_secret = s.acme.clone();
    let last = wrong_secret.pop().unwrap();
    wrong_secret.push(if last == 'x' { 'y' } else { 'x' });
    let unknown_id = format!("rk_live_{}_{}", "Z".repeat(12), &s.acme[21..]);
    let oversized = format!("rk_live_{}", "a".repeat(8000));
    let attempts: Vec<(&str, String)> = vec![
        ("authorization", bearer(&wrong_secret)),
        ("authorization", bearer(&unknown_id)),
        ("authorization", bearer(&s.acme.replace("rk_live_", "rk_prod_"))),
        ("authorization", bearer(&s.acme[..40])),
        ("authorization", bearer("not-a-key")),
        ("authorization", bearer(&oversized)),
        ("authorization", bearer("rk_live_../../keys_toml")),
        ("authorization", format!("Basic {}", s.acme)),
        ("authorization", "Bearer".to_owned()),
        ("x-api-key", wrong_secret.clone()),
        ("x-api-key", String::new()),
    ];
    let mut bodies = std::collections::HashSet::new();
    for (h, v) in &attempts {
        let r = chat(&c, gw, &[(h, v.as_str())], model).await;
        assert_refused(&r, StatusCode::UNAUTHORIZED, "invalid_credentials");
        assert!(r.header("www-authenticate").unwrap().contains("invalid_token"));
        let mut body = r.json();
        body["error"]["request_id"] = json!(null);
        bodies.insert(body.to_string());
    }
    assert_eq!(
        bodies.len(),
        1,
        "refusals differ and could tell an attacker something: {bodies:?}"
    );

    // Expired key (1 s lifetime).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = chat(&c, gw, &[("authorization", &bearer(&s.expiring))], model).await;
    assert_refused(&r, StatusCode::UNAUTHORIZED, "key_expired");

    // Permissions: a model the roles do not grant; a key without `infer`.
    let r = chat(&c, gw, &[("authorization", &bearer(&s.acme))], "gpt-4-secret").await;
    assert_refused(&r, StatusCode::FORBIDDEN, "model_not_permitted");
    assert_eq!(r.json()["error"]["type"], "permission_error");
    let r = chat(&c, gw, &[("authorization", &bearer(&s.ops))], model).await;
    assert_refused(&r, StatusCode::FORBIDDEN, "action_not_permitted");
    // KServe models come from the path.
    let infer =
        json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]});
    let r = c
        .request(
            Method::POST,
            &format!("{}/v2/models/iris/infer", gw.url("main")),
            &[("authorization", &bearer(&s.acme))],
            infer.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = c
        .request(
            Method::POST,
            &format!("{}/v2/models/secret-model/infer", gw.url("main")),
            &[("authorization", &bearer(&s.acme))],
            infer.to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["code"], "model_not_permitted");

    // Tenants: acme's route is closed to globex's key, whatever its roles.
    let acme_route = |key: &str| {
        let c = c.clone();
        let url = format!("{}/v1/chat/completions", gw.url("main"));
        let auth = bearer(key);
        async move {
            c.request(
                Method::POST,
                &url,
                &[
                    ("host", "acme.test"),
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                json!({"model": "rampart-demo-chat", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
            )
            .await
            .unwrap()
        }
    };
    assert_eq!(acme_route(&s.acme).await.status, StatusCode::OK);
    assert_refused(&acme_route(&s.globex).await, StatusCode::FORBIDDEN, "tenant_mismatch");

    // Credentials never reach the upstream (nor the logs).
    let echo = c
        .request(
            Method::POST,
            &format!("{}/echo", gw.url("main")),
            &[("authorization", &bearer(&s.acme)), ("x-api-key", &s.globex)],
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap();
    assert_eq!(echo.status, StatusCode::OK, "{}", echo.text());
    assert!(echo.json()["headers"].get("authorization").is_none(), "{}", echo.text());
    assert!(echo.json()["headers"].get("x-api-key").is_none());

    let logged = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["url.path"] == "/echo")
        .expect("echo logged");
    assert_eq!(logged["user.id"], "billing-app");
    assert_eq!(logged["rampart.tenant"], "acme");
    assert_eq!(logged["rampart.auth.credential"], "api_key");
    assert_eq!(logged["rampart.auth.key_id"], key_id(&s.acme));
    let chat_line = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["rampart.model"] == "rampart-demo-chat")
        .expect("model logged");
    assert_eq!(chat_line["rampart.route"], "chat");
    let all = format!("{}\n{}", gw.stdout_text(), gw.stderr_text());
    for k in [&s.acme, &s.globex, &s.ops, &wrong_secret] {
        assert!(!all.contains(&k[21..]), "a key's secret reached the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_rotation_and_admin_permissions() {
    let s = setup().await;
    let c = TestClient::http1();
    let gw = &s.gw;
    let model = "rampart-demo-chat";
    assert_eq!(
        chat(&c, gw, &[("authorization", &bearer(&s.acme))], model).await.status,
        StatusCode::OK
    );

    // Rotation: the new key works at once and the old one keeps working in the overlap.
    let rotated = keys(&s.dir, &["rotate", key_id(&s.acme), "--overlap", "1h"]);
    assert_ne!(rotated, s.acme);
    let mut new_works = false;
    for _ in 0..50 {
        if chat(&c, gw, &[("authorization", &bearer(&rotated))], model)
            .await
            .status
            == StatusCode::OK
        {
            new_works = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(new_works, "the rotated key was not picked up");
    assert_eq!(
        chat(&c, gw, &[("authorization", &bearer(&s.acme))], model).await.status,
        StatusCode::OK
    );

    // Revocation through the key file: refused within the 200 ms reload interval.
    keys(&s.dir, &["revoke", key_id(&s.acme)]);
    let mut refused = None;
    for i in 0..50 {
        let r = chat(&c, gw, &[("authorization", &bearer(&s.acme))], model).await;
        if r.status == StatusCode::UNAUTHORIZED {
            refused = Some((i, r));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (tries, r) = refused.expect("revoked key still accepted after 2.5 s");
    assert!(tries <= 10, "revocation took {tries} polls of 50 ms");
    assert_refused(&r, StatusCode::UNAUTHORIZED, "key_revoked");
    // Everyone else is unaffected.
    assert_eq!(
        chat(&c, gw, &[("authorization", &bearer(&rotated))], model)
            .await
            .status,
        StatusCode::OK
    );

    let listed = keys(&s.dir, &["list", "--json"]);
    let statuses: Vec<serde_json::Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(
        statuses
            .iter()
            .any(|k| k["id"] == key_id(&s.acme) && k["status"] == "revoked")
    );
    assert!(
        statuses
            .iter()
            .any(|k| k["rotated_from"] == key_id(&s.acme) && k["status"] == "active")
    );
    assert!(!listed.contains("hmac-sha256"), "list shows hashes");

    // Admin API: metrics and reload need their own permissions.
    let admin = gw.admin_url();
    let get = |key: Option<&str>| {
        let c = c.clone();
        let url = format!("{admin}/metrics");
        let h = key.map(bearer);
        async move {
            let headers: Vec<(&str, &str)> = h.iter().map(|v| ("authorization", v.as_str())).collect();
            c.request(Method::GET, &url, &headers, Bytes::new()).await.unwrap()
        }
    };
    assert_refused(&get(None).await, StatusCode::UNAUTHORIZED, "missing_credentials");
    assert_refused(
        &get(Some(&s.globex)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    );
    let m = get(Some(&s.ops)).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(m.text().contains("rampart_requests_total"));
    let reload = |key: &str| {
        let c = c.clone();
        let url = format!("{admin}/admin/reload");
        let auth = bearer(key);
        async move {
            c.request(Method::POST, &url, &[("authorization", &auth)], Bytes::new())
                .await
                .unwrap()
        }
    };
    assert_refused(&reload(&s.globex).await, StatusCode::FORBIDDEN, "action_not_permitted");
    assert_eq!(reload(&s.ops).await.status, StatusCode::OK);
    // An invalid config through the admin API: 422 with the reason; still serving.
    std::fs::write(gw.config_path.clone(), "[[listeners]]\nname = 1\n").unwrap();
    let r = reload(&s.ops).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("rampart.toml"));
    assert_eq!(
        chat(&c, gw, &[("authorization", &bearer(&rotated))], model)
            .await
            .status,
        StatusCode::OK
    );
    // Health stays open for orchestrators.
    assert_eq!(c.get(&format!("{admin}/healthz")).await.unwrap().status, StatusCode::OK);
}

#[test]
fn serve_refuses_to_start_without_its_key_file() {
    let dir = TempDir::new("rampart-nokeys").unwrap();
    std::fs::write(dir.join("pepper"), "0123456789abcdef0123456789abcdef\n").unwrap();
    let text = config("http://127.0.0.1:1", "http://127.0.0.1:2");
    std::fs::write(dir.join("rampart.toml"), &text).unwrap();
    let out = Command::new(bin())
        .arg("check-config")
        .arg(dir.join("rampart.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("keys.toml does not exist; create it with `rampart keys create"),
        "{err}"
    );
    // A short pepper is refused by validation.
    std::fs::write(dir.join("pepper"), "short\n").unwrap();
    let out = Command::new(bin())
        .arg("check-config")
        .arg(dir.join("rampart.toml"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("identity.pepper: must be at least 32 bytes"));
    // Unknown roles are refused when creating a key.
    std::fs::write(dir.join("pepper"), "0123456789abcdef0123456789abcdef\n").unwrap();
    let out = Command::new(bin())
        .args(["keys", "create", "--subject", "x", "--role", "root", "--config"])
        .arg(dir.join("rampart.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("role `root` is not defined"));
    assert!(!dir.join("keys.toml").exists(), "a failed create wrote the key file");
}
