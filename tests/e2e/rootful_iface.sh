#!/usr/bin/env bash
# The rootful backend's --iface (docs/rootful.md, "--iface"), as root in the
# lab host namespace with a second uplink (lab_second_uplink: eth1, default
# route at metric 2000, eth0's preferred):
# - without --iface the tree leaves through eth0 (the web server sees
#   LAB_HOST4/LAB_HOST6); with --iface eth1 through eth1 (LAB_HOST*_B),
#   IPv4 and IPv6, and its DNS lookups too (the resolver's log); with
#   --iface eth0 through eth0; eth1's counters prove the path; with --proxy
#   the relay's connections to the proxy leave through eth1 too;
# - a family the interface has no default route for is unreachable for the
#   tree instead of leaving through the other uplink;
# - two runs at once pinned to different uplinks;
# - a missing interface, or one without a default route: exit 2, one line,
#   nothing created;
# - after every run the lab host's ruleset, links, rules, routes and
#   forwarding sysctls are byte-identical to before; SIGKILL leaves the rules
#   and the routing table, and `childflow --cleanup` removes exactly them.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
lab_second_uplink
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_rootful.sh"

PEERS='curl -4 -sS --max-time 5 http://www.example.test/peer; echo; curl -6 -sS --max-time 5 http://www.example.test/peer; echo'
tx_eth1() { lab_root cat /sys/class/net/eth1/statistics/tx_packets; }

# --- without --iface: eth0 --------------------------------------------------------
rf plain -- sh -c "$PEERS"
check_eq 0 "$RC" "no --iface: exit 0 (stderr: ${ERR:0:300})"
check_eq "$LAB_HOST4 $LAB_HOST6" "$(echo $OUT)" "no --iface: the server sees eth0's addresses"
check_state "no --iface"

# --- --iface eth1 --------------------------------------------------------------------
tx0=$(tx_eth1)
dns0=$(grep -c "from $LAB_HOST4_B" "$LAB_DNS_LOG" || true)
rf eth1 --iface eth1 -- sh -c "$PEERS"
check_eq 0 "$RC" "--iface eth1: exit 0 (stderr: ${ERR:0:300})"
check_eq "$LAB_HOST4_B $LAB_HOST6_B" "$(echo $OUT)" "--iface eth1: the server sees eth1's addresses"
check_le 10 "$(($(tx_eth1) - tx0))" "--iface eth1: the packets left through eth1 (tx counter)"
check_le $((dns0 + 1)) "$(grep -c "from $LAB_HOST4_B" "$LAB_DNS_LOG" || true)" \
  "--iface eth1: the tree's lookups reached the resolver through eth1"
check_state "--iface eth1"

rf eth0 --iface eth0 -- sh -c "$PEERS"
check_eq "$LAB_HOST4 $LAB_HOST6" "$(echo $OUT)" "--iface eth0: the server sees eth0's addresses"
check_state "--iface eth0"

# --- --proxy with --iface: the relay's connections to the proxy leave through eth1 ----
n0=$(grep -c . "$LAB_PROXY_LOG_HTTP" || true)
rf proxied --iface eth1 --proxy "http://$LAB_HTTP_PROXY" -- \
  curl -4 -sS --max-time 10 http://www.example.test/peer
peer=$(head -n1 <<<"$OUT")
[[ $peer == 203.0.113.* ]] && check_pass "--proxy --iface eth1: the web server sees the proxy's side ($peer)" ||
  check_fail "--proxy --iface eth1: the web server saw [$peer], not the proxy's side (stderr: ${ERR:0:300})"
check_contains "$(tail -n +$((n0 + 1)) "$LAB_PROXY_LOG_HTTP")" "Connect (file descriptor" "--proxy --iface eth1: the proxy was asked"
check_contains "$(tail -n +$((n0 + 1)) "$LAB_PROXY_LOG_HTTP" | grep 'Connect (file descriptor')" "$LAB_HOST4_B" \
  "--proxy --iface eth1: the proxy saw the relay come from eth1's address"
check_eq 0 "$(tail -n +$((n0 + 1)) "$LAB_PROXY_LOG_HTTP" | grep -c "Connect (file descriptor [0-9]*): $LAB_HOST4\$" || true)" \
  "--proxy --iface eth1: nothing reached the proxy from eth0's address"
check_state "--proxy --iface eth1"

# --- no IPv6 default route on eth1: IPv6 fails, never leaves through eth0 ------------
lab_root ip -6 route del default via 2001:db8:5::1 dev eth1 metric 2000
rootful_baseline
www6=$(grep -c "$LAB_HOST6" "$LAB_WWW_LOG" || true)
rf no6 --iface eth1 -- sh -c "curl -4 -sS --max-time 5 http://$LAB_WWW4/peer; echo; \
  sh -c '$TIMED' t curl -6 -sS --max-time 5 http://[$LAB_WWW6]/peer"
check_contains "$OUT" "$LAB_HOST4_B" "eth1 without IPv6 default: IPv4 still through eth1"
check_fast "eth1 without IPv6 default: IPv6 unreachable at once" "$(grep '^rc=' <<<"$OUT")" 7
check_eq "$www6" "$(grep -c "$LAB_HOST6" "$LAB_WWW_LOG" || true)" \
  "eth1 without IPv6 default: nothing reached the server through eth0"
check_state "--iface eth1 without an IPv6 default route"
lab_root ip -6 route add default via 2001:db8:5::1 dev eth1 metric 2000
rootful_baseline

# --- two runs at once, one per uplink ---------------------------------------------
SYNC=$LAB_DIR/sync
install -d -m 0777 "$SYNC"
both="until [ -e $SYNC/a ] && [ -e $SYNC/b ]; do sleep 0.1; done"
cf root --root -d "$LAB_DNS4" --iface eth1 -- sh -c "touch $SYNC/a; $both; $PEERS" >"$OUTD/c1.out" 2>"$OUTD/c1.err" &
c1=$!
cf root --root -d "$LAB_DNS4" --iface eth0 -- sh -c "touch $SYNC/b; $both; $PEERS" >"$OUTD/c2.out" 2>"$OUTD/c2.err" &
c2=$!
lab_wait_until 20 "both runs started" sh -c "[ -e $SYNC/a ] && [ -e $SYNC/b ]"
rules=$(lab_root ip rule show | grep -c 'fwmark 0x4346' || true)
wait "$c1" && r1=0 || r1=$?
wait "$c2" && r2=0 || r2=$?
check_eq "0 0" "$r1 $r2" "two pinned runs at once both succeed ($(head -c 300 "$OUTD/c1.err") $(head -c 300 "$OUTD/c2.err"))"
check_eq 2 "$rules" "two pinned runs at once: two IPv4 rules of their own"
check_eq "$LAB_HOST4_B $LAB_HOST6_B" "$(echo $(cat "$OUTD/c1.out"))" "two runs: the eth1 run left through eth1"
check_eq "$LAB_HOST4 $LAB_HOST6" "$(echo $(cat "$OUTD/c2.out"))" "two runs: the eth0 run left through eth0"
check_state "two pinned runs"

# --- bad --iface: exit 2, one line, nothing created -------------------------------
rf missing --iface nosuch0 -- true
check_eq 2 "$RC" "--iface nosuch0: exit 2"
check_eq 1 "$(grep -c . <<<"$ERR")" "--iface nosuch0: one line ($ERR)"
check_contains "$ERR" "no such interface" "--iface nosuch0: says why"
rf lo --iface lo -- true
check_eq 2 "$RC" "--iface lo: exit 2"
check_contains "$ERR" "has no default route" "--iface lo: says why ($ERR)"
check_state "bad --iface"

# --- SIGKILL, then --cleanup --------------------------------------------------------
rootful_killed --iface eth1
check_contains "$AFTER_KILL" "fwmark 0x4346" "SIGKILL leaves the pin's rule"
rootful_cleanup
check_contains "$CLEANUP" "--iface eth1 rules and routing table" "--cleanup names the pin it removed"
check_state "SIGKILL + --cleanup with --iface"

engine_finish
