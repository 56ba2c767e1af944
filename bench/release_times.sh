#!/usr/bin/env bash
# Release build times: a clean `cargo build --release` of the rampart binary and the
# rebuild after a one-line change in crates/gateway, in a target directory of their
# own (target/release-times/<label>) so nothing else is disturbed. Extra arguments are
# environment overrides of the release profile, to see what a setting costs, e.g.
#   bench/release_times.sh CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
set -euo pipefail
cd "$(dirname "$0")/.."
label=$(printf '%s' "${*:-default}" | tr -c 'A-Za-z0-9=_' '-')
dir="target/release-times/$label"
rm -rf "$dir"
export CARGO_TARGET_DIR="$dir"
for kv in "$@"; do export "${kv?}"; done
t0=$(date +%s.%N)
cargo build --release -q -p rampart
t1=$(date +%s.%N)
f=crates/gateway/src/route.rs
cp "$f" "$f.orig"
printf '\npub const _BUILD_TIME_PROBE: u32 = %s;\n' "$RANDOM" >> "$f"
cargo build --release -q -p rampart || { mv "$f.orig" "$f"; exit 1; }
t2=$(date +%s.%N)
mv "$f.orig" "$f"
size=$(stat -c %s "$dir/release/rampart")
printf 'release build (%s), %s cores, %s: clean %.0f s, one-line gateway change %.0f s, binary %d MB\n' \
  "${*:-profile as in Cargo.toml}" "$(nproc)" "$(git rev-parse --short HEAD)" \
  "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" "$((size / 1000000))"
rm -rf "$dir"
