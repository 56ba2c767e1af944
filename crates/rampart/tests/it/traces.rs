//! OpenTelemetry traces from the real gateway binary to a real OTLP receiver
//! (scripts/otlp-receiver.py, which decodes every export with the official
//! `opentelemetry-proto` classes over HTTP/protobuf and gRPC): the span tree of an
//! exchange, the GenAI and Rampart attributes (finding kinds, never values), W3C trace
//! context to the upstream and into the access log, sampling, retries after a refused
//! export, and a dead collector that costs traffic nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use http::{Method, StatusCode};
use rampart_testkit::DemoOptions;
use rampart_testkit::TempDir;
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;
use serde_json::{Value, json};

/// The receiver process and the JSON lines it printed (one per export request).
struct Receiver {
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<String>>,
    port: u16,
}

impl Receiver {
    fn start(transport: &str, fail: u32) -> Self {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let python = repo.join("target/clients/venv/bin/python");
        assert!(
            python.exists(),
            "target/clients/venv is missing: run scripts/clients.sh (scripts/test.sh runs it)"
        );
        let mut child = Command::new(python)
            .arg(repo.join("scripts/otlp-receiver.py"))
            .args([&format!("--{transport}"), "0", "--fail", &fail.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let port = first
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{transport}=")))
            .unwrap_or_else(|| panic!("receiver said {first:?}"))
            .parse()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let raw = Arc::new(Mutex::new(String::new()));
        let (l, r) = (Arc::clone(&lines), Arc::clone(&raw));
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { break };
                r.lock().unwrap().push_str(&line);
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    l.lock().unwrap().push(v);
                }
            }
        });
        Self {
            child,
            lines,
            raw,
            port,
        }
    }

    fn spans(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .flat_map(|l| l["spans"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Waits until the spans of `trace` include a server span and `n` spans in all.
    fn wait_for_trace(&self, trace: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let spans: Vec<Value> = self.spans().into_iter().filter(|s| s["trace_id"] == trace).collect();
            if spans.len() >= n || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Seen = rampart_testkit::demo::SeenHeaders;

async fn upstream() -> (rampart_testkit::TestServer, Seen) {
    let seen: Seen = Arc::default();
    let server = openai(DemoOptions {
        received_headers: Some(Arc::clone(&seen)),
        ..DemoOptions::default()
    })
    .await;
    (server, seen)
}

/// The `traceparent` the model server received on its `n`-th chat request.
fn sent_traceparent(seen: &Seen, n: usize) -> Option<String> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(p, _)| p == "/v1/chat/completions")
        .nth(n)
        .and_then(|(_, h)| h.get("traceparent"))
        .map(|v| v.to_str().unwrap().to_owned())
}

fn config(openai: &str, kserve: &str, traces: &str) -> String {
    let base = base_config(openai, kserve).replacen(
        "protocol = \"openai\"\npublic = true\n",
        "protocol = \"openai\"\npublic = true\npolicy = \"guarded\"\n",
        1,
    );
    format!("{base}\n[policies.guarded]\nrequest = {{ \"pii.*\" = \"pseudonymise\" }}\n\n[traces]\n{traces}")
}

async fn chat(c: &TestClient, gw: &GatewayProcess, body: &Value, headers: &[(&str, &str)]) -> StatusCode {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    let r = c
        .request(
            Method::POST,
            &format!("{}/v1/chat/completions", gw.url("main")),
            &all,
            body.to_string(),
        )
        .await
        .unwrap();
    r.status
}

fn attr<'a>(span: &'a Value, key: &str) -> &'a Value {
    &span["attributes"][key]
}

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const EMAIL: &str = "jane.roe@example.org";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_becomes_a_span_tree_at_an_otlp_http_receiver() {
    // The first export is refused (503): the exporter must retry, not lose it.
    let receiver = Receiver::start("http", 1);
    let (o, seen) = upstream().await;
    let k = kserve().await;
    let text = config(
        &o.url(),
        &k.url(),
        &format!(
            "endpoint = \"http://127.0.0.1:{}\"\nsample_ratio = 1.0\ninterval = \"100ms\"\nheaders = {{ authorization = {{ env = \"OTLP_AUTH\" }} }}\n",
            receiver.port
        ),
    );
    let dir = TempDir::new("rampart-traces").unwrap();
    let gw = GatewayProcess::start_with_env(bin(), &text, dir, &[("OTLP_AUTH", "Bearer collector-t0ken")]).unwrap();
    let c = TestClient::http1();

    // A caller in a trace, with a tracestate, sending PII and GenAI settings.
    let caller = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    let body = json!({"model": "rampart-demo-chat", "max_tokens": 50, "temperature": 0.5, "top_p": 0.9,
        "messages": [{"role": "user", "content": format!("Please write to {EMAIL} about the invoice")}]});
    let status = chat(
        &c,
        &gw,
        &body,
        &[("traceparent", &caller), ("tracestate", "vendor=opaque")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    let spans = receiver.wait_for_trace(CALLER_TRACE, 3);
    let server = spans
        .iter()
        .find(|s| s["kind"] == 2)
        .unwrap_or_else(|| panic!("no server span: {spans:#?}"));
    let span_id = server["span_id"].as_str().unwrap();
    assert_eq!(server["parent_span_id"], CALLER_SPAN, "the caller's span is the parent");
    assert_eq!(
        server["flags"].as_u64().unwrap() & 0x301,
        0x301,
        "sampled, remote parent"
    );
    assert_eq!(server["name"], "POST openai");
    assert_eq!(server["scope"], "rampart");
    assert_eq!(server["resource"]["service.name"], "rampart");
    assert_eq!(server["resource"]["service.instance.id"], "test-node");
    assert_eq!(attr(server, "http.request.method"), "POST");
    assert_eq!(attr(server, "http.response.status_code"), 200);
    assert_eq!(attr(server, "url.path"), "/v1/chat/completions");
    assert_eq!(attr(server, "rampart.route"), "openai");
    assert_eq!(attr(server, "rampart.decision"), "redact");
    assert_eq!(attr(server, "gen_ai.operation.name"), "chat");
    assert_eq!(attr(server, "gen_ai.request.model"), "rampart-demo-chat");
    assert_eq!(attr(server, "gen_ai.request.max_tokens"), 50);
    assert_eq!(attr(server, "gen_ai.request.temperature"), 0.5);
    assert_eq!(attr(server, "gen_ai.request.top_p"), 0.9);
    assert_eq!(attr(server, "gen_ai.response.finish_reasons"), &json!(["stop"]));
    assert!(
        attr(server, "gen_ai.response.id")
            .as_str()
            .unwrap()
            .starts_with("chatcmpl-")
    );
    assert!(attr(server, "gen_ai.usage.input_tokens").as_i64().unwrap() > 0);
    assert!(attr(server, "gen_ai.usage.output_tokens").as_i64().unwrap() > 0);
    let kinds = attr(server, "rampart.finding_kinds").as_array().unwrap();
    assert!(kinds.iter().any(|k| k == "pii.email"), "{kinds:?}");

    // One child per stage that ran, inside the server span's time.
    let (start, end) = (server["start"].as_u64().unwrap(), server["end"].as_u64().unwrap());
    assert!(start < end);
    let stages: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == 1 && s["parent_span_id"] == span_id)
        .collect();
    let names: Vec<&str> = stages.iter().map(|s| s["name"].as_str().unwrap()).collect();
    for stage in [
        "rampart.identify",
        "rampart.authorize",
        "rampart.body",
        "rampart.content",
        "rampart.tokens",
    ] {
        assert!(names.contains(&stage), "{stage} missing from {names:?}");
    }
    for s in &stages {
        let (a, b) = (s["start"].as_u64().unwrap(), s["end"].as_u64().unwrap());
        assert!(start <= a && a <= b && b <= end, "{s:#?} outside {start}..{end}");
    }

    // The upstream call is a client span, and it is the upstream's parent.
    let client = spans.iter().find(|s| s["kind"] == 3).unwrap();
    assert_eq!(client["parent_span_id"], span_id);
    assert_eq!(client["name"], "chat rampart-demo-chat");
    assert_eq!(attr(client, "server.address"), "127.0.0.1");
    assert_eq!(attr(client, "server.port"), o.addr.port());
    assert_eq!(attr(client, "http.response.status_code"), 200);
    assert_eq!(
        sent_traceparent(&seen, 0).unwrap(),
        format!("00-{CALLER_TRACE}-{}-01", client["span_id"].as_str().unwrap())
    );
    let upstream_state = seen.lock().unwrap()[0].1.get("tracestate").cloned();
    assert_eq!(upstream_state.unwrap(), "vendor=opaque", "tracestate travels on");

    // The access log names the same trace and span.
    let line = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["trace.id"] == CALLER_TRACE)
        .unwrap();
    assert_eq!(line["span.id"], span_id);

    // Values never leave: not the e-mail address, not the prompt, not the answer.
    let exported = receiver.raw.lock().unwrap().clone();
    assert!(
        !exported.contains(EMAIL) && !exported.contains("jane.roe"),
        "a value was exported"
    );
    assert!(!exported.contains("invoice"), "prompt text was exported");
    // The collector's key went as a header.
    assert!(
        receiver
            .lines
            .lock()
            .unwrap()
            .iter()
            .all(|l| l["authorization"] == "Bearer collector-t0ken")
    );

    // A stream's usage, from its last events.
    let stream = json!({"model": "rampart-demo-chat", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "count to three"}]});
    let trace2 = "0af7651916cd43dd8448eb211c80319c";
    let status = chat(
        &c,
        &gw,
        &stream,
        &[("traceparent", &format!("00-{trace2}-b7ad6b7169203331-01"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let spans2 = receiver.wait_for_trace(trace2, 3);
    let server2 = spans2.iter().find(|s| s["kind"] == 2).unwrap();
    assert_eq!(attr(server2, "rampart.request.stream"), true);
    assert!(
        attr(server2, "gen_ai.usage.output_tokens").as_i64().unwrap() > 0,
        "{server2:#?}"
    );

    // A malformed traceparent is not forwarded: the upstream gets a fresh trace whose
    // parent is Rampart's upstream span.
    let bad = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
    let status = chat(&c, &gw, &body, &[("traceparent", bad), ("tracestate", "evil=1")]).await;
    assert_eq!(status, StatusCode::OK);
    let sent = sent_traceparent(&seen, 2).unwrap();
    assert_ne!(sent, bad);
    let fresh = &sent[3..35];
    assert_ne!(fresh, CALLER_TRACE.to_ascii_lowercase());
    let spans3 = receiver.wait_for_trace(fresh, 3);
    let server3 = spans3.iter().find(|s| s["kind"] == 2).unwrap();
    assert_eq!(
        server3["parent_span_id"], "",
        "no parent: the caller's context was invalid"
    );
    assert_eq!(server3["flags"].as_u64().unwrap() & 0x200, 0);
    let client3 = spans3.iter().find(|s| s["kind"] == 3).unwrap();
    assert_eq!(sent, format!("00-{fresh}-{}-01", client3["span_id"].as_str().unwrap()));
    assert!(
        seen.lock().unwrap()[2].1.get("tracestate").is_none(),
        "tracestate dropped with it"
    );

    // A request no route takes is a server span with no upstream call.
    let r = c.get(&format!("{}/nowhere", gw.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let line = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["url.path"] == "/nowhere")
        .unwrap();
    let trace4 = line["trace.id"].as_str().unwrap().to_owned();
    let spans4 = receiver.wait_for_trace(&trace4, 1);
    assert_eq!(spans4.len(), 1, "{spans4:#?}");
    assert_eq!(attr(&spans4[0], "http.response.status_code"), 404);
    assert_eq!(attr(&spans4[0], "rampart.error.code"), "route_not_found");

    // The refused first export was retried: every span the gateway counted as exported
    // reached the receiver, none failed.
    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    let exported = metric(&m, "rampart_trace_spans_total", &["result=\"exported\""]);
    assert_eq!(exported, receiver.spans().len() as f64);
    assert_eq!(metric(&m, "rampart_trace_spans_total", &["result=\"failed\""]), 0.0);
    assert!(receiver.lines.lock().unwrap().len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_follows_the_sampling_rules() {
    let receiver = Receiver::start("grpc", 0);
    let (o, seen) = upstream().await;
    let k = kserve().await;
    // Nothing sampled by ratio; a caller's sampled flag decides.
    let text = config(
        &o.url(),
        &k.url(),
        &format!(
            "endpoint = \"http://127.0.0.1:{}\"\nprotocol = \"grpc\"\nsample_ratio = 0.0\nparent_sampled = \"follow\"\ninterval = \"100ms\"\n",
            receiver.port
        ),
    );
    let gw = start(&text);
    let c = TestClient::http1();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});

    // 1: the caller sampled it: exported over gRPC.
    let sampled = format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01");
    assert_eq!(chat(&c, &gw, &body, &[("traceparent", &sampled)]).await, StatusCode::OK);
    // 2: the caller did not: its context reaches the upstream unchanged.
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    assert_eq!(
        chat(&c, &gw, &body, &[("traceparent", unsampled)]).await,
        StatusCode::OK
    );
    assert_eq!(sent_traceparent(&seen, 1).unwrap(), unsampled);
    // 3: no caller context: a fresh, unsampled one to the upstream, ids in the log.
    assert_eq!(chat(&c, &gw, &body, &[]).await, StatusCode::OK);
    let sent = sent_traceparent(&seen, 2).unwrap();
    assert!(sent.starts_with("00-") && sent.ends_with("-00"), "{sent}");
    let logs = gw.wait_for_access_logs(3, Duration::from_secs(5));
    let third = logs
        .iter()
        .find(|l| sent.contains(l["trace.id"].as_str().unwrap()))
        .unwrap();
    assert_eq!(
        sent,
        format!(
            "00-{}-{}-00",
            third["trace.id"].as_str().unwrap(),
            third["span.id"].as_str().unwrap()
        )
    );

    let spans = receiver.wait_for_trace(CALLER_TRACE, 3);
    assert!(
        spans
            .iter()
            .any(|s| s["kind"] == 2 && s["parent_span_id"] == CALLER_SPAN)
    );
    assert!(receiver.lines.lock().unwrap().iter().all(|l| l["transport"] == "grpc"));
    // Give the exporter two intervals, then: only the sampled exchange was exported.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let all = receiver.spans();
    assert!(all.iter().all(|s| s["trace_id"] == CALLER_TRACE), "{all:#?}");
    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert_eq!(
        metric(&m, "rampart_trace_spans_total", &["result=\"exported\""]),
        all.len() as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_collector_costs_traffic_nothing() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    // A collector that is not there, and a queue that holds about one exchange.
    let text = config(
        &o.url(),
        &k.url(),
        &format!(
            "endpoint = \"{}\"\nqueue = 20\nbatch = 20\ninterval = \"50ms\"\ntimeout = \"500ms\"\n",
            dead_target()
        ),
    );
    let gw = start(&text);
    let c = TestClient::http1();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]});
    for _ in 0..40 {
        assert_eq!(chat(&c, &gw, &body, &[]).await, StatusCode::OK);
    }
    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert!(
        metric(&m, "rampart_trace_spans_total", &["result=\"dropped\""]) > 0.0,
        "{m}"
    );
    assert_eq!(metric(&m, "rampart_trace_spans_total", &["result=\"exported\""]), 0.0);
    let logs = gw.wait_for_access_logs(40, Duration::from_secs(5));
    assert!(logs.iter().filter(|l| l["http.response.status_code"] == 200).count() >= 40);
}

/// The acceptance check: `rampart demo --otlp URL` sends its exchanges' spans to the
/// receiver docs/OPERATIONS.md names, over both protocols.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_exports_to_the_receiver_the_docs_name() {
    for (transport, protocol) in [("http", "http/protobuf"), ("grpc", "grpc")] {
        let receiver = Receiver::start(transport, 0);
        let url = format!("http://127.0.0.1:{}", receiver.port);
        let demo = crate::demo::Demo::start_with(&["--otlp", &url, "--otlp-protocol", protocol]);
        let c = TestClient::http1();
        let body = json!({"model": "rampart-demo-chat", "messages": [{"role": "user", "content": "Hello"}]});
        let r = c
            .request(
                Method::POST,
                &format!("{}/v1/chat/completions", demo.field("open")),
                &[
                    ("content-type", "application/json"),
                    ("traceparent", &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")),
                ],
                body.to_string(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK);
        let spans = receiver.wait_for_trace(CALLER_TRACE, 3);
        let server = spans
            .iter()
            .find(|s| s["kind"] == 2)
            .unwrap_or_else(|| panic!("{protocol}: {spans:#?}"));
        assert_eq!(server["resource"]["service.instance.id"], "demo");
        assert_eq!(attr(server, "gen_ai.request.model"), "rampart-demo-chat");
        assert!(spans.iter().any(|s| s["kind"] == 3), "{protocol}: no upstream span");
        demo.stop();
    }
}
