#!/usr/bin/env bash
# UDP flood (docs/security.md, "Limits"): a tree opens 50,000 UDP flows
# (one socket, 50,000 destinations: ports of every lab host, IPv4 and IPv6,
# most of them closed). The flow table keeps udp_flows (4096) and evicts the
# least recently used flow for each new one; a flow opened after the flood
# still gets its echo, the engine still serves a curl, its RSS stayed under
# the ceiling, its CPU falls back to idle, and the summary counts the
# evictions and folds the targets beyond the recorder's 4096 keys into
# `other`. FLOOD_LONG=1 (make floods): 500,000 flows.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_flood.sh"
flood_up

n=$(flood_scale 50000 500000)

# udp.py N: N datagrams, each to a destination of its own, paced at about
# 20,000 a second; then a fresh socket asks the echo server; prints
# "fresh=ok|lost".
udp_py=$(engine_py udp.py <<'EOF2'
import socket, sys, time
n = int(sys.argv[1])
hosts = [("203.0.113.%d" % a, socket.AF_INET) for a in (2, 10, 20, 30, 53)] + \
        [("2001:db8:2::%d" % a, socket.AF_INET6) for a in (2, 10, 20, 30, 53)]
socks = {socket.AF_INET: socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
         socket.AF_INET6: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)}
t0 = time.time()
for i in range(n):
    host, fam = hosts[i % len(hosts)]
    port = 1024 + (i // len(hosts)) % 64000 + (i // (len(hosts) * 64000))
    try:
        socks[fam].sendto(b"x", (host, port))
    except OSError:
        pass  # an ICMP error of an earlier datagram, reported on this send
    if i % 200 == 199:
        lag = (i + 1) / 20000.0 - (time.time() - t0)
        if lag > 0: time.sleep(lag)
print("sent %d datagrams in %.1f s" % (n, time.time() - t0), flush=True)
fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fresh.settimeout(2)
got = False
for _ in range(5):
    fresh.sendto(b"after the flood", ("203.0.113.20", 7))
    try:
        got = fresh.recvfrom(2048)[0] == b"after the flood"
        break
    except OSError:
        pass
print("fresh=" + ("ok" if got else "lost"))
EOF2
)

flood_run udp "$ENGINE_PY $udp_py $n >$LAB_DIR/flood/udp.py.out 2>&1"
flood_wait_done "$(flood_scale 120 600)"
out=$(cat "$LAB_DIR/flood/udp.py.out")
echo "# ${out//$'\n'/; }"
check_contains "$out" "fresh=ok" "[udp] a UDP flow opened after the flood still gets its echo"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish
flood_check_hit udp_flows
started=$(flood_events flow_start)
echo "# flow_start events: $started"
# How many reach the engine depends on its speed (the tap drops the rest):
# enough to go well past the table is what matters.
check_le 8192 "$started" "[udp] the flood opened twice the table's flows at least"
check_le 1 "$(flood_limits recorder_keys)" "[udp] the recorder's counters stopped at their cap"
check_le 1 "$(jq -r '.other_keys.top_targets' <<<"$FLOOD_SUMMARY")" \
  "[udp] targets beyond the recorder's 4096 keys are counted as other"
engine_finish
