# Shared helpers for the wrk-based benchmark scripts (sourced, not run).
#   need_wrk            install wrk from Debian packages when missing
#   start_work          build release binaries, make $WORK, kill children on exit
#   wait_http URL...    wait until each URL answers
#   median FILE ROUNDS  the median first column of FILE
#   ratio A B           A / B with two decimals
#   rampart_config PORT ADMIN_PORT ACCESS_LOG PROTOCOL WORKERS PUBLIC [full]
#                       a one-route gateway config proxying to 127.0.0.1:$UP (keys in $WORK);
#                       "full" adds a rate limit, a concurrency limit, a token budget and
#                       the audit trail in batch mode (audit key in $WORK/audit.key)
#   cpu_ticks PID...    user + system CPU clock ticks of the processes and their children
#   json_num LINE FIELD the number FIELD holds in loadgen's one-line JSON
#   steal_ticks         the machine's steal time so far, in clock ticks (a noisy host shows here)
#   steal_pct S0 S1 T0 T1  steal between two readings as a share of all CPU time

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

# CPU time (clock ticks, user + system) of the given processes and their children
# (nginx's workers), from /proc.
cpu_ticks() {
  local total=0 pid kid
  for pid in "$@"; do
    for kid in $pid $(pgrep -P "$pid" || true); do
      if [ -r "/proc/$kid/stat" ]; then
        total=$((total + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$kid/stat")))
      fi
    done
  done
  echo "$total"
}

rampart_config() { # port admin_port access_log protocol workers public [full]
  cat <<TOML
[server]
access_log = $3
workers = $5
[admin]
listen = "127.0.0.1:$2"
public_metrics = true
[[listeners]]
name = "main"
listen = "127.0.0.1:$1"
[identity]
pepper = { file = "$WORK/pepper" }
api_keys = { file = "$WORK/keys.toml" }
[roles.bench]
routes = ["*"]
models = ["*"]
actions = ["infer"]
[[upstreams]]
name = "bench"
targets = ["http://127.0.0.1:$UP"]
[[routes]]
name = "passthrough"
path_prefix = "/"
upstream = "bench"
protocol = "$4"
public = $6
TOML
  if [ "${7:-}" = full ]; then
    cat <<TOML
[[rate_limits]]
name = "per-key"
per = "principal"
requests = 100000000
window = "1s"
[[concurrency_limits]]
name = "in-flight"
per = "principal"
max = 10000
[[token_limits]]
name = "tokens"
per = "principal"
tokens = 1000000000000
window = "1m"
[audit]
dir = "$WORK/audit-$1"
signing_key = { file = "$WORK/audit.key" }
durability = "batch"
TOML
  fi
}

# Steal time (clock ticks the host ran something else while a vCPU wanted to run), all
# CPUs together, from /proc/stat.
steal_ticks() { awk '$1 == "cpu" { print $9 }' /proc/stat; }

# Steal as a share of the machine's CPU time between two (steal_ticks, date +%s.%N)
# readings: steal_pct S0 S1 T0 T1.
steal_pct() {
  awk -v s="$(($2 - $1))" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" -v t0="$3" -v t1="$4" \
    'BEGIN { printf "%.1f %%", s / hz / n / (t1 - t0) * 100 }'
}

json_num() { sed -E "s/.*\"$2\":([0-9]+).*/\1/" <<<"$1"; }
