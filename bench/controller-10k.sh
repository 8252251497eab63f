#!/usr/bin/env bash
# Controller benchmark: N LoadBalancer Services created at once against the fake API server
# (fakeapi: the real HTTP API, in memory); reports the time from the first create until every
# Service has an address in its status, the API writes the controller made, and its peak RSS.
#
#   bench/controller-10k.sh           # N = 10000, release build
#   bench/controller-10k.sh --smoke   # N = 300, debug build (CI runs this)
#
# No root needed: everything talks over loopback. The clock starts when the first create is
# sent (the controller is already running and holds its Lease), and stops when a list of the
# Services shows every one with an IP; creates go over 4 keep-alive connections, so the
# controller sees them arrive as a burst while it is already allocating. Everything started is
# stopped at exit (by PID).
set -euo pipefail
cd "$(dirname "$0")/.."

N=10000
PROFILE=release
if [[ "${1:-}" == "--smoke" ]]; then N=300; PROFILE=debug; fi
command -v python3 >/dev/null || { echo "$0 needs python3" >&2; exit 1; }

if [[ $PROFILE == release ]]; then
  cargo build -q --release -p lb-bin -p fakeapi
else
  cargo build -q -p lb-bin -p fakeapi
fi
BIN="$PWD/target/$PROFILE"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN/fake-apiserver" --kubeconfig "$work/kubeconfig" >"$work/api.out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q listening "$work/api.out" 2>/dev/null && break; sleep 0.1; done
API=$(awk '/listening on/ {print $3}' "$work/api.out")
[[ -n "$API" ]] || { echo "the fake API server did not start" >&2; cat "$work/api.out" >&2; exit 1; }

python3 - "$API" <<'PY'
import json, sys, urllib.request
api = sys.argv[1]
def post(path, obj):
    req = urllib.request.Request(api + path, data=json.dumps(obj).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    urllib.request.urlopen(req).read()
post("/api/v1/namespaces", {"metadata": {"name": "metallb-system"}})
post("/api/v1/namespaces", {"metadata": {"name": "bench"}})
post("/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools",
     {"metadata": {"name": "bench"}, "spec": {"addresses": ["10.0.0.0/8"]}})
PY

KUBECONFIG="$work/kubeconfig" "$BIN/lb" controller --identity bench >"$work/ctl.out" 2>"$work/ctl.err" &
ctl=$!; pids+=("$ctl")
for _ in $(seq 100); do grep -q "became the leader" "$work/ctl.err" 2>/dev/null && break; sleep 0.1; done
grep -q "became the leader" "$work/ctl.err" || { echo "the controller did not lead" >&2; tail "$work/ctl.err" >&2; exit 1; }
sleep 0.5

python3 - "$API" "$N" >"$work/result" <<'PY'
import http.client, json, sys, threading, time
from urllib.parse import urlparse
api, n = urlparse(sys.argv[1]), int(sys.argv[2])
def conn():
    return http.client.HTTPConnection(api.hostname, api.port)
def create(lo, hi):
    c = conn()
    for i in range(lo, hi):
        # As `kubectl apply` creates a Service: with its last-applied annotation, under the
        # field manager kubectl uses (the server records managedFields for it).
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": f"s{i}", "namespace": "bench", "labels": {"app": f"s{i}"}},
               "spec": {"type": "LoadBalancer", "selector": {"app": f"s{i}"},
                        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]}}
        svc["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps(svc, separators=(",", ":")) + "\n"}
        c.request("POST", "/api/v1/namespaces/bench/services?fieldManager=kubectl-client-side-apply",
                  json.dumps(svc), {"content-type": "application/json"})
        r = c.getresponse(); r.read()
        assert r.status == 201, r.status
t0 = time.time()
threads = [threading.Thread(target=create, args=(k * n // 4, (k + 1) * n // 4)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
t_created = time.time() - t0
c = conn()
def writes():
    c.request("GET", "/fake/writes"); return json.loads(c.getresponse().read())
while writes().get("PATCH services/status", 0) < n and time.time() - t0 < 600:
    time.sleep(0.05)
while time.time() - t0 < 600:
    c.request("GET", "/api/v1/namespaces/bench/services")
    items = json.loads(c.getresponse().read())["items"]
    done = sum(1 for s in items if s.get("status", {}).get("loadBalancer", {}).get("ingress"))
    if done >= n: break
    time.sleep(0.1)
t_all = time.time() - t0
w = writes()
ips = {s["status"]["loadBalancer"]["ingress"][0]["ip"] for s in items if s.get("status", {}).get("loadBalancer", {}).get("ingress")}
print(f"{t_created:.3f} {t_all:.3f} {done} {len(ips)} {w.get('PATCH services/status', 0)} {w.get('PATCH services', 0)}")
PY
read -r t_created t_all done distinct st ann <"$work/result"
rss=$(awk '/VmHWM/ {print $2}' "/proc/$ctl/status")
kill "$ctl"; wait "$ctl" 2>/dev/null || true
printf 'N=%d Services: all created in %s s; all with an IP in status %s s after the first create; %d with an IP, %d distinct IPs\n' \
  "$N" "$t_created" "$t_all" "$done" "$distinct"
printf 'controller: %d status writes, %d annotation writes, peak RSS %.1f MiB\n' "$st" "$ann" "$(awk "BEGIN {print $rss / 1024}")"
[[ $done -eq $N && $distinct -eq $N ]] || { echo "not every Service got its own IP" >&2; exit 1; }
