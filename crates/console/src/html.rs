//! The page layout and escaping. Every dynamic value goes through [`esc`].

use crate::session::{Can, Role};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as short display text (strings unquoted, null as a dash).
pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "–".into(),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        other => other.to_string(),
    }
}

/// `text` escaped.
pub fn t(v: &serde_json::Value) -> String {
    esc(&text(v))
}

/// Who is signed in, as pages show it.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub can: Can,
    pub csrf: String,
}

/// A message shown once at the top of a page (after an action).
#[derive(Debug, Clone)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
}

pub const NAV: [(&str, &str); 7] = [
    ("overview", "Overview"),
    ("routes", "Routes & models"),
    ("reviews", "Review queue"),
    ("keys", "API keys"),
    ("alerts", "Alerts"),
    ("audit", "Audit trail"),
    ("incidents", "Incidents"),
];

/// The hidden CSRF field every form carries.
pub fn csrf(user: &User) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(&user.csrf))
}

/// A whole page.
pub fn page(title: &str, active: &str, user: Option<&User>, flash: Option<&Flash>, body: &str) -> String {
    let mut nav = String::new();
    if let Some(u) = user {
        nav.push_str("<nav aria-label=\"Console\"><ul>");
        for (slug, label) in NAV {
            let href = if slug == "overview" {
                "/console/".to_owned()
            } else {
                format!("/console/{slug}")
            };
            let current = if slug == active { " aria-current=\"page\"" } else { "" };
            nav.push_str(&format!("<li><a href=\"{href}\"{current}>{label}</a></li>"));
        }
        nav.push_str("</ul></nav>");
        nav.push_str(&format!(
            "<div class=\"who\"><span data-testid=\"user\">{}</span> <span class=\"role\">{}</span>\
             <form method=\"post\" action=\"/console/logout\">{}<button type=\"submit\" class=\"link\">Sign out</button></form></div>",
            esc(&u.name),
            u.role.as_str(),
            csrf(u)
        ));
    }
    let flash = flash
        .map(|f| {
            format!(
                "<p class=\"flash {}\" role=\"status\" data-testid=\"flash\">{}</p>",
                if f.ok { "ok" } else { "err" },
                esc(&f.text)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Rampart console</title>\
         <link rel=\"icon\" href=\"/console/static/favicon.svg\" type=\"image/svg+xml\">\
         <link rel=\"stylesheet\" href=\"/console/static/console.css\">\
         <script src=\"/console/static/console.js\" defer></script></head>\
         <body><a class=\"skip\" href=\"#main\">Skip to content</a>\
         <header><a class=\"brand\" href=\"/console/\">Rampart</a>{nav}</header>\
         <main id=\"main\"><h1>{title}</h1>{flash}{body}</main></body></html>",
        title = esc(title),
    )
}

/// A table: headers and rows of already-escaped cells.
pub fn table(caption: &str, headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", esc(empty));
    }
    let mut s = format!(
        "<div class=\"scroll\"><table><caption>{}</caption><thead><tr>",
        esc(caption)
    );
    for h in headers {
        s.push_str(&format!("<th scope=\"col\">{}</th>", esc(h)));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            // The header again, for the phone layout (cells stacked with their names).
            let label = headers.get(i).copied().unwrap_or("");
            s.push_str(&format!("<td data-label=\"{}\">{c}</td>", esc(label)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        let nasty = "<script>alert('x')</script>\"&\u{0007}";
        let e = esc(nasty);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"') && !e.contains('\''));
        assert!(e.contains("&lt;script&gt;") && e.contains("&amp;") && e.contains('\u{FFFD}'));
        assert_eq!(text(&serde_json::Value::Null), "–");
    }
}
