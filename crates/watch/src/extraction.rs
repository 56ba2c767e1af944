//! Extraction and out-of-distribution detection on a classifier route, per principal.
//!
//! Every query is whitened against the route's [`Reference`] (z = L⁻¹(x − μ)), then:
//!
//! - **out of distribution** ([`Detector::OutOfDistribution`]): a feature outside its
//!   reference range (widened by a quarter of it), or a Mahalanobis distance above the
//!   reference's threshold — a per-query signal;
//! - **spacing** ([`Detector::ExtractionSpacing`], after PRADA, Juuti et al. 2019): how
//!   close each query sits to the principal's recent distinct queries, relative to how
//!   far it is from them on average ([`spacing`]). Honest clients draw from the data,
//!   so this follows the reference's distribution; line searches, boundary bisection,
//!   augmentation around real rows and fine grids step in moves far smaller than their
//!   spread. The test is one-sided: the share of the last `window` queries below the
//!   reference's lowest tenth, against that tenth (binomial tail at the configured
//!   false-alarm rate). Clients who only ask about one region — denser than the whole
//!   data — sit *farther* on this scale, not closer, and are not flagged. Exact repeats
//!   are set aside (they teach nothing new; the privacy budget prices them);
//! - **out-of-distribution share** ([`Detector::ExtractionOod`]): the principal's share
//!   of out-of-distribution queries against the reference's own share (binomial tail);
//! - **boundary** ([`Detector::ExtractionBoundary`]): the principal's share of answers
//!   whose top two probabilities are within `low_margin` of each other, against the
//!   route's share over all principals (binomial tail) — probing the decision boundary.
//!
//! State per principal is bounded: `history` whitened queries and `window` flags.

use std::collections::VecDeque;

use crate::reference::{Reference, Whitener, norm, spacing};
use crate::signal::{Detector, Signal};
use crate::stats;

/// Knobs of the extraction detectors (defaults in the config crate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExtractionConfig {
    /// Spacings, query flags and answer margins kept per principal.
    pub window: usize,
    /// Tests wait for this many observations.
    pub min_queries: usize,
    /// False-alarm rate of one test on honest traffic.
    pub alpha: f64,
    /// An answer whose top two probabilities are closer than this is low-margin.
    pub low_margin: f64,
}

/// The route's model of honest queries, shared by every principal's state.
#[derive(Debug, Clone)]
pub struct Model {
    pub reference: Reference,
    whitener: Whitener,
    config: ExtractionConfig,
    /// Widened per-feature bounds.
    bounds: Vec<(f64, f64)>,
}

/// One principal's recent queries and flags.
#[derive(Debug, Clone, Default)]
pub struct State {
    history: VecDeque<Vec<f64>>,
    close: Flags,
    ood: Flags,
    low_margin: Flags,
    /// Distinct queries seen.
    pub queries: u64,
}

/// A sliding window of booleans with its count of `true`.
#[derive(Debug, Clone, Default)]
struct Flags {
    ring: VecDeque<bool>,
    set: u32,
}

impl Flags {
    fn push(&mut self, flag: bool, window: usize) {
        self.ring.push_back(flag);
        self.set += u32::from(flag);
        if self.ring.len() > window && self.ring.pop_front() == Some(true) {
            self.set -= 1;
        }
    }

    fn len(&self) -> u32 {
        u32::try_from(self.ring.len()).unwrap_or(u32::MAX)
    }

    /// A signal when the share of set flags is improbably high against `expected`.
    fn test(&self, expected: f64, config: &ExtractionConfig) -> Option<f64> {
        let n = self.len();
        if (n as usize) < config.min_queries {
            return None;
        }
        let p = expected.clamp(0.02, 0.5);
        let mean = f64::from(n) * p;
        // Cheap screen before the exact tail.
        if f64::from(self.set) < mean + 3.0 * (mean * (1.0 - p)).sqrt() {
            return None;
        }
        let tail = stats::binomial_upper(self.set, n, p);
        (tail < config.alpha).then(|| (config.alpha.ln() / tail.max(1e-300).ln()).recip().max(1.0))
    }
}

impl Model {
    pub fn new(reference: Reference, config: ExtractionConfig) -> Result<Self, crate::reference::ReferenceError> {
        let whitener = Whitener::new(&reference)?;
        let bounds = reference
            .min
            .iter()
            .zip(&reference.max)
            .enumerate()
            .map(|(j, (lo, hi))| {
                let margin = reference.margin.get(j).copied().unwrap_or(crate::reference::MIN_MARGIN);
                let pad = (hi - lo).abs() * margin;
                (lo - pad, hi + pad)
            })
            .collect();
        Ok(Self {
            reference,
            whitener,
            config,
            bounds,
        })
    }

    pub fn dims(&self) -> usize {
        self.whitener.dims()
    }

    /// Is one query out of distribution? A reason when it is.
    fn out_of_distribution(&self, x: &[f64], z: &[f64]) -> Option<Signal> {
        for (j, (v, (lo, hi))) in x.iter().zip(&self.bounds).enumerate() {
            if !(lo..=hi).contains(&v) {
                let name = self.reference.features.get(j).map_or("?", String::as_str);
                return Some(Signal {
                    detector: Detector::OutOfDistribution,
                    score: 1.0 + (v - v.clamp(*lo, *hi)).abs() / (hi - lo).max(f64::MIN_POSITIVE),
                    reason: format!("feature `{name}` is outside its reference range [{lo:.4}, {hi:.4}]"),
                });
            }
        }
        let d = norm(z);
        (d > self.reference.ood_distance).then(|| Signal {
            detector: Detector::OutOfDistribution,
            score: d / self.reference.ood_distance,
            reason: format!(
                "Mahalanobis distance {d:.2} from the reference exceeds {:.2}",
                self.reference.ood_distance
            ),
        })
    }

    /// Takes one query row (features in reference order); returns what fired.
    pub fn observe_query(&self, state: &mut State, x: &[f64], out: &mut Vec<Signal>) {
        let z = self.whitener.whiten(x);
        let ood = self.out_of_distribution(x, &z);
        let is_ood = ood.is_some();
        out.extend(ood);
        let w = self.config.window;
        let gap = spacing(&z, state.history.iter().map(Vec::as_slice));
        if gap.is_none() && !state.history.is_empty() {
            // An exact repeat: nothing new to learn from or about it.
            return;
        }
        state.queries += 1;
        state.history.push_back(z);
        if state.history.len() > self.reference.spacing.window {
            state.history.pop_front();
        }
        state.ood.push(is_ood, w);
        if let Some(s) = state.ood.test(self.reference.ood_share, &self.config) {
            out.push(Signal {
                detector: Detector::ExtractionOod,
                score: s,
                reason: format!(
                    "{} of the last {} queries are out of distribution (reference {:.1}%)",
                    state.ood.set,
                    state.ood.len(),
                    self.reference.ood_share * 100.0
                ),
            });
        }
        let Some(gap) = gap else { return };
        let bins = &self.reference.spacing.bins;
        let (Some(edge), Some(share)) = (bins.edges.first(), bins.shares.first()) else {
            return;
        };
        state.close.push(gap < *edge, w);
        if gap < *edge
            && let Some(s) = state.close.test(*share, &self.config)
        {
            out.push(Signal {
                detector: Detector::ExtractionSpacing,
                score: s,
                reason: format!(
                    "{} of the last {} queries sit unusually close to one of the client's previous queries \
                     (honest clients: {:.0}%): small steps through the input space",
                    state.close.set,
                    state.close.len(),
                    share * 100.0
                ),
            });
        }
    }

    /// Takes one answer's margin (top probability minus the next); `expected` is the
    /// route's share of low-margin answers.
    pub fn observe_margin(&self, state: &mut State, margin: f64, expected: f64, out: &mut Vec<Signal>) {
        let low = margin < self.config.low_margin;
        state.low_margin.push(low, self.config.window);
        if low && let Some(s) = state.low_margin.test(expected, &self.config) {
            out.push(Signal {
                detector: Detector::ExtractionBoundary,
                score: s,
                reason: format!(
                    "{} of the last {} answers are within {} of the decision boundary (route share {:.1}%)",
                    state.low_margin.set,
                    state.low_margin.len(),
                    self.config.low_margin,
                    expected * 100.0
                ),
            });
        }
    }

    pub fn low_margin(&self) -> f64 {
        self.config.low_margin
    }
}

/// The margin of a probability row: the top value minus the runner-up.
pub fn margin(row: &[f64]) -> f64 {
    let (mut a, mut b) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    for v in row {
        if *v > a {
            b = a;
            a = *v;
        } else if *v > b {
            b = *v;
        }
    }
    if b.is_finite() { a - b } else { 1.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::tests::normal;
    use crate::rng::{KeyedStream, Random};

    fn config() -> ExtractionConfig {
        ExtractionConfig {
            window: 100,
            min_queries: 40,
            alpha: 1e-6,
            low_margin: 0.1,
        }
    }

    fn draw(rng: &mut KeyedStream) -> Vec<f64> {
        let (a, b, c) = (normal(rng), normal(rng), normal(rng));
        vec![5.0 + a, 2.0 * a + 0.5 * b, 3.0 + c - 0.3 * a]
    }

    fn model(rng: &mut KeyedStream) -> Model {
        let rows: Vec<Vec<f64>> = (0..2000).map(|_| draw(rng)).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        Model::new(Reference::calibrate(names, &rows, 32, rng).unwrap(), config()).unwrap()
    }

    fn fired(m: &Model, queries: impl Iterator<Item = Vec<f64>>) -> (Vec<Detector>, Option<u64>) {
        let mut state = State::default();
        let mut seen = Vec::new();
        let mut first = None;
        for q in queries {
            let mut out = Vec::new();
            m.observe_query(&mut state, &q, &mut out);
            for s in out {
                if s.detector != Detector::OutOfDistribution && first.is_none() {
                    first = Some(state.queries);
                }
                if !seen.contains(&s.detector) {
                    seen.push(s.detector);
                }
            }
        }
        (seen, first)
    }

    #[test]
    fn honest_clients_stay_quiet_and_attacks_fire() {
        let mut rng = KeyedStream::from_seed(b"extraction").unwrap();
        let m = model(&mut rng);
        // Honest: 20 clients × 500 queries from the same distribution (fresh draws).
        for _ in 0..20 {
            let honest: Vec<Vec<f64>> = (0..500).map(|_| draw(&mut rng)).collect();
            let (seen, _) = fired(&m, honest.into_iter());
            assert!(
                seen.iter().all(|d| *d == Detector::OutOfDistribution),
                "an honest client fired {seen:?}"
            );
        }
        // Uniform random queries over the features' box (equation solving, surrogates).
        let r = &m.reference;
        let uniform: Vec<Vec<f64>> = (0..300)
            .map(|_| {
                (0..3)
                    .map(|j| r.min[j] + rng.open_unit() * (r.max[j] - r.min[j]))
                    .collect()
            })
            .collect();
        let (seen, first) = fired(&m, uniform.into_iter());
        assert!(seen.contains(&Detector::ExtractionOod), "{seen:?}");
        assert!(first.unwrap() <= 60, "uniform queries flagged after {first:?}");
        // A line search between two points: tiny steps.
        let line = (0..300).map(|i| {
            let t = f64::from(i) / 300.0;
            vec![4.0 + t, 2.0 * t - 1.0, 3.0]
        });
        let (seen, first) = fired(&m, line);
        assert!(seen.contains(&Detector::ExtractionSpacing), "{seen:?}");
        assert!(first.unwrap() <= 60, "a line search flagged after {first:?}");
        // A grid around the mean.
        let grid = (0..400).map(|i| {
            let (a, b, c) = (i % 7, (i / 7) % 7, i / 49);
            vec![
                4.0 + f64::from(a) * 0.3,
                -1.0 + f64::from(b) * 0.3,
                2.5 + f64::from(c) * 0.3,
            ]
        });
        let (seen, _) = fired(&m, grid);
        assert!(seen.contains(&Detector::ExtractionSpacing), "{seen:?}");
        // Exact repeats are set aside: one row a thousand times fires nothing.
        let same = vec![5.0, 0.0, 3.0];
        let (seen, _) = fired(&m, std::iter::repeat_n(same, 1000));
        assert!(seen.is_empty(), "{seen:?}");
    }

    #[test]
    fn a_client_of_one_region_is_not_mistaken_for_small_steps() {
        // Three well-separated clusters; the reference covers all three, the client
        // only ever asks about one (denser than the whole, by far).
        let mut rng = KeyedStream::from_seed(b"regions").unwrap();
        let centre = |k: usize| [10.0 * k as f64, -5.0 * k as f64, 3.0];
        let cluster = |k: usize, rng: &mut KeyedStream| -> Vec<f64> {
            let c = centre(k);
            vec![c[0] + normal(rng), c[1] + normal(rng), c[2] + normal(rng)]
        };
        let rows: Vec<Vec<f64>> = (0..3000).map(|i| cluster(i % 3, &mut rng)).collect();
        let names = vec!["a".into(), "b".into(), "c".into()];
        let m = Model::new(Reference::calibrate(names, &rows, 32, &mut rng).unwrap(), config()).unwrap();
        for k in 0..3 {
            let one: Vec<Vec<f64>> = (0..500).map(|_| cluster(k, &mut rng)).collect();
            let (seen, _) = fired(&m, one.into_iter());
            assert!(seen.is_empty(), "a one-region client fired {seen:?}");
        }
        // Small steps inside that same region still fire.
        let steps = (0..300).map(|i| vec![f64::from(i) * 0.01, 0.0, 3.0]);
        let (seen, _) = fired(&m, steps);
        assert!(seen.contains(&Detector::ExtractionSpacing), "{seen:?}");
    }

    #[test]
    fn out_of_range_and_boundary() {
        let mut rng = KeyedStream::from_seed(b"boundary").unwrap();
        let m = model(&mut rng);
        let mut s = State::default();
        let mut out = Vec::new();
        m.observe_query(&mut s, &[5.0, 1e6, 3.0], &mut out);
        assert_eq!(out[0].detector, Detector::OutOfDistribution);
        assert!(
            out[0].reason.contains("`b`") && !out[0].reason.contains("1000000"),
            "{}",
            out[0].reason
        );
        let mut out = Vec::new();
        for _ in 0..100 {
            m.observe_margin(&mut s, 0.5, 0.05, &mut out);
        }
        assert!(out.is_empty());
        for _ in 0..60 {
            m.observe_margin(&mut s, 0.01, 0.05, &mut out);
        }
        assert!(out.iter().any(|s| s.detector == Detector::ExtractionBoundary));
        assert!((margin(&[0.2, 0.5, 0.3]) - 0.2).abs() < 1e-12);
    }
}
