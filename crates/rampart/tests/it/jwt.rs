//! OAuth2 / OIDC bearer tokens through the real gateway: an attack suite of forged,
//! stale and misdirected tokens (RFC 8725), key rotation picked up from a real local
//! JWKS server, and the identity provider going down.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::time::Duration;

use crate::common::*;
use http::{Method, StatusCode};
use rampart_testkit::DemoOptions;
use rampart_testkit::client::{TestClient, TestResponse};
use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::jwt::{JwksServer, Signer, assemble, hs256};
use serde_json::{Value, json};

const ISS: &str = "https://idp.rampart.test";

fn config(openai: &str, jwks: &str, timing: &str) -> String {
    format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[[listeners]]
name = "main"
listen = "127.0.0.1:0"

[[identity.jwt]]
issuer = "{ISS}"
audiences = ["rampart"]
algorithms = ["RS256", "PS256", "ES256", "EdDSA"]
jwks_url = "{jwks}"
tenant_claim = "tenant"
roles_claim = "roles"
{timing}

[roles.chat]
routes = ["chat"]
models = ["*"]
actions = ["infer"]

[[upstreams]]
name = "openai"
targets = ["{openai}"]

[[routes]]
name = "chat"
path_prefix = "/v1/"
upstream = "openai"
protocol = "openai"
"#
    )
}

fn now() -> i64 {
    rampart_identity::time::now()
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": "rampart", "sub": "user-42", "tenant": "acme", "roles": ["chat"],
           "iat": now(), "exp": now() + 300})
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

async fn call(c: &TestClient, gw: &GatewayProcess, token: &str) -> TestResponse {
    c.request(
        Method::POST,
        &format!("{}/v1/chat/completions", gw.url("main")),
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/json"),
        ],
        json!({"model": "rampart-demo-chat", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
    )
    .await
    .unwrap()
}

fn refused(r: &TestResponse, code: &str, case: &str) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}: {}", r.text());
    assert_eq!(r.json()["error"]["code"], code, "{case}: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attack_suite() {
    let o = openai(DemoOptions::default()).await;
    let rsa = Signer::rsa(1, "rsa-1").unwrap();
    let other_rsa = Signer::rsa(2, "rsa-2").unwrap();
    let ec = Signer::es256("ec-1").unwrap();
    let ed = Signer::ed25519("ed-1").unwrap();
    let jwks = JwksServer::spawn(loopback(), vec![rsa.jwk(), ec.jwk(), ed.jwk()])
        .await
        .unwrap();
    let evil = JwksServer::spawn(loopback(), vec![other_rsa.jwk()]).await.unwrap();
    let gw = start(&config(&o.url(), &jwks.url(), "min_refresh_interval = \"10s\""));
    let c = TestClient::http1();
    let none = json!({});

    // Each supported algorithm, each with its own key, is accepted.
    for (signer, alg) in [(&rsa, "RS256"), (&rsa, "PS256"), (&ec, "ES256"), (&ed, "EdDSA")] {
        let r = call(&c, &gw, &signer.sign(alg, &none, &claims()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK, "{alg}: {}", r.text());
    }
    let fetches_before = jwks.fetches();

    let good = rsa.sign("RS256", &none, &claims()).unwrap();
    let mut truncated = good.clone();
    truncated.truncate(good.len() - 10);
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            assemble(&json!({"alg": "none", "kid": "rsa-1"}), &claims(), b""),
            "invalid_credentials",
        ),
        (
            "alg None, signature kept",
            {
                let parts: Vec<&str> = good.split('.').collect();
                format!(
                    "{}.{}.{}",
                    rampart_testkit::jwt::b64(br#"{"alg":"None","kid":"rsa-1"}"#),
                    parts[1],
                    parts[2]
                )
            },
            "invalid_credentials",
        ),
        (
            "HS256 keyed with the RSA public key",
            hs256(&rsa.public_bytes(), "rsa-1", &claims()),
            "invalid_credentials",
        ),
        (
            "expired",
            rsa.sign("RS256", &none, &with(claims(), json!({"exp": now() - 120})))
                .unwrap(),
            "token_expired",
        ),
        (
            "not yet valid",
            rsa.sign("RS256", &none, &with(claims(), json!({"nbf": now() + 600})))
                .unwrap(),
            "token_not_yet_valid",
        ),
        (
            "issued in the future",
            rsa.sign("RS256", &none, &with(claims(), json!({"iat": now() + 600})))
                .unwrap(),
            "token_not_yet_valid",
        ),
        (
            "wrong issuer",
            rsa.sign("RS256", &none, &with(claims(), json!({"iss": "https://evil.test"})))
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "wrong audience",
            rsa.sign("RS256", &none, &with(claims(), json!({"aud": ["other"]})))
                .unwrap(),
            "invalid_credentials",
        ),
        // A string `aud` is one value (RFC 7519 §4.1.3), never split on whitespace.
        (
            "audience hidden in a string",
            rsa.sign("RS256", &none, &with(claims(), json!({"aud": "other rampart"})))
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "audience after a tab",
            rsa.sign("RS256", &none, &with(claims(), json!({"aud": "other\trampart"})))
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "audience as a number",
            rsa.sign("RS256", &none, &with(claims(), json!({"aud": 5}))).unwrap(),
            "invalid_credentials",
        ),
        (
            "missing exp",
            rsa.sign("RS256", &none, &with(claims(), json!({"exp": null}))).unwrap(),
            "invalid_credentials",
        ),
        (
            "missing sub",
            rsa.sign("RS256", &none, &with(claims(), json!({"sub": null}))).unwrap(),
            "invalid_credentials",
        ),
        (
            "signed by another key under our kid",
            Signer::rsa(2, "rsa-1")
                .unwrap()
                .sign("RS256", &none, &claims())
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "kid with path characters",
            Signer::rsa(1, "../../etc/passwd")
                .unwrap()
                .sign("RS256", &none, &claims())
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "jku pointing elsewhere",
            Signer::rsa(2, "rsa-2")
                .unwrap()
                .sign("RS256", &json!({"jku": evil.url()}), &claims())
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "x5u pointing elsewhere",
            Signer::rsa(2, "rsa-1")
                .unwrap()
                .sign("RS256", &json!({"x5u": evil.url()}), &claims())
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "embedded jwk",
            other_rsa
                .sign("RS256", &json!({"jwk": other_rsa.jwk()}), &claims())
                .unwrap(),
            "invalid_credentials",
        ),
        (
            "crit header",
            rsa.sign("RS256", &json!({"crit": ["exp"]}), &claims()).unwrap(),
            "invalid_credentials",
        ),
        (
            "ES256 key used for RS256",
            ec.sign("ES256", &json!({"alg": "RS256"}), &claims()).unwrap(),
            "invalid_credentials",
        ),
        ("truncated", truncated, "invalid_credentials"),
        ("malformed", "a.b.c".into(), "invalid_credentials"),
        ("not base64", "!!!.???.***".into(), "invalid_credentials"),
        (
            "oversized",
            rsa.sign("RS256", &none, &with(claims(), json!({"pad": "x".repeat(9000)})))
                .unwrap(),
            "invalid_credentials",
        ),
    ];
    for (case, token, code) in &cases {
        refused(&call(&c, &gw, token).await, code, case);
    }
    assert_eq!(evil.fetches(), 0, "a key URL from a token was followed");

    // Unknown kids trigger at most one JWKS fetch per min_refresh_interval (10 s).
    for i in 0..5 {
        let t = Signer::rsa(2, &format!("new-{i}"))
            .unwrap()
            .sign("RS256", &none, &claims())
            .unwrap();
        refused(&call(&c, &gw, &t).await, "invalid_credentials", "unknown kid");
    }
    let extra = jwks.fetches() - fetches_before;
    assert!(
        extra <= 1,
        "{extra} JWKS fetches for unknown kids within the rate limit"
    );

    // Claims map to the principal: roles decide, tenant is recorded.
    let r = call(
        &c,
        &gw,
        &rsa.sign("RS256", &none, &with(claims(), json!({"roles": []}))).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"]["code"], "action_not_permitted");
    let line = gw
        .wait_for_access_log(Duration::from_secs(5), |l| l["rampart.auth.credential"] == "jwt")
        .expect("jwt exchange logged");
    assert_eq!(line["user.id"], "user-42");
    assert_eq!(line["rampart.tenant"], "acme");
    let all = gw.stdout_text() + &gw.stderr_text();
    assert!(
        !all.contains(good.split('.').nth(2).unwrap()),
        "a token signature reached the logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_rotation_and_identity_provider_outage() {
    let o = openai(DemoOptions::default()).await;
    let a = Signer::rsa(1, "key-a").unwrap();
    let b = Signer::es256("key-b").unwrap();
    let late = Signer::ed25519("key-late").unwrap();
    let jwks = JwksServer::spawn(loopback(), vec![a.jwk()]).await.unwrap();
    let timing = "refresh_interval = \"1s\"\nmin_refresh_interval = \"100ms\"\nmax_stale = \"3s\"";
    let gw = start(&config(&o.url(), &jwks.url(), timing));
    let c = TestClient::http1();
    let none = json!({});
    let token_a = a.sign("RS256", &none, &claims()).unwrap();
    let token_b = b.sign("ES256", &none, &claims()).unwrap();

    assert_eq!(call(&c, &gw, &token_a).await.status, StatusCode::OK);
    // The IdP publishes a new key: picked up on first use of its kid (once the
    // 100 ms min_refresh_interval since the start-up fetch has passed).
    jwks.set_keys(vec![a.jwk(), b.jwk()]);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let fetched = jwks.fetches();
    let r = call(&c, &gw, &token_b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert!(jwks.fetches() > fetched, "the new kid did not trigger a fetch");

    // The IdP goes down: cached keys keep working...
    jwks.fail(true);
    for _ in 0..3 {
        assert_eq!(call(&c, &gw, &token_a).await.status, StatusCode::OK);
        assert_eq!(call(&c, &gw, &token_b).await.status, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // ...a key it never saw cannot be fetched...
    jwks.set_keys(vec![a.jwk(), b.jwk(), late.jwk()]);
    let token_late = late.sign("EdDSA", &none, &claims()).unwrap();
    refused(
        &call(&c, &gw, &token_late).await,
        "invalid_credentials",
        "key published while the IdP is down",
    );
    // ...and after max_stale (3 s) without a successful fetch, nothing is accepted.
    let mut closed = false;
    for _ in 0..40 {
        if call(&c, &gw, &token_a).await.status == StatusCode::UNAUTHORIZED {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(closed, "stale keys were served beyond max_stale");
    assert!(gw.logs().iter().any(|l| l["event"] == "jwks_refresh_failed"));

    // The IdP recovers: the periodic refresh restores service without a restart.
    jwks.fail(false);
    let mut back = false;
    for _ in 0..40 {
        if call(&c, &gw, &token_late).await.status == StatusCode::OK {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "service did not resume after the IdP came back");
    assert_eq!(call(&c, &gw, &token_a).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_keys_from_a_jwks_file() {
    let o = openai(DemoOptions::default()).await;
    let signer = Signer::ed25519("static-1").unwrap();
    let dir = rampart_testkit::TempDir::new("rampart-jwks-file").unwrap();
    std::fs::write(dir.join("jwks.json"), json!({"keys": [signer.jwk()]}).to_string()).unwrap();
    let text = config(&o.url(), "unused", "").replace("jwks_url = \"unused\"", "jwks_file = \"jwks.json\"");
    let gw = GatewayProcess::start_in(bin(), &text, dir).unwrap();
    let c = TestClient::http1();
    let token = signer.sign("EdDSA", &json!({}), &claims()).unwrap();
    assert_eq!(call(&c, &gw, &token).await.status, StatusCode::OK);
    let stranger = Signer::ed25519("static-1")
        .unwrap()
        .sign("EdDSA", &json!({}), &claims())
        .unwrap();
    refused(
        &call(&c, &gw, &stranger).await,
        "invalid_credentials",
        "same kid, other key",
    );
}
