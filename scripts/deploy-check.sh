#!/usr/bin/env bash
# Checks the deployment files in deploy/ offline (no cluster, no Prometheus server):
#   - the Prometheus alert rules parse (`promtool check rules`) and behave as their unit
#     tests say (`promtool test rules`: which alerts fire, when, with which labels);
#   - every PromQL query of the Grafana dashboard parses (each is checked by promtool
#     as a recording rule, with the dashboard's variables filled in);
#   - each Kubernetes overlay renders (`kubectl kustomize`) and every resource validates
#     strictly against the Kubernetes 1.30 schemas (kubernetes-validate, which ships
#     them); the ServiceMonitor, which has no schema there, is checked against the
#     Service it selects; each overlay's rampart.toml passes `rampart check-config`.
# That every metric the rules and the dashboard name is exported is checked by the
# gateway's `metrics::tests`.
# Installs promtool (Debian's prometheus package) and, without a kubectl, Debian's
# kubernetes-client, pinned; kubernetes-validate from PyPI into target/deploy-venv,
# pinned (scripts/deploy-requirements.txt).
set -euo pipefail
cd "$(dirname "$0")/.."

PROMETHEUS_DEB=${PROMETHEUS_DEB:-2.42.0+ds-5+deb12u1}
KUBECTL_DEB=${KUBECTL_DEB:-1.20.5+really1.20.2-1.1+deb12u1}
K8S_VERSION=${K8S_VERSION:-1.30.0}
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
if ! command -v promtool >/dev/null; then
  echo "installing promtool (Debian prometheus $PROMETHEUS_DEB)" >&2
  $SUDO apt-get update -qq
  # The package's service is not wanted: only its promtool.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "prometheus=$PROMETHEUS_DEB" >/dev/null
  $SUDO pkill -x prometheus 2>/dev/null || true
fi
if ! command -v kubectl >/dev/null; then
  # kubectl 1.20 carries kustomize 2.0.3; the kustomizations use fields it and kustomize 5 share.
  echo "installing kubectl (Debian kubernetes-client $KUBECTL_DEB)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "kubernetes-client=$KUBECTL_DEB" >/dev/null
fi
venv=target/deploy-venv
if ! "$venv/bin/python" -c 'import kubernetes_validate' 2>/dev/null; then
  echo "installing kubernetes-validate into $venv (scripts/deploy-requirements.txt)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r scripts/deploy-requirements.txt
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

echo "== Kubernetes overlays render and validate against Kubernetes $K8S_VERSION (deploy/kubernetes)"
cargo build -q -p rampart
psql -q -h 127.0.0.1 -U postgres -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = 'rampart_deploy_check'" | grep -q 1 ||
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE rampart_deploy_check"
for overlay in deploy/kubernetes/overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" >"$work/$name.yaml" 2>"$work/$name.err" || { cat "$work/$name.err" >&2; exit 1; }
  "$venv/bin/kubernetes-validate" -k "$K8S_VERSION" --strict --quiet "$work/$name.yaml" >"$work/$name.validate" 2>&1 || true
  if grep -v "Couldn't find schema for kind ServiceMonitor" "$work/$name.validate" | grep -q .; then
    cat "$work/$name.validate" >&2
    echo "$overlay: does not validate against Kubernetes $K8S_VERSION" >&2
    exit 1
  fi
  "$venv/bin/python" - "$work/$name.yaml" "$overlay" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = {}
for d in docs:
    kinds.setdefault(d["kind"], []).append(d)
need = ["Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "ServiceAccount"]
missing = [k for k in need if k not in kinds]
if missing:
    sys.exit(f"{sys.argv[2]}: no {missing}")
dep = kinds["Deployment"][0]
pod = dep["spec"]["template"]
spec = pod["spec"]
c = spec["containers"][0]
ports = {p["name"] for p in c["ports"]}
for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
    if c[probe]["httpGet"]["port"] not in ports:
        sys.exit(f"{sys.argv[2]}: {probe} names a port the container does not have")
sc, csc = spec["securityContext"], c["securityContext"]
if not (sc["runAsNonRoot"] and csc["readOnlyRootFilesystem"] and not csc["allowPrivilegeEscalation"] and csc["capabilities"]["drop"] == ["ALL"]):
    sys.exit(f"{sys.argv[2]}: the pod must run as non-root, read-only, without privilege escalation or capabilities")
maps = {m["metadata"]["name"] for m in kinds["ConfigMap"]}
for m in kinds["ConfigMap"]:
    # A ConfigMap without a content hash in its name changes in place: only a gateway
    # that watches its config file would ever see the change.
    if m["metadata"]["name"] == "rampart-config" and "watch_config" not in m["data"]["rampart.toml"]:
        sys.exit(f"{sys.argv[2]}: the ConfigMap is updated in place but rampart.toml does not set server.watch_config")
for v in spec["volumes"]:
    if "configMap" in v and v["configMap"]["name"] not in maps:
        sys.exit(f"{sys.argv[2]}: volume {v['name']} names ConfigMap {v['configMap']['name']}, which the overlay does not make")
for s in kinds["Service"]:
    sel = s["spec"]["selector"]
    if any(pod["metadata"]["labels"].get(k) != v for k, v in sel.items()):
        sys.exit(f"{sys.argv[2]}: Service {s['metadata']['name']} selects no gateway pod")
sm = kinds["ServiceMonitor"][0]["spec"]
targets = [s for s in kinds["Service"] if all(s["metadata"].get("labels", {}).get(k) == v for k, v in sm["selector"]["matchLabels"].items())]
if len(targets) != 1:
    sys.exit(f"{sys.argv[2]}: the ServiceMonitor selects {len(targets)} Services, not the admin one")
names = {p["name"] for p in targets[0]["spec"]["ports"]}
for e in sm["endpoints"]:
    if e["port"] not in names or e["path"] != "/metrics" or e["authorization"]["type"] != "Bearer":
        sys.exit(f"{sys.argv[2]}: ServiceMonitor endpoint {e} does not scrape the admin port's /metrics with a bearer key")
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
config_arg = c["args"][c["args"].index("--config") + 1]
if config_arg.rsplit("/", 1)[0] != mounts["config"]:
    sys.exit(f"{sys.argv[2]}: --config {config_arg} is not in the config volume ({mounts['config']})")
for a in mounts.values():
    for b in mounts.values():
        if a != b and b.startswith(a.rstrip("/") + "/"):
            sys.exit(f"{sys.argv[2]}: {b} is mounted inside {a}")
import re
toml = open(sys.argv[2] + "/rampart.toml").read()
for path in re.findall(r'file = "([^"]+)"', toml):
    if not path.startswith(mounts["secrets"] + "/"):
        sys.exit(f"{sys.argv[2]}rampart.toml: {path} is not in the secrets volume ({mounts['secrets']})")
grace = spec["terminationGracePeriodSeconds"]
if grace <= 25 + c["lifecycle"]["preStop"]["sleep"]["seconds"]:
    sys.exit(f"{sys.argv[2]}: terminationGracePeriodSeconds {grace} leaves no room for the preStop pause and shutdown_grace")
print(f"{sys.argv[2]}: {len(docs)} resources ({', '.join(sorted(kinds))}) consistent")
PY
  # The overlay's gateway config, with throwaway secrets where the Secret would mount them.
  mkdir -p "$work/$name/secrets"
  sed "s#/etc/rampart/secrets/#$work/$name/secrets/#" "$overlay/rampart.toml" >"$work/$name/rampart.toml"
  openssl rand -hex 32 >"$work/$name/secrets/pepper"
  target/debug/rampart audit keygen --out "$work/$name/secrets/audit.key" >/dev/null
  : >"$work/$name/secrets/keys.toml"
  echo "redis://127.0.0.1:6379/0" >"$work/$name/secrets/redis-url"
  # check-config connects to the stores it names: the fleet's PostgreSQL is the test
  # cluster (scripts/services.sh), in a database of its own.
  echo "postgres://postgres@127.0.0.1:5432/rampart_deploy_check" >"$work/$name/secrets/postgres-url"
  POD_NAME=rampart-7d9c5b-x2k4q target/debug/rampart check-config "$work/$name/rampart.toml"
done
