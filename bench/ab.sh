#!/usr/bin/env bash
# Interleaved A/B of two Rampart binaries: CPU per request and throughput, one run.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY      # DURATION=5 ROUNDS=4 CONNS=64 by default
#
# Both binaries serve the same three configs side by side — passthrough (public, HTTP
# route, no access log), logged (API key, OpenAI route with its JSON checks, access
# log) and full (logged plus a rate limit, a concurrency limit, a token budget and the
# audit trail in batch mode) — with the proxies alone on CPU 1 (one worker each) and
# wrk and the upstream on CPU 0. Each round runs every path on A then B, the next round
# B then A, so a neighbour's burst on this shared machine lands on both. CPU per
# request (user + system ticks from /proc over the measured runs, divided by the
# requests served) is the figure to judge a change by; req/s is the median round.
#
# Build the old binary from another worktree (git worktree add /tmp/old <rev> && cargo
# build --release -p rampart --manifest-path /tmp/old/Cargo.toml) and copy it out first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: bench/ab.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2")
DURATION=${DURATION:-5}
ROUNDS=${ROUNDS:-4}
CONNS=${CONNS:-64}
BASE_PORT=${BASE_PORT:-18100}
source bench/lib.sh
need_wrk
cargo build --release -q -p rampart-bench
BIN=target/release
WORK=$(mktemp -d)
trap 'pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"' EXIT
TICKS=$(getconf CLK_TCK)

UP=$BASE_PORT
BODY='{"model":"bench","messages":[{"role":"user","content":"Summarise the benefits of a security gateway in one sentence."}]}'
echo "benchmark-pepper-benchmark-pepper-0123456789" >"$WORK/pepper"
"$B" audit keygen --out "$WORK/audit.key" >/dev/null
rampart_config 0 0 false http 1 true >"$WORK/keys-cli.toml"
KEY=$("$B" keys create --config "$WORK/keys-cli.toml" --subject bench --role bench 2>/dev/null)
printf 'wrk.method = "POST"\nwrk.body = %s\nwrk.headers["Content-Type"] = "application/json"\n' "'$BODY'" >"$WORK/post.lua"
cp "$WORK/post.lua" "$WORK/auth.lua"
echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\"" >>"$WORK/auth.lua"

UPSTREAM_THREADS=1 taskset -c 0 $BIN/upstream 127.0.0.1:$UP 2>"$WORK/upstream.log" &
declare -A PID PORT
port=$((BASE_PORT + 1))
for side in A B; do
  for path in passthrough logged full; do
    case $path in
      passthrough) cfg=(false http 1 true) ;;
      logged) cfg=(true openai 1 false) ;;
      full) cfg=(true openai 1 false full) ;;
    esac
    rampart_config $port $((port + 1)) "${cfg[@]}" >"$WORK/$side-$path.toml"
    taskset -c 1 "${!side}" serve --config "$WORK/$side-$path.toml" >/dev/null 2>"$WORK/$side-$path.log" &
    PID[$side-$path]=$!; PORT[$side-$path]=$port
    port=$((port + 2))
  done
done
for key in "${!PORT[@]}"; do
  for _ in $(seq 100); do
    curl -sf -H "Authorization: Bearer $KEY" -d "$BODY" "http://127.0.0.1:${PORT[$key]}/v1/chat/completions" >/dev/null && break
    sleep 0.1
  done
done

declare -A TICK REQS
for round in $(seq "$ROUNDS"); do
  order="A B"; [ $((round % 2)) -eq 0 ] && order="B A"
  for path in passthrough logged full; do
    script="$WORK/auth.lua"; [ $path = passthrough ] && script="$WORK/post.lua"
    for side in $order; do
      url="http://127.0.0.1:${PORT[$side-$path]}/v1/chat/completions"
      taskset -c 0 wrk -t1 -c"$CONNS" -d1s -s "$script" "$url" >/dev/null
      c0=$(cpu_ticks "${PID[$side-$path]}")
      out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$script" "$url")
      c1=$(cpu_ticks "${PID[$side-$path]}")
      if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo "$side/$path: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2; fi
      n=$(awk '/requests in/ {print $1}' <<<"$out")
      TICK[$side-$path]=$(( ${TICK[$side-$path]:-0} + c1 - c0 ))
      REQS[$side-$path]=$(( ${REQS[$side-$path]:-0} + n ))
      awk '/Requests\/sec/ {print $2}' <<<"$out" >>"$WORK/$side-$path.rps"
    done
  done
done

per_req() { awk -v t="${TICK[$1]}" -v hz="$TICKS" -v n="${REQS[$1]}" 'BEGIN { printf "%.2f", t / hz / n * 1e6 }'; }
echo "Run: \`bench/ab.sh $1 $2\` (DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS=$CONNS, interleaved, proxies pinned to CPU 1) on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
echo
echo "| path | A CPU/request | B CPU/request | B / A | A req/s (median) | B req/s (median) |"
echo "|---|---|---|---|---|---|"
for path in passthrough logged full; do
  a=$(per_req A-$path); b=$(per_req B-$path)
  echo "| $path | $a µs | $b µs | $(ratio "$b" "$a") | $(median "$WORK/A-$path.rps" "$ROUNDS") | $(median "$WORK/B-$path.rps" "$ROUNDS") |"
done
