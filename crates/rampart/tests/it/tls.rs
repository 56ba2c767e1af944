//! TLS termination, HTTP/2 over ALPN, and mTLS with certificates generated per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::time::Duration;

use crate::common::*;
use http::{StatusCode, Version};
use rampart_testkit::DemoOptions;
use rampart_testkit::TempDir;
use rampart_testkit::certs;
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;

fn tls_config(base: &str, pki: &certs::Pki) -> String {
    let listeners = format!(
        r#"
[[listeners]]
name = "tls"
listen = "127.0.0.1:0"
tls.cert = "{}"
tls.key = "{}"

[[listeners]]
name = "mtls"
listen = "127.0.0.1:0"
tls.cert = "{}"
tls.key = "{}"
tls.client_ca = "{}"
tls.hsts = ""
"#,
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.server_cert.display(),
        pki.server_key.display(),
        pki.ca_cert.display(),
    );
    base.replacen("[defaults.limits]", &format!("{listeners}\n[defaults.limits]"), 1)
}

fn https(gw: &GatewayProcess, listener: &str) -> String {
    format!("https://localhost:{}", gw.addr(listener).port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_http1_and_h2_and_mtls() {
    // The KServe upstream is one that tries to switch HSTS off.
    let o = openai(DemoOptions::default()).await;
    let k = rampart_testkit::TestServer::spawn(loopback(), |_req| async move {
        use http_body_util::BodyExt as _;
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"{}"))
            .map_err(|never| match never {})
            .boxed();
        let mut r = http::Response::new(body);
        r.headers_mut()
            .insert("content-type", http::HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert("strict-transport-security", http::HeaderValue::from_static("max-age=0"));
        r
    })
    .await
    .unwrap();
    let dir = TempDir::new("rampart-tls").unwrap();
    let pki = certs::generate(dir.path()).unwrap();
    let config = tls_config(&base_config(&o.url(), &k.url()), &pki);
    let gw = GatewayProcess::start_in(bin(), &config, dir).unwrap();

    // TLS, HTTP/1.1.
    let c = TestClient::tls(&pki.ca_cert, None, false).unwrap();
    let r = c.get(&format!("{}/v1/models", https(&gw, "tls"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version, Version::HTTP_11);
    // Browsers are told to keep to HTTPS (the default), on errors too.
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"));
    let r = c.get(&format!("{}/no/such/route", https(&gw, "tls"))).await.unwrap();
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000"),
        "{}",
        r.status
    );

    // TLS, HTTP/2 negotiated by ALPN.
    let c2 = TestClient::tls(&pki.ca_cert, None, true).unwrap();
    let r = c2.get(&format!("{}/v2/models/iris", https(&gw, "tls"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version, Version::HTTP_2);
    // The upstream's `max-age=0` does not reach the browser: the listener owns HSTS.
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"));

    // The upstream learns the client came over TLS.
    let r = c.get(&format!("{}/echo", https(&gw, "tls"))).await.unwrap();
    assert_eq!(r.json()["headers"]["x-forwarded-proto"][0], "https");

    // mTLS: no client certificate → handshake refused.
    let no_cert = TestClient::tls(&pki.ca_cert, None, false).unwrap();
    assert!(no_cert.get(&format!("{}/v1/models", https(&gw, "mtls"))).await.is_err());
    // A certificate from an untrusted CA → refused.
    let rogue = TestClient::tls(
        &pki.ca_cert,
        Some((&pki.rogue_client_cert, &pki.rogue_client_key)),
        false,
    )
    .unwrap();
    assert!(rogue.get(&format!("{}/v1/models", https(&gw, "mtls"))).await.is_err());
    // A certificate from the configured CA → served, over h2 too.
    let good = TestClient::tls(&pki.ca_cert, Some((&pki.client_cert, &pki.client_key)), true).unwrap();
    let r = good.get(&format!("{}/v1/models", https(&gw, "mtls"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.version, Version::HTTP_2);
    // `hsts = ""` turns it off.
    assert_eq!(r.header("strict-transport-security"), None);

    // Plain HTTP to a TLS port is not served.
    let plain = TestClient::http1();
    assert!(
        plain
            .get(&format!("http://127.0.0.1:{}/v1/models", gw.addr("tls").port()))
            .await
            .is_err()
    );

    // The plain listener keeps serving throughout.
    let r = plain.get(&format!("{}/v1/models", gw.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("strict-transport-security"), None, "not on plain HTTP");
    let logged = gw.wait_for_access_log(Duration::from_secs(5), |l| {
        l["tls.established"] == true && l["rampart.listener"] == "mtls"
    });
    assert!(logged.is_some(), "mTLS exchange not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_with_custom_ca_and_client_certificate() {
    // A second gateway with mTLS acts as the TLS upstream of the first.
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let dir = TempDir::new("rampart-up-tls").unwrap();
    let pki = certs::generate(dir.path()).unwrap();
    let inner_config = tls_config(&base_config(&o.url(), &k.url()), &pki);
    let inner = GatewayProcess::start_in(bin(), &inner_config, TempDir::new("rampart-inner").unwrap()).unwrap();

    let upstream = format!("https://localhost:{}", inner.addr("mtls").port());
    let outer_config = base_config(&upstream, &k.url()).replace(
        &format!("targets = [\"{upstream}\"]"),
        &format!(
            "targets = [\"{upstream}\"]\ntls.ca = \"{}\"\ntls.client_cert = \"{}\"\ntls.client_key = \"{}\"",
            pki.ca_cert.display(),
            pki.client_cert.display(),
            pki.client_key.display()
        ),
    );
    let outer = GatewayProcess::start_in(bin(), &outer_config, dir).unwrap();
    let c = TestClient::http1();
    let r = c.get(&format!("{}/v1/models", outer.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["data"][0]["id"], "rampart-demo-chat");
    let logged = inner.wait_for_access_log(Duration::from_secs(5), |l| {
        l["rampart.listener"] == "mtls" && l["tls.established"] == true
    });
    assert!(logged.is_some(), "the inner gateway did not log the mTLS exchange");

    // Without the client certificate the inner gateway refuses the handshake: 502.
    let no_cert_config = outer_config
        .replace(&format!("tls.client_cert = \"{}\"\n", pki.client_cert.display()), "")
        .replace(&format!("tls.client_key = \"{}\"", pki.client_key.display()), "");
    let outer2 = GatewayProcess::start(bin(), &no_cert_config).unwrap();
    let r = c.get(&format!("{}/v1/models", outer2.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_identity() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let dir = TempDir::new("rampart-cert-identity").unwrap();
    let pki = certs::generate(dir.path()).unwrap();
    let config = tls_config(&base_config(&o.url(), &k.url()), &pki).replace(
        "[defaults.limits]",
        r#"[identity.client_certs]
subjects = [{ match = "client.rampart.*", tenant = "acme", roles = ["chat"] }]

[roles.chat]
routes = ["closed"]
models = ["*"]
actions = ["infer"]

[defaults.limits]"#,
    );
    let gw = GatewayProcess::start_in(bin(), &config, dir).unwrap();
    // The closed route proxies /private/* to the demo server, which answers its own 404.
    let good = TestClient::tls(&pki.ca_cert, Some((&pki.client_cert, &pki.client_key)), false).unwrap();
    let r = good.get(&format!("{}/private/x", https(&gw, "mtls"))).await.unwrap();
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no such endpoint"),
        "{}",
        r.text()
    );
    let line = gw
        .wait_for_access_log(Duration::from_secs(5), |l| {
            l["rampart.auth.credential"] == "client_certificate"
        })
        .expect("certificate identity logged");
    assert_eq!(line["user.id"], "client.rampart.test");
    assert_eq!(line["rampart.tenant"], "acme");
    // Without a certificate (plain listener) the closed route stays closed.
    let plain = TestClient::http1();
    let r = plain.get(&format!("{}/private/x", gw.url("main"))).await.unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // A credential header takes precedence over the certificate and must itself be valid.
    let r = good
        .request(
            http::Method::GET,
            &format!("{}/private/x", https(&gw, "mtls")),
            &[("authorization", "Bearer rk_live_nope")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
