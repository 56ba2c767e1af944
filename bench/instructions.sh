#!/usr/bin/env bash
# Instructions per injection score of a 1 KiB benign prompt, counted by callgrind:
# (instructions for N scores − instructions for none) / N. Unlike a time, the count
# does not move with the neighbours of a shared machine, so it compares two builds.
#
#   bench/instructions.sh        # N=200; installs valgrind from Debian when missing
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-200}
if ! command -v valgrind >/dev/null; then
  sudo_=""
  [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq valgrind >/dev/null
fi
cargo build --release -q -p rampart-bench --bin micro
BIN=${CARGO_TARGET_DIR:-target}/release/micro
count() {
  MICRO_ONLY=injection-repeat MICRO_N=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$BIN" 2>&1 | awk '/Collected/ {print $4}'
}
none=$(count 0)
some=$(count "$N")
echo "injection score, 1 KiB benign prompt: $(( (some - none) / N )) instructions (callgrind, N=$N)"
