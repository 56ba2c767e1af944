//! The probe's families. Each case sends what an attacker would and judges the answer:
//! a case fails (a finding) only when the answer shows the attack got through, passes
//! when the endpoint refused or neutralised it, and says it was not run when the budget
//! stopped it.

pub mod abuse;
pub mod access;
pub mod exposure;
pub mod injection;
pub mod input;
pub mod jailbreak;
pub mod leakage;
pub mod transport;

use serde_json::{Value, json};

use crate::Protocol;
use crate::client::{Answer, Prober};
use crate::report::{Case, Severity, Verdict};

/// What every family works with.
#[derive(Debug)]
pub struct Ctx {
    pub prober: Prober,
    pub protocol: Protocol,
    pub model: Option<String>,
}

impl Ctx {
    /// The model the probe names (the given one, or a neutral name).
    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or("probe-model")
    }

    /// The path requests go to.
    pub fn path(&self) -> String {
        match self.protocol {
            Protocol::Openai => "/v1/chat/completions".into(),
            Protocol::Kserve => format!("/v2/models/{}/infer", self.model()),
            Protocol::Json => String::new(),
        }
    }

    /// The inference path as a request target on the wire: the base URL's own path
    /// followed by [`Ctx::path`].
    pub fn request_target(&self) -> String {
        request_target(&self.prober.base, &self.path())
    }

    /// A request the endpoint should accept from an allowed caller.
    pub fn valid_body(&self, text: &str) -> Value {
        match self.protocol {
            Protocol::Openai => {
                json!({"model": self.model(), "messages": [{"role": "user", "content": text}], "max_tokens": 64})
            }
            Protocol::Kserve => {
                json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]})
            }
            Protocol::Json => json!({"input": text}),
        }
    }

    /// Sends `body` to the inference path, with or without the probe's key.
    pub async fn infer(&self, body: &Value, with_key: bool) -> Option<Answer> {
        self.prober.post_json(&self.path(), body, with_key).await
    }
}

impl Case {
    pub fn new(id: &str, family: &'static str, title: &str, severity: Severity, owasp: &[&'static str]) -> Self {
        Self {
            id: id.to_owned(),
            family,
            title: title.to_owned(),
            verdict: Verdict::Skipped,
            severity,
            owasp: owasp.to_vec(),
            detail: String::new(),
            evidence: Vec::new(),
        }
    }

    /// The budget stopped this case.
    pub fn not_run(mut self) -> Self {
        self.verdict = Verdict::Skipped;
        self.detail = "not run: the budget ran out or the run was stopped".into();
        self
    }

    /// Neither a finding nor a defence could be shown.
    pub fn inconclusive(mut self, why: impl Into<String>) -> Self {
        self.verdict = Verdict::Inconclusive;
        self.detail = why.into();
        self
    }

    pub fn skip(mut self, why: &str) -> Self {
        self.verdict = Verdict::Skipped;
        self.detail = why.to_owned();
        self
    }

    pub fn judge(mut self, verdict: Verdict, detail: impl Into<String>, answers: &[&Answer]) -> Self {
        self.verdict = verdict;
        self.detail = detail.into();
        self.evidence = answers.iter().map(|a| a.evidence.clone()).collect();
        self
    }
}

/// The base URL's path followed by `path`, as a request target.
pub fn request_target(base: &str, path: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let prefix = rest.find('/').map_or("", |i| &rest[i..]);
    let p = format!("{}{path}", prefix.trim_end_matches('/'));
    if p.is_empty() { "/".into() } else { p }
}

#[cfg(test)]
#[test]
fn the_request_target_keeps_the_endpoints_path() {
    assert_eq!(request_target("https://h/api/predict", ""), "/api/predict");
    assert_eq!(
        request_target("https://h", "/v1/chat/completions"),
        "/v1/chat/completions"
    );
    assert_eq!(request_target("https://h/", ""), "/");
}

/// `HTTP 401`, or what happened instead of an answer.
pub fn status_text(a: &Answer) -> String {
    match a.status {
        Some(s) => format!("HTTP {s}"),
        None => format!("no answer ({})", a.evidence.error.clone().unwrap_or_default()),
    }
}

/// OWASP items the cases cite.
pub mod owasp {
    pub const API1: &str = "API1:2023 Broken Object Level Authorization";
    pub const API2: &str = "API2:2023 Broken Authentication";
    pub const API4: &str = "API4:2023 Unrestricted Resource Consumption";
    pub const API5: &str = "API5:2023 Broken Function Level Authorization";
    pub const API8: &str = "API8:2023 Security Misconfiguration";
    pub const LLM01: &str = "LLM01:2025 Prompt Injection";
    pub const LLM02: &str = "LLM02:2025 Sensitive Information Disclosure";
    pub const LLM07: &str = "LLM07:2025 System Prompt Leakage";
    pub const LLM10: &str = "LLM10:2025 Unbounded Consumption";
}
