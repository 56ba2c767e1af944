#!/usr/bin/env bash
# Checks the deployment files in deploy/ offline:
#   - the Prometheus alert rules parse (`promtool check rules`) and behave as their unit
#     tests say (`promtool test rules`: which alerts fire, when, with which labels);
#   - every PromQL query of the Grafana dashboard parses (each is checked by promtool
#     as a recording rule, with the dashboard's variables filled in).
# That every metric those files name is one the gateway exports is checked against the
# running binary by `deploy::` in the integration tests.
# Installs promtool from Debian's prometheus package (pinned) when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PROMETHEUS_DEB=${PROMETHEUS_DEB:-2.42.0+ds-5+deb12u1}
if ! command -v promtool >/dev/null; then
  echo "installing promtool (Debian prometheus $PROMETHEUS_DEB)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  # The package's service is not wanted: only its promtool.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "prometheus=$PROMETHEUS_DEB" >/dev/null
  $SUDO pkill -x prometheus 2>/dev/null || true
fi

echo "== promtool check rules / test rules (deploy/prometheus)"
promtool check rules deploy/prometheus/rampart-alerts.yml
(cd deploy/prometheus && promtool test rules rampart-alerts.test.yml)

echo "== the Grafana dashboard's queries parse (deploy/grafana/rampart.json)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 - deploy/grafana/rampart.json "$work/dashboard-rules.yml" <<'PY'
import json, sys
dash = json.load(open(sys.argv[1]))
exprs = []
def walk(panels):
    for p in panels:
        walk(p.get("panels", []))
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
walk(dash["panels"])
if not exprs:
    sys.exit("the dashboard has no queries")
with open(sys.argv[2], "w") as out:
    out.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, e) in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        out.write(f"      - record: dashboard:query_{i}\n        expr: {json.dumps(e)}\n")
print(f"{len(exprs)} queries in {len(dash['panels'])} panels")
PY
promtool check rules "$work/dashboard-rules.yml"
