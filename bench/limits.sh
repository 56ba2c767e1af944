#!/usr/bin/env bash
# Full-path cost of abuse limits: the same public route with (a) no limits, (b) a rate
# limit + concurrency limit + quota in-process, (c) the same three limits in Redis.
# wrk, closed loop; interleaved rounds, median reported. Needs redis-server (started on a
# free port by this script) and wrk (installed from Debian if missing).
#
#   bench/limits.sh               # DURATION=5 CONNS=64 ROUNDS=3
#
# Writes bench/results/limits.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh
need_wrk
command -v redis-server >/dev/null || scripts/services.sh
start_work

UP=18100; RPORT=18110
UPSTREAM_THREADS=1 $BIN/upstream 127.0.0.1:$UP 2>/dev/null &
redis-server --port $RPORT --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
echo "redis://127.0.0.1:$RPORT/" >"$WORK/redis.url"

config() { # port admin backend-or-none
  cat <<TOML
[server]
access_log = false
[admin]
listen = "127.0.0.1:$2"
[[listeners]]
name = "main"
listen = "127.0.0.1:$1"
[[upstreams]]
name = "bench"
targets = ["http://127.0.0.1:$UP"]
[[routes]]
name = "r"
path_prefix = "/"
upstream = "bench"
protocol = "http"
public = true
TOML
  if [ "$3" != none ]; then
    cat <<TOML
[redis]
url = { file = "$WORK/redis.url" }
[[rate_limits]]
name = "rate-$3"
per = "ip"
requests = 1000000000
window = "1s"
backend = "$3"
[[concurrency_limits]]
name = "slots-$3"
per = "ip"
max = 100000
backend = "$3"
[[quotas]]
name = "quota-$3"
per = "ip"
requests = 1000000000000
period = "day"
backend = "$3"
TOML
  fi
}
config 18101 18201 none >"$WORK/none.toml"
config 18102 18202 local >"$WORK/local.toml"
config 18103 18203 redis >"$WORK/redis.toml"
for n in none local redis; do $BIN/rampart serve --config "$WORK/$n.toml" >/dev/null 2>&1 & done
wait_http http://127.0.0.1:18101/ http://127.0.0.1:18102/ http://127.0.0.1:18103/

for round in $(seq "$ROUNDS"); do
  for t in none:18101 local:18102 redis:18103; do
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${t##*:}/v1/models")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(grep -cE 'Non-2xx|Socket errors' <<<"$out")" >>"$WORK/${t%%:*}"
  done
done
N=$(median "$WORK/none" "$ROUNDS"); L=$(median "$WORK/local" "$ROUNDS"); R=$(median "$WORK/redis" "$ROUNDS")
mkdir -p bench/results
{
  echo "Run: \`bench/limits.sh\` (DURATION=${DURATION}s CONNS=$CONNS ROUNDS=$ROUNDS, median) on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| limits on the route | req/s | ratio vs no limits |"
  echo "|---|---|---|"
  echo "| none | $N | 1.00 |"
  echo "| rate + concurrency + quota, local | $L | $(ratio "$L" "$N") |"
  echo "| rate + concurrency + quota, Redis | $R | $(ratio "$R" "$N") |"
  echo
  echo "Errors or non-2xx answers in any run: $(cat "$WORK/none" "$WORK/local" "$WORK/redis" | awk '{s+=$2} END {print s}') (must be 0)."
} >bench/results/limits.md
cat bench/results/limits.md
