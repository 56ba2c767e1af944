//! The report: every case with its verdict, severity, the OWASP items it evidences and
//! its evidence; written as JSON (the machine-readable source), Markdown and HTML for
//! people (grouped by OWASP item), SARIF 2.1.0 and JUnit XML for CI.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::client::Evidence;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "info" => Self::Info,
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "critical" => Self::Critical,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

/// A case's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The endpoint defended itself.
    Pass,
    /// The attack got through: a finding.
    Fail,
    /// Not run: the budget ran out, the run was stopped, or the case does not apply.
    Skipped,
    /// The probe could not tell (no answer, an answer it cannot read).
    Inconclusive,
}

/// One case of one family.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// `family.name`, stable across versions (the diff matches on it).
    pub id: String,
    pub family: &'static str,
    pub title: String,
    pub verdict: Verdict,
    /// How bad it is when it fails.
    pub severity: Severity,
    /// OWASP LLM Top 10 2025 and OWASP API Security Top 10 2023 items.
    pub owasp: Vec<&'static str>,
    /// What was seen, in a sentence.
    pub detail: String,
    pub evidence: Vec<Evidence>,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub version: &'static str,
    /// The attack texts' version.
    pub corpus: &'static str,
    pub target: String,
    pub protocol: String,
    pub started: String,
    pub seconds: f64,
    pub requests_sent: u64,
    pub budget: serde_json::Value,
    /// The run ended early (Ctrl-C or the budget): some cases were not run.
    pub partial: bool,
    pub cases: Vec<Case>,
}

impl Report {
    /// Failed cases at or above `min`.
    pub fn failures_at_or_above(&self, min: Severity) -> usize {
        self.cases
            .iter()
            .filter(|c| c.verdict == Verdict::Fail && c.severity >= min)
            .count()
    }

    fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |v| self.cases.iter().filter(|c| c.verdict == v).count();
        (
            n(Verdict::Pass),
            n(Verdict::Fail),
            n(Verdict::Skipped),
            n(Verdict::Inconclusive),
        )
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Markdown, findings first, grouped by OWASP item, each with its evidence.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let (pass, fail, skipped, unknown) = self.counts();
        let _ = writeln!(md, "# rampart probe report\n");
        let _ = writeln!(
            md,
            "Target `{}` ({}), {} — {:.1} s, {} requests (budget: {}){}.\n",
            self.target,
            self.protocol,
            self.started,
            self.seconds,
            self.requests_sent,
            self.budget,
            if self.partial {
                " — **partial: the run ended early; skipped cases were not tested**"
            } else {
                ""
            }
        );
        let _ = writeln!(
            md,
            "**{fail} findings**, {pass} defended, {unknown} inconclusive, {skipped} not run. Attack texts: corpus {}.\n",
            self.corpus
        );
        let mut by_item: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
        for c in self.cases.iter().filter(|c| c.verdict == Verdict::Fail) {
            for item in &c.owasp {
                by_item.entry(item).or_default().push(c);
            }
        }
        let _ = writeln!(md, "## Findings by OWASP item\n");
        if by_item.is_empty() {
            let _ = writeln!(md, "None.\n");
        }
        for (item, cases) in &by_item {
            let _ = writeln!(md, "### {item}\n");
            for c in cases {
                let _ = writeln!(
                    md,
                    "- **{}** ({}) `{}` — {}",
                    c.title,
                    c.severity.as_str(),
                    c.id,
                    c.detail
                );
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "## Every case\n");
        let _ = writeln!(
            md,
            "| case | family | verdict | severity | detail |\n|---|---|---|---|---|"
        );
        for c in &self.cases {
            let _ = writeln!(
                md,
                "| `{}` {} | {} | {:?} | {} | {} |",
                c.id,
                c.title.replace('|', "\\|"),
                c.family,
                c.verdict,
                c.severity.as_str(),
                c.detail.replace('|', "\\|")
            );
        }
        let _ = writeln!(md, "\n## Evidence of the findings\n");
        for c in self.cases.iter().filter(|c| c.verdict == Verdict::Fail) {
            let _ = writeln!(md, "### `{}` {}\n", c.id, c.title);
            for e in &c.evidence {
                let _ = writeln!(md, "```http\n{} {}", e.method, e.url);
                for (k, v) in &e.request_headers {
                    let _ = writeln!(md, "{k}: {v}");
                }
                let _ = writeln!(md, "\n{}\n```\n", e.request_body);
                let _ = writeln!(
                    md,
                    "```http\n{}\n\n{}\n```\n",
                    e.status.map_or_else(
                        || format!("(no answer: {})", e.error.clone().unwrap_or_default()),
                        |s| format!("HTTP {s}")
                    ),
                    e.response_body
                );
            }
        }
        md
    }

    /// A self-contained HTML page (no script, no outside asset).
    pub fn html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let (pass, fail, skipped, unknown) = self.counts();
        let mut h = String::from(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>rampart probe report</title><style>\
             body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:0 auto;padding:16px;color:#1d2330}\
             table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #d9dde3;vertical-align:top}\
             .fail{color:#b42318;font-weight:700}.pass{color:#17743a}.skipped,.inconclusive{color:#5b6472}\
             pre{white-space:pre-wrap;word-break:break-all;background:#f0f2f5;padding:8px;border-radius:6px}\
             .sum span{display:inline-block;margin-right:16px;font-size:1.2em}</style></head><body>",
        );
        let _ = write!(
            h,
            "<h1>rampart probe report</h1><p>Target <code>{}</code> ({}), {} — {:.1} s, {} requests.{}</p>\
             <p class=\"sum\"><span class=\"fail\" data-testid=\"findings\">{fail} findings</span><span class=\"pass\">{pass} defended</span>\
             <span>{unknown} inconclusive</span><span>{skipped} not run</span></p>",
            esc(&self.target),
            esc(&self.protocol),
            esc(&self.started),
            self.seconds,
            self.requests_sent,
            if self.partial {
                " <strong>Partial: the run ended early.</strong>"
            } else {
                ""
            }
        );
        let mut by_item: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
        for c in self.cases.iter().filter(|c| c.verdict == Verdict::Fail) {
            for item in &c.owasp {
                by_item.entry(item).or_default().push(c);
            }
        }
        h.push_str("<h2>Findings by OWASP item</h2>");
        if by_item.is_empty() {
            h.push_str("<p>None.</p>");
        }
        for (item, cases) in &by_item {
            let _ = write!(h, "<h3>{}</h3><ul>", esc(item));
            for c in cases {
                let _ = write!(
                    h,
                    "<li><a href=\"#{}\"><strong>{}</strong></a> ({}) — {}</li>",
                    esc(&c.id),
                    esc(&c.title),
                    c.severity.as_str(),
                    esc(&c.detail)
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("<h2>Every case</h2><table><thead><tr><th>case</th><th>family</th><th>verdict</th><th>severity</th><th>detail</th></tr></thead><tbody>");
        for c in &self.cases {
            let v = format!("{:?}", c.verdict).to_lowercase();
            let _ = write!(
                h,
                "<tr><td><code>{}</code><br>{}</td><td>{}</td><td class=\"{v}\">{v}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.id),
                esc(&c.title),
                c.family,
                c.severity.as_str(),
                esc(&c.detail)
            );
        }
        h.push_str("</tbody></table><h2>Evidence of the findings</h2>");
        for c in self.cases.iter().filter(|c| c.verdict == Verdict::Fail) {
            let _ = write!(
                h,
                "<h3 id=\"{}\"><code>{}</code> {}</h3>",
                esc(&c.id),
                esc(&c.id),
                esc(&c.title)
            );
            for e in &c.evidence {
                let mut req = format!("{} {}\n", e.method, e.url);
                for (k, v) in &e.request_headers {
                    let _ = writeln!(req, "{k}: {v}");
                }
                let _ = write!(req, "\n{}", e.request_body);
                let status = e
                    .status
                    .map_or_else(|| "(no answer)".to_owned(), |s| format!("HTTP {s}"));
                let _ = write!(
                    h,
                    "<pre>{}</pre><pre>{}\n\n{}</pre>",
                    esc(&req),
                    esc(&status),
                    esc(&e.response_body)
                );
            }
        }
        h.push_str("</body></html>\n");
        h
    }

    /// SARIF 2.1.0: one rule per case id, one result per finding.
    pub fn sarif(&self) -> String {
        let level = |s: Severity| match s {
            Severity::Critical | Severity::High => "error",
            Severity::Medium => "warning",
            _ => "note",
        };
        let rules: Vec<serde_json::Value> = self
            .cases
            .iter()
            .map(|c| {
                serde_json::json!({
                    "id": c.id,
                    "name": c.title,
                    "shortDescription": {"text": c.title},
                    "properties": {"family": c.family, "tags": c.owasp, "severity": c.severity.as_str()},
                })
            })
            .collect();
        let results: Vec<serde_json::Value> = self
            .cases
            .iter()
            .filter(|c| c.verdict == Verdict::Fail)
            .map(|c| {
                serde_json::json!({
                    "ruleId": c.id,
                    "level": level(c.severity),
                    "message": {"text": c.detail},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": self.target}}}],
                })
            })
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({
            "version": "2.1.0",
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "runs": [{
                "tool": {"driver": {"name": "rampart probe", "version": self.version, "rules": rules}},
                "results": results,
            }],
        }))
        .unwrap_or_default()
    }

    /// JUnit XML: a test suite per family, a failure per finding, skipped cases skipped.
    pub fn junit(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
        };
        let mut families: BTreeMap<&str, Vec<&Case>> = BTreeMap::new();
        for c in &self.cases {
            families.entry(c.family).or_default().push(c);
        }
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"rampart probe\">\n");
        for (family, cases) in families {
            let failures = cases.iter().filter(|c| c.verdict == Verdict::Fail).count();
            let skipped = cases
                .iter()
                .filter(|c| matches!(c.verdict, Verdict::Skipped | Verdict::Inconclusive))
                .count();
            let _ = writeln!(
                x,
                "  <testsuite name=\"{family}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
                cases.len()
            );
            for c in cases {
                let _ = write!(x, "    <testcase classname=\"{family}\" name=\"{}\">", esc(&c.id));
                match c.verdict {
                    Verdict::Fail => {
                        let _ = write!(
                            x,
                            "<failure message=\"{}\" type=\"{}\">{}</failure>",
                            esc(&c.title),
                            c.severity.as_str(),
                            esc(&c.detail)
                        );
                    }
                    Verdict::Skipped | Verdict::Inconclusive => {
                        let _ = write!(x, "<skipped message=\"{}\"/>", esc(&c.detail));
                    }
                    Verdict::Pass => {}
                }
                x.push_str("</testcase>\n");
            }
            x.push_str("  </testsuite>\n");
        }
        x.push_str("</testsuites>\n");
        x
    }

    /// Writes every format into `dir`.
    pub fn write(&self, dir: &std::path::Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.json"), self.json())?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        std::fs::write(dir.join("report.html"), self.html())?;
        std::fs::write(dir.join("report.sarif"), self.sarif())?;
        std::fs::write(dir.join("junit.xml"), self.junit())?;
        Ok(())
    }
}

/// What changed between two reports (JSON), case by case: new findings, fixed ones,
/// and cases whose verdict changed otherwise.
pub fn diff(before: &serde_json::Value, after: &serde_json::Value) -> String {
    let verdicts = |r: &serde_json::Value| -> BTreeMap<String, (String, String)> {
        r["cases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                Some((
                    c["id"].as_str()?.to_owned(),
                    (
                        c["verdict"].as_str()?.to_owned(),
                        c["severity"].as_str().unwrap_or("").to_owned(),
                    ),
                ))
            })
            .collect()
    };
    let (a, b) = (verdicts(before), verdicts(after));
    let mut out = String::from("# rampart probe: what changed\n\n| case | before | after |\n|---|---|---|\n");
    let mut fixed = 0;
    let mut new = 0;
    for id in a.keys().chain(b.keys()).collect::<std::collections::BTreeSet<_>>() {
        let was = a.get(id).map_or("absent", |v| v.0.as_str());
        let now = b.get(id).map_or("absent", |v| v.0.as_str());
        if was == now {
            continue;
        }
        if was == "fail" {
            fixed += 1;
        }
        if now == "fail" {
            new += 1;
        }
        let _ = writeln!(out, "| `{id}` | {was} | {now} |");
    }
    let _ = writeln!(out, "\n{new} new findings, {fixed} fixed.");
    out
}
