#!/usr/bin/env python3
"""Trains the demo KServe model: multinomial logistic regression on Fisher's Iris data.

Pure Python, no dependencies, no randomness: full-batch gradient descent on
standardised features, so every run writes byte-identical weights.

    python3 scripts/train_iris.py            # writes crates/testkit/data/iris_model.json

Data: crates/testkit/data/iris.csv (Fisher 1936, public domain; the copy distributed
with scikit-learn: header row "150,4,<class names>", then 4 features and a class index).
Every 5th row is held out for the reported test accuracy.
"""
import json
import math
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "crates", "testkit", "data", "iris.csv")
OUT = os.path.join(ROOT, "crates", "testkit", "data", "iris_model.json")
FEATURES = ["sepal_length_cm", "sepal_width_cm", "petal_length_cm", "petal_width_cm"]
EPOCHS = 3000
LEARNING_RATE = 0.1
L2 = 1e-3


def load():
    with open(DATA) as f:
        header = f.readline().strip().split(",")
        classes = header[2:]
        rows = []
        for line in f:
            parts = line.strip().split(",")
            if len(parts) == 5:
                rows.append(([float(x) for x in parts[:4]], int(parts[4])))
    return classes, rows


def softmax(z):
    m = max(z)
    e = [math.exp(v - m) for v in z]
    s = sum(e)
    return [v / s for v in e]


def predict(w, b, x):
    return softmax([sum(wi * xi for wi, xi in zip(w[k], x)) + b[k] for k in range(len(b))])


def main():
    classes, rows = load()
    train = [r for i, r in enumerate(rows) if i % 5 != 4]
    test = [r for i, r in enumerate(rows) if i % 5 == 4]
    n_feat, n_cls = 4, len(classes)
    mean = [sum(x[j] for x, _ in train) / len(train) for j in range(n_feat)]
    std = [math.sqrt(sum((x[j] - mean[j]) ** 2 for x, _ in train) / len(train)) for j in range(n_feat)]
    norm = lambda x: [(x[j] - mean[j]) / std[j] for j in range(n_feat)]
    xs = [(norm(x), y) for x, y in train]
    w = [[0.0] * n_feat for _ in range(n_cls)]
    b = [0.0] * n_cls
    for _ in range(EPOCHS):
        gw = [[0.0] * n_feat for _ in range(n_cls)]
        gb = [0.0] * n_cls
        for x, y in xs:
            p = predict(w, b, x)
            for k in range(n_cls):
                d = p[k] - (1.0 if k == y else 0.0)
                gb[k] += d
                for j in range(n_feat):
                    gw[k][j] += d * x[j]
        for k in range(n_cls):
            b[k] -= LEARNING_RATE * gb[k] / len(xs)
            for j in range(n_feat):
                w[k][j] -= LEARNING_RATE * (gw[k][j] / len(xs) + L2 * w[k][j])
    correct = sum(1 for x, y in test if max(range(n_cls), key=lambda k: predict(w, b, norm(x))[k]) == y)
    model = {
        "name": "iris",
        "description": "multinomial logistic regression on Fisher's Iris data (scripts/train_iris.py)",
        "features": FEATURES,
        "classes": classes,
        "mean": [round(v, 8) for v in mean],
        "std": [round(v, 8) for v in std],
        "weights": [[round(v, 8) for v in row] for row in w],
        "bias": [round(v, 8) for v in b],
        "test_accuracy": round(correct / len(test), 4),
        "train_rows": len(train),
        "test_rows": len(test),
    }
    with open(OUT, "w") as f:
        json.dump(model, f, indent=2)
        f.write("\n")
    print(f"wrote {OUT}: test accuracy {correct}/{len(test)}")


if __name__ == "__main__":
    main()
