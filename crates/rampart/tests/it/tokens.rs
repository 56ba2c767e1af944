//! LLM token budgets with the demo OpenAI server (which reports `usage`): a budget is
//! never exceeded by more than one in-flight request's worth, concurrent requests
//! cannot overspend it, and streams are charged from their usage event or their text.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::time::Duration;

use crate::common::*;
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
    gateway_with(openai, kserve, "")
}

/// `route_tokens`: an inline `tokens = {...}` table for the OpenAI route.
fn gateway_with(openai: &str, kserve: &str, route_tokens: &str) -> GatewayProcess {
    let base = base_config(openai, kserve).replacen(
        "protocol = \"openai\"\npublic = true\n",
        &format!("protocol = \"openai\"\npublic = true\n{route_tokens}\n"),
        1,
    );
    start(&format!(
        "{base}\n[[token_limits]]\nname = \"tph\"\nper = \"ip\"\ntokens = {BUDGET}\nwindow = \"1h\"\ndefault_completion_tokens = 20\nroutes = [\"openai\"]\n",
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
    // (client asks for usage, route option `request_usage`, streams admitted)
    for (include_usage, request_usage, expected) in [(true, true, 6), (false, true, 6), (false, false, 4)] {
        let gw = gateway_with(
            &o.url(),
            &k.url(),
            &format!("tokens = {{ request_usage = {request_usage} }}"),
        );
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
            assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
            assert!(text.contains("\"w5\""), "{text}");
            // The usage event reaches only a client that asked for it, even when the
            // gateway asked the upstream for it.
            assert_eq!(text.contains("\"total_tokens\""), include_usage, "{text}");
            // Every event stays well-formed: "data: {json}" lines separated by blank lines.
            for event in text.split("\n\n").filter(|e| !e.is_empty()) {
                let data = event.strip_prefix("data: ").unwrap();
                assert!(
                    data == "[DONE]" || serde_json::from_str::<serde_json::Value>(data).is_ok(),
                    "{event}"
                );
            }
            admitted += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(admitted < 50, "never refused");
        }
        // With usage (asked by the client or by the gateway): 12 per stream → 6 fit (as
        // above). Without: the prompt estimate (11) plus the streamed deltas "You ",
        // "said: ", "w1 " … "w5" counted at 4 characters per token, each rounded up
        // (1 + 2 + 5 × 1 = 8) = 19 → 4 fit (3 × 19 + 31 = 88 ≤ 100; 4 × 19 + 31 > 100).
        assert_eq!(
            admitted, expected,
            "include_usage = {include_usage}, request_usage = {request_usage}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bpe_tokenizer_counts_the_prompt() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let c = TestClient::http1();
    let content = "Rampart counts prompts with the model family's own vocabulary: naïve façade, 東京, 🦀.";
    let body = json!({"model": "m", "max_tokens": 200, "messages": [{"role": "user", "content": content}]}).to_string();
    for (tokenizer, vocab) in [
        ("cl100k", bpe_openai::cl100k_base()),
        ("o200k", bpe_openai::o200k_base()),
    ] {
        let gw = gateway_with(
            &o.url(),
            &k.url(),
            &format!("tokens = {{ tokenizer = \"{tokenizer}\" }}"),
        );
        let r = c
            .request(
                Method::POST,
                &format!("{}/v1/chat/completions", gw.url("main")),
                &[("content-type", "application/json")],
                body.clone(),
            )
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
        // 3 per message + the role + the content + 3 for the reply, + max_tokens.
        let expected = 3 + vocab.count("user") + vocab.count(content) + 3 + 200;
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("may use {expected} tokens")),
            "{tokenizer}: {}",
            r.text()
        );
    }
}
