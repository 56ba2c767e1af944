//! What the attack benchmarks (`extract`, `watch_eval`, `membership`) share: a small
//! deterministic generator, the iris rows, and Gaussian draws.

#![allow(dead_code, reason = "each benchmark uses part of this module")]

/// The iris data shipped with the demo model: (features, class).
pub const IRIS: &str = include_str!("../../crates/testkit/data/iris.csv");
/// Feature ranges of the iris data (cm).
pub const LOW: [f64; 4] = [4.3, 2.0, 1.0, 0.1];
pub const HIGH: [f64; 4] = [7.9, 4.4, 6.9, 2.5];

/// splitmix64: reproducible draws for attacks and honest clients.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next_u64() % n.max(1) as u64).unwrap_or(0)
    }
    /// A standard normal draw (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u = self.unit().max(1e-300);
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    /// A point uniform over the iris feature ranges.
    pub fn point(&mut self) -> [f64; 4] {
        let mut x = [0.0; 4];
        for (i, v) in x.iter_mut().enumerate() {
            *v = LOW[i] + (HIGH[i] - LOW[i]) * self.unit();
        }
        x
    }
}

/// The gateway a hardening mode runs behind, or none (`output` empty: the model
/// directly). `output` is the `[routes.output]` body (`-`: a route without one); `route`
/// the route's match and protocol lines; `extra` more `[routes.output]` lines every mode
/// shares. Returns the gateway and the base URL to ask.
pub fn gateway_for_mode(
    bin: &std::path::Path,
    upstream: &str,
    route: &str,
    extra: &str,
    output: &str,
) -> Result<(Option<rampart_testkit::harness::GatewayProcess>, String), rampart_testkit::harness::Error> {
    if output.is_empty() {
        return Ok((None, upstream.to_owned()));
    }
    let section = if output == "-" {
        String::new()
    } else {
        format!("[routes.output]\n{extra}{output}\n")
    };
    let config = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[[listeners]]\nname = \"main\"\nlisten = \"127.0.0.1:0\"\n\
         [[upstreams]]\nname = \"m\"\ntargets = [\"{upstream}\"]\n\
         [[routes]]\nname = \"model\"\n{route}\nupstream = \"m\"\npublic = true\n{section}"
    );
    let gw = rampart_testkit::harness::GatewayProcess::start(bin, &config)?;
    let base = gw.url("main");
    Ok((Some(gw), base))
}

/// Rows of a scikit-learn-style CSV (a count header, then features and the class
/// last): iris, and the breast-cancer data in `bench/data` (bench/data/README.md).
pub fn labelled_csv(text: &str) -> Vec<(Vec<f64>, usize)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut v: Vec<&str> = l.split(',').collect();
            let y = v.pop()?.trim().parse().ok()?;
            let x: Vec<f64> = v.iter().filter_map(|x| x.trim().parse().ok()).collect();
            (x.len() == v.len()).then_some((x, y))
        })
        .collect()
}

/// The iris rows with their classes.
pub fn iris() -> Vec<([f64; 4], usize)> {
    IRIS.lines()
        .skip(1)
        .filter_map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let x: Vec<f64> = v.iter().take(4).filter_map(|x| x.parse().ok()).collect();
            let y = v.get(4)?.parse().ok()?;
            (x.len() == 4).then(|| ([x[0], x[1], x[2], x[3]], y))
        })
        .collect()
}

/// A larger classifier of our own making, for the experiments the iris model is too
/// small for: `D` correlated features, `K` classes from a Gaussian mixture, 10% of
/// training labels flipped (as real labels are noisy). The model is a kernel classifier
/// (Nadaraya–Watson with a narrow Gaussian kernel over its training rows): accurate,
/// and, like any model that fits its training set closely, more confident on the rows
/// it was trained on — what membership inference exploits.
pub mod synth {
    use super::Rng;

    pub const D: usize = 8;
    pub const K: usize = 3;

    /// The data distribution: class means and a shared covariance factor.
    pub struct Distribution {
        means: Vec<[f64; D]>,
        factor: [[f64; D]; D],
    }

    impl Distribution {
        pub fn new(seed: u64) -> Self {
            let mut rng = Rng(seed);
            let means = (0..K).map(|_| std::array::from_fn(|_| 1.6 * rng.normal())).collect();
            let mut factor = [[0.0; D]; D];
            for (i, row) in factor.iter_mut().enumerate() {
                for (j, v) in row.iter_mut().enumerate().take(i + 1) {
                    *v = if i == j {
                        0.8 + 0.4 * rng.unit()
                    } else {
                        0.5 * rng.normal()
                    };
                }
            }
            Self { means, factor }
        }

        /// `n` rows with their (true) classes.
        pub fn sample(&self, rng: &mut Rng, n: usize) -> Vec<([f64; D], usize)> {
            (0..n)
                .map(|_| {
                    let k = rng.below(K);
                    let z: [f64; D] = std::array::from_fn(|_| rng.normal());
                    let x = std::array::from_fn(|i| {
                        self.means[k][i] + (0..=i).map(|j| self.factor[i][j] * z[j]).sum::<f64>()
                    });
                    (x, k)
                })
                .collect()
        }
    }

    /// A kernel classifier over its training rows (any number of features and
    /// classes), optionally on standardised features.
    pub struct KernelModel {
        rows: Vec<(Vec<f64>, usize)>,
        classes: usize,
        /// Per-feature divisors (1 when not standardised).
        scale: Vec<f64>,
        /// 1 / (2 h²).
        gamma: f64,
    }

    impl KernelModel {
        /// Trains on `rows` of `classes` classes, flipping 10% of the labels first
        /// (seeded); `standardise` divides each feature by its standard deviation.
        pub fn train(rows: &[(Vec<f64>, usize)], classes: usize, bandwidth: f64, standardise: bool, seed: u64) -> Self {
            let mut rng = Rng(seed);
            let d = rows.first().map_or(0, |r| r.0.len());
            let n = rows.len().max(2) as f64;
            let scale = (0..d)
                .map(|j| {
                    if !standardise {
                        return 1.0;
                    }
                    let m = rows.iter().map(|r| r.0[j]).sum::<f64>() / n;
                    let v = rows.iter().map(|r| (r.0[j] - m).powi(2)).sum::<f64>() / (n - 1.0);
                    v.sqrt().max(1e-12)
                })
                .collect::<Vec<f64>>();
            let rows = rows
                .iter()
                .map(|(x, y)| {
                    let label = if rng.unit() < 0.1 {
                        (y + 1 + rng.below(classes - 1)) % classes
                    } else {
                        *y
                    };
                    (x.clone(), label)
                })
                .collect();
            Self {
                rows,
                classes,
                scale,
                gamma: 1.0 / (2.0 * bandwidth * bandwidth),
            }
        }

        pub fn dims(&self) -> usize {
            self.scale.len()
        }

        /// The training labels (after the flips): what a member's "true label" is.
        pub fn labels(&self) -> Vec<usize> {
            self.rows.iter().map(|r| r.1).collect()
        }

        pub fn predict(&self, x: &[f64]) -> Vec<f64> {
            // Log-sum-exp per class, with a small prior so no class is exactly 0.
            let mut best = f64::NEG_INFINITY;
            let logs: Vec<f64> = self
                .rows
                .iter()
                .map(|(r, _)| {
                    let d2: f64 = r
                        .iter()
                        .zip(x)
                        .zip(&self.scale)
                        .map(|((a, b), s)| ((a - b) / s).powi(2))
                        .sum();
                    let l = -self.gamma * d2;
                    best = best.max(l);
                    l
                })
                .collect();
            let mut mass = vec![1e-3; self.classes];
            for (l, (_, y)) in logs.iter().zip(&self.rows) {
                mass[*y] += (l - best).exp();
            }
            let total: f64 = mass.iter().sum();
            mass.iter().map(|m| m / total).collect()
        }
    }
}

/// Serves `model` as a JSON model API on a random local port: `POST /predict` with
/// `{"instances": [[f64; D], …]}` answers `{"predictions": [[p; K], …]}`; anything else
/// gets a 400 with a reason (an honest server, not a stub).
pub async fn serve_kernel(model: std::sync::Arc<synth::KernelModel>) -> std::io::Result<rampart_testkit::TestServer> {
    use http_body_util::{BodyExt, Full};
    rampart_testkit::TestServer::spawn("127.0.0.1:0".parse().map_err(std::io::Error::other)?, move |req| {
        let model = std::sync::Arc::clone(&model);
        async move {
            let reply = |status: u16, v: serde_json::Value| {
                http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(
                        Full::new(bytes::Bytes::from(v.to_string()))
                            .map_err(|e| match e {})
                            .boxed(),
                    )
                    .unwrap_or_default()
            };
            if req.method() != http::Method::POST || req.uri().path() != "/predict" {
                return reply(404, serde_json::json!({"error": "POST /predict"}));
            }
            let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
                return reply(400, serde_json::json!({"error": "unreadable body"}));
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
                return reply(400, serde_json::json!({"error": "not JSON"}));
            };
            let Some(instances) = v["instances"].as_array() else {
                return reply(
                    400,
                    serde_json::json!({"error": "`instances` must be an array of rows"}),
                );
            };
            let mut predictions = Vec::new();
            for row in instances {
                let x: Option<Vec<f64>> = row
                    .as_array()
                    .and_then(|r| r.iter().map(serde_json::Value::as_f64).collect());
                match x {
                    Some(x) if x.len() == model.dims() => predictions.push(model.predict(&x)),
                    _ => {
                        return reply(
                            400,
                            serde_json::json!({"error": format!("each row must hold {} numbers", model.dims())}),
                        );
                    }
                }
            }
            reply(200, serde_json::json!({"predictions": predictions}))
        }
    })
    .await
}
