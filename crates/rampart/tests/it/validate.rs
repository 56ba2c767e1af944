//! Protocol-aware validation through the real gateway: invalid OpenAI and KServe
//! payloads are refused with 400 and the JSON path of the problem before they reach
//! the model; the route's policy on `n`, `logit_bias`, `logprobs`, `tools`, token caps
//! and per-input value ranges is enforced.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::sync::{Arc, Mutex};

use crate::common::*;
use http::StatusCode;
use rampart_testkit::DemoOptions;
use rampart_testkit::client::TestClient;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_payloads_are_refused_with_the_json_path() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(Arc::clone(&received)),
        ..Default::default()
    })
    .await;
    let k = kserve().await;
    let config = base_config(&o.url(), &k.url())
        .replacen(
            "protocol = \"openai\"\npublic = true\n",
            "protocol = \"openai\"\npublic = true\nvalidation = { allow_logit_bias = false, allow_logprobs = false, max_tokens = 512, max_n = 2 }\n",
            1,
        )
        .replacen(
            "protocol = \"kserve\"\npublic = true\n",
            "protocol = \"kserve\"\npublic = true\nvalidation = { inputs = [{ name = \"input-0\", datatype = \"FP32\", shape = [-1, 4], min = 0.0, max = 100.0 }], only_listed_inputs = true }\n",
            1,
        );
    let gw = start(&config);
    let c = TestClient::http1();
    let chat = format!("{}/v1/chat/completions", gw.url("main"));
    let msg = json!([{"role": "user", "content": "hi"}]);
    let cases: Vec<(Value, &str)> = vec![
        (json!({"messages": msg}), "model"),
        (json!({"model": "m", "messages": []}), "messages"),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}),
            "messages[1].role",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": 7}]}]}),
            "messages[0].content[0].text",
        ),
        (json!({"model": "m", "messages": msg, "n": 3}), "n"),
        (
            json!({"model": "m", "messages": msg, "max_tokens": 100000}),
            "max_tokens",
        ),
        (
            json!({"model": "m", "messages": msg, "logit_bias": {"1": 10}}),
            "logit_bias",
        ),
        (json!({"model": "m", "messages": msg, "logprobs": true}), "logprobs"),
        (json!({"model": "m", "messages": msg, "temperature": -1}), "temperature"),
    ];
    for (body, path) in cases {
        let r = c.post_json(&chat, &body).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        let e = &r.json()["error"];
        assert_eq!(e["code"], "invalid_request", "{}", r.text());
        assert_eq!(e["param"], path, "{}", r.text());
        assert!(
            e["message"].as_str().unwrap().starts_with(&format!("{path}: ")),
            "{}",
            r.text()
        );
    }
    // None of them reached the model; a valid one does.
    assert!(received.lock().unwrap().is_empty());
    let ok = c
        .post_json(&chat, &json!({"model": "m", "messages": msg, "n": 2, "max_tokens": 10}))
        .await
        .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(received.lock().unwrap().len(), 1);

    let infer = format!("{}/v2/models/iris/infer", gw.url("main"));
    let tensor = |name: &str, shape: Value, data: Value| json!({"inputs": [{"name": name, "shape": shape, "datatype": "FP32", "data": data}]});
    let cases = [
        (tensor("input-0", json!([1, 4]), json!([1, 2, 3])), "inputs[0].data"),
        (
            tensor("input-0", json!([1, 4]), json!([1, 2, 3, 500])),
            "inputs[0].data[3]",
        ),
        (tensor("input-0", json!([1, 3]), json!([1, 2, 3])), "inputs[0].shape"),
        (tensor("other", json!([1, 4]), json!([1, 2, 3, 4])), "inputs[0].name"),
        (
            json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, null, 4]}]}),
            "inputs[0].data[2]",
        ),
    ];
    for (body, path) in cases {
        let r = c.post_json(&infer, &body).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert!(
            r.json()["error"].as_str().unwrap().starts_with(&format!("{path}: ")),
            "{}",
            r.text()
        );
    }
    let ok = c
        .post_json(&infer, &tensor("input-0", json!([1, 4]), json!([5.1, 3.5, 1.4, 0.2])))
        .await
        .unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_route_follows_its_json_schema() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let dir = rampart_testkit::TempDir::new("rampart-schema").unwrap();
    let schema = dir.path().join("score.schema.json");
    std::fs::write(
        &schema,
        json!({
            "type": "object",
            "required": ["features"],
            "properties": {"features": {"type": "array", "minItems": 1, "maxItems": 8,
                                        "items": {"type": "number", "minimum": 0, "maximum": 1}}},
            "additionalProperties": false
        })
        .to_string(),
    )
    .unwrap();
    let config = base_config(&o.url(), &k.url()).replacen(
        "path = \"/echo\"\nupstream = \"openai\"\npublic = true\n",
        &format!(
            "path = \"/echo\"\nupstream = \"openai\"\npublic = true\nvalidation = {{ json_schema = \"{}\" }}\n",
            schema.display()
        ),
        1,
    );
    assert!(
        config.contains("json_schema"),
        "the echo route was found in the base config"
    );
    let gw = start(&config);
    let c = TestClient::http1();
    let url = format!("{}/echo", gw.url("main"));
    let ok = c.post_json(&url, &json!({"features": [0.1, 0.9]})).await.unwrap();
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    for (body, path) in [
        (json!({"features": [0.1, 1.5]}), "features[1]"),
        (json!({"features": []}), "features"),
        (json!({"features": [0.1], "extra": true}), "$"),
        (json!({}), "$"),
    ] {
        let r = c.post_json(&url, &body).await.unwrap();
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], path, "{}", r.text());
    }
    // A schema that does not compile is a config error naming the key and the file.
    std::fs::write(&schema, r#"{"type": "no-such-type"}"#).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check-config"])
        .arg({
            let p = dir.path().join("rampart.toml");
            std::fs::write(&p, &config).unwrap();
            p
        })
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("validation.json_schema") && err.contains("not a valid JSON Schema"),
        "{err}"
    );
}
