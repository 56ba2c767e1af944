//! Evaluates the detectors on the project's evaluation sets and prints the tables in
//! docs/DETECTION.md: PII and secret precision and recall per kind on
//! `data/eval/pii.jsonl`, and injection detection rates on `data/injection/eval.jsonl`
//! (never used for training).
//!
//! Run: `cargo run --release -p rampart-bench --bin detect_eval`

// Counts and offsets in evaluation data are small; truncating casts cannot happen here.
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::io::BufRead as _;

use rampart_detect::injection::InjectionScorer;
use rampart_detect::{Kind, Scanner};

fn lines(path: &std::path::Path) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        out.push(serde_json::from_str(&line?)?);
    }
    Ok(out)
}

#[derive(Default)]
struct Counts {
    labelled: u32,
    tp: u32,
    fp: u32,
}

fn pii(root: &std::path::Path, file: &str, title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let rows = lines(&root.join(file))?;
    let scanner = Scanner::all(0.5)?;
    // DETECT_EVAL_SHOW=1 prints every miss and false positive to stderr.
    let show = std::env::var_os("DETECT_EVAL_SHOW").is_some();
    let mut by_kind: BTreeMap<&'static str, Counts> = BTreeMap::new();
    let mut clean_texts = 0;
    let mut clean_flagged = 0;
    for row in &rows {
        let text = row["text"].as_str().ok_or("text")?;
        let spans: Vec<(String, usize, usize)> = row["spans"]
            .as_array()
            .ok_or("spans")?
            .iter()
            .map(|s| {
                (
                    s["kind"].as_str().unwrap_or("").to_owned(),
                    s["start"].as_u64().unwrap_or(0) as usize,
                    s["end"].as_u64().unwrap_or(0) as usize,
                )
            })
            .collect();
        let findings = scanner.scan(text);
        if spans.is_empty() {
            clean_texts += 1;
            if !findings.is_empty() {
                clean_flagged += 1;
            }
        }
        for (kind, s, e) in &spans {
            let Some(k) = Kind::from_name(kind) else {
                return Err(format!("unknown kind {kind}").into());
            };
            let c = by_kind.entry(k.name()).or_default();
            c.labelled += 1;
            if findings.iter().any(|f| f.kind == k && f.start < *e && f.end > *s) {
                c.tp += 1;
            } else if show {
                eprintln!("MISS {kind}: {:?} in {text:?}", text.get(*s..*e).unwrap_or(""));
            }
        }
        for f in &findings {
            let matched = spans
                .iter()
                .any(|(k, s, e)| k == f.kind.name() && f.start < *e && f.end > *s);
            if !matched {
                if show {
                    eprintln!(
                        "FP {}: {:?} in {text:?}",
                        f.kind.name(),
                        text.get(f.start..f.end).unwrap_or("")
                    );
                }
                by_kind.entry(f.kind.name()).or_default().fp += 1;
            }
        }
    }
    println!("### {title} (`{file}`, {} texts)", rows.len());
    println!();
    println!("| kind | labelled | found | missed | false positives | precision | recall |");
    println!("|---|---|---|---|---|---|---|");
    let (mut l, mut t, mut f) = (0, 0, 0);
    for (kind, c) in &by_kind {
        let precision = if c.tp + c.fp == 0 {
            1.0
        } else {
            f64::from(c.tp) / f64::from(c.tp + c.fp)
        };
        let recall = if c.labelled == 0 {
            1.0
        } else {
            f64::from(c.tp) / f64::from(c.labelled)
        };
        println!(
            "| `{kind}` | {} | {} | {} | {} | {precision:.3} | {recall:.3} |",
            c.labelled,
            c.tp,
            c.labelled - c.tp,
            c.fp
        );
        l += c.labelled;
        t += c.tp;
        f += c.fp;
    }
    println!(
        "| **all** | {l} | {t} | {} | {f} | {:.3} | {:.3} |",
        l - t,
        f64::from(t) / f64::from((t + f).max(1)),
        f64::from(t) / f64::from(l.max(1))
    );
    println!();
    println!("Look-alike texts with nothing to find: {clean_texts}, of which {clean_flagged} had a finding.");
    println!();
    Ok(())
}

fn rates(scores: &[(f32, bool)], threshold: f32) -> (f64, f64, f64) {
    let tp = scores.iter().filter(|(s, y)| *y && *s >= threshold).count() as f64;
    let fp = scores.iter().filter(|(s, y)| !*y && *s >= threshold).count() as f64;
    let pos = scores.iter().filter(|(_, y)| *y).count().max(1) as f64;
    let neg = scores.iter().filter(|(_, y)| !*y).count().max(1) as f64;
    (tp / pos, fp / neg, if tp + fp == 0.0 { 1.0 } else { tp / (tp + fp) })
}

use injection_train::threshold_at;

fn injection(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let rows = lines(&root.join("data/injection/eval.jsonl"))?;
    let full = InjectionScorer::new();
    if !full.has_classifier() {
        return Err("the shipped classifier weights did not load".into());
    }
    let rules = InjectionScorer::with_classifier(None);
    let mut all = Vec::new();
    let mut rules_only = Vec::new();
    let mut clf_only = Vec::new();
    let mut hand = Vec::new();
    let mut misses: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for row in &rows {
        let text = row["text"].as_str().ok_or("text")?;
        let y = row["label"].as_u64() == Some(1);
        let s = full.score(text);
        let r = rules.score(text);
        if std::env::var_os("DETECT_EVAL_SHOW").is_some() && (s.score >= 0.5) != y {
            eprintln!(
                "EVAL label={y} score={:.3} rules={:.3} clf={:.3} {:?}",
                s.score,
                s.rules,
                s.classifier,
                text.chars().take(160).collect::<String>()
            );
        }
        all.push((s.score, y));
        rules_only.push((r.score, y));
        clf_only.push((s.classifier, y));
        let source = row["source"]
            .as_str()
            .unwrap_or("")
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        if source == "handwritten" {
            hand.push((s.score, y));
        }
        let e = misses
            .entry(format!("{}/{}", if y { "attack" } else { "benign" }, source))
            .or_default();
        e.0 += 1;
        if (s.score >= full.suggested_threshold()) != y {
            e.1 += 1;
        }
    }
    let pos = all.iter().filter(|(_, y)| *y).count();
    println!(
        "### Prompt injection (`data/injection/eval.jsonl`, {} texts: {pos} attacks, {} benign)",
        all.len(),
        all.len() - pos
    );
    println!();
    println!("| scorer | threshold | true-positive rate | false-positive rate | precision |");
    println!("|---|---|---|---|---|");
    for (name, scores) in [
        ("rules + classifier", &all),
        ("rules only", &rules_only),
        ("classifier only", &clf_only),
        ("rules + classifier, hand-written subset", &hand),
    ] {
        for t in [0.5f32, 0.8, 0.9] {
            let (tpr, fpr, p) = rates(scores, t);
            println!("| {name} | {t:.2} | {tpr:.3} | {fpr:.3} | {p:.3} |");
        }
    }
    let t = full.suggested_threshold();
    let (tpr, fpr, p) = rates(&all, t);
    println!("| rules + classifier | {t:.3} (shipped default) | {tpr:.3} | {fpr:.3} | {p:.3} |");
    let (tpr, fpr, p) = rates(&hand, t);
    println!("| rules + classifier, hand-written subset | {t:.3} (shipped default) | {tpr:.3} | {fpr:.3} | {p:.3} |");
    for fpr in [0.01, 0.05] {
        let t = threshold_at(&all, fpr);
        let (tpr, real, p) = rates(&all, t);
        println!(
            "| rules + classifier | {t:.3} (FPR ≤ {:.0}% on this set, in hindsight) | {tpr:.3} | {real:.3} | {p:.3} |",
            fpr * 100.0
        );
    }
    println!();
    println!("Errors at the shipped default threshold by origin (texts, wrong):");
    println!();
    println!("| origin | texts | wrong |");
    println!("|---|---|---|");
    for (k, (n, wrong)) in &misses {
        println!("| {k} | {n} | {wrong} |");
    }
    println!();
    Ok(())
}

#[path = "../injection_train.rs"]
mod injection_train;

/// Leave-one-source-out: for every source, retrain without it and score its rows; the
/// pooled scores say what data from a source the model never saw gets.
fn injection_loso(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use injection_train::{EPOCHS, L2, RATE, leave_one_source_out, load, roc_auc, training_rows};
    let mut rows = training_rows(root)?;
    rows.extend(load(&root.join("data/injection/handwritten.jsonl"), "handwritten")?);
    let knob = |name: &str, default: f32| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let epochs = std::env::var("TRAIN_EPOCHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EPOCHS);
    let show = std::env::var_os("DETECT_EVAL_SHOW").is_some();
    let mut per_row: Vec<String> = Vec::new();
    // Each pooled row's part of its source, in the order the rows are pooled.
    let mut parts: Vec<&str> = Vec::new();
    let (sources, pooled) = leave_one_source_out(
        &rows,
        epochs,
        knob("TRAIN_RATE", RATE),
        knob("TRAIN_L2", L2),
        |s, held, clf, held_scores| {
            let scorer = rampart_detect::injection::InjectionScorer::with_classifier(Some(clf.clone()));
            for (r, (x, _)) in held.iter().zip(held_scores) {
                parts.push(&r.part);
                if show {
                    let sc = scorer.score(&r.text);
                    eprintln!(
                        "LOSO {s} label={} score={:.3} rules={:.3} clf={:.3} {:?}",
                        r.label,
                        sc.score,
                        sc.rules,
                        sc.classifier,
                        r.text.chars().take(160).collect::<String>()
                    );
                }
                per_row.push(
                    serde_json::json!({"text": r.text, "label": r.label, "source": s, "part": r.part, "score": x})
                        .to_string(),
                );
            }
        },
    );
    // Every row's held-out score, for the side-by-side with third-party detectors
    // (bench/injection_compare.py scores the same rows).
    std::fs::create_dir_all(root.join("target"))?;
    std::fs::write(
        root.join("target/injection_loso_scores.jsonl"),
        per_row.join("\n") + "\n",
    )?;
    let flat: Vec<(f32, bool)> = pooled.iter().map(|(x, y, _)| (*x, *y)).collect();
    let auc = roc_auc(&flat);
    let t5 = threshold_at(&flat, 0.05);
    let (tpr5, fpr5, _) = rates(&flat, t5);
    let t1 = threshold_at(&flat, 0.01);
    let (tpr1, fpr1, _) = rates(&flat, t1);
    println!(
        "### Prompt injection, leave one source out ({} texts from {} sources)",
        flat.len(),
        sources.len()
    );
    println!();
    println!("Each source's rows are scored by a model trained on every other source (rules and classifier together).");
    println!();
    println!("| pooled over all sources | value |");
    println!("|---|---|");
    println!("| ROC-AUC | {auc:.3} |");
    println!(
        "| attacks caught at 5% false positives (threshold {t5:.3}) | {:.1}% (false positives {:.1}%) |",
        tpr5 * 100.0,
        fpr5 * 100.0
    );
    println!(
        "| attacks caught at 1% false positives (threshold {t1:.3}) | {:.1}% (false positives {:.1}%) |",
        tpr1 * 100.0,
        fpr1 * 100.0
    );
    // Benign rows written to contain trigger words, at both operating points: the
    // role-play requests, the persona system prompts, the hand-written benign rows and
    // the generator's hard negatives (not its everyday tasks, documentation or short
    // turns, which would dilute the rate).
    const HARD: [&str; 5] = [
        "act-as-prompts",
        "act-as-2025",
        "system-personas",
        "handwritten",
        "hard_negative",
    ];
    let hard: Vec<f32> = pooled
        .iter()
        .zip(&parts)
        .filter(|((_, y, _), part)| !*y && HARD.contains(part))
        .map(|((x, _, _), _)| *x)
        .collect();
    let hard_rate = |t: f32| hard.iter().filter(|x| **x >= t).count() as f64 * 100.0 / hard.len().max(1) as f64;
    let shipped = rampart_detect::injection::InjectionScorer::new().suggested_threshold();
    let (tpr_d, fpr_d, _) = rates(&flat, shipped);
    println!(
        "| attacks caught at the shipped default threshold ({shipped:.3}) | {:.1}% (false positives {:.1}%) |",
        tpr_d * 100.0,
        fpr_d * 100.0
    );
    println!(
        "| trigger-word benign flagged ({} texts: role-play requests, persona prompts, hand-written benign, generated hard negatives) | {:.1}% at the 5% threshold, {:.1}% at the shipped default |",
        hard.len(),
        hard_rate(t5),
        hard_rate(shipped)
    );
    println!();
    println!(
        "| held-out source | attacks | benign | attacks caught at the 5% threshold | benign flagged at the 5% threshold |"
    );
    println!("|---|---|---|---|---|");
    for (si, s) in sources.iter().enumerate() {
        let mine: Vec<&(f32, bool, usize)> = pooled.iter().filter(|p| p.2 == si).collect();
        let pos = mine.iter().filter(|p| p.1).count();
        let neg = mine.len() - pos;
        let caught = mine.iter().filter(|p| p.1 && p.0 >= t5).count();
        let flagged = mine.iter().filter(|p| !p.1 && p.0 >= t5).count();
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}% ({a}/{b})", a as f64 * 100.0 / b as f64)
            }
        };
        println!("| {s} | {pos} | {neg} | {} | {} |", pct(caught, pos), pct(flagged, neg));
    }
    println!();
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    println!(
        "Run: `cargo run --release -p rampart-bench --bin detect_eval` (min_confidence 0.5; injection scores in [0,1])"
    );
    println!();
    pii(&root, "data/eval/pii.jsonl", "PII and secrets, generated")?;
    pii(
        &root,
        "data/eval/pii_messy_dev.jsonl",
        "PII in messy text, Faker values, locales seen while tuning",
    )?;
    pii(
        &root,
        "data/eval/pii_messy_heldout.jsonl",
        "PII in messy text, Faker values, held-out locales",
    )?;
    injection(&root)?;
    injection_loso(&root)?;
    Ok(())
}
