//! The admin web console at `/console/` on the admin listener: sign-in, sessions, CSRF
//! checks, and the pages (rendered by `rampart_console`) over the gateway's own state.
//!
//! Every request after sign-in re-checks the session's credential with the identity
//! runtime (a revoked key ends its sessions at once) and every action re-checks the
//! caller's permission for it. Actions run through the same code as the admin API
//! (`oversight_api`, `erasure`) with `via = "console"`, so their audit records name the
//! console and the user. POSTs need the session's CSRF token and a same-origin
//! `Origin`/`Sec-Fetch-Site` when the browser sends them. Responses carry a strict
//! Content-Security-Policy (own origin only, no inline script or style), deny framing,
//! and are never cached. Nothing here logs a request body.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use rampart_console::html::{Flash, User, page};
use rampart_console::{Can, form, pages};
use rampart_identity::{Action, Principal};
use serde_json::{Value, json};

use crate::runtime::Gateway;

/// The session cookie (`__Host-`: Secure, path `/`, no domain — set by this origin only).
const COOKIE: &str = "__Host-rampart_console";
/// The sign-in form's CSRF cookie (double submit: there is no session yet).
const LOGIN_COOKIE: &str = "__Host-rampart_login";
/// An OIDC sign-in's `state`, binding the provider's redirect back to this browser.
/// `SameSite=Lax`: it must come back with the provider's top-level redirect.
const OIDC_COOKIE: &str = "__Host-rampart_oidc";
/// How long a one-time sign-in link works.
pub const LINK_TTL: Duration = Duration::from_secs(15 * 60);

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type Reply = Response<Full<Bytes>>;

fn secure_headers(r: &mut Reply) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`, not `no-referrer`: under `no-referrer` browsers send `Origin: null` with
    // form posts, which the same-origin check must refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        http::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

fn html(status: StatusCode, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(&mut r);
    r
}

fn redirect(to: &str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(&mut r);
    r
}

fn json_reply(status: StatusCode, v: &Value) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    secure_headers(&mut r);
    r
}

fn set_cookie(r: &mut Reply, name: &str, value: &str, max_age: Option<u64>) {
    let age = max_age.map(|a| format!("; Max-Age={a}")).unwrap_or_default();
    let same_site = if name == OIDC_COOKIE { "Lax" } else { "Strict" };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}{age}"
    )) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn cookie<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether a POST comes from the console's own pages: `Sec-Fetch-Site` and `Origin`,
/// when the browser sends them, must name this origin.
fn same_origin(headers: &http::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin == format!("http://{host}") || origin == format!("https://{host}"),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// What the principal may do in the console.
fn permissions(gateway: &Gateway, p: &Principal) -> Can {
    let rt = gateway.current();
    let may = |a| rt.identity.policy.action(p, a).is_ok();
    Can {
        view: may(Action::Metrics),
        review: may(Action::Review) || may(Action::Admin),
        operate: may(Action::Operate) || may(Action::Admin),
        admin: may(Action::Admin),
        audit_read: may(Action::AuditRead),
    }
}

async fn principal_for(gateway: &Gateway, credential: &str) -> Option<Principal> {
    let mut h = http::HeaderMap::new();
    h.insert(header::AUTHORIZATION, HeaderValue::from_str(credential).ok()?);
    gateway.current().identity.authenticate(&h, None).await.ok()
}

/// A one-time sign-in link for `credential` (`rampart demo` prints one).
pub fn sign_in_link(gateway: &Gateway, credential: &str) -> String {
    gateway.console.link(credential.to_owned(), LINK_TTL)
}

fn login_page(gateway: &Gateway, status: StatusCode, message: Option<&str>) -> Reply {
    let token = rampart_console::session::token(24);
    let flash = message.map(|m| Flash {
        ok: false,
        text: m.to_owned(),
    });
    let rt = gateway.current();
    let sso = rt.config.admin.console.oidc.as_ref().map(|o| o.name.as_str());
    let mut r = html(
        status,
        page("Sign in", "", None, flash.as_ref(), &pages::login(&token, sso)),
    );
    set_cookie(&mut r, LOGIN_COOKIE, &token, Some(600));
    r
}

/// Opens a session for a verified credential and sends the browser to the overview.
async fn open_session(gateway: &Gateway, credential: String) -> Reply {
    let Some(p) = principal_for(gateway, &credential).await else {
        return login_page(
            gateway,
            StatusCode::UNAUTHORIZED,
            Some("Sign-in failed: the key is not valid."),
        );
    };
    let can = permissions(gateway, &p);
    if can.role().is_none() {
        return login_page(
            gateway,
            StatusCode::FORBIDDEN,
            Some("This key may not use the console (it needs metrics, review, operate or admin)."),
        );
    }
    let name = crate::server::oversight_api::actor_name(&p);
    let Some(id) = gateway.console.open(credential, name.clone()) else {
        return login_page(
            gateway,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("No session could be made; try again."),
        );
    };
    if let Some(audit) = &gateway.audit {
        audit.sign_in(&name);
    }
    let mut r = redirect("/console/");
    set_cookie(&mut r, COOKIE, &id, None);
    set_cookie(&mut r, LOGIN_COOKIE, "", Some(0));
    r
}

pub async fn handle(
    gateway: Arc<Gateway>,
    method: &Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
    body: Option<Bytes>,
) -> Reply {
    if !gateway.current().config.admin.console.enabled {
        return html(
            StatusCode::NOT_FOUND,
            page("Not found", "", None, None, "<p>The console is disabled.</p>"),
        );
    }
    let path = uri.path();
    match (method, path) {
        (&Method::GET, "/console/static/console.css") => {
            return asset("text/css; charset=utf-8", rampart_console::assets::CSS);
        }
        (&Method::GET, "/console/static/console.js") => {
            return asset("text/javascript; charset=utf-8", rampart_console::assets::JS);
        }
        (&Method::GET, "/console/static/favicon.svg") => return asset("image/svg+xml", rampart_console::assets::ICON),
        (&Method::GET, "/console/login") => return login_page(&gateway, StatusCode::OK, None),
        (&Method::POST, "/console/login") => {
            let f = form::parse(body.as_deref().unwrap_or_default());
            let token = form::get(&f, "csrf").unwrap_or("");
            let expected = cookie(headers, LOGIN_COOKIE).unwrap_or("");
            if !same_origin(headers) || !rampart_console::session::same(token, expected) {
                return login_page(
                    &gateway,
                    StatusCode::FORBIDDEN,
                    Some("The sign-in form expired; try again."),
                );
            }
            let key = form::get(&f, "key").unwrap_or("").trim();
            if key.is_empty() {
                return login_page(&gateway, StatusCode::UNAUTHORIZED, Some("Enter an API key."));
            }
            return open_session(&gateway, format!("Bearer {key}")).await;
        }
        (&Method::GET, "/console/oidc/start") => return oidc_start(&gateway).await,
        (&Method::GET, "/console/oidc/callback") => return oidc_callback(&gateway, uri, headers).await,
        (&Method::GET, "/console/signin") => {
            let token = uri
                .query()
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
                .unwrap_or("");
            return match gateway.console.redeem(token) {
                Some(credential) => open_session(&gateway, credential).await,
                None => login_page(
                    &gateway,
                    StatusCode::UNAUTHORIZED,
                    Some("This sign-in link was used or has expired."),
                ),
            };
        }
        _ => {}
    }

    // Everything else needs a live session whose credential still holds.
    let sid = cookie(headers, COOKIE).unwrap_or("").to_owned();
    let session = gateway.console.get(&sid);
    let principal = match &session {
        Some(s) => principal_for(&gateway, &s.credential).await,
        None => None,
    };
    let (Some(session), Some(principal)) = (session, principal) else {
        gateway.console.close(&sid);
        if path.starts_with("/console/api/") || method != Method::GET {
            return json_reply(
                StatusCode::UNAUTHORIZED,
                &json!({"error": {"code": "no_session", "message": "sign in to the console first"}}),
            );
        }
        return redirect("/console/login");
    };
    let can = permissions(&gateway, &principal);
    let Some(role) = can.role() else {
        gateway.console.close(&sid);
        return redirect("/console/login");
    };
    let user = User {
        name: session.name.clone(),
        role,
        can,
        csrf: session.csrf.clone(),
    };
    if method == Method::POST {
        let f = form::parse(body.as_deref().unwrap_or_default());
        if !same_origin(headers) || !rampart_console::session::same(form::get(&f, "csrf").unwrap_or(""), &session.csrf)
        {
            return html(
                StatusCode::FORBIDDEN,
                page(
                    "Refused",
                    "",
                    Some(&user),
                    Some(&Flash {
                        ok: false,
                        text: "The form's security token did not match; reload the page and try again.".into(),
                    }),
                    "",
                ),
            );
        }
        return act(&gateway, &sid, &user, &principal, path, &f).await;
    }
    if method != Method::GET {
        return json_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": {"code": "method_not_allowed", "message": "method not allowed"}}),
        );
    }
    let flash = gateway.console.take_flash(&sid);
    let (flash, secret) = match flash {
        Some((ok, text, secret)) => (Some(Flash { ok, text }), secret),
        None => (None, None),
    };
    show(&gateway, &user, &principal, uri, flash.as_ref(), secret.as_deref()).await
}

/// Sends the browser to the OIDC provider's sign-in.
async fn oidc_start(gateway: &Gateway) -> Reply {
    let rt = gateway.current();
    let Some(cfg) = rt.config.admin.console.oidc.as_ref() else {
        return login_page(
            gateway,
            StatusCode::NOT_FOUND,
            Some("Single sign-on is not configured."),
        );
    };
    let Some((state, verifier, nonce)) = gateway.console.begin_oidc() else {
        return login_page(
            gateway,
            StatusCode::SERVICE_UNAVAILABLE,
            Some("No sign-in could be started; try again."),
        );
    };
    match crate::server::oidc::authorize_url(cfg, &state, &verifier, &nonce).await {
        Ok(url) => {
            let mut r = redirect(&url);
            set_cookie(&mut r, OIDC_COOKIE, &state, Some(600));
            r
        }
        Err(e) => {
            tracing::warn!(event = "console_oidc", error = %e, "OIDC sign-in could not start");
            login_page(
                gateway,
                StatusCode::BAD_GATEWAY,
                Some(&format!("Single sign-on is unavailable: {e}.")),
            )
        }
    }
}

/// The provider's redirect back: state checked against this browser's cookie, the code
/// exchanged with the PKCE verifier, the ID token's nonce checked, then the token
/// checked as a credential and a session opened.
async fn oidc_callback(gateway: &Gateway, uri: &http::Uri, headers: &http::HeaderMap) -> Reply {
    let rt = gateway.current();
    let Some(cfg) = rt.config.admin.console.oidc.as_ref() else {
        return login_page(
            gateway,
            StatusCode::NOT_FOUND,
            Some("Single sign-on is not configured."),
        );
    };
    let q = form::parse(uri.query().unwrap_or("").as_bytes());
    if let Some(err) = form::get(&q, "error") {
        return login_page(
            gateway,
            StatusCode::UNAUTHORIZED,
            Some(&format!("The provider refused the sign-in: {err}.")),
        );
    }
    let state = form::get(&q, "state").unwrap_or("");
    let bound = cookie(headers, OIDC_COOKIE).unwrap_or("");
    if !rampart_console::session::same(state, bound) {
        return login_page(
            gateway,
            StatusCode::FORBIDDEN,
            Some("This sign-in was not started in this browser; start again."),
        );
    }
    let Some((verifier, nonce)) = gateway.console.finish_oidc(state) else {
        return login_page(
            gateway,
            StatusCode::FORBIDDEN,
            Some("This sign-in expired or was already used; start again."),
        );
    };
    let code = form::get(&q, "code").unwrap_or("");
    let token = match crate::server::oidc::exchange(cfg, code, &verifier, &nonce).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(event = "console_oidc", error = %e, "OIDC sign-in refused");
            return login_page(
                gateway,
                StatusCode::UNAUTHORIZED,
                Some(&format!("Sign-in failed: {e}.")),
            );
        }
    };
    let mut r = open_session(gateway, format!("Bearer {token}")).await;
    if r.status() == StatusCode::SEE_OTHER {
        // The provider's redirect is a cross-site navigation: a `SameSite=Strict` cookie
        // set now is not sent on a redirect in the same chain. A page of our own moves
        // the browser on, same-site.
        let headers = std::mem::take(r.headers_mut());
        r = html(
            StatusCode::OK,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"0;url=/console/\">\
             <title>Signed in · Rampart console</title></head><body><p><a href=\"/console/\">Continue to the console</a></p></body></html>"
                .to_owned(),
        );
        for (name, value) in headers.iter().filter(|(n, _)| *n == header::SET_COOKIE) {
            r.headers_mut().append(name, value.clone());
        }
    }
    set_cookie(&mut r, OIDC_COOKIE, "", Some(0));
    r
}

fn asset(content_type: &'static str, text: &'static str) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    secure_headers(&mut r);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    r
}

fn forbidden(user: &User) -> Reply {
    html(
        StatusCode::FORBIDDEN,
        page(
            "Not permitted",
            "",
            Some(user),
            Some(&Flash {
                ok: false,
                text: format!("Your role ({}) does not allow this.", user.role.as_str()),
            }),
            "",
        ),
    )
}

/// Calls an admin API operation as the console user; returns its status and JSON.
async fn api(
    gateway: &Arc<Gateway>,
    principal: &Principal,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let Ok(uri) = path.parse::<http::Uri>() else {
        return (StatusCode::BAD_REQUEST, Value::Null);
    };
    let needs = crate::server::oversight_api::needs(&method, uri.path());
    let rt = gateway.current();
    if !needs.iter().any(|a| rt.identity.policy.action(principal, *a).is_ok()) {
        return (
            StatusCode::FORBIDDEN,
            json!({"error": {"message": "your role does not allow this"}}),
        );
    }
    let body = body.map(|b| Bytes::from(b.to_string()));
    let r =
        crate::server::oversight_api::handle_as(Arc::clone(gateway), principal, &method, &uri, body, "console").await;
    read_reply(r).await
}

/// An admin API answer's status and JSON body.
async fn read_reply(r: Reply) -> (StatusCode, Value) {
    let status = r.status();
    let bytes = r.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn api_message(status: StatusCode, v: &Value, ok: &str) -> (bool, String) {
    if status.is_success() {
        (true, ok.to_owned())
    } else {
        (
            false,
            v["error"]["message"].as_str().unwrap_or("the action failed").to_owned(),
        )
    }
}

/// The form as a JSON object of strings (`true` for checked boxes), without the token.
fn form_json(f: &[(String, String)]) -> Value {
    let mut m = serde_json::Map::new();
    for (k, v) in f {
        if k == "csrf" || v.is_empty() {
            continue;
        }
        let value = if v == "true" {
            Value::Bool(true)
        } else {
            Value::String(v.clone())
        };
        m.insert(k.clone(), value);
    }
    Value::Object(m)
}

/// A POST from a console form: the action, then back to the page with a message.
async fn act(
    gateway: &Arc<Gateway>,
    sid: &str,
    user: &User,
    principal: &Principal,
    path: &str,
    f: &[(String, String)],
) -> Reply {
    let sessions = &gateway.console;
    let back = |ok: bool, text: String, to: &str| {
        sessions.flash(sid, ok, text, None);
        redirect(to)
    };
    match path {
        "/console/logout" => {
            sessions.close(sid);
            let mut r = redirect("/console/login");
            set_cookie(&mut r, COOKIE, "", Some(0));
            r
        }
        "/console/stop" => {
            let (s, v) = api(gateway, principal, Method::POST, "/admin/stops", Some(form_json(f))).await;
            let scope = form::get(f, "scope").unwrap_or("");
            let (ok, text) = api_message(s, &v, &format!("Stopped {scope}: clients get 503 until it is resumed."));
            back(ok, text, "/console/routes")
        }
        "/console/resume" => {
            let (s, v) = api(gateway, principal, Method::POST, "/admin/resume", Some(form_json(f))).await;
            let scope = form::get(f, "scope").unwrap_or("");
            let (ok, text) = api_message(s, &v, &format!("Resumed {scope}."));
            back(ok, text, "/console/routes")
        }
        p if p.starts_with("/console/reviews/") => {
            let id = p.trim_start_matches("/console/reviews/");
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return back(false, "No such review item.".into(), "/console/reviews");
            }
            let (s, v) = api(
                gateway,
                principal,
                Method::POST,
                &format!("/admin/reviews/{id}"),
                Some(form_json(f)),
            )
            .await;
            let (ok, text) = api_message(
                s,
                &v,
                &format!("Recorded: {}.", v["status"].as_str().unwrap_or("decided")),
            );
            back(ok, text, &format!("/console/reviews/{id}"))
        }
        "/console/incidents/open" => {
            let (s, v) = api(gateway, principal, Method::POST, "/admin/incidents", Some(form_json(f))).await;
            let (ok, text) = api_message(
                s,
                &v,
                &format!(
                    "Incident opened; the report is due {}.",
                    v["due"].as_str().unwrap_or("")
                ),
            );
            back(ok, text, "/console/incidents")
        }
        "/console/incidents/reported" | "/console/incidents/closed" => {
            let id = form::get(f, "id").unwrap_or("");
            if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return back(false, "No such incident.".into(), "/console/incidents");
            }
            let field = if path.ends_with("reported") {
                "reported"
            } else {
                "closed"
            };
            let (s, v) = api(
                gateway,
                principal,
                Method::POST,
                &format!("/admin/incidents/{id}"),
                Some(json!({field: true})),
            )
            .await;
            let (ok, text) = api_message(s, &v, &format!("Incident marked {field}."));
            back(ok, text, "/console/incidents")
        }
        "/console/keys/create" | "/console/keys/revoke" | "/console/keys/expire" => {
            if !user.can.admin {
                return forbidden(user);
            }
            let (ok, text, secret) = keys_action(gateway, user, path, f).await;
            sessions.flash(sid, ok, text, secret);
            redirect("/console/keys")
        }
        "/console/audit/erase" => {
            if !user.can.admin {
                return forbidden(user);
            }
            let subject = form::get(f, "subject").unwrap_or("");
            let r = crate::server::erasure::erase(
                gateway,
                Some(Bytes::from(json!({"subject": subject}).to_string())),
                "console",
                &user.name,
            )
            .await;
            let (status, v) = read_reply(r).await;
            let (ok, text) = api_message(
                status,
                &v,
                &format!(
                    "Erased: the subject's payload key was {}.",
                    if v["key_existed"] == true {
                        "destroyed"
                    } else {
                        "absent"
                    }
                ),
            );
            back(ok, text, "/console/audit")
        }
        "/console/audit/verify" | "/console/audit/export" => {
            if path.ends_with("export") && !user.can.audit_read {
                return forbidden(user);
            }
            let mut data = audit_data(gateway, &AuditQuery::default()).await;
            if path.ends_with("verify") {
                data["verify"] = verify(gateway).await;
            } else {
                let subject = form::get(f, "subject").unwrap_or("").trim().to_owned();
                data["export"] = export(gateway, &user.name, &subject).await;
            }
            html(
                StatusCode::OK,
                page("Audit trail", "audit", Some(user), None, &pages::audit(user, &data)),
            )
        }
        _ => html(
            StatusCode::NOT_FOUND,
            page("Not found", "", Some(user), None, "<p>No such action.</p>"),
        ),
    }
}

/// A GET page.
async fn show(
    gateway: &Arc<Gateway>,
    user: &User,
    principal: &Principal,
    uri: &http::Uri,
    flash: Option<&Flash>,
    secret: Option<&str>,
) -> Reply {
    let query = |k: &str| {
        uri.query().and_then(|q| {
            form::parse(q.as_bytes())
                .into_iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v)
        })
    };
    let ok =
        |title: &str, active: &str, body: String| html(StatusCode::OK, page(title, active, Some(user), flash, &body));
    match uri.path() {
        "/console" | "/console/" => ok("Overview", "overview", pages::overview(user, &overview(gateway).await)),
        "/console/api/overview" => json_reply(StatusCode::OK, &overview(gateway).await),
        "/console/routes" => ok("Routes & models", "routes", pages::routes(user, &routes(gateway))),
        "/console/reviews" => {
            let status = query("status").unwrap_or_else(|| "pending".into());
            let (_, v) = api(
                gateway,
                principal,
                Method::GET,
                &format!("/admin/reviews?status={}", form::encode(&status)),
                None,
            )
            .await;
            ok("Review queue", "reviews", pages::reviews(user, &v["items"], &status))
        }
        p if p.starts_with("/console/reviews/") => {
            let id = p.trim_start_matches("/console/reviews/");
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return html(
                    StatusCode::NOT_FOUND,
                    page("Not found", "reviews", Some(user), None, "<p>No such item.</p>"),
                );
            }
            let (s, v) = api(gateway, principal, Method::GET, &format!("/admin/reviews/{id}"), None).await;
            if !s.is_success() {
                return html(
                    s,
                    page("Review item", "reviews", Some(user), flash, "<p>No such item.</p>"),
                );
            }
            ok("Review item", "reviews", pages::review(user, &v))
        }
        "/console/keys" => ok("API keys", "keys", pages::keys(user, &keys_data(gateway).await, secret)),
        "/console/alerts" => ok(
            "Alerts",
            "alerts",
            pages::alerts(user, &json!({"alerts": crate::alerts::recent()})),
        ),
        "/console/audit" => {
            let q = AuditQuery {
                from: query("from").filter(|s| !s.is_empty()),
                to: query("to").filter(|s| !s.is_empty()),
                principal: query("principal").filter(|s| !s.is_empty()),
                route: query("route").filter(|s| !s.is_empty()),
                decision: query("decision").filter(|s| !s.is_empty()),
            };
            ok(
                "Audit trail",
                "audit",
                pages::audit(user, &audit_data(gateway, &q).await),
            )
        }
        "/console/incidents" => {
            let (_, v) = api(gateway, principal, Method::GET, "/admin/incidents", None).await;
            let source = query("source");
            ok("Incidents", "incidents", pages::incidents(user, &v, source.as_deref()))
        }
        _ => html(
            StatusCode::NOT_FOUND,
            page("Not found", "", Some(user), None, "<p>No such page.</p>"),
        ),
    }
}

/// A metric sample: name, labels, value.
type Sample<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// One sample line of the Prometheus text.
fn sample(line: &str) -> Option<Sample<'_>> {
    if line.starts_with('#') {
        return None;
    }
    let (head, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        Some((n, rest)) => {
            let inner = rest.strip_suffix('}')?;
            let labels = inner
                .split("\",")
                .filter_map(|kv| kv.split_once("=\""))
                .map(|(k, v)| (k, v.trim_end_matches('"')))
                .collect();
            (n, labels)
        }
        None => (head, Vec::new()),
    };
    Some((name, labels, value))
}

fn label<'a>(labels: &[(&str, &'a str)], key: &str) -> &'a str {
    labels.iter().find(|(k, _)| *k == key).map_or("", |(_, v)| v)
}

/// The overview's numbers, from the gateway's own metrics and oversight state.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)] // counters are whole, non-negative numbers read back from text
async fn overview(gateway: &Arc<Gateway>) -> Value {
    gateway.refresh_gauges();
    let text = gateway.metrics.render();
    let mut requests = 0.0;
    let mut refused = 0.0;
    let mut errors = 0.0;
    let mut by_code: std::collections::BTreeMap<String, f64> = std::collections::BTreeMap::new();
    let mut by_route: std::collections::BTreeMap<String, (f64, f64)> = std::collections::BTreeMap::new();
    let mut buckets: std::collections::BTreeMap<u64, f64> = std::collections::BTreeMap::new();
    let mut upstreams = Vec::new();
    for (name, labels, value) in text.lines().filter_map(sample) {
        match name {
            "rampart_requests_total" => {
                requests += value;
                by_route.entry(label(&labels, "route").to_owned()).or_default().0 += value;
            }
            "rampart_errors_total" => {
                let code = label(&labels, "code");
                if !code.starts_with("upstream") && code != "no_healthy_upstream" {
                    refused += value;
                    by_route.entry(label(&labels, "route").to_owned()).or_default().1 += value;
                }
                *by_code.entry(code.to_owned()).or_default() += value;
            }
            "rampart_upstream_errors_total" => errors += value,
            "rampart_request_duration_seconds_bucket" => {
                let le = label(&labels, "le");
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap_or(f64::INFINITY)
                };
                // Keyed by the bound in nanoseconds so buckets sum across routes.
                let key = if le.is_finite() {
                    (le * 1e9).round() as u64
                } else {
                    u64::MAX
                };
                *buckets.entry(key).or_default() += value;
            }
            "rampart_upstream_target_healthy" => upstreams.push(json!({
                "name": label(&labels, "upstream"),
                "target": label(&labels, "target"),
                "healthy": value >= 1.0,
            })),
            _ => {}
        }
    }
    let quantile = |q: f64| -> Value {
        let total = buckets.get(&u64::MAX).copied().unwrap_or(0.0);
        if total <= 0.0 {
            return Value::Null;
        }
        let want = total * q;
        buckets
            .iter()
            .find(|(_, c)| **c >= want)
            .map(|(le, _)| {
                if *le == u64::MAX {
                    Value::from("> 105 s")
                } else {
                    json!(((*le as f64) / 1e6 * 10.0).round() / 10.0)
                }
            })
            .unwrap_or(Value::Null)
    };
    let mut refusals: Vec<(String, f64)> = by_code.into_iter().collect();
    refusals.sort_by(|a, b| b.1.total_cmp(&a.1));
    let o = &gateway.oversight;
    let pending = o
        .reviews(Some(rampart_oversight::Status::Pending), 1000)
        .await
        .map_or(0, |v| v.len());
    let now = rampart_identity::time::now();
    let incidents: Vec<Value> = o
        .incidents()
        .await
        .unwrap_or_default()
        .iter()
        .map(|i| crate::server::oversight_api::incident_json(i, now))
        .collect();
    json!({
        "requests": requests as u64,
        "refused": refused as u64,
        "errors": errors as u64,
        "p50_ms": quantile(0.5),
        "p99_ms": quantile(0.99),
        "pending_reviews": pending,
        "stops": o.stops().len(),
        "refusals": refusals.iter().map(|(c, n)| json!({"code": c, "count": *n as u64})).collect::<Vec<_>>(),
        "routes": by_route.iter().map(|(r, (n, x))| json!({"route": r, "requests": *n as u64, "refused": *x as u64})).collect::<Vec<_>>(),
        "upstreams": upstreams,
        "incidents": incidents,
    })
}

/// Routes with their pins, the models and tenants the config names, and the stops.
fn routes(gateway: &Gateway) -> Value {
    let rt = gateway.current();
    let c = &rt.config;
    let routes: Vec<Value> = c
        .routes
        .iter()
        .map(|r| {
            json!({
                "name": r.name,
                "protocol": format!("{:?}", r.protocol).to_lowercase(),
                "path": match &r.path {
                    rampart_config::PathMatch::Exact(p) => p.clone(),
                    rampart_config::PathMatch::Prefix(p) => format!("{p}*"),
                },
                "upstream": c.upstreams.get(r.upstream).map(|u| u.name.clone()),
                "tenant": r.tenant,
                "model_version": r.model.as_ref().and_then(|m| m.version.clone()),
                "model_digest": r.model.as_ref().map(|m| m.manifest_digest.clone()),
            })
        })
        .collect();
    let stops: Vec<Value> = gateway
        .oversight
        .stops()
        .iter()
        .map(crate::server::oversight_api::stop_json)
        .collect();
    let mut models: std::collections::BTreeSet<String> = c
        .roles
        .values()
        .flat_map(|r| r.models.iter())
        .filter(|m| *m != "*")
        .cloned()
        .collect();
    let mut tenants: std::collections::BTreeSet<String> = c.routes.iter().filter_map(|r| r.tenant.clone()).collect();
    for s in gateway.oversight.stops().iter() {
        match &s.scope {
            rampart_oversight::Scope::Model(m) => {
                models.insert(m.clone());
            }
            rampart_oversight::Scope::Tenant(t) => {
                tenants.insert(t.clone());
            }
            _ => {}
        }
    }
    json!({"routes": routes, "stops": stops, "models": models, "tenants": tenants})
}

fn key_target(gateway: &Gateway) -> Option<(rampart_identity::manage::KeyStoreTarget, rampart_identity::Pepper)> {
    let rt = gateway.current();
    let id = &rt.config.identity;
    let store = match &id.api_keys.as_ref()?.store {
        rampart_config::KeyStoreConfig::File(p) => rampart_identity::manage::KeyStoreTarget::File(p.clone()),
        rampart_config::KeyStoreConfig::Postgres(url) => {
            rampart_identity::manage::KeyStoreTarget::Postgres(url.expose().clone())
        }
    };
    Some((store, rampart_identity::Pepper::new(id.pepper.as_ref()?.expose())))
}

async fn keys_data(gateway: &Arc<Gateway>) -> Value {
    let roles: Vec<String> = gateway.current().config.roles.keys().cloned().collect();
    let Some((store, _)) = key_target(gateway) else {
        return json!({"keys": [], "roles": roles});
    };
    let loaded = tokio::task::spawn_blocking(move || store.load()).await;
    let now = rampart_identity::time::now();
    let keys: Vec<Value> = match loaded {
        Ok(Ok(file)) => file
            .keys
            .iter()
            .rev()
            .map(|k| {
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else if k
                    .expires_at
                    .as_deref()
                    .and_then(rampart_identity::time::parse)
                    .is_some_and(|e| now >= e)
                {
                    "expired"
                } else {
                    "active"
                };
                json!({"id": k.id, "subject": k.subject, "tenant": k.tenant, "roles": k.roles,
                       "created_at": k.created_at, "expires_at": k.expires_at, "status": status})
            })
            .collect(),
        _ => Vec::new(),
    };
    json!({"keys": keys, "roles": roles})
}

/// Creates, revokes or sets the expiry of a key; returns the message and, for a new
/// key, its secret (shown once).
async fn keys_action(
    gateway: &Arc<Gateway>,
    user: &User,
    path: &str,
    f: &[(String, String)],
) -> (bool, String, Option<String>) {
    let Some((store, pepper)) = key_target(gateway) else {
        return (
            false,
            "This gateway has no API key store ([identity.api_keys]).".into(),
            None,
        );
    };
    let get = |k: &str| {
        form::get(f, k)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let roles: Vec<String> = gateway.current().config.roles.keys().cloned().collect();
    let action = path.trim_start_matches("/console/keys/").to_owned();
    let id = get("id").unwrap_or_default();
    let duration = |text: Option<String>| -> Result<Option<i64>, String> {
        text.map(|t| {
            rampart_identity::time::parse_duration(&t)
                .filter(|s| *s > 0)
                .ok_or_else(|| format!("`{t}` is not a duration such as 24h or 90d"))
        })
        .transpose()
    };
    let job: Result<(String, Option<String>, String), String> = match action.as_str() {
        "create" => {
            let subject = get("subject").unwrap_or_default();
            let role = get("role").unwrap_or_default();
            if subject.is_empty() || subject.len() > 200 {
                return (false, "A key needs a subject (who it is for).".into(), None);
            }
            if !roles.contains(&role) {
                return (false, format!("Role `{role}` is not defined in the config."), None);
            }
            let expires_in = match duration(get("expires_in")) {
                Ok(e) => e,
                Err(e) => return (false, e, None),
            };
            let new = rampart_identity::NewKey {
                subject,
                tenant: get("tenant"),
                roles: vec![role],
                routes: Vec::new(),
                models: Vec::new(),
                expires_in,
                note: get("note"),
                test: false,
            };
            tokio::task::spawn_blocking(move || store.update(|file| file.create(&pepper, &new)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map(|(key, record)| {
                    (
                        record.id.clone(),
                        Some(key.expose().to_owned()),
                        format!("for {} with role {}", record.subject, record.roles.join(", ")),
                    )
                })
        }
        "revoke" => {
            let target = id.clone();
            tokio::task::spawn_blocking(move || store.update(|file| file.revoke(&target)))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map(|()| (id.clone(), None, "revoked".to_owned()))
        }
        _ => {
            let secs = match duration(get("in")) {
                Ok(Some(s)) => s,
                Ok(None) => return (false, "Give the time left, such as 24h.".into(), None),
                Err(e) => return (false, e, None),
            };
            let at = rampart_identity::time::format(rampart_identity::time::now() + secs);
            let (target, when) = (id.clone(), at.clone());
            tokio::task::spawn_blocking(move || {
                store.update(|file| {
                    let rec = file
                        .keys
                        .iter_mut()
                        .find(|k| k.id == target)
                        .ok_or_else(|| rampart_identity::keyfile::KeyFileError::NoSuchKey(target.clone()))?;
                    rec.expires_at = Some(when.clone());
                    Ok(())
                })
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map(|()| (id.clone(), None, format!("expires {at}")))
        }
    };
    let (ok, key_id, detail) = match &job {
        Ok((kid, _, detail)) => (true, kid.clone(), detail.clone()),
        Err(e) => (false, id.clone(), e.clone()),
    };
    if let Some(audit) = &gateway.audit {
        let name = match action.as_str() {
            "create" => "key_created",
            "revoke" => "key_revoked",
            _ => "key_expiry_set",
        };
        audit.oversight(
            name,
            "console",
            ok,
            &user.name,
            &format!("key:{key_id}"),
            Some(detail.clone()),
        );
    }
    match job {
        Ok((kid, secret, detail)) => (true, format!("Key {kid}: {detail}."), secret),
        Err(e) => (false, format!("The key store refused: {e}"), None),
    }
}

/// Filters for the audit search.
#[derive(Debug, Default, Clone)]
struct AuditQuery {
    from: Option<String>,
    to: Option<String>,
    principal: Option<String>,
    route: Option<String>,
    decision: Option<String>,
}

/// Records shown at most per search.
const MAX_SHOWN: usize = 200;

async fn audit_data(gateway: &Arc<Gateway>, q: &AuditQuery) -> Value {
    let query = json!({"from": q.from, "to": q.to, "principal": q.principal, "route": q.route, "decision": q.decision});
    let (Some(cfg), Some(trail)) = (gateway.current().config.audit.clone(), gateway.audit.clone()) else {
        return json!({"query": query, "records": [], "matched": "the audit trail is off"});
    };
    let q = q.clone();
    let pseudonym = q.principal.as_deref().map(|p| trail.pseudonym(p));
    let found = tokio::task::spawn_blocking(move || {
        let mut shown: VecDeque<Value> = VecDeque::new();
        let mut matched = 0u64;
        let r = rampart_audit_store::report::for_each_entry(&cfg, |_, e| {
            let r = e.value();
            let time = r["time"].as_str().unwrap_or("");
            if q.from.as_deref().is_some_and(|f| time < f) || q.to.as_deref().is_some_and(|t| time > t) {
                return;
            }
            if let Some(route) = &q.route
                && r["route"].as_str() != Some(route.as_str())
            {
                return;
            }
            if let Some(d) = &q.decision
                && r["decision"].as_str() != Some(d.as_str())
                && r["action"].as_str() != Some(d.as_str())
            {
                return;
            }
            if let Some(p) = &q.principal {
                let id = r["principal"]["id"].as_str();
                let key = r["principal"]["key_id"].as_str();
                if id != pseudonym.as_deref()
                    && key != Some(p.as_str())
                    && r["actor"].as_str().is_none_or(|a| !a.starts_with(p.as_str()))
                {
                    return;
                }
            }
            matched += 1;
            let principal = r["principal"]["key_id"]
                .as_str()
                .or_else(|| r["actor"].as_str())
                .or_else(|| r["principal"]["id"].as_str())
                .map(str::to_owned);
            shown.push_back(json!({
                "time": time, "type": r["type"], "route": r["route"], "principal": principal,
                "decision": if r["decision"].is_null() { r["action"].clone() } else { r["decision"].clone() },
                "status": r["status"], "findings": r["findings"], "request_id": r["request_id"],
            }));
            if shown.len() > MAX_SHOWN {
                shown.pop_front();
            }
        });
        r.map(|()| (shown, matched))
    })
    .await;
    match found {
        Ok(Ok((shown, matched))) => {
            let records: Vec<Value> = shown.into_iter().rev().collect();
            json!({"query": query, "records": records, "matched": format!("{matched} matched")})
        }
        _ => json!({"query": query, "records": [], "matched": "the trail could not be read"}),
    }
}

/// Verifies every node's chain with the trail's own public key.
async fn verify(gateway: &Arc<Gateway>) -> Value {
    let Some(cfg) = gateway.current().config.audit.clone() else {
        return json!({"ok": false, "detail": "the audit trail is off"});
    };
    let trail = gateway.audit.clone();
    let done = tokio::task::spawn_blocking(move || {
        // Records still queued are written first: the check covers them too.
        if let Some(t) = &trail {
            t.flush(Duration::from_secs(5));
        }
        let public = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(cfg.signing_key.expose())
            .map(|k| ring::signature::KeyPair::public_key(&k).as_ref().to_vec())
            .ok();
        rampart_audit_store::report::verify_store(&cfg, Vec::new(), public.as_deref(), None)
    })
    .await;
    match done {
        Ok(Ok(reports)) => {
            let ok = reports.iter().all(|(_, r)| r.ok());
            let records: u64 = reports.iter().map(|(_, r)| r.records).sum();
            let checkpoints: u64 = reports.iter().map(|(_, r)| r.checkpoints).sum();
            let problems: Vec<String> = reports
                .iter()
                .flat_map(|(n, r)| r.problems.iter().take(3).map(move |p| format!("{n}: {p}")))
                .collect();
            json!({"ok": ok, "detail": if ok {
                format!("intact — {records} records on {} node(s), {checkpoints} checkpoint signatures verified", reports.len())
            } else {
                format!("PROBLEMS — {}", problems.join("; "))
            }})
        }
        _ => json!({"ok": false, "detail": "the trail could not be read"}),
    }
}

/// A data subject's records, payloads opened (GDPR Art. 15); the export itself is an
/// audit record.
async fn export(gateway: &Arc<Gateway>, actor: &str, subject: &str) -> Value {
    let (Some(cfg), Some(trail)) = (gateway.current().config.audit.clone(), gateway.audit.clone()) else {
        return json!({"records": [], "error": "the audit trail is off"});
    };
    if subject.is_empty() {
        return json!({"records": [], "error": "no subject given"});
    }
    let pseudonym = trail.pseudonym(subject);
    let keys = trail.keys.clone();
    let p = pseudonym.clone();
    let flushing = Arc::clone(&trail);
    let done = tokio::task::spawn_blocking(move || {
        // Records still queued are written first: the export includes them.
        flushing.flush(Duration::from_secs(5));
        rampart_audit_store::report::subject_records(&cfg, keys.as_deref(), &p)
    })
    .await;
    let (records, problem) = match done {
        Ok(Ok(r)) => r,
        _ => (Vec::new(), Some("the trail could not be read".to_owned())),
    };
    trail.oversight(
        "subject_export",
        "console",
        problem.is_none(),
        actor,
        &format!("subject:{pseudonym}"),
        Some(format!("{} records", records.len())),
    );
    json!({"pseudonym": pseudonym, "records": records, "problem": problem})
}
