//! Model extraction of the demo iris classifier through Rampart, under each output
//! hardening mode (docs/OUTPUT.md). Starts the KServe demo server and, per mode, a
//! gateway (`target/release/rampart`, or `RAMPART_BIN`) in front of it, then runs:
//!
//! - **equation solving** (Tramèr et al., USENIX Security 2016): a multinomial logistic
//!   regression's log-odds are linear in the input, log(p_i / p_0) = a_i·x + c_i, so
//!   five queries with probabilities give the 5 unknowns of each class exactly; the
//!   attack uses `QUERIES` random queries and least squares. Reported: the relative error
//!   of the recovered parameters against the model's own, and how often the clone
//!   agrees with the model on the 150 iris rows and on 1 000 random inputs;
//! - **a surrogate** (a knock-off trained on the answers): softmax regression fitted by
//!   gradient descent to what `QUERIES` random queries returned (probabilities, or the
//!   label when that is all the route gives), agreement measured the same way.
//!
//! Usage: `cargo run --release -p rampart-bench --bin extract` (QUERIES=20 by default;
//! the iris inputs are drawn uniformly from the ranges of the data set).

#![allow(clippy::needless_range_loop, reason = "small matrix code reads clearer with indices")]

use std::path::PathBuf;

use rampart_testkit::DemoOptions;
use rampart_testkit::client::TestClient;
use rampart_testkit::iris::IrisModel;
use serde_json::{Value, json};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[path = "../attack.rs"]
mod attack;
use attack::{HIGH, LOW, Rng as Queries};

/// Log-odds parameters against class 0: for classes 1 and 2, [a_1..a_4, c].
type Params = [[f64; 5]; 2];

/// The index of the largest value, the first on ties (the hardening's own definition).
fn argmax(v: &[f64]) -> usize {
    rampart_watch::harden::top_label(v).unwrap_or(0)
}

/// Least squares for y ≈ [x, 1]·θ (normal equations, Gaussian elimination).
fn least_squares(rows: &[([f64; 4], f64)]) -> Option<[f64; 5]> {
    let mut a = [[0.0f64; 6]; 5];
    for (x, y) in rows {
        let v = [x[0], x[1], x[2], x[3], 1.0];
        for i in 0..5 {
            for j in 0..5 {
                a[i][j] += v[i] * v[j];
            }
            a[i][5] += v[i] * y;
        }
    }
    for col in 0..5 {
        let pivot = (col..5).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        for r in 0..5 {
            if r != col {
                let f = a[r][col] / a[col][col];
                for c in col..6 {
                    a[r][c] -= f * a[col][c];
                }
            }
        }
    }
    let mut theta = [0.0; 5];
    for (i, t) in theta.iter_mut().enumerate() {
        *t = a[i][5] / a[i][i];
    }
    Some(theta)
}

/// Equation solving from (query, probabilities) pairs; rows with a zero probability
/// (rounded or clipped away) give no equation for that class.
fn solve(answers: &[([f64; 4], Vec<f64>)]) -> Option<Params> {
    let mut out = [[0.0; 5]; 2];
    for (k, params) in out.iter_mut().enumerate() {
        let rows: Vec<([f64; 4], f64)> = answers
            .iter()
            .filter(|(_, p)| p[0] > 0.0 && p[k + 1] > 0.0)
            .map(|(x, p)| (*x, (p[k + 1] / p[0]).ln()))
            .collect();
        if rows.len() < 5 {
            return None;
        }
        *params = least_squares(&rows)?;
    }
    Some(out)
}

fn clone_predict(p: &Params, x: &[f64; 4]) -> usize {
    let z1 = p[0][..4].iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + p[0][4];
    let z2 = p[1][..4].iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + p[1][4];
    argmax(&[0.0, z1, z2])
}

/// Softmax regression on standardised inputs, fitted to soft targets by gradient
/// descent: the surrogate.
struct Surrogate {
    w: [[f64; 5]; 3],
}
impl Surrogate {
    fn features(x: &[f64; 4]) -> [f64; 5] {
        let mut f = [1.0; 5];
        for i in 0..4 {
            f[i] = (x[i] - (LOW[i] + HIGH[i]) / 2.0) / (HIGH[i] - LOW[i]);
        }
        f
    }
    fn probs(&self, x: &[f64; 4]) -> [f64; 3] {
        let f = Self::features(x);
        let z: Vec<f64> = self
            .w
            .iter()
            .map(|w| w.iter().zip(&f).map(|(a, b)| a * b).sum())
            .collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        [e[0] / s, e[1] / s, e[2] / s]
    }
    fn fit(answers: &[([f64; 4], Vec<f64>)]) -> Self {
        let mut s = Surrogate { w: [[0.0; 5]; 3] };
        for _ in 0..3000 {
            let mut grad = [[0.0; 5]; 3];
            for (x, target) in answers {
                let p = s.probs(x);
                let f = Self::features(x);
                for k in 0..3 {
                    for j in 0..5 {
                        grad[k][j] += (p[k] - target[k]) * f[j];
                    }
                }
            }
            for k in 0..3 {
                for j in 0..5 {
                    s.w[k][j] -= 2.0 * grad[k][j] / answers.len() as f64 + 1e-4 * s.w[k][j];
                }
            }
        }
        s
    }
}

async fn ask(c: &TestClient, url: &str, x: &[f64; 4]) -> Result<Option<Vec<f64>>, Error> {
    let body = json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": x}]});
    let r = c.post_json(url, &body).await?;
    if r.status.as_u16() != 200 {
        return Ok(None);
    }
    let v: Value = r.json();
    Ok(v["outputs"][0]["data"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let queries: usize = std::env::var("QUERIES").ok().and_then(|q| q.parse().ok()).unwrap_or(20);
    let bin = std::env::var_os("RAMPART_BIN").map_or_else(|| PathBuf::from("target/release/rampart"), PathBuf::from);
    let model = IrisModel::load()?;
    let server = rampart_testkit::demo::spawn_kserve("127.0.0.1:0".parse()?, DemoOptions::default()).await?;
    let rows: Vec<[f64; 4]> = attack::iris().into_iter().map(|(x, _)| x).collect();
    let mut held = Queries(99);
    let random: Vec<[f64; 4]> = (0..1000).map(|_| held.point()).collect();
    let agreement = |f: &dyn Fn(&[f64; 4]) -> usize, set: &[[f64; 4]]| {
        set.iter().filter(|x| f(x) == argmax(&model.predict(&x[..]))).count() as f64 / set.len() as f64
    };
    // The model's own parameters, by the same equations on exact answers.
    let mut q = Queries(7);
    let exact: Vec<([f64; 4], Vec<f64>)> = (0..10).map(|_| q.point()).map(|x| (x, model.predict(&x))).collect();
    let truth = solve(&exact).ok_or("the true model's equations do not solve")?;

    let modes: [(&str, &str); 6] = [
        ("direct (no gateway)", ""),
        ("through Rampart, no hardening", "-"),
        ("decimals = 2", "decimals = 2"),
        ("top_k = 1", "top_k = 1"),
        ("noise: Laplace ε = 1, decimals 4", "noise = { epsilon = 1.0 }"),
        ("label_only", "label_only = true"),
    ];
    println!(
        "Run: `cargo run --release -p rampart-bench --bin extract` (QUERIES={queries}; random queries uniform over the iris feature ranges; agreement on the 150 iris rows / 1 000 random inputs)"
    );
    println!();
    println!(
        "| mode | equation solving: parameter error | agreement (iris / random) | surrogate agreement (iris / random) |"
    );
    println!("|---|---|---|---|");
    for (name, output) in modes {
        let (_gateway, base) = attack::gateway_for_mode(
            &bin,
            &server.url(),
            "path_prefix = \"/v2/\"\nprotocol = \"kserve\"",
            "",
            output,
        )?;
        let url = format!("{base}/v2/models/iris/infer");
        let c = TestClient::http1();
        let mut q = Queries(42);
        let mut answers = Vec::new();
        for _ in 0..queries {
            let x = q.point();
            if let Some(p) = ask(&c, &url, &x).await? {
                answers.push((x, p));
            }
        }
        let solved = solve(&answers);
        let (error, agree) = match &solved {
            Some(p) => {
                let num: f64 = p
                    .iter()
                    .flatten()
                    .zip(truth.iter().flatten())
                    .map(|(a, b)| (a - b).powi(2))
                    .sum();
                let den: f64 = truth.iter().flatten().map(|b| b * b).sum();
                let f = |x: &[f64; 4]| clone_predict(p, x);
                (
                    format!("{:.2e}", (num / den).sqrt()),
                    format!("{:.3} / {:.3}", agreement(&f, &rows), agreement(&f, &random)),
                )
            }
            None => ("no solution (too few usable answers)".to_owned(), "—".to_owned()),
        };
        let surrogate = Surrogate::fit(&answers);
        let g = |x: &[f64; 4]| argmax(&surrogate.probs(x));
        println!(
            "| {name} | {error} | {agree} | {:.3} / {:.3} |",
            agreement(&g, &rows),
            agreement(&g, &random)
        );
    }
    Ok(())
}
