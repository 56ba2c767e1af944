#!/usr/bin/env bash
# Full-path cost of content security: the same OpenAI chat request (about 1 KiB of
# prompt with an e-mail address and a phone number in it) through
#   (a) passthrough (protocol http: no parsing),
#   (b) an OpenAI route with protocol validation only,
#   (c) the same route with a content policy: PII pseudonymised in the request and
#       restored in the response, secrets blocked, response secrets redacted, prompt
#       injection scored (block), canary in the system prompt.
# wrk, closed loop, interleaved rounds, median reported; ratios against passthrough.
#
#   bench/content.sh              # DURATION=5 CONNS=64 ROUNDS=3
#   PROFILE=perf.data bench/content.sh   # also: perf record of the content gateway
#                                        # under one more wrk run (perf report -i …)
#
# Writes bench/results/content.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
source bench/lib.sh
need_wrk
start_work

UP=18300
UPSTREAM_THREADS=1 $BIN/upstream 127.0.0.1:$UP 2>/dev/null &
# The request (also read by `MICRO_ONLY=content target/release/micro`, the same work in
# process): a system message and the user's prompt.
BODY=$(tr -d '\n' <bench/data/content_request.json)
read -r SYSTEM_LEN PROMPT_LEN < <(python3 -c 'import json,sys; m=json.load(sys.stdin)["messages"]; print(len(m[0]["content"]), len(m[1]["content"]))' <bench/data/content_request.json)
cat >"$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.body = '$BODY'
wrk.headers["Content-Type"] = "application/json"
LUA

config() { # port admin protocol with-policy
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
protocol = "$3"
public = true
TOML
  if [ "$4" = yes ]; then
    cat <<TOML
policy = "full"
[policies.full]
request = { "pii.*" = "pseudonymise", "secret.*" = "block" }
response = { "secret.*" = "redact" }
injection = { action = "block" }
canary = true
TOML
  fi
}
config 18301 18401 http no >"$WORK/pass.toml"
config 18302 18402 openai no >"$WORK/validate.toml"
config 18303 18403 openai yes >"$WORK/content.toml"
declare -A PID
for n in pass validate content; do
  $BIN/rampart serve --config "$WORK/$n.toml" >/dev/null 2>"$WORK/$n.log" &
  PID[$n]=$!
done
TICK=$(getconf CLK_TCK)
wait_http http://127.0.0.1:18301/ http://127.0.0.1:18302/ http://127.0.0.1:18303/
# The policy really acts: the upstream must see a placeholder, not the address.
check=$(curl -s http://127.0.0.1:18303/v1/chat/completions -H 'content-type: application/json' -d "$BODY")
grep -q '"choices"' <<<"$check" || { echo "content route failed: $check" >&2; exit 1; }

for round in $(seq "$ROUNDS"); do
  for t in pass:18301 validate:18302 content:18303; do
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" "http://127.0.0.1:${t##*:}/v1/chat/completions")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out") $(grep -cE 'Non-2xx|Socket errors' <<<"$out")" >>"$WORK/${t%%:*}"
  done
done
if [ -n "${PROFILE:-}" ]; then
  perf record -F 999 ${PERF_ARGS:-} -o "$PROFILE" -p "${PID[content]}" -- sleep "$DURATION" 2>/dev/null &
  wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/post.lua" http://127.0.0.1:18303/v1/chat/completions >/dev/null
  wait %%
fi
P=$(median "$WORK/pass" "$ROUNDS"); V=$(median "$WORK/validate" "$ROUNDS"); C=$(median "$WORK/content" "$ROUNDS")
# CPU per request at one fixed rate for all three (half the content route's closed-loop
# rate, open loop): under a closed loop the slower route also pays more kernel and
# wake-up cost per request (fewer requests per wake-up), which is not the content
# stage's cost. The gateway's user + system CPU over the run, divided by requests.
RATE=$(awk -v c="$C" 'BEGIN { printf "%d", c / 2 }')
for round in $(seq "$ROUNDS"); do
  for t in pass:18301 validate:18302 content:18303; do
    n=${t%%:*}
    before=$(cpu_ticks "${PID[$n]}")
    out=$($BIN/loadgen "http://127.0.0.1:${t##*:}/v1/chat/completions" "$RATE" "$DURATION" 16 "$BODY")
    after=$(cpu_ticks "${PID[$n]}")
    ok=$(sed -n 's/.*"ok":\([0-9]*\).*/\1/p' <<<"$out")
    sed -n 's/.*"errors":\([0-9]*\).*/0 \1/p' <<<"$out" >>"$WORK/open-loop-errors"
    awk -v d=$((after - before)) -v r="$ok" -v hz="$TICK" 'BEGIN { printf "%.1f\n", d * 1e6 / hz / r }' >>"$WORK/$n.cpu"
  done
done
PC=$(median "$WORK/pass.cpu" "$ROUNDS"); VC=$(median "$WORK/validate.cpu" "$ROUNDS"); CC=$(median "$WORK/content.cpu" "$ROUNDS")
# Text the content stage inspects per exchange: the request's message contents and the
# answer's message content (the bench upstream's fixed answer).
ANSWER=$(sed -n 's/.*"content":"\([^"]*\)".*/\1/p' <<<"$check")
INSPECTED=$(( PROMPT_LEN + ${#ANSWER} + SYSTEM_LEN ))
mkdir -p bench/results
{
  echo "Run: \`bench/content.sh\` (DURATION=${DURATION}s CONNS=$CONNS ROUNDS=$ROUNDS, median; request $(printf %s "$BODY" | wc -c) bytes) on $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "| route | req/s (closed loop) | ratio vs passthrough | gateway CPU µs / request at $RATE req/s |"
  echo "|---|---|---|---|"
  echo "| passthrough (protocol http) | $P | 1.00 | $PC |"
  echo "| OpenAI route, validation | $V | $(ratio "$V" "$P") | $VC |"
  echo "| OpenAI route, validation + PII both ways + secrets + injection + canary | $C | $(ratio "$C" "$P") | $CC |"
  echo
  echo "Content inspection cost (DESIGN.md §6 target ≤ 60 µs of gateway CPU per KiB of inspected text):"
  echo "($CC − $VC) µs over $INSPECTED bytes of inspected text (request message contents and the answer) ="
  echo "**$(awk -v c="$CC" -v v="$VC" -v b="$INSPECTED" 'BEGIN { printf "%.1f", (c - v) * 1024 / b }') µs per KiB**."
  echo
  echo "Errors or non-2xx answers in any run: $(cat "$WORK/pass" "$WORK/validate" "$WORK/content" "$WORK/open-loop-errors" | awk '{s+=$2} END {print s}') (must be 0)."
} >bench/results/content.md
cat bench/results/content.md
