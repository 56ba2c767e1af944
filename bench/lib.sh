# Shared helpers for the wrk-based benchmark scripts (sourced, not run).
#   need_wrk            install wrk from Debian packages when missing
#   start_work          build release binaries, make $WORK, kill children on exit
#   wait_http URL...    wait until each URL answers
#   median FILE ROUNDS  the median first column of FILE
#   ratio A B           A / B with two decimals

need_wrk() {
  command -v wrk >/dev/null && return
  local sudo_=""
  [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq wrk >/dev/null
}

start_work() {
  cargo build --release -q -p rampart -p rampart-bench
  BIN=target/release
  WORK=$(mktemp -d)
  trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT
}

wait_http() {
  local url
  for url in "$@"; do
    for _ in $(seq 100); do curl -s -o /dev/null "$url" && break; sleep 0.1; done
  done
}

median() { sort -n "$1" | awk -v r="$2" 'NR == int((r + 1) / 2) {print $1}'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
