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
    // Binary output tensors (tritonclient's default) are hardened in place: the answer
    // stays binary, with the same sizes, and its rows are one-hot.
    let gw = gateway(&k.url(), "label_only = true", "");
    let mut body = iris();
    body["outputs"] = json!([{"name": "probabilities", "parameters": {"binary_data": true}}]);
    let r = c
        .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &body)
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let header_len: usize = r.headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (head, tail) = r.body.split_at(header_len);
    let head: Value = serde_json::from_slice(head).unwrap();
    assert_eq!(
        head["outputs"][0]["parameters"]["binary_data_size"],
        json!(24),
        "{head}"
    );
    let values: Vec<f32> = tail
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(
        values,
        vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        "setosa and virginica, one-hot"
    );
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

/// The SSE `data:` payloads of a stream, `[DONE]` excluded, as JSON.
fn stream_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Every logprob in an answer (chosen tokens and alternatives), and the largest number
/// of alternatives any token carries.
fn logprobs_of(choice_logprobs: &Value) -> (Vec<f64>, usize) {
    let mut values = Vec::new();
    let mut widest = 0;
    for token in choice_logprobs["content"].as_array().into_iter().flatten() {
        values.push(token["logprob"].as_f64().unwrap());
        let alts = token["top_logprobs"].as_array().unwrap();
        widest = widest.max(alts.len());
        values.extend(alts.iter().map(|a| a["logprob"].as_f64().unwrap()));
    }
    (values, widest)
}

fn on_grid(x: f64, decimals: i32) -> bool {
    let f = 10f64.powi(decimals);
    ((x * f).round() / f - x).abs() < 1e-12
}

/// An OpenAI route with `[routes.output]`.
fn llm_gateway(openai: &str, output: &str) -> GatewayProcess {
    let base = base_config(openai, "http://127.0.0.1:9").replacen(
        "protocol = \"openai\"\npublic = true\n",
        &format!("protocol = \"openai\"\npublic = true\n[routes.output]\n{output}\n"),
        1,
    );
    start(&base)
}

#[tokio::test]
async fn llm_logprobs_are_capped_rounded_or_stripped_whole_and_streamed() {
    let o = openai(rampart_testkit::DemoOptions::default()).await;
    let c = TestClient::http1();
    let ask = |stream: bool| {
        json!({"model": "m", "messages": [{"role": "user", "content": "tell me about the weather today"}],
               "logprobs": true, "top_logprobs": 3, "stream": stream})
    };
    // The upstream itself: full precision, three alternatives per token.
    let direct = c
        .post_json(&format!("{}/v1/chat/completions", o.url()), &ask(false))
        .await
        .unwrap()
        .json();
    let (raw, widest) = logprobs_of(&direct["choices"][0]["logprobs"]);
    assert_eq!(widest, 3);
    assert!(raw.iter().any(|x| !on_grid(*x, 2)), "the demo gives full precision");

    let gw = llm_gateway(&o.url(), "top_logprobs = 1\ndecimals = 2");
    let url = format!("{}/v1/chat/completions", gw.url("main"));
    let whole = c.post_json(&url, &ask(false)).await.unwrap();
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.text());
    let whole = whole.json();
    let (values, widest) = logprobs_of(&whole["choices"][0]["logprobs"]);
    assert_eq!(widest, 1);
    assert_eq!(
        values.len(),
        raw.len() / 4 * 2,
        "one chosen and one alternative per token"
    );
    assert!(values.iter().all(|x| on_grid(*x, 2)), "{values:?}");
    assert_eq!(
        whole["choices"][0]["message"]["content"], direct["choices"][0]["message"]["content"],
        "the text is untouched"
    );

    let streamed = c.post_json(&url, &ask(true)).await.unwrap();
    assert_eq!(streamed.status, StatusCode::OK);
    let text = streamed.text();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let events = stream_events(&text);
    let mut content = String::new();
    let mut tokens = 0;
    for e in &events {
        let choice = &e["choices"][0];
        content.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        if !choice["logprobs"].is_null() {
            let (values, widest) = logprobs_of(&choice["logprobs"]);
            assert!(widest <= 1, "{e}");
            assert!(values.iter().all(|x| on_grid(*x, 2)), "{e}");
            tokens += 1;
        }
    }
    assert_eq!(content, direct["choices"][0]["message"]["content"].as_str().unwrap());
    assert_eq!(tokens, raw.len() / 4, "every token's logprobs came through, hardened");

    // Stripped: no logprobs at all, whole or streamed.
    let gw = llm_gateway(&o.url(), "logprobs = \"strip\"");
    let url = format!("{}/v1/chat/completions", gw.url("main"));
    let whole = c.post_json(&url, &ask(false)).await.unwrap().json();
    assert_eq!(whole["choices"][0]["logprobs"], Value::Null);
    let text = c.post_json(&url, &ask(true)).await.unwrap().text();
    let events = stream_events(&text);
    assert!(events.len() > 3);
    assert!(events.iter().all(|e| e["choices"][0]["logprobs"].is_null()), "{text}");
}

#[tokio::test]
async fn llm_embeddings_are_rounded_as_floats_and_as_base64() {
    let o = openai(rampart_testkit::DemoOptions::default()).await;
    let gw = llm_gateway(&o.url(), "decimals = 2");
    let c = TestClient::http1();
    let url = format!("{}/v1/embeddings", gw.url("main"));
    let floats = c
        .post_json(&url, &json!({"model": "e", "input": "the quick brown fox"}))
        .await
        .unwrap()
        .json();
    let v: Vec<f64> = floats["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v.len(), 8);
    assert!(v.iter().all(|x| on_grid(*x, 2)), "{v:?}");
    let want = rampart_testkit::demo::demo_embedding("the quick brown fox");
    for (a, b) in v.iter().zip(&want) {
        assert!((a - b).abs() <= 0.005 + 1e-9, "{a} vs {b}");
    }
    let b64 = c
        .post_json(
            &url,
            &json!({"model": "e", "input": "the quick brown fox", "encoding_format": "base64"}),
        )
        .await
        .unwrap()
        .json();
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let back: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(back.len(), 8);
    for (a, b) in back.iter().zip(&v) {
        assert!((f64::from(*a) - b).abs() < 1e-6, "{a} vs {b}");
    }
}

/// A route with both a response content policy and output hardening: the content
/// policy holds every answer whole (health and metadata too), and only inference
/// answers are hardened — health and metadata pass as they are (a demo regression).
#[tokio::test]
async fn with_a_content_policy_too_only_inference_answers_are_hardened() {
    let k = kserve().await;
    // The policy goes on the route, before its [routes.output] table.
    let base = base_config("http://127.0.0.1:9", &k.url()).replacen(
        "protocol = \"kserve\"\npublic = true\n",
        "protocol = \"kserve\"\npublic = true\npolicy = \"tensors\"\n[routes.output]\nlabel_only = true\n",
        1,
    );
    let gw = start(&format!(
        "{base}\n[policies.tensors]\nresponse = {{ \"pii.*\" = \"redact\" }}\n"
    ));
    let c = TestClient::http1();
    for path in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/iris",
        "/v2/models/iris/ready",
    ] {
        let r = c.get(&format!("{}{path}", gw.url("main"))).await.unwrap();
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    }
    let r = c
        .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &iris())
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    for row in rows(&r.json()) {
        assert!(row.iter().all(|v| *v == 0.0 || *v == 1.0), "{row:?}");
    }
}

/// Every classifier mode through the real binary on the KServe iris route: top-k,
/// rounding alone, and Gaussian noise — each keeps rows distributions with the
/// model's top label, in the answer's own shape and type.
#[tokio::test]
async fn top_k_rounding_and_gaussian_noise_on_kserve() {
    let k = kserve().await;
    let c = TestClient::http1();
    let truth = rows(
        &c.post_json(&format!("{}/v2/models/iris/infer", k.url()), &iris())
            .await
            .unwrap()
            .json(),
    );
    let check = |got: &[Vec<f64>], what: &str| {
        assert_eq!(got.len(), truth.len(), "{what}");
        for (g, t) in got.iter().zip(&truth) {
            assert!((g.iter().sum::<f64>() - 1.0).abs() < 1e-6, "{what}: {g:?}");
            assert!(g.iter().all(|v| (0.0..=1.0).contains(v)), "{what}: {g:?}");
            assert_eq!(top(g), top(t), "{what}: the label moved: {g:?} vs {t:?}");
        }
    };
    for (output, what) in [
        ("top_k = 1", "top-1"),
        ("top_k = 2", "top-2"),
        ("decimals = 1", "rounding"),
        (
            "noise = { mechanism = \"gaussian\", epsilon = 1.0, delta = 1e-5 }\nbudget = { epsilon = 100.0, delta = 1e-3 }",
            "gaussian",
        ),
    ] {
        let gw = gateway(&k.url(), output, "");
        let r = c
            .post_json(&format!("{}/v2/models/iris/infer", gw.url("main")), &iris())
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::OK, "{what}: {}", r.text());
        let out = r.json();
        assert_eq!(out["outputs"][0]["shape"], json!([2, 3]), "{what}");
        assert_eq!(out["outputs"][0]["datatype"], "FP32", "{what}");
        let got = rows(&out);
        check(&got, what);
        match what {
            "top-1" => assert!(
                got.iter().all(|r| r.iter().filter(|v| **v > 0.0).count() == 1),
                "{got:?}"
            ),
            "top-2" => assert!(
                got.iter().all(|r| r.iter().filter(|v| **v == 0.0).count() >= 1),
                "{got:?}"
            ),
            "rounding" => assert!(
                got.iter()
                    .flatten()
                    .all(|v| ((v * 10.0).round() / 10.0 - v).abs() < 1e-9),
                "{got:?}"
            ),
            _ => assert!(
                got.iter()
                    .zip(&truth)
                    .any(|(g, t)| g.iter().zip(t).any(|(a, b)| (a - b).abs() > 1e-3)),
                "gaussian noise changed nothing: {got:?}"
            ),
        }
    }
}
