//! What a classifier's honest inputs look like, as statistics of its training (or
//! validation) data: per-feature ranges and quantile bins, the mean and covariance,
//! the out-of-distribution threshold on the Mahalanobis distance, and the distribution
//! of the spacing between a client's successive queries — the reference the detectors
//! (`extraction`, `drift`) compare live traffic with.
//!
//! [`Reference::calibrate`] computes it from rows of features (`rampart watch
//! calibrate` writes it as JSON for the config to name); [`Whitener`] maps a row to
//! whitened coordinates (z = L⁻¹(x − μ), with LLᵀ the covariance), where distances are
//! free of the features' units and correlations.

use serde::{Deserialize, Serialize};

use crate::rng::Random;

/// Quantile bins over a quantity: `edges` (ascending, interior) split the line into
/// `edges.len() + 1` bins; `shares` is the reference's share in each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bins {
    pub edges: Vec<f64>,
    pub shares: Vec<f64>,
}

impl Bins {
    /// The bin `x` falls in (a value on an edge goes to the bin above it).
    pub fn index(&self, x: f64) -> usize {
        self.edges.partition_point(|e| *e <= x)
    }

    /// Quantile bins of `values` (at most `k`; tied quantiles merge).
    pub fn of(values: &mut [f64], k: usize) -> Self {
        values.sort_by(f64::total_cmp);
        let mut edges: Vec<f64> = Vec::new();
        for i in 1..k {
            let q = values[(values.len() * i / k).min(values.len() - 1)];
            if edges.last().is_none_or(|e| *e < q) && values.first().is_some_and(|f| *f < q) {
                edges.push(q);
            }
        }
        let mut bins = Self {
            shares: vec![0.0; edges.len() + 1],
            edges,
        };
        for v in values.iter() {
            let i = bins.index(*v);
            bins.shares[i] += 1.0;
        }
        let n = values.len().max(1) as f64;
        for s in &mut bins.shares {
            *s /= n;
        }
        bins
    }

    pub fn check(&self) -> Result<(), String> {
        if self.shares.len() != self.edges.len() + 1 {
            return Err(format!(
                "{} edges need {} shares, not {}",
                self.edges.len(),
                self.edges.len() + 1,
                self.shares.len()
            ));
        }
        if self
            .edges
            .windows(2)
            .any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less))
        {
            return Err("edges must be finite and strictly ascending".to_owned());
        }
        let sum: f64 = self.shares.iter().sum();
        if self.shares.iter().any(|s| !(0.0..=1.0).contains(s)) || (sum - 1.0).abs() > 1e-6 {
            return Err("shares must be in [0, 1] and sum to 1".to_owned());
        }
        Ok(())
    }
}

/// The spacing test's reference: for honest clients, the relative spacing ([`spacing`]:
/// nearest over mean distance, in whitened units) of a query to the client's `window`
/// previous distinct queries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spacing {
    pub window: usize,
    pub bins: Bins,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Feature names, in input order.
    pub features: Vec<String>,
    /// Rows the statistics were computed from.
    pub rows: u64,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub mean: Vec<f64>,
    pub covariance: Vec<Vec<f64>>,
    /// A row whose Mahalanobis distance exceeds this is out of distribution.
    pub ood_distance: f64,
    /// The reference rows' own share above `ood_distance` (the honest rate).
    pub ood_share: f64,
    /// Per feature, how far beyond its [min, max] a value may fall, as a share of the
    /// range, before it is out of distribution: a quarter, or more where rows the range
    /// was not fitted on fell further (heavy-tailed features). Empty: a quarter each.
    #[serde(default)]
    pub margin: Vec<f64>,
    /// Per feature, its quantile bins (the drift detector's reference).
    pub bins: Vec<Bins>,
    pub spacing: Spacing,
}

/// Why a reference cannot be used or computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ReferenceError(pub String);

fn err(m: impl Into<String>) -> ReferenceError {
    ReferenceError(m.into())
}

/// Bins of the per-feature and spacing references.
const BINS: usize = 10;
/// Draws of the spacing simulation.
const SPACING_DRAWS: usize = 4000;

impl Reference {
    /// Computes the reference from `rows` of features named `features`. The spacing
    /// distribution is simulated: clients drawing rows at random, `window` queries of
    /// history each; `rng` makes it reproducible.
    pub fn calibrate(
        features: Vec<String>,
        rows: &[Vec<f64>],
        window: usize,
        rng: &mut impl Random,
    ) -> Result<Self, ReferenceError> {
        let d = features.len();
        if d == 0 {
            return Err(err("no features"));
        }
        if rows.len() < 2 * d + 10 {
            return Err(err(format!(
                "{} rows are too few for {d} features (at least {})",
                rows.len(),
                2 * d + 10
            )));
        }
        if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != d) {
            return Err(err(format!("row {} has {} values, not {d}", i + 1, r.len())));
        }
        if let Some(i) = rows.iter().position(|r| r.iter().any(|v| !v.is_finite())) {
            return Err(err(format!("row {} has a value that is not a finite number", i + 1)));
        }
        let n = rows.len() as f64;
        let mut mean = vec![0.0; d];
        let mut min = vec![f64::INFINITY; d];
        let mut max = vec![f64::NEG_INFINITY; d];
        for r in rows {
            for j in 0..d {
                mean[j] += r[j] / n;
                min[j] = min[j].min(r[j]);
                max[j] = max[j].max(r[j]);
            }
        }
        if min == max {
            return Err(err("the covariance has no variance: every row is the same"));
        }
        let covariance = covariance(rows.iter(), &mean);
        let mut reference = Self {
            features,
            rows: rows.len() as u64,
            min,
            max,
            mean,
            covariance,
            ood_distance: 0.0,
            ood_share: 0.0,
            margin: range_margins(rows),
            bins: Vec::new(),
            spacing: Spacing {
                window: window.clamp(1, rows.len() / 2),
                bins: Bins {
                    edges: Vec::new(),
                    shares: vec![1.0],
                },
            },
        };
        let whitener = Whitener::new(&reference)?;
        let z: Vec<Vec<f64>> = rows.iter().map(|r| whitener.whiten(r)).collect();
        // The threshold is set on distances measured out of sample — each row against
        // the mean and covariance of the folds it is not in — since rows a covariance
        // was fitted on sit closer to it than new rows do (much closer when there are
        // many features for the rows: 30 features over 400 rows doubles the tail).
        let mut norms = out_of_fold_distances(rows).unwrap_or_else(|| z.iter().map(|v| norm(v)).collect());
        norms.sort_by(f64::total_cmp);
        // The 99.9th percentile (the largest row when there are fewer than 1000), with
        // room: held-out rows of the same distribution reach a little further.
        let q = norms[(norms.len() * 999 / 1000).min(norms.len() - 1)];
        reference.ood_distance = q * 1.25;
        reference.ood_share = norms.iter().filter(|v| **v > reference.ood_distance).count() as f64 / n;
        for j in 0..d {
            let mut column: Vec<f64> = rows.iter().map(|r| r[j]).collect();
            reference.bins.push(Bins::of(&mut column, BINS));
        }
        let w = reference.spacing.window;
        let mut spacings = Vec::with_capacity(SPACING_DRAWS);
        let mut attempts = 0;
        let pick = |rng: &mut dyn FnMut() -> u64| usize::try_from(rng() % rows.len() as u64).unwrap_or(0);
        while spacings.len() < SPACING_DRAWS && attempts < SPACING_DRAWS * 20 {
            attempts += 1;
            let mut next = || rng.next_u64();
            let history: Vec<usize> = (0..w).map(|_| pick(&mut next)).collect();
            let query = pick(&mut next);
            // The detector sets exact repeats aside; so does the reference.
            if let Some(s) = spacing(&z[query], history.iter().map(|i| z[*i].as_slice())) {
                spacings.push(s);
            }
        }
        if spacings.len() < SPACING_DRAWS / 2 {
            return Err(err("the rows are too repetitive to calibrate the spacing test"));
        }
        reference.spacing.bins = Bins::of(&mut spacings, BINS);
        Ok(reference)
    }

    /// Checks a reference read from a file: dimensions agree, numbers are sane.
    pub fn check(&self) -> Result<(), ReferenceError> {
        let d = self.features.len();
        if d == 0 {
            return Err(err("`features` is empty"));
        }
        for (name, v) in [("min", &self.min), ("max", &self.max), ("mean", &self.mean)] {
            if v.len() != d {
                return Err(err(format!("`{name}` has {} values for {d} features", v.len())));
            }
        }
        if self.covariance.len() != d || self.covariance.iter().any(|r| r.len() != d) {
            return Err(err(format!("`covariance` must be {d}×{d}")));
        }
        if self.bins.len() != d {
            return Err(err(format!("`bins` has {} entries for {d} features", self.bins.len())));
        }
        for (j, b) in self.bins.iter().enumerate() {
            b.check().map_err(|e| err(format!("bins[{j}]: {e}")))?;
        }
        self.spacing
            .bins
            .check()
            .map_err(|e| err(format!("spacing.bins: {e}")))?;
        if self.spacing.window == 0 {
            return Err(err("spacing.window must be at least 1"));
        }
        if !(self.margin.is_empty() || self.margin.len() == d && self.margin.iter().all(|m| m.is_finite() && *m >= 0.0))
        {
            return Err(err(format!("`margin` must hold {d} numbers ≥ 0 (or be absent)")));
        }
        if !(self.ood_distance.is_finite() && self.ood_distance > 0.0 && (0.0..=1.0).contains(&self.ood_share)) {
            return Err(err("`ood_distance` must be > 0 and `ood_share` in [0, 1]"));
        }
        Whitener::new(self).map(|_| ())
    }
}

/// The sample covariance of `rows` around `mean`.
fn covariance<'a>(rows: impl Iterator<Item = &'a Vec<f64>> + Clone, mean: &[f64]) -> Vec<Vec<f64>> {
    let d = mean.len();
    let n = rows.clone().count().max(2) as f64;
    let mut c = vec![vec![0.0; d]; d];
    for r in rows {
        for a in 0..d {
            for b in 0..d {
                c[a][b] += (r[a] - mean[a]) * (r[b] - mean[b]) / (n - 1.0);
            }
        }
    }
    c
}

/// The least margin beyond a feature's range, as a share of it.
pub const MIN_MARGIN: f64 = 0.25;

/// Per feature: the margin beyond [min, max] that rows of each fold needed against the
/// range of the other folds, times 1.5, and at least [`MIN_MARGIN`].
fn range_margins(rows: &[Vec<f64>]) -> Vec<f64> {
    let d = rows.first().map_or(0, Vec::len);
    let mut margin = vec![MIN_MARGIN; d];
    for fold in 0..FOLDS {
        for (j, m) in margin.iter_mut().enumerate() {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for r in rows
                .iter()
                .enumerate()
                .filter(|(i, _)| i % FOLDS != fold)
                .map(|(_, r)| r)
            {
                lo = lo.min(r[j]);
                hi = hi.max(r[j]);
            }
            let range = (hi - lo).max(f64::MIN_POSITIVE);
            for r in rows.iter().skip(fold).step_by(FOLDS) {
                let beyond = (lo - r[j]).max(r[j] - hi).max(0.0) / range;
                *m = m.max(1.5 * beyond);
            }
        }
    }
    margin
}

/// Folds of the out-of-sample distances.
const FOLDS: usize = 5;

/// Each row's Mahalanobis distance under the mean and covariance of the other folds;
/// `None` when a fold's covariance cannot be used (too few rows for the features).
fn out_of_fold_distances(rows: &[Vec<f64>]) -> Option<Vec<f64>> {
    let d = rows.first()?.len();
    let mut out = Vec::with_capacity(rows.len());
    for fold in 0..FOLDS {
        let fit: Vec<&Vec<f64>> = rows
            .iter()
            .enumerate()
            .filter(|(i, _)| i % FOLDS != fold)
            .map(|(_, r)| r)
            .collect();
        if fit.len() < 2 * d + 10 {
            return None;
        }
        let n = fit.len() as f64;
        let mean: Vec<f64> = (0..d).map(|j| fit.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let covariance = covariance(fit.iter().copied(), &mean);
        let whitener = Whitener::from_moments(mean, &covariance).ok()?;
        out.extend(rows.iter().skip(fold).step_by(FOLDS).map(|r| norm(&whitener.whiten(r))));
    }
    Some(out)
}

/// Euclidean norm.
pub fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// The relative spacing of `query` to `history`: the distance to the nearest of them
/// divided by the mean distance to all of them — a scale-free closeness, so a client who
/// only ever asks about one region of the data (denser than the whole) is not mistaken
/// for one who steps through the space in tiny moves. `None` when `query` repeats one of
/// them exactly (a repeat teaches a client nothing new about the model) or there is no
/// history.
pub fn spacing<'a>(query: &[f64], history: impl Iterator<Item = &'a [f64]>) -> Option<f64> {
    let mut best = f64::INFINITY;
    let (mut sum, mut n) = (0.0, 0.0);
    for h in history {
        let d2: f64 = query.iter().zip(h).map(|(a, b)| (a - b) * (a - b)).sum();
        if d2 == 0.0 {
            return None;
        }
        best = best.min(d2);
        sum += d2.sqrt();
        n += 1.0;
    }
    (best.is_finite() && sum > 0.0).then(|| best.sqrt() / (sum / n))
}

/// Maps rows to whitened coordinates: z = L⁻¹(x − μ), with L the Cholesky factor of the
/// covariance (a small ridge keeps a singular covariance usable).
#[derive(Debug, Clone)]
pub struct Whitener {
    mean: Vec<f64>,
    /// Lower-triangular, row-major.
    l: Vec<Vec<f64>>,
}

impl Whitener {
    pub fn new(reference: &Reference) -> Result<Self, ReferenceError> {
        Self::from_moments(reference.mean.clone(), &reference.covariance)
    }

    fn from_moments(mean: Vec<f64>, covariance: &[Vec<f64>]) -> Result<Self, ReferenceError> {
        let d = mean.len();
        let trace: f64 = (0..d).map(|i| covariance[i][i]).sum();
        if !(trace.is_finite() && trace > 0.0) {
            return Err(err("the covariance has no variance: every row is the same"));
        }
        let ridge = 1e-9 * trace / d as f64;
        let mut l = vec![vec![0.0; d]; d];
        for i in 0..d {
            for j in 0..=i {
                let mut s = covariance[i][j];
                if i == j {
                    s += ridge;
                }
                s -= l[i][..j].iter().zip(&l[j][..j]).map(|(a, b)| a * b).sum::<f64>();
                if i == j {
                    if !(s.is_finite() && s > 0.0) {
                        return Err(err("the covariance is not positive definite"));
                    }
                    l[i][i] = s.sqrt();
                } else {
                    l[i][j] = s / l[j][j];
                }
            }
        }
        Ok(Self { mean, l })
    }

    pub fn dims(&self) -> usize {
        self.mean.len()
    }

    /// z = L⁻¹(x − μ), by forward substitution.
    pub fn whiten(&self, x: &[f64]) -> Vec<f64> {
        let mut z = Vec::with_capacity(self.mean.len());
        self.whiten_into(x, &mut z);
        z
    }

    pub fn whiten_into(&self, x: &[f64], z: &mut Vec<f64>) {
        z.clear();
        for i in 0..self.mean.len() {
            let mut s = x.get(i).copied().unwrap_or(f64::NAN) - self.mean[i];
            for (k, zk) in z.iter().enumerate() {
                s -= self.l[i][k] * zk;
            }
            z.push(s / self.l[i][i]);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::rng::KeyedStream;

    fn gaussian_rows(n: usize, rng: &mut KeyedStream) -> Vec<Vec<f64>> {
        (0..n)
            .map(|_| {
                let (a, b, c) = (normal(rng), normal(rng), normal(rng));
                vec![10.0 + 2.0 * a, 3.0 * a + b, b * 0.5 + c]
            })
            .collect()
    }

    pub(crate) fn normal(rng: &mut impl Random) -> f64 {
        rng.normal()
    }

    #[test]
    fn whitening_undoes_the_covariance() {
        let mut rng = KeyedStream::from_seed(b"whiten").unwrap();
        let rows = gaussian_rows(5000, &mut rng);
        let names = vec!["a".into(), "b".into(), "c".into()];
        let r = Reference::calibrate(names, &rows, 16, &mut rng).unwrap();
        r.check().unwrap();
        let w = Whitener::new(&r).unwrap();
        let z: Vec<Vec<f64>> = rows.iter().map(|x| w.whiten(x)).collect();
        for a in 0..3 {
            for b in 0..3 {
                let c: f64 = z.iter().map(|v| v[a] * v[b]).sum::<f64>() / z.len() as f64;
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((c - want).abs() < 0.05, "cov[{a}][{b}] = {c}");
            }
        }
        // A point far off the correlation line is out of distribution even though
        // every feature is within its own range.
        let odd = [10.0, -6.0, 3.0];
        assert!((0..3).all(|j| r.min[j] <= odd[j] && odd[j] <= r.max[j]));
        assert!(norm(&w.whiten(&odd)) > r.ood_distance);
        assert!(r.ood_share < 0.002);
        for b in &r.bins {
            assert_eq!(b.shares.len(), 10);
        }
    }

    #[test]
    fn bins_merge_ties_and_repeats_are_set_aside() {
        let mut v = vec![1.0, 1.0, 1.0, 1.0, 2.0, 3.0];
        let b = Bins::of(&mut v, 3);
        b.check().unwrap();
        assert_eq!(b.edges, vec![2.0]);
        assert_eq!(b.index(1.0), 0);
        assert_eq!(b.index(2.5), 1);
        let h = [vec![0.0, 0.0], vec![3.0, 4.0]];
        assert_eq!(spacing(&[3.0, 4.0], h.iter().map(Vec::as_slice)), None);
        // Nearest 3, mean (3 + 4) / 2.
        let r = spacing(&[3.0, 0.0], h.iter().map(Vec::as_slice)).unwrap();
        assert!((r - 3.0 / 3.5).abs() < 1e-12, "{r}");
        assert_eq!(spacing(&[3.0, 0.0], std::iter::empty()), None);
    }

    #[test]
    fn bad_references_are_named() {
        let mut rng = KeyedStream::from_seed(b"bad").unwrap();
        let rows = gaussian_rows(100, &mut rng);
        let mut r = Reference::calibrate(vec!["a".into(), "b".into(), "c".into()], &rows, 8, &mut rng).unwrap();
        r.mean.pop();
        assert!(r.check().unwrap_err().0.contains("`mean`"));
        let same = vec![vec![1.0, 1.0]; 50];
        let e = Reference::calibrate(vec!["a".into(), "b".into()], &same, 8, &mut rng).unwrap_err();
        assert!(e.0.contains("no variance"), "{e}");
    }
}
