//! Abuse limits through the real gateway (in-process backend): rates with 429,
//! Retry-After and RateLimit headers, concurrency (N+1 simultaneous slow requests →
//! exactly one refused), calendar quotas, shadow mode and IP rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::time::Duration;

use crate::common::*;
use http::{Method, StatusCode};
use rampart_testkit::DemoOptions;
use rampart_testkit::client::{TestClient, TestResponse};
use rampart_testkit::harness::GatewayProcess;
use serde_json::json;

fn with_limits(openai: &str, kserve: &str, limits: &str) -> String {
    format!("{}\n{limits}", base_config(openai, kserve))
}

async fn models(c: &TestClient, gw: &GatewayProcess) -> TestResponse {
    c.get(&format!("{}/v1/models", gw.url("main"))).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refuses_with_retry_after_and_ratelimit_headers() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let limits = r#"
[[rate_limits]]
name = "per-ip"
per = "ip"
requests = 5
window = "1m"
routes = ["openai"]
"#;
    let gw = start(&with_limits(&o.url(), &k.url(), limits));
    let c = TestClient::http1();
    for i in 0..5 {
        let r = models(&c, &gw).await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
        assert_eq!(r.header("ratelimit-policy"), Some("\"per-ip\";q=5;w=60"));
        let remaining = 4 - i;
        assert!(
            r.header("ratelimit")
                .unwrap()
                .starts_with(&format!("\"per-ip\";r={remaining};t=")),
            "{:?}",
            r.header("ratelimit")
        );
    }
    let r = models(&c, &gw).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "rate_limited");
    assert_eq!(r.json()["error"]["type"], "rate_limit_error");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "one request's worth is 12 s: {retry}");
    assert!(r.header("ratelimit").unwrap().starts_with("\"per-ip\";r=0;t="));
    // Another route is not limited.
    let r = c.get(&format!("{}/v2/health/ready", gw.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert_eq!(
        metric(
            &m,
            "rampart_limit_refusals_total",
            &["limit=\"per-ip\"", "result=\"refused\""]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_refuses_exactly_the_extra_request() {
    let o = openai(DemoOptions {
        first_byte_delay: Duration::from_millis(800),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let limits = r#"
[[concurrency_limits]]
name = "in-flight"
per = "route"
max = 3
routes = ["openai"]
"#;
    let gw = start(&with_limits(&o.url(), &k.url(), limits).replace("first_byte = \"1s\"", "first_byte = \"5s\""));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let c = TestClient::http1();
        let url = format!("{}/v1/chat/completions", gw.url("main"));
        tasks.push(tokio::spawn(async move {
            c.post_json(
                &url,
                &json!({"model": "m", "messages": [{"role": "user", "content": "slow"}]}),
            )
            .await
            .unwrap()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().status);
    }
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!((ok, refused), (3, 1), "{statuses:?}");
    // Slots are released when exchanges end.
    let r = TestClient::http1()
        .post_json(
            &format!("{}/v1/chat/completions", gw.url("main")),
            &json!({"model": "m", "messages": [{"role": "user", "content": "again"}]}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_shadow_and_ip_rules() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let limits = r#"
[[quotas]]
name = "daily"
per = "ip"
requests = 3
period = "day"
routes = ["openai"]

[[rate_limits]]
name = "trial"
per = "global"
requests = 1
window = "1h"
routes = ["kserve"]
shadow = true
"#;
    let config = with_limits(&o.url(), &k.url(), limits).replace(
        "name = \"echo\"\npath = \"/echo\"",
        "name = \"echo\"\npath = \"/echo\"\ndeny_ips = [\"127.0.0.0/8\"]",
    );
    let gw = start(&config);
    let c = TestClient::http1();
    for _ in 0..3 {
        assert_eq!(models(&c, &gw).await.status, StatusCode::OK);
    }
    let r = models(&c, &gw).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["error"]["code"], "quota_exceeded");
    let msg = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("\"daily\"") && msg.contains("resets at") && msg.contains("T00:00:00Z"),
        "{msg}"
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry <= 86_400);

    // Shadow: 1/h would refuse the 2nd..5th request, but nothing is refused.
    for _ in 0..5 {
        let r = c.get(&format!("{}/v2/health/ready", gw.url("main"))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK);
    }
    let m = c.get(&format!("{}/metrics", gw.admin_url())).await.unwrap().text();
    assert_eq!(
        metric(
            &m,
            "rampart_limit_refusals_total",
            &["limit=\"trial\"", "result=\"shadow_refused\""]
        ),
        4.0
    );
    let flagged = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["rampart.decision"] == "flag")
        .expect("shadow refusal recorded");
    assert_eq!(flagged["rampart.findings"], 1);

    // IP rules: loopback is denied on /echo.
    let r = c
        .request(Method::GET, &format!("{}/echo", gw.url("main")), &[], "")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["code"], "ip_denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_connection_cap_and_trusted_proxies() {
    use tokio::io::AsyncReadExt;
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let config = base_config(&o.url(), &k.url())
        .replace(
            "header_read_timeout = \"1s\"",
            "header_read_timeout = \"2s\"\nmax_connections_per_ip = 2\ntrusted_proxies = [\"127.0.0.1/32\"]",
        )
        .replace(
            "name = \"echo\"\npath = \"/echo\"",
            "name = \"echo\"\npath = \"/echo\"\ndeny_ips = [\"203.0.113.0/24\"]",
        );
    let gw = start(&config);
    let addr = gw.addr("main");

    // Two idle connections fill this IP's slots; a third is closed at once.
    let _a = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _b = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_millis(1500), third.read(&mut buf)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "third connection was not closed: {n:?}"
    );
    drop((_a, _b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let m = TestClient::http1()
        .get(&format!("{}/metrics", gw.admin_url()))
        .await
        .unwrap()
        .text();
    assert!(
        metric(&m, "rampart_connections_refused_total", &["listener=\"main\""]) >= 1.0,
        "{m}"
    );

    // Behind a trusted proxy (127.0.0.1), the client is the X-Forwarded-For address.
    let c = TestClient::http1();
    let r = c
        .request(
            Method::GET,
            &format!("{}/echo", gw.url("main")),
            &[("x-forwarded-for", "203.0.113.7")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "ip_denied");
    let r = c
        .request(
            Method::GET,
            &format!("{}/echo", gw.url("main")),
            &[("x-forwarded-for", "198.51.100.1")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        json!(["198.51.100.1, 127.0.0.1"])
    );
    let line = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["client.ip"] == "198.51.100.1")
        .expect("client address from the trusted proxy logged");
    assert_eq!(line["source.ip"], "127.0.0.1");
}
