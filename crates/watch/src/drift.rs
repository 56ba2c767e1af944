//! Drift on a route: does live traffic still look like what the model was validated
//! on? The population stability index (PSI) of a sliding window against a reference:
//!
//! - inputs: each feature's quantile bins from the route's [`Reference`];
//! - outputs: the predicted labels and the top confidence (ten bins over [0, 1]),
//!   against the route's first full window of answers, frozen as its reference;
//! - LLM routes: prompts (length, writing system) and outcomes (policy refusals,
//!   status class), against the route's first window ([`Categorical`]).
//!
//! A window is tested every tenth of its length once full. PSI beyond what sampling
//! alone gives (two samples of one distribution, of n and m rows over k bins, differ by
//! PSI ≈ χ²(k − 1)·(1/n + 1/m); the allowance is its 1% quantile, shared over the
//! quantities tested) by more than `threshold` (0.25 is the usual "shifted") fires,
//! naming the feature or output that moved most — so a reference calibrated on a small
//! data set, or with many features, does not cry drift at honest traffic.

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

/// Chance that one test of a window fires on traffic drawn from the reference, over all
/// its quantities together.
const FALSE_ALARM: f64 = 0.01;

/// The quantity whose PSI most exceeds what sampling alone gives, with that PSI and
/// the excess. PSI between two samples of one distribution — a window of `n` and a
/// reference of `reference_rows` — is about χ²(bins − 1)·(1/n + 1/reference_rows); the
/// allowance is that χ²'s upper quantile at [`FALSE_ALARM`] shared over the quantities
/// tested (the worst of 30 features strays further than one feature does).
fn worst(counts: &[Vec<u32>], shares: &[Vec<f64>], n: usize, reference_rows: f64) -> Option<(usize, f64, f64)> {
    let per_test = FALSE_ALARM / counts.len().max(1) as f64;
    let scale = 1.0 / n.max(1) as f64 + 1.0 / reference_rows.max(1.0);
    counts
        .iter()
        .zip(shares)
        .map(|(c, s)| {
            let value = psi(c, s);
            (
                value,
                value - crate::stats::chi2_upper(c.len().saturating_sub(1), per_test) * scale,
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

/// Categorical quantities against the first full window they saw, frozen as the
/// reference: a classifier's answers (labels, top confidence), an LLM route's prompts
/// (length, script) and outcomes (policy refusals, status class).
#[derive(Debug, Clone)]
pub struct Categorical {
    detector: Detector,
    names: &'static [&'static str],
    threshold: f64,
    window: Window,
    reference: Option<Vec<Vec<f64>>>,
}

impl Categorical {
    /// `bins[i]` values for quantity `names[i]`.
    pub fn new(
        detector: Detector,
        names: &'static [&'static str],
        bins: &[usize],
        window: usize,
        threshold: f64,
    ) -> Self {
        Self {
            detector,
            names,
            threshold,
            window: Window::new(window, bins.iter().copied()),
            reference: None,
        }
    }

    /// One row of bin indices (one per quantity).
    pub fn observe(&mut self, row: Vec<u16>) -> Option<Signal> {
        if !self.window.push(row) {
            return None;
        }
        let Some(reference) = &self.reference else {
            self.reference = Some(self.window.shares());
            return None;
        };
        let n = self.window.rows.len();
        let (i, value, excess) = worst(&self.window.counts, reference, n, n as f64)?;
        (excess > self.threshold).then(|| Signal {
            detector: self.detector,
            score: excess / self.threshold,
            reason: format!(
                "the {} of the last {n} exchanges has drifted from the route's first window (PSI {value:.2})",
                self.names.get(i).copied().unwrap_or("?")
            ),
        })
    }
}

#[derive(Debug, Clone)]
pub struct Drift {
    threshold: f64,
    inputs: Option<Window>,
    /// The output window's classes (labels beyond the first answer's width are clamped).
    classes: usize,
    outputs: Option<Categorical>,
    window: usize,
}

impl Drift {
    pub fn new(window: usize, threshold: f64) -> Self {
        Self {
            threshold,
            inputs: None,
            classes: 0,
            outputs: None,
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
            self.outputs = Some(Categorical::new(
                Detector::DriftOutput,
                &["predicted labels", "top confidence"],
                &[self.classes, 10],
                self.window,
                self.threshold,
            ));
        }
        let top = crate::harden::top_label(row)?.min(self.classes - 1);
        self.outputs
            .as_mut()?
            .observe(vec![u16::try_from(top).unwrap_or(u16::MAX), confidence_bin(row[top])])
    }
}

/// LLM prompts: the length (bit length of the byte count, 0–23) and the dominant script.
pub const PROMPT_QUANTITIES: &[&str] = &["prompt length", "prompt script"];
pub const PROMPT_BINS: [usize; 2] = [24, 9];
/// LLM outcomes: refused by policy or not, and the status class (2xx, 4xx, 5xx, other).
pub const OUTCOME_QUANTITIES: &[&str] = &["policy refusals", "status class"];
pub const OUTCOME_BINS: [usize; 2] = [2, 4];

/// The writing system most of `text`'s letters are in (Latin, Cyrillic, Greek, Arabic,
/// Hebrew, Devanagari, Han and kana, Hangul, other or none); the first 4 096 characters.
pub fn script(text: &str) -> u16 {
    let mut counts = [0u32; 9];
    for c in text.chars().take(4096).filter(|c| c.is_alphabetic()) {
        let i = match u32::from(c) {
            0x41..=0x24F | 0x1E00..=0x1EFF => 0,
            0x400..=0x52F => 1,
            0x370..=0x3FF => 2,
            0x600..=0x6FF | 0x750..=0x77F => 3,
            0x590..=0x5FF => 4,
            0x900..=0x97F => 5,
            0x3040..=0x30FF | 0x4E00..=0x9FFF | 0x3400..=0x4DBF => 6,
            0xAC00..=0xD7AF | 0x1100..=0x11FF => 7,
            _ => 8,
        };
        counts[i] += 1;
    }
    let (best, n) = counts.iter().enumerate().max_by_key(|(_, n)| **n).unwrap_or((8, &0));
    if *n == 0 { 8 } else { u16::try_from(best).unwrap_or(8) }
}

/// An LLM prompt's drift row: length bin and script.
pub fn prompt_row(text: &str) -> Vec<u16> {
    let bits = usize::BITS - text.len().leading_zeros();
    vec![u16::try_from(bits.min(23)).unwrap_or(23), script(text)]
}

/// An LLM exchange's outcome row.
pub fn outcome_row(refused: bool, status: u16) -> Vec<u16> {
    let class = match status {
        200..=299 => 0,
        400..=499 => 1,
        500..=599 => 2,
        _ => 3,
    };
    vec![u16::from(refused), class]
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
    fn llm_prompts_drift_in_length_and_script() {
        assert_eq!(script("Hello there, how are you?"), 0);
        assert_eq!(script("Привет, как дела?"), 1);
        assert_eq!(script("你好，今天天气怎么样"), 6);
        assert_eq!(script("1234 !!"), 8);
        assert_eq!(prompt_row("")[0], 0);
        assert_eq!(prompt_row("abcd")[0], 3);
        let mut d = Categorical::new(Detector::DriftInput, PROMPT_QUANTITIES, &PROMPT_BINS, 200, 0.25);
        let mut rng = KeyedStream::from_seed(b"prompts").unwrap();
        let english = [
            "What is the capital of France?",
            "Summarise this article about rain for me please, it is long.",
        ];
        for i in 0..2000 {
            let t = english[usize::from(rng.open_unit() < 0.5)];
            assert!(d.observe(prompt_row(t)).is_none(), "steady traffic fired at {i}");
        }
        let fired = (0..400).find_map(|_| d.observe(prompt_row("Расскажи мне о погоде в Москве сегодня")));
        let s = fired.expect("a switch of language must fire");
        assert!(s.reason.contains("prompt script"), "{}", s.reason);
        let mut o = Categorical::new(Detector::DriftOutput, OUTCOME_QUANTITIES, &OUTCOME_BINS, 200, 0.25);
        for _ in 0..1000 {
            assert!(o.observe(outcome_row(rng.open_unit() < 0.02, 200)).is_none());
        }
        assert!((0..400).any(|_| o.observe(outcome_row(rng.open_unit() < 0.5, 400)).is_some()));
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
