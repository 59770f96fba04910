#!/usr/bin/env bash
# Engine UDP flow table end to end, as root and as the unprivileged lab user:
# a tree that opens more UDP flows than the table holds (4096) makes the
# engine evict the least recently used ones, counted in the summary, and a
# flow opened after that still gets its echo (before, new flows were dropped
# silently once the table was full). The same when the engine runs out of
# file descriptors first (RLIMIT_NOFILE 1024).
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# flood.py HOST N: N datagrams to HOST:7, each from a port of its own (N
# flows; the socket is closed at once, so no more file descriptors than
# RLIMIT_NOFILE's usual 1024 are needed), paced so the tap queue does not
# overflow; then a new socket asks for an echo; prints "fresh=ok|lost".
flood_py=$(engine_py flood.py <<'EOF2'
import socket, sys, time
host, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", 20000 + i))
    s.sendto(b"x", (host, 7))
    s.close()
    if i % 100 == 99:
        time.sleep(0.02)
fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
fresh.settimeout(3)
got = False
for _ in range(3):
    fresh.sendto(b"after the flood", (host, 7))
    try:
        got = fresh.recvfrom(2048)[0] == b"after the flood"
        break
    except socket.timeout:
        pass
print("fresh=" + ("ok" if got else "lost"))
EOF2
)

for who in "${ENGINE_WHO[@]}"; do
  out=$(cf "$who" --summary --summary-format json -- "$ENGINE_PY" "$flood_py" "$LAB_ECHO4" 5000 2>&1) || true
  check_contains "$out" "fresh=ok" "[$who] a UDP flow opened after 5000 others still gets its echo"
  # Every flow the engine opened beyond the table's 4096 evicted one (none
  # is idle for UDP's 60 s during the flood); more when the engine ran out
  # of file descriptors first (a hard RLIMIT_NOFILE of 4096, as in the
  # old-kernel guest, where each flow's socket also needs one).
  started=$(grep -o '"flow_start":[0-9]*' <<<"$out" | cut -d: -f2)
  evicted=$(grep -o '"evicted_flows":[0-9]*' <<<"$out" | cut -d: -f2)
  check_le 4500 "${started:-0}" "[$who] most of the 5001 datagrams opened a flow"
  check_le "$((${started:-0} - 4096))" "${evicted:-0}" "[$who] the summary counts an eviction for each flow beyond the 4096-flow table"

  # Out of file descriptors before the table is full (hard limit 1024): new
  # flows still open, each taking the socket of the least recently used one.
  out=$(as "$who" prlimit --nofile=1024:1024 timeout -k 5 "$CF_TIMEOUT" "$CHILDFLOW" --summary \
    --summary-format json -- "$ENGINE_PY" "$flood_py" "$LAB_ECHO4" 5000 2>&1) || true
  check_contains "$out" "fresh=ok" "[$who] with 1024 file descriptors, a flow after 5000 others still gets its echo"
  started=$(grep -o '"flow_start":[0-9]*' <<<"$out" | cut -d: -f2)
  evicted=$(grep -o '"evicted_flows":[0-9]*' <<<"$out" | cut -d: -f2)
  check_le 4500 "${started:-0}" "[$who] with 1024 file descriptors, most datagrams still opened a flow"
  check_le "$((${started:-0} - 1024))" "${evicted:-0}" "[$who] with 1024 file descriptors, flows were evicted for their sockets"
done
engine_finish
