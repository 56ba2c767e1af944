//! The stop switch through the real gateway binary: who may stop what, the 503 each
//! protocol's clients get (with `Retry-After` for a planned end), streams in flight cut
//! or left to finish, stops that survive a restart, planned ends that lift themselves,
//! stops shared by two gateways through a real PostgreSQL, the CLI, and the audit
//! records that say who stopped what and why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use http::{Method, StatusCode};
use rampart_testkit::client::{TestClient, TestResponse};
use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::{DemoOptions, TempDir};
use serde_json::{Value, json};

const PEPPER: &str = "0123456789abcdef0123456789abcdef-oversight-test";

/// Makes an audit signing key with the real CLI in `dir`; returns its path.
pub(crate) fn audit_key(dir: &Path) -> std::path::PathBuf {
    let key = dir.join("audit.key");
    let out = Command::new(bin())
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    key
}

/// Writes the payload master key `master.key` in `dir`.
pub(crate) fn master_key(dir: &Path) {
    std::fs::write(dir.join("master.key"), "q7h3C1mZ0bWc2X0n8d3kY6yZ1wJ4pV9tR5sL2uA8eQo=\n").unwrap();
}

/// An `[audit]` section writing to `trail`, signed with `key`.
pub(crate) fn audit_section(trail: &Path, key: &Path) -> String {
    format!(
        "\n[audit]\ndir = \"{}\"\nsigning_key = {{ file = \"{}\" }}\n",
        trail.display(),
        key.display()
    )
}

/// The `__Host-rampart_console` session cookie a response sets, as a `Cookie` value.
pub(crate) fn session_cookie(r: &TestResponse) -> Option<String> {
    r.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("__Host-rampart_console="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

/// Keys and roles: `ops` may operate, `viewer` may only look, `app` calls models.
/// `state` holds the key file and the oversight journal (they outlive a gateway).
pub(crate) fn config(openai: &str, kserve: &str, state: &Path, oversight: &str) -> String {
    format!(
        r#"
[server]
node_id = "test-node"

[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "main"
listen = "127.0.0.1:0"

[defaults.timeouts]
first_byte = "2s"
total = "30s"
idle = "5s"

[identity]
pepper = {{ file = "{state}/pepper" }}
api_keys = {{ file = "{state}/keys.toml", reload_interval = "200ms" }}

[roles.app]
routes = ["*"]
models = ["*"]
actions = ["infer"]

[roles.ops]
actions = ["operate", "metrics"]

[roles.viewer]
actions = ["metrics"]

[[upstreams]]
name = "openai"
targets = ["{openai}"]

[[upstreams]]
name = "kserve"
targets = ["{kserve}"]

[[routes]]
name = "chat"
path_prefix = "/v1/"
upstream = "openai"
protocol = "openai"

[[routes]]
name = "acme-chat"
path_prefix = "/acme/v1/"
upstream = "openai"
protocol = "openai"
tenant = "acme"
public = true

[[routes]]
name = "iris"
path_prefix = "/v2/"
upstream = "kserve"
protocol = "kserve"

[oversight]
{oversight}
"#,
        state = state.display()
    )
}

pub(crate) fn keys_cmd(state: &Path, config_path: &Path, args: &[&str]) -> String {
    let _ = state;
    let out = Command::new(bin())
        .arg("keys")
        .args(args)
        .args(["--config", config_path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub(crate) struct Keys {
    pub app: String,
    pub acme_app: String,
    pub ops: String,
    pub viewer: String,
}

/// Writes the pepper and creates the keys with the real CLI.
pub(crate) fn make_keys(state: &Path, text: &str) -> Keys {
    std::fs::write(state.join("pepper"), format!("{PEPPER}\n")).unwrap();
    let cfg = state.join("keys-config.toml");
    std::fs::write(&cfg, text).unwrap();
    let k = |args: &[&str]| keys_cmd(state, &cfg, args);
    Keys {
        app: k(&["create", "--subject", "app", "--role", "app"]),
        acme_app: k(&["create", "--subject", "acme-app", "--tenant", "acme", "--role", "app"]),
        ops: k(&["create", "--subject", "sre-on-call", "--role", "ops"]),
        viewer: k(&["create", "--subject", "auditor", "--role", "viewer"]),
    }
}

pub(crate) async fn chat(
    c: &TestClient,
    gw: &GatewayProcess,
    key: &str,
    path: &str,
    model: &str,
    stream: bool,
) -> TestResponse {
    let auth = format!("Bearer {key}");
    c.request(
        Method::POST,
        &format!("{}{path}", gw.url("main")),
        &[("content-type", "application/json"), ("authorization", &auth)],
        json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await
    .unwrap()
}

pub(crate) async fn infer(c: &TestClient, gw: &GatewayProcess, key: &str, model: &str) -> TestResponse {
    let auth = format!("Bearer {key}");
    c.request(
        Method::POST,
        &format!("{}/v2/models/{model}/infer", gw.url("main")),
        &[("content-type", "application/json"), ("authorization", &auth)],
        json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})
            .to_string(),
    )
    .await
    .unwrap()
}

pub(crate) async fn admin(
    c: &TestClient,
    gw: &GatewayProcess,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let body = if method == Method::GET {
        String::new()
    } else {
        body.to_string()
    };
    let r = c
        .request(method, &format!("{}{path}", gw.admin_url()), &headers, body)
        .await
        .unwrap();
    (r.status, serde_json::from_slice(&r.body).unwrap_or(Value::Null))
}

pub(crate) fn body(r: &TestResponse) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

pub(crate) fn header<'a>(r: &'a TestResponse, name: &str) -> Option<&'a str> {
    r.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Polls `check` every 100 ms for up to `secs` seconds.
pub(crate) async fn eventually(secs: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_refuse_by_scope_in_each_protocols_shape_and_only_operators_may_set_them() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let state = TempDir::new("rampart-oversight").unwrap();
    let journal = state.join("oversight.jsonl");
    let text = config(
        &o.url(),
        &k.url(),
        state.path(),
        &format!("path = \"{}\"", journal.display()),
    );
    let keys = make_keys(state.path(), &text);
    let gw = start(&text);
    let c = TestClient::http1();
    let stop = |scope: &str| json!({"scope": scope, "reason": "model gave unsafe answers in canary test"});

    // Nobody without a credential, and nobody without `operate`, may stop anything.
    let (s, _) = admin(&c, &gw, None, Method::POST, "/admin/stops", stop("gateway")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    for key in [&keys.app, &keys.viewer] {
        let (s, v) = admin(&c, &gw, Some(key), Method::POST, "/admin/stops", stop("gateway")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
    // The viewer may look.
    let (s, v) = admin(&c, &gw, Some(&keys.viewer), Method::GET, "/admin/stops", Value::Null).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["stops"], json!([]));
    // Bad requests are named.
    for (bad, code) in [
        (json!({"scope": "gateway"}), "invalid_request"),
        (json!({"scope": "planet:earth", "reason": "x"}), "invalid_scope"),
        (
            json!({"scope": "route:chat", "reason": "x", "until": "2001-01-01T00:00:00Z"}),
            "invalid_request",
        ),
        (
            json!({"scope": "route:chat", "reason": "x", "for": "soon"}),
            "invalid_request",
        ),
        (
            json!({"scope": "route:chat", "reason": "x", "cut_streams": "yes"}),
            "invalid_request",
        ),
    ] {
        let (s, v) = admin(&c, &gw, Some(&keys.ops), Method::POST, "/admin/stops", bad.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} → {v}");
        assert_eq!(v["error"]["code"], code, "{bad} → {v}");
    }
    assert_eq!(
        chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status,
        StatusCode::OK
    );

    // A route stop with a planned end: OpenAI-shaped 503 with Retry-After; other
    // routes keep serving.
    let mut s1 = stop("route:chat");
    s1["for"] = json!("1h");
    let (s, v) = admin(&c, &gw, Some(&keys.ops), Method::POST, "/admin/stops", s1).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["persisted"], true);
    let r = chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let b = body(&r);
    assert_eq!(b["error"]["code"], "stopped_by_operator", "{b}");
    assert_eq!(b["error"]["type"], "api_error");
    assert!(
        !b.to_string().contains("canary"),
        "the operator's reason is not for clients: {b}"
    );
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    assert_eq!(header(&r, "x-should-retry"), Some("false"));
    // Refused before authentication: even a caller without a key learns only that.
    let anon = c
        .request(
            Method::POST,
            &format!("{}/v1/chat/completions", gw.url("main")),
            &[],
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(anon.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(infer(&c, &gw, &keys.app, "iris").await.status, StatusCode::OK);

    // A model stop: the KServe error shape, only for that model.
    let (s, _) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/stops",
        stop("model:iris"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = infer(&c, &gw, &keys.app, "iris").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let b = body(&r);
    assert!(b["error"].is_string(), "KServe clients read `error` as a string: {b}");
    assert_eq!(b["code"], "stopped_by_operator");
    assert_eq!(header(&r, "retry-after"), None, "no planned end, no Retry-After");
    // The next variation: the model's name percent-encoded in the path reaches the same
    // model, so the stop holds for it too.
    let auth = format!("Bearer {}", keys.app);
    let encoded = c
        .request(
            Method::POST,
            &format!("{}/v2/models/ir%69s/infer", gw.url("main")),
            &[("content-type", "application/json"), ("authorization", &auth)],
            json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})
                .to_string(),
        )
        .await
        .unwrap();
    assert_eq!(
        encoded.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&encoded.body)
    );
    assert_ne!(
        infer(&c, &gw, &keys.app, "other-model").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // A tenant stop: the tenant's own route (public, no key needed) and its callers on
    // shared routes; other tenants' callers are untouched.
    let (s, _) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/resume",
        json!({"scope": "route:chat"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/stops",
        stop("tenant:acme"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let public = c
        .request(
            Method::POST,
            &format!("{}/acme/v1/chat/completions", gw.url("main")),
            &[("content-type", "application/json")],
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(public.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = chat(&c, &gw, &keys.acme_app, "/v1/chat/completions", "m", false).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status,
        StatusCode::OK
    );

    // The gateway stop covers everything; resuming brings it back.
    let (s, _) = admin(&c, &gw, Some(&keys.ops), Method::POST, "/admin/stops", stop("gateway")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let (_, v) = admin(&c, &gw, Some(&keys.viewer), Method::GET, "/admin/stops", Value::Null).await;
    let scopes: Vec<&str> = v["stops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, vec!["gateway", "model:iris", "tenant:acme"], "{v}");
    // The stop names the operator and the key used.
    assert!(
        v["stops"][0]["by"].as_str().unwrap().starts_with("sre-on-call ("),
        "{v}"
    );
    for scope in ["gateway", "model:iris", "tenant:acme"] {
        let (s, v) = admin(
            &c,
            &gw,
            Some(&keys.ops),
            Method::POST,
            "/admin/resume",
            json!({"scope": scope, "reason": "fixed"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/resume",
        json!({"scope": "gateway"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(
        chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(infer(&c, &gw, &keys.app, "iris").await.status, StatusCode::OK);

    // The journal says the same.
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(
        text.contains("\"event\":\"stop\"") && text.contains("\"event\":\"lift\""),
        "{text}"
    );
    // The operator's key never reaches a log.
    assert!(!gw.stderr_text().contains(&keys.ops[21..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_in_flight_are_cut_or_left_to_finish_as_the_operator_chose() {
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_millis(250),
        ..DemoOptions::default()
    })
    .await;
    let k = kserve().await;
    let state = TempDir::new("rampart-oversight-streams").unwrap();
    let text = config(&o.url(), &k.url(), state.path(), "");
    let keys = make_keys(state.path(), &text);
    let gw = start(&text);
    let c = TestClient::http1();

    for cut in [true, false] {
        let stream = {
            let c = c.clone();
            let url = gw.url("main");
            let key = keys.app.clone();
            tokio::spawn(async move {
                let auth = format!("Bearer {key}");
                c.request(
                    Method::POST,
                    &format!("{url}/v1/chat/completions"),
                    &[("content-type", "application/json"), ("authorization", &auth)],
                    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]}).to_string(),
                )
                .await
                .unwrap()
            })
        };
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (s, v) = admin(
            &c,
            &gw,
            Some(&keys.ops),
            Method::POST,
            "/admin/stops",
            json!({"scope": "route:chat", "reason": "incident", "cut_streams": cut}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // New requests are refused at once either way.
        let r = chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", true).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
        let r = stream.await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if cut {
            assert!(
                text.contains("event: error") && text.contains("stopped_by_operator"),
                "{text}"
            );
            assert!(!text.contains("[DONE]"), "{text}");
            // Ended between events: every event before the error is whole.
            for event in text.split("\n\n").filter(|e| e.starts_with("data: {")) {
                serde_json::from_str::<Value>(&event["data: ".len()..]).unwrap();
            }
        } else {
            assert!(
                text.contains("[DONE]") && !text.contains("stopped_by_operator"),
                "{text}"
            );
        }
        let (s, _) = admin(
            &c,
            &gw,
            Some(&keys.ops),
            Method::POST,
            "/admin/resume",
            json!({"scope": "route:chat"}),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_survives_a_restart_and_a_planned_end_lifts_itself_on_the_record() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let state = TempDir::new("rampart-oversight-restart").unwrap();
    let trail = state.join("trail");
    let key = audit_key(state.path());
    // No [oversight] path: the journal lives beside the file audit trail.
    let text = config(&o.url(), &k.url(), state.path(), "sync_interval = \"200ms\"") + &audit_section(&trail, &key);
    let keys = make_keys(state.path(), &text);
    let c = TestClient::http1();
    let mut gw = start(&text);
    let (s, _) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/stops",
        json!({"scope": "route:chat", "reason": "bias found in review"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    gw.signal("KILL").unwrap();
    gw.wait_exit(Duration::from_secs(10));
    assert!(trail.join("oversight.jsonl").exists());

    // The first request after the restart is refused: the stop was read before `ready`.
    let mut gw = start(&text);
    let r = chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false).await;
    assert_eq!(
        r.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        String::from_utf8_lossy(&r.body)
    );

    // A short planned end: Retry-After counts down, then the stop lifts itself.
    let (s, _) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/stops",
        json!({"scope": "route:chat", "reason": "patching the model", "for": "2s"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(header(&r, "x-should-retry"), None, "a short wait is worth retrying");
    assert!(
        eventually(6, async || chat(&c, &gw, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status
            == StatusCode::OK)
        .await,
        "the stop lifts itself at its planned end"
    );
    assert!(
        eventually(2, async || admin(
            &c,
            &gw,
            Some(&keys.viewer),
            Method::GET,
            "/admin/stops",
            Value::Null
        )
        .await
        .1["stops"]
            == json!([]))
        .await,
        "the lifted stop leaves the list within a sync interval"
    );
    gw.signal("TERM").unwrap();
    assert!(gw.wait_exit(Duration::from_secs(15)).unwrap().success());

    // The trail says who stopped what, when and why, and how each stop ended.
    let records: Vec<Value> = rampart_audit::store::read_entries(&trail, "test-node")
        .unwrap()
        .into_iter()
        .map(|e| e.value())
        .filter(|r| r["type"] == "admin")
        .collect();
    let stops: Vec<&Value> = records.iter().filter(|r| r["action"] == "stop").collect();
    assert_eq!(stops.len(), 2, "{records:?}");
    assert!(stops[0]["actor"].as_str().unwrap().starts_with("sre-on-call ("));
    assert_eq!(stops[0]["target"], "route:chat");
    assert!(stops[0]["detail"].as_str().unwrap().contains("bias found in review"));
    assert!(stops[1]["detail"].as_str().unwrap().contains("planned end"));
    let resumed: Vec<&Value> = records.iter().filter(|r| r["action"] == "resume").collect();
    assert_eq!(resumed.len(), 1, "{records:?}");
    assert_eq!(resumed[0]["via"], "schedule");
    let out = Command::new(bin())
        .args(["audit", "verify"])
        .arg(&trail)
        .arg("--pub")
        .arg(format!("{}.pub", key.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    // `rampart audit report` shows the stops: scope, who, why, and the scheduled end.
    let md = report(&text, state.path(), &key);
    let section = md
        .split("## Human oversight: stop switches")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        section.contains("| stop | route:chat | sre-on-call (") && section.contains("bias found in review"),
        "{section}"
    );
    assert!(
        section.contains("| resume | route:chat | schedule | planned end of the stop set by sre-on-call"),
        "{section}"
    );
}

/// Runs `rampart audit report` for a config; returns the Markdown.
pub(crate) fn report(config_text: &str, dir: &Path, key: &Path) -> String {
    let cfg = dir.join("report-config.toml");
    std::fs::write(&cfg, config_text).unwrap();
    let out_dir = dir.join("report");
    let out = Command::new(bin())
        .args(["audit", "report", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(&out_dir)
        .arg("--pub")
        .arg(format!("{}.pub", key.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(out_dir.join("report.md")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_stops_and_resumes_a_running_gateway() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let state = TempDir::new("rampart-oversight-cli").unwrap();
    let text = config(&o.url(), &k.url(), state.path(), "");
    let keys = make_keys(state.path(), &text);
    let gw = start(&text);
    let c = TestClient::http1();
    let cli = |args: &[&str], key: &str| {
        Command::new(bin())
            .args(args)
            .args(["--admin", &gw.admin_url()])
            .env("RAMPART_ADMIN_KEY", key)
            .output()
            .unwrap()
    };
    let out = cli(
        &["stop", "model:rampart-demo-chat", "--reason", "drill", "--for", "10m"],
        &keys.ops,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["scope"], "model:rampart-demo-chat");
    let r = chat(&c, &gw, &keys.app, "/v1/chat/completions", "rampart-demo-chat", false).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let out = cli(&["stops"], &keys.viewer);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"drill\""));
    // A viewer cannot resume: exit 1, the refusal printed.
    let out = cli(&["resume", "model:rampart-demo-chat"], &keys.viewer);
    assert_eq!(out.status.code(), Some(1));
    let out = cli(
        &["resume", "model:rampart-demo-chat", "--reason", "drill over"],
        &keys.ops,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = chat(&c, &gw, &keys.app, "/v1/chat/completions", "rampart-demo-chat", false).await;
    assert_eq!(r.status, StatusCode::OK);
    // No key at all: a clear message, not a request.
    let out = Command::new(bin())
        .args(["stops", "--admin", &gw.admin_url()])
        .env_remove("RAMPART_ADMIN_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RAMPART_ADMIN_KEY"));
}

fn pg_admin_url() -> String {
    std::env::var("RAMPART_TEST_PG_ADMIN")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=postgres".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_postgresql_hold_each_others_stops_within_the_sync_interval() {
    let (client, conn) = tokio_postgres::connect(&pg_admin_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL must be running for this test (scripts/services.sh starts it)");
    tokio::spawn(conn);
    let db = format!("rampart_oversight_{}", std::process::id());
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    client.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let url = format!("{} dbname={db}", pg_admin_url().replace("dbname=postgres", ""));

    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let state = TempDir::new("rampart-oversight-pg").unwrap();
    // The `kserve` route holds requests for a reviewer; reviewers have their role.
    let held = |t: String| {
        t.replace(
            "name = \"iris\"\npath_prefix = \"/v2/\"\nupstream = \"kserve\"\nprotocol = \"kserve\"\n",
            "name = \"iris\"\npath_prefix = \"/v2/\"\nupstream = \"kserve\"\nprotocol = \"kserve\"\npolicy = \"held\"\n",
        ) + "\n[policies.held]\nrequest = { \"pii.email\" = \"hold\" }\n\n[roles.rev]\nactions = [\"review\"]\n"
    };
    let text = held(config(
        &o.url(),
        &k.url(),
        state.path(),
        "postgres = { env = \"RAMPART_TEST_OVERSIGHT_PG\" }\nsync_interval = \"300ms\"",
    ));
    let keys_text = held(config(&o.url(), &k.url(), state.path(), ""));
    let keys = make_keys(state.path(), &keys_text);
    let reviewer = keys_cmd(
        state.path(),
        &state.join("keys-config.toml"),
        &["create", "--subject", "rev", "--role", "rev"],
    );
    let env = [("RAMPART_TEST_OVERSIGHT_PG", url.as_str())];
    let a = GatewayProcess::start_with_env(bin(), &text, TempDir::new("rampart-gw-a").unwrap(), &env).unwrap();
    let b = GatewayProcess::start_with_env(bin(), &text, TempDir::new("rampart-gw-b").unwrap(), &env).unwrap();
    let c = TestClient::http1();

    let (s, v) = admin(
        &c,
        &a,
        Some(&keys.ops),
        Method::POST,
        "/admin/stops",
        json!({"scope": "route:chat", "reason": "fleet-wide stop"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        chat(&c, &a, &keys.app, "/v1/chat/completions", "m", false).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(
        eventually(3, async || chat(&c, &b, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status
            == StatusCode::SERVICE_UNAVAILABLE)
        .await,
        "node b holds node a's stop within the sync interval"
    );
    let (s, _) = admin(
        &c,
        &b,
        Some(&keys.ops),
        Method::POST,
        "/admin/resume",
        json!({"scope": "route:chat"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        eventually(3, async || chat(&c, &a, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status
            == StatusCode::OK)
        .await,
        "node a sees node b's resume"
    );
    // A third node started now reads the stops before serving.
    let (s, _) = admin(
        &c,
        &a,
        Some(&keys.ops),
        Method::POST,
        "/admin/stops",
        json!({"scope": "gateway", "reason": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let third = GatewayProcess::start_with_env(bin(), &text, TempDir::new("rampart-gw-c").unwrap(), &env).unwrap();
    assert_eq!(
        chat(&c, &third, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // A request held on node b is decided on node c: b's client gets its answer within
    // the sync interval. The queue is one for the fleet.
    let (s, _) = admin(
        &c,
        &a,
        Some(&keys.ops),
        Method::POST,
        "/admin/resume",
        json!({"scope": "gateway"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        eventually(3, async || chat(&c, &b, &keys.app, "/v1/chat/completions", "m", false)
            .await
            .status
            == StatusCode::OK)
        .await
    );
    let held_request = {
        let (c, url, key) = (c.clone(), b.url("main"), keys.app.clone());
        tokio::spawn(async move {
            let auth = format!("Bearer {key}");
            c.request(
                Method::POST,
                &format!("{url}/v2/models/iris/infer"),
                &[("content-type", "application/json"), ("authorization", &auth)],
                json!({"inputs": [{"name": "note", "shape": [1], "datatype": "BYTES", "data": ["ask bob@example.org"]}]})
                    .to_string(),
            )
            .await
            .unwrap()
        })
    };
    let mut id = String::new();
    assert!(
        eventually(5, async || {
            let v = items(&c, &third, &reviewer, "pending").await;
            id = v.first().and_then(|i| i["id"].as_str()).unwrap_or("").to_owned();
            !id.is_empty()
        })
        .await,
        "node c sees the item node b holds"
    );
    let (s, v) = admin(
        &c,
        &third,
        Some(&reviewer),
        Method::POST,
        &format!("/admin/reviews/{id}"),
        json!({"decision": "reject", "reason": "not for this model"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = tokio::time::timeout(Duration::from_secs(5), held_request)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(body(&r)["code"], "rejected_by_reviewer");
    drop((a, b, third));
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}

/// The review test's gateway: `chat` runs the `guarded` policy (an e-mail address is
/// held for a reviewer, a phone number reviewed after the fact, injection scores from
/// 0.5 reviewed after the fact) and captures payloads; at most two requests wait.
pub(crate) fn review_config(openai: &str, kserve: &str, state: &Path, audit_key: &Path) -> String {
    let base = config(
        openai,
        kserve,
        state,
        "[oversight.hold]\nmax_held = 2\ntimeout = \"4s\"",
    )
    .replace(
        "name = \"chat\"\npath_prefix = \"/v1/\"\nupstream = \"openai\"\nprotocol = \"openai\"\n",
        "name = \"chat\"\npath_prefix = \"/v1/\"\nupstream = \"openai\"\nprotocol = \"openai\"\npolicy = \"guarded\"\ncapture_payloads = true\n",
    );
    format!(
        r#"{base}
[roles.reviewer]
actions = ["review"]

[roles.auditor]
actions = ["review", "audit-read"]

[roles.admin]
actions = ["admin"]

[policies.guarded]
request = {{ "pii.email" = "hold", "pii.phone" = "review" }}
response = {{ "secret.*" = "review" }}
injection = {{ action = "flag", threshold = 1.0, review = "review", review_threshold = 0.5 }}

[audit]
dir = "{trail}"
signing_key = {{ file = "{key}" }}
master_key = {{ file = "{state}/master.key" }}
"#,
        trail = state.join("trail").display(),
        key = audit_key.display(),
        state = state.display(),
    )
}

pub(crate) async fn items(c: &TestClient, gw: &GatewayProcess, key: &str, status: &str) -> Vec<Value> {
    let (s, v) = admin(
        c,
        gw,
        Some(key),
        Method::GET,
        &format!("/admin/reviews?status={status}"),
        Value::Null,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_requests_wait_for_a_reviewer_and_after_the_fact_items_can_block_the_caller() {
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(std::sync::Arc::clone(&received)),
        ..DemoOptions::default()
    })
    .await;
    let k = kserve().await;
    let state = TempDir::new("rampart-review").unwrap();
    let audit_key = audit_key(state.path());
    master_key(state.path());
    let text = review_config(&o.url(), &k.url(), state.path(), &audit_key);
    let keys = make_keys(state.path(), &text);
    let cfg = state.join("keys-config.toml");
    let reviewer = keys_cmd(
        state.path(),
        &cfg,
        &["create", "--subject", "reviewer-ann", "--role", "reviewer"],
    );
    let auditor = keys_cmd(
        state.path(),
        &cfg,
        &["create", "--subject", "dpo-bob", "--role", "auditor"],
    );
    let gw = start(&text);
    let c = TestClient::http1();
    let seen = || received.lock().unwrap().len();

    let ask = |content: &'static str| {
        let c = c.clone();
        let url = gw.url("main");
        let key = keys.app.clone();
        tokio::spawn(async move {
            let auth = format!("Bearer {key}");
            c.request(
                Method::POST,
                &format!("{url}/v1/chat/completions"),
                &[("content-type", "application/json"), ("authorization", &auth)],
                json!({"model": "m", "messages": [{"role": "user", "content": content}]}).to_string(),
            )
            .await
            .unwrap()
        })
    };
    // Two requests with an e-mail address are held; a third finds the queue full.
    let first = ask("please write to jane.doe@example.com about the refund");
    let second = ask("forward this to john.roe@example.org now");
    assert!(
        eventually(5, async || items(&c, &gw, &reviewer, "pending").await.len() == 2).await,
        "both requests are waiting"
    );
    let third = ask("and cc ops@example.net").await.unwrap();
    assert_eq!(third.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(&third)["error"]["code"], "review_queue_full");
    assert_eq!(seen(), 0, "nothing reached the model before a decision");

    let pending = items(&c, &gw, &reviewer, "pending").await;
    let find = |needle: &str| {
        pending
            .iter()
            .find(|i| i["preview"].as_str().unwrap_or("").contains(needle))
            .cloned()
            .unwrap_or_else(|| panic!("no item with {needle}: {pending:?}"))
    };
    let a = find("refund");
    let b = find("forward");
    // What a reviewer needs, and no more: kinds, scores, the caller, a redacted preview.
    assert_eq!(a["mode"], "hold");
    assert_eq!(a["reasons"][0]["kind"], "pii.email");
    assert_eq!(a["principal"], "app");
    assert_eq!(a["route"], "chat");
    assert_eq!(a["payload_captured"], true);
    assert!(a["preview"].as_str().unwrap().contains("[EMAIL]"), "{a}");
    assert!(
        !a.to_string().contains("jane.doe"),
        "the list shows no personal data: {a}"
    );
    let id_a = a["id"].as_str().unwrap().to_owned();
    let id_b = b["id"].as_str().unwrap().to_owned();
    // One item in full: the payload is opened only for a reviewer who may read payloads.
    let (_, plain) = admin(
        &c,
        &gw,
        Some(&reviewer),
        Method::GET,
        &format!("/admin/reviews/{id_a}"),
        Value::Null,
    )
    .await;
    assert!(
        plain.get("payload").is_none() && !plain.to_string().contains("jane.doe"),
        "{plain}"
    );
    let (_, opened) = admin(
        &c,
        &gw,
        Some(&auditor),
        Method::GET,
        &format!("/admin/reviews/{id_a}"),
        Value::Null,
    )
    .await;
    assert!(
        opened["payload"]["request"]
            .as_str()
            .unwrap()
            .contains("jane.doe@example.com"),
        "{opened}"
    );

    // Who may decide: not a viewer, not the operator; a reject needs a reason.
    for key in [&keys.viewer, &keys.ops] {
        let (s, _) = admin(
            &c,
            &gw,
            Some(key),
            Method::POST,
            &format!("/admin/reviews/{id_a}"),
            json!({"decision": "approve"}),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let (s, v) = admin(
        &c,
        &gw,
        Some(&reviewer),
        Method::POST,
        &format!("/admin/reviews/{id_b}"),
        json!({"decision": "reject"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = admin(
        &c,
        &gw,
        Some(&reviewer),
        Method::POST,
        &format!("/admin/reviews/{id_a}"),
        json!({"decision": "acceptable"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "a held item is approved or rejected: {v}");

    // Approve one: it goes to the model and its client gets the answer.
    let (s, v) = admin(
        &c,
        &gw,
        Some(&reviewer),
        Method::POST,
        &format!("/admin/reviews/{id_a}"),
        json!({"decision": "approve", "reason": "customer asked for it"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = first.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(seen(), 1);
    // Reject the other: a clear error, and the model never saw it.
    let (s, _) = admin(
        &c,
        &gw,
        Some(&reviewer),
        Method::POST,
        &format!("/admin/reviews/{id_b}"),
        json!({"decision": "reject", "reason": "exfiltration attempt"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = second.await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(body(&r)["error"]["code"], "rejected_by_reviewer");
    assert_eq!(header(&r, "x-should-retry"), Some("false"));
    assert_eq!(seen(), 1);
    // A decision is final.
    let (s, v) = admin(
        &c,
        &gw,
        Some(&auditor),
        Method::POST,
        &format!("/admin/reviews/{id_b}"),
        json!({"decision": "approve"}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    // Nobody decides: the route's default (refuse) applies after the timeout.
    let r = ask("reach me at late@example.com").await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body(&r)["error"]["code"], "review_timeout");
    assert_eq!(items(&c, &gw, &reviewer, "expired").await.len(), 1);
    assert_eq!(seen(), 1);

    // A client that gives up while held frees its slot, and its item cannot be approved
    // into nothing: it is marked expired.
    let quitter = ask("cc quitter@example.com please");
    assert!(eventually(5, async || items(&c, &gw, &reviewer, "pending").await.len() == 1).await);
    quitter.abort();
    assert!(
        eventually(5, async || {
            let (_, v) = admin(
                &c,
                &gw,
                Some(&reviewer),
                Method::GET,
                "/admin/reviews?status=expired",
                Value::Null,
            )
            .await;
            v["held_here"] == 0
                && v["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|i| i["decided_by"] == "client_gone")
        })
        .await,
        "the abandoned hold is released and expired"
    );
    assert_eq!(seen(), 1);

    // After the fact: answered at once, queued; unacceptable, and the caller blocked.
    let r = ask("call me on +44 20 7946 0958 tomorrow").await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(seen(), 2);
    assert!(eventually(3, async || !items(&c, &gw, &reviewer, "pending").await.is_empty()).await);
    let after = items(&c, &gw, &reviewer, "pending").await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["mode"], "after");
    assert_eq!(after[0]["reasons"][0]["kind"], "pii.phone");
    let id_c = after[0]["id"].as_str().unwrap().to_owned();
    let (_, opened) = admin(
        &c,
        &gw,
        Some(&auditor),
        Method::GET,
        &format!("/admin/reviews/{id_c}"),
        Value::Null,
    )
    .await;
    assert!(
        opened["payload"]["response"]
            .as_str()
            .unwrap_or("")
            .contains("chat.completion"),
        "the answer is there too: {opened}"
    );
    let (s, v) = admin(
        &c,
        &gw,
        Some(&reviewer),
        Method::POST,
        &format!("/admin/reviews/{id_c}"),
        json!({"decision": "unacceptable", "reason": "harvesting phone numbers", "block_principal": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = ask("hello again").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(body(&r)["error"]["code"], "blocked_by_reviewer");

    // A response rule queues answers too: a secret in the model's answer (another
    // caller: `app` is blocked now). The preview comes from the captured request.
    let auth = format!("Bearer {}", keys.acme_app);
    let r = c
        .request(
            Method::POST,
            &format!("{}/v1/chat/completions", gw.url("main")),
            &[("content-type", "application/json"), ("authorization", &auth)],
            json!({"model": "m", "messages": [{"role": "user", "content": "What is the deploy key?"}]}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        eventually(3, async || items(&c, &gw, &reviewer, "pending")
            .await
            .iter()
            .any(|i| i["principal"] == "acme-app"))
        .await
    );
    let queued = items(&c, &gw, &reviewer, "pending").await;
    let answer = queued.iter().find(|i| i["principal"] == "acme-app").unwrap();
    assert_eq!(answer["mode"], "after");
    assert!(
        answer["reasons"][0]["kind"].as_str().unwrap().starts_with("secret."),
        "{answer}"
    );
    assert!(answer["preview"].as_str().unwrap().contains("deploy key"), "{answer}");

    // Erasure: the subject's previews go and the sealed payload cannot be opened.
    let (s, v) = admin(
        &c,
        &gw,
        Some(&auditor),
        Method::POST,
        "/admin/audit/erase",
        json!({"subject": "app"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "erasure is an admin's: {v}");
    let dpo = keys_cmd(state.path(), &cfg, &["create", "--subject", "dpo", "--role", "admin"]);
    assert!(
        eventually(3, async || admin(
            &c,
            &gw,
            Some(&dpo),
            Method::POST,
            "/admin/audit/erase",
            json!({"subject": "app"})
        )
        .await
        .0 == StatusCode::OK)
        .await
    );
    let (_, erased) = admin(
        &c,
        &gw,
        Some(&auditor),
        Method::GET,
        &format!("/admin/reviews/{id_a}"),
        Value::Null,
    )
    .await;
    assert!(erased.get("preview").is_none(), "{erased}");
    assert!(!erased.to_string().contains("jane.doe"), "{erased}");
    assert_eq!(
        erased["status"], "approved",
        "the decision stays on the record: {erased}"
    );
    let mut gw = gw;
    gw.signal("TERM").unwrap();
    assert!(gw.wait_exit(Duration::from_secs(15)).unwrap().success());

    // Every decision is on the record with the reviewer and the reason.
    let records: Vec<Value> = rampart_audit::store::read_entries(&state.join("trail"), "test-node")
        .unwrap()
        .into_iter()
        .map(|e| e.value())
        .filter(|r| r["type"] == "admin" && r["action"] == "review_decision")
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    assert!(
        records
            .iter()
            .any(|r| r["actor"].as_str().unwrap().starts_with("reviewer-ann")
                && r["detail"].as_str().unwrap().contains("exfiltration attempt"))
    );
    assert!(
        records
            .iter()
            .any(|r| r["detail"].as_str().unwrap().contains("caller app blocked"))
    );

    // The report counts the decisions and lists who decided what and why.
    let md = report(&text, state.path(), &audit_key);
    let section = md
        .split("## Human oversight: review decisions")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        section.contains("| approved | 1 |")
            && section.contains("| rejected | 1 |")
            && section.contains("| unacceptable | 1 |"),
        "{section}"
    );
    assert!(
        section.contains("exfiltration attempt") && section.contains("reviewer-ann ("),
        "{section}"
    );
    assert!(!md.contains("jane.doe"), "no payload in the report");
    assert!(
        md.contains("| Human oversight (stop switch, review queue) | yes |")
            && md.contains("1 policies send findings to reviewers"),
        "{md}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serious_incidents_count_down_to_their_article_73_deadline() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let state = TempDir::new("rampart-incidents").unwrap();
    let audit_key = audit_key(state.path());
    let text = config(&o.url(), &k.url(), state.path(), "") + &audit_section(&state.join("trail"), &audit_key);
    let keys = make_keys(state.path(), &text);
    let gw = start(&text);
    let c = TestClient::http1();
    let (s, _) = admin(
        &c,
        &gw,
        Some(&keys.viewer),
        Method::POST,
        "/admin/incidents",
        json!({"title": "x"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/incidents",
        json!({"title": "x", "severity": "minor"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    // Became aware 13 days ago of a widespread infringement (2 days): overdue. A
    // serious one from an hour ago (15 days): 15 days left.
    let aware = rampart_identity::time::format(rampart_identity::time::now() - 13 * 86_400);
    let (s, late) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/incidents",
        json!({"title": "PII of other customers in answers", "severity": "widespread", "aware": aware, "source": "review:abc"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{late}");
    assert!(late["seconds_left"].as_i64().unwrap() < 0, "{late}");
    let (s, open) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/incidents",
        json!({"title": "Wrong dosage advice", "severity": "serious"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(open["deadline_days"], 15);
    let left = open["seconds_left"].as_i64().unwrap();
    assert!((15 * 86_400 - 60..=15 * 86_400).contains(&left), "{left}");
    let (_, list) = admin(
        &c,
        &gw,
        Some(&keys.viewer),
        Method::GET,
        "/admin/incidents",
        Value::Null,
    )
    .await;
    assert_eq!(list["incidents"].as_array().unwrap().len(), 2);
    let third = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        "/admin/incidents",
        json!({"title": "Reported one", "severity": "death"}),
    )
    .await
    .1;
    let id = third["id"].as_str().unwrap();
    let (s, v) = admin(
        &c,
        &gw,
        Some(&keys.ops),
        Method::POST,
        &format!("/admin/incidents/{id}"),
        json!({"reported": true}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["reported"].is_string() && v["seconds_left"].is_null());
    let mut gw = gw;
    gw.signal("TERM").unwrap();
    assert!(gw.wait_exit(Duration::from_secs(15)).unwrap().success());

    let md = report(&text, state.path(), &audit_key);
    let section = md
        .split("## Serious incidents (AI Act Art. 73)")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        section.contains("PII of other customers in answers | widespread |") && section.contains("OVERDUE"),
        "{section}"
    );
    assert!(
        section.contains("Wrong dosage advice | serious |") && section.contains("open: 15 days left"),
        "{section}"
    );
    assert!(
        section.contains("Reported one | death |") && section.contains("(on time)"),
        "{section}"
    );
}
