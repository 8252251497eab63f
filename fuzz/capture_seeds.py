#!/usr/bin/env python3
"""Captures real BGP messages from BIRD 2 and GoBGP into the fuzz corpora.

    sudo fuzz/capture_seeds.py

Two network namespaces joined by veth: BIRD (10.66.0.2) and gobgpd (10.66.0.3) in one, each
announcing IPv4 and IPv6 routes with communities and large communities; in the other, a
listener (10.66.0.1:179, AS 64512) that answers their OPENs like a speaker would and records
every message they send for a few seconds. Each message body goes to fuzz/corpus/bgp_open,
bgp_update or bgp_notification (an UPDATE prefixed with its session-context byte), and each
whole stream to fuzz/corpus/bgp_stream, named after the router that sent it. Everything
started is stopped by PID and both namespaces deleted at exit.
"""
import hashlib
import os
import select
import shutil
import socket
import struct
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.abspath(__file__))
TAG = f"cs{os.getpid() % 100000}"
SPK, RTR = f"{TAG}s", f"{TAG}r"
work = tempfile.mkdtemp(prefix="lb-capture-")
procs = []


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


def msg(kind, body=b""):
    return b"\xff" * 16 + struct.pack(">HB", 19 + len(body), kind) + body


def our_open():
    caps = b"".join(bytes([c, len(v)]) + v for c, v in [
        (1, b"\x00\x01\x00\x01"), (1, b"\x00\x02\x00\x01"), (2, b""), (65, struct.pack(">I", 64512)),
        (64, b"\x00\x78"), (6, b"")])
    params = bytes([2, len(caps)]) + caps
    return msg(1, struct.pack(">BHH4sB", 4, 64512, 90, socket.inet_aton("10.66.0.1"), len(params)) + params)


def save(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    h = hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, f"{name}-{h}"), "wb") as f:
        f.write(data)


def record(conns, seconds):
    """Answers each router's OPEN and records what it sends, per source address."""
    streams = {a: b"" for a in conns}
    answered = set()
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select(list(conns.values()), [], [], 0.2)
        for addr, s in conns.items():
            if s not in ready:
                continue
            data = s.recv(65536)
            if not data:
                continue
            streams[addr] += data
            if addr not in answered and len(streams[addr]) >= 19 and streams[addr][18] == 1:
                s.sendall(our_open() + msg(4))
                answered.add(addr)
            elif addr in answered:
                s.sendall(msg(4))
    return streams


def split(stream):
    out = []
    while len(stream) >= 19:
        length = struct.unpack(">H", stream[16:18])[0]
        if length < 19 or len(stream) < length:
            break
        out.append((stream[18], stream[19:length]))
        stream = stream[length:]
    return out


def main():
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    for tool in ("ip", "bird", "gobgpd", "gobgp"):
        if not shutil.which(tool):
            raise SystemExit(f"needs {tool}")
    try:
        for n in (SPK, RTR):
            sh("ip", "netns", "add", n)
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "link", "add", f"{TAG}a", "type", "veth", "peer", "name", f"{TAG}b")
        sh("ip", "link", "set", f"{TAG}a", "netns", SPK, "name", "eth0")
        sh("ip", "link", "set", f"{TAG}b", "netns", RTR, "name", "eth0")
        sh("ip", "-n", SPK, "addr", "add", "10.66.0.1/24", "dev", "eth0")
        sh("ip", "-n", RTR, "addr", "add", "10.66.0.2/24", "dev", "eth0")
        sh("ip", "-n", RTR, "addr", "add", "10.66.0.3/24", "dev", "eth0")
        for n in (SPK, RTR):
            sh("ip", "-n", n, "link", "set", "eth0", "up")
        # The listener runs inside SPK: a small helper process, so that this script stays in
        # the root namespace to clean up.
        listener = subprocess.Popen(["ip", "netns", "exec", SPK, "python3", __file__, "--listen", work],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        procs.append(listener)
        time.sleep(0.5)
        bird_conf = os.path.join(work, "bird.conf")
        open(bird_conf, "w").write("""router id 10.66.0.2;
protocol device {}
protocol static s4 { ipv4; route 198.51.100.0/24 blackhole { bgp_community.add((64500,1)); bgp_large_community.add((64500,1,2)); bgp_med = 10; }; route 198.51.100.7/32 blackhole; }
protocol static s6 { ipv6; route 2001:db8:66::/48 blackhole { bgp_community.add((64500,6)); }; }
protocol bgp lb {
  local 10.66.0.2 as 64500;
  neighbor 10.66.0.1 as 64512;
  connect delay time 0;
  ipv4 { import none; export all; };
  ipv6 { import none; export all; next hop address 2001:db8:66::2; };
}
""")
        procs.append(subprocess.Popen(["ip", "netns", "exec", RTR, "bird", "-f", "-c", bird_conf, "-s",
                                       os.path.join(work, "bird.ctl"), "-P", os.path.join(work, "bird.pid")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        gobgp_conf = os.path.join(work, "gobgp.toml")
        open(gobgp_conf, "w").write("""[global.config]
  as = 64501
  router-id = "10.66.0.3"
  port = -1
  local-address-list = ["10.66.0.3"]

[[neighbors]]
  [neighbors.config]
    neighbor-address = "10.66.0.1"
    peer-as = 64512
  [neighbors.transport.config]
    local-address = "10.66.0.3"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv6-unicast"
""")
        api = "127.0.0.1:50151"
        procs.append(subprocess.Popen(["ip", "netns", "exec", RTR, "gobgpd", "-f", gobgp_conf, "-t", "toml",
                                       "--api-hosts", api, "--pprof-disable"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.5)
        for args in (["203.0.113.0/24", "community", "64501:1", "large-community", "64501:1:2", "-a", "ipv4"],
                     ["2001:db8:67::/48", "nexthop", "2001:db8:66::3", "community", "64501:6", "-a", "ipv6"]):
            subprocess.run(["ip", "netns", "exec", RTR, "gobgp", "-u", "127.0.0.1", "-p", "50151", "global", "rib",
                            "add", *args], capture_output=True)
        out, _ = listener.communicate(timeout=60)
        print(out.decode(errors="replace").strip())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for n in (SPK, RTR):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def listen(_work):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("10.66.0.1", 179))
    ls.listen(4)
    ls.settimeout(20)
    conns = {}
    names = {"10.66.0.2": "bird", "10.66.0.3": "gobgp"}
    while len(conns) < 2:
        s, (addr, _) = ls.accept()
        conns[addr] = s
    streams = record(conns, 8)
    for addr, stream in streams.items():
        name = names.get(addr, addr)
        msgs = split(stream)
        kinds = [k for k, _ in msgs]
        # Context byte 3: 4-octet AS (both sides sent it) and extended messages; eBGP.
        save("bgp_stream", f"{name}-session", bytes([3, 255]) + stream)
        for kind, body in msgs:
            if kind == 1:
                save("bgp_open", f"{name}-open", body)
            elif kind == 2:
                save("bgp_update", f"{name}-update", bytes([3]) + body)
            elif kind == 3:
                save("bgp_notification", f"{name}-notification", body)
        print(f"{name}: {len(stream)} octets, message types {kinds}")


if __name__ == "__main__":
    import sys
    if len(sys.argv) > 1 and sys.argv[1] == "--listen":
        listen(sys.argv[2])
    else:
        main()
