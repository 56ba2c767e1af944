//! Drift on a route: does live traffic still look like what the model was validated
//! on? The population stability index (PSI) of a sliding window against a reference:
//!
//! - inputs: each feature's quantile bins from the route's [`Reference`];
//! - outputs: the predicted labels and the top confidence (ten bins over [0, 1]),
//!   against the route's first full window of answers, frozen as its reference.
//!
//! A window is tested every tenth of its length once full. PSI beyond what sampling
//! alone gives (two samples of one distribution, of n and m rows over k bins, differ by
//! about (k − 1)(1/n + 1/m)) by more than `threshold` (0.25 is the usual "shifted")
//! fires, naming the feature or output that moved most — so a reference calibrated on
//! a small data set does not cry drift at honest traffic.

use std::collections::VecDeque;

use crate::reference::{Bins, Reference};
use crate::signal::{Detector, Signal};
use crate::stats::psi;

/// Sliding counts of bin indices for several quantities at once.
#[derive(Debug, Clone)]
struct Window {
    len: usize,
    rows: VecDeque<Vec<u16>>,
    counts: Vec<Vec<u32>>,
    since_test: usize,
}

impl Window {
    fn new(len: usize, bins: impl Iterator<Item = usize>) -> Self {
        Self {
            len: len.max(10),
            rows: VecDeque::new(),
            counts: bins.map(|k| vec![0; k]).collect(),
            since_test: 0,
        }
    }

    /// Adds one row of bin indices; true when a test is due.
    fn push(&mut self, row: Vec<u16>) -> bool {
        for (c, i) in self.counts.iter_mut().zip(&row) {
            if let Some(x) = c.get_mut(usize::from(*i)) {
                *x += 1;
            }
        }
        self.rows.push_back(row);
        if self.rows.len() > self.len
            && let Some(old) = self.rows.pop_front()
        {
            for (c, i) in self.counts.iter_mut().zip(&old) {
                if let Some(x) = c.get_mut(usize::from(*i)) {
                    *x = x.saturating_sub(1);
                }
            }
        }
        self.since_test += 1;
        if self.rows.len() >= self.len && self.since_test >= self.len / 10 {
            self.since_test = 0;
            return true;
        }
        false
    }

    fn shares(&self) -> Vec<Vec<f64>> {
        let n = self.rows.len().max(1) as f64;
        self.counts
            .iter()
            .map(|c| c.iter().map(|x| f64::from(*x) / n).collect())
            .collect()
    }
}

/// The quantity whose PSI most exceeds what sampling alone gives, with that PSI and
/// the excess. Two samples of one distribution — a window of `n` and a reference of
/// `reference_rows` — differ by PSI ≈ (bins − 1)·(1/n + 1/reference_rows) on average
/// (PSI is about χ²/n); that much is allowed before the threshold.
fn worst(counts: &[Vec<u32>], shares: &[Vec<f64>], n: usize, reference_rows: f64) -> Option<(usize, f64, f64)> {
    counts
        .iter()
        .zip(shares)
        .map(|(c, s)| {
            let value = psi(c, s);
            let bins = c.len().saturating_sub(1) as f64;
            (
                value,
                value - bins * (1.0 / n.max(1) as f64 + 1.0 / reference_rows.max(1.0)),
            )
        })
        .enumerate()
        .max_by(|a, b| a.1.1.total_cmp(&b.1.1))
        .map(|(i, (value, excess))| (i, value, excess))
}

fn bin_of(bins: &Bins, x: f64) -> u16 {
    u16::try_from(bins.index(x)).unwrap_or(u16::MAX)
}

/// Confidence bins: ten over [0, 1].
fn confidence_bin(p: f64) -> u16 {
    // Truncation is the binning.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let b = (p.clamp(0.0, 1.0) * 10.0) as u16;
    b.min(9)
}

#[derive(Debug, Clone)]
pub struct Drift {
    threshold: f64,
    inputs: Option<Window>,
    /// The output window's classes (labels beyond the first answer's width are clamped).
    classes: usize,
    outputs: Option<Window>,
    /// The first full output window, frozen.
    output_reference: Option<Vec<Vec<f64>>>,
    window: usize,
}

impl Drift {
    pub fn new(window: usize, threshold: f64) -> Self {
        Self {
            threshold,
            inputs: None,
            classes: 0,
            outputs: None,
            output_reference: None,
            window,
        }
    }

    /// One query row against the reference's per-feature bins.
    pub fn observe_input(&mut self, reference: &Reference, x: &[f64]) -> Option<Signal> {
        let window = self.window;
        let w = self
            .inputs
            .get_or_insert_with(|| Window::new(window, reference.bins.iter().map(|b| b.shares.len())));
        let row = reference.bins.iter().zip(x).map(|(b, v)| bin_of(b, *v)).collect();
        if !w.push(row) {
            return None;
        }
        let shares: Vec<Vec<f64>> = reference.bins.iter().map(|b| b.shares.clone()).collect();
        let (j, value, excess) = worst(&w.counts, &shares, w.rows.len(), reference.rows as f64)?;
        (excess > self.threshold).then(|| Signal {
            detector: Detector::DriftInput,
            score: excess / self.threshold,
            reason: format!(
                "feature `{}` has drifted from the reference (PSI {value:.2} over the last {} queries)",
                reference.features.get(j).map_or("?", String::as_str),
                w.rows.len()
            ),
        })
    }

    /// One answer's probability row.
    pub fn observe_output(&mut self, row: &[f64]) -> Option<Signal> {
        if row.is_empty() {
            return None;
        }
        if self.outputs.is_none() {
            self.classes = row.len().min(usize::from(u16::MAX));
            self.outputs = Some(Window::new(self.window, [self.classes, 10].into_iter()));
        }
        let top = crate::harden::top_label(row)?.min(self.classes - 1);
        let w = self.outputs.as_mut()?;
        let due = w.push(vec![u16::try_from(top).unwrap_or(u16::MAX), confidence_bin(row[top])]);
        if !due {
            return None;
        }
        let Some(reference) = &self.output_reference else {
            self.output_reference = Some(w.shares());
            return None;
        };
        let (i, value, excess) = worst(&w.counts, reference, w.rows.len(), w.rows.len() as f64)?;
        (excess > self.threshold).then(|| Signal {
            detector: Detector::DriftOutput,
            score: excess / self.threshold,
            reason: format!(
                "the {} of the answers has drifted from the route's first window (PSI {value:.2})",
                if i == 0 { "predicted labels" } else { "top confidence" }
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::tests::normal;
    use crate::rng::{KeyedStream, Random};

    #[test]
    fn a_shifted_feature_is_named_and_steady_traffic_is_not() {
        let mut rng = KeyedStream::from_seed(b"drift").unwrap();
        let rows: Vec<Vec<f64>> = (0..3000).map(|_| vec![normal(&mut rng), normal(&mut rng)]).collect();
        let r = Reference::calibrate(vec!["x".into(), "y".into()], &rows, 16, &mut rng).unwrap();
        let mut d = Drift::new(500, 0.25);
        for _ in 0..5000 {
            let s = d.observe_input(&r, &[normal(&mut rng), normal(&mut rng)]);
            assert!(s.is_none(), "{s:?}");
        }
        let mut fired = None;
        for i in 0..2000 {
            if let Some(s) = d.observe_input(&r, &[normal(&mut rng), normal(&mut rng) + 1.0]) {
                fired = Some((i, s));
                break;
            }
        }
        let (after, s) = fired.expect("a shift of one standard deviation must fire");
        assert!(after < 500, "{after}");
        assert!(s.reason.contains("`y`"), "{}", s.reason);
    }

    #[test]
    fn output_labels_drift_against_the_first_window() {
        let mut rng = KeyedStream::from_seed(b"labels").unwrap();
        let mut d = Drift::new(200, 0.25);
        let row = |p_first: f64, rng: &mut KeyedStream| {
            if rng.open_unit() < p_first {
                vec![0.8, 0.1, 0.1]
            } else {
                vec![0.1, 0.2, 0.7]
            }
        };
        for _ in 0..2000 {
            let r = row(0.5, &mut rng);
            assert!(d.observe_output(&r).is_none());
        }
        let fired = (0..1000).any(|_| {
            let r = row(0.95, &mut rng);
            d.observe_output(&r).is_some()
        });
        assert!(fired);
    }
}
