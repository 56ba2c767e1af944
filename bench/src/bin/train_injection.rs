//! Trains the prompt-injection classifier: logistic regression over the hashed
//! features of `rampart_detect::injection::features`, on `data/injection/train.jsonl`
//! (generated) and `data/injection/public.jsonl` (public sources, built by
//! `scripts/build_injection_corpus.py`) only — evaluation data is never read here —
//! and writes
//! `crates/detect/data/injection.weights`.
//!
//! Run: `cargo run --release -p rampart-bench --bin train_injection`
//! Deterministic: a fixed shuffle seed, fixed epochs and rates; the same data gives the
//! same weights, byte for byte. The default threshold comes from leave-one-source-out
//! scores of the training sources (at most 1% false positives on sources unseen).

// Counts and offsets in evaluation data are small; truncating casts cannot happen here.
#![allow(clippy::cast_possible_truncation)]

#[path = "../injection_train.rs"]
#[allow(dead_code)] // shared with detect_eval, which uses all of it
mod injection_train;
use injection_train::{EPOCHS, L2, RATE, fit, leave_one_source_out, threshold_at, training_rows};

/// A knob from the environment (for experiments), else its default.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = root.join("crates/detect/data/injection.weights");
    let all = training_rows(&root)?;
    let (epochs, rate, l2) = (
        knob("TRAIN_EPOCHS", EPOCHS),
        knob("TRAIN_RATE", RATE),
        knob("TRAIN_L2", L2),
    );
    println!("epochs {epochs}, rate {rate}, l2 {l2}");
    // The default threshold is set on what unseen text gets: every training source
    // scored by a model that never saw it, the lowest threshold with at most 1% false
    // positives over those scores (the evaluation sets are never read here). A
    // threshold set on rows like the training rows would sit far too low.
    let (sources, pooled) = leave_one_source_out(&all, epochs, rate, l2, |_, _, _, _| {});
    let flat: Vec<(f32, bool)> = pooled.iter().map(|(s, y, _)| (*s, *y)).collect();
    let threshold = threshold_at(&flat, 0.01).clamp(0.05, 0.99);
    let caught = flat.iter().filter(|(s, y)| *y && *s >= threshold).count();
    println!(
        "leave one source out over {} sources: threshold {threshold:.3} catches {caught}/{} attacks at <=1% false positives",
        sources.len(),
        flat.iter().filter(|(_, y)| *y).count()
    );
    let train: Vec<&injection_train::Row> = all.iter().collect();
    let mut clf = fit(&train, epochs, rate, l2, true);
    clf.threshold = threshold;
    std::fs::write(&out, clf.to_bytes())?;
    println!(
        "trained on {} texts ({} injections); wrote {}",
        train.len(),
        train.iter().filter(|r| r.label).count(),
        out.display()
    );
    Ok(())
}
