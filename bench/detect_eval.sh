#!/usr/bin/env bash
# Every table in docs/DETECTION.md: detect_eval (PII, secrets, injection in- and
# out-of-distribution, leave one source out), then the side by side with third-party
# injection detectors on the same rows (bench/injection_compare.py). The third-party
# packages are pinned and installed into target/compare-venv (no dependencies of
# their own; pure Python, offline).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p rampart-bench --bin detect_eval
VENV=target/compare-venv
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --no-deps injectionshield==0.1.0 ai-injection-guard==0.3.0
fi
"$VENV/bin/python" bench/injection_compare.py
