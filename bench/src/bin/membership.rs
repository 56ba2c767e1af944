//! Membership inference against a model trained on data of our making, through the real
//! gateway under each output hardening mode (docs/OUTPUT.md).
//!
//! The model (`attack::synth`): a kernel classifier over 400 training rows of an
//! 8-feature, 3-class Gaussian mixture with 10% of the labels flipped, served as a JSON
//! model API (`POST /predict`). The attack is the confidence-threshold attack of Yeom
//! et al. (CSF 2018): ask the model about a row whose label you know and call it a
//! member when the confidence in that label is high; and its label-only form (a member
//! when the answer's label is the known one), which every mode that returns a label
//! leaves open. Both run on the 400 members and 400 fresh rows of the same
//! distribution; reported are the AUC and the best advantage (true-positive rate minus
//! false-positive rate, over every threshold — an upper bound on what an attacker who
//! tunes the threshold gets), next to the accuracy honest clients see on fresh rows.
//!
//! Usage: `cargo run --release -p rampart-bench --bin membership` (BANDWIDTH=1.0;
//! `RAMPART_BIN` or `target/release/rampart`).

use std::path::PathBuf;
use std::sync::Arc;

use rampart_testkit::client::TestClient;
use serde_json::{Value, json};

#[path = "../attack.rs"]
mod attack;
use attack::Rng;
use attack::synth::{Distribution, KernelModel};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// AUC (ties count half) and the best TPR − FPR over thresholds.
fn auc_and_advantage(members: &[f64], outsiders: &[f64]) -> (f64, f64) {
    let mut wins = 0.0;
    for m in members {
        for o in outsiders {
            wins += if m > o {
                1.0
            } else if m == o {
                0.5
            } else {
                0.0
            };
        }
    }
    let auc = wins / (members.len() * outsiders.len()) as f64;
    let mut thresholds: Vec<f64> = members.iter().chain(outsiders).copied().collect();
    thresholds.sort_by(f64::total_cmp);
    thresholds.dedup();
    let rate = |set: &[f64], t: f64| set.iter().filter(|v| **v >= t).count() as f64 / set.len() as f64;
    let advantage = thresholds
        .iter()
        .map(|t| rate(members, *t) - rate(outsiders, *t))
        .fold(0.0, f64::max);
    (auc, advantage)
}

async fn ask(c: &TestClient, url: &str, x: &[f64]) -> Result<Vec<f64>, Error> {
    let r = c.post_json(url, &json!({"instances": [x]})).await?;
    if r.status.as_u16() != 200 {
        return Err(format!("{}: {}", r.status, r.text()).into());
    }
    let v: Value = r.json();
    Ok(v["predictions"][0]
        .as_array()
        .ok_or("no predictions")?
        .iter()
        .filter_map(Value::as_f64)
        .collect())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let bandwidth: f64 = std::env::var("BANDWIDTH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let bin = std::env::var_os("RAMPART_BIN").map_or_else(|| PathBuf::from("target/release/rampart"), PathBuf::from);
    let dist = Distribution::new(2026);
    let mut rng = Rng(1);
    let as_vec = |rows: Vec<([f64; attack::synth::D], usize)>| -> Vec<(Vec<f64>, usize)> {
        rows.into_iter().map(|(x, y)| (x.to_vec(), y)).collect()
    };
    let train = as_vec(dist.sample(&mut rng, 400));
    let fresh = as_vec(dist.sample(&mut rng, 400));
    let model = Arc::new(KernelModel::train(&train, attack::synth::K, bandwidth, false, 7));
    let labels = model.labels();
    let server = attack::serve_kernel(Arc::clone(&model)).await?;

    let modes: [(&str, &str); 8] = [
        ("direct (no gateway)", ""),
        ("through Rampart, no hardening", "-"),
        ("decimals = 1", "decimals = 1"),
        ("top_k = 1", "top_k = 1"),
        ("noise: Laplace ε = 10", "noise = { epsilon = 10.0 }"),
        ("noise: Laplace ε = 1", "noise = { epsilon = 1.0 }"),
        ("noise: Laplace ε = 0.1", "noise = { epsilon = 0.1 }"),
        ("label_only", "label_only = true"),
    ];
    println!(
        "Run: `cargo run --release -p rampart-bench --bin membership` (BANDWIDTH={bandwidth}; 400 members, 400 fresh rows of the same distribution; 10% of training labels flipped)"
    );
    println!();
    println!(
        "| mode | confidence attack: AUC | confidence attack: advantage | label attack: advantage | accuracy on fresh rows |"
    );
    println!("|---|---|---|---|---|");
    for (name, output) in modes {
        let (_gateway, base) = attack::gateway_for_mode(
            &bin,
            &server.url(),
            "path = \"/predict\"\nprotocol = \"json\"",
            "path = \"predictions\"\n",
            output,
        )?;
        let url = format!("{base}/predict");
        let c = TestClient::http1();
        // Two scores per row: the confidence in the known label, and whether the
        // answer's top label is it (the attack left when confidences are hidden).
        let score = |p: &[f64], label: usize| {
            let hit = rampart_watch::harden::top_label(p) == Some(label);
            (p[label], f64::from(u8::from(hit)))
        };
        let (mut member_conf, mut member_label) = (Vec::new(), Vec::new());
        for ((x, _), label) in train.iter().zip(&labels) {
            let (conf, hit) = score(&ask(&c, &url, x).await?, *label);
            member_conf.push(conf);
            member_label.push(hit);
        }
        let (mut fresh_conf, mut fresh_label) = (Vec::new(), Vec::new());
        for (x, y) in &fresh {
            let (conf, hit) = score(&ask(&c, &url, x).await?, *y);
            fresh_conf.push(conf);
            fresh_label.push(hit);
        }
        let (auc, advantage) = auc_and_advantage(&member_conf, &fresh_conf);
        let (_, label_advantage) = auc_and_advantage(&member_label, &fresh_label);
        let accuracy = fresh_label.iter().sum::<f64>() / fresh.len() as f64;
        println!("| {name} | {auc:.3} | {advantage:.3} | {label_advantage:.3} | {accuracy:.3} |");
    }
    Ok(())
}
