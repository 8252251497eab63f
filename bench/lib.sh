# Shared by the benchmark scripts: root and tool checks, two namespaces joined by a veth
# pair, child processes tracked by PID, and cleanup of everything at exit.
# Source it, then call `lab_setup TAG TOOLS...`; it defines $NS_A, $NS_B (eth0 in each, up),
# $work (a scratch directory) and `reap PID`.

pids=()

# Waits for a child we started and forgets its PID, so cleanup never signals a reused PID.
reap() {
  wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${pids[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  pids=("${keep[@]}")
}

lab_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  ip netns del "$NS_A" 2>/dev/null || true
  ip netns del "$NS_B" 2>/dev/null || true
  [[ -n "${KEEP_WORK:-}" ]] && echo "kept $work" >&2 || rm -rf "$work"
}

# lab_setup TAG TOOL...: checks root and tools, makes the namespaces and the scratch dir.
lab_setup() {
  local tag=$1; shift
  [[ $(id -u) -eq 0 ]] || { echo "$0 needs root (network namespaces)" >&2; exit 1; }
  local t
  for t in ip "$@"; do command -v "$t" >/dev/null || { echo "$0 needs $t" >&2; exit 1; }; done
  tag="$tag$$"
  NS_A="${tag}a"; NS_B="${tag}b"
  work=$(mktemp -d)
  trap lab_cleanup EXIT
  ip netns add "$NS_A"; ip netns add "$NS_B"
  ip link add "${tag}x" type veth peer name "${tag}y"
  ip link set "${tag}x" netns "$NS_A" name eth0
  ip link set "${tag}y" netns "$NS_B" name eth0
  local ns
  for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
}
