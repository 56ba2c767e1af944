#!/usr/bin/env python3
"""Side by side: Rampart's prompt-injection scores against third-party detectors that
run offline from a PyPI package, on the same rows.

Rampart's score for each row is its leave-one-source-out score (the row's source was
not in training), written by `cargo run --release -p rampart-bench --bin detect_eval`
to target/injection_loso_scores.jsonl. The third-party detectors are fixed (no
training on our data), so every row is unseen to them too.

    bench/detect_eval.sh                 # detect_eval, then this script
    python3 bench/injection_compare.py   # this table only (needs the scores file)

Third-party packages, pinned, installed into target/compare-venv by bench/detect_eval.sh:
injectionshield 0.1.0 (MIT, regex rules), ai-injection-guard 0.3.0 (MIT, weighted
regex patterns). The PyPI detectors that bundle an ML model and were tried (jailguard
0.1.2, bastion-prompt-protection 1.3.5, cyberjev 0.1.0) download their model from a
model hub on first use, which this workplace cannot reach; see docs/DETECTION.md.
"""
import json
import os
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SCORES = os.path.join(ROOT, "target", "injection_loso_scores.jsonl")
# Benign rows written to contain trigger words: role-play requests, persona prompts,
# the hand-written benign rows and the generator's hard negatives (its part "hard_negative").
HARD_NEGATIVE_PARTS = {"act-as-prompts", "act-as-2025", "system-personas", "handwritten", "hard_negative"}


def roc_auc(pairs):
    pairs = sorted(pairs, key=lambda p: p[0])
    rank_sum, i, n = 0.0, 0, len(pairs)
    while i < n:
        j = i
        while j < n and pairs[j][0] == pairs[i][0]:
            j += 1
        avg = (i + j + 1) / 2
        rank_sum += avg * sum(1 for p in pairs[i:j] if p[1])
        i = j
    pos = sum(1 for p in pairs if p[1])
    neg = n - pos
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def threshold_at(pairs, fpr):
    """The lowest threshold whose false-positive rate is at most `fpr` (score >= t flags)."""
    neg = sorted((p[0] for p in pairs if not p[1]), reverse=True)
    allowed = int(fpr * len(neg))
    # Flag scores strictly above the (allowed+1)-th highest benign score.
    cut = neg[allowed] if allowed < len(neg) else float("-inf")
    above = [s for s in sorted({p[0] for p in pairs}) if s > cut]
    return above[0] if above else float("inf")


def detectors():
    out = {}
    try:
        from injectionshield import scan
        out["injectionshield 0.1.0"] = lambda t: float(scan(t).risk_score)
    except ImportError:
        pass
    try:
        from prompt_shield import PromptScanner
        ps = PromptScanner()
        out["ai-injection-guard 0.3.0"] = lambda t: float(ps.scan(t).risk_score)
    except ImportError:
        pass
    return out


def main():
    rows = [json.loads(l) for l in open(SCORES)]
    found = detectors()
    if not found:
        sys.exit("no third-party detector installed: run bench/detect_eval.sh")
    columns = {"Rampart (leave one source out)": [r["score"] for r in rows]}
    latency = {}
    for name, fn in found.items():
        scores, times = [], []
        for r in rows:
            t0 = time.perf_counter()
            scores.append(fn(r["text"]))
            times.append(time.perf_counter() - t0)
        columns[name] = scores
        times.sort()
        latency[name] = (times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6)
    labels = [bool(r["label"]) for r in rows]
    sources = sorted({r["source"] for r in rows})
    print(f"### Side by side with third-party detectors ({len(rows)} texts, the leave-one-source-out rows)")
    print()
    print("Run: `bench/detect_eval.sh` (or `python3 bench/injection_compare.py` after detect_eval).")
    print("Thresholds: each detector's own, set for at most 5% false positives over all benign rows.")
    print()
    names = list(columns)
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    cells = {"ROC-AUC": [], "attacks caught at 5% false positives": [], "hard negatives flagged (trigger-word benign)": []}
    thresholds = {}
    for n in names:
        pairs = list(zip(columns[n], labels))
        t = threshold_at(pairs, 0.05)
        thresholds[n] = t
        pos = sum(labels)
        caught = sum(1 for s, y in pairs if y and s >= t)
        hard = [s for s, r in zip(columns[n], rows) if not r["label"] and r["part"] in HARD_NEGATIVE_PARTS]
        cells["ROC-AUC"].append(f"{roc_auc(pairs):.3f}")
        cells["attacks caught at 5% false positives"].append(f"{100 * caught / pos:.1f}%")
        cells["hard negatives flagged (trigger-word benign)"].append(
            f"{100 * sum(1 for s in hard if s >= t) / len(hard):.1f}%")
    for k, v in cells.items():
        print(f"| {k} | " + " | ".join(v) + " |")
    print("| time per text, p50 / p99 | see docs/BENCHMARKS.md (Rust, in-process) | "
          + " | ".join(f"{latency[n][0]:.0f} / {latency[n][1]:.0f} µs (Python)" for n in names[1:]) + " |")
    for s in sources:
        idx = [i for i, r in enumerate(rows) if r["source"] == s]
        label = rows[idx[0]]["label"]
        mixed = any(rows[i]["label"] != label for i in idx)
        out = []
        for n in names:
            if mixed:
                tp = sum(1 for i in idx if rows[i]["label"] and columns[n][i] >= thresholds[n])
                fp = sum(1 for i in idx if not rows[i]["label"] and columns[n][i] >= thresholds[n])
                p = sum(1 for i in idx if rows[i]["label"])
                out.append(f"{100 * tp / p:.0f}% caught, {100 * fp / (len(idx) - p):.0f}% flagged")
            else:
                hit = sum(1 for i in idx if columns[n][i] >= thresholds[n])
                out.append(f"{100 * hit / len(idx):.0f}% {'caught' if label else 'flagged'}")
        print(f"| {s} ({len(idx)}) | " + " | ".join(out) + " |")
    print()


if __name__ == "__main__":
    main()
