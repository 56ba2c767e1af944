//! Output exposure: what answers give away about the model. On OpenAI endpoints, token
//! log-probabilities (and how many alternatives) and `logit_bias` together with
//! logprobs — the pair that reads logits out (Carlini et al. 2024). On classifiers, the
//! confidences: their precision, whether they are noisy, and how many queries an
//! equation-solving extraction would need (Tramèr et al. 2016: d + 1 queries per class
//! for a logistic model with d features, when confidences come at full precision).

use serde_json::{Value, json};

use super::{Ctx, owasp, status_text};
use crate::Protocol;
use crate::report::{Case, Severity, Verdict};

/// The most alternatives per token in an OpenAI answer's logprobs.
fn alternatives(v: &Value) -> usize {
    v["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| c["logprobs"]["content"].as_array().into_iter().flatten())
        .map(|t| t["top_logprobs"].as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0)
}

fn has_logprobs(v: &Value) -> bool {
    v["choices"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["logprobs"]["content"].as_array().is_some_and(|a| !a.is_empty()))
}

/// Decimal digits a float was given with.
fn digits(x: f64) -> usize {
    let s = format!("{x}");
    s.split_once('.').map_or(0, |(_, frac)| frac.len())
}

/// Every float in a KServe answer's outputs.
fn kserve_floats(v: &Value) -> Vec<f64> {
    v["outputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["datatype"].as_str().is_some_and(|d| d.starts_with("FP")))
        .flat_map(|o| o["data"].as_array().into_iter().flatten())
        .filter_map(Value::as_f64)
        .collect()
}

pub async fn run(ctx: &Ctx) -> Vec<Case> {
    match ctx.protocol {
        Protocol::Openai => openai(ctx).await,
        Protocol::Kserve => kserve(ctx).await,
        Protocol::Json => vec![
            Case::new(
                "exposure.logprobs",
                "exposure",
                "Token log-probabilities are released",
                Severity::Medium,
                &[owasp::LLM10, owasp::LLM02],
            )
            .skip("the JSON protocol names no confidence field to check"),
        ],
    }
}

async fn openai(ctx: &Ctx) -> Vec<Case> {
    let mut out = Vec::new();
    let case = Case::new(
        "exposure.logprobs",
        "exposure",
        "Token log-probabilities with many alternatives are released",
        Severity::Medium,
        &[owasp::LLM10, owasp::LLM02],
    );
    let mut body = ctx.valid_body("Name three colours.");
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(20);
    out.push(match ctx.infer(&body, true).await {
        None => case.not_run(),
        Some(a) if a.ok() => {
            let v = a.json();
            let n = alternatives(&v);
            if has_logprobs(&v) && n > 5 {
                case.judge(
                    Verdict::Fail,
                    format!("logprobs with {n} alternatives per token"),
                    &[&a],
                )
            } else if has_logprobs(&v) {
                case.judge(
                    Verdict::Pass,
                    format!("logprobs capped at {n} alternatives per token"),
                    &[&a],
                )
            } else {
                case.judge(Verdict::Pass, "answered without logprobs", &[&a])
            }
        }
        Some(a) => case.judge(Verdict::Pass, format!("refused: {}", status_text(&a)), &[&a]),
    });
    let case = Case::new(
        "exposure.logit_bias_with_logprobs",
        "exposure",
        "logit_bias together with logprobs is allowed (reads logits out)",
        Severity::Medium,
        &[owasp::LLM10],
    );
    let mut body = ctx.valid_body("Say yes.");
    body["logprobs"] = json!(true);
    body["top_logprobs"] = json!(5);
    body["logit_bias"] = json!({"9891": 100, "2822": -100});
    out.push(match ctx.infer(&body, true).await {
        None => case.not_run(),
        Some(a) if a.ok() && has_logprobs(&a.json()) => {
            case.judge(Verdict::Fail, "answered with logprobs under a logit bias", &[&a])
        }
        Some(a) if a.ok() => case.judge(Verdict::Pass, "answered, but without logprobs", &[&a]),
        Some(a) => case.judge(Verdict::Pass, format!("refused: {}", status_text(&a)), &[&a]),
    });
    out
}

async fn kserve(ctx: &Ctx) -> Vec<Case> {
    let case = Case::new(
        "exposure.confidences",
        "exposure",
        "Full-precision confidences make the classifier cheap to clone",
        Severity::Medium,
        &[owasp::LLM10, owasp::LLM02],
    );
    let body = ctx.valid_body("");
    let Some(first) = ctx.infer(&body, true).await else {
        return vec![case.not_run()];
    };
    if !first.ok() {
        let detail = format!("{}: no answer to judge", status_text(&first));
        return vec![case.judge(Verdict::Inconclusive, detail, &[&first])];
    }
    let Some(second) = ctx.infer(&body, true).await else {
        return vec![case.not_run()];
    };
    let a = kserve_floats(&first.json());
    let b = kserve_floats(&second.json());
    let probabilities =
        !a.is_empty() && a.iter().all(|x| (0.0..=1.0).contains(x)) && a.iter().any(|x| *x > 0.0 && *x < 1.0);
    let precision = a.iter().map(|x| digits(*x)).max().unwrap_or(0);
    let noisy = a != b;
    // Features: the input row's width; classes: the answer row's.
    let features = body["inputs"][0]["shape"][1].as_u64().unwrap_or(4);
    let classes = u64::try_from(a.len()).unwrap_or(1).max(1);
    let estimate = (features + 1) * classes;
    vec![if !probabilities {
        case.judge(Verdict::Pass, "answers carry labels only (no confidences)", &[&first])
    } else if noisy {
        case.judge(
            Verdict::Pass,
            format!("confidences differ for the same input ({precision} decimals): noise is added"),
            &[&first, &second],
        )
    } else if precision >= 4 {
        case.judge(
            Verdict::Fail,
            format!(
                "confidences with {precision} decimals, identical on repeat: equation-solving extraction needs about {estimate} queries ({features} features + 1, × {classes} classes)"
            ),
            &[&first, &second],
        )
    } else {
        case.judge(
            Verdict::Pass,
            format!("confidences rounded to {precision} decimals: extraction needs many more queries than {estimate}"),
            &[&first],
        )
    }]
}
