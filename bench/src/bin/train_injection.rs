//! Trains the prompt-injection classifier: logistic regression over the hashed
//! features of `rampart_detect::injection::features`, on `data/injection/train.jsonl`
//! (generated) and `data/injection/public.jsonl` (public sources, built by
//! `scripts/build_injection_corpus.py`) only — evaluation data is never read here —
//! and writes
//! `crates/detect/data/injection.weights`.
//!
//! Run: `cargo run --release -p rampart-bench --bin train_injection`
//! Deterministic: a fixed shuffle seed, fixed epochs and rates; the same data gives the
//! same weights, byte for byte.

// Counts and offsets in evaluation data are small; truncating casts cannot happen here.
#![allow(clippy::cast_possible_truncation)]

use rampart_detect::injection::InjectionScorer;

#[path = "../injection_train.rs"]
#[allow(dead_code)] // shared with detect_eval, which uses all of it
mod injection_train;
use injection_train::{EPOCHS, L2, RATE, fit, training_rows};

/// A knob from the environment (for experiments), else its default.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("crates/detect/data/injection.weights");
    let all = training_rows(&root)?;
    // Every fifth training text is held out as a validation split for choosing the
    // default threshold (the evaluation sets are never read here).
    let (mut train, mut validation) = (Vec::new(), Vec::new());
    for (i, r) in all.iter().enumerate() {
        if i % 5 == 4 { validation.push(r) } else { train.push(r) }
    }
    let (epochs, rate, l2) = (
        knob("TRAIN_EPOCHS", EPOCHS),
        knob("TRAIN_RATE", RATE),
        knob("TRAIN_L2", L2),
    );
    println!("epochs {epochs}, rate {rate}, l2 {l2}");
    let mut clf = fit(&train, epochs, rate, l2, true);
    // The lowest threshold with at most 1% false positives on the validation split.
    let scorer = InjectionScorer::with_classifier(Some(clf.clone()));
    let mut benign: Vec<f32> = Vec::new();
    let mut attacks: Vec<f32> = Vec::new();
    for r in &validation {
        let s = scorer.score(&r.text).score;
        if r.label { attacks.push(s) } else { benign.push(s) }
    }
    benign.sort_by(|a, b| b.total_cmp(a));
    let allowed = benign.len() / 100;
    clf.threshold = benign.get(allowed).map_or(0.5, |s| (s + 1e-4).min(0.99)).max(0.05);
    let caught = attacks.iter().filter(|s| **s >= clf.threshold).count();
    println!(
        "validation: {} texts; threshold {:.3} catches {caught}/{} attacks at ≤1% false positives",
        validation.len(),
        clf.threshold,
        attacks.len()
    );
    std::fs::write(&out, clf.to_bytes())?;
    println!(
        "trained on {} texts ({} injections); wrote {}",
        train.len(),
        train.iter().filter(|r| r.label).count(),
        out.display()
    );
    Ok(())
}
