//! The demo classifier: multinomial logistic regression on Fisher's Iris data, weights
//! trained by `scripts/train_iris.py` and shipped in `data/iris_model.json`.

use serde::Deserialize;

const MODEL_JSON: &str = include_str!("../data/iris_model.json");

#[derive(Debug, Clone, Deserialize)]
pub struct IrisModel {
    pub name: String,
    pub features: Vec<String>,
    pub classes: Vec<String>,
    mean: Vec<f64>,
    std: Vec<f64>,
    weights: Vec<Vec<f64>>,
    bias: Vec<f64>,
    pub test_accuracy: f64,
}

impl IrisModel {
    /// The shipped model.
    pub fn load() -> Result<Self, serde_json::Error> {
        serde_json::from_str(MODEL_JSON)
    }

    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Class probabilities for one row of features (cm).
    pub fn predict(&self, x: &[f64]) -> Vec<f64> {
        let z: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| {
                w.iter()
                    .zip(x)
                    .zip(self.mean.iter().zip(&self.std))
                    .map(|((wi, xi), (m, s))| wi * (xi - m) / s)
                    .sum::<f64>()
                    + b
            })
            .collect();
        let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        e.iter().map(|v| v / sum).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_shipped_data_well() {
        let model = IrisModel::load().unwrap();
        let data = include_str!("../data/iris.csv");
        let mut correct = 0;
        let mut total = 0;
        for line in data.lines().skip(1) {
            let parts: Vec<&str> = line.split(',').collect();
            let x: Vec<f64> = parts[..4].iter().map(|v| v.parse().unwrap()).collect();
            let y: usize = parts[4].parse().unwrap();
            let p = model.predict(&x);
            assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap();
            correct += usize::from(best == y);
            total += 1;
        }
        assert_eq!(total, 150);
        assert!(correct >= 140, "accuracy {correct}/150");
        assert!(model.test_accuracy >= 0.9);
    }
}
