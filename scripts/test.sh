#!/usr/bin/env bash
# Runs everything CI runs: formatting, lints, and the whole test suite (unit tests and
# integration tests that start the real gateway binary on random ports).
# Installs or starts what the tests need: curl (the demo test runs the demo's printed
# curl commands), PostgreSQL (the shared key-store test) and redis-server (the shared
# limits test) and Debian's chromium and chromium-driver (the console's browser tests), via
# scripts/services.sh; the pinned client libraries the SDK tests
# drive (OpenAI Python and Node SDKs, LangChain, tritonclient), via scripts/clients.sh.
# The deployment files in deploy/ are checked by promtool (scripts/deploy-check.sh,
# which installs Debian's prometheus package, pinned, for it). The container image is
# built with podman and run read-only and unprivileged (scripts/container-check.sh).
# Last but one, the newcomer path: README.md followed top to bottom on a fresh clone
# (scripts/newcomer.py; it builds the release binary).
set -euo pipefail
cd "$(dirname "$0")/.."

# curl: the demo's printed commands; openssl: README's pepper (the newcomer path).
for tool in curl openssl; do
  if ! command -v "$tool" >/dev/null; then
    echo "installing $tool (the demo's and README's commands use it)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$tool" >/dev/null
  fi
done

scripts/services.sh
scripts/clients.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -q -- -D warnings
echo "== cargo test"
cargo test --workspace 2>&1 | tee /tmp/rampart-test-$$.log
# A closing summary the CI reader understands, summed over every test binary.
awk '/^test result:/ { p += $4; f += $6; i += $8 } END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' /tmp/rampart-test-$$.log
rm -f /tmp/rampart-test-$$.log
echo "== deployment files (promtool over the alert rules and the dashboard's queries)"
scripts/deploy-check.sh
echo "== the newcomer path (README.md on a fresh clone)"
python3 scripts/newcomer.py
echo "== the container image: built from scratch, run read-only and unprivileged (scripts/container-check.sh)"
scripts/container-check.sh
