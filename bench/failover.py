#!/usr/bin/env python3
"""L2 failover benchmark: the outage a client sees when the node answering for a VIP goes away.

    sudo bench/failover.py            # 20 moves per case, release build
    sudo bench/failover.py --smoke    # 2 moves per case, debug build (CI runs this)

Two nodes and a client share one bridge (network namespaces). The client pings the VIP every
10 ms; the outage of one move is the time from the last reply before the owner is stopped to
the first reply after. Cases: IPv4 and IPv6, for lb and, in the same run and from the same
namespaces, for keepalived (VRRP, advert_int 1):
- unplanned: the owner node dies: its process gets SIGKILL and its link goes down at once;
- planned: the owner's process gets SIGTERM and the node stops serving the VIP (keepalived
  removes it itself; for lb the VIP leaves the node's `lo`, as a drained node would stop
  forwarding).

lb runs two ways. As in Kubernetes ("lb speaker"): the fake API server (fakeapi) and `lb
controller` in this namespace, `lb speaker` with membership (default timers) on each node,
reaching the API through socat. Standalone ("lb run"): `lb run` on each node with one shared
configuration (two `kind: Node` entries) and membership with default timers; it puts the VIPs
on the owner's host itself (and takes them off on SIGTERM).
Both nodes hold the VIPs on `lo` (arp_ignore/arp_announce keep the kernel from answering ARP
for them), so whichever node the client's frames reach answers the ping: the outage is the
time until the new owner's gratuitous ARP / unsolicited NA moves the client's neighbour entry.
keepalived puts the VIP on the master's eth0 itself. After each move the node comes back (link
up, VIP back, process started again; it must not take the VIP back), and the next move stops
the new owner.

Everything started is stopped by PID and every namespace deleted at exit. Environment:
VERBOSE=1 prints every move; KEEP_WORK=1 keeps the logs; PAUSE_BEFORE_CLEANUP=SECONDS leaves
the namespaces up that long before cleaning up (to look around after a failure).
"""
import json, os, shutil, signal, subprocess, sys, tempfile, time, urllib.request

SMOKE = "--smoke" in sys.argv
MOVES = 2 if SMOKE else 20
PROFILE = "debug" if SMOKE else "release"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = f"fo{os.getpid() % 100000}"
NS = {n: f"{TAG}{n}" for n in ("sw", "n1", "n2", "cli")}
VIP = {4: "10.80.0.100", 6: "fd00:80::100"}
ADDR = {"n1": ("10.80.0.1", "fd00:80::1"), "n2": ("10.80.0.2", "fd00:80::2"), "cli": ("10.80.0.10", "fd00:80::10")}
KEY = "benchmark membership key 0123456789"
procs, work = [], tempfile.mkdtemp(prefix="lb-failover-")


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def ns(n, *args, check=True):
    return sh("ip", "netns", "exec", NS[n], *args, check=check)


def spawn(name, args, env=None):
    out = open(os.path.join(work, f"{name}.log"), "a")
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    if p in procs:
        procs.remove(p)


def cleanup():
    if os.environ.get("PAUSE_BEFORE_CLEANUP"):
        time.sleep(float(os.environ["PAUSE_BEFORE_CLEANUP"]))
    for p in list(procs):
        stop(p, signal.SIGKILL)
    for n in NS.values():
        subprocess.run(["ip", "netns", "del", n], capture_output=True)
    if os.environ.get("KEEP_WORK"):
        print(f"kept {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def topology():
    for n in NS.values():
        sh("ip", "netns", "add", n)
    # No multicast snooping: the bridge has no MLD querier, so it could not keep its groups.
    sh("ip", "-n", NS["sw"], "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    sh("ip", "-n", NS["sw"], "link", "set", "br0", "up")
    for i, n in enumerate(("n1", "n2", "cli")):
        a, b = f"{TAG}a{i}", f"{TAG}b{i}"
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", NS[n], "name", "eth0")
        sh("ip", "link", "set", b, "netns", NS["sw"], "name", f"p{i}")
        sh("ip", "-n", NS["sw"], "link", "set", f"p{i}", "master", "br0", "up")
        # A node whose link comes back keeps its IPv6 addresses (as its IPv4 ones).
        for k, v in (("net.ipv6.conf.all.accept_dad", "0"), ("net.ipv6.conf.default.accept_dad", "0"),
                     ("net.ipv6.conf.all.keep_addr_on_down", "1"), ("net.ipv6.conf.default.keep_addr_on_down", "1")):
            ns(n, "sysctl", "-qw", f"{k}={v}")
        sh("ip", "-n", NS[n], "link", "set", "lo", "up")
        sh("ip", "-n", NS[n], "link", "set", "eth0", "up")
        v4, v6 = ADDR[n]
        sh("ip", "-n", NS[n], "addr", "add", f"{v4}/24", "dev", "eth0")
        sh("ip", "-n", NS[n], "addr", "add", f"{v6}/64", "dev", "eth0", "nodad")
    for n in ("n1", "n2"):
        for k, v in (("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2")):
            ns(n, "sysctl", "-qw", f"{k}={v}")


moves = 0


def probe(family):
    """Starts pinging the VIP every 10 ms from the client; returns the process."""
    global moves
    moves += 1
    out = os.path.join(work, f"ping{family}-{moves}.log")
    f = open(out, "w")
    p = subprocess.Popen(["ip", "netns", "exec", NS["cli"], "ping", f"-{family}", "-D", "-n", "-i", "0.01", "-W", "1", VIP[family]],
                         stdout=f, stderr=subprocess.STDOUT)
    procs.append(p)
    return p, out


def outage(log, at):
    """The longest time without a reply, from the last reply before `at` on (None: no reply
    after `at`). The owner may still answer for a few ms after `at` (the stop takes that
    long), so the outage is the largest gap, not the first one."""
    stamps = []
    for line in open(log):
        if "bytes from" in line and line.startswith("["):
            stamps.append(float(line[1:line.index("]")]))
    before = [t for t in stamps if t <= at]
    after = [t for t in stamps if t > at]
    if not before or not after:
        return None
    seq = [before[-1]] + after
    return max(b - a for a, b in zip(seq, seq[1:]))


def measure(family, stop_owner, restart, owner):
    """One move: returns the outage in seconds."""
    p, log = probe(family)
    time.sleep(1.0)
    neigh = ns("cli", "ip", f"-{family}", "neigh", "show", VIP[family]).strip()
    at = time.time()
    stop_owner()
    time.sleep(6.0)  # keepalived needs 3 advertisement intervals and its skew time
    stop(p, signal.SIGINT)
    restart()
    o = outage(log, at)
    if o is None:
        raise SystemExit(f"no reply after the move (IPv{family}); see {log}")
    if os.environ.get("VERBOSE"):
        print(f"  move {moves} at {at:.3f}: IPv{family} owner {owner}, client had {neigh!r}: outage {o * 1000:.0f} ms",
              file=sys.stderr)
    return o


# --- lb ---------------------------------------------------------------------------------

def api_call(api, method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(api + path, data=json.dumps(body).encode() if body is not None else None, method=method,
                                 headers={"content-type": ctype})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"{}")


def lb_case(results):
    bin_dir = os.path.join(ROOT, "target", PROFILE)
    kube = os.path.join(work, "kubeconfig")
    sock = os.path.join(work, "api.sock")
    api_p = spawn("api", [os.path.join(bin_dir, "fake-apiserver"), "--kubeconfig", kube, "--control", sock])
    for _ in range(50):
        if os.path.exists(kube) and os.path.exists(sock):
            break
        time.sleep(0.1)
    api = open(kube).read().split("server: ")[1].split()[0]
    api_call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "metallb-system"}})
    api_call(api, "POST", "/api/v1/namespaces", {"metadata": {"name": "bench"}})
    for n in ("n1", "n2"):
        api_call(api, "POST", "/api/v1/nodes", {"metadata": {"name": n}})
        status = {"status": {"conditions": [{"type": "Ready", "status": "True"}],
                             "addresses": [{"type": "InternalIP", "address": ADDR[n][0]}]}}
        api_call(api, "PATCH", f"/api/v1/nodes/{n}/status", status, "application/merge-patch+json")
    api_call(api, "POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools",
             {"metadata": {"name": "vips"}, "spec": {"addresses": [f"{VIP[4]}/32", f"{VIP[6]}/128"]}})
    api_call(api, "POST", "/apis/metallb.io/v1beta1/namespaces/metallb-system/l2advertisements", {"metadata": {"name": "l2"}})
    for fam in (4, 6):
        api_call(api, "POST", "/api/v1/namespaces/bench/services", {
            "metadata": {"name": f"v{fam}", "annotations": {"metallb.io/loadBalancerIPs": VIP[fam]}},
            "spec": {"type": "LoadBalancer", "ipFamilies": [f"IPv{fam}"], "ports": [{"port": 80}]}})
        # One ready endpoint: a Service no endpoint can serve is announced nowhere.
        api_call(api, "POST", "/apis/discovery.k8s.io/v1/namespaces/bench/endpointslices", {
            "metadata": {"name": f"v{fam}-x", "labels": {"kubernetes.io/service-name": f"v{fam}"}},
            "addressType": f"IPv{fam}",
            "endpoints": [{"addresses": ["10.244.0.9" if fam == 4 else "fd00::9"], "conditions": {"ready": True}}]})
    lb = os.path.join(bin_dir, "lb")
    spawn("controller", [lb, "controller", "--metrics-addr", "127.0.0.1:0"], {"KUBECONFIG": kube})
    node_kube = os.path.join(work, "kubeconfig-node")
    open(node_kube, "w").write(open(kube).read().replace(api, "http://127.0.0.1:6443"))
    speakers = {}

    def start_speaker(n):
        speakers[n] = spawn(f"speaker-{n}", ["ip", "netns", "exec", NS[n], lb, "speaker", "--node-name", n,
                                             "--metrics-addr", "127.0.0.1:7472"],
                            {"KUBECONFIG": node_kube, "LB_MEMBERLIST_KEY": KEY})

    for n in ("n1", "n2"):
        spawn(f"socat-{n}", ["ip", "netns", "exec", NS[n], "socat", "TCP-LISTEN:6443,bind=127.0.0.1,fork,reuseaddr",
                             f"UNIX-CONNECT:{sock}"])
        sh("ip", "-n", NS[n], "addr", "add", f"{VIP[4]}/32", "dev", "lo")
        sh("ip", "-n", NS[n], "addr", "add", f"{VIP[6]}/128", "dev", "lo", "nodad")
        start_speaker(n)

    def owner(fam):
        for _ in range(200):
            items = api_call(api, "GET", "/apis/metallb.io/v1beta1/namespaces/metallb-system/servicel2statuses")["items"]
            nodes = {i["status"]["node"] for i in items if i.get("status", {}).get("serviceName") == f"v{fam}"}
            if len(nodes) == 1:
                return nodes.pop()
            time.sleep(0.1)
        raise SystemExit(f"no single owner for IPv{fam}; see {work}")

    def vips(n, op):
        sh("ip", "-n", NS[n], "addr", op, f"{VIP[4]}/32", "dev", "lo")
        sh("ip", "-n", NS[n], "addr", op, f"{VIP[6]}/128", "dev", "lo", *(["nodad"] if op == "add" else []))

    def stop_owner(o, mode):
        if mode == "KILL":
            # The node dies: its link first, so nothing it does while dying gets out.
            sh("ip", "-n", NS[o], "link", "set", "eth0", "down")
            stop(speakers[o], signal.SIGKILL)
        else:
            vips(o, "del")
            stop(speakers[o], signal.SIGTERM)

    def restart(o, mode):
        if mode == "KILL":
            sh("ip", "-n", NS[o], "link", "set", "eth0", "up")
        else:
            vips(o, "add")
        start_speaker(o)
        time.sleep(3)

    time.sleep(3)
    for fam in (4, 6):
        for mode in ("KILL", "TERM"):
            outs = []
            for _ in range(MOVES):
                o = owner(fam)
                outs.append(measure(fam, lambda: stop_owner(o, mode), lambda: restart(o, mode), o))
            results[("lb", fam, mode)] = outs
    for p in list(procs):
        stop(p)
    for n in ("n1", "n2"):
        sh("ip", "-n", NS[n], "addr", "del", f"{VIP[4]}/32", "dev", "lo")
        sh("ip", "-n", NS[n], "addr", "del", f"{VIP[6]}/128", "dev", "lo")


# --- lb run (standalone, several hosts) ---------------------------------------------------

def lb_run_case(results):
    lb = os.path.join(ROOT, "target", PROFILE, "lb")
    cfg = os.path.join(work, "lb-run.yaml")
    docs = [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "vips"},
         "spec": {"addresses": [f"{VIP[4]}/32", f"{VIP[6]}/128"]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "l2"}},
    ]
    for fam in (4, 6):
        docs.append({"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": f"v{fam}", "namespace": "bench", "annotations": {"metallb.io/loadBalancerIPs": VIP[fam]}},
                     "spec": {"type": "LoadBalancer", "ipFamilies": [f"IPv{fam}"], "ports": [{"port": 80}]}})
    for n in ("n1", "n2"):
        docs.append({"apiVersion": "v1", "kind": "Node", "metadata": {"name": n},
                     "status": {"addresses": [{"type": "InternalIP", "address": ADDR[n][0]}]}})
    open(cfg, "w").write("\n---\n".join(json.dumps(d) for d in docs) + "\n")
    macs = {n: json.loads(sh("ip", "-n", NS[n], "-j", "link", "show", "eth0"))[0]["address"].lower() for n in ("n1", "n2")}
    runners = {}

    def start(n):
        runners[n] = spawn(f"run-{n}", ["ip", "netns", "exec", NS[n], lb, "run", "-c", cfg, "--node", n, "--state-file",
                                        os.path.join(work, f"state-{n}.json"), "--bgp-listen", "off"],
                           {"LB_MEMBERLIST_KEY": KEY})

    def owner(fam):
        for _ in range(100):
            if fam == 4:
                out = ns("cli", "arping", "-r", "-c", "1", "-w", "1", "-i", "eth0", VIP[4], check=False)
            else:
                out = ns("cli", "ndisc6", "-1", "-q", "-r", "2", "-w", "500", VIP[6], "eth0", check=False)
            for n, mac in macs.items():
                if out.strip().lower() == mac:
                    return n
            time.sleep(0.1)
        raise SystemExit(f"lb run: nobody answers for IPv{fam}; see {work}")

    def stop_owner(o, mode):
        if mode == "KILL":
            sh("ip", "-n", NS[o], "link", "set", "eth0", "down")
            stop(runners[o], signal.SIGKILL)
        else:
            stop(runners[o], signal.SIGTERM)

    def restart(o, mode):
        if mode == "KILL":
            # A dead node's addresses die with it: the node comes back clean.
            for f in (4, 6):
                subprocess.run(["ip", "-n", NS[o], "addr", "del", f"{VIP[f]}/{32 if f == 4 else 128}", "dev", "lo"],
                               capture_output=True)
            subprocess.run(["ip", "-n", NS[o], "link", "del", "lb-vips"], capture_output=True)
            sh("ip", "-n", NS[o], "link", "set", "eth0", "up")
        start(o)
        time.sleep(3)

    for n in ("n1", "n2"):
        start(n)
    time.sleep(3)
    for fam in (4, 6):
        for mode in ("KILL", "TERM"):
            outs = []
            for _ in range(MOVES):
                o = owner(fam)
                outs.append(measure(fam, lambda: stop_owner(o, mode), lambda: restart(o, mode), o))
            results[("lb run", fam, mode)] = outs
    for p in list(procs):
        stop(p)


# --- keepalived ---------------------------------------------------------------------------

def keepalived_case(results):
    daemons = {}

    def start(n):
        conf = os.path.join(work, f"keepalived-{n}.conf")
        open(conf, "w").write(f"""global_defs {{
  vrrp_version 3
}}
vrrp_instance v4 {{
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 1
  virtual_ipaddress {{ {VIP[4]}/24 dev eth0 }}
}}
vrrp_instance v6 {{
  state BACKUP
  nopreempt
  interface eth0
  virtual_router_id 52
  priority 100
  advert_int 1
  virtual_ipaddress {{ {VIP[6]}/64 dev eth0 }}
}}
""")
        pid = os.path.join(work, f"ka-{n}")
        daemons[n] = spawn(f"keepalived-{n}", ["ip", "netns", "exec", NS[n], "keepalived", "-n", "-l", "-D", "-P", "-f", conf,
                                               "-p", pid + ".pid", "-r", pid + "-vrrp.pid", "-c", pid + "-chk.pid"])

    def master(fam):
        for _ in range(200):
            holders = [n for n in ("n1", "n2") if VIP[fam] in sh("ip", "-n", NS[n], "addr", "show", "dev", "eth0")]
            if len(holders) == 1:
                return holders[0]
            time.sleep(0.1)
        raise SystemExit(f"keepalived: no single master for IPv{fam}; see {work}")

    for n in ("n1", "n2"):
        start(n)
    time.sleep(5)
    def stop_master(m, mode):
        if mode == "KILL":
            # The node dies: its link first. (keepalived's VRRP child is told of its parent's
            # death and would otherwise send a priority 0 advertisement, as on a planned stop.)
            sh("ip", "-n", NS[m], "link", "set", "eth0", "down")
            stop(daemons[m], signal.SIGKILL)
        else:
            stop(daemons[m], signal.SIGTERM)

    def restart(m, mode):
        if mode == "KILL":
            # A dead node's addresses die with it: the node comes back clean.
            for f in (4, 6):
                subprocess.run(["ip", "-n", NS[m], "addr", "del", f"{VIP[f]}/{24 if f == 4 else 64}", "dev", "eth0"],
                               capture_output=True)
            sh("ip", "-n", NS[m], "link", "set", "eth0", "up")
        start(m)
        time.sleep(5)

    for fam in (4, 6):
        for mode in ("KILL", "TERM"):
            outs = []
            for _ in range(MOVES):
                m = master(fam)
                outs.append(measure(fam, lambda: stop_master(m, mode), lambda: restart(m, mode), m))
            results[("keepalived", fam, mode)] = outs
    for p in list(procs):
        stop(p)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    if os.geteuid() != 0:
        raise SystemExit(f"{sys.argv[0]} needs root (network namespaces)")
    for tool in ("ip", "ping", "keepalived", "socat", "arping", "ndisc6"):
        if not shutil.which(tool):
            raise SystemExit(f"{sys.argv[0]} needs {tool}")
    build = ["cargo", "build", "-q", "-p", "lb-bin", "-p", "fakeapi"] + ([] if SMOKE else ["--release"])
    subprocess.run(build, check=True, cwd=ROOT)
    results = {}
    try:
        topology()
        lb_case(results)
        lb_run_case(results)
        keepalived_case(results)
    finally:
        cleanup()
    print(f"{MOVES} moves per case; outage = the longest time without a reply around the move (ping every 10 ms)")
    for who in ("lb", "lb run"):
        name = "lb speaker" if who == "lb" else "lb run    "
        for fam in (4, 6):
            for mode, what in (("KILL", "unplanned (SIGKILL)"), ("TERM", "planned (SIGTERM)")):
                lb, ka = results[(who, fam, mode)], results[("keepalived", fam, mode)]
                print(f"IPv{fam} {what:20} {name} p50 {pct(lb, .5) * 1000:6.0f} ms p99 {pct(lb, .99) * 1000:6.0f} ms | "
                      f"keepalived p50 {pct(ka, .5) * 1000:6.0f} ms p99 {pct(ka, .99) * 1000:6.0f} ms | "
                      f"ratio p50 {pct(lb, .5) / pct(ka, .5):.2f} p99 {pct(lb, .99) / pct(ka, .99):.2f}")


if __name__ == "__main__":
    main()
