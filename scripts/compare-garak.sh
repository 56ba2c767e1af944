#!/usr/bin/env bash
# Side by side: garak (NVIDIA's LLM scanner, from PyPI) and `rampart probe` against the
# same `rampart demo` — its model server directly, and its secure listener with the
# demo key. Prints what each found, how long it took and how many requests it sent
# (docs/PROBE.md). Offline: garak 0.17.1 is installed without its torch/transformers
# dependencies (scripts/garak-requirements.txt), so only probes whose detectors are
# string or regex matches run. garak's in-the-wild jailbreak probes (dan.*) are left
# out: that collection is reserved for evaluating Rampart's detectors.
#   usage: scripts/compare-garak.sh            (needs ports 8080, 8081, 9901 free)
set -euo pipefail
cd "$(dirname "$0")/.."

GARAK_VERSION=0.17.1
PROBES="promptinject.HijackHateHumans,latentinjection.LatentInjectionResume,encoding.InjectBase64,apikey.GetKey,malwaregen.Evasion,goodside.Tag,web_injection.MarkdownImageExfil"
venv=target/garak-venv
if [ ! -x "$venv/bin/garak" ] || ! "$venv/bin/pip" show garak 2>/dev/null | grep -q "^Version: $GARAK_VERSION$"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r scripts/garak-requirements.txt
  "$venv/bin/pip" install -q --no-deps "garak==$GARAK_VERSION"
fi
cargo build -q -p rampart
bin=target/debug/rampart

work=$(mktemp -d)
export XDG_DATA_HOME="$work/xdg" XDG_CONFIG_HOME="$work/xdg" XDG_CACHE_HOME="$work/xdg"
"$bin" demo > "$work/demo.out" 2>&1 &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "^  API key" "$work/demo.out" && break; sleep 0.2; done
key=$(grep "^  API key" "$work/demo.out" | awk '{print $3}')
model_server=$(grep -o 'demo OpenAI server http://[0-9.:]*' "$work/demo.out" | awk '{print $4}')
[ -n "$key" ] && [ -n "$model_server" ] || { echo "rampart demo did not start" >&2; cat "$work/demo.out" >&2; exit 1; }

garak() { # name, base url, key
  python3 -c 'import json,sys; json.dump({"openai": {"OpenAICompatible": {"uri": sys.argv[1], "model": "rampart-demo-chat", "api_key": sys.argv[2], "max_tokens": 256, "suppressed_params": ["n", "frequency_penalty", "presence_penalty", "stop", "seed"]}}}, open(sys.argv[3], "w"))' \
    "$2/v1" "$3" "$work/$1.json"
  local t0 t1
  t0=$(date +%s.%N)
  "$venv/bin/python" -m garak --model_type openai.OpenAICompatible --model_name rampart-demo-chat \
    --generator_option_file "$work/$1.json" --probes "$PROBES" --generations 1 \
    --report_prefix "$1" > "$work/$1.log" 2>&1
  t1=$(date +%s.%N)
  python3 - "$XDG_DATA_HOME/garak/garak_runs/$1.report.jsonl" "$1" "$t0" "$t1" <<'PY'
import json, sys
path, name, secs = sys.argv[1], sys.argv[2], float(sys.argv[4]) - float(sys.argv[3])
sent, evals = 0, []
for line in open(path):
    e = json.loads(line)
    if e["entry_type"] == "attempt" and e.get("status") == 1:
        sent += 1
    if e["entry_type"] == "eval":
        evals.append(e)
print(f"garak {name}: {sent} requests in {secs:.1f} s")
for e in evals:
    failed = e["total_evaluated"] - e["passed"]
    print(f"  {e['probe']:45} {e['detector']:40} {failed:4} of {e['total_evaluated']:4} answers flagged")
PY
}

probe() { # name, url, key
  local t0 t1
  t0=$(date +%s.%N)
  RAMPART_PROBE_KEY="$3" "$bin" probe "$2" --protocol openai --model rampart-demo-chat --out "$work/$1" > "$work/$1.txt" || true
  t1=$(date +%s.%N)
  python3 - "$work/$1/report.json" "$1" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
cases = r["cases"]
fails = [c for c in cases if c["verdict"] == "fail"]
print(f"rampart probe {sys.argv[2]}: {r['requests_sent']} requests in {float(sys.argv[4]) - float(sys.argv[3]):.1f} s, {len(cases)} cases, {len(fails)} findings")
fam = {}
for c in cases:
    f = fam.setdefault(c["family"], [0, 0, 0])
    f[0] += 1
    f[1] += c["verdict"] == "fail"
    f[2] += c["verdict"] == "inconclusive"
for k, (n, f, i) in fam.items():
    print(f"  {k:12} {f:3} findings of {n:3} cases ({i} inconclusive)")
PY
}

echo "# $(date -u +%FT%TZ), garak $GARAK_VERSION, $("$bin" --version)"
garak garak-direct "$model_server" none
garak garak-secure "http://127.0.0.1:8081" "$key"
probe probe-direct "$model_server" ""
probe probe-secure "http://127.0.0.1:8081" "$key"
