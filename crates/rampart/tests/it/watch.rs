//! Detectors through the real gateway and the demo KServe iris server: honest clients
//! replaying held-out iris rows are never flagged; an equation-solving extraction
//! client (uniform random queries over the features' box) is flagged, alerted and
//! blocked within a bounded number of queries while everyone else keeps being served;
//! a burst of 401s from one address fires the denied-burst detector. Alerts reach a
//! webhook receiver with a signature the test verifies (after one failed delivery that
//! is retried), appear in the ECS alert log and in the audit trail, and `rampart audit
//! verify` still accepts the trail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::common::*;
use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full};
use rampart_testkit::TempDir;
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::http_server::TestServer;
use serde_json::{Value, json};

const SECRET: &str = "webhook-secret-for-tests-0123456789";

/// Iris rows: (features, class).
fn iris() -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testkit/data/iris.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| l.split(',').take(4).map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// A small deterministic generator (the test must be reproducible).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 53) as f64
    }
}

type Deliveries = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A webhook receiver: records every delivery; answers 503 to the very first one (the
/// gateway must retry it) and 200 after.
async fn receiver() -> (TestServer, Deliveries) {
    let seen: Deliveries = Arc::default();
    let s = Arc::clone(&seen);
    let server = TestServer::spawn(loopback(), move |req: http::Request<hyper::body::Incoming>| {
        let s = Arc::clone(&s);
        async move {
            let sig = req
                .headers()
                .get("rampart-signature")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let first = {
                let mut s = s.lock().unwrap();
                s.push((sig, body));
                s.len() == 1
            };
            let status = if first {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()).map_err(|e| match e {}).boxed())
                .unwrap()
        }
    })
    .await
    .unwrap();
    (server, seen)
}

/// Checks `t=…,v1=…` against the body with the shared secret.
fn verify_signature(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = Some(x.to_owned()),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut msg = t.into_bytes();
    msg.push(b'.');
    msg.extend_from_slice(body);
    let want: String = ring::hmac::sign(&key, &msg)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    want == v1
}

fn infer_body(row: &[f64]) -> Value {
    json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": row}]})
}

async fn infer(c: &TestClient, gw: &GatewayProcess, from: &str, row: &[f64]) -> (StatusCode, Value) {
    let r = c
        .request(
            http::Method::POST,
            &format!("{}/v2/models/iris/infer", gw.url("main")),
            &[("x-forwarded-for", from), ("content-type", "application/json")],
            serde_json::to_vec(&infer_body(row)).unwrap(),
        )
        .await
        .unwrap();
    (r.status, r.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extraction_is_flagged_and_blocked_honest_clients_are_not_and_alerts_are_signed() {
    let dir = TempDir::new("rampart-watch").unwrap();
    let rows = iris();
    // Calibrate on two thirds of the data; honest clients replay the other third.
    let train: Vec<&Vec<f64>> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, r)| r)
        .collect();
    let held_out: Vec<Vec<f64>> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, r)| r.clone())
        .collect();
    let csv = dir.join("train.csv");
    let mut text = "sepal_length,sepal_width,petal_length,petal_width\n".to_owned();
    for r in &train {
        text.push_str(&format!("{},{},{},{}\n", r[0], r[1], r[2], r[3]));
    }
    std::fs::write(&csv, text).unwrap();
    let reference = dir.join("iris.reference.json");
    let out = Command::new(bin())
        .args(["watch", "calibrate"])
        .arg(&csv)
        .arg("--out")
        .arg(&reference)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (hook, deliveries) = receiver().await;
    let k = kserve().await;
    let trail = dir.join("trail");
    let key = dir.join("audit.key");
    let kg = Command::new(bin())
        .args(["audit", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(kg.status.success());
    let base = base_config("http://127.0.0.1:9", &k.url())
        .replacen(
            "header_read_timeout = \"1s\"\n",
            "header_read_timeout = \"1s\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
            1,
        )
        .replacen(
            "protocol = \"kserve\"\npublic = true\n",
            &format!(
                "protocol = \"kserve\"\npublic = true\n[routes.output]\ndecimals = 3\n\
                 [routes.watch]\nreference = \"{}\"\nextraction = \"block\"\n",
                reference.display()
            ),
            1,
        );
    let config = format!(
        "{base}\n[watch]\nalert_log = true\npenalty = \"10m\"\n\
         [watch.behaviour]\ndenied_per_minute = 20\n\
         [watch.webhook]\nurl = \"{}/alerts\"\nsecret = {{ env = \"RAMPART_TEST_WEBHOOK\" }}\nretries = 3\n\
         [audit]\ndir = \"{}\"\nsigning_key = {{ file = \"{}\" }}\n",
        hook.url(),
        trail.display(),
        key.display()
    );
    let gw = GatewayProcess::start_with_env(
        bin(),
        &config,
        TempDir::new("rampart-watch-gw").unwrap(),
        &[("RAMPART_TEST_WEBHOOK", SECRET)],
    )
    .unwrap();
    let c = TestClient::http1();

    // Honest clients: held-out rows at random, 150 requests each.
    let mut rng = Lcg(7);
    for client in 1..=3 {
        let from = format!("10.0.0.{client}");
        for _ in 0..150 {
            let row = &held_out[usize::try_from(rng.next() % held_out.len() as u64).unwrap()];
            let (status, body) = infer(&c, &gw, &from, row).await;
            assert_eq!(status, StatusCode::OK, "honest client {from}: {body}");
        }
    }
    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    for d in ["extraction_spacing", "extraction_ood", "extraction_boundary"] {
        assert_eq!(
            metric(&m, "rampart_detections_total", &[&format!("detector=\"{d}\"")]),
            0.0,
            "honest traffic fired {d}:\n{m}"
        );
    }

    // The attacker: uniform random queries over the box (Tramèr et al.'s equation
    // solving and random-query surrogates both ask this way).
    let (lo, hi) = ([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5]);
    let mut blocked_after = None;
    for q in 1..=200 {
        let row: Vec<f64> = (0..4).map(|j| lo[j] + rng.unit() * (hi[j] - lo[j])).collect();
        let (status, body) = infer(&c, &gw, "10.0.0.66", &row).await;
        if status == StatusCode::FORBIDDEN {
            assert_eq!(body["code"], "principal_blocked", "{body}");
            blocked_after = Some(q);
            break;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let blocked_after = blocked_after.expect("the extraction client was never blocked");
    eprintln!("extraction client blocked after {blocked_after} queries");
    assert!(blocked_after <= 60, "blocked only after {blocked_after} queries");
    // Blocked from now on, whatever it asks; honest clients are still served.
    let (status, _) = infer(&c, &gw, "10.0.0.66", &held_out[0]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let meta = c
        .request(
            http::Method::GET,
            &format!("{}/v2/models/iris", gw.url("main")),
            &[("x-forwarded-for", "10.0.0.66")],
            Vec::new(),
        )
        .await
        .unwrap();
    assert_eq!(meta.status, StatusCode::FORBIDDEN, "a block covers the whole gateway");
    assert_eq!(infer(&c, &gw, "10.0.0.1", &held_out[1]).await.0, StatusCode::OK);

    // A credential-guessing burst from one address: 401s, then the alert.
    for _ in 0..25 {
        let r = c
            .request(
                http::Method::GET,
                &format!("{}/private/x", gw.url("main")),
                &[("x-forwarded-for", "10.0.0.77"), ("authorization", "Bearer guess")],
                Vec::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    // Webhook: the extraction and the burst alerts, signed; the first delivery (503)
    // was retried.
    let mut alerts = Vec::new();
    for _ in 0..100 {
        alerts = deliveries.lock().unwrap().clone();
        let detectors: Vec<String> = alerts
            .iter()
            .map(|(_, b)| {
                serde_json::from_slice::<Value>(b).unwrap()["detector"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        if detectors.iter().any(|d| d.starts_with("extraction")) && detectors.iter().any(|d| d == "denied_burst") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let parsed: Vec<Value> = alerts.iter().map(|(_, b)| serde_json::from_slice(b).unwrap()).collect();
    eprintln!("alerts: {parsed:#?}");
    assert!(
        parsed
            .iter()
            .any(|a| a["detector"].as_str().unwrap().starts_with("extraction") && a["action"] == "block"),
        "{parsed:?}"
    );
    assert!(parsed.iter().any(|a| a["detector"] == "denied_burst"), "{parsed:?}");
    for (sig, body) in &alerts {
        assert!(verify_signature(sig, body), "bad signature {sig}");
        assert!(
            !verify_signature(sig, &[body.as_ref(), b" "].concat()),
            "a changed body must not verify"
        );
    }
    assert!(
        alerts.len() >= 3,
        "the refused first delivery is retried: {}",
        alerts.len()
    );
    assert_eq!(alerts[0].1, alerts[1].1, "the retry carries the same alert");
    // No raw addresses in alerts: principals are pseudonyms.
    for a in &parsed {
        assert!(!a.to_string().contains("10.0.0."), "{a}");
    }
    // One alert per detector and principal per cooldown, not one per request.
    let extraction_alerts = parsed
        .iter()
        .filter(|a| a["detector"].as_str().unwrap().starts_with("extraction"))
        .map(|a| (a["id"].clone(), a["detector"].clone()))
        .collect::<std::collections::HashSet<_>>();
    assert!(extraction_alerts.len() <= 3, "{extraction_alerts:?}");

    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert!(
        metric(&m, "rampart_alerts_total", &["detector=\"denied_burst\""]) >= 1.0,
        "{m}"
    );
    assert!(
        metric(&m, "rampart_alert_deliveries_total", &["result=\"retried\""]) >= 1.0,
        "{m}"
    );
    // The ECS alert line on standard output.
    assert!(
        gw.wait_for_access_log(std::time::Duration::from_secs(5), |l| l["event"]["kind"] == "alert"
            && l["rule"]["name"] == "denied_burst")
            .is_some(),
        "{}",
        gw.stdout_text()
    );

    // The trail holds the alerts and still verifies.
    drop(c);
    let mut gw = gw;
    gw.signal("TERM").unwrap();
    assert!(gw.wait_exit(std::time::Duration::from_secs(15)).is_some());
    let records: Vec<Value> = rampart_audit::store::read_entries(&trail, "test-node")
        .unwrap()
        .into_iter()
        .map(|e| e.value())
        .collect();
    let audited: Vec<&Value> = records.iter().filter(|r| r["type"] == "alert").collect();
    assert!(audited.iter().any(|r| r["detector"] == "denied_burst"), "{audited:?}");
    assert!(
        audited
            .iter()
            .any(|r| r["detector"].as_str().unwrap().starts_with("extraction")),
        "{audited:?}"
    );
    let blocked: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "exchange" && r["error"] == "principal_blocked")
        .collect();
    assert!(!blocked.is_empty());
    let v = Command::new(bin())
        .args(["audit", "verify"])
        .arg(&trail)
        .arg("--pub")
        .arg(format!("{}.pub", key.display()))
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
}

/// An OpenAI route's drift: steady English prompts are quiet; when the traffic turns to
/// another language, the prompt drift detector fires, naming the script, and the alert
/// is an audit-free log line here (no `[audit]`), counted in the metrics.
#[tokio::test]
async fn llm_prompt_drift_fires_when_the_traffic_changes_language() {
    let o = openai(rampart_testkit::DemoOptions::default()).await;
    let base = base_config(&o.url(), "http://127.0.0.1:9").replacen(
        "protocol = \"openai\"\npublic = true\n",
        "protocol = \"openai\"\npublic = true\n[routes.watch]\ndrift_window = 100\n",
        1,
    );
    let gw = start(&format!("{base}\n[watch]\nalert_log = true\n"));
    let c = TestClient::http1();
    let chat = |text: &str| json!({"model": "m", "messages": [{"role": "user", "content": text}]});
    let url = format!("{}/v1/chat/completions", gw.url("main"));
    let english = [
        "What is the weather like today?",
        "Summarise this short note for me, please.",
    ];
    for i in 0..400 {
        let r = c.post_json(&url, &chat(english[i % 2])).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
    }
    let metrics = || async {
        let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
        metric(&m, "rampart_detections_total", &["detector=\"drift_input\""])
    };
    assert_eq!(metrics().await, 0.0, "steady traffic must not drift");
    for _ in 0..150 {
        let r = c
            .post_json(&url, &chat("Какая сегодня погода в Москве?"))
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "drift is recorded and alerted, never refused");
    }
    assert!(metrics().await >= 1.0);
    let alert = gw
        .wait_for_access_log(std::time::Duration::from_secs(5), |l| {
            l["event"]["kind"] == "alert" && l["rule"]["name"] == "drift_input"
        })
        .expect("no drift alert");
    assert!(
        alert["event"]["reason"].as_str().unwrap().contains("prompt script"),
        "{alert}"
    );
}
