#!/usr/bin/env bash
# Engine UDP flow table end to end, as root and as the unprivileged lab user:
# a tree that opens more UDP flows than the table holds (4096) makes the
# engine evict the least recently used ones, counted in the summary, and a
# flow opened after that still gets its echo (before, new flows were dropped
# silently once the table was full).
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# flood.py HOST N: N sockets each send one datagram to HOST:7 (N flows), then
# a new socket asks for an echo; prints "fresh=ok|lost".
flood_py=$(engine_py flood.py <<'EOF2'
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
def echo(s, msg):
    s.settimeout(3)
    s.sendto(msg, (host, 7))
    try:
        return s.recvfrom(2048)[0] == msg
    except socket.timeout:
        return False
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.sendto(b"x", (host, 7))
    socks.append(s)
    if i % 200 == 199:
        time.sleep(0.01)   # let the tap queue drain: this is a table test, not a drop test
fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("fresh=" + ("ok" if echo(fresh, b"after the flood") else "lost"))
EOF2
)

for who in "${ENGINE_WHO[@]}"; do
  out=$(cf "$who" --summary --summary-format json -- "$ENGINE_PY" "$flood_py" "$LAB_ECHO4" 5000 2>&1) || true
  check_contains "$out" "fresh=ok" "[$who] a UDP flow opened after 5000 others still gets its echo"
  evicted=$(grep -o '"evicted_flows":[0-9]*' <<<"$out" | cut -d: -f2)
  check_le 904 "${evicted:-0}" "[$who] the summary counts the flows evicted beyond the 4096-flow table"
done
engine_finish
