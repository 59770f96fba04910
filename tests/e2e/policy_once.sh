#!/usr/bin/env bash
# "Judged once, when it starts" (docs/policy.md; issue 4 part 1: once per TCP
# connection, UDP flow, ICMP echo flow and DNS query) for denied flows:
# - five datagrams from one UDP socket to a denied address are one UDP flow
#   (one source, one destination): one policy_violation, not five, and the
#   child still gets an ICMP error for each (nothing leaves);
# - `ping -c 3` to a denied address is one ICMP echo flow (one identifier):
#   one policy_violation;
# - two sockets (two source ports) are two flows: two violations.
# The count matters: it is what --fail-on-leak, the summary and the report
# count, and a chatty UDP client must not turn into one log line per packet.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
PY=/usr/bin/python3
install -d -m 0755 "$LAB_DIR/out-root"

# udp_burst.py HOST PORT N SOCKETS: sends N datagrams from each of SOCKETS
# connected sockets; prints how many sends/recvs saw an ICMP error.
burst_py=$(engine_py udp_burst.py <<'EOF'
import socket, sys, time
host, port, n, socks = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
errors = 0
for _ in range(socks):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.connect((host, port))
    for _ in range(n):
        try:
            s.send(b"burst")
            s.recv(100)
        except OSError:
            errors += 1
        time.sleep(0.05)
print("errors", errors)
EOF
)

log=$LAB_DIR/out-root/once.jsonl
echo0=$(grep -c . "$LAB_ECHO_LOG" || true)
set +e
out=$(cf root --flow-log "$log" --deny-cidr "$LAB_ECHO4/32" -- sh -c "
  $PY $burst_py $LAB_ECHO4 7 5 1
  ping -c 3 -i 0.2 -W 1 $LAB_ECHO4 >/dev/null 2>&1; echo ping=\$?
  $PY $burst_py $LAB_ECHO4 9 1 2" 2>"$LAB_DIR/out-root/once.err")
rc=$?
set -e
check_eq 0 "$rc" "the run exits 0"
check_contains "$out" "errors 5" "each of the five datagrams got an ICMP error"
check_contains "$out" "ping=1" "ping fails"
check_eq "$echo0" "$(grep -c . "$LAB_ECHO_LOG" || true)" "the echo server received nothing"
n_udp7=$(jq -c 'select(.event=="policy_violation" and .protocol=="udp" and .remote_port==7)' "$log" | grep -c . || true)
n_icmp=$(jq -c 'select(.event=="policy_violation" and .protocol=="icmpv4")' "$log" | grep -c . || true)
n_udp9=$(jq -c 'select(.event=="policy_violation" and .protocol=="udp" and .remote_port==9)' "$log" | grep -c . || true)
check_eq 1 "$n_udp7" "one denied UDP flow (5 datagrams, one socket): one policy_violation"
check_eq 1 "$n_icmp" "one denied ICMP echo flow (ping -c 3): one policy_violation"
check_eq 2 "$n_udp9" "two sockets to the same denied address: two flows, two policy_violations"

engine_finish
