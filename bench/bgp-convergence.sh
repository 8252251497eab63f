#!/usr/bin/env bash
# BGP convergence benchmark: time from start until a BIRD receiver holds all N host routes,
# for `lb run` as the sender and, in the same run, for a BIRD sender with the same N static
# routes; also the UPDATE messages each sent and the sender's peak RSS.
#
#   sudo bench/bgp-convergence.sh           # N = 10000 and 100000, release build
#   sudo bench/bgp-convergence.sh --smoke   # N = 1000, debug build (CI runs this)
#
# Topology: namespaces "sender" (10.8.0.1) and "receiver" (10.8.0.2, BIRD, passive) on one
# veth pair. Senders, one after the other: `lb run` with N LoadBalancer services (one
# `kind: List` document) from a pool, announcing each address as a /32 (so its time and
# memory include reading, validating and allocating N Service objects), then `lb run` again
# with the state file the first wrote (a restart: every address restored); lb's BGP speaker
# embedded alone (examples/bgp_sender.rs, N routes, no YAML); and the BIRD sender exports N `route .../32 blackhole`
# statics (with `connect delay time 0`, so its 5 s default wait is not measured). The clock
# starts when the sender process is launched, so both pay for reading their configuration.
# UPDATE messages are counted, and the time from the sender's OPEN to its last UPDATE
# measured, from the TCP stream captured on the receiver's interface (that time leaves out
# each sender's start-up). Everything created is
# removed at exit (processes by PID, then the namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=(10000 100000)
PROFILE=release
if [[ "${1:-}" == "--smoke" ]]; then SIZES=(1000); PROFILE=debug; fi
source bench/lib.sh
lab_setup bc bird birdc tcpdump python3
SND=$NS_A; RCV=$NS_B
ip -n "$SND" addr add 10.8.0.1/24 dev eth0
ip -n "$RCV" addr add 10.8.0.2/24 dev eth0

if [[ $PROFILE == release ]]; then
  cargo build -q --release -p lb-bin; cargo build -q --release -p lb-examples --example bgp_sender
else
  cargo build -q -p lb-bin; cargo build -q -p lb-examples --example bgp_sender
fi
LB="$PWD/target/$PROFILE/lb"
SPEAKER="$PWD/target/$PROFILE/examples/bgp_sender"

cat > "$work/receiver.conf" <<'CONF'
router id 10.8.0.2;
protocol device {}
protocol bgp sender {
  local 10.8.0.2 as 64500;
  neighbor 10.8.0.1 as 64512;
  passive on;
  error wait time 1, 2;
  ipv4 { import all; export none; };
}
CONF

captures=0
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.3f\", $1 }"; }
count_routes() { birdc -s "$work/receiver.ctl" show route count 2>/dev/null | awk '/routes/ {print $1; exit}'; }

# run_receiver: starts BIRD and tcpdump in the receiver namespace.
run_receiver() {
  pcap="$work/bgp-$((++captures)).pcap"
  ip netns exec "$RCV" bird -f -c "$work/receiver.conf" -s "$work/receiver.ctl" -P "$work/receiver.pid" \
    >"$work/receiver.log" 2>&1 &
  rpid=$!; pids+=("$rpid")
  ip netns exec "$RCV" tcpdump -n -U --immediate-mode -B 65536 -s 0 -i eth0 -w "$pcap" 'tcp port 179' 2>"$work/tcpdump.log" &
  dpid=$!; pids+=("$dpid")
  for _ in $(seq 50); do birdc -s "$work/receiver.ctl" show status >/dev/null 2>&1 && break; sleep 0.1; done
  sleep 0.5
}
stop_receiver() {
  kill "$dpid"; reap "$dpid"; kill "$rpid"; reap "$rpid"
}
# UPDATE messages the sender sent: the TCP stream to port 179 reassembled from the capture
# (veth loses nothing; retransmissions are skipped by sequence number), then walked message
# by message (16-octet marker, 2-octet length, 1-octet type).
updates() {
  python3 - "$pcap" <<'PY'
import bisect, struct, sys
data = open(sys.argv[1], "rb").read()
pos, stream, next_seq = 24, b"", None
starts, stamps = [], []  # stream offset where each sender packet's payload starts, and its time
while pos + 16 <= len(data):
    sec, usec, incl, _ = struct.unpack("<IIII", data[pos:pos + 16])
    pkt = data[pos + 16:pos + 16 + incl]
    pos += 16 + incl
    if len(pkt) < 34 or pkt[12:14] != b"\x08\x00" or pkt[23] != 6:
        continue
    ihl = (pkt[14] & 15) * 4
    tcp = pkt[14 + ihl:]
    dport = struct.unpack(">H", tcp[2:4])[0]
    seq = struct.unpack(">I", tcp[4:8])[0]
    payload = tcp[(tcp[12] >> 4) * 4:]
    if dport != 179 or not payload:
        continue
    if next_seq is not None and seq != next_seq:
        continue
    starts.append(len(stream)); stamps.append(sec + usec / 1e6)
    stream += payload
    next_seq = (seq + len(payload)) & 0xFFFFFFFF
def when(offset):
    return stamps[bisect.bisect_right(starts, offset) - 1]
count, i, t_open, t_last = 0, 0, None, None
while i + 19 <= len(stream):
    length = struct.unpack(">H", stream[i + 16:i + 18])[0]
    if length < 19:
        break
    kind = stream[i + 18]
    if kind == 1 and t_open is None:
        t_open = when(i)
    if kind == 2:
        count += 1
        t_last = when(i + length - 1)
    i += length
wire = (t_last - t_open) if t_open is not None and t_last is not None else 0.0
print(count, "%.3f" % wire)
PY
}

# measure N CMD...: runs the sender, waits for N routes at the receiver; writes
# "seconds rss_kib updates" to $work/result (prints nothing: the sender's output goes to files).
measure() {
  local n=$1; shift
  run_receiver
  local t0; t0=$(now)
  "$@" >"$work/sender.out" 2>"$work/sender.err" &
  local spid=$!; pids+=("$spid")
  local got=0
  for _ in $(seq 2400); do
    got=$(count_routes); [[ "${got:-0}" -ge "$n" ]] && break
    sleep 0.05
  done
  local t1; t1=$(now)
  # The process inside `ip netns exec` is the sender itself (exec replaces it).
  local rss; rss=$(awk '/VmHWM/ {print $2}' "/proc/$spid/status" 2>/dev/null || echo 0)
  kill "$spid"; reap "$spid"
  sleep 0.3
  stop_receiver
  # A capture that lost packets undercounts UPDATEs and cuts the wire time short: say so.
  local dropped; dropped=$(awk '/dropped by kernel/ {print $1}' "$work/tcpdump.log")
  if [[ "${dropped:-0}" != 0 ]]; then
    echo "note: the capture of this run lost ${dropped} packets: its UPDATE count and wire time are incomplete" >&2
  fi
  [[ "${got:-0}" -ge "$n" ]] || { echo "receiver holds ${got:-0} of $n routes; sender said:" >&2; tail -5 "$work/sender.err" >&2; exit 1; }
  echo "$(calc "$t1 - $t0") $rss $(updates)" >"$work/result"   # seconds rss updates wire
}

for n in "${SIZES[@]}"; do
  python3 - "$n" "$work/lb.yaml" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bench}\nspec: {addresses: [10.0.0.0/8]}\n---\n")
    f.write("apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: receiver}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.8.0.2}\n---\n")
    f.write("apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: all}\n---\n")
    f.write("apiVersion: v1\nkind: List\nitems:\n")
    for i in range(n):
        f.write(f"- {{apiVersion: v1, kind: Service, metadata: {{name: s{i}, namespace: bench}}, spec: {{type: LoadBalancer}}}}\n")
PY
  python3 - "$n" "$work/sender.conf" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("router id 10.8.0.1;\nprotocol device {}\nprotocol static {\n  ipv4;\n")
    for i in range(n):
        f.write(f"  route 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32 blackhole;\n")
    f.write("}\nprotocol bgp receiver {\n  local 10.8.0.1 as 64512;\n  neighbor 10.8.0.2 as 64500;\n  connect delay time 0;\n")
    f.write("  ipv4 { import none; export all; };\n}\n")
PY
  rm -f "$work/state.json"
  measure "$n" ip netns exec "$SND" "$LB" run -c "$work/lb.yaml" --node bench \
      --state-file "$work/state.json" --no-host-addresses
  read -r lb_s lb_rss lb_up lb_w <"$work/result"
  # Again, with the state file that run wrote: a restart restores every address from it.
  measure "$n" ip netns exec "$SND" "$LB" run -c "$work/lb.yaml" --node bench \
      --state-file "$work/state.json" --no-host-addresses
  read -r re_s re_rss re_up re_w <"$work/result"
  measure "$n" ip netns exec "$SND" "$SPEAKER" 10.8.0.2 64512 64500 "$n"
  read -r sp_s sp_rss sp_up sp_w <"$work/result"
  measure "$n" ip netns exec "$SND" bird -f -c "$work/sender.conf" -s "$work/sender.ctl" -P "$work/sender.pid"
  read -r bird_s bird_rss bird_up bird_w <"$work/result"
  for who in "lb run:lb" "lb restart:re" "lb speaker:sp" "BIRD:bird"; do
    name=${who%%:*}; v=${who##*:}
    eval "t=\$${v}_s w=\$${v}_w u=\$${v}_up r=\$${v}_rss"
    printf 'N=%-6d %-11s %7.3f s from start, %7.3f s from OPEN to last UPDATE, %5d UPDATEs, peak RSS %6.1f MiB\n' \
      "$n" "$name" "$t" "$w" "$u" "$(calc "$r / 1024")"
  done
  printf 'N=%-6d ratio lb/BIRD: from start: lb run %.2f, speaker %.2f; OPEN to last UPDATE: lb run %.2f, speaker %.2f\n' "$n" \
    "$(calc "$lb_s / $bird_s")" "$(calc "$sp_s / $bird_s")" "$(calc "$lb_w / $bird_w")" "$(calc "$sp_w / $bird_w")"
done
