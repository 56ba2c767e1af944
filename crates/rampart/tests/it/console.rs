//! The admin console in a real headless Chromium (Debian's `chromium` driven through
//! `chromedriver`) against the real gateway: sign in, stop a route under live traffic
//! and resume it, approve one held request and reject another, create and revoke a
//! key, search the audit trail, verify it and export a subject, open an incident —
//! each step asserting what the page shows and what the gateway does. Screenshots of
//! every page go to `target/console-screenshots/` (or `$RAMPART_SCREENSHOTS`; the
//! docs' copies come from `RAMPART_SCREENSHOTS=docs/console`).
//!
//! And the console's security over plain HTTP: nothing without a session, CSRF and
//! cross-origin posts refused, a viewer cannot act, sessions expire and die with their
//! key, cookies and headers as documented, no secret or payload in any log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)] // test code: failing loudly is the point; its tasks end with the test

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use crate::oversight::{body, eventually, keys_cmd, make_keys, review_config};
use http::{Method, StatusCode};
use rampart_testkit::client::{TestClient, TestResponse};
use rampart_testkit::harness::GatewayProcess;
use rampart_testkit::webdriver::Browser;
use rampart_testkit::{DemoOptions, TempDir};
use serde_json::{Value, json};

fn shots() -> PathBuf {
    match std::env::var("RAMPART_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => {
            let p = PathBuf::from(dir);
            if p.is_absolute() {
                p
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
            }
        }
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots"),
    }
}

struct Setup {
    gw: GatewayProcess,
    state: TempDir,
    root: String,
    viewer: String,
    app: String,
    audit_key: PathBuf,
    text: String,
    received: Arc<Mutex<Vec<Value>>>,
    _servers: (rampart_testkit::TestServer, rampart_testkit::TestServer),
}

/// A gateway whose `chat` route holds requests with an e-mail address for review,
/// with the audit trail on and payloads captured; `root` may do everything.
async fn setup(extra_admin: &str) -> Setup {
    setup_with(extra_admin, "", &[]).await
}

/// The same with `extra` appended to the config (and `env` for the gateway); an
/// `extra_admin` starting with `listen` replaces the admin address.
async fn setup_with(extra_admin: &str, extra: &str, env: &[(&str, &str)]) -> Setup {
    let received = Arc::new(Mutex::new(Vec::new()));
    let o = openai(DemoOptions {
        received: Some(Arc::clone(&received)),
        ..DemoOptions::default()
    })
    .await;
    let k = kserve().await;
    let state = TempDir::new("rampart-console").unwrap();
    let audit_key = crate::oversight::audit_key(state.path());
    crate::oversight::master_key(state.path());
    let text = review_config(&o.url(), &k.url(), state.path(), &audit_key)
        .replace("timeout = \"4s\"", "timeout = \"60s\"")
        .replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            &if extra_admin.starts_with("listen") {
                format!("[admin]\n{extra_admin}\n")
            } else {
                format!("[admin]\nlisten = \"127.0.0.1:0\"\n{extra_admin}\n")
            },
        )
        + "\n[roles.root]\nactions = [\"admin\", \"operate\", \"review\", \"metrics\", \"audit-read\"]\n";
    // The key commands read the config without `extra` (its secrets are the gateway's).
    let keys = make_keys(state.path(), &text);
    let text = text + extra;
    let cfg = state.join("keys-config.toml");
    let root = keys_cmd(
        state.path(),
        &cfg,
        &["create", "--subject", "dana-ops", "--role", "root"],
    );
    let gw = GatewayProcess::start_with_env(bin(), &text, TempDir::new("rampart-console-gw").unwrap(), env).unwrap();
    Setup {
        gw,
        root,
        viewer: keys.viewer,
        app: keys.app,
        audit_key,
        text,
        received,
        state,
        _servers: (o, k),
    }
}

async fn ask(c: &TestClient, url: &str, key: &str, content: &str) -> TestResponse {
    let auth = format!("Bearer {key}");
    c.request(
        Method::POST,
        &format!("{url}/v1/chat/completions"),
        &[("content-type", "application/json"), ("authorization", &auth)],
        json!({"model": "rampart-demo-chat", "messages": [{"role": "user", "content": content}]}).to_string(),
    )
    .await
    .unwrap()
}

async fn sign_in(b: &Browser, admin: &str, key: &str) {
    b.goto(&format!("{admin}/console/login")).await.unwrap();
    let field = b.find("#f-key").await.unwrap();
    b.fill(&field, key).await.unwrap();
    b.click(&b.find("form button[type=submit]").await.unwrap())
        .await
        .unwrap();
    if let Err(e) = b.wait_text("h1", "Overview").await {
        panic!("{e}: {}", b.source().await.unwrap());
    }
}

/// Submits the form that holds the element matching `css` and waits for the next page.
async fn submit(b: &Browser, css: &str) {
    let button = b.find(css).await.unwrap();
    b.click(&button).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_the_gateway_from_the_console_in_a_real_browser() {
    let s = setup("").await;
    let admin = s.gw.admin_url();
    let main = s.gw.url("main");
    let c = TestClient::http1();
    let dir = shots();
    let b = Browser::start().await.unwrap();

    // Sign in.
    b.goto(&format!("{admin}/console/")).await.unwrap();
    assert!(
        b.url().await.unwrap().ends_with("/console/login"),
        "no session: the sign-in page"
    );
    b.screenshot(&dir.join("login.png")).await.unwrap();
    sign_in(&b, &admin, &s.root).await;
    assert!(b.text_of("[data-testid=user]").await.unwrap().starts_with("dana-ops"));
    assert_eq!(b.text_of(".role").await.unwrap(), "admin");

    // Live traffic while the route is stopped and resumed from the routes page.
    let statuses: Arc<Mutex<Vec<(std::time::Instant, u16)>>> = Arc::new(Mutex::new(Vec::new()));
    let traffic = {
        let (c, main, key, statuses) = (c.clone(), main.clone(), s.app.clone(), Arc::clone(&statuses));
        tokio::spawn(async move {
            loop {
                let r = ask(&c, &main, &key, "what is the capital of France?").await;
                statuses
                    .lock()
                    .unwrap()
                    .push((std::time::Instant::now(), r.status.as_u16()));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    assert!(eventually(5, async || statuses.lock().unwrap().iter().any(|(_, st)| *st == 200)).await);
    b.goto(&format!("{admin}/console/")).await.unwrap();
    assert!(
        eventually(6, async || b
            .text_of("[data-k=requests]")
            .await
            .unwrap()
            .parse::<u64>()
            .unwrap_or(0)
            >= 3)
        .await,
        "the overview counts live traffic"
    );
    tokio::time::sleep(Duration::from_millis(2500)).await; // two chart points
    b.screenshot(&dir.join("overview.png")).await.unwrap();

    b.goto(&format!("{admin}/console/routes")).await.unwrap();
    assert_eq!(
        b.text_of("[data-testid='running-route:chat']").await.unwrap(),
        "running"
    );
    let form = "form[action='/console/stop'] input[name=scope][value='route:chat']";
    b.find(form).await.unwrap();
    let reason = b
        .find_all("form[action='/console/stop'] input[name=reason]")
        .await
        .unwrap();
    // The route table's forms come after the gateway's: find the chat route's row.
    let chat_index = b
        .run("return [...document.querySelectorAll(\"form[action='/console/stop']\")].findIndex(f => f.scope.value === 'route:chat')")
        .await
        .unwrap()
        .as_u64()
        .and_then(|i| usize::try_from(i).ok())
        .unwrap();
    b.fill(&reason[chat_index], "answers leak internal ticket numbers")
        .await
        .unwrap();
    let buttons = b.find_all("form[action='/console/stop'] button").await.unwrap();
    let stopped_at = std::time::Instant::now();
    b.click(&buttons[chat_index]).await.unwrap();
    b.accept_dialog().await.unwrap();
    b.wait_text("[data-testid=flash]", "Stopped route:chat").await.unwrap();
    assert_eq!(
        b.text_of("[data-testid='stopped-route:chat']").await.unwrap(),
        "stopped"
    );
    b.screenshot(&dir.join("routes.png")).await.unwrap();
    assert!(
        eventually(3, async || statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t > stopped_at)
            .any(|(_, st)| *st == 503))
        .await,
        "live traffic gets 503 once the route is stopped"
    );
    let r = ask(&c, &main, &s.app, "hello").await;
    assert_eq!(body(&r)["error"]["code"], "stopped_by_operator");
    let resume = b.find("form[action='/console/resume'] button").await.unwrap();
    let resumed_at = std::time::Instant::now();
    b.click(&resume).await.unwrap();
    b.wait_text("[data-testid=flash]", "Resumed route:chat").await.unwrap();
    assert!(
        eventually(3, async || statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _)| *t > resumed_at)
            .any(|(_, st)| *st == 200))
        .await,
        "and recovers when it is resumed"
    );
    traffic.abort();

    // Two held requests: approve one, reject the other; each client sees its result.
    let first = {
        let (c, main, key) = (c.clone(), main.clone(), s.app.clone());
        tokio::spawn(async move { ask(&c, &main, &key, "mail the invoice to ann.lee@example.com").await })
    };
    let second = {
        let (c, main, key) = (c.clone(), main.clone(), s.app.clone());
        tokio::spawn(async move { ask(&c, &main, &key, "send all records to leak@evil.example").await })
    };
    let before = s.received.lock().unwrap().len();
    b.goto(&format!("{admin}/console/reviews")).await.unwrap();
    assert!(
        eventually(5, async || {
            b.goto(&format!("{admin}/console/reviews")).await.unwrap();
            b.find_all("[data-testid=item]").await.unwrap().len() == 2
        })
        .await
    );
    let page = b.source().await.unwrap();
    assert!(
        page.contains("[EMAIL]") && !page.contains("ann.lee@example.com"),
        "the queue shows redacted text"
    );
    b.screenshot(&dir.join("reviews.png")).await.unwrap();
    assert_eq!(
        s.received.lock().unwrap().len(),
        before,
        "nothing reached the model yet"
    );
    // Open the invoice one and approve it.
    let url_of = |needle: &'static str| {
        let b = &b;
        async move {
            let v = b
                .run(&format!(
                    "return [...document.querySelectorAll('tr')].filter(r => r.textContent.includes('{needle}')).map(r => r.querySelector('a[data-testid=item]').href)[0]"
                ))
                .await
                .unwrap();
            v.as_str().unwrap().to_owned()
        }
    };
    let invoice = url_of("invoice").await;
    let leak = url_of("records").await;
    b.goto(&invoice).await.unwrap();
    assert_eq!(b.text_of("[data-testid=status]").await.unwrap(), "pending");
    assert!(
        b.text_of("[data-testid=payload-request]")
            .await
            .unwrap()
            .contains("ann.lee@example.com"),
        "root may read payloads"
    );
    b.screenshot(&dir.join("review-item.png")).await.unwrap();
    b.select("#f-decision", "approve").await.unwrap();
    b.fill(&b.find("#f-reason").await.unwrap(), "customer asked for it")
        .await
        .unwrap();
    submit(&b, "form[action^='/console/reviews/'] button").await;
    b.wait_text("[data-testid=flash]", "approved").await.unwrap();
    let r = first.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "approved: the client gets the model's answer");
    b.goto(&leak).await.unwrap();
    b.select("#f-decision", "reject").await.unwrap();
    b.fill(&b.find("#f-reason").await.unwrap(), "bulk exfiltration")
        .await
        .unwrap();
    submit(&b, "form[action^='/console/reviews/'] button").await;
    b.wait_text("[data-testid=flash]", "rejected").await.unwrap();
    let r = second.await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(body(&r)["error"]["code"], "rejected_by_reviewer");
    assert_eq!(
        s.received.lock().unwrap().len(),
        before + 1,
        "only the approved one reached the model"
    );

    // Keys: create one (shown once), use it, revoke it.
    b.goto(&format!("{admin}/console/keys")).await.unwrap();
    b.fill(&b.find("#f-subject").await.unwrap(), "new-batch-job")
        .await
        .unwrap();
    b.select("#f-role", "app").await.unwrap();
    submit(&b, "form[action='/console/keys/create'] button").await;
    let new_key = b.wait_text("[data-testid=new-key]", "rk_").await.unwrap();
    assert!(new_key.starts_with("rk_live_"), "{new_key}");
    b.screenshot(&dir.join("keys.png")).await.unwrap();
    assert!(
        eventually(3, async || ask(&c, &main, &new_key, "hi").await.status
            == StatusCode::OK)
        .await,
        "the new key works"
    );
    b.goto(&format!("{admin}/console/keys")).await.unwrap();
    assert!(!b.source().await.unwrap().contains(&new_key), "a key is shown once");
    let id = &new_key[8..20];
    let revoke = b
        .find(&format!(
            "form[action='/console/keys/revoke'] input[value='{id}'] ~ button"
        ))
        .await
        .unwrap();
    b.click(&revoke).await.unwrap();
    b.accept_dialog().await.unwrap();
    b.wait_text("[data-testid=flash]", "revoked").await.unwrap();
    assert_eq!(
        b.text_of(&format!("[data-testid='status-{id}']")).await.unwrap(),
        "revoked"
    );
    assert!(
        eventually(3, async || ask(&c, &main, &new_key, "hi").await.status
            == StatusCode::UNAUTHORIZED)
        .await,
        "the revoked key is refused"
    );

    // The audit trail: search by caller, verify, export the subject.
    b.goto(&format!("{admin}/console/audit?principal=app")).await.unwrap();
    let count = b.text_of("[data-testid=count]").await.unwrap();
    let n: u64 = count.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 2, "the stopped and rejected requests: {count}");
    assert!(
        b.source()
            .await
            .unwrap()
            .contains("<td data-label=\"decision\">block</td>"),
        "the rejected request's decision is shown"
    );
    submit(&b, "form[action='/console/audit/verify'] button").await;
    b.wait_text("[data-testid=verify]", "intact").await.unwrap();
    b.fill(
        &b.find("form[action='/console/audit/export'] input[name=subject]")
            .await
            .unwrap(),
        "app",
    )
    .await
    .unwrap();
    submit(&b, "form[action='/console/audit/export'] button").await;
    let exported = b.wait_text("[data-testid=export-count]", "records").await.unwrap();
    let n: u64 = exported.split(' ').next().unwrap().parse().unwrap();
    assert!(n >= 3, "{exported}");
    assert!(
        b.text_of("[data-testid=export]")
            .await
            .unwrap()
            .contains("ann.lee@example.com"),
        "payloads opened in the export"
    );
    b.screenshot(&dir.join("audit.png")).await.unwrap();

    // An incident from the review item, counted down on the overview.
    b.goto(&format!("{admin}/console/incidents?source=review:x"))
        .await
        .unwrap();
    b.fill(
        &b.find("#f-title").await.unwrap(),
        "Customer data sent to an outside address",
    )
    .await
    .unwrap();
    b.select("#f-severity", "serious").await.unwrap();
    submit(&b, "form[action='/console/incidents/open'] button").await;
    b.wait_text("[data-testid=flash]", "Incident opened").await.unwrap();
    assert!(b.source().await.unwrap().contains("15 days left"));
    b.screenshot(&dir.join("incidents.png")).await.unwrap();
    b.goto(&format!("{admin}/console/alerts")).await.unwrap();
    b.screenshot(&dir.join("alerts.png")).await.unwrap();
    b.goto(&format!("{admin}/console/")).await.unwrap();
    assert!(
        b.source()
            .await
            .unwrap()
            .contains("Customer data sent to an outside address")
    );

    // Keyboard: the first Tab reaches the skip link, and it leads to the content.
    b.keys("\u{E004}").await.unwrap();
    let focused = b.run("return document.activeElement.className").await.unwrap();
    assert_eq!(focused, "skip");
    // A phone-sized screen.
    b.resize(390, 844).await.unwrap();
    b.goto(&format!("{admin}/console/routes")).await.unwrap();
    let overflow = b
        .run("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await
        .unwrap();
    assert_eq!(overflow, true, "no sideways scrolling of the page itself on a phone");
    b.screenshot(&dir.join("phone-routes.png")).await.unwrap();
    // No script error and no Content-Security-Policy violation on any page.
    let errors = b.errors().await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    // No page carries more than 100 KB of script.
    let js = c
        .request(Method::GET, &format!("{admin}/console/static/console.js"), &[], "")
        .await
        .unwrap();
    assert_eq!(js.status, StatusCode::OK);
    let scripts = b.find_all("script").await.unwrap().len();
    assert_eq!(scripts, 1, "one script per page");
    assert!(js.body.len() < 100 * 1024, "{} bytes of script", js.body.len());

    // Everything the console did is on the record, with the user.
    let mut gw = s.gw;
    gw.signal("TERM").unwrap();
    assert!(gw.wait_exit(Duration::from_secs(15)).unwrap().success());
    let records: Vec<Value> = rampart_audit::store::read_entries(&s.state.join("trail"), "test-node")
        .unwrap()
        .into_iter()
        .map(|e| e.value())
        .filter(|r| r["type"] == "admin" && r["via"] == "console")
        .collect();
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap()).collect();
    for a in [
        "console_sign_in",
        "stop",
        "resume",
        "review_decision",
        "key_created",
        "key_revoked",
        "subject_export",
        "incident_opened",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert!(
        records
            .iter()
            .all(|r| r["actor"].as_str().unwrap().starts_with("dana-ops"))
    );
    let md = crate::oversight::report(&s.text, s.state.path(), &s.audit_key);
    assert!(
        md.contains("answers leak internal ticket numbers"),
        "the stop is in the report"
    );
    // No secret and no payload in the gateway's logs.
    let logs = format!("{}{}", gw.stderr_text(), gw.stdout_text());
    for secret in [
        &s.root[21..],
        &new_key[21..],
        "ann.lee@example.com",
        "leak@evil.example",
    ] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
    let _ = s.viewer;
}

/// Signs in over plain HTTP the way a browser does; returns the session cookie and
/// the page's CSRF token.
async fn http_sign_in(c: &TestClient, admin: &str, key: &str) -> (String, String) {
    let r = c
        .request(Method::GET, &format!("{admin}/console/login"), &[], "")
        .await
        .unwrap();
    let set = r.headers.get("set-cookie").unwrap().to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-rampart_login="), "{set}");
    let login_cookie = set.split(';').next().unwrap().to_owned();
    let page = String::from_utf8_lossy(&r.body).into_owned();
    let token = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let form = format!("csrf={token}&key={}", key);
    let r = c
        .request(
            Method::POST,
            &format!("{admin}/console/login"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", &login_cookie),
            ],
            form,
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", String::from_utf8_lossy(&r.body));
    let set = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("__Host-rampart_console="))
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = c
        .request(
            Method::GET,
            &format!("{admin}/console/routes"),
            &[("cookie", &cookie)],
            "",
        )
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&page.body).into_owned();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_refuses_what_it_must() {
    let s = setup("[admin.console]\nsession_idle = \"2s\"\nsession_max = \"1h\"").await;
    let admin = s.gw.admin_url();
    let c = TestClient::http1();
    let get = async |path: &str, cookie: Option<&str>| {
        let h: Vec<(&str, &str)> = cookie.map(|c| vec![("cookie", c)]).unwrap_or_default();
        c.request(Method::GET, &format!("{admin}{path}"), &h, "").await.unwrap()
    };
    let post = async |path: &str, cookie: &str, form: &str, origin: Option<&str>| {
        let mut h = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", cookie),
        ];
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        c.request(Method::POST, &format!("{admin}{path}"), &h, form.to_owned())
            .await
            .unwrap()
    };

    // No session: pages send to sign-in, the API and actions answer 401, a forged
    // cookie is no session.
    for page in [
        "/console/",
        "/console/routes",
        "/console/reviews",
        "/console/keys",
        "/console/audit",
        "/console/incidents",
        "/console/alerts",
    ] {
        let r = get(page, None).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(r.headers.get("location").unwrap(), "/console/login");
        let r = get(page, Some("__Host-rampart_console=forged")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{page}");
    }
    assert_eq!(
        get("/console/api/overview", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = post(
        "/console/stop",
        "__Host-rampart_console=forged",
        "csrf=x&scope=gateway&reason=x",
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Headers every page carries.
    let login = get("/console/login", None).await;
    let csp = login.headers.get("content-security-policy").unwrap().to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'")
            && csp.contains("script-src 'self'")
            && csp.contains("frame-ancestors 'none'")
    );
    assert_eq!(login.headers.get("x-frame-options").unwrap(), "DENY");
    assert_eq!(login.headers.get("cache-control").unwrap(), "no-store");
    // A sign-in form posted without its own token, or from another origin, fails.
    let r = c
        .request(
            Method::POST,
            &format!("{admin}/console/login"),
            &[("content-type", "application/x-www-form-urlencoded")],
            format!("csrf=guess&key={}", s.root),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A key that may not use the console cannot sign in; a wrong key neither.
    let page = get("/console/login", None).await;
    let lc = page
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let token = String::from_utf8_lossy(&page.body)
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    for (key, status) in [
        (s.app.as_str(), StatusCode::FORBIDDEN),
        ("rk_live_nope", StatusCode::UNAUTHORIZED),
    ] {
        let r = post("/console/login", &lc, &format!("csrf={token}&key={key}"), None).await;
        assert_eq!(r.status, status, "{key}");
        assert!(
            r.headers
                .get_all("set-cookie")
                .iter()
                .all(|v| !v.to_str().unwrap().starts_with("__Host-rampart_console="))
        );
    }

    // CSRF: a signed-in operator's session without the token, with a wrong one, or
    // from another origin changes nothing.
    let (cookie, csrf) = http_sign_in(&c, &admin, &s.root).await;
    let stop = |t: &str| format!("csrf={t}&scope=gateway&reason=csrf+test");
    for (form, origin) in [
        (stop(""), None),
        (stop("wrong"), None),
        (stop(&csrf), Some("http://evil.example")),
        // The next variations: an opaque origin (sandboxed frames, `no-referrer` pages)
        // and the same host on another port.
        (stop(&csrf), Some("null")),
        (stop(&csrf), Some("http://127.0.0.1:1")),
    ] {
        let r = post("/console/stop", &cookie, &form, origin).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form} {origin:?}");
    }
    let stops = get("/console/routes", Some(&cookie)).await;
    assert!(
        String::from_utf8_lossy(&stops.body).contains("data-testid=\"running-gateway\""),
        "nothing was stopped"
    );
    // With the token it works (the same session, same origin).
    let r = post("/console/stop", &cookie, &stop(&csrf), Some(&admin)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = post("/console/resume", &cookie, &format!("csrf={csrf}&scope=gateway"), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);

    // A viewer sees pages but cannot act.
    let (vcookie, vcsrf) = http_sign_in(&c, &admin, &s.viewer).await;
    let page = get("/console/routes", Some(&vcookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        !String::from_utf8_lossy(&page.body).contains("action=\"/console/stop\""),
        "no stop control for a viewer"
    );
    let r = post(
        "/console/stop",
        &vcookie,
        &format!("csrf={vcsrf}&scope=gateway&reason=x"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let after = get("/console/routes", Some(&vcookie)).await;
    let html = String::from_utf8_lossy(&after.body).into_owned();
    assert!(
        html.contains("your role does not allow this") && html.contains("data-testid=\"running-gateway\""),
        "refused and nothing stopped"
    );
    for path in ["/console/keys/create", "/console/audit/erase", "/console/audit/export"] {
        let r = post(path, &vcookie, &format!("csrf={vcsrf}&subject=x&role=app"), None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    let r = post(
        "/console/incidents/open",
        &vcookie,
        &format!("csrf={vcsrf}&title=x"),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        String::from_utf8_lossy(&get("/console/incidents", Some(&vcookie)).await.body).contains("No incident recorded")
    );

    // Sessions expire when idle.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        get("/console/", Some(&cookie)).await.status,
        StatusCode::SEE_OTHER,
        "idle too long"
    );
    // Signing out ends the session at once.
    let (cookie, csrf) = http_sign_in(&c, &admin, &s.root).await;
    let r = post("/console/logout", &cookie, &format!("csrf={csrf}"), None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(get("/console/", Some(&cookie)).await.status, StatusCode::SEE_OTHER);
    // A session dies with its key.
    let cfg = s.state.join("keys-config.toml");
    let temp = keys_cmd(
        s.state.path(),
        &cfg,
        &["create", "--subject", "temp-op", "--role", "root"],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tcookie, _) = http_sign_in(&c, &admin, &temp).await;
    assert_eq!(get("/console/", Some(&tcookie)).await.status, StatusCode::OK);
    keys_cmd(s.state.path(), &cfg, &["revoke", &temp[8..20]]);
    assert!(
        eventually(3, async || get("/console/", Some(&tcookie)).await.status
            == StatusCode::SEE_OTHER)
        .await,
        "a revoked key's session ends"
    );
    // No secret in any log.
    let logs = format!("{}{}", s.gw.stderr_text(), s.gw.stdout_text());
    for secret in [&s.root[21..], &s.viewer[21..], &temp[21..], csrf.as_str()] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
}

/// A gateway whose console signs in through `idp`, on a known admin port.
async fn sso_setup() -> (Setup, rampart_testkit::oidc::OidcProvider, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let admin = format!("http://127.0.0.1:{port}");
    let idp = rampart_testkit::oidc::OidcProvider::spawn(
        loopback(),
        "rampart-console",
        "console-client-secret",
        &format!("{admin}/console/oidc/callback"),
        "ida.sso",
        &["root"],
    )
    .await
    .unwrap();
    let iss = idp.issuer();
    let s = setup_with(
        &format!("listen = \"127.0.0.1:{port}\""),
        &format!(
            r#"
[admin.console.oidc]
issuer = "{iss}"
client_id = "rampart-console"
client_secret = {{ env = "RAMPART_TEST_OIDC_SECRET" }}
redirect_url = "{admin}/console/oidc/callback"
scopes = ["openid", "profile"]
name = "Test IdP"

[[identity.jwt]]
issuer = "{iss}"
audiences = ["rampart-console"]
algorithms = ["ES256"]
jwks_url = "{jwks}"
roles_claim = "roles"
"#,
            jwks = idp.jwks_url()
        ),
        &[("RAMPART_TEST_OIDC_SECRET", "console-client-secret")],
    )
    .await;
    (s, idp, admin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_sign_on_uses_pkce_a_browser_bound_state_and_a_nonce() {
    let (s, idp, admin) = sso_setup().await;
    assert_eq!(s.gw.admin_url(), admin);

    // In the browser: the sign-in page offers the provider; one click signs in.
    let b = Browser::start().await.unwrap();
    b.goto(&format!("{admin}/console/login")).await.unwrap();
    assert_eq!(b.text_of("[data-testid=sso]").await.unwrap(), "Sign in with Test IdP");
    b.click(&b.find("[data-testid=sso]").await.unwrap()).await.unwrap();
    if let Err(e) = b.wait_text("h1", "Overview").await {
        panic!("{e}: {}", b.source().await.unwrap());
    }
    assert!(b.text_of("[data-testid=user]").await.unwrap().starts_with("ida.sso"));
    assert_eq!(
        b.text_of(".role").await.unwrap(),
        "admin",
        "from the token's roles claim"
    );
    assert_eq!(idp.tokens_issued(), 1);
    let errors = b.errors().await.unwrap();
    assert!(errors.is_empty(), "script errors: {errors:?}");
    drop(b);

    // Over plain HTTP, step by step, the way an attacker would try it.
    let c = TestClient::http1();
    let start = async || {
        let r = c
            .request(Method::GET, &format!("{admin}/console/oidc/start"), &[], "")
            .await
            .unwrap();
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let to_idp = r.headers.get("location").unwrap().to_str().unwrap().to_owned();
        assert!(
            to_idp.contains("code_challenge_method=S256") && to_idp.contains("nonce="),
            "{to_idp}"
        );
        let set = r.headers.get("set-cookie").unwrap().to_str().unwrap().to_owned();
        assert!(
            set.contains("SameSite=Lax") && set.contains("HttpOnly") && set.contains("Secure"),
            "{set}"
        );
        let cookie = set.split(';').next().unwrap().to_owned();
        let back = c.request(Method::GET, &to_idp, &[], "").await.unwrap();
        assert_eq!(back.status, StatusCode::SEE_OTHER);
        let callback = back.headers.get("location").unwrap().to_str().unwrap().to_owned();
        (cookie, callback)
    };
    // The provider's answer without the browser's state cookie (a login CSRF, or a
    // code stolen on the way) is refused.
    let (cookie, callback) = start().await;
    let r = c.request(Method::GET, &callback, &[], "").await.unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = c
        .request(
            Method::GET,
            &callback,
            &[("cookie", "__Host-rampart_oidc=someone-elses")],
            "",
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // With it: signed in (a page of ours moves the browser on, same-site).
    let r = c
        .request(Method::GET, &callback, &[("cookie", &cookie)], "")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::OK, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("url=/console/"));
    let session = crate::oversight::session_cookie(&r).unwrap();
    let o = c
        .request(
            Method::GET,
            &format!("{admin}/console/api/overview"),
            &[("cookie", &session)],
            "",
        )
        .await
        .unwrap();
    assert_eq!(o.status, StatusCode::OK);
    // The same answer again (a replay) is refused: the state worked once.
    let r = c
        .request(Method::GET, &callback, &[("cookie", &cookie)], "")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A provider answering with a token made for another sign-in (wrong nonce) is refused.
    idp.send_wrong_nonce(true);
    let (cookie, callback) = start().await;
    let r = c
        .request(Method::GET, &callback, &[("cookie", &cookie)], "")
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(String::from_utf8_lossy(&r.body).contains("nonce"));
    assert!(
        r.headers
            .get_all("set-cookie")
            .iter()
            .all(|v| !v.to_str().unwrap().starts_with("__Host-rampart_console="))
    );
    idp.send_wrong_nonce(false);
    // A code redeemed without the PKCE verifier (a stolen code) gets nothing from the
    // provider; the gateway never sent its verifier anywhere but the token endpoint.
    let (_, callback) = start().await;
    let code = callback
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let refused_before = idp.refusals();
    let basic = "Basic cmFtcGFydC1jb25zb2xlOmNvbnNvbGUtY2xpZW50LXNlY3JldA=="; // rampart-console:console-client-secret
    let r = c
        .request(
            Method::POST,
            &format!("{}/token", idp.issuer()),
            &[("content-type", "application/x-www-form-urlencoded"), ("authorization", basic)],
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier=guessed-verifier-guessed-verifier-guessed-verifier",
                rampart_testkit::oidc::encode(&format!("{admin}/console/oidc/callback"))
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(idp.refusals(), refused_before + 1);
    // No token and no client secret in the gateway's logs.
    let logs = format!("{}{}", s.gw.stderr_text(), s.gw.stdout_text());
    assert!(
        !logs.contains("console-client-secret") && !logs.contains("eyJ"),
        "a secret in the logs"
    );
}
