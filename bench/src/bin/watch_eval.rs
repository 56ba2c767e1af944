//! The extraction detectors (`[routes.watch]`) against real attacks and honest clients,
//! through the real gateway, on two classifiers (docs/OUTPUT.md): the KServe demo iris
//! model, and a larger 8-feature classifier of our making behind a JSON API
//! (`attack::synth`).
//!
//! The reference is calibrated on the model's training rows (`rampart watch
//! calibrate`'s code); honest clients replay held-out rows, one row per request, chosen
//! at random — data the detectors never saw — some from every class, some from one
//! class only (a client whose inputs all come from one region). Every client has its
//! own address (X-Forwarded-For through a trusted proxy), so each is its own principal.
//! Detectors only record (`extraction = "record"`), so every query of every client is
//! answered and scored. Reported, from the access log's finding kinds:
//!
//! - honest traffic: requests carrying an extraction finding per 10 000, clients ever
//!   flagged, per-query out-of-distribution findings, and the route's drift findings;
//! - per attack: the query at which each detector first fired, and the share of its
//!   queries flagged.
//!
//! Usage: `cargo run --release -p rampart-bench --bin watch_eval` (HONEST_CLIENTS=50,
//! HONEST_QUERIES=200, ATTACK_QUERIES=300; `RAMPART_BIN` or `target/release/rampart`).

use std::collections::HashMap;
use std::path::PathBuf;

use rampart_testkit::DemoOptions;
use rampart_testkit::client::TestClient;
use rampart_testkit::harness::GatewayProcess;
use serde_json::{Value, json};

#[path = "../attack.rs"]
mod attack;
use attack::Rng;
use attack::synth::{Distribution, KernelModel};

type Error = Box<dyn std::error::Error + Send + Sync>;

const PRINCIPAL_DETECTORS: [&str; 3] = [
    "watch.extraction_spacing",
    "watch.extraction_ood",
    "watch.extraction_boundary",
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The attacks: name and queries, over rows of `d` features bounded by the data's
/// ranges.
fn attacks(rows: &[(Vec<f64>, usize)], n: usize) -> Vec<(&'static str, Vec<Vec<f64>>)> {
    let d = rows[0].0.len();
    let lo: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r.0[j]).fold(f64::INFINITY, f64::min))
        .collect();
    let hi: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r.0[j]).fold(f64::NEG_INFINITY, f64::max))
        .collect();
    let mut rng = Rng(1234);
    let mut out: Vec<(&'static str, Vec<Vec<f64>>)> = Vec::new();
    // Equation solving and random-query surrogates (Tramèr et al. 2016).
    out.push((
        "uniform random over the feature box",
        (0..n)
            .map(|_| (0..d).map(|j| lo[j] + rng.unit() * (hi[j] - lo[j])).collect())
            .collect(),
    ));
    // The same, hidden among real rows the attacker holds: every 2nd and every 5th
    // query random, the rest real.
    let uniform = out[0].1.clone();
    for (name, every) in [
        ("uniform random, every 2nd query (the rest real rows)", 2),
        ("uniform random, every 5th query (the rest real rows)", 5),
    ] {
        let mixed = (0..n)
            .map(|i| {
                if i % every == 0 {
                    uniform[i].clone()
                } else {
                    rows[rng.below(rows.len())].0.clone()
                }
            })
            .collect();
        out.push((name, mixed));
    }
    // A line between rows of two classes in small steps (path finding).
    let a = &rows.iter().find(|r| r.1 == 0).unwrap_or(&rows[0]).0;
    let b = &rows.iter().find(|r| r.1 == 2).unwrap_or(&rows[1]).0;
    out.push((
        "line search between two classes",
        (0..n)
            .map(|i| {
                let t = i as f64 / n as f64;
                (0..d).map(|j| a[j] + t * (b[j] - a[j])).collect()
            })
            .collect(),
    ));
    // Repeated bisections for the decision boundary between random pairs of rows of
    // different classes (10 steps each): queries crowd at the boundary.
    let mut bisect = Vec::new();
    while bisect.len() < n {
        let (p, q) = (&rows[rng.below(rows.len())], &rows[rng.below(rows.len())]);
        if p.1 == q.1 {
            continue;
        }
        let (mut low, mut high) = (0.0, 1.0);
        for _ in 0..10 {
            let t = (low + high) / 2.0;
            bisect.push((0..d).map(|j| p.0[j] + t * (q.0[j] - p.0[j])).collect());
            // The attacker would read the answer; which half it keeps does not change
            // where the queries go much: alternate.
            if bisect.len() % 2 == 0 { low = t } else { high = t }
        }
    }
    bisect.truncate(n);
    out.push(("bisection for the boundary", bisect));
    // A grid over the box, 5 points a side.
    out.push((
        "grid over the feature box",
        (0..n)
            .map(|i| {
                let mut k = i;
                (0..d)
                    .map(|j| {
                        let step = k % 5;
                        k /= 5;
                        lo[j] + (hi[j] - lo[j]) * step as f64 / 4.0
                    })
                    .collect()
            })
            .collect(),
    ));
    // Papernot et al. 2017-style augmentation: real rows nudged by a small step along
    // random sign directions, eight times each.
    out.push((
        "augmentation around real rows (±0.1 of a quarter range)",
        (0..n)
            .map(|i| {
                let base = &rows[(i / 8) * 7 % rows.len()].0;
                (0..d)
                    .map(|j| {
                        let s = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                        base[j] + s * 0.1 * (hi[j] - lo[j]) / 4.0
                    })
                    .collect()
            })
            .collect(),
    ));
    // An attacker who knows the data's mean and covariance and samples from the fitted
    // Gaussian: queries that look like honest ones by construction.
    let m: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r.0[j]).sum::<f64>() / rows.len() as f64)
        .collect();
    let mut cov = vec![vec![0.0; d]; d];
    for r in rows {
        for a in 0..d {
            for b in 0..d {
                cov[a][b] += (r.0[a] - m[a]) * (r.0[b] - m[b]) / (rows.len() - 1) as f64;
            }
        }
    }
    let mut l = vec![vec![0.0; d]; d];
    for i in 0..d {
        for j in 0..=i {
            let s = cov[i][j] - (0..j).map(|k| l[i][k] * l[j][k]).sum::<f64>();
            l[i][j] = if i == j { s.max(1e-12).sqrt() } else { s / l[j][j] };
        }
    }
    out.push((
        "samples from the data's fitted Gaussian",
        (0..n)
            .map(|_| {
                let z: Vec<f64> = (0..d).map(|_| rng.normal()).collect();
                (0..d)
                    .map(|i| m[i] + (0..=i).map(|k| l[i][k] * z[k]).sum::<f64>())
                    .collect()
            })
            .collect(),
    ));
    out
}

/// One classifier behind the gateway: its rows and how to ask it.
struct Case {
    name: &'static str,
    /// Rows the reference is calibrated on (the model's training data).
    train: Vec<(Vec<f64>, usize)>,
    /// Rows honest clients replay (never in the reference).
    held: Vec<(Vec<f64>, usize)>,
    url: String,
    kserve: bool,
}

async fn ask(c: &TestClient, case: &Case, from: &str, x: &[f64]) -> Result<u16, Error> {
    let body = if case.kserve {
        json!({"inputs": [{"name": "input-0", "shape": [1, x.len()], "datatype": "FP32", "data": x}]})
    } else {
        json!({"instances": [x]})
    };
    let r = c
        .request(
            http::Method::POST,
            &case.url,
            &[("x-forwarded-for", from), ("content-type", "application/json")],
            serde_json::to_vec(&body)?,
        )
        .await?;
    Ok(r.status.as_u16())
}

/// Runs one case: honest clients, one-class honest clients, then the attacks; prints
/// its tables.
async fn run(bin: &std::path::Path, case: &Case, upstream: &str, sizes: (usize, usize, usize)) -> Result<(), Error> {
    let (clients, per_client, attack_queries) = sizes;
    let d = case.train[0].0.len();
    let names: Vec<String> = (0..d).map(|j| format!("x{j}")).collect();
    let train: Vec<Vec<f64>> = case.train.iter().map(|r| r.0.clone()).collect();
    let mut seed = rampart_watch::rng::KeyedStream::from_seed(b"rampart").map_err(|e| e.to_string())?;
    let reference = rampart_watch::reference::Reference::calibrate(names, &train, 32, &mut seed)?;
    let dir = rampart_testkit::TempDir::new("rampart-watch-eval")?;
    let reference_path = dir.join("reference.json");
    std::fs::write(&reference_path, serde_json::to_vec(&reference)?)?;
    let (protocol, path, output) = if case.kserve {
        ("kserve", "path_prefix = \"/v2/\"", "decimals = 6")
    } else {
        ("json", "path = \"/predict\"", "decimals = 6\npath = \"predictions\"")
    };
    let watch = if case.kserve {
        String::new()
    } else {
        "path = \"instances\"\n".to_owned()
    };
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n\
         [[upstreams]]\nname = \"m\"\ntargets = [\"{upstream}\"]\n\
         [[routes]]\nname = \"model\"\n{path}\nupstream = \"m\"\nprotocol = \"{protocol}\"\npublic = true\n\
         [routes.output]\n{output}\n\
         [routes.watch]\nreference = \"{}\"\n{watch}extraction = \"record\"\nout_of_distribution = \"record\"\ndrift = \"record\"\n",
        reference_path.display()
    );
    let gw = GatewayProcess::start_in(bin, &config, rampart_testkit::TempDir::new("rampart-watch-eval-gw")?)?;
    let case = Case {
        url: format!("{}{}", gw.url("main"), case.url),
        name: case.name,
        train: case.train.clone(),
        held: case.held.clone(),
        kserve: case.kserve,
    };
    let c = TestClient::http1();
    let honest_ok = |status: u16| {
        if status == 200 {
            Ok(())
        } else {
            Err(format!("an honest request got {status}"))
        }
    };
    // Honest clients, interleaved, then clients of one class each (a team that only
    // ever sees one kind of input), 5 per class.
    let mut rng = Rng(99);
    for _ in 0..per_client {
        for client in 0..clients {
            let from = format!("10.1.{}.{}", client / 250, client % 250 + 1);
            honest_ok(ask(&c, &case, &from, &case.held[rng.below(case.held.len())].0).await?)?;
        }
    }
    let classes = case.held.iter().map(|r| r.1).max().map_or(1, |k| k + 1);
    let by_class: Vec<Vec<&Vec<f64>>> = (0..classes)
        .map(|k| case.held.iter().filter(|r| r.1 == k).map(|r| &r.0).collect())
        .filter(|pool: &Vec<&Vec<f64>>| !pool.is_empty())
        .collect();
    for _ in 0..per_client {
        for client in 0..15 {
            let pool = &by_class[client % by_class.len()];
            let from = format!("10.2.0.{}", client + 1);
            honest_ok(ask(&c, &case, &from, pool[rng.below(pool.len())]).await?)?;
        }
    }
    // Attacks, each from its own address.
    let attacks = attacks(&case.train, attack_queries);
    for (i, (_, queries)) in attacks.iter().enumerate() {
        let from = format!("10.9.0.{}", i + 1);
        for q in queries {
            ask(&c, &case, &from, q).await?;
        }
    }
    // The uniform attack again, spread over 10 addresses of 30 queries each (fewer than
    // `min_queries` per address): what per-principal tests cannot see.
    let sybil = &attacks[0].1;
    for (i, q) in sybil.iter().enumerate().take(300) {
        ask(&c, &case, &format!("10.8.0.{}", i / 30 + 1), q).await?;
    }
    let expected = (clients + 15) * per_client + attacks.len() * attack_queries + sybil.len().min(300);
    let logs = gw.wait_for_access_logs(expected, std::time::Duration::from_secs(30));
    let mut by_client: HashMap<String, Vec<Vec<String>>> = HashMap::new();
    for l in &logs {
        let ip = l["client.ip"].as_str().unwrap_or("").to_owned();
        let kinds: Vec<String> = l["rampart.finding_kinds"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        by_client.entry(ip).or_default().push(kinds);
    }
    if std::env::var_os("WATCH_EVAL_DEBUG").is_some() {
        for (ip, v) in &by_client {
            let mut kinds: HashMap<&str, usize> = HashMap::new();
            for k in v.iter().flatten() {
                *kinds.entry(k.as_str()).or_default() += 1;
            }
            if !kinds.is_empty() {
                eprintln!("{ip}: {kinds:?}");
            }
        }
    }
    println!("### {}", case.name);
    println!();
    let flagged = |kinds: &Vec<String>| kinds.iter().any(|k| PRINCIPAL_DETECTORS.contains(&k.as_str()));
    println!(
        "| honest traffic | requests (clients × requests) | requests with an extraction finding | clients ever flagged | queries out of distribution (per-query) | route drift findings (PSI > 0.25, tested every 50 requests) |"
    );
    println!("|---|---|---|---|---|---|");
    for (label, prefix) in [
        ("held-out rows, all classes", "10.1."),
        ("held-out rows of one class per client", "10.2."),
    ] {
        let honest: Vec<&Vec<Vec<String>>> = by_client
            .iter()
            .filter(|(ip, _)| ip.starts_with(prefix))
            .map(|(_, v)| v)
            .collect();
        let total: usize = honest.iter().map(|v| v.len()).sum();
        let per = |n: usize| n as f64 * 10_000.0 / total.max(1) as f64;
        let false_alarms: usize = honest.iter().map(|v| v.iter().filter(|k| flagged(k)).count()).sum();
        let clients_flagged = honest.iter().filter(|v| v.iter().any(flagged)).count();
        let ood: usize = honest
            .iter()
            .map(|v| {
                v.iter()
                    .filter(|k| k.iter().any(|k| k == "watch.out_of_distribution"))
                    .count()
            })
            .sum();
        let drift: usize = honest
            .iter()
            .map(|v| {
                v.iter()
                    .filter(|k| k.iter().any(|k| k.starts_with("watch.drift")))
                    .count()
            })
            .sum();
        println!(
            "| {label} | {total} ({} × {per_client}) | {false_alarms} ({:.1} per 10 000) | {clients_flagged} of {} | {ood} ({:.1} per 10 000) | {drift} |",
            honest.len(),
            per(false_alarms),
            honest.len(),
            per(ood)
        );
    }
    println!();
    println!("| attack ({attack_queries} queries) | first flagged at query | by | queries flagged |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in attacks.iter().enumerate() {
        let seen = by_client.get(&format!("10.9.0.{}", i + 1)).cloned().unwrap_or_default();
        let first = seen.iter().position(flagged);
        let by: Vec<&str> = first
            .map(|f| {
                seen[f]
                    .iter()
                    .filter(|k| PRINCIPAL_DETECTORS.contains(&k.as_str()))
                    .map(|k| k.trim_start_matches("watch."))
                    .collect()
            })
            .unwrap_or_default();
        let share = seen.iter().filter(|k| flagged(k)).count();
        println!(
            "| {name} | {} | {} | {share} of {} |",
            first.map_or("never".to_owned(), |f| (f + 1).to_string()),
            if by.is_empty() { "—".to_owned() } else { by.join(", ") },
            seen.len()
        );
    }
    let sybil: Vec<&Vec<Vec<String>>> = by_client
        .iter()
        .filter(|(ip, _)| ip.starts_with("10.8.0."))
        .map(|(_, v)| v)
        .collect();
    let addresses = sybil.iter().filter(|v| v.iter().any(flagged)).count();
    let drift = sybil
        .iter()
        .map(|v| v.iter().filter(|k| k.iter().any(|k| k == "watch.drift_input")).count())
        .sum::<usize>();
    let ood = sybil
        .iter()
        .map(|v| {
            v.iter()
                .filter(|k| k.iter().any(|k| k == "watch.out_of_distribution"))
                .count()
        })
        .sum::<usize>();
    println!(
        "| uniform random spread over 10 addresses, 30 queries each | {addresses} of 10 addresses flagged | per query: out_of_distribution on {ood} of 300; route: drift_input on {drift} | — |"
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let sizes = (
        env("HONEST_CLIENTS", 50),
        env("HONEST_QUERIES", 200),
        env("ATTACK_QUERIES", 300),
    );
    let bin = std::env::var_os("RAMPART_BIN").map_or_else(|| PathBuf::from("target/release/rampart"), PathBuf::from);
    println!(
        "Run: `cargo run --release -p rampart-bench --bin watch_eval` (HONEST_CLIENTS={}, HONEST_QUERIES={}, ATTACK_QUERIES={}; detector defaults: window 100, min_queries 40, false_alarm 1e-6, low_margin 0.1; every client is its own principal)",
        sizes.0, sizes.1, sizes.2
    );
    println!();
    // The iris demo model: reference on the rows with index % 3 ≠ 0, honest clients
    // replay the other 50.
    let iris: Vec<(Vec<f64>, usize)> = attack::iris().into_iter().map(|(x, y)| (x.to_vec(), y)).collect();
    let kserve = rampart_testkit::demo::spawn_kserve("127.0.0.1:0".parse()?, DemoOptions::default()).await?;
    let case = Case {
        name: "iris (KServe v2; 100 reference rows, 50 held-out rows replayed)",
        train: iris
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(_, r)| r.clone())
            .collect(),
        held: iris
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 == 0)
            .map(|(_, r)| r.clone())
            .collect(),
        url: "/v2/models/iris/infer".to_owned(),
        kserve: true,
    };
    run(&bin, &case, &kserve.url(), sizes).await?;
    // The larger classifier of our making: 8 features, 3 classes; the reference on its
    // 400 training rows, honest clients replay 2 000 fresh rows of the distribution.
    let dist = Distribution::new(2026);
    let mut rng = Rng(1);
    let as_vec = |rows: Vec<([f64; attack::synth::D], usize)>| -> Vec<(Vec<f64>, usize)> {
        rows.into_iter().map(|(x, y)| (x.to_vec(), y)).collect()
    };
    let train = as_vec(dist.sample(&mut rng, 400));
    let fresh = as_vec(dist.sample(&mut rng, 2000));
    let model = std::sync::Arc::new(KernelModel::train(&train, attack::synth::K, 1.0, false, 7));
    let server = attack::serve_kernel(model).await?;
    let case = Case {
        name: "synthetic 8-feature classifier (JSON API; 400 reference rows, 2 000 fresh rows replayed)",
        train,
        held: fresh,
        url: "/predict".to_owned(),
        kserve: false,
    };
    run(&bin, &case, &server.url(), sizes).await?;
    // Real data from a source the detectors were not built or tuned on: the Wisconsin
    // diagnostic breast-cancer set (569 rows, 30 features, 2 classes; bench/data). A
    // kernel model on standardised features, trained on two thirds; honest clients
    // replay the other third.
    let cancer = attack::labelled_csv(include_str!("../../data/breast_cancer.csv"));
    let train: Vec<(Vec<f64>, usize)> = cancer
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, r)| r.clone())
        .collect();
    let held: Vec<(Vec<f64>, usize)> = cancer
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, r)| r.clone())
        .collect();
    let model = std::sync::Arc::new(KernelModel::train(&train, 2, 2.5, true, 7));
    let server = attack::serve_kernel(model).await?;
    let case = Case {
        name: "breast cancer, Wisconsin diagnostic (JSON API; 30 features; 379 reference rows, 190 held-out rows replayed)",
        train,
        held,
        url: "/predict".to_owned(),
        kserve: false,
    };
    run(&bin, &case, &server.url(), sizes).await
}
