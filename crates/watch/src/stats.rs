//! The two statistics the detectors need, small enough to write here: the binomial
//! upper tail (is a share of flagged queries improbably high?) and the population
//! stability index (has a distribution moved?).

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
    fn binomial_tail_and_psi() {
        // Exact: P(X ≥ 3 | n = 4, p = 0.5) = 5/16.
        assert!((binomial_upper(3, 4, 0.5) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binomial_upper(0, 4, 0.5) - 1.0).abs() < 1e-12);
        assert!(binomial_upper(60, 100, 0.02) < 1e-40);
        assert!(psi(&[50, 50], &[0.5, 0.5]).abs() < 1e-12);
        assert!(psi(&[90, 10], &[0.5, 0.5]) > 0.25);
    }
}
