//! Process lifecycle: hot reload (SIGHUP and admin API, valid and invalid configs, with
//! requests in flight), graceful shutdown with a stream in flight, `check-config`
//! errors and readiness. (`rampart demo` is in `demo.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use http::{Method, StatusCode};
use rampart_testkit::DemoOptions;
use rampart_testkit::client::{TestClient, timed_chunks};
use serde_json::json;

/// A streamed chat completion sent now, read to its end: its status and its text.
fn stream_in_flight(
    c: &TestClient,
    url: String,
) -> tokio::task::JoinHandle<Result<(StatusCode, String), rampart_testkit::client::Error>> {
    let c = c.clone();
    tokio::spawn(async move {
        let resp = c
            .send(
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                stream_request(),
            )
            .await?;
        let status = resp.status();
        let chunks = timed_chunks(resp.into_body()).await?;
        let text: String = chunks
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect();
        Ok((status, text))
    })
}

/// The standard config with its closed route (`/private/`) made public.
fn open_closed_route(config: &str) -> String {
    let opened = config.replace(
        "name = \"closed\"\npath_prefix = \"/private/\"\nupstream = \"openai\"",
        "name = \"closed\"\npath_prefix = \"/private/\"\nupstream = \"openai\"\npublic = true",
    );
    assert_ne!(opened, config, "the closed route is where the test expects it");
    opened
}

fn stream_request() -> String {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a b c d e f g h"}]}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_valid_and_invalid_with_requests_in_flight() {
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let original = base_config(&o.url(), &k.url());
    let gw = start(&original);
    let c = TestClient::http1();
    let main = gw.url("main");

    // A stream that spans the reloads.
    let in_flight = stream_in_flight(&c, format!("{main}/v1/chat/completions"));
    settle().await;

    // 1. Valid change over SIGHUP: the closed route becomes public.
    let opened = open_closed_route(&original);
    assert_eq!(
        c.get(&format!("{main}/private/x")).await.unwrap().status,
        StatusCode::UNAUTHORIZED
    );
    std::fs::write(&gw.config_path, &opened).unwrap();
    gw.signal("HUP").unwrap();
    gw.wait_for_log(Duration::from_secs(5), |l| l["message"] == "config reloaded")
        .expect("reload logged");
    // Public now: the demo server answers its own 404 for this path.
    let r = c.get(&format!("{main}/private/x")).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such endpoint")
    );

    // 2. Invalid config over SIGHUP: rejected with a clear log line; old config serves.
    std::fs::write(&gw.config_path, opened.replace("[[routes]]", "[[routez]]")).unwrap();
    gw.signal("HUP").unwrap();
    let rejected = gw
        .wait_for_log(Duration::from_secs(5), |l| l["result"] == "failure")
        .expect("rejection logged");
    let why = rejected["error"].as_str().unwrap();
    assert!(why.contains("rampart.toml") && why.contains("routez"), "{why}");
    assert_eq!(
        c.get(&format!("{main}/v1/models")).await.unwrap().status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("{main}/private/x")).await.unwrap().status,
        StatusCode::NOT_FOUND
    );

    // 3. The admin API refuses a reload without credentials (tests/identity.rs
    //    reloads with an admin key); SIGHUP restores the original config.
    let admin = gw.admin_url();
    let r = c
        .request(Method::POST, &format!("{admin}/admin/reload"), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "missing_credentials");
    std::fs::write(&gw.config_path, &original).unwrap();
    gw.signal("HUP").unwrap();
    let mut closed_again = false;
    for _ in 0..50 {
        if c.get(&format!("{main}/private/x")).await.unwrap().status == StatusCode::UNAUTHORIZED {
            closed_again = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed_again, "the restored config did not take effect");

    // The stream that started before all this finished intact.
    let (status, text) = in_flight.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(text.contains("\"content\":\"h\""));

    let m = c.get(&format!("{admin}/metrics")).await.unwrap().text();
    assert_eq!(metric(&m, "rampart_config_reloads_total", &["result=\"success\""]), 2.0);
    assert_eq!(metric(&m, "rampart_config_reloads_total", &["result=\"failure\""]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_a_stream_finish() {
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let mut gw = start(&base_config(&o.url(), &k.url()));
    let c = TestClient::http1();
    let resp = c
        .send(
            Method::POST,
            &format!("{}/v1/chat/completions", gw.url("main")),
            &[("content-type", "application/json")],
            stream_request(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let reader = tokio::spawn(timed_chunks(resp.into_body()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    gw.signal("TERM").unwrap();
    // Readiness flips and new connections are refused while the stream drains.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TestClient::http1()
            .get(&format!("{}/v1/models", gw.url("main")))
            .await
            .is_err()
    );
    let chunks = reader.await.unwrap().unwrap();
    let text: String = chunks
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(text.ends_with("data: [DONE]\n\n"), "stream was cut: {text}");
    let status = tokio::task::spawn_blocking(move || {
        let s = gw.wait_exit(Duration::from_secs(10));
        (s, gw)
    })
    .await
    .unwrap();
    let (exit, gw) = status;
    assert!(exit.expect("gateway exited").success());
    let logs = gw.access_logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["event.outcome"], "success");
    assert_eq!(logs[0]["rampart.client_disconnected"], false);
    assert!(gw.logs().iter().any(|l| l["message"] == "all connections drained"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_upstream_health() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let config = base_config(&o.url(), &k.url()).replace(
        "name = \"openai\"\ntargets",
        "name = \"openai\"\nhealth.path = \"/health\"\nhealth.interval = \"100ms\"\ntargets",
    );
    let gw = start(&config);
    let c = TestClient::http1();
    let admin = gw.admin_url();
    assert_eq!(c.get(&format!("{admin}/healthz")).await.unwrap().status, StatusCode::OK);
    assert_eq!(c.get(&format!("{admin}/readyz")).await.unwrap().status, StatusCode::OK);
    o.stop().await;
    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = c.get(&format!("{admin}/readyz")).await.unwrap().status;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    // Liveness is unaffected, and with every target out the route answers 503 at once.
    assert_eq!(c.get(&format!("{admin}/healthz")).await.unwrap().status, StatusCode::OK);
    let r = c.get(&format!("{}/v1/models", gw.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json()["error"]["code"], "no_healthy_upstream");
    assert_eq!(
        c.get(&format!("{admin}/nope")).await.unwrap().status,
        StatusCode::NOT_FOUND
    );
}

fn check_config(content: &str) -> (i32, String) {
    let dir = rampart_testkit::TempDir::new("rampart-check").unwrap();
    let path = dir.join("rampart.toml");
    std::fs::write(&path, content).unwrap();
    let out = Command::new(bin()).arg("check-config").arg(&path).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn check_config_names_file_line_and_key() {
    let good = base_config("http://127.0.0.1:1", "http://127.0.0.1:2");
    let (code, text) = check_config(&good);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok (1 listeners, 2 upstreams, 4 routes)"), "{text}");

    let cases: &[(&str, &str, &str, &str)] = &[
        // (text to change, replacement, expected words, key on the reported line)
        (
            "upstream = \"kserve\"",
            "upstream = \"nowhere\"",
            "routes[2].upstream: route \"kserve\": no upstream named \"nowhere\"",
            "upstream",
        ),
        (
            "first_byte = \"1s\"",
            "first_byte = \"soon\"",
            "defaults.timeouts.first_byte: `soon` is not a duration",
            "first_byte",
        ),
        (
            "header_read_timeout = \"1s\"",
            "header_read_timeout = \"1s\"\nheader_raed_timeout = \"1s\"",
            "unknown field `header_raed_timeout`",
            "header_raed_timeout",
        ),
        (
            "max_body_bytes = 65536",
            "max_body_bytes = 0",
            "defaults.limits.max_body_bytes: must be greater than zero",
            "max_body_bytes",
        ),
        (
            "protocol = \"kserve\"",
            "protocol = \"grpc\"",
            "unknown variant `grpc`",
            "protocol",
        ),
        (
            "listen = \"127.0.0.1:0\"\nheader",
            "listen = \"localhost\"\nheader",
            "listeners[0].listen: `localhost` is not an address",
            "listen",
        ),
    ];
    for (from, to, words, key) in cases {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good, "{from}");
        let (code, text) = check_config(&bad);
        assert_eq!(code, 2, "{text}");
        assert!(text.contains(words), "expected {words:?} in {text}");
        // The line number printed is the line where the offending key is written.
        let line: usize = text
            .split("rampart.toml:")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no line number in {text}"));
        let offending = bad.lines().nth(line - 1).unwrap_or("");
        assert!(
            offending.starts_with(key),
            "line {line} is {offending:?}, expected it to hold {key:?}"
        );
    }

    // A missing certificate file is named with its key.
    let tls = good.replacen(
        "header_read_timeout = \"1s\"",
        "header_read_timeout = \"1s\"\ntls.cert = \"missing.pem\"\ntls.key = \"missing.key\"",
        1,
    );
    let (code, text) = check_config(&tls);
    assert_eq!(code, 2);
    assert!(
        text.contains("listeners[0].tls.cert: file") && text.contains("missing.pem"),
        "{text}"
    );

    // Secrets are never inline.
    let inline = good.replacen(
        "name = \"openai\"\ntargets",
        "name = \"openai\"\nheaders.authorization = { prefix = \"Bearer sk-123\" }\ntargets",
        1,
    );
    let (code, text) = check_config(&inline);
    assert_eq!(code, 2);
    assert!(
        text.contains("upstreams[0].headers.authorization: name exactly one of `env` or `file`"),
        "{text}"
    );
    assert!(!text.contains("sk-123"), "the secret was echoed: {text}");

    // Unreadable file.
    let out = Command::new(bin())
        .arg("check-config")
        .arg("/nonexistent/rampart.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/rampart.toml: cannot read the file"));
}

/// Writes `text` the way the kubelet updates a mounted ConfigMap: a new file renamed
/// over the old, so the gateway never reads half a file.
fn replace_file(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_config_file_is_reloaded_when_watched_and_a_bad_one_is_refused_once() {
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let original = base_config(&o.url(), &k.url()).replacen(
        "node_id = \"test-node\"\n",
        "node_id = \"test-node\"\nwatch_config = \"100ms\"\n",
        1,
    );
    assert!(original.contains("watch_config"));
    let gw = start(&original);
    let c = TestClient::http1();
    let main = gw.url("main");
    let private = format!("{main}/private/x");
    let reloads = |result: &'static str| {
        let c = c.clone();
        let url = format!("{}/metrics", gw.admin_url());
        async move {
            let text = c.get(&url).await.unwrap().text();
            metric(
                &text,
                "rampart_config_reloads_total",
                &[&format!("result=\"{result}\"")],
            )
        }
    };
    // Unchanged, the file is not reloaded on every check.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reloads("success").await, 0.0);
    assert_eq!(c.get(&private).await.unwrap().status, StatusCode::UNAUTHORIZED);

    // A stream in flight while the file changes finishes whole.
    let in_flight = stream_in_flight(&c, format!("{main}/v1/chat/completions"));
    settle().await;
    let opened = open_closed_route(&original);
    replace_file(&gw.config_path, &opened);
    gw.wait_for_log(Duration::from_secs(5), |l| l["message"] == "config reloaded")
        .expect("the changed file is reloaded without a signal");
    assert_ne!(c.get(&private).await.unwrap().status, StatusCode::UNAUTHORIZED);
    let (status, text) = in_flight.await.unwrap().unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("[DONE]"), "the stream was cut: {text}");

    // A broken file is refused once, not on every check, and the last good config serves.
    replace_file(
        &gw.config_path,
        &opened.replace("[[routes]]", "[[routes]]\nnot_a_key = 1"),
    );
    gw.wait_for_log(Duration::from_secs(5), |l| l["result"] == "failure")
        .expect("the broken file is refused");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let refusals = gw.logs().iter().filter(|l| l["result"] == "failure").count();
    assert_eq!(refusals, 1, "a rejected version is not retried every check");
    assert_eq!(reloads("failure").await, 1.0);
    assert_ne!(c.get(&private).await.unwrap().status, StatusCode::UNAUTHORIZED);

    // Mended, it is taken at once.
    replace_file(&gw.config_path, &original);
    for _ in 0..50 {
        if c.get(&private).await.unwrap().status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(c.get(&private).await.unwrap().status, StatusCode::UNAUTHORIZED);
    assert_eq!(reloads("success").await, 2.0);
}
