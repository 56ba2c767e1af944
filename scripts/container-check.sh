#!/usr/bin/env bash
# Builds the container image (scripts/container.sh) and runs it the way a cluster would:
# read-only root filesystem, as its non-root user, every capability dropped, no new
# privileges, the config mounted read-only. Checks that the image holds nothing but the
# binary and its runtime, that it answers /healthz and /readyz, proxies a request to an
# upstream on the host named by a host name (glibc's resolver works in the image), and on SIGTERM lets an in-flight request finish and exits 0
# within its drain period (server.shutdown_grace).
set -euo pipefail
cd "$(dirname "$0")/.."

tag=$(scripts/container.sh "localhost/rampart:check")
name=rampart-check-$$
work=$(mktemp -d)
upstream_pid=""
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  [ -n "$upstream_pid" ] && kill "$upstream_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "container check: $*" >&2; podman logs "$name" 2>&1 | tail -20 >&2 || true; exit 1; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port); ADMIN=$(free_port); UP=$(free_port)

# A model server on the host: JSON answers; /v1/slow answers after 3 s.
python3 - "$UP" >"$work/upstream.log" 2>&1 <<'PY' &
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/v1/slow":
            time.sleep(3)
        body = json.dumps({"object": "chat.completion", "from": "host-upstream", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
upstream_pid=$!

cat >"$work/rampart.toml" <<TOML
[server]
node_id = "container-check"
shutdown_grace = "10s"
[admin]
listen = "127.0.0.1:$ADMIN"
public_metrics = true
[[listeners]]
name = "main"
listen = "127.0.0.1:$PORT"
[[upstreams]]
name = "host"
targets = ["http://localhost:$UP"] # a host name: the image must resolve it
[[routes]]
name = "all"
path_prefix = "/"
upstream = "host"
protocol = "http"
public = true
TOML
chmod 644 "$work/rampart.toml"

echo "== the image holds the binary and its runtime, nothing else"
podman create --name "$name-files" "$tag" >/dev/null
files=$(podman export "$name-files" | tar -t | grep -v '/$' | sort)
podman rm "$name-files" >/dev/null
echo "$files" | sed 's/^/  /'
unexpected=$(echo "$files" | grep -vE '^(usr/local/bin/rampart|etc/passwd|etc/group|(usr/)?lib(64|/x86_64-linux-gnu)?/(ld-linux[^/]*|lib[a-z_]+\.so\.[0-9]+))$' || true)
[ -z "$unexpected" ] || fail "unexpected files in the image: $unexpected"
echo "$files" | grep -qx 'usr/local/bin/rampart' || fail "no binary in the image"
podman image inspect --format '  user {{.Config.User}}, entrypoint {{.Config.Entrypoint}}, size {{.Size}} bytes' "$tag"
[ "$(podman image inspect --format '{{.Config.User}}' "$tag")" = "65532:65532" ] || fail "the image does not run as 65532"

echo "== it runs read-only, unprivileged, and serves"
# runc, not crun: crun refuses hosts with hybrid cgroup hierarchies. The ulimits are
# set explicitly because a container may not raise them above the host's.
podman --runtime runc run -d --name "$name" --network host --read-only --cap-drop ALL \
  --security-opt no-new-privileges --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
  -v "$work/rampart.toml:/etc/rampart/rampart.toml:ro" "$tag" >/dev/null
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null || fail "/healthz does not answer"
curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null || fail "/readyz does not answer"
pid=$(podman inspect --format '{{.State.Pid}}' "$name")
uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = 65532 ] || fail "the gateway runs as uid $uid"
caps=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
[ "$caps" = 0000000000000000 ] || fail "the gateway has capabilities $caps"
answer=$(curl -sf -H 'content-type: application/json' -d '{"model":"m"}' "http://127.0.0.1:$PORT/v1/chat/completions")
grep -q '"from": "host-upstream"' <<<"$answer" || fail "proxied answer: $answer"
echo "  uid $uid, no capabilities, proxied: $answer"

echo "== SIGTERM drains: the in-flight request finishes, then the container exits 0"
curl -s -o "$work/slow.out" -w '%{http_code}' -d '{}' "http://127.0.0.1:$PORT/v1/slow" >"$work/slow.code" &
slow=$!
sleep 0.5
start=$(date +%s.%N)
podman stop -t 15 "$name" >/dev/null
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
wait "$slow" || true
code=$(cat "$work/slow.code")
exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
echo "  stop took ${took}s; the in-flight request got $code; exit code $exit_code"
[ "$code" = 200 ] || fail "the in-flight request got $code during the drain"
[ "$exit_code" = 0 ] || fail "exit code $exit_code after SIGTERM"
awk -v t="$took" 'BEGIN { exit !(t < 10) }' || fail "stopping took ${took}s, longer than shutdown_grace"
if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$ADMIN/healthz"; then fail "still answering after stop"; fi
echo "container check passed"
