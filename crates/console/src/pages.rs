//! The console's pages, rendered from JSON (the admin API's shapes). Each function
//! returns the page body; `html::page` wraps it. Controls appear only for users whose
//! roles allow the action — the gateway checks again when it is used.

use serde_json::Value;

use crate::html::{User, csrf, esc, t, table, text};

fn arr(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// A form posting to `action` with the CSRF field, `fields` (already HTML) and a
/// submit button. `confirm`: a question the script asks first (the form works without).
fn form(user: &User, action: &str, fields: &str, button: &str, class: &str, confirm: Option<&str>) -> String {
    let confirm = confirm
        .map(|c| format!(" data-confirm=\"{}\"", esc(c)))
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"{}\" class=\"{class}\"{confirm}>{}{fields}<button type=\"submit\">{}</button></form>",
        esc(action),
        csrf(user),
        esc(button)
    )
}

fn input(name: &str, label: &str, kind: &str, value: &str, required: bool, hint: &str) -> String {
    let id = format!("f-{name}");
    format!(
        "<div class=\"field\"><label for=\"{id}\">{}</label><input id=\"{id}\" name=\"{name}\" type=\"{kind}\" value=\"{}\"{}{}></div>",
        esc(label),
        esc(value),
        if required { " required" } else { "" },
        if hint.is_empty() {
            String::new()
        } else {
            format!(" placeholder=\"{}\"", esc(hint))
        }
    )
}

fn checkbox(name: &str, label: &str) -> String {
    format!(
        "<label class=\"check\"><input type=\"checkbox\" name=\"{name}\" value=\"true\"> {}</label>",
        esc(label)
    )
}

fn select(name: &str, label: &str, options: &[(&str, &str)]) -> String {
    let id = format!("f-{name}");
    let opts: String = options
        .iter()
        .map(|(v, l)| format!("<option value=\"{}\">{}</option>", esc(v), esc(l)))
        .collect();
    format!(
        "<label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{name}\">{opts}</select>",
        esc(label)
    )
}

/// Sign-in: an admin API key, or the configured OIDC provider.
pub fn login(login_csrf: &str, sso: Option<&str>) -> String {
    let sso = sso
        .map(|name| {
            format!(
                "<p class=\"or\">or</p><p><a class=\"button\" href=\"/console/oidc/start\" data-testid=\"sso\">Sign in with {}</a></p>",
                esc(name)
            )
        })
        .unwrap_or_default();
    format!(
        "<form method=\"post\" action=\"/console/login\" class=\"card narrow\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"f-key\">API key</label>\
         <input id=\"f-key\" name=\"key\" type=\"password\" autocomplete=\"off\" required autofocus>\
         <button type=\"submit\">Sign in</button>\
         <p class=\"hint\">A key whose roles grant metrics, review, operate or admin.</p></form>{sso}",
        esc(login_csrf)
    )
}

fn stat(label: &str, key: &str, value: &Value) -> String {
    format!(
        "<div class=\"stat\"><span class=\"label\">{}</span><span class=\"value\" data-k=\"{key}\">{}</span></div>",
        esc(label),
        t(value)
    )
}

/// Overview: traffic, refusals, latency, upstreams, what needs attention. The script
/// refreshes `[data-k]` values and the charts from `/console/api/overview`.
pub fn overview(user: &User, d: &Value) -> String {
    let _ = user;
    let mut s = String::from("<section class=\"stats\" aria-label=\"Traffic\">");
    s.push_str(&stat("Requests", "requests", &d["requests"]));
    s.push_str(&stat("Refused", "refused", &d["refused"]));
    s.push_str(&stat("Upstream errors", "errors", &d["errors"]));
    s.push_str(&stat("p50 ms", "p50_ms", &d["p50_ms"]));
    s.push_str(&stat("p99 ms", "p99_ms", &d["p99_ms"]));
    s.push_str(&stat("Pending reviews", "pending_reviews", &d["pending_reviews"]));
    s.push_str(&stat("Stops in force", "stops", &d["stops"]));
    s.push_str("</section>");
    s.push_str(
        "<section class=\"charts\"><figure><figcaption>Requests per second</figcaption>\
         <svg class=\"chart\" data-series=\"rps\" viewBox=\"0 0 300 60\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Requests per second, last minutes\"></svg></figure>\
         <figure><figcaption>Refusals per second</figcaption>\
         <svg class=\"chart\" data-series=\"refused\" viewBox=\"0 0 300 60\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"Refusals per second, last minutes\"></svg></figure></section>",
    );
    let due: Vec<Vec<String>> = arr(&d["incidents"])
        .iter()
        .filter(|i| i["reported"].is_null() && i["closed"].is_null())
        .map(|i| {
            let left = i["seconds_left"].as_i64().unwrap_or(0);
            let when = if left < 0 {
                "<strong class=\"bad\">overdue</strong>".to_owned()
            } else {
                format!("{} days left", (left + 86_399) / 86_400)
            };
            vec![
                format!("<a href=\"/console/incidents\">{}</a>", t(&i["title"])),
                t(&i["severity"]),
                t(&i["due"]),
                when,
            ]
        })
        .collect();
    s.push_str("<h2>Serious incidents to report</h2>");
    s.push_str(&table(
        "Open incidents and their Art. 73 deadlines",
        &["incident", "severity", "report due", "time left"],
        &due,
        "No open incident.",
    ));
    let refusals: Vec<Vec<String>> = arr(&d["refusals"])
        .iter()
        .map(|r| vec![t(&r["code"]), t(&r["count"])])
        .collect();
    s.push_str("<h2>Refusals by reason</h2>");
    s.push_str(&table(
        "Refused requests by error code",
        &["reason", "count"],
        &refusals,
        "No refusal yet.",
    ));
    let ups: Vec<Vec<String>> = arr(&d["upstreams"])
        .iter()
        .map(|u| {
            let ok = u["healthy"].as_bool().unwrap_or(false);
            vec![
                t(&u["name"]),
                t(&u["target"]),
                format!(
                    "<span class=\"{}\">{}</span>",
                    if ok { "good" } else { "bad" },
                    if ok { "healthy" } else { "down" }
                ),
            ]
        })
        .collect();
    s.push_str("<h2>Upstreams</h2>");
    s.push_str(&table(
        "Upstream targets",
        &["upstream", "target", "health"],
        &ups,
        "No upstream.",
    ));
    let routes: Vec<Vec<String>> = arr(&d["routes"])
        .iter()
        .map(|r| vec![t(&r["route"]), t(&r["requests"]), t(&r["refused"])])
        .collect();
    s.push_str("<h2>Traffic by route</h2>");
    s.push_str(&table(
        "Requests per route",
        &["route", "requests", "refused"],
        &routes,
        "No traffic yet.",
    ));
    s
}

fn stop_cell(user: &User, scope: &str, stop: Option<&Value>) -> String {
    match stop {
        Some(st) => {
            let mut s = format!(
                "<span class=\"bad state\" data-testid=\"stopped-{}\">stopped</span> <small>by {} — {}</small>",
                esc(scope),
                t(&st["by"]),
                t(&st["reason"])
            );
            if user.can.operate {
                s.push_str(&form(
                    user,
                    "/console/resume",
                    &format!(
                        "<input type=\"hidden\" name=\"scope\" value=\"{}\">{}",
                        esc(scope),
                        input(&format!("reason-{scope}"), "Reason", "text", "", false, "why resume")
                            .replace(&format!("name=\"reason-{scope}\""), "name=\"reason\"")
                    ),
                    "Resume",
                    "inline",
                    None,
                ));
            }
            s
        }
        None => {
            let mut s = format!(
                "<span class=\"good state\" data-testid=\"running-{}\">running</span>",
                esc(scope)
            );
            if user.can.operate {
                let fields = format!(
                    "<input type=\"hidden\" name=\"scope\" value=\"{}\">\
                     <label>Reason <input name=\"reason\" type=\"text\" required></label>\
                     <label>For <input name=\"for\" type=\"text\" placeholder=\"e.g. 30m (optional)\" size=\"8\"></label>\
                     <label class=\"check\"><input type=\"checkbox\" name=\"cut_streams\" value=\"true\"> end streams now</label>",
                    esc(scope)
                );
                s.push_str(&form(
                    user,
                    "/console/stop",
                    &fields,
                    "Stop",
                    "inline danger",
                    Some(&format!("Stop {scope}? Clients get 503 until you resume.")),
                ));
            }
            s
        }
    }
}

/// Routes and models with their stop switches and pinned model versions.
pub fn routes(user: &User, d: &Value) -> String {
    let stops = arr(&d["stops"]);
    let stop_of = |scope: &str| stops.iter().find(|s| s["scope"] == scope);
    let mut s = String::from("<h2>Whole gateway</h2>");
    s.push_str(&format!(
        "<div class=\"card\">{}</div>",
        stop_cell(user, "gateway", stop_of("gateway"))
    ));
    let rows: Vec<Vec<String>> = arr(&d["routes"])
        .iter()
        .map(|r| {
            let name = text(&r["name"]);
            let scope = format!("route:{name}");
            let pin = if r["model_version"].is_null() {
                "–".to_owned()
            } else {
                format!("{} <code>{}</code>", t(&r["model_version"]), t(&r["model_digest"]))
            };
            vec![
                format!("<strong>{}</strong>", esc(&name)),
                t(&r["protocol"]),
                format!("<code>{}</code>", t(&r["path"])),
                t(&r["upstream"]),
                t(&r["tenant"]),
                pin,
                stop_cell(user, &scope, stop_of(&scope)),
            ]
        })
        .collect();
    s.push_str("<h2>Routes</h2>");
    s.push_str(&table(
        "Routes, their pinned model versions and stop switches",
        &[
            "route",
            "protocol",
            "path",
            "upstream",
            "tenant",
            "pinned model",
            "state",
        ],
        &rows,
        "No route is configured.",
    ));
    let models: Vec<Vec<String>> = arr(&d["models"])
        .iter()
        .map(|m| {
            let scope = format!("model:{}", text(m));
            vec![t(m), stop_cell(user, &scope, stop_of(&scope))]
        })
        .collect();
    s.push_str("<h2>Models</h2>");
    s.push_str(&table(
        "Models the roles name, and models stopped",
        &["model", "state"],
        &models,
        "No role names a model; stop one by name below.",
    ));
    let tenants: Vec<Vec<String>> = arr(&d["tenants"])
        .iter()
        .map(|m| {
            let scope = format!("tenant:{}", text(m));
            vec![t(m), stop_cell(user, &scope, stop_of(&scope))]
        })
        .collect();
    s.push_str("<h2>Tenants</h2>");
    s.push_str(&table(
        "Tenants of routes",
        &["tenant", "state"],
        &tenants,
        "No route belongs to a tenant.",
    ));
    let other: Vec<Vec<String>> = stops
        .iter()
        .filter(|st| st["scope"].as_str().is_some_and(|s| s.starts_with("principal:")))
        .map(|st| {
            vec![
                t(&st["scope"]),
                t(&st["by"]),
                t(&st["reason"]),
                stop_cell(user, &text(&st["scope"]), Some(st)),
            ]
        })
        .collect();
    s.push_str("<h2>Blocked callers</h2>");
    s.push_str(&table(
        "Callers blocked by reviewers",
        &["caller", "by", "why", "state"],
        &other,
        "No caller is blocked.",
    ));
    if user.can.operate {
        let fields = format!(
            "{}{}{}{}",
            input(
                "scope",
                "Scope",
                "text",
                "",
                true,
                "model:NAME, tenant:NAME or principal:SUBJECT"
            ),
            input("reason", "Reason", "text", "", true, ""),
            input("for", "For (optional)", "text", "", false, "30m"),
            checkbox("cut_streams", "End streams in flight now")
        );
        s.push_str("<h2>Stop something else</h2>");
        s.push_str(&form(
            user,
            "/console/stop",
            &fields,
            "Stop",
            "card danger",
            Some("Stop it? Clients get 503 until you resume."),
        ));
    }
    s
}

fn reasons(item: &Value) -> String {
    arr(&item["reasons"])
        .iter()
        .map(|r| {
            format!(
                "{} <small>{:.2}</small>",
                t(&r["kind"]),
                r["score"].as_f64().unwrap_or(0.0)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The review queue.
pub fn reviews(user: &User, items: &Value, status: &str) -> String {
    let _ = user;
    let tabs: String = [
        "pending",
        "approved",
        "rejected",
        "expired",
        "acceptable",
        "unacceptable",
        "all",
    ]
    .iter()
    .map(|st| {
        let current = if *st == status { " aria-current=\"page\"" } else { "" };
        format!("<a href=\"/console/reviews?status={st}\"{current}>{st}</a>")
    })
    .collect::<Vec<_>>()
    .join(" ");
    let rows: Vec<Vec<String>> = arr(items)
        .iter()
        .map(|i| {
            vec![
                format!(
                    "<a href=\"/console/reviews/{}\" data-testid=\"item\">{}</a>",
                    t(&i["id"]),
                    t(&i["created"])
                ),
                if i["mode"] == "hold" {
                    "<strong>held</strong>".into()
                } else {
                    "after the fact".into()
                },
                t(&i["status"]),
                t(&i["route"]),
                t(&i["principal"]),
                reasons(i),
                format!("<span class=\"preview\">{}</span>", t(&i["preview"])),
            ]
        })
        .collect();
    format!(
        "<p class=\"tabs\">{tabs}</p>{}",
        table(
            "Review items, newest first",
            &[
                "created",
                "mode",
                "status",
                "route",
                "caller",
                "why",
                "request (redacted)"
            ],
            &rows,
            "Nothing to review.",
        )
    )
}

/// One review item, with the decision form.
pub fn review(user: &User, i: &Value) -> String {
    let mut s = String::from("<dl class=\"facts\">");
    for (label, key) in [
        ("Status", "status"),
        ("Mode", "mode"),
        ("Created", "created"),
        ("Route", "route"),
        ("Model", "model"),
        ("Caller", "principal"),
        ("Key", "key_id"),
        ("Tenant", "tenant"),
        ("Request id", "request_id"),
        ("Node", "node"),
    ] {
        s.push_str(&format!(
            "<dt>{label}</dt><dd data-testid=\"{key}\">{}</dd>",
            t(&i[key])
        ));
    }
    s.push_str(&format!("<dt>Why</dt><dd>{}</dd>", reasons(i)));
    let findings: Vec<String> = arr(&i["findings"]).iter().map(t).collect();
    s.push_str(&format!("<dt>All findings</dt><dd>{}</dd></dl>", findings.join(", ")));
    s.push_str(&format!(
        "<h2>Request (redacted)</h2><pre class=\"payload\" data-testid=\"preview\">{}</pre>",
        t(&i["preview"])
    ));
    match i.get("payload") {
        Some(p) if p["erased"] == true => s.push_str("<p class=\"hint\">The subject's data was erased.</p>"),
        Some(p) if !p.is_null() => {
            s.push_str(&format!(
                "<h2>Captured payload</h2><h3>Request</h3><pre class=\"payload\" data-testid=\"payload-request\">{}</pre>",
                t(&p["request"])
            ));
            if p["response"].as_str().is_some_and(|r| !r.is_empty()) {
                s.push_str(&format!(
                    "<h3>Response</h3><pre class=\"payload\">{}</pre>",
                    t(&p["response"])
                ));
            }
        }
        _ if i["payload_captured"] == true => {
            s.push_str("<p class=\"hint\">A payload was captured; opening it needs the audit-read permission.</p>");
        }
        _ => {}
    }
    if i["status"] == "pending" && user.can.review {
        let id = text(&i["id"]);
        let options: &[(&str, &str)] = if i["mode"] == "hold" {
            &[
                ("approve", "Approve: send it to the model"),
                ("reject", "Reject: refuse the client"),
            ]
        } else {
            &[("acceptable", "Acceptable"), ("unacceptable", "Not acceptable")]
        };
        let fields = format!(
            "{}{}{}",
            select("decision", "Decision", options),
            input("reason", "Reason (required to refuse or block)", "text", "", false, ""),
            checkbox("block_principal", "Also block this caller")
        );
        s.push_str("<h2>Decide</h2>");
        s.push_str(&form(
            user,
            &format!("/console/reviews/{id}"),
            &fields,
            "Record decision",
            "card",
            None,
        ));
    } else if !i["decided_by"].is_null() {
        s.push_str(&format!(
            "<p>Decided by {} at {}: {}</p>",
            t(&i["decided_by"]),
            t(&i["decided_at"]),
            t(&i["note"])
        ));
    }
    if user.can.operate {
        s.push_str(&format!(
            "<p><a href=\"/console/incidents?source=review:{}\">Open a serious-incident record from this item</a></p>",
            t(&i["id"])
        ));
    }
    s
}

/// API keys: list, create (the new key shown once), revoke, expire.
pub fn keys(user: &User, d: &Value, created: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(k) = created {
        s.push_str(&format!(
            "<div class=\"card secret\" role=\"alert\"><p>The new key — copy it now, it is not shown again:</p>\
             <pre data-testid=\"new-key\">{}</pre></div>",
            esc(k)
        ));
    }
    let rows: Vec<Vec<String>> = arr(&d["keys"])
        .iter()
        .map(|k| {
            let id = text(&k["id"]);
            let mut actions = String::new();
            if user.can.admin && k["status"] == "active" {
                actions.push_str(&form(
                    user,
                    "/console/keys/revoke",
                    &format!("<input type=\"hidden\" name=\"id\" value=\"{}\">", esc(&id)),
                    "Revoke",
                    "inline danger",
                    Some(&format!("Revoke key {id}? Requests with it are refused at once.")),
                ));
                actions.push_str(&form(
                    user,
                    "/console/keys/expire",
                    &format!(
                        "<input type=\"hidden\" name=\"id\" value=\"{}\"><label>in <input name=\"in\" size=\"6\" placeholder=\"24h\" required></label>",
                        esc(&id)
                    ),
                    "Set expiry",
                    "inline",
                    None,
                ));
            }
            vec![
                format!("<code data-testid=\"key-{}\">{}</code>", esc(&id), esc(&id)),
                t(&k["subject"]),
                t(&k["tenant"]),
                arr(&k["roles"]).iter().map(t).collect::<Vec<_>>().join(", "),
                t(&k["created_at"]),
                t(&k["expires_at"]),
                format!("<span data-testid=\"status-{}\">{}</span>", esc(&id), t(&k["status"])),
                actions,
            ]
        })
        .collect();
    s.push_str(&table(
        "API keys (never secrets or hashes)",
        &["id", "subject", "tenant", "roles", "created", "expires", "status", ""],
        &rows,
        "No key in the store.",
    ));
    if user.can.admin {
        let roles: Vec<(&str, &str)> = arr(&d["roles"])
            .iter()
            .filter_map(Value::as_str)
            .map(|r| (r, r))
            .collect();
        let fields = format!(
            "{}{}{}{}{}",
            input("subject", "Who the key is for", "text", "", true, "billing-service"),
            select("role", "Role", &roles),
            input("tenant", "Tenant (optional)", "text", "", false, ""),
            input("expires_in", "Expires in (optional)", "text", "", false, "90d"),
            input("note", "Note (optional)", "text", "", false, "")
        );
        s.push_str("<h2>Create a key</h2>");
        s.push_str(&form(user, "/console/keys/create", &fields, "Create key", "card", None));
    }
    s
}

/// Recent alerts from the detectors.
pub fn alerts(user: &User, d: &Value) -> String {
    let rows: Vec<Vec<String>> = arr(&d["alerts"])
        .iter()
        .map(|a| {
            let mut open = String::new();
            if user.can.operate {
                open = format!(
                    "<a href=\"/console/incidents?source=alert:{}\">open incident</a>",
                    esc(&format!("{}:{}", text(&a["detector"]), text(&a["request_id"])))
                );
            }
            vec![
                t(&a["time"]),
                t(&a["detector"]),
                t(&a["action"]),
                format!("{:.2}", a["score"].as_f64().unwrap_or(0.0)),
                t(&a["route"]),
                t(&a["key_id"]),
                t(&a["reason"]),
                open,
            ]
        })
        .collect();
    table(
        "Detector alerts on this node, newest first",
        &["time", "detector", "action", "score", "route", "key", "why", ""],
        &rows,
        "No alert since this node started.",
    )
}

/// The audit trail: search, verify, subject export and erasure.
pub fn audit(user: &User, d: &Value) -> String {
    let q = &d["query"];
    let mut s = String::from("<form method=\"get\" action=\"/console/audit\" class=\"card search\">");
    s.push_str(&input(
        "from",
        "From",
        "text",
        q["from"].as_str().unwrap_or(""),
        false,
        "2026-12-07T00:00:00Z",
    ));
    s.push_str(&input(
        "to",
        "To",
        "text",
        q["to"].as_str().unwrap_or(""),
        false,
        "2026-12-08T00:00:00Z",
    ));
    s.push_str(&input(
        "principal",
        "Caller (subject or key id)",
        "text",
        q["principal"].as_str().unwrap_or(""),
        false,
        "",
    ));
    s.push_str(&input(
        "route",
        "Route",
        "text",
        q["route"].as_str().unwrap_or(""),
        false,
        "",
    ));
    s.push_str(&input(
        "decision",
        "Decision",
        "text",
        q["decision"].as_str().unwrap_or(""),
        false,
        "block",
    ));
    s.push_str("<button type=\"submit\">Search</button></form>");
    if let Some(v) = d.get("verify") {
        let ok = v["ok"].as_bool().unwrap_or(false);
        s.push_str(&format!(
            "<p class=\"flash {}\" data-testid=\"verify\">Chain verification: {}</p>",
            if ok { "ok" } else { "err" },
            t(&v["detail"])
        ));
    }
    s.push_str(&form(
        user,
        "/console/audit/verify",
        "",
        "Verify the trail now",
        "inline",
        None,
    ));
    let rows: Vec<Vec<String>> = arr(&d["records"])
        .iter()
        .map(|r| {
            let kinds: Vec<String> = r["findings"]
                .as_object()
                .map(|o| o.keys().map(|k| esc(k)).collect())
                .unwrap_or_default();
            let incident = if user.can.operate && r["type"] == "exchange" {
                format!(
                    "<a href=\"/console/incidents?source=exchange:{}\">open incident</a>",
                    esc(&crate::form::encode(&text(&r["request_id"])))
                )
            } else {
                String::new()
            };
            vec![
                t(&r["time"]),
                t(&r["type"]),
                t(&r["route"]),
                t(&r["principal"]),
                t(&r["decision"]),
                t(&r["status"]),
                kinds.join(", "),
                format!("<code>{}</code>", t(&r["request_id"])),
                incident,
            ]
        })
        .collect();
    s.push_str(&format!(
        "<h2>Records <small data-testid=\"count\">{}</small></h2>",
        t(&d["matched"])
    ));
    s.push_str(&table(
        "Matching records, newest first (at most 200)",
        &[
            "time",
            "type",
            "route",
            "caller",
            "decision",
            "status",
            "findings",
            "request id",
            "",
        ],
        &rows,
        "No record matches.",
    ));
    if user.can.audit_read || user.can.admin {
        s.push_str("<h2>Data subject requests (GDPR Art. 15 and 17)</h2><div class=\"row\">");
        if user.can.audit_read {
            s.push_str(&form(
                user,
                "/console/audit/export",
                &input("subject", "Subject to export", "text", "", true, "user id"),
                "Export",
                "card",
                None,
            ));
        }
        if user.can.admin {
            s.push_str(&form(
                user,
                "/console/audit/erase",
                &input("subject", "Subject to erase", "text", "", true, "user id"),
                "Erase",
                "card danger",
                Some("Erase this subject's payloads for good?"),
            ));
        }
        s.push_str("</div>");
    }
    if let Some(e) = d.get("export") {
        s.push_str(&format!(
            "<h2>Export</h2><p data-testid=\"export-count\">{} records for pseudonym <code>{}</code></p><pre class=\"payload\" data-testid=\"export\">{}</pre>",
            arr(&e["records"]).len(),
            t(&e["pseudonym"]),
            esc(&serde_json::to_string_pretty(e).unwrap_or_default())
        ));
    }
    s
}

/// Serious-incident records (AI Act Art. 73) with their deadlines.
pub fn incidents(user: &User, d: &Value, source: Option<&str>) -> String {
    let rows: Vec<Vec<String>> = arr(&d["incidents"])
        .iter()
        .map(|i| {
            let id = text(&i["id"]);
            let state = if !i["reported"].is_null() {
                format!("reported {}", t(&i["reported"]))
            } else if !i["closed"].is_null() {
                format!("closed {}", t(&i["closed"]))
            } else {
                let left = i["seconds_left"].as_i64().unwrap_or(0);
                if left < 0 {
                    "<strong class=\"bad\">report overdue</strong>".to_owned()
                } else {
                    format!(
                        "<span data-testid=\"left-{}\">{} days left</span>",
                        esc(&id),
                        (left + 86_399) / 86_400
                    )
                }
            };
            let mut actions = String::new();
            if user.can.operate && i["reported"].is_null() && i["closed"].is_null() {
                let hidden = format!("<input type=\"hidden\" name=\"id\" value=\"{}\">", esc(&id));
                actions.push_str(&form(
                    user,
                    "/console/incidents/reported",
                    &hidden,
                    "Mark reported",
                    "inline",
                    None,
                ));
                actions.push_str(&form(
                    user,
                    "/console/incidents/closed",
                    &hidden,
                    "Close",
                    "inline",
                    None,
                ));
            }
            vec![
                t(&i["title"]),
                t(&i["severity"]),
                t(&i["source"]),
                t(&i["aware"]),
                t(&i["due"]),
                state,
                actions,
            ]
        })
        .collect();
    let mut s = table(
        "Serious incidents and their reporting deadlines (15 days; 10 for a death; 2 for widespread or critical-infrastructure harm)",
        &[
            "title",
            "severity",
            "opened from",
            "aware since",
            "report due",
            "state",
            "",
        ],
        &rows,
        "No incident recorded.",
    );
    if user.can.operate {
        let fields = format!(
            "{}{}{}{}",
            input("title", "What happened", "text", "", true, ""),
            select(
                "severity",
                "Severity",
                &[
                    ("serious", "Serious incident (report within 15 days)"),
                    ("death", "Death of a person (10 days)"),
                    (
                        "widespread",
                        "Widespread infringement or critical infrastructure (2 days)"
                    ),
                ]
            ),
            input(
                "source",
                "Opened from",
                "text",
                source.unwrap_or(""),
                false,
                "alert, exchange or review id"
            ),
            input("aware", "Became aware (optional, RFC 3339)", "text", "", false, "now")
        );
        s.push_str("<h2>Open an incident</h2>");
        s.push_str(&form(
            user,
            "/console/incidents/open",
            &fields,
            "Open incident",
            "card",
            None,
        ));
    }
    s
}
