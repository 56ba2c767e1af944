//! Output hardening through the real gateway and the demo KServe iris server: label
//! only, noise with rounding, the privacy budget refusing (429) or degrading to the
//! label, and answers whose rows cannot be read refused (502) rather than passed on;
//! on LLM routes, the logit-extraction pair (`logit_bias` with logprobs) refused.

use crate::common::*;
use http::StatusCode;
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;
use serde_json::{Value, json};

/// Two iris rows: a setosa and a virginica.
fn iris() -> Value {
    json!({"inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP32",
                       "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]})
}

/// The base config with `[routes.output]` on the KServe route, and more TOML after.
fn gateway(kserve: &str, output: &str, extra: &str) -> GatewayProcess {
    let base = base_config("http://127.0.0.1:9", kserve).replacen(
        "protocol = \"kserve\"\npublic = true\n",
        &format!("protocol = \"kserve\"\npublic = true\n[routes.output]\n{output}\n"),
        1,
    );
    start(&format!("{base}\n{extra}"))
}

fn rows(out: &Value) -> Vec<Vec<f64>> {
    let data: Vec<f64> = out["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    data.chunks(3).map(<[f64]>::to_vec).collect()
}

fn top(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

#[tokio::test]
async fn label_only_and_noise_keep_the_label_and_the_protocol() {
    let k = kserve().await;
    let c = TestClient::http1();
    let direct = c
        .post_json(&format!("{}/v2/models/iris/infer", k.url()), &iris())
        .await
        .unwrap();
    let truth = rows(&direct.json());

    let gw = gateway(&k.url(), "label_only = true", "");
    let r = c
        .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &iris())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let out = r.json();
    for (got, real) in rows(&out).iter().zip(&truth) {
        let mut hot = vec![0.0; 3];
        hot[top(real)] = 1.0;
        assert_eq!(got, &hot);
    }
    assert_eq!(
        out["outputs"][1]["data"],
        json!(["setosa", "virginica"]),
        "the label tensor is untouched"
    );
    assert_eq!(out["outputs"][0]["shape"], json!([2, 3]));
    assert_eq!(out["outputs"][0]["datatype"], "FP32");
    // Health and metadata carry no outputs: they pass as they are.
    let meta = c.get(&format!("{}/v2/models/iris", gw.url("main"))).await.unwrap();
    assert_eq!(meta.status, StatusCode::OK, "{}", meta.text());
    assert_eq!(meta.json()["inputs"][0]["shape"], json!([-1, 4]));
    let ready = c.get(&format!("{}/v2/health/ready", gw.url("main"))).await.unwrap();
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text());
    drop(gw);

    let gw = gateway(
        &k.url(),
        "noise = { mechanism = \"laplace\", epsilon = 2.0 }\ndecimals = 2",
        "",
    );
    let mut differs = false;
    for _ in 0..10 {
        let r = c
            .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &iris())
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        for (got, real) in rows(&r.json()).iter().zip(&truth) {
            assert_eq!(top(got), top(real), "the top label is kept: {got:?} vs {real:?}");
            assert!((got.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{got:?}");
            assert!(
                got.iter()
                    .all(|v| (0.0..=1.0).contains(v) && ((v * 100.0) - (v * 100.0).round()).abs() < 1e-6)
            );
            differs |= got.iter().zip(real).any(|(a, b)| (a - b).abs() > 0.011);
        }
    }
    assert!(differs, "the noise changed something in 10 answers");
}

#[tokio::test]
async fn the_privacy_budget_refuses_or_degrades_once_spent() {
    let k = kserve().await;
    let c = TestClient::http1();
    // Two rows a request at ε = 1 each: a budget of 4 pays for two requests.
    let output = "noise = { epsilon = 1.0 }\nbudget = { epsilon = 4.0, window = \"1h\" }";
    let gw = gateway(&k.url(), output, "");
    let url = format!("{}/v2/models/iris/infer", gw.url("main"));
    for _ in 0..2 {
        let r = c.post_json(&url, &iris()).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let r = c.post_json(&url, &iris()).await.unwrap();
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert_eq!(
        r.json()["code"],
        "privacy_budget_spent",
        "KServe error shape: {}",
        r.text()
    );
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 3600, "{retry}");
    drop(gw);

    let output = "noise = { epsilon = 1.0 }\nbudget = { epsilon = 2.0, when_spent = \"label_only\" }";
    let gw = gateway(&k.url(), output, "");
    let url = format!("{}/v2/models/iris/infer", gw.url("main"));
    let first = c.post_json(&url, &iris()).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    let then = c.post_json(&url, &iris()).await.unwrap();
    assert_eq!(then.status, StatusCode::OK, "{}", then.text());
    for row in rows(&then.json()) {
        assert_eq!(
            row.iter().filter(|v| **v == 1.0).count(),
            1,
            "label only once spent: {row:?}"
        );
        assert_eq!(row.iter().filter(|v| **v == 0.0).count(), 2, "{row:?}");
    }
}

#[tokio::test]
async fn json_routes_harden_by_path_and_refuse_answers_without_readable_rows() {
    let k = kserve().await;
    let c = TestClient::http1();
    // The KServe route read as a plain JSON API, its rows chosen by a path.
    let json_route = |path: &str| {
        let base = base_config("http://127.0.0.1:9", &k.url()).replacen(
            "protocol = \"kserve\"\npublic = true\n",
            &format!("protocol = \"json\"\npublic = true\n[routes.output]\npath = \"{path}\"\nlabel_only = true\n"),
            1,
        );
        start(&base)
    };
    let one =
        json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [6.7, 3.0, 5.2, 2.3]}]});
    let gw = json_route("outputs[0].data");
    let r = c
        .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &one)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["outputs"][0]["data"], json!([0.0, 0.0, 1.0]), "{}", r.text());
    drop(gw);
    // Not probabilities (the shape [1, 3] sums to 4), and nothing at the path.
    for path in ["outputs[0].shape", "predictions[*].scores"] {
        let gw = json_route(path);
        let r = c
            .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &one)
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "response_uninspectable", "{}", r.text());
    }
    // Binary output tensors are not hardened: refused, never passed on.
    let gw = gateway(&k.url(), "label_only = true", "");
    let mut body = iris();
    body["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": true}}]);
    let r = c
        .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &body)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
}

/// The logit-extraction combination on an OpenAI route with default validation:
/// `logit_bias` with logprobs is refused before it reaches the model; each alone
/// passes, and `top_logprobs` above the route's cap is refused.
#[tokio::test]
async fn logit_bias_with_logprobs_is_refused_on_llm_routes() {
    let (o, k) = (openai(rampart_testkit::DemoOptions::default()).await, kserve().await);
    let base = base_config(&o.url(), &k.url());
    let gw = start(&base);
    let c = TestClient::http1();
    let url = format!("{}/v1/chat/completions", gw.url("main"));
    let msgs = json!([{"role": "user", "content": "hello"}]);
    let r = c
        .post_json(
            &url,
            &json!({"model": "m", "messages": msgs, "logit_bias": {"1000": 100}, "logprobs": true, "top_logprobs": 5}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "logit_bias", "{}", r.text());
    for alone in [
        json!({"logit_bias": {"1000": 100}}),
        json!({"logprobs": true, "top_logprobs": 5}),
    ] {
        let mut body = json!({"model": "m", "messages": msgs});
        body.as_object_mut().unwrap().extend(alone.as_object().unwrap().clone());
        let r = c.post_json(&url, &body).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.text());
    }
    drop(gw);
    let capped = base.replacen(
        "protocol = \"openai\"\npublic = true\n",
        "protocol = \"openai\"\npublic = true\nvalidation = { max_top_logprobs = 2 }\n",
        1,
    );
    let gw = start(&capped);
    let url = format!("{}/v1/chat/completions", gw.url("main"));
    let r = c
        .post_json(
            &url,
            &json!({"model": "m", "messages": msgs, "logprobs": true, "top_logprobs": 3}),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert_eq!(r.json()["error"]["param"], "top_logprobs", "{}", r.text());
}
