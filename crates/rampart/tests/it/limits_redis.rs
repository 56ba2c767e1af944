//! Limits shared through a real Redis (a `redis-server` this test starts on a random
//! port): two gateway processes enforce one global limit; Redis killed mid-test → each
//! limit's `on_backend_error` mode happens and both gateways keep serving; Redis back →
//! shared limiting resumes without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;
use http::StatusCode;
use rampart_testkit::DemoOptions;
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn redis_server(port: u16) -> Child {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server must be installed (scripts/services.sh installs it)");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("redis-server did not start");
}

async fn get(c: &TestClient, gw: &GatewayProcess, path: &str) -> (StatusCode, String) {
    let r = c.get(&format!("{}{path}", gw.url("main"))).await.unwrap();
    let code = r.json()["error"]["code"]
        .as_str()
        .or(r.json()["code"].as_str())
        .unwrap_or("")
        .to_owned();
    (r.status, code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_limit_and_survive_redis_outages() {
    let port = free_port();
    let mut redis = redis_server(port);
    let uniq = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let config = format!(
        r#"{}
[redis]
url = {{ env = "RAMPART_TEST_REDIS" }}
timeout = "100ms"

[[rate_limits]]
name = "shared-{uniq}"
per = "global"
requests = 10
window = "1h"
routes = ["openai"]
backend = "redis"
on_backend_error = "local"

[[rate_limits]]
name = "strict-{uniq}"
per = "global"
requests = 1000
window = "1h"
routes = ["kserve"]
backend = "redis"
on_backend_error = "closed"
"#,
        base_config(&o.url(), &k.url())
    );
    let url = format!("redis://127.0.0.1:{port}/");
    let env = [("RAMPART_TEST_REDIS", url.as_str())];
    let node = |name: &str| {
        GatewayProcess::start_with_env(bin(), &config, rampart_testkit::TempDir::new(name).unwrap(), &env).unwrap()
    };
    let (g1, g2) = (node("rampart-redis-1"), node("rampart-redis-2"));
    let c = TestClient::http1();

    // 1. One global limit of 10 across both nodes.
    let mut admitted = 0;
    for i in 0..30 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        let (status, code) = get(&c, gw, "/v1/models").await;
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(code, "rate_limited"),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(admitted, 10, "the shared limit admitted {admitted} of 30");

    // 2. Redis dies: the fail-closed limit refuses with 503, the local-fallback limit
    //    limits per node, and both gateways keep serving everything else.
    redis.kill().unwrap();
    redis.wait().unwrap();
    for gw in [&g1, &g2] {
        let (status, code) = get(&c, gw, "/v2/health/ready").await;
        assert_eq!(
            (status, code.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "limit_backend_unavailable")
        );
        let mut local_ok = 0;
        for _ in 0..12 {
            if get(&c, gw, "/v1/models").await.0 == StatusCode::OK {
                local_ok += 1;
            }
        }
        assert_eq!(local_ok, 10, "local fallback should enforce the same limit per node");
        let (status, _) = get(&c, gw, "/echo").await;
        assert_eq!(status, StatusCode::OK, "routes without limits keep working");
    }
    let m = c.get(&format!("{}/metrics", g1.admin_url())).await.unwrap().text();
    assert!(metric(&m, "rampart_limit_backend_errors_total", &[]) >= 1.0, "{m}");
    assert!(g1.logs().iter().any(|l| l["event"] == "limit_backend_failed"));

    // 3. Redis is back (empty): shared limiting resumes without a restart.
    let mut redis = redis_server(port);
    for gw in [&g1, &g2] {
        let mut recovered = false;
        for _ in 0..100 {
            if get(&c, gw, "/v2/health/ready").await.0 == StatusCode::OK {
                recovered = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(recovered, "a gateway did not use Redis again");
    }
    let mut admitted = 0;
    for i in 0..30 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        if get(&c, gw, "/v1/models").await.0 == StatusCode::OK {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10, "after recovery the shared limit admitted {admitted}");
    assert!(
        g1.wait_for_log(Duration::from_secs(5), |l| l["event"] == "limit_backend_recovered")
            .is_some()
    );
    redis.kill().unwrap();
    redis.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_slots_are_shared_through_redis() {
    let port = free_port();
    let mut redis = redis_server(port);
    let uniq = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let slow = openai(DemoOptions {
        first_byte_delay: Duration::from_millis(700),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let config = format!(
        "{}\n[redis]\nurl = {{ env = \"RAMPART_TEST_REDIS\" }}\ntimeout = \"100ms\"\n\n[[concurrency_limits]]\nname = \"slots-{uniq}\"\nper = \"global\"\nmax = 2\nroutes = [\"openai\"]\nbackend = \"redis\"\n\n[[quotas]]\nname = \"daily-{uniq}\"\nper = \"global\"\nrequests = 3\nperiod = \"day\"\nroutes = [\"kserve\"]\nbackend = \"redis\"\non_backend_error = \"closed\"\n",
        base_config(&slow.url(), &k.url()).replace("first_byte = \"1s\"", "first_byte = \"5s\"")
    );
    let url = format!("redis://127.0.0.1:{port}/");
    let env = [("RAMPART_TEST_REDIS", url.as_str())];
    let node = |name: &str| {
        GatewayProcess::start_with_env(bin(), &config, rampart_testkit::TempDir::new(name).unwrap(), &env).unwrap()
    };
    let (g1, g2) = (node("rampart-slots-1"), node("rampart-slots-2"));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let url = format!(
            "{}/v1/chat/completions",
            if i % 2 == 0 { g1.url("main") } else { g2.url("main") }
        );
        tasks.push(tokio::spawn(async move {
            let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "slow"}]});
            TestClient::http1().post_json(&url, &body).await.unwrap().status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count();
    assert_eq!((ok, refused), (2, 2), "{statuses:?}");
    // Slots come back when exchanges end (released with a DECR in Redis).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = TestClient::http1();
    assert_eq!(get(&c, &g2, "/v1/models").await.0, StatusCode::OK);
    // A quota counted in Redis: 3 per day across both nodes.
    let mut granted = 0;
    for i in 0..6 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        match get(&c, gw, "/v2/health/ready").await {
            (StatusCode::OK, _) => granted += 1,
            (StatusCode::TOO_MANY_REQUESTS, code) => assert_eq!(code, "quota_exceeded"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(granted, 3);
    redis.kill().unwrap();
    redis.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_budget_is_shared_through_redis_and_fails_as_configured() {
    let port = free_port();
    let mut redis = redis_server(port);
    let uniq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    // Budget 100 tokens/hour for everyone; each request reserves 31 and is charged its
    // real usage of 12 (see tests/tokens.rs), so 6 fit — across both nodes together.
    let config = format!(
        "{}\n[redis]\nurl = {{ env = \"RAMPART_TEST_REDIS\" }}\ntimeout = \"100ms\"\n\n[[token_limits]]\nname = \"tokens-{uniq}\"\nper = \"global\"\ntokens = 100\nwindow = \"1h\"\ndefault_completion_tokens = 20\nroutes = [\"openai\"]\nbackend = \"redis\"\non_backend_error = \"closed\"\n",
        base_config(&o.url(), &k.url())
    );
    let url = format!("redis://127.0.0.1:{port}/");
    let env = [("RAMPART_TEST_REDIS", url.as_str())];
    let node = |name: &str| {
        GatewayProcess::start_with_env(bin(), &config, rampart_testkit::TempDir::new(name).unwrap(), &env).unwrap()
    };
    let (g1, g2) = (node("rampart-tk-1"), node("rampart-tk-2"));
    let c = TestClient::http1();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"w1 w2 w3 w4 w5"}]}"#;
    let post = |gw: &GatewayProcess| {
        let url = format!("{}/v1/chat/completions", gw.url("main"));
        let c = c.clone();
        async move {
            c.request(
                http::Method::POST,
                &url,
                &[("content-type", "application/json")],
                body.to_owned(),
            )
            .await
            .unwrap()
        }
    };
    let mut admitted = 0;
    for i in 0..12 {
        let r = post(if i % 2 == 0 { &g1 } else { &g2 }).await;
        match r.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(r.json()["error"]["code"], "token_limited"),
            other => panic!("unexpected {other}: {}", r.text()),
        }
        // The settle runs after the response; let it land before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admitted, 6, "two nodes admitted {admitted} against one budget");

    // Redis down: this budget fails closed (503), on both nodes; the other routes serve.
    redis.kill().unwrap();
    redis.wait().unwrap();
    for gw in [&g1, &g2] {
        let r = post(gw).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert_eq!(r.json()["error"]["code"], "limit_backend_unavailable");
        assert_eq!(get(&c, gw, "/v2/health/ready").await.0, StatusCode::OK);
    }

    // Redis back (empty: a fresh budget) → shared budgeting resumes without a restart.
    let mut redis = redis_server(port);
    let mut admitted = 0;
    for i in 0..40 {
        let r = post(if i % 2 == 0 { &g1 } else { &g2 }).await;
        match r.status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => break,
            StatusCode::SERVICE_UNAVAILABLE => {} // still reconnecting
            other => panic!("unexpected {other}: {}", r.text()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(admitted, 6, "after recovery {admitted} admitted");
    redis.kill().unwrap();
    redis.wait().unwrap();
}

/// A privacy budget with `backend = "redis"` is one budget per principal for every
/// node: noisy answers from either gateway spend it, the answer that would overspend it
/// is refused on both, and while Redis is down the budget counts as spent (the route's
/// `when_spent` applies) instead of each node granting a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_privacy_budget_is_shared_by_two_gateways_through_redis() {
    let port = free_port();
    let mut redis = redis_server(port);
    let k = kserve().await;
    let output = "[routes.output]\nnoise = { mechanism = \"laplace\", epsilon = 0.5 }\n\
                  budget = { epsilon = 3.0, window = \"1h\", backend = \"redis\" }\n";
    let config = format!(
        "{}\n[redis]\nurl = {{ env = \"RAMPART_TEST_REDIS\" }}\ntimeout = \"100ms\"\n",
        base_config("http://127.0.0.1:9", &k.url()).replacen(
            "protocol = \"kserve\"\npublic = true\n",
            &format!("protocol = \"kserve\"\npublic = true\n{output}"),
            1,
        )
    );
    let url = format!("redis://127.0.0.1:{port}/");
    let env = [("RAMPART_TEST_REDIS", url.as_str())];
    let node = |name: &str| {
        GatewayProcess::start_with_env(bin(), &config, rampart_testkit::TempDir::new(name).unwrap(), &env).unwrap()
    };
    let (g1, g2) = (node("rampart-pb-1"), node("rampart-pb-2"));
    let c = TestClient::http1();
    // Two rows per answer at ε = 0.5 each: one answer costs 1.0 of the 3.0 budget.
    let body = serde_json::json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                                  "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]});
    let infer = |gw: &GatewayProcess| format!("{}/v2/models/iris/infer", gw.url("main"));
    let mut statuses = Vec::new();
    for i in 0..6 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        let r = c.post_json(&infer(gw), &body).await.unwrap();
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.json()["code"], "privacy_budget_spent", "{}", r.text());
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=3600).contains(&retry), "{retry}");
        }
        statuses.push(r.status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "three answers of ε = 1 fit a shared budget of 3, across both nodes"
    );
    // Redis gone: neither node hands out a fresh budget of its own.
    redis.kill().unwrap();
    redis.wait().unwrap();
    for gw in [&g1, &g2] {
        let r = c.post_json(&infer(gw), &body).await.unwrap();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
        let ok = c.get(&format!("{}/v2/models/iris", gw.url("main"))).await.unwrap();
        assert_eq!(ok.status, StatusCode::OK, "metadata spends no budget and keeps working");
    }
    // Redis back, empty: the budget is shared again.
    let mut redis = redis_server(port);
    let mut ok = 0;
    for i in 0..60 {
        let gw = if i % 2 == 0 { &g1 } else { &g2 };
        if c.post_json(&infer(gw), &body).await.unwrap().status == StatusCode::OK {
            ok += 1;
        }
        if i >= 20 && ok > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!((1..=3).contains(&ok), "after recovery the shared budget granted {ok}");
    redis.kill().unwrap();
    redis.wait().unwrap();
}

/// `[watch] backend = "redis"`: a block one node imposes reaches the other within its
/// sync period (a second), so an attacker cannot move to the next node; everyone else
/// keeps being served on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detector_block_reaches_every_node_through_redis() {
    let port = free_port();
    let mut redis = redis_server(port);
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let config = format!(
        "{}\n[redis]\nurl = {{ env = \"RAMPART_TEST_REDIS\" }}\ntimeout = \"100ms\"\n\
         [watch]\nbackend = \"redis\"\npenalty = \"10m\"\n[watch.behaviour]\ndenied_per_minute = 5\ndenied_burst = \"block\"\n",
        base_config(&o.url(), &k.url()).replacen(
            "header_read_timeout = \"1s\"\n",
            "header_read_timeout = \"1s\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n",
            1
        )
    );
    let url = format!("redis://127.0.0.1:{port}/");
    let env = [("RAMPART_TEST_REDIS", url.as_str())];
    let node = |name: &str| {
        GatewayProcess::start_with_env(bin(), &config, rampart_testkit::TempDir::new(name).unwrap(), &env).unwrap()
    };
    let (g1, g2) = (node("rampart-pen-1"), node("rampart-pen-2"));
    let c = TestClient::http1();
    let from = |gw: &GatewayProcess, path: &str, ip: &str| {
        let url = format!("{}{path}", gw.url("main"));
        let ip = ip.to_owned();
        let c = c.clone();
        async move {
            c.request(http::Method::GET, &url, &[("x-forwarded-for", ip.as_str())], Vec::new())
                .await
                .unwrap()
        }
    };
    // Key guessing from one address on node 1: five 401s make a denied burst.
    for _ in 0..5 {
        assert_eq!(
            from(&g1, "/private/x", "10.0.0.5").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let r = from(&g1, "/echo", "10.0.0.5").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "principal_blocked");
    // Node 2 learns of it within a couple of sync periods.
    let mut blocked_on_2 = false;
    for _ in 0..40 {
        if from(&g2, "/echo", "10.0.0.5").await.status == StatusCode::FORBIDDEN {
            blocked_on_2 = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(blocked_on_2, "node 2 never refused the blocked address");
    for gw in [&g1, &g2] {
        assert_eq!(
            from(gw, "/echo", "10.0.0.6").await.status,
            StatusCode::OK,
            "others are served"
        );
    }
    redis.kill().unwrap();
    redis.wait().unwrap();
}
