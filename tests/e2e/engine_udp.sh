#!/usr/bin/env bash
# Engine UDP flow table end to end, as root and as the unprivileged lab user:
# a tree that opens more UDP flows than the table holds (4096) makes the
# engine evict the least recently used ones, counted in the summary, and a
# flow opened after that still gets its echo (before, new flows were dropped
# silently once the table was full).
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# flood.py HOST N: N sockets each get one echo from HOST:7 (N flows, each
# confirmed by its echo, retried on loss), then a new socket asks for an echo;
# prints "flows=N fresh=ok|lost".
flood_py=$(engine_py flood.py <<'EOF2'
import socket, sys
host, n = sys.argv[1], int(sys.argv[2])
def echo(s, msg):
    s.settimeout(3)
    s.sendto(msg, (host, 7))
    try:
        return s.recvfrom(2048)[0] == msg
    except socket.timeout:
        return False
ok = 0
for i in range(n):
    # A port of its own per flow, closed after its echo, so the test needs no
    # more file descriptors than RLIMIT_NOFILE's usual 1024.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", 20000 + i))
    ok += any(echo(s, b"x%d" % i) for _ in range(3))
    s.close()
fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print("flows=%d fresh=%s" % (ok, "ok" if echo(fresh, b"after the flood") else "lost"))
EOF2
)

for who in "${ENGINE_WHO[@]}"; do
  out=$(cf "$who" --summary --summary-format json -- "$ENGINE_PY" "$flood_py" "$LAB_ECHO4" 5000 2>&1) || true
  check_contains "$out" "flows=5000 fresh=ok" "[$who] 5000 UDP flows got their echo, and one opened after them too"
  evicted=$(grep -o '"evicted_flows":[0-9]*' <<<"$out" | cut -d: -f2)
  check_eq 905 "${evicted:-none}" "[$who] the summary counts the 5001 - 4096 flows evicted from the full table"
done
engine_finish
