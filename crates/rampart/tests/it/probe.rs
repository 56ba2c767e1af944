//! `rampart probe` against the demo model server directly (no protection: access and
//! output-exposure findings) and through the gateway with protection (those findings
//! gone), asserting on the JSON report; the budget counted at the upstream; Ctrl-C
//! gives a valid partial report; the exit code follows `--fail-on`; `--diff` names what
//! changed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use rampart_testkit::{DemoOptions, TempDir};
use serde_json::Value;

fn probe(args: &[&str], env: &[(&str, &str)]) -> (i32, String, Value, std::path::PathBuf) {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out_dir = std::env::temp_dir().join(format!("rampart-probe-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out_dir);
    let mut cmd = Command::new(bin());
    cmd.arg("probe").args(args).arg("--out").arg(&out_dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let report = std::fs::read_to_string(out_dir.join("report.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), stdout, report, out_dir)
}

/// Where the HTML report's screenshot goes (`RAMPART_SCREENSHOTS=docs/probe` for the docs).
fn screenshots() -> std::path::PathBuf {
    match std::env::var("RAMPART_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(dir),
        _ => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/probe-screenshots"),
    }
}

/// A field of case `id` in a JSON report.
fn case_field(report: &Value, id: &str, field: &str) -> String {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id}"))[field]
        .as_str()
        .unwrap()
        .to_owned()
}

fn verdict(report: &Value, id: &str) -> String {
    case_field(report, id, "verdict")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_finds_what_an_unprotected_endpoint_lets_through_and_not_behind_the_gateway() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(Arc::clone(&received)),
        ..DemoOptions::default()
    })
    .await;

    // The model server itself: anyone may call it, and it hands out logprobs.
    let (code, text, direct, dir) = probe(
        &[
            &o.url(),
            "--protocol",
            "openai",
            "--model",
            "rampart-demo-chat",
            "--budget",
            "requests=110,rps=50",
        ],
        &[],
    );
    assert_eq!(code, 1, "findings at or above high: exit 1\n{text}");
    assert_eq!(verdict(&direct, "access.no_credential"), "fail");
    assert_eq!(verdict(&direct, "access.malformed_credential"), "fail");
    assert_eq!(verdict(&direct, "access.jwt_alg_none"), "fail");
    assert_eq!(verdict(&direct, "exposure.logprobs"), "fail");
    assert_eq!(verdict(&direct, "exposure.logit_bias_with_logprobs"), "fail");
    // It follows injected instructions (the canary from the probe's system prompt comes
    // back) and gives planted data back through its instructions.
    assert_eq!(verdict(&direct, "injection.direct_override"), "fail");
    assert_eq!(verdict(&direct, "leakage.via_instructions"), "fail");
    // Without a canary: it refuses a harmful request asked plainly, complies inside a
    // persona, and only echoes the base64 one (neither refusal nor compliance).
    assert_eq!(verdict(&direct, "injection.harmful_plain"), "pass");
    assert_eq!(verdict(&direct, "injection.jailbreak_persona"), "fail");
    assert_eq!(verdict(&direct, "injection.jailbreak_fiction"), "fail");
    assert_eq!(verdict(&direct, "injection.jailbreak_base64"), "inconclusive");
    assert_eq!(verdict(&direct, "abuse.concurrency_limit"), "fail");
    // Nothing limits it: a burst all answered, a slow client never cut off.
    assert_eq!(verdict(&direct, "abuse.rate_limit"), "fail");
    assert_eq!(verdict(&direct, "abuse.slow_client"), "fail");
    assert!(direct["requests_sent"].as_u64().unwrap() <= 110);
    // The budget, counted where it matters: at the model server.
    assert!(received.lock().unwrap().len() as u64 <= direct["requests_sent"].as_u64().unwrap());
    for file in ["report.md", "report.html", "report.sarif", "junit.xml"] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(!sarif["runs"][0]["results"].as_array().unwrap().is_empty());
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("### API2:2023 Broken Authentication") && md.contains("### LLM10:2025 Unbounded Consumption"),
        "grouped by OWASP item"
    );
    let junit = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("<testsuite name=\"access\"") && junit.contains("<failure"));
    // The HTML report in a real browser: it renders, with no script error.
    let b = rampart_testkit::webdriver::Browser::start().await.unwrap();
    b.goto(&format!("file://{}", dir.join("report.html").display()))
        .await
        .unwrap();
    let findings = b.text_of("[data-testid=findings]").await.unwrap();
    assert!(
        findings.ends_with("findings") && !findings.starts_with('0'),
        "{findings}"
    );
    assert!(b.source().await.unwrap().contains("LLM01:2025 Prompt Injection"));
    assert!(b.errors().await.unwrap().is_empty());
    b.screenshot(&screenshots().join("report.png")).await.unwrap();
    drop(b);

    // The same model behind `rampart demo`'s secure listener: a key, a content policy
    // (injection blocked, a canary, personal data pseudonymised, secrets blocked) and
    // logprobs capped.
    let demo = crate::demo::Demo::start();
    let secure = demo.field("secure");
    let key = demo.field("API key");
    let (_, out, behind, _) = probe(
        &[
            &secure,
            "--protocol",
            "openai",
            "--model",
            "rampart-demo-chat",
            "--budget",
            "requests=110,rps=50",
        ],
        &[("RAMPART_PROBE_KEY", &key)],
    );
    assert_eq!(verdict(&behind, "access.baseline"), "pass", "{out}");
    let failing = |r: &Value, family: &str| {
        r["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["family"] == family && c["verdict"] == "fail")
            .count()
    };
    for family in ["injection", "leakage", "exposure"] {
        assert!(
            failing(&direct, family) > 0,
            "the unprotected model has {family} findings"
        );
        assert_eq!(
            failing(&behind, family),
            0,
            "{family} findings behind the gateway\n{out}"
        );
    }
    for id in [
        "access.no_credential",
        "access.malformed_credential",
        "access.jwt_alg_none",
        "access.jwt_weak_hmac",
        "access.jwt_expired_unsigned",
        "access.key_in_query",
        "access.admin_paths",
        "input.malformed_json",
        "input.deep_nesting",
        "input.duplicate_keys",
        "input.protocol_violation",
        "abuse.slow_client",
    ] {
        assert_eq!(verdict(&behind, id), "pass", "{id} behind the gateway\n{out}");
    }
    // No credential and no planted secret in any report.
    let all = serde_json::to_string(&behind).unwrap();
    assert!(!all.contains(&key[21..]), "the key is masked in the evidence");
    demo.stop();

    // --diff: what the gateway fixed.
    let a = std::env::temp_dir().join(format!("probe-before-{}.json", std::process::id()));
    let b = std::env::temp_dir().join(format!("probe-after-{}.json", std::process::id()));
    std::fs::write(&a, direct.to_string()).unwrap();
    std::fs::write(&b, behind.to_string()).unwrap();
    let out = Command::new(bin())
        .args(["probe", "--diff"])
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(diff.contains("| `access.no_credential` | fail | pass |"), "{diff}");
    assert!(diff.contains("| `injection.direct_override` | fail | pass |"), "{diff}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_is_never_exceeded_and_ctrl_c_writes_a_partial_report() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(Arc::clone(&received)),
        ..DemoOptions::default()
    })
    .await;
    // A budget of 5 requests: five are sent, the rest of the cases say they did not run.
    let (_, out, report, _) = probe(&[&o.url(), "--budget", "requests=5,rps=100"], &[]);
    assert_eq!(report["requests_sent"], 5, "{out}");
    assert_eq!(report["partial"], true);
    assert!(received.lock().unwrap().len() <= 5);
    let not_run = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "skipped")
        .count();
    assert!(not_run >= 5, "{report}");

    // Ctrl-C (SIGINT) mid-run: a valid partial report.
    let out_dir = TempDir::new("rampart-probe-int").unwrap();
    let mut child = Command::new(bin())
        .args(["probe", &o.url(), "--budget", "requests=100,rps=2", "--out"])
        .arg(out_dir.path())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.code().is_some(), "it exits by itself after Ctrl-C");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["partial"], true);
    let sent = report["requests_sent"].as_u64().unwrap();
    assert!((3..=8).contains(&sent), "about 2 per second for 2.5 s: {sent}");
    // A bad budget is a usage error naming it.
    let (code, out, _, _) = probe(&[&o.url(), "--budget", "requests=0"], &[]);
    assert_eq!(code, 2);
    assert!(out.contains("requests must be a positive number"), "{out}");
}

/// An `openssl s_server` that dies with the test.
struct OpensslServer(std::process::Child, u16);

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate for `localhost` from the CA in `dir`, valid for `days` (negative: expired).
fn openssl_leaf(dir: &std::path::Path, name: &str, days: i32) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(dir.join("ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            &days.to_string(),
            "-extfile",
            "ext",
        ],
    );
}

/// Serves `name`'s certificate; `legacy`: SSL 3.0 up, every suite OpenSSL still has.
async fn openssl_server(dir: &std::path::Path, name: &str, legacy: bool) -> OpensslServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = vec![
        "s_server".to_owned(),
        "-accept".into(),
        format!("127.0.0.1:{port}"),
        "-cert".into(),
        format!("{name}.pem"),
        "-key".into(),
        format!("{name}.key"),
        "-www".into(),
        "-quiet".into(),
    ];
    if legacy {
        args.extend(
            [
                "-min_protocol",
                "SSLv3",
                "-cipher",
                "ALL:COMPLEMENTOFALL:eNULL:@SECLEVEL=0",
            ]
            .map(String::from),
        );
    }
    let child = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl (scripts/services.sh installs it)");
    let server = OpensslServer(child, port);
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("openssl s_server did not start on {port}");
}

/// The transport family alone against `url`, trusting `ca`.
fn transport(url: &str, ca: &str) -> Value {
    probe(&[url, "--only", "transport", "--ca", ca], &[]).2
}

fn detail(report: &Value, id: &str) -> String {
    case_field(report, id, "detail")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transport_family_tells_a_hardened_listener_from_a_legacy_server() {
    // Rampart's own TLS listener (rustls: TLS 1.2 and 1.3, AEAD suites with forward
    // secrecy, HSTS by default).
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let dir = TempDir::new("rampart-probe-tls").unwrap();
    let pki = rampart_testkit::certs::generate(dir.path()).unwrap();
    let listener = format!(
        "[[listeners]]\nname = \"tls\"\nlisten = \"127.0.0.1:0\"\ntls.cert = \"{}\"\ntls.key = \"{}\"\n\n[defaults.limits]",
        pki.server_cert.display(),
        pki.server_key.display()
    );
    let config = base_config(&o.url(), &k.url()).replacen("[defaults.limits]", &listener, 1);
    let ca = pki.ca_cert.display().to_string();
    let gw = rampart_testkit::harness::GatewayProcess::start_in(bin(), &config, dir).unwrap();
    let url = format!("https://localhost:{}", gw.addr("tls").port());
    let (code, text, r, _) = probe(&[&url, "--only", "transport", "--ca", &ca], &[]);
    assert_eq!(code, 0, "{text}");
    for id in [
        "transport.plain_http",
        "transport.certificate",
        "transport.legacy_versions",
        "transport.weak_ciphers",
        "transport.forward_secrecy",
        "transport.hsts",
        "transport.plain_beside_tls",
    ] {
        assert_eq!(verdict(&r, id), "pass", "{id}: {}", detail(&r, id));
    }
    assert!(detail(&r, "transport.certificate").contains("days left"));
    assert!(detail(&r, "transport.legacy_versions").contains("TLS 1.0"));
    // Without `--ca` the private CA is not trusted: named as such.
    let (_, _, r, _) = probe(&[&url, "--only", "transport"], &[]);
    assert_eq!(verdict(&r, "transport.certificate"), "fail");
    assert!(detail(&r, "transport.certificate").contains("not issued by a trusted authority"));

    // A legacy server: OpenSSL allowing TLS 1.0, NULL, anonymous and static-RSA suites,
    // and no HSTS.
    let certs = TempDir::new("rampart-probe-openssl").unwrap();
    let d = certs.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Probe Test CA",
        ],
    );
    openssl_leaf(d, "good", 30);
    openssl_leaf(d, "soon", 3);
    openssl_leaf(d, "expired", -1);
    let ca = d.join("ca.pem").display().to_string();
    let legacy = openssl_server(d, "good", true).await;
    let url = format!("https://localhost:{}", legacy.1);
    let (code, text, r, _) = probe(&[&url, "--only", "transport", "--ca", &ca, "--fail-on", "medium"], &[]);
    assert_eq!(code, 1, "{text}");
    assert_eq!(
        verdict(&r, "transport.certificate"),
        "pass",
        "{}",
        detail(&r, "transport.certificate")
    );
    for id in [
        "transport.legacy_versions",
        "transport.weak_ciphers",
        "transport.forward_secrecy",
        "transport.hsts",
    ] {
        assert_eq!(verdict(&r, id), "fail", "{id}: {}", detail(&r, id));
    }
    assert!(detail(&r, "transport.legacy_versions").contains("TLS 1.0"));
    assert!(detail(&r, "transport.forward_secrecy").contains("TLS_RSA_WITH_"));
    // Over TLS only, never in clear.
    assert_eq!(verdict(&r, "transport.plain_beside_tls"), "pass");
    // The same server by an address its certificate does not name.
    let by_ip = format!("https://127.0.0.1:{}", legacy.1);
    let r = transport(&by_ip, &ca);
    assert!(detail(&r, "transport.certificate").contains("not valid for the name `127.0.0.1`"));

    // Expired, and about to expire.
    let expired = openssl_server(d, "expired", false).await;
    let r = transport(&format!("https://localhost:{}", expired.1), &ca);
    assert_eq!(verdict(&r, "transport.certificate"), "fail");
    assert!(
        detail(&r, "transport.certificate").contains("expired"),
        "{}",
        detail(&r, "transport.certificate")
    );
    let soon = openssl_server(d, "soon", false).await;
    let r = transport(&format!("https://localhost:{}", soon.1), &ca);
    assert_eq!(verdict(&r, "transport.certificate"), "fail");
    assert!(
        detail(&r, "transport.certificate").contains("expires in 2 days"),
        "{}",
        detail(&r, "transport.certificate")
    );
    // A modern OpenSSL with its defaults refuses what the legacy one accepted.
    assert_eq!(
        verdict(&r, "transport.legacy_versions"),
        "pass",
        "{}",
        detail(&r, "transport.legacy_versions")
    );
    assert_eq!(
        verdict(&r, "transport.weak_ciphers"),
        "pass",
        "{}",
        detail(&r, "transport.weak_ciphers")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_held_in_flight_find_a_concurrency_limit_and_are_not_fooled_by_a_rate_limit() {
    let (o, k) = (openai(DemoOptions::default()).await, kserve().await);
    let run = |url: String| {
        probe(
            &[
                &url,
                "--only",
                "abuse",
                "--model",
                "rampart-demo-chat",
                "--budget",
                "requests=60,rps=50",
            ],
            &[],
        )
    };
    // The model server alone holds every request.
    let (_, text, r, _) = run(o.url());
    assert_eq!(verdict(&r, "abuse.concurrency_limit"), "fail", "{text}");
    assert!(detail(&r, "abuse.concurrency_limit").contains("in flight at once"));

    // Behind a gateway with a concurrency limit of 3 on the route.
    let limited = format!(
        "{}\n[[concurrency_limits]]\nname = \"in-flight\"\nper = \"route\"\nmax = 3\nroutes = [\"openai\"]\n",
        base_config(&o.url(), &k.url())
    );
    let gw = start(&limited);
    let (_, text, r, _) = run(gw.url("main"));
    assert_eq!(
        verdict(&r, "abuse.concurrency_limit"),
        "pass",
        "{text}\n{}",
        detail(&r, "abuse.concurrency_limit")
    );
    let d = detail(&r, "abuse.concurrency_limit");
    assert!(d.starts_with("3 requests held") && d.contains("429"), "{d}");
    // Every held request was completed and answered: nothing left hanging.
    drop(gw);

    // A rate limit's 429 is not taken for a concurrency limit.
    let rated = format!(
        "{}\n[[rate_limits]]\nname = \"per-ip\"\nper = \"ip\"\nrequests = 2\nwindow = \"60s\"\n",
        base_config(&o.url(), &k.url())
    );
    let gw = start(&rated);
    let (_, text, r, _) = run(gw.url("main"));
    assert_eq!(
        verdict(&r, "abuse.concurrency_limit"),
        "inconclusive",
        "{text}\n{}",
        detail(&r, "abuse.concurrency_limit")
    );
    assert!(detail(&r, "abuse.concurrency_limit").contains("rate limit"));
    assert_eq!(verdict(&r, "abuse.rate_limit"), "pass");
}
