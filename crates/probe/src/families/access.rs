//! Access: who may call the endpoint. No credential, a malformed one, forged JWTs
//! (`alg: none`, an HMAC signed with a guessable secret — the RS/HS key-confusion
//! shape —, an expired token with a made-up signature), the key in the query string,
//! a model the key was not given, and admin paths reached through the data plane.

use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::{Ctx, owasp, status_text};
use crate::report::{Case, Severity, Verdict};

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn now() -> i64 {
    rampart_identity::time::now()
}

/// A token with `header` and `claims`, signed by `sign` over `header.claims`.
fn token(header: &serde_json::Value, claims: &serde_json::Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

fn admin_claims(exp: i64) -> serde_json::Value {
    json!({"sub": "admin", "iss": "https://probe.invalid", "aud": "rampart", "roles": ["admin", "infer"],
           "iat": now(), "exp": exp})
}

/// A refusal is what an unauthenticated caller must get; an answer is a finding.
async fn refused_without(ctx: &Ctx, case: Case, header: Option<(String, String)>) -> Case {
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    headers.extend(header);
    let body = Bytes::from(ctx.valid_body("Hello").to_string());
    let Some(a) = ctx.prober.send(Method::POST, &ctx.path(), &headers, body).await else {
        return case.not_run();
    };
    match a.status {
        Some(200..=299) => case.judge(Verdict::Fail, format!("answered {} to it", status_text(&a)), &[&a]),
        Some(401 | 403) => case.judge(Verdict::Pass, format!("refused: {}", status_text(&a)), &[&a]),
        Some(_) => case.judge(Verdict::Pass, format!("not answered: {}", status_text(&a)), &[&a]),
        None => case.judge(Verdict::Inconclusive, status_text(&a), &[&a]),
    }
}

pub async fn run(ctx: &Ctx) -> Vec<Case> {
    let mut out = Vec::new();
    // The probe's own request, to know whether the endpoint answers at all.
    let baseline = Case::new(
        "access.baseline",
        "access",
        "The probe's own request is answered",
        Severity::Info,
        &[],
    );
    out.push(match ctx.infer(&ctx.valid_body("Hello"), true).await {
        None => baseline.not_run(),
        Some(a) if a.ok() => baseline.judge(
            Verdict::Pass,
            format!("{} with the given credential", status_text(&a)),
            &[&a],
        ),
        Some(a) => baseline.judge(
            Verdict::Inconclusive,
            format!(
                "{}: later verdicts may say more about this than about defences",
                status_text(&a)
            ),
            &[&a],
        ),
    });
    out.push(
        refused_without(
            ctx,
            Case::new(
                "access.no_credential",
                "access",
                "A request without any credential is answered",
                Severity::High,
                &[owasp::API2],
            ),
            None,
        )
        .await,
    );
    out.push(
        refused_without(
            ctx,
            Case::new(
                "access.malformed_credential",
                "access",
                "A malformed bearer credential is accepted",
                Severity::High,
                &[owasp::API2],
            ),
            Some(("authorization".into(), "Bearer not-a-real-key-0000".into())),
        )
        .await,
    );
    let none = token(
        &json!({"alg": "none", "typ": "JWT"}),
        &admin_claims(now() + 3600),
        |_| Vec::new(),
    );
    out.push(
        refused_without(
            ctx,
            Case::new(
                "access.jwt_alg_none",
                "access",
                "A JWT with `alg: none` (no signature) is accepted",
                Severity::Critical,
                &[owasp::API2],
            ),
            Some(("authorization".into(), format!("Bearer {none}"))),
        )
        .await,
    );
    let hs = token(
        &json!({"alg": "HS256", "typ": "JWT"}),
        &admin_claims(now() + 3600),
        |input| {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
            ring::hmac::sign(&key, input).as_ref().to_vec()
        },
    );
    out.push(
        refused_without(
            ctx,
            Case::new(
                "access.jwt_weak_hmac",
                "access",
                "A JWT signed with HMAC and a guessable secret (the key-confusion shape) is accepted",
                Severity::Critical,
                &[owasp::API2],
            ),
            Some(("authorization".into(), format!("Bearer {hs}"))),
        )
        .await,
    );
    let expired = token(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "probe"}),
        &admin_claims(now() - 86_400),
        |_| vec![7u8; 256],
    );
    out.push(
        refused_without(
            ctx,
            Case::new(
                "access.jwt_expired_unsigned",
                "access",
                "An expired JWT with a made-up signature is accepted",
                Severity::Critical,
                &[owasp::API2],
            ),
            Some(("authorization".into(), format!("Bearer {expired}"))),
        )
        .await,
    );
    // The key in the URL: it ends up in access logs, proxies and browser history.
    let query = Case::new(
        "access.key_in_query",
        "access",
        "The API key is accepted in the query string",
        Severity::Medium,
        &[owasp::API2, owasp::API8],
    );
    out.push(match &ctx.prober.key {
        None => query.skip("needs --key"),
        Some(key) => {
            let path = format!("{}?api_key={}&key={}", ctx.path(), key, key);
            let body = Bytes::from(ctx.valid_body("Hello").to_string());
            match ctx
                .prober
                .send(
                    Method::POST,
                    &path,
                    &[("content-type".into(), "application/json".into())],
                    body,
                )
                .await
            {
                None => query.not_run(),
                Some(a) if a.ok() => query.judge(
                    Verdict::Fail,
                    format!("{} with the key only in the URL", status_text(&a)),
                    &[&a],
                ),
                Some(a) => query.judge(Verdict::Pass, format!("refused: {}", status_text(&a)), &[&a]),
            }
        }
    });
    // Another model than the one named: is the key scoped?
    let other = Case::new(
        "access.other_model",
        "access",
        "The key may use a model it was not meant for",
        Severity::Low,
        &[owasp::API1],
    );
    out.push(match (&ctx.prober.key, &ctx.model, ctx.protocol) {
        (Some(_), Some(_), crate::Protocol::Openai) => {
            let body =
                json!({"model": "probe-other-tenants-model", "messages": [{"role": "user", "content": "Hello"}]});
            match ctx.infer(&body, true).await {
                None => other.not_run(),
                Some(a) if a.ok() => other.judge(
                    Verdict::Fail,
                    format!(
                        "{} for a model name the probe made up: the key is not scoped to models",
                        status_text(&a)
                    ),
                    &[&a],
                ),
                Some(a) => other.judge(Verdict::Pass, format!("refused: {}", status_text(&a)), &[&a]),
            }
        }
        _ => other.skip("needs --key and --model on an OpenAI endpoint"),
    });
    // Admin paths through the data plane.
    let admin = Case::new(
        "access.admin_paths",
        "access",
        "Administrative paths answer on the data-plane address",
        Severity::High,
        &[owasp::API5, owasp::API8],
    );
    let mut answers = Vec::new();
    let mut open = Vec::new();
    let origin = ctx.prober.origin();
    for path in [
        "/admin/reload",
        "/admin/stops",
        "/metrics",
        "/console/",
        "/admin/audit/erase",
    ] {
        let url = format!("{origin}{path}");
        let Some(a) = ctx.prober.send_url(Method::GET, &url, &[], Bytes::new()).await else {
            break;
        };
        if a.ok() {
            open.push(path);
        }
        answers.push(a);
    }
    let refs: Vec<&_> = answers.iter().collect();
    out.push(if answers.len() < 5 {
        admin.not_run()
    } else if open.is_empty() {
        admin.judge(Verdict::Pass, "none of /admin/*, /metrics, /console/ answered 2xx", &[])
    } else {
        let shown: Vec<&_> = refs.into_iter().filter(|a| a.ok()).collect();
        admin.judge(Verdict::Fail, format!("answered 2xx: {}", open.join(", ")), &shown)
    });
    out
}
