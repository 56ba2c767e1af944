//! The gateway in front of the real demo servers: round trips for each protocol,
//! streaming, errors, limits, header hygiene, load balancing and failover.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::time::{Duration, Instant};

use crate::common::*;
use bytes::Bytes;
use http::{Method, StatusCode, Version};
use rampart_testkit::DemoOptions;
use rampart_testkit::client::{TestClient, timed_chunks};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_and_kserve_round_trips() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url()));
    let c = TestClient::http1();
    let base = gw.url("main");

    let chat = c
        .post_json(
            &format!("{base}/v1/chat/completions"),
            &json!({"model": "rampart-demo-chat", "messages": [{"role": "user", "content": "ping pong"}]}),
        )
        .await
        .unwrap();
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.text());
    let body = chat.json();
    assert_eq!(body["choices"][0]["message"]["content"], "You said: ping pong");
    assert_eq!(body["usage"]["prompt_tokens"], 2);
    assert!(chat.header("x-request-id").is_some_and(|id| !id.is_empty()));

    let emb = c
        .post_json(
            &format!("{base}/v1/embeddings"),
            &json!({"model": "rampart-demo-embed", "input": ["a", "b c"]}),
        )
        .await
        .unwrap();
    assert_eq!(emb.status, StatusCode::OK);
    assert_eq!(emb.json()["data"].as_array().unwrap().len(), 2);
    assert_eq!(emb.json()["usage"]["total_tokens"], 3);

    let models = c.get(&format!("{base}/v1/models")).await.unwrap();
    assert_eq!(models.json()["data"][0]["id"], "rampart-demo-chat");

    let ready = c.get(&format!("{base}/v2/health/ready")).await.unwrap();
    assert_eq!(ready.json()["ready"], true);
    let meta = c.get(&format!("{base}/v2/models/iris")).await.unwrap();
    assert_eq!(meta.json()["inputs"][0]["shape"], json!([-1, 4]));
    let infer = c
        .post_json(
            &format!("{base}/v2/models/iris/infer"),
            &json!({"id": "r1", "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                     "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}),
        )
        .await
        .unwrap();
    assert_eq!(infer.status, StatusCode::OK, "{}", infer.text());
    let out = infer.json();
    assert_eq!(out["id"], "r1");
    assert_eq!(out["outputs"][1]["data"], json!(["setosa", "virginica"]));
    let probs: Vec<f64> = out["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert!((probs[0..3].iter().sum::<f64>() - 1.0).abs() < 1e-4);

    // Protocol validation answers in the KServe error shape, naming the JSON path.
    let bad = c
        .post_json(
            &format!("{base}/v2/models/iris/infer"),
            &json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1.0]}]}),
        )
        .await
        .unwrap();
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        bad.json()["error"],
        "inputs[0].data: holds 1 elements but the shape [1, 4] needs 4"
    );
    assert_eq!(bad.json()["code"], "invalid_request");
    // The KServe server's own errors pass through unchanged.
    let unknown = c
        .post_json(
            &format!("{base}/v2/models/nope/infer"),
            &json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}),
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text());
    assert!(unknown.json().get("code").is_none(), "{}", unknown.text());

    // One access-log line per exchange, with ECS names.
    let logs = gw.wait_for_access_logs(8, Duration::from_secs(5));
    assert_eq!(logs.len(), 8, "{logs:?}");
    let first = logs
        .iter()
        .find(|l| l["url.path"] == "/v1/chat/completions")
        .expect("chat exchange logged");
    assert_eq!(first["http.request.method"], "POST");
    assert_eq!(first["url.path"], "/v1/chat/completions");
    assert_eq!(first["http.response.status_code"], 200);
    assert_eq!(first["rampart.route"], "openai");
    assert_eq!(first["service.node.name"], "test-node");
    assert_eq!(first["http.request.id"], chat.header("x-request-id").unwrap());
    assert!(first["rampart.gateway_added_us"].as_u64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_chunks_arrive_one_by_one() {
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_millis(150),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let gw = start(&base_config(&o.url(), &k.url()));
    for client in [TestClient::http1(), TestClient::h2c()] {
        let sent = Instant::now();
        let resp = client
            .send(
                Method::POST,
                &format!("{}/v1/chat/completions", gw.url("main")),
                &[("content-type", "application/json")],
                json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                       "messages": [{"role": "user", "content": "one two three four"}]})
                .to_string(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let chunks = timed_chunks(resp.into_body()).await.unwrap();
        let text: String = chunks
            .iter()
            .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
            .collect();
        let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
        // role, "You ", "said: ", "one ", "two ", "three ", "four", stop, usage, [DONE]
        assert_eq!(events.len(), 10, "{text}");
        assert_eq!(*events.last().unwrap(), "data: [DONE]");
        assert!(text.contains("\"usage\""));
        // Each event is its own chunk, and they arrive spread over time, not at the end:
        // the first arrives long before the last was even produced upstream.
        assert!(chunks.len() >= 10, "chunks were merged: {}", chunks.len());
        let first = chunks.first().unwrap().0.duration_since(sent);
        let last = chunks.last().unwrap().0.duration_since(sent);
        assert!(
            last - first >= Duration::from_millis(150 * 8),
            "first {first:?} last {last:?}"
        );
        let gaps = chunks
            .windows(2)
            .filter(|w| w[1].0 - w[0].0 >= Duration::from_millis(100))
            .count();
        assert!(gaps >= 8, "only {gaps} chunks arrived separately");
    }
    // The time the gateway adds runs to the stream's last byte, but the 1.2 s the
    // upstream spent producing it are the upstream's, not the gateway's.
    let logs = gw.wait_for_access_logs(2, Duration::from_secs(5));
    assert_eq!(logs.len(), 2, "{logs:?}");
    for line in &logs {
        let added = line["rampart.gateway_added_us"].as_u64().unwrap();
        let duration_us = line["event.duration"].as_u64().unwrap() / 1000;
        assert!(duration_us >= 1_200_000, "{line}");
        assert!(
            added < 300_000,
            "gateway-added {added} µs of a {duration_us} µs stream: {line}"
        );
    }
}

/// The gateway-added time starts at the request's first byte read, not when its head
/// was parsed: a request the gateway takes 400 ms to receive shows 400 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_added_time_runs_from_the_first_byte_read() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url()));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hello"}]}).to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    let mut s = tokio::net::TcpStream::connect(gw.addr("main")).await.unwrap();
    // First a quick request on the same connection, so the slow one is not its first.
    let quick = format!("{head}\r\n{body}");
    s.write_all(quick.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    s.write_all(&head.as_bytes()[..20]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    s.write_all(&head.as_bytes()[20..]).await.unwrap();
    s.write_all(format!("\r\n{body}").as_bytes()).await.unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let logs = gw.wait_for_access_logs(2, Duration::from_secs(5));
    assert_eq!(logs.len(), 2, "{logs:?}");
    let added: Vec<u64> = logs
        .iter()
        .map(|l| l["rampart.gateway_added_us"].as_u64().unwrap())
        .collect();
    assert!(added[0] < 300_000, "{added:?}");
    assert!(added[1] >= 400_000, "{added:?}");
    assert!(
        logs[1]["event.duration"].as_u64().unwrap() >= 400_000_000,
        "{}",
        logs[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_json_errors() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url()));
    let c = TestClient::http1();
    let base = gw.url("main");

    let nf = c.get(&format!("{base}/nothing/here")).await.unwrap();
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert_eq!(nf.json()["error"]["code"], "route_not_found");
    assert_eq!(nf.header("content-type"), Some("application/json"));
    assert_eq!(nf.json()["error"]["request_id"], nf.header("x-request-id").unwrap());

    // Closed by default: no `public = true`, no identity provider → 401.
    let closed = c.get(&format!("{base}/private/models")).await.unwrap();
    assert_eq!(closed.status, StatusCode::UNAUTHORIZED);
    assert!(closed.header("www-authenticate").is_some());
    assert_eq!(closed.json()["error"]["type"], "authentication_error");

    // Body over the route limit (64 KiB): refused before the upstream sees it.
    let big = "x".repeat(70_000);
    let too_big = c
        .request(
            Method::POST,
            &format!("{base}/v1/chat/completions"),
            &[("content-type", "application/json")],
            big,
        )
        .await
        .unwrap();
    assert_eq!(too_big.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_big.json()["error"]["code"], "body_too_large");
    // The unread body makes the connection unusable: the client is told so.
    assert_eq!(too_big.header("connection"), Some("close"));

    // Too deep JSON → 400 (OpenAI-shaped on the OpenAI route).
    let deep = format!("{{\"messages\":{}{}}}", "[".repeat(40), "]".repeat(40));
    let r = c
        .request(
            Method::POST,
            &format!("{base}/v1/chat/completions"),
            &[("content-type", "application/json")],
            deep,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "json_too_deep");
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");

    // KServe routes use the v2 protocol's error shape.
    let deep = format!("{{\"inputs\":{}{}}}", "[".repeat(40), "]".repeat(40));
    let r = c
        .request(
            Method::POST,
            &format!("{base}/v2/models/iris/infer"),
            &[("content-type", "application/json")],
            deep,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["code"], "json_too_deep");
    assert!(r.json()["error"].is_string());

    // Dot segments could reach paths no route allows once the upstream normalises them.
    let r = c.get(&format!("{base}/v1/%2e%2e/admin")).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["error"]["code"], "invalid_path");

    let logs = gw.wait_for_access_logs(6, Duration::from_secs(5));
    // Workers hand over their log lines in batches, so lines from different
    // connections may interleave: compare as a set.
    let mut codes: Vec<&str> = logs.iter().filter_map(|l| l["rampart.error.code"].as_str()).collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        [
            "body_too_large",
            "invalid_path",
            "json_too_deep",
            "json_too_deep",
            "missing_credentials",
            "route_not_found",
        ]
    );
    assert!(logs.iter().all(|l| l["rampart.decision"] == "block"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_limit_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url()));
    let mut s = tokio::net::TcpStream::connect(gw.addr("main")).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 40_000, "a".repeat(40_000));
    // Two chunks of 40 000 bytes exceed the 64 KiB limit without any Content-Length.
    let _ = s.write_all(chunk.as_bytes()).await;
    let _ = s.write_all(chunk.as_bytes()).await;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("body_too_large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_and_slow_upstreams_give_502_and_504() {
    let slow = openai(DemoOptions {
        first_byte_delay: Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    // openai → slow server (first_byte timeout is 1 s); kserve → nothing listening.
    let gw = start(&base_config(&slow.url(), &dead_target()));
    let c = TestClient::http1();
    let base = gw.url("main");

    let started = Instant::now();
    let r = c
        .post_json(
            &format!("{base}/v1/chat/completions"),
            &json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    // It answered at the 1 s first-byte timeout, not when the upstream (5 s) did.
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    let r = c.get(&format!("{base}/v2/health/ready")).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["code"], "upstream_connect_error");
    drop(k);

    let metrics = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert!(
        metric(&metrics, "rampart_upstream_errors_total", &["kind=\"timeout\""]) >= 1.0,
        "{metrics}"
    );
    assert!(metric(&metrics, "rampart_upstream_errors_total", &["kind=\"connect\""]) >= 1.0);
    assert_eq!(
        metric(
            &metrics,
            "rampart_requests_total",
            &["status=\"504\"", "decision=\"error\""]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_keeps_serving_when_a_target_dies() {
    let a = openai(DemoOptions {
        server_name: Some("a".into()),
        ..Default::default()
    })
    .await;
    let b = openai(DemoOptions {
        server_name: Some("b".into()),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let config = base_config(&a.url(), &k.url()).replace(
        &format!("targets = [\"{}\"]", a.url()),
        &format!(
            "targets = [\"{}\", \"{}\"]\nhealth.cooldown = \"30s\"",
            a.url(),
            b.url()
        ),
    );
    let gw = start(&config);
    let c = TestClient::http1();
    let url = format!("{}/v1/models", gw.url("main"));
    let mut seen = std::collections::HashSet::new();
    for _ in 0..6 {
        let r = c.get(&url).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
        seen.insert(r.header("x-demo-server").unwrap().to_owned());
    }
    assert_eq!(seen.len(), 2, "round robin uses both targets");

    a.stop().await;
    // Every request still succeeds: a refused connection is retried on the other
    // target (the body is buffered, so nothing was sent), and the dead target is
    // ejected after 3 failures.
    for _ in 0..20 {
        let r = c.get(&url).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.header("x-demo-server"), Some("b"));
    }
    let metrics = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert_eq!(
        metric(&metrics, "rampart_upstream_ejections_total", &["upstream=\"openai\""]),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "rampart_upstream_target_healthy", &["upstream=\"openai\""]),
        1.0
    );
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_outstanding_and_active_health_checks() {
    let a = openai(DemoOptions {
        server_name: Some("a".into()),
        ..Default::default()
    })
    .await;
    let b = openai(DemoOptions {
        server_name: Some("b".into()),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let a_url = a.url();
    let config = base_config(&a_url, &k.url()).replace(
        &format!("targets = [\"{a_url}\"]"),
        &format!(
            "targets = [\"{a_url}\", \"{}\"]\nbalance = \"least_outstanding\"\nhealth.path = \"/health\"\nhealth.interval = \"200ms\"",
            b.url()
        ),
    );
    let gw = start(&config);
    let c = TestClient::http1();
    a.stop().await;
    // Active checks eject the dead target without any client request failing on it.
    let admin = gw.admin_url();
    let mut ejected = false;
    for _ in 0..50 {
        let m = c.get(&format!("{admin}/metrics")).await.unwrap().text();
        if metric(&m, "rampart_upstream_ejections_total", &["upstream=\"openai\""]) >= 1.0 {
            ejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ejected, "active health check did not eject the stopped target");
    for _ in 0..5 {
        let r = c.get(&format!("{}/v1/models", gw.url("main"))).await.unwrap();
        assert_eq!(r.header("x-demo-server"), Some("b"));
    }
    let m = c.get(&format!("{admin}/metrics")).await.unwrap().text();
    assert_eq!(
        metric(&m, "rampart_upstream_errors_total", &[]),
        0.0,
        "no request hit the dead target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_hygiene_and_no_secrets_in_logs() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let config = base_config(&o.url(), &k.url()).replace(
        "name = \"openai\"\ntargets",
        "name = \"openai\"\nheaders.x-upstream-key = { env = \"RAMPART_TEST_UPSTREAM_KEY\", prefix = \"Key \" }\ntargets",
    );
    // The upstream credential comes from the environment, never from the file.
    let gw = rampart_testkit::harness::GatewayProcess::start_with_env(
        bin(),
        &config,
        rampart_testkit::TempDir::new("rampart-hygiene").unwrap(),
        &[("RAMPART_TEST_UPSTREAM_KEY", "upstream-secret-123")],
    )
    .unwrap();
    let c = TestClient::http1();
    let r = c
        .request(
            Method::POST,
            &format!("{}/echo?api_key=query-secret-456", gw.url("main")),
            &[
                ("authorization", "Bearer sk-client-secret-789"),
                ("cookie", "session=cookie-secret"),
                ("connection", "keep-alive, x-drop-me"),
                ("x-drop-me", "1"),
                ("keep-alive", "timeout=5"),
                ("te", "trailers"),
                ("proxy-authorization", "Basic cHJveHk="),
                ("x-forwarded-for", "6.6.6.6"),
                ("x-request-id", "client-chosen-id-1"),
            ],
            Bytes::from_static(b"{\"a\":1}"),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let echo = r.json();
    let h = &echo["headers"];
    for gone in ["x-drop-me", "keep-alive", "te", "proxy-authorization", "connection"] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    // Spoofed X-Forwarded-For replaced by the real peer; Forwarded set.
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert!(
        h["forwarded"][0]
            .as_str()
            .unwrap()
            .starts_with("for=127.0.0.1;proto=http")
    );
    assert_eq!(h["x-request-id"], json!(["client-chosen-id-1"]));
    assert_eq!(r.header("x-request-id"), Some("client-chosen-id-1"));
    assert_eq!(h["x-upstream-key"], json!(["Key upstream-secret-123"]));
    assert_eq!(echo["query"], "api_key=query-secret-456");
    assert_eq!(echo["body_bytes"], 7);

    let logs = gw.wait_for_access_logs(1, Duration::from_secs(5));
    assert_eq!(logs.len(), 1);
    let all = format!("{}\n{}", gw.stdout_text(), gw.stderr_text());
    for secret in [
        "sk-client-secret-789",
        "cookie-secret",
        "query-secret-456",
        "upstream-secret-123",
        "cHJveHk=",
    ] {
        assert!(!all.contains(secret), "{secret} leaked into the logs");
    }
    assert_eq!(logs[0]["url.path"], "/echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_prior_knowledge_round_trip() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = start(&base_config(&o.url(), &k.url()));
    let c = TestClient::h2c();
    let r = c
        .post_json(
            &format!("{}/v1/chat/completions", gw.url("main")),
            &json!({"model": "m", "messages": [{"role": "user", "content": "over h2"}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["choices"][0]["message"]["content"], "You said: over h2");
    // Many concurrent streams over the one connection.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = c.clone();
        let url = format!("{}/v1/embeddings", gw.url("main"));
        tasks.push(tokio::spawn(async move {
            c.post_json(&url, &json!({"model": "e", "input": format!("text {i}")}))
                .await
                .unwrap()
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_stream_ends_with_an_sse_error_event() {
    // The upstream pauses 2 s between chunks; the route allows 500 ms of silence.
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_secs(2),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let config = base_config(&o.url(), &k.url()).replace(
        "protocol = \"openai\"\npublic = true",
        "protocol = \"openai\"\npublic = true\ntimeouts.idle = \"500ms\"",
    );
    let gw = start(&config);
    let started = Instant::now();
    let resp = TestClient::http1()
        .send(
            Method::POST,
            &format!("{}/v1/chat/completions", gw.url("main")),
            &[("content-type", "application/json")],
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x y z"}]}).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let chunks = timed_chunks(resp.into_body()).await.unwrap();
    let text: String = chunks
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    // The first event passed, then the stream ended cleanly with an error event.
    assert!(text.starts_with("data: {"), "{text}");
    assert!(text.ends_with("\n\n"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    assert!(last.starts_with("event: error\ndata: "), "{text}");
    let payload: serde_json::Value = serde_json::from_str(last.trim_start_matches("event: error\ndata: ")).unwrap();
    assert_eq!(payload["error"]["code"], "upstream_timeout");
    assert!(!text.contains("[DONE]"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cut by the idle timeout, not the upstream"
    );
    let log = gw
        .wait_for_access_log(Duration::from_secs(5), |l| {
            l["rampart.error.code"] == "upstream_timeout"
        })
        .expect("timeout logged");
    assert_eq!(log["event.outcome"], "failure");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_timeout_cuts_a_long_stream() {
    let o = openai(DemoOptions {
        chunk_delay: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let config = base_config(&o.url(), &k.url()).replace(
        "protocol = \"openai\"\npublic = true",
        "protocol = \"openai\"\npublic = true\ntimeouts.total = \"1s\"",
    );
    let gw = start(&config);
    let resp = TestClient::http1()
        .send(
            Method::POST,
            &format!("{}/v1/chat/completions", gw.url("main")),
            &[("content-type", "application/json")],
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a b c d e f g h i j"}]})
                .to_string(),
        )
        .await
        .unwrap();
    let chunks = timed_chunks(resp.into_body()).await.unwrap();
    let text: String = chunks
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    // 14 events at 300 ms would take ~4 s; the 1 s total timeout ends it early.
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("exceeded the total timeout"), "{text}");
    assert!(!text.contains("[DONE]"));
}

/// An upstream that answers one request per connection and then closes it, without
/// saying `Connection: close` (a keep-alive timeout of zero): every connection the
/// gateway kept is dead by the next request.
async fn one_shot_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&served);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let count = std::sync::Arc::clone(&count);
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                // Head, then a Content-Length body.
                loop {
                    let Ok(n) = s.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&got).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = r#"{"ok":true}"#;
                let _ = s
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .await;
                // Closed here, as the next request is about to come.
            });
        }
    });
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_the_target_closed_are_not_reused_and_no_request_is_sent_twice() {
    let (port, served) = one_shot_upstream().await;
    let k = kserve().await;
    let config = base_config(&format!("http://127.0.0.1:{port}"), &k.url()).replace("protocol = \"openai\"\n", "");
    let gw = start(&config);
    let c = TestClient::http1();
    let url = format!("{}/v1/anything", gw.url("main"));
    for i in 0..30 {
        // POST: not idempotent, so a request that reached the target is never retried;
        // every one must still be answered, on a fresh connection.
        let r = c.post_json(&url, &json!({"n": i})).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        served.load(std::sync::atomic::Ordering::SeqCst),
        30,
        "each request reached the target once"
    );
}

/// A target that reads a request's head and resets the connection without answering,
/// counting the requests it saw: it may have acted on each one.
async fn resetting_upstream() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::AsyncReadExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                stream.set_zero_linger().unwrap();
                drop(stream); // RST, no response
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_the_request_arrived_is_retried_only_for_idempotent_methods() {
    // Two targets that both take the request and reset. A GET may be sent again on the
    // other target; a POST must not: the first target may already have acted on it.
    let (a, seen_a) = resetting_upstream().await;
    let (b, seen_b) = resetting_upstream().await;
    let k = kserve().await;
    let config = base_config("http://127.0.0.1:1", &k.url())
        .replace("protocol = \"openai\"\n", "")
        .replace(
            "targets = [\"http://127.0.0.1:1\"]",
            &format!("targets = [\"http://127.0.0.1:{a}\", \"http://127.0.0.1:{b}\"]"),
        );
    let gw = start(&config);
    let c = TestClient::http1();
    let url = format!("{}/v1/anything", gw.url("main"));
    let total = || seen_a.load(std::sync::atomic::Ordering::SeqCst) + seen_b.load(std::sync::atomic::Ordering::SeqCst);

    let r = c.post_json(&url, &json!({"transfer": 100})).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(total(), 1, "a POST reached a target once and was not sent again");

    let r = c.get(&url).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(total(), 3, "the GET was sent again, to the other target, once");
}
