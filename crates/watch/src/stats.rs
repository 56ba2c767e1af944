//! The few statistics the detectors need, small enough to write here: the G-test of
//! observed counts against expected shares (χ² under the null), the χ² critical value,
//! the binomial upper tail, and the population stability index.

/// Expected shares are floored at this, so an empty reference bin cannot make any
/// observation infinitely surprising.
const FLOOR: f64 = 1e-3;

/// G = 2 Σ oᵢ ln(oᵢ / (n pᵢ)) over bins; χ² with (bins − 1) degrees of freedom when the
/// counts follow the shares.
pub fn g_statistic(counts: &[u32], shares: &[f64]) -> f64 {
    let n: f64 = counts.iter().map(|c| f64::from(*c)).sum();
    if n == 0.0 {
        return 0.0;
    }
    2.0 * counts
        .iter()
        .zip(shares)
        .filter(|(c, _)| **c > 0)
        .map(|(c, p)| {
            let o = f64::from(*c);
            o * (o / (n * p.max(FLOOR))).ln()
        })
        .sum::<f64>()
}

/// erfc(x), to about 1.2·10⁻⁷ relative (a Chebyshev fit; Numerical Recipes' erfcc).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The standard normal's upper quantile: z with P(Z > z) = `alpha` (bisection).
pub fn normal_upper(alpha: f64) -> f64 {
    let (mut lo, mut hi) = (-10.0_f64, 10.0_f64);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if 0.5 * erfc(mid / std::f64::consts::SQRT_2) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// The χ² critical value for `df` degrees of freedom at upper tail `alpha`
/// (Wilson–Hilferty; within a few percent for df ≥ 2 and the small alphas used here).
pub fn chi2_critical(df: usize, alpha: f64) -> f64 {
    let k = df.max(1) as f64;
    let z = normal_upper(alpha);
    let a = 2.0 / (9.0 * k);
    k * (1.0 - a + z * a.sqrt()).powi(3)
}

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
    fn critical_values_match_tables() {
        // χ² tables: df 9 at 0.001 → 27.88; df 1 at 0.05 → 3.84; df 20 at 0.01 → 37.57.
        for (df, alpha, want) in [(9, 0.001, 27.88), (1, 0.05, 3.84), (20, 0.01, 37.57)] {
            let got = chi2_critical(df, alpha);
            assert!((got - want).abs() / want < 0.05, "df {df} α {alpha}: {got} vs {want}");
        }
        assert!((normal_upper(0.025) - 1.96).abs() < 1e-3);
    }

    #[test]
    fn binomial_tail_and_g_and_psi() {
        // Exact: P(X ≥ 3 | n = 4, p = 0.5) = 5/16.
        assert!((binomial_upper(3, 4, 0.5) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binomial_upper(0, 4, 0.5) - 1.0).abs() < 1e-12);
        assert!(binomial_upper(60, 100, 0.02) < 1e-40);
        assert!(g_statistic(&[25, 25, 25, 25], &[0.25; 4]).abs() < 1e-12);
        assert!(g_statistic(&[100, 0, 0, 0], &[0.25; 4]) > 100.0);
        assert!(psi(&[50, 50], &[0.5, 0.5]).abs() < 1e-12);
        assert!(psi(&[90, 10], &[0.5, 0.5]) > 0.25);
    }
}
