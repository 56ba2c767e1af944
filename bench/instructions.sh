#!/usr/bin/env bash
# Instructions per operation, counted by callgrind: (instructions for N operations −
# instructions for none) / N. Unlike a time, the count does not move with the
# neighbours of a shared machine, so it compares two builds.
#   - the injection score of a 1 KiB benign prompt (micro's prompt text);
#   - the content stage's work on one exchange of bench/content.sh (the request of
#     bench/data/content_request.json parsed, scored, scanned, pseudonymised, given a
#     canary, re-encoded; the benchmark upstream's answer checked and restored).
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
count() { # what n
  MICRO_ONLY=$1 MICRO_N=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    "$BIN" 2>&1 | awk '/Collected/ {print $4}'
}
per_op() { echo $(( ($(count "$1" "$N") - $(count "$1" 0)) / N )); }
echo "injection score, 1 KiB benign prompt: $(per_op injection-repeat) instructions (callgrind, N=$N)"
echo "content stage, one bench/content.sh exchange: $(per_op content-repeat) instructions (callgrind, N=$N)"
