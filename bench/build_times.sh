#!/usr/bin/env bash
# Build times that shape the edit-test loop, measured on this checkout as it is:
#   a one-line code change in the gateway, in the shared test helpers, and in one test
#   file, each followed by `cargo test --workspace --no-run` (what `scripts/test.sh`
#   builds), and the rampart package's binary + integration tests from clean.
# Each change is a real item (a new const), not a comment, and is undone after.
# Usage: bench/build_times.sh [tests-dir]   (default crates/rampart/tests/it)
set -euo pipefail
cd "$(dirname "$0")/.."
tests=${1:-crates/rampart/tests/it}
common=$tests/common/mod.rs
one=$tests/attacks.rs
cargo test --workspace --no-run -q >/dev/null 2>&1
measure() { # label file
  cp "$2" "$2.orig"
  printf '\npub const _BUILD_TIME_PROBE: u32 = %s;\n' "$RANDOM" >> "$2"
  local t0 t1
  t0=$(date +%s.%N)
  cargo test --workspace --no-run -q >/dev/null 2>&1 || { mv "$2.orig" "$2"; echo "build failed: $1" >&2; exit 1; }
  t1=$(date +%s.%N)
  mv "$2.orig" "$2"
  printf '%-44s %6.1f s\n' "$1" "$(echo "$t1 - $t0" | bc)"
  cargo test --workspace --no-run -q >/dev/null 2>&1
}
echo "build times, $(nproc) cores, $(git rev-parse --short HEAD), tests in $tests"
measure "one-line change in crates/gateway" crates/gateway/src/route.rs
measure "one-line change in the shared test helpers" "$common"
measure "one-line change in one test file" "$one"
cargo clean -p rampart -q 2>/dev/null || cargo clean -p rampart
t0=$(date +%s.%N)
cargo test -p rampart --no-run -q >/dev/null 2>&1
t1=$(date +%s.%N)
printf '%-44s %6.1f s\n' "rampart binary + integration tests, clean" "$(echo "$t1 - $t0" | bc)"
