#!/usr/bin/env bash
# Side-by-side proxy benchmark, one run, same upstream, same load:
#   (a) direct to the upstream, (b) nginx as a reverse proxy, (c) Rampart passthrough,
#   (d) Rampart logged (API key, JSON checks, access log), (e) Rampart's authenticated
#   pipeline (logged plus limits and the audit trail in batch mode); then TLS 1.3 rows
#   with HTTP/1.1 and HTTP/2 clients (nginx against Rampart passthrough); then streamed
#   answers (SSE): time to first byte and the gap between events, added by each proxy.
# Peak throughput with wrk (closed loop), then latency at half of peak with
# an open-loop generator (bench/src/bin/loadgen.rs) that counts from each request's
# intended send time. Installs wrk, nginx, h2load and openssl from Debian packages when
# missing.
#
#   bench/run.sh                  # DURATION=10 CONNS=64 WRK_THREADS=1 ROUNDS=3 SSE_CONNS=128 by default
#   SUITES="sse" bench/run.sh     # only some suites: any of shared pinned tls sse traces
#
# Two suites: "shared" (nothing pinned, every process competes for the 2 cores) and
# "pinned" (the proxy alone on one core: per-core efficiency without scheduler noise).
#
# Writes bench/results/proxy.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
ROUNDS=${ROUNDS:-3}
BASE_PORT=${BASE_PORT:-18000}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian packages" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
source bench/lib.sh

cargo build --release -q -p rampart -p rampart-bench
BIN=target/release
WORK=$(mktemp -d)
cleanup() { pkill -P $$ 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

UP=$BASE_PORT; NG=$((BASE_PORT+1)); RP=$((BASE_PORT+2)); RPA=$((BASE_PORT+3)); RL=$((BASE_PORT+4)); RLA=$((BASE_PORT+5))
RF=$((BASE_PORT+6)); RFA=$((BASE_PORT+7)); NGT=$((BASE_PORT+8)); RT=$((BASE_PORT+9)); RTA=$((BASE_PORT+10))
BODY='{"model":"bench","messages":[{"role":"user","content":"Summarise the benefits of a security gateway in one sentence."}]}'
SSE_BODY='{"model":"bench","stream":true,"messages":[{"role":"user","content":"Summarise the benefits of a security gateway in one sentence."}]}'
SSE_CONNS=${SSE_CONNS:-128}
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

echo "benchmark-pepper-benchmark-pepper-0123456789" >"$WORK/pepper"
rampart_config 0 0 false http 1 true >"$WORK/keys-cli.toml"
$BIN/rampart audit keygen --out "$WORK/audit.key" >/dev/null
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
printf '%s' "$BODY" >"$WORK/body.json"
KEY=$($BIN/rampart keys create --config "$WORK/keys-cli.toml" --subject bench --role bench 2>/dev/null)
cat >"$WORK/auth.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $KEY"
LUA

TICKS=$(getconf CLK_TCK)

# nginx as a reverse proxy to the upstream. $1 = name (pid and log files), $2 = worker
# processes, $3 = the server block's listen (and TLS) directives.
nginx_conf() {
  cat <<NGX
worker_processes $2;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream bench { server 127.0.0.1:$UP; keepalive 256; }
  server {
    $3
    location / {
      proxy_pass http://bench;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host \$host;
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
    }
  }
}
NGX
}

# One suite. $1 = mode: "shared" (nothing pinned; nginx and Rampart use every core) or
# "pinned" (proxy alone on CPU 1 with one worker; load generator and upstream on CPU 0).
suite() {
  local mode=$1 proxy_cpu="" load_cpu="" workers
  workers=$(nproc)
  if [ "$mode" = pinned ]; then proxy_cpu="taskset -c 1"; load_cpu="taskset -c 0"; workers=1; fi
  local pids=()
  UPSTREAM_THREADS=1 $load_cpu $BIN/upstream 127.0.0.1:$UP 2>"$WORK/upstream.log" & pids+=($!)
  nginx_conf nginx "$workers" "listen 127.0.0.1:$NG;" >"$WORK/nginx.conf"
  $proxy_cpu "$NGINX" -c "$WORK/nginx.conf" -p "$WORK" & pids+=($!)
  rampart_config $RP $RPA false http "$workers" true >"$WORK/passthrough.toml"
  rampart_config $RL $RLA true openai "$workers" false >"$WORK/logged.toml"
  rampart_config $RF $RFA true openai "$workers" false full >"$WORK/full.toml"
  $proxy_cpu $BIN/rampart serve --config "$WORK/passthrough.toml" >/dev/null 2>"$WORK/rp.log" & pids+=($!)
  $proxy_cpu $BIN/rampart serve --config "$WORK/logged.toml" >/dev/null 2>"$WORK/rl.log" & pids+=($!)
  $proxy_cpu $BIN/rampart serve --config "$WORK/full.toml" >/dev/null 2>"$WORK/rf.log" & pids+=($!)
  for port in $UP $NG $RP $RL $RF; do
    for _ in $(seq 100); do curl -sf -H "Authorization: Bearer $KEY" -d '{}' "http://127.0.0.1:$port/v1/chat/completions" >/dev/null && break; sleep 0.1; done
  done

  declare -A RPS P50 P99 PROC CPU_T REQS
  PROC[nginx]=${pids[1]}; PROC[rampart]=${pids[2]}; PROC[rampart_logged]=${pids[3]}; PROC[rampart_full]=${pids[4]}
  local t name port out round c0 c1
  # ROUNDS interleaved rounds (direct, nginx, rampart, logged, repeat); the median
  # round per path is reported, so one noisy run on a shared 2-core box cannot decide.
  for round in $(seq "$ROUNDS"); do
    for t in direct:$UP nginx:$NG rampart:$RP rampart_logged:$RL rampart_full:$RF; do
      name=${t%%:*}; port=${t##*:}
      script="$WORK/auth.lua"; case $name in direct|nginx|rampart) script="$WORK/post.lua" ;; esac
      $load_cpu wrk -t"$WRK_THREADS" -c"$CONNS" -d1s -s "$script" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
      c0=$( [ -n "${PROC[$name]:-}" ] && cpu_ticks "${PROC[$name]}" || echo 0)
      out=$($load_cpu wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$script" "http://127.0.0.1:$port/v1/chat/completions")
      c1=$( [ -n "${PROC[$name]:-}" ] && cpu_ticks "${PROC[$name]}" || echo 0)
      CPU_T[$name]=$(( ${CPU_T[$name]:-0} + c1 - c0 ))
      REQS[$name]=$(( ${REQS[$name]:-0} + $(awk '/requests in/ {print $1}' <<<"$out") ))
      if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo "$mode/$name: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2; fi
      echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="50%" {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out")" >>"$WORK/$mode-$name.rounds"
    done
  done
  for name in direct nginx rampart rampart_logged rampart_full; do
    read -r RPS[$name] P50[$name] P99[$name] < <(sort -n "$WORK/$mode-$name.rounds" | awk -v r="$ROUNDS" 'NR == int((r + 1) / 2)')
  done
  local half; half=$(awk -v r="${RPS[rampart]}" 'BEGIN { printf "%d", r / 2 }')
  # The open-loop rate per path: half of Rampart passthrough's peak for direct, nginx
  # and passthrough (the comparison the targets name); half of their own peak for the
  # logged and full pipelines, which cannot all take passthrough's half-peak.
  declare -A RATE
  for name in direct nginx rampart; do RATE[$name]=$half; done
  for name in rampart_logged rampart_full; do RATE[$name]=$(awk -v r="${RPS[$name]}" 'BEGIN { printf "%d", r / 2 }'); done
  # Open loop, ROUNDS interleaved rounds; each percentile is
  # the median over the rounds, so one burst of host steal (tens of ms on this VM)
  # cannot decide the tail. Rampart's own view of the time it adds
  # (rampart_gateway_added_seconds) over these runs: bucket counts after minus before.
  curl -s "http://127.0.0.1:$RPA/metrics" >"$WORK/before.prom"
  local f s0 s1 w0 w1
  s0=$(steal_ticks); w0=$(date +%s.%N)
  for round in $(seq "$ROUNDS"); do
    for t in direct:$UP nginx:$NG rampart:$RP rampart_logged:$RL rampart_full:$RF; do
      out=$($load_cpu $BIN/loadgen "http://127.0.0.1:${t##*:}/v1/chat/completions" "${RATE[${t%%:*}]}" "$DURATION" 16 "$BODY" "Bearer $KEY")
      for f in p50_us p99_us p999_us errors; do
        json_num "$out" "$f" >>"$WORK/$mode-${t%%:*}-open-$f.rounds"
      done
    done
  done
  s1=$(steal_ticks); w1=$(date +%s.%N)
  curl -s "http://127.0.0.1:$RPA/metrics" >"$WORK/after.prom"
  local added
  added=$(awk '
    /^rampart_gateway_added_seconds_bucket/ {
      match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      if (FILENAME ~ /before/) b[le] = $NF; else { a[le] = $NF; order[++n] = le }
    }
    END {
      total = a["+Inf"] - b["+Inf"]; p50 = ""; p99 = ""
      for (i = 1; i <= n; i++) { le = order[i]; c = a[le] - b[le]
        if (p50 == "" && c >= 0.50 * total) p50 = le
        if (p99 == "" && c >= 0.99 * total) p99 = le }
      printf "p50 ≤ %.0f µs, p99 ≤ %.0f µs (%d exchanges)", p50 * 1e6, p99 * 1e6, total
    }' "$WORK/before.prom" "$WORK/after.prom")
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  j() { median "$WORK/$mode-$1-open-$2.rounds" "$ROUNDS"; }

  echo "### $mode: $( [ "$mode" = pinned ] && echo 'proxy alone on CPU 1 (1 worker), wrk + upstream on CPU 0' || echo "nothing pinned, proxies use $workers workers")"
  echo
  echo "| path | req/s (wrk) | ratio vs nginx | proxy CPU per request | wrk p50 | wrk p99 | open-loop rate | p50 | p99 | p99.9 | errors |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for name in direct nginx rampart rampart_logged rampart_full; do
    local cpu="—"
    if [ -n "${PROC[$name]:-}" ] && [ "${REQS[$name]:-0}" -gt 0 ]; then
      cpu="$(awk -v t="${CPU_T[$name]}" -v hz="$TICKS" -v n="${REQS[$name]}" 'BEGIN { printf "%.1f µs", t / hz / n * 1e6 }')"
    fi
    echo "| $name | ${RPS[$name]} | $(ratio "${RPS[$name]}" "${RPS[nginx]}") | $cpu | ${P50[$name]} | ${P99[$name]} | ${RATE[$name]}/s | $(j $name p50_us) µs | $(j $name p99_us) µs | $(j $name p999_us) µs | $(j $name errors) |"
  done
  echo
  echo "- Rampart passthrough / nginx throughput: **$(ratio "${RPS[rampart]}" "${RPS[nginx]}")×**; logged (key + JSON + access log): $(ratio "${RPS[rampart_logged]}" "${RPS[rampart]}")× passthrough; authenticated pipeline (logged + limits + audit in batch mode): **$(ratio "${RPS[rampart_full]}" "${RPS[rampart]}")× passthrough** ($(ratio "${RPS[rampart_full]}" "${RPS[nginx]}")× nginx)"
  echo "- p50 / p99 added vs direct at ${half}/s (half of Rampart's peak, open loop, client-measured): Rampart $(( $(j rampart p50_us) - $(j direct p50_us) )) / $(( $(j rampart p99_us) - $(j direct p99_us) )) µs; nginx $(( $(j nginx p50_us) - $(j direct p50_us) )) / $(( $(j nginx p99_us) - $(j direct p99_us) )) µs"
  echo "- Host steal during the open-loop runs: $(steal_pct "$s0" "$s1" "$w0" "$w1") of the machine's CPU time (from /proc/stat; a virtual machine's vCPUs wait for the host)"
  echo "- Gateway-added time as Rampart measures it (first request byte read → last response byte handed to the connection, minus the upstream's time; doubling histogram buckets) during that run: $added"
  echo
}

# TLS 1.3 on the listener, as clients really connect: HTTP/1.1 (wrk) and HTTP/2 (h2load,
# one stream at a time per connection, like the HTTP/1.1 clients) to nginx and to
# Rampart passthrough, each alone on CPU 1 with one worker; h1 to the upstream for both.
tls_suite() {
  local pids=()
  UPSTREAM_THREADS=1 taskset -c 0 $BIN/upstream 127.0.0.1:$UP 2>"$WORK/upstream.log" & pids+=($!)
  nginx_conf nginx-tls 1 "listen 127.0.0.1:$NGT ssl http2;
    ssl_certificate $WORK/cert.pem;
    ssl_certificate_key $WORK/key.pem;
    ssl_protocols TLSv1.3;" >"$WORK/nginx-tls.conf"
  taskset -c 1 "$NGINX" -c "$WORK/nginx-tls.conf" -p "$WORK" & pids+=($!)
  rampart_config $RT $RTA false http 1 true |
    sed "/^listen = \"127.0.0.1:$RT\"/a tls = { cert = \"$WORK/cert.pem\", key = \"$WORK/key.pem\" }" >"$WORK/tls.toml"
  taskset -c 1 $BIN/rampart serve --config "$WORK/tls.toml" >/dev/null 2>"$WORK/rt.log" & pids+=($!)
  for port in $NGT $RT; do
    for _ in $(seq 100); do curl -skf -d '{}' "https://127.0.0.1:$port/v1/chat/completions" >/dev/null && break; sleep 0.1; done
  done
  declare -A TPROC TCPU TREQ
  TPROC[nginx]=${pids[1]}; TPROC[rampart]=${pids[2]}
  local round t name port proto out n c0 c1
  for round in $(seq "$ROUNDS"); do
    for t in nginx:$NGT rampart:$RT; do
      name=${t%%:*}; port=${t##*:}
      for proto in h1 h2; do
        url="https://127.0.0.1:$port/v1/chat/completions"
        c0=$(cpu_ticks "${TPROC[$name]}")
        if [ $proto = h1 ]; then
          out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "$url")
          n=$(awk '/requests in/ {print $1}' <<<"$out")
          awk '/Requests\/sec/ {print $2}' <<<"$out" >>"$WORK/tls-$name-$proto.rounds"
        else
          out=$(taskset -c 0 h2load -t1 -c"$CONNS" -m1 -D "$DURATION" -d "$WORK/body.json" -H 'content-type: application/json' "$url")
          n=$(awk '/^requests:/ {print $8}' <<<"$out")
          awk '/^finished in/ {print $4}' <<<"$out" >>"$WORK/tls-$name-$proto.rounds"
        fi
        c1=$(cpu_ticks "${TPROC[$name]}")
        TCPU[$name-$proto]=$(( ${TCPU[$name-$proto]:-0} + c1 - c0 ))
        TREQ[$name-$proto]=$(( ${TREQ[$name-$proto]:-0} + n ))
      done
    done
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "### TLS 1.3: proxy alone on CPU 1 (1 worker), client + upstream on CPU 0"
  echo
  echo "| client protocol | nginx req/s | Rampart req/s | ratio | nginx CPU per request | Rampart CPU per request |"
  echo "|---|---|---|---|---|---|"
  local a b
  for proto in h1 h2; do
    a=$(median "$WORK/tls-nginx-$proto.rounds" "$ROUNDS"); b=$(median "$WORK/tls-rampart-$proto.rounds" "$ROUNDS")
    echo "| $( [ $proto = h1 ] && echo 'HTTP/1.1 (wrk)' || echo 'HTTP/2 (h2load, 1 stream per connection)') | $a | $b | $(ratio "$b" "$a") | $(awk -v t="${TCPU[nginx-$proto]}" -v hz="$TICKS" -v n="${TREQ[nginx-$proto]}" 'BEGIN { printf "%.1f µs", t / hz / n * 1e6 }') | $(awk -v t="${TCPU[rampart-$proto]}" -v hz="$TICKS" -v n="${TREQ[rampart-$proto]}" 'BEGIN { printf "%.1f µs", t / hz / n * 1e6 }') |"
  done
  echo
}

# Streaming: SSE_CONNS connections each keep one streamed chat completion in flight
# (the upstream sends 20 events 10 ms apart), to the upstream directly, through nginx,
# Rampart passthrough and Rampart's authenticated pipeline (which also counts the
# stream's tokens against the budget). Proxy alone on CPU 1, client + upstream on CPU 0.
# Each figure is the median over the rounds.
sse_suite() {
  local pids=()
  UPSTREAM_THREADS=1 taskset -c 0 $BIN/upstream 127.0.0.1:$UP 2>"$WORK/upstream.log" & pids+=($!)
  nginx_conf nginx-sse 1 "listen 127.0.0.1:$NG;" >"$WORK/nginx-sse.conf"
  taskset -c 1 "$NGINX" -c "$WORK/nginx-sse.conf" -p "$WORK" & pids+=($!)
  rampart_config $RP $RPA false http 1 true >"$WORK/sse-passthrough.toml"
  rampart_config $RF $RFA true openai 1 false full >"$WORK/sse-full.toml"
  taskset -c 1 $BIN/rampart serve --config "$WORK/sse-passthrough.toml" >/dev/null 2>"$WORK/sp.log" & pids+=($!)
  taskset -c 1 $BIN/rampart serve --config "$WORK/sse-full.toml" >/dev/null 2>"$WORK/sf.log" & pids+=($!)
  for port in $UP $NG $RP $RF; do
    for _ in $(seq 100); do curl -sf -H "Authorization: Bearer $KEY" -d '{}' "http://127.0.0.1:$port/v1/chat/completions" >/dev/null && break; sleep 0.1; done
  done
  declare -A SPROC SCPU SN
  SPROC[nginx]=${pids[1]}; SPROC[rampart]=${pids[2]}; SPROC[rampart_full]=${pids[3]}
  local round t name port out c0 c1 f s0 s1 w0 w1
  s0=$(steal_ticks); w0=$(date +%s.%N)
  for round in $(seq "$ROUNDS"); do
    for t in direct:$UP nginx:$NG rampart:$RP rampart_full:$RF; do
      name=${t%%:*}; port=${t##*:}
      c0=$( [ -n "${SPROC[$name]:-}" ] && cpu_ticks "${SPROC[$name]}" || echo 0)
      out=$(taskset -c 0 $BIN/loadgen --sse "http://127.0.0.1:$port/v1/chat/completions" "$DURATION" "$SSE_CONNS" "$SSE_BODY" "Bearer $KEY")
      c1=$( [ -n "${SPROC[$name]:-}" ] && cpu_ticks "${SPROC[$name]}" || echo 0)
      SCPU[$name]=$(( ${SCPU[$name]:-0} + c1 - c0 ))
      SN[$name]=$(( ${SN[$name]:-0} + $(json_num "$out" streams) ))
      for f in streams events errors ttfb_p50_us ttfb_p99_us gap_p50_us gap_p99_us gap_max_us; do
        json_num "$out" "$f" >>"$WORK/sse-$name-$f.rounds"
      done
    done
  done
  s1=$(steal_ticks); w1=$(date +%s.%N)
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  m() { median "$WORK/sse-$1-$2.rounds" "$ROUNDS"; }
  echo "### Streaming (SSE): $SSE_CONNS streams in flight, 20 events 10 ms apart each; proxy alone on CPU 1 (1 worker), client + upstream on CPU 0"
  echo
  echo "| path | streams | errors | time to first byte p50 | p99 | added p99 vs direct | gap between events p50 | p99 | max | added gap p99 vs direct | proxy CPU per stream |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  for name in direct nginx rampart rampart_full; do
    local cpu="—"
    if [ -n "${SPROC[$name]:-}" ] && [ "${SN[$name]:-0}" -gt 0 ]; then
      cpu="$(awk -v t="${SCPU[$name]}" -v hz="$TICKS" -v n="${SN[$name]}" 'BEGIN { printf "%.0f µs", t / hz / n * 1e6 }')"
    fi
    echo "| $name | $(m $name streams) | $(m $name errors) | $(m $name ttfb_p50_us) µs | $(m $name ttfb_p99_us) µs | $(( $(m $name ttfb_p99_us) - $(m direct ttfb_p99_us) )) µs | $(m $name gap_p50_us) µs | $(m $name gap_p99_us) µs | $(m $name gap_max_us) µs | $(( $(m $name gap_p99_us) - $(m direct gap_p99_us) )) µs | $cpu |"
  done
  echo
  echo "- Host steal during these runs: $(steal_pct "$s0" "$s1" "$w0" "$w1") of the machine's CPU time."
  echo
}

# Trace overhead: Rampart's authenticated pipeline alone on CPU 1 (1 worker), wrk and
# the upstream (which also plays a null OTLP/HTTP collector) on CPU 0, three ways:
# without [traces]; with trace context only (sample_ratio = 0: ids in the access log,
# traceparent to the upstream, nothing exported); and every exchange sampled and
# exported (a server span, a span per stage, the upstream span). Rounds interleaved,
# the median reported, with CPU per request.
traces_suite() {
  local pids=() name port out c0 c1 round t
  UPSTREAM_THREADS=1 taskset -c 0 $BIN/upstream 127.0.0.1:$UP 2>"$WORK/upstream.log" & pids+=($!)
  local off=$((BASE_PORT+11)) ctx=$((BASE_PORT+13)) on=$((BASE_PORT+15))
  rampart_config $off $((off+1)) true openai 1 false full >"$WORK/traces-off.toml"
  { rampart_config $ctx $((ctx+1)) true openai 1 false full; printf '[traces]\nsample_ratio = 0.0\n'; } >"$WORK/traces-ctx.toml"
  { rampart_config $on $((on+1)) true openai 1 false full
    printf '[traces]\nendpoint = "http://127.0.0.1:%s"\nsample_ratio = 1.0\n' "$UP"; } >"$WORK/traces-on.toml"
  declare -A TPROC TCPU TREQ
  for name in off ctx on; do
    taskset -c 1 $BIN/rampart serve --config "$WORK/traces-$name.toml" >/dev/null 2>"$WORK/traces-$name.log" & pids+=($!)
    TPROC[$name]=$!
  done
  for port in $off $ctx $on; do
    for _ in $(seq 100); do curl -sf -H "Authorization: Bearer $KEY" -d '{}' "http://127.0.0.1:$port/v1/chat/completions" >/dev/null && break; sleep 0.1; done
  done
  for round in $(seq "$ROUNDS"); do
    for t in off:$off ctx:$ctx on:$on; do
      name=${t%%:*}; port=${t##*:}
      taskset -c 0 wrk -t1 -c"$CONNS" -d1s -s "$WORK/auth.lua" "http://127.0.0.1:$port/v1/chat/completions" >/dev/null
      c0=$(cpu_ticks "${TPROC[$name]}")
      out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/auth.lua" "http://127.0.0.1:$port/v1/chat/completions")
      c1=$(cpu_ticks "${TPROC[$name]}")
      TCPU[$name]=$(( ${TCPU[$name]:-0} + c1 - c0 ))
      TREQ[$name]=$(( ${TREQ[$name]:-0} + $(awk '/requests in/ {print $1}' <<<"$out") ))
      if grep -qE "Non-2xx|Socket errors" <<<"$out"; then echo "traces/$name: $(grep -E 'Non-2xx|Socket errors' <<<"$out")" >&2; fi
      echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(awk '$1=="99%" {print $2}' <<<"$out")" >>"$WORK/traces-$name.rounds"
    done
  done
  local metrics; metrics=$(curl -s "http://127.0.0.1:$((on+1))/metrics")
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  declare -A TRPS TP99
  for name in off ctx on; do
    read -r TRPS[$name] TP99[$name] < <(sort -n "$WORK/traces-$name.rounds" | awk -v r="$ROUNDS" 'NR == int((r + 1) / 2)')
  done
  echo "### Trace overhead: authenticated pipeline alone on CPU 1 (1 worker), wrk + upstream/collector on CPU 0"
  echo
  echo "| traces | req/s (wrk) | vs no traces | proxy CPU per request | wrk p99 |"
  echo "|---|---|---|---|---|"
  for name in off ctx on; do
    local label
    case $name in off) label="no \`[traces]\`" ;; ctx) label="trace context only (sample_ratio 0)" ;; on) label="every exchange exported (sample_ratio 1.0)" ;; esac
    echo "| $label | ${TRPS[$name]} | $(ratio "${TRPS[$name]}" "${TRPS[off]}") | $(awk -v t="${TCPU[$name]}" -v hz="$TICKS" -v n="${TREQ[$name]}" 'BEGIN { printf "%.1f µs", t / hz / n * 1e6 }') | ${TP99[$name]} |"
  done
  echo
  echo "- Spans the sampled gateway handed to the collector: $(awk '/^rampart_trace_spans_total/ { s[$1] = $2 } END { for (k in s) printf "%s = %s; ", k, s[k] }' <<<"$metrics")"
  echo
}

mkdir -p bench/results
OUT=bench/results/proxy.md
{
  echo "Run: \`bench/run.sh\` (DURATION=${DURATION}s CONNS=$CONNS WRK_THREADS=$WRK_THREADS ROUNDS=$ROUNDS SSE_CONNS=$SSE_CONNS SUITES=\"${SUITES:-shared pinned tls sse traces}\", median round reported) on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "Upstream: bench/src/bin/upstream.rs (1 thread, ~300-byte JSON answer to a ~120-byte POST). nginx $("$NGINX" -v 2>&1 | sed 's/.*\///'), access_log off, upstream keepalive. Rampart: release build."
  echo "rampart = passthrough route (protocol http: body streamed, public, access log off, as nginx); rampart_logged = OpenAI route with API-key authentication, authorization, body buffered + strict JSON parse, model check, ECS access log on; rampart_full = rampart_logged plus a rate limit, a concurrency limit and a token budget (local store) and the audit trail in batch mode (file store)."
  echo
  for s in ${SUITES:-shared pinned tls sse traces}; do
    case $s in
      shared|pinned) suite "$s" ;;
      tls) tls_suite ;;
      sse) sse_suite ;;
      traces) traces_suite ;;
      *) echo "unknown suite $s (shared, pinned, tls, sse, traces)" >&2; exit 2 ;;
    esac
  done
} >"$OUT"
cat "$OUT"
