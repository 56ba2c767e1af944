//! Training the prompt-injection classifier, shared by `train_injection` (which writes
//! the shipped weights) and `detect_eval` (which retrains with one source left out, to
//! measure what unseen data gets). Logistic regression over the hashed features of
//! `rampart_detect::injection::features`, AdaGrad, class-balanced, deterministic.

use std::io::BufRead as _;

use rampart_detect::injection::{Classifier, DIM, InjectionScorer, feature_scale, features, sigmoid};
use rampart_detect::normalize::normalize;

pub const EPOCHS: usize = 12;
pub const RATE: f32 = 0.5;
pub const L2: f32 = 1e-3;
const SEED: u64 = 0x5eed_2026_1122;

/// One labelled text and where it came from.
pub struct Row {
    pub text: String,
    pub label: bool,
    pub source: String,
    /// The part of its source a row comes from, as the source file names it (the
    /// generator's `hard_negative`, `task`, …); the source itself where it names none.
    pub part: String,
    pub features: Vec<u32>,
}

/// Reads a JSONL file of `{text, label, source?}`; rows without a source get `default`.
pub fn load(path: &std::path::Path, default: &str) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    for line in std::io::BufReader::new(std::fs::File::open(path)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let text = v["text"].as_str().ok_or("a row without text")?.to_owned();
        let label = v["label"].as_f64().ok_or("a row without label")? > 0.5;
        let source = v["source"].as_str().unwrap_or(default).to_owned();
        let mut f = Vec::new();
        features(&normalize(&text), &mut f);
        rows.push(Row {
            text,
            label,
            part: source.clone(),
            source,
            features: f,
        });
    }
    Ok(rows)
}

/// The training rows: the generated set (one source, whatever family a row names:
/// its families come from one generator), the public corpus and the hand-written
/// multilingual benign questions.
pub fn training_rows(root: &std::path::Path) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let mut rows = load(&root.join("data/injection/train.jsonl"), "generated")?;
    for r in &mut rows {
        r.source = "generated".to_owned();
    }
    rows.extend(load(&root.join("data/injection/public.jsonl"), "public")?);
    // Hand-written everyday questions in seven languages besides English, some with
    // trigger words ("ignora los errores…"): without them the only non-English
    // training texts are attacks, and a French question reads as one.
    rows.extend(load(
        &root.join("data/injection/multilingual_benign.jsonl"),
        "multilingual-benign",
    )?);
    Ok(rows)
}

/// Fits weights on `rows` (threshold left at 0.5). `log` prints each epoch's loss.
pub fn fit(rows: &[&Row], epochs: usize, rate: f32, l2: f32, log: bool) -> Classifier {
    let positives = rows.iter().filter(|r| r.label).count().max(1) as f32;
    let negatives = (rows.len() as f32 - positives).max(1.0);
    // Balance the classes so the bias does not just learn the base rate.
    let (wp, wn) = (
        rows.len() as f32 / (2.0 * positives),
        rows.len() as f32 / (2.0 * negatives),
    );
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
            order.swap(i, usize::try_from(state % (i as u64 + 1)).unwrap_or(0));
        }
        let mut loss = 0f64;
        for &i in &order {
            let row = rows[i];
            let y = if row.label { 1.0 } else { 0.0 };
            let f = &row.features;
            let scale = feature_scale(f.len());
            let z = bias + f.iter().map(|&k| w[k as usize]).sum::<f32>() * scale;
            let p = sigmoid(z);
            let weight = if row.label { wp } else { wn };
            loss -= f64::from(
                weight
                    * if row.label {
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
        if log {
            println!("epoch {epoch:2}: mean loss {:.4}", loss / rows.len().max(1) as f64);
        }
    }
    // Quantised as it ships, so what is measured is what is scored.
    Classifier::new(&w, bias, 0.5)
}

/// Scores (rules and classifier together, as the gateway scores) of `rows`.
pub fn scores(clf: &Classifier, rows: &[&Row]) -> Vec<(f32, bool)> {
    let scorer = InjectionScorer::with_classifier(Some(clf.clone()));
    rows.iter().map(|r| (scorer.score(&r.text).score, r.label)).collect()
}

/// Area under the ROC curve (ties counted half).
pub fn roc_auc(scores: &[(f32, bool)]) -> f64 {
    let mut s: Vec<(f32, bool)> = scores.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut rank_sum, mut i) = (0f64, 0usize);
    while i < s.len() {
        let mut j = i;
        while j < s.len() && s[j].0 == s[i].0 {
            j += 1;
        }
        let avg = (i + j + 1) as f64 / 2.0;
        rank_sum += avg * s[i..j].iter().filter(|x| x.1).count() as f64;
        i = j;
    }
    let pos = s.iter().filter(|x| x.1).count() as f64;
    let neg = s.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// The lowest threshold whose false-positive rate on `scores` is at most `fpr`.
pub fn threshold_at(scores: &[(f32, bool)], fpr: f64) -> f32 {
    let mut negatives: Vec<f32> = scores.iter().filter(|(_, y)| !*y).map(|(s, _)| *s).collect();
    negatives.sort_by(|a, b| b.total_cmp(a));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let allowed = (negatives.len() as f64 * fpr).floor() as usize;
    negatives.get(allowed).map(|s| s + 1e-6).unwrap_or(0.0).min(1.0)
}

/// Leave one source out: every source's rows scored by a model fitted on all the
/// other sources. Returns the sources (sorted) and, per row, its score, label and
/// source index; `each` sees every held-out source with its rows and model.
pub fn leave_one_source_out<'a>(
    rows: &'a [Row],
    epochs: usize,
    rate: f32,
    l2: f32,
    mut each: impl FnMut(&str, &[&'a Row], &Classifier, &[(f32, bool)]),
) -> (Vec<String>, Vec<(f32, bool, usize)>) {
    let mut sources: Vec<String> = rows.iter().map(|r| r.source.clone()).collect();
    sources.sort();
    sources.dedup();
    let mut pooled = Vec::with_capacity(rows.len());
    for (si, s) in sources.iter().enumerate() {
        let train: Vec<&Row> = rows.iter().filter(|r| &r.source != s).collect();
        let held: Vec<&Row> = rows.iter().filter(|r| &r.source == s).collect();
        let clf = fit(&train, epochs, rate, l2, false);
        let held_scores = scores(&clf, &held);
        each(s, &held, &clf, &held_scores);
        pooled.extend(held_scores.into_iter().map(|(x, y)| (x, y, si)));
    }
    (sources, pooled)
}
