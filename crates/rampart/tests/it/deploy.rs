//! What the alert rules in deploy/prometheus read, from the real gateway binary: the
//! certificate-expiry metric follows the certificate file across a reload, and the
//! audit queue's capacity is exported for the queue-filling alert. That every metric
//! the rules and the Grafana dashboard name is exported is checked by the gateway's
//! `metrics::tests`; the rules' behaviour by promtool (`scripts/deploy-check.sh`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use rampart_testkit::client::TestClient;
use rampart_testkit::{DemoOptions, TempDir, certs};

fn expiry(exposition: &str, listener: &str) -> f64 {
    metric(
        exposition,
        "rampart_certificate_expiry_timestamp_seconds",
        &["role=\"listener\"", &format!("name=\"{listener}\"")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_expiry_follows_the_file_across_a_reload_and_audit_capacity_is_exported() {
    let o = openai(DemoOptions::default()).await;
    let k = kserve().await;
    let dir = TempDir::new("rampart-deploy").unwrap();
    let pki = certs::generate(dir.path()).unwrap();
    let key = crate::oversight::audit_key(dir.path());
    // The listener's certificate is a copy the test can replace before a reload.
    let cert = dir.join("listener.pem");
    std::fs::copy(&pki.server_cert, &cert).unwrap();
    let listener = format!(
        "[[listeners]]\nname = \"tls\"\nlisten = \"127.0.0.1:0\"\ntls.cert = \"{}\"\ntls.key = \"{}\"\n\n[defaults.limits]",
        cert.display(),
        pki.server_key.display()
    );
    let config = format!(
        "{}\n[audit]\ndir = \"{}\"\nsigning_key = {{ file = \"{}\" }}\nqueue = 4096\n",
        base_config(&o.url(), &k.url()).replacen("[defaults.limits]", &listener, 1),
        dir.join("trail").display(),
        key.display()
    );
    let gw = start(&config);
    let c = TestClient::http1();
    let metrics_url = format!("{}/metrics", gw.admin_url());
    let exposition = c.get(&metrics_url).await.unwrap().text();

    // The audit queue's capacity is what the filling alert divides by.
    assert_eq!(metric(&exposition, "rampart_audit_queue_capacity", &[]), 4096.0);

    // The generated certificate is valid for years; the metric says when it ends.
    let now = rampart_identity::time::now() as f64;
    let first = expiry(&exposition, "tls");
    assert!(
        first > now + 365.0 * 86400.0,
        "listener certificate expiry {first} (now {now})"
    );

    // A certificate valid for ten days replaces it; a reload reads the new date.
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "10",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("short.key"))
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rewritten = config.replace(
        &pki.server_key.display().to_string(),
        &dir.join("short.key").display().to_string(),
    );
    std::fs::write(&gw.config_path, rewritten).unwrap();
    gw.signal("HUP").unwrap();
    gw.wait_for_log(Duration::from_secs(5), |l| l["message"] == "config reloaded")
        .expect("reload logged");
    let after = expiry(&c.get(&metrics_url).await.unwrap().text(), "tls");
    let ten_days = now + 10.0 * 86400.0;
    assert!(
        (after - ten_days).abs() < 120.0,
        "after reload: {after}, expected about {ten_days}"
    );
}
