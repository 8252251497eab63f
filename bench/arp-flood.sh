#!/usr/bin/env bash
# ARP flood benchmark: replies per second lb's responder sustains, and its CPU use, beside
# the kernel's own ARP replies for an address configured on the interface, in the same run.
#
#   sudo bench/arp-flood.sh            # full run: 3 rounds of 10 s per side, release build
#   sudo bench/arp-flood.sh --smoke    # 1 s per side, debug build (CI runs this)
#
# Topology: namespaces "speaker" and "client" joined by one veth pair. The client floods
# ARP requests with mausezahn (package netsniff-ng) for 192.0.2.16 (announced by `lb run`,
# not configured on any interface, so only lb answers) and, with lb stopped, for 192.0.2.1
# (configured on the speaker's eth0, so the kernel answers). Replies are counted on the
# client's interface; lb's CPU is its utime+stime over the flood (the kernel's softirq work
# to deliver frames to lb's socket is not in it), the kernel's is the softirq time of the
# whole machine over the flood (its replies are made in softirq).
# Everything created is deleted at exit (processes by PID, then the namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_SIDE=10
ROUNDS=3
PROFILE=release
if [[ "${1:-}" == "--smoke" ]]; then
  SECONDS_PER_SIDE=1; ROUNDS=1; PROFILE=debug
fi
source bench/lib.sh
lab_setup af mausezahn arping
SPK=$NS_A; CLI=$NS_B
ip -n "$SPK" addr add 192.0.2.1/24 dev eth0
ip -n "$CLI" addr add 192.0.2.2/24 dev eth0

if [[ $PROFILE == release ]]; then cargo build -q --release -p lb-bin; else cargo build -q -p lb-bin; fi
LB="$PWD/target/$PROFILE/lb"

cat > "$work/lb.yaml" <<'YAML'
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bench}
spec: {addresses: [192.0.2.16/32], autoAssign: false}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2}
---
apiVersion: v1
kind: Service
metadata: {name: vip, namespace: bench, annotations: {metallb.io/address-pool: bench}}
spec: {type: LoadBalancer}
YAML

rx() { ip netns exec "$CLI" cat /sys/class/net/eth0/statistics/rx_packets; }
tx() { ip netns exec "$CLI" cat /sys/class/net/eth0/statistics/tx_packets; }
softirq() { awk '/^cpu /{print $8}' /proc/stat; }
proc_cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
now() { date +%s.%N; }

# flood TARGET SECONDS -> "requests replies seconds": requests sent and replies received by
# the client while mausezahn ran (replies still in flight 0.2 s after it stops included).
flood() {
  local target=$1 secs=$2 rx0 tx0 t0 t1
  rx0=$(rx); tx0=$(tx); t0=$(now)
  ip netns exec "$CLI" mausezahn -q -c 0 -d 0 eth0 -t arp "request, senderip=192.0.2.2, targetip=$target" &
  local mz=$!
  pids+=("$mz")
  sleep "$secs"
  kill "$mz"; reap "$mz"
  t1=$(now)
  sleep 0.2
  echo "$(( $(tx) - tx0 )) $(( $(rx) - rx0 )) $(calc "$t1 - $t0")"
}

declare -a LB_RATE LB_CPU K_RATE K_CPU
for round in $(seq 1 "$ROUNDS"); do
  # lb's side.
  ip netns exec "$SPK" "$LB" run -c "$work/lb.yaml" --node bench --state-file "$work/state.json" \
    --no-host-addresses --arp-reply-rate 0 >"$work/lb.out" 2>"$work/lb.err" &
  lbpid=$!
  pids+=("$lbpid")
  for _ in $(seq 50); do
    ip netns exec "$CLI" arping -r -c 1 -w 1 -i eth0 192.0.2.16 >/dev/null 2>&1 && break
    sleep 0.2
  done
  c0=$(proc_cpu "$lbpid")
  read -r req rep el < <(flood 192.0.2.16 "$SECONDS_PER_SIDE")
  c1=$(proc_cpu "$lbpid")
  kill -TERM "$lbpid"; reap "$lbpid"
  LB_RATE+=("$(calc "$rep / $el")")
  LB_CPU+=("$(calc "100 * ($c1 - $c0) / $hz / $el")")
  printf 'round %d  lb:     %9d requests sent, %9d replies, %10.0f replies/s, lb CPU %5.1f%% of a core\n' \
    "$round" "$req" "$rep" "${LB_RATE[-1]}" "${LB_CPU[-1]}"

  # The kernel's side (lb stopped).
  s0=$(softirq)
  read -r req rep el < <(flood 192.0.2.1 "$SECONDS_PER_SIDE")
  s1=$(softirq)
  K_RATE+=("$(calc "$rep / $el")")
  K_CPU+=("$(calc "100 * ($s1 - $s0) / $hz / $el")")
  printf 'round %d  kernel: %9d requests sent, %9d replies, %10.0f replies/s, softirq %5.1f%% of a core (whole machine)\n' \
    "$round" "$req" "$rep" "${K_RATE[-1]}" "${K_CPU[-1]}"
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
lb_med=$(median "${LB_RATE[@]}"); k_med=$(median "${K_RATE[@]}")
printf '\nmedian of %d rounds: lb %.0f replies/s (CPU %.1f%%), kernel %.0f replies/s; ratio lb/kernel = %.2f\n' \
  "$ROUNDS" "$lb_med" "$(median "${LB_CPU[@]}")" "$k_med" "$(calc "$lb_med / $k_med")"
