//! Input handling: what reaches the model when the body is wrong. Malformed JSON, an
//! oversized body, deep nesting, duplicate keys (two parsers, two readings), protocol
//! violations, and JSON sent as another media type. A refusal (4xx) passes; an answer
//! to garbage, a server error or no answer at all is a finding.

use bytes::Bytes;
use http::Method;
use serde_json::json;

use super::{Ctx, owasp, status_text};
use crate::Protocol;
use crate::client::Answer;
use crate::report::{Case, Severity, Verdict};

/// Sends a raw body with the probe's credential.
async fn raw(ctx: &Ctx, body: Vec<u8>, content_type: &str) -> Option<Answer> {
    let mut headers = vec![("content-type".to_owned(), content_type.to_owned())];
    headers.extend(ctx.prober.auth());
    ctx.prober
        .send(Method::POST, &ctx.path(), &headers, Bytes::from(body))
        .await
}

/// 4xx passes; 2xx is `accepted` severity; 5xx or nothing is `crashed` severity.
fn judge(case: Case, a: Option<Answer>, accepted: Severity, crashed: Severity) -> Case {
    let Some(a) = a else { return case.not_run() };
    match a.status {
        Some(400..=499) => case.judge(Verdict::Pass, format!("refused: {}", status_text(&a)), &[&a]),
        Some(200..=299) => {
            let mut c = case.judge(Verdict::Fail, format!("accepted: {}", status_text(&a)), &[&a]);
            c.severity = accepted;
            c
        }
        _ => {
            let mut c = case.judge(
                Verdict::Fail,
                format!("{}: the server failed instead of refusing", status_text(&a)),
                &[&a],
            );
            c.severity = crashed;
            c
        }
    }
}

pub async fn run(ctx: &Ctx) -> Vec<Case> {
    let mut out = Vec::new();
    let valid = ctx.valid_body("Hello").to_string();

    let malformed = valid.as_bytes()[..valid.len() / 2].to_vec();
    out.push(judge(
        Case::new(
            "input.malformed_json",
            "input",
            "Malformed JSON is not refused",
            Severity::Low,
            &[owasp::API8],
        ),
        raw(ctx, malformed, "application/json").await,
        Severity::Low,
        Severity::Medium,
    ));

    // 4 MiB of text where a prompt goes: a body limit must stop it before the model.
    let big = ctx.valid_body(&"A".repeat(4 * 1024 * 1024)).to_string().into_bytes();
    out.push(judge(
        Case::new(
            "input.oversized_body",
            "input",
            "A 4 MiB body is accepted",
            Severity::Medium,
            &[owasp::API4],
        ),
        raw(ctx, big, "application/json").await,
        Severity::Medium,
        Severity::Medium,
    ));

    // 100 000 nested arrays: a recursive parser can exhaust its stack.
    let depth = 100_000;
    let mut nested = String::with_capacity(depth * 2 + 64);
    nested.push_str("{\"model\":\"probe-model\",\"x\":");
    nested.push_str(&"[".repeat(depth));
    nested.push_str(&"]".repeat(depth));
    nested.push('}');
    out.push(judge(
        Case::new(
            "input.deep_nesting",
            "input",
            "JSON nested 100 000 deep is accepted",
            Severity::Medium,
            &[owasp::API4],
        ),
        raw(ctx, nested.into_bytes(), "application/json").await,
        Severity::Medium,
        Severity::High,
    ));

    // The same key twice: a gateway reading the first and a model reading the last
    // disagree about what was asked.
    let dup = match ctx.protocol {
        Protocol::Openai => format!(
            "{{\"model\":\"{m}\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}],\"model\":\"{m}-other\"}}",
            m = ctx.model()
        ),
        Protocol::Kserve => "{\"inputs\":[{\"name\":\"input-0\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[5.1,3.5,1.4,0.2]}],\"inputs\":[]}".into(),
        Protocol::Json => "{\"input\":\"Hello\",\"input\":\"Goodbye\"}".into(),
    };
    out.push(judge(
        Case::new(
            "input.duplicate_keys",
            "input",
            "A body naming one key twice is accepted (parsers disagree on which wins)",
            Severity::Medium,
            &[owasp::API8],
        ),
        raw(ctx, dup.into_bytes(), "application/json").await,
        Severity::Medium,
        Severity::Medium,
    ));

    let violation = match ctx.protocol {
        Protocol::Openai => json!({"model": ctx.model(), "messages": "not a list", "max_tokens": -5}),
        Protocol::Kserve => {
            json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0]}]})
        }
        Protocol::Json => json!(["not", "an", "object"]),
    };
    out.push(judge(
        Case::new(
            "input.protocol_violation",
            "input",
            "A request that breaks the protocol (wrong types, shape and data disagreeing) is accepted",
            Severity::Low,
            &[owasp::API8],
        ),
        raw(ctx, violation.to_string().into_bytes(), "application/json").await,
        Severity::Low,
        Severity::Medium,
    ));

    out.push(judge(
        Case::new(
            "input.wrong_media_type",
            "input",
            "JSON sent as text/plain is read anyway",
            Severity::Low,
            &[owasp::API8],
        ),
        raw(ctx, valid.into_bytes(), "text/plain").await,
        Severity::Low,
        Severity::Low,
    ));
    out
}
