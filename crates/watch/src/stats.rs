//! The statistics the detectors need, small enough to write here: the binomial upper
//! tail (is a share of flagged queries improbably high?), the population stability
//! index (has a distribution moved?) and the χ² quantile that says how far PSI moves by
//! chance alone.

/// Expected shares are floored at this, so an empty reference bin cannot make any
/// observation infinitely surprising.
const FLOOR: f64 = 1e-3;

/// P(X ≥ k) for X ~ Binomial(n, p), summed in log space.
pub fn binomial_upper(k: u32, n: u32, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, k) by summing logs (n is a window size: small).
    let mut log_c: f64 = (0..k).map(|i| f64::from(n - i).ln() - f64::from(i + 1).ln()).sum();
    let mut total = 0.0;
    for i in k..=n {
        total += (log_c + f64::from(i) * lp + f64::from(n - i) * lq).exp();
        log_c += f64::from(n - i).ln() - f64::from(i + 1).ln();
    }
    total.min(1.0)
}

/// The standard normal's upper quantile: z with P(Z > z) = `p`, for 0 < p ≤ ½
/// (Abramowitz and Stegun 26.2.23; error below 4.5·10⁻⁴).
pub fn normal_upper(p: f64) -> f64 {
    let t = (-2.0 * p.clamp(1e-300, 0.5).ln()).sqrt();
    t - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
        / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t)
}

/// The χ² upper quantile for `df` degrees of freedom at tail `p` (Wilson–Hilferty;
/// within a few percent for df ≥ 2).
pub fn chi2_upper(df: usize, p: f64) -> f64 {
    let k = df.max(1) as f64;
    let a = 2.0 / (9.0 * k);
    k * (1.0 - a + normal_upper(p) * a.sqrt()).powi(3)
}

/// Population stability index of `counts` against reference `shares`:
/// Σ (aᵢ − eᵢ) ln(aᵢ / eᵢ). Below 0.1 stable, 0.1–0.25 moving, above 0.25 shifted.
pub fn psi(counts: &[u32], shares: &[f64]) -> f64 {
    let n: f64 = counts.iter().map(|c| f64::from(*c)).sum();
    if n == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .zip(shares)
        .map(|(c, e)| {
            let a = (f64::from(*c) / n).max(FLOOR);
            let e = e.max(FLOOR);
            (a - e) * (a / e).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi_square_quantiles_match_tables() {
        // Tables: df 9 at 0.001 → 27.88; df 9 at 0.01 → 21.67; df 20 at 0.01 → 37.57.
        for (df, p, want) in [(9, 0.001, 27.88), (9, 0.01, 21.67), (20, 0.01, 37.57)] {
            let got = chi2_upper(df, p);
            assert!((got - want).abs() / want < 0.03, "df {df} p {p}: {got} vs {want}");
        }
        assert!((normal_upper(0.025) - 1.96).abs() < 2e-3);
    }

    #[test]
    fn binomial_tail_and_psi() {
        // Exact: P(X ≥ 3 | n = 4, p = 0.5) = 5/16.
        assert!((binomial_upper(3, 4, 0.5) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binomial_upper(0, 4, 0.5) - 1.0).abs() < 1e-12);
        assert!(binomial_upper(60, 100, 0.02) < 1e-40);
        assert!(psi(&[50, 50], &[0.5, 0.5]).abs() < 1e-12);
        assert!(psi(&[90, 10], &[0.5, 0.5]) > 0.25);
    }
}
