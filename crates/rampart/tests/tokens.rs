//! LLM token budgets with the demo OpenAI server (which reports `usage`): a budget is
//! never exceeded by more than one in-flight request's worth, concurrent requests
//! cannot overspend it, and streams are charged from their usage event or their text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: failing loudly is the point

mod common;

use std::time::Duration;

use common::*;
use http::{Method, StatusCode};
use rampart_testkit::DemoOptions;
use rampart_testkit::client::{TestClient, timed_chunks};
use rampart_testkit::harness::GatewayProcess;
use serde_json::json;

// Budget 100 tokens/hour per client IP. The test prompt "w1 w2 w3 w4 w5" is estimated
// at 11 tokens (14 chars / 4 → 4, + 4 per message, + 3) and reserves 11 + 20 = 31; the
// demo server reports 5 prompt + 7 completion = 12 tokens of real usage.
const BUDGET: u64 = 100;
const RESERVE: u64 = 31;

fn gateway(openai: &str, kserve: &str) -> GatewayProcess {
    start(&format!(
        "{}\n[[token_limits]]\nname = \"tph\"\nper = \"ip\"\ntokens = {BUDGET}\nwindow = \"1h\"\ndefault_completion_tokens = 20\nroutes = [\"openai\"]\n",
        base_config(openai, kserve)
    ))
}

fn chat(stream: bool, include_usage: bool) -> String {
    let mut body = json!({"model": "rampart-demo-chat", "messages": [{"role": "user", "content": "w1 w2 w3 w4 w5"}]});
    if stream {
        body["stream"] = json!(true);
        if include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
    }
    body.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_is_charged_real_usage_and_never_overspent() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let gw = gateway(&o.url(), &k.url());
    let c = TestClient::http1();
    let url = format!("{}/v1/chat/completions", gw.url("main"));
    let mut used = 0;
    let mut admitted = 0;
    loop {
        let r = c
            .request(
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                chat(false, false),
            )
            .await
            .unwrap();
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.json()["error"]["code"], "token_limited", "{}", r.text());
            assert!(r.header("retry-after").is_some());
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
        used += r.json()["usage"]["total_tokens"].as_u64().unwrap();
        admitted += 1;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(admitted < 50, "never refused");
    }
    // Charged by real usage (12 each), not by the 31-token reservation: 6 requests fit
    // (5 × 12 + 31 = 91 ≤ 100; 6 × 12 + 31 = 103 > 100).
    assert_eq!(admitted, 6, "used {used}");
    assert!(used <= BUDGET + RESERVE);
    // Other routes are not budgeted.
    assert_eq!(
        c.get(&format!("{}/v2/health/ready", gw.url("main")))
            .await
            .unwrap()
            .status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_cannot_overspend() {
    let o = openai(DemoOptions {
        first_byte_delay: Duration::from_millis(600),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let gw = gateway(&o.url(), &k.url());
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let c = TestClient::http1();
        let url = format!("{}/v1/chat/completions", gw.url("main"));
        tasks.push(tokio::spawn(async move {
            c.request(
                Method::POST,
                &url,
                &[("content-type", "application/json")],
                chat(false, false),
            )
            .await
            .unwrap()
        }));
    }
    let mut admitted = 0;
    let mut used = 0;
    for t in tasks {
        let r = t.await.unwrap();
        if r.status == StatusCode::OK {
            admitted += 1;
            used += r.json()["usage"]["total_tokens"].as_u64().unwrap();
        } else {
            assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
        }
    }
    // All ten were in flight together: only 3 reservations of 31 fit in 100.
    assert_eq!(admitted, 3, "admitted {admitted}");
    assert!(used <= BUDGET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_charged_from_usage_or_text() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    for include_usage in [true, false] {
        let gw = gateway(&o.url(), &k.url());
        let c = TestClient::http1();
        let url = format!("{}/v1/chat/completions", gw.url("main"));
        let mut admitted = 0;
        loop {
            let resp = c
                .send(
                    Method::POST,
                    &url,
                    &[("content-type", "application/json")],
                    chat(true, include_usage),
                )
                .await
                .unwrap();
            if resp.status() == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
            assert_eq!(resp.status(), StatusCode::OK);
            let chunks = timed_chunks(resp.into_body()).await.unwrap();
            let text: String = chunks
                .iter()
                .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
                .collect();
            assert!(text.ends_with("data: [DONE]\n\n"));
            assert_eq!(text.contains("\"usage\""), include_usage, "usage only when asked for");
            admitted += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(admitted < 50, "never refused");
        }
        // With usage: 12 per stream → 6 fit (as above). Without: the prompt estimate (11)
        // plus the streamed text "You said: w1 w2 w3 w4 w5" (24 chars → 6) = 17 → 5 fit
        // (4 × 17 + 31 = 99 ≤ 100; 5 × 17 + 31 = 116 > 100).
        let expected = if include_usage { 6 } else { 5 };
        assert_eq!(admitted, expected, "include_usage = {include_usage}");
    }
}
