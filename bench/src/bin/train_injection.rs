//! Trains the prompt-injection classifier: logistic regression over the hashed
//! features of `rampart_detect::injection::features`, on `data/injection/train.jsonl`
//! only (evaluation data is never read here), and writes
//! `crates/detect/data/injection.weights`.
//!
//! Run: `cargo run --release -p rampart-bench --bin train_injection`
//! Deterministic: a fixed shuffle seed, fixed epochs and rates; the same data gives the
//! same weights, byte for byte.

// Counts and offsets in evaluation data are small; truncating casts cannot happen here.
#![allow(clippy::cast_possible_truncation)]

use std::io::BufRead as _;

use rampart_detect::injection::{Classifier, DIM, InjectionScorer, features, sigmoid};
use rampart_detect::normalize::normalize;

const EPOCHS: usize = 12;
const RATE: f32 = 0.5;
const L2: f32 = 1e-6;

/// A knob from the environment (for experiments), else its default.
fn knob<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
const SEED: u64 = 0x5eed_2026_1122;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let train = root.join("data/injection/train.jsonl");
    let out = root.join("crates/detect/data/injection.weights");
    let mut rows: Vec<(Vec<u32>, f32)> = Vec::new();
    // Every fifth training text is held out as a validation split for choosing the
    // default threshold (the evaluation set is never read here).
    let mut validation: Vec<(String, bool)> = Vec::new();
    for (i, line) in std::io::BufReader::new(std::fs::File::open(&train)?)
        .lines()
        .enumerate()
    {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let text = v["text"].as_str().ok_or("a row without text")?;
        let label = v["label"].as_f64().ok_or("a row without label")? as f32;
        if i % 5 == 4 {
            validation.push((text.to_owned(), label > 0.5));
            continue;
        }
        let mut f = Vec::new();
        features(&normalize(text), &mut f);
        rows.push((f, label));
    }
    let positives = rows.iter().filter(|r| r.1 > 0.5).count() as f32;
    let negatives = rows.len() as f32 - positives;
    // Balance the classes so the bias does not just learn the base rate.
    let (wp, wn) = (
        rows.len() as f32 / (2.0 * positives),
        rows.len() as f32 / (2.0 * negatives),
    );
    let (epochs, rate, l2) = (
        knob("TRAIN_EPOCHS", EPOCHS),
        knob("TRAIN_RATE", RATE),
        knob("TRAIN_L2", L2),
    );
    println!("epochs {epochs}, rate {rate}, l2 {l2}");
    let mut w = vec![0f32; DIM];
    let mut g2 = vec![1e-8f32; DIM];
    let (mut bias, mut gb2) = (0f32, 1e-8f32);
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let mut state = SEED;
    for epoch in 0..epochs {
        // Fisher-Yates with xorshift64.
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let mut loss = 0f64;
        for &i in &order {
            let (f, y) = &rows[i];
            let scale = 1.0 / (f.len().max(1) as f32).sqrt();
            let z = bias + f.iter().map(|&k| w[k as usize]).sum::<f32>() * scale;
            let p = sigmoid(z);
            let weight = if *y > 0.5 { wp } else { wn };
            loss -= f64::from(
                weight
                    * if *y > 0.5 {
                        p.max(1e-7).ln()
                    } else {
                        (1.0 - p).max(1e-7).ln()
                    },
            );
            let g = (p - y) * weight;
            // AdaGrad per feature, L2 on touched weights.
            for &k in f {
                let k = k as usize;
                let grad = g * scale + l2 * w[k];
                g2[k] += grad * grad;
                w[k] -= rate * grad / g2[k].sqrt();
            }
            gb2 += g * g;
            bias -= rate * g / gb2.sqrt();
        }
        println!("epoch {epoch:2}: mean loss {:.4}", loss / rows.len() as f64);
    }
    let mut clf = Classifier {
        weights: w,
        bias,
        threshold: 0.5,
    };
    // The lowest threshold with at most 1% false positives on the validation split.
    let scorer = InjectionScorer::with_classifier(Some(clf.clone()));
    let mut benign: Vec<f32> = Vec::new();
    let mut attacks: Vec<f32> = Vec::new();
    for (text, y) in &validation {
        let s = scorer.score(text).score;
        if *y { attacks.push(s) } else { benign.push(s) }
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
        rows.len(),
        positives,
        out.display()
    );
    Ok(())
}
