//! Hardening one probability row — what a classifier says about one input — so that
//! its answers reveal less of the model (extraction) and of its training data
//! (inversion, membership inference). In order:
//!
//! 1. **label only**: a one-hot row at the top label; nothing else is released;
//! 2. **noise**: the Laplace mechanism (scale 2/ε: two probability rows differ by at
//!    most 2 in L1) or the Gaussian one (σ = √2·√(2 ln(1.25/δ))/ε: at most √2 in L2),
//!    then clipped to [0, 1] and renormalised, which is post-processing and costs no
//!    budget; the top label is kept unless the policy allows it to change (the label is
//!    then released exactly, and ε covers the confidences);
//! 3. **top-k**: the k most likely classes keep their share, renormalised; the rest 0;
//! 4. **rounding** to `decimals` by largest remainders, so the row still sums to exactly
//!    1 on the grid and the top label stays on top. Noisy rows are always rounded (4
//!    decimals unless set): floating-point noise leaks through its low-order bits
//!    (Mironov, CCS 2012), a grid removes them.
//!
//! A row that is not a probability distribution (a value outside [0, 1], not finite, or
//! a sum more than 0.001 away from 1) is refused, never guessed at: the caller fails
//! closed.

use crate::rng::Random;

/// How noisy answers are made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mechanism {
    Laplace,
    Gaussian,
}

/// Calibrated noise: the mechanism and the privacy cost of one noisy row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Noise {
    pub mechanism: Mechanism,
    /// ε per answered row (> 0).
    pub epsilon: f64,
    /// δ per answered row (Gaussian only; 0 < δ < 1).
    pub delta: f64,
}

impl Noise {
    /// The noise scale: Laplace b, or Gaussian σ.
    pub fn scale(&self) -> f64 {
        match self.mechanism {
            Mechanism::Laplace => 2.0 / self.epsilon,
            Mechanism::Gaussian => std::f64::consts::SQRT_2 * (2.0 * (1.25 / self.delta).ln()).sqrt() / self.epsilon,
        }
    }

    fn sample(&self, rng: &mut impl Random) -> f64 {
        let scale = self.scale();
        match self.mechanism {
            Mechanism::Laplace => {
                // Inverse CDF: u uniform in (−½, ½), x = −b·sgn(u)·ln(1 − 2|u|).
                let u = rng.open_unit() - 0.5;
                -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
            }
            Mechanism::Gaussian => scale * rng.normal(),
        }
    }
}

/// What a route releases of each probability row.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub label_only: bool,
    pub noise: Option<Noise>,
    pub top_k: Option<usize>,
    pub decimals: Option<u32>,
    /// Under noise, the top label may change (false: it is kept).
    pub allow_label_change: bool,
}

/// Decimals noisy rows are rounded to when the policy does not say.
pub const NOISY_DECIMALS: u32 = 4;
/// The most decimals a row is rounded to (beyond that the grid is finer than f64's).
pub const MAX_DECIMALS: u32 = 12;
/// How far from 1 a row's sum may be and still be read as probabilities (FP32 outputs).
pub const SUM_TOLERANCE: f64 = 1e-3;

impl Policy {
    /// Nothing is changed.
    pub fn passthrough() -> Self {
        Self {
            label_only: false,
            noise: None,
            top_k: None,
            decimals: None,
            allow_label_change: false,
        }
    }

    /// Whether answers cost privacy budget (one `epsilon` per row).
    pub fn cost_per_row(&self) -> Option<Noise> {
        if self.label_only { None } else { self.noise }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RowError {
    #[error("an empty row has no label")]
    Empty,
    #[error("not a probability row: {0}")]
    NotProbabilities(&'static str),
}

/// The index of the largest value (the first, on ties).
pub fn top_label(row: &[f64]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &v) in row.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Checks that `row` is a probability distribution and clamps FP32 rounding dust.
pub fn check_row(row: &mut [f64]) -> Result<(), RowError> {
    if row.is_empty() {
        return Err(RowError::Empty);
    }
    if row.iter().any(|v| !v.is_finite()) {
        return Err(RowError::NotProbabilities("a value is not a finite number"));
    }
    if row.iter().any(|&v| !(-1e-6..=1.0 + 1e-6).contains(&v)) {
        return Err(RowError::NotProbabilities("a value is outside [0, 1]"));
    }
    let sum: f64 = row.iter().sum();
    if (sum - 1.0).abs() > SUM_TOLERANCE {
        return Err(RowError::NotProbabilities("the values do not sum to 1"));
    }
    row.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    Ok(())
}

/// Hardens one row in place. Draws noise from `rng` when the policy adds noise.
pub fn harden_row(row: &mut [f64], policy: &Policy, rng: &mut impl Random) -> Result<(), RowError> {
    check_row(row)?;
    let mut top = top_label(row).ok_or(RowError::Empty)?;
    if policy.label_only {
        one_hot(row, top);
        return Ok(());
    }
    let mut decimals = policy.decimals;
    if let Some(noise) = &policy.noise {
        for v in row.iter_mut() {
            *v = (*v + noise.sample(rng)).clamp(0.0, 1.0);
        }
        normalise(row, top);
        let now = top_label(row).ok_or(RowError::Empty)?;
        if policy.allow_label_change {
            top = now;
        } else {
            // The largest noisy value goes to the real top label. A tie left with a
            // class before it is broken by the rounding below, which always follows.
            row.swap(now, top);
        }
        decimals.get_or_insert(NOISY_DECIMALS);
    }
    if let Some(k) = policy.top_k
        && k < row.len()
    {
        let mut order: Vec<usize> = (0..row.len()).collect();
        // The top label first, then largest first (index order on ties: a stable sort).
        order.sort_by(|&a, &b| (b == top).cmp(&(a == top)).then(row[b].total_cmp(&row[a])));
        for &i in order.iter().skip(k.max(1)) {
            row[i] = 0.0;
        }
        normalise(row, top);
    }
    if let Some(d) = decimals {
        round_row(row, d.min(MAX_DECIMALS), top);
    }
    Ok(())
}

fn one_hot(row: &mut [f64], top: usize) {
    row.iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = if i == top { 1.0 } else { 0.0 });
}

/// Scales a non-negative row to sum 1; all zeros becomes one-hot at `top`.
fn normalise(row: &mut [f64], top: usize) {
    let sum: f64 = row.iter().sum();
    if sum > 0.0 && sum.is_finite() {
        row.iter_mut().for_each(|v| *v /= sum);
    } else {
        one_hot(row, top);
    }
}

/// Largest-remainder rounding to `decimals`: every value a multiple of 10^−decimals,
/// the row summing to exactly that many units, and `top` still the first largest.
fn round_row(row: &mut [f64], decimals: u32, top: usize) {
    // A row read as probabilities may sum to 1 ± 0.001 (FP32): exactly 1 first.
    normalise(row, top);
    let units = 10u64.pow(decimals);
    let scaled: Vec<f64> = row.iter().map(|v| v * units as f64).collect();
    #[allow(
        clippy::cast_possible_truncation,
        reason = "each value is in [0, 10^MAX_DECIMALS], far inside u64"
    )]
    let mut whole: Vec<u64> = scaled.iter().map(|s| s.floor() as u64).collect();
    let given: u64 = whole.iter().sum();
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| (scaled[b] - scaled[b].floor()).total_cmp(&(scaled[a] - scaled[a].floor())));
    let missing = usize::try_from(units.saturating_sub(given)).unwrap_or(0);
    for &i in order.iter().cycle().take(missing) {
        whole[i] += 1;
    }
    // Rounding can tie a class with the top one; a unit moves to the top to break it.
    for i in 0..whole.len() {
        while i != top && (whole[i] > whole[top] || (whole[i] == whole[top] && i < top)) && whole[i] > 0 {
            whole[i] -= 1;
            whole[top] += 1;
        }
    }
    for (v, w) in row.iter_mut().zip(&whole) {
        *v = *w as f64 / units as f64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::KeyedStream;
    use proptest::prelude::*;

    fn policy() -> Policy {
        Policy::passthrough()
    }

    #[test]
    fn label_only_top_k_and_rounding() {
        let mut rng = KeyedStream::from_seed(b"t").unwrap();
        let mut row = vec![0.2, 0.5, 0.3];
        harden_row(
            &mut row,
            &Policy {
                label_only: true,
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(row, [0.0, 1.0, 0.0]);

        let mut row = vec![0.2, 0.5, 0.3];
        harden_row(
            &mut row,
            &Policy {
                top_k: Some(1),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(row, [0.0, 1.0, 0.0]);
        let mut row = vec![0.1, 0.5, 0.4];
        harden_row(
            &mut row,
            &Policy {
                top_k: Some(2),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert!((row[1] - 5.0 / 9.0).abs() < 1e-12 && row[0] == 0.0);

        let mut row = vec![1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0];
        harden_row(
            &mut row,
            &Policy {
                decimals: Some(2),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            row,
            [0.34, 0.33, 0.33],
            "sums to 1 on the grid, the first of the tied stays top"
        );
        let mut row = vec![0.4951, 0.4949, 0.01];
        harden_row(
            &mut row,
            &Policy {
                decimals: Some(1),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(row, [0.5, 0.5, 0.0], "a tie leaves the real top first");
        let mut row = vec![0.4949, 0.4951, 0.01];
        harden_row(
            &mut row,
            &Policy {
                decimals: Some(1),
                ..policy()
            },
            &mut rng,
        )
        .unwrap();
        assert_eq!(
            row,
            [0.4, 0.6, 0.0],
            "a tie made by rounding is broken toward the real top"
        );
    }

    #[test]
    fn rows_that_are_not_probabilities_are_refused() {
        let mut rng = KeyedStream::from_seed(b"t").unwrap();
        for bad in [
            vec![],
            vec![0.5, 0.6],
            vec![2.0, -1.0],
            vec![f64::NAN, 1.0],
            vec![3.2, -0.4, 1.1],
        ] {
            let mut row = bad.clone();
            assert!(harden_row(&mut row, &policy(), &mut rng).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn noise_has_the_stated_scale() {
        // The mean absolute Laplace draw is b; the Gaussian's standard deviation is σ.
        let mut rng = KeyedStream::from_seed(b"scale").unwrap();
        let n = 200_000;
        let lap = Noise {
            mechanism: Mechanism::Laplace,
            epsilon: 0.5,
            delta: 0.0,
        };
        let mean_abs: f64 = (0..n).map(|_| lap.sample(&mut rng).abs()).sum::<f64>() / f64::from(n);
        assert!(
            (mean_abs / lap.scale() - 1.0).abs() < 0.02,
            "{mean_abs} vs {}",
            lap.scale()
        );
        let gauss = Noise {
            mechanism: Mechanism::Gaussian,
            epsilon: 1.0,
            delta: 1e-5,
        };
        let var: f64 = (0..n).map(|_| gauss.sample(&mut rng).powi(2)).sum::<f64>() / f64::from(n);
        assert!((var.sqrt() / gauss.scale() - 1.0).abs() < 0.02);
    }

    proptest! {
        #[test]
        fn hardened_rows_stay_distributions_with_the_same_top(
            raw in proptest::collection::vec(0.0f64..1.0, 1..12),
            label_only: bool, k in 0usize..6, decimals in proptest::option::of(0u32..6),
            noisy: bool, gaussian: bool, epsilon in 0.05f64..8.0, seed: u64,
        ) {
            let sum: f64 = raw.iter().sum();
            prop_assume!(sum > 0.0);
            let mut row: Vec<f64> = raw.iter().map(|v| v / sum).collect();
            let top = top_label(&row).unwrap();
            let noise = noisy.then_some(Noise {
                mechanism: if gaussian { Mechanism::Gaussian } else { Mechanism::Laplace },
                epsilon,
                delta: 1e-5,
            });
            let p = Policy { label_only, noise, top_k: (k > 0).then_some(k), decimals, allow_label_change: false };
            let mut rng = KeyedStream::from_seed(&seed.to_le_bytes()).unwrap();
            harden_row(&mut row, &p, &mut rng).unwrap();
            prop_assert!(row.iter().all(|v| (0.0..=1.0).contains(v)));
            prop_assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{row:?}");
            prop_assert_eq!(top_label(&row), Some(top), "{:?}", row);
            if let Some(d) = decimals.or(noisy.then_some(NOISY_DECIMALS)).filter(|_| !label_only) {
                let units = 10f64.powi(d as i32);
                prop_assert!(row.iter().all(|v| ((v * units) - (v * units).round()).abs() < 1e-6));
            }
        }
    }
}
