#!/usr/bin/env bash
# Stalled flows cost nothing (docs/security.md, "Limits"), two runs:
#  - stall-down: a tree starts 50 downloads of 10 GB from the lab web server
#    and never reads them: the engine reads each host socket only as far as
#    the child's (shut) window, so the bytes wait in the kernel;
#  - stall-up: a tree starts 40 uploads to a server (started here, in the
#    lab's inet namespace) that accepts and never reads: each host socket's
#    send buffer fills, the window to the child shuts and the child's writes
#    block, and the engine waits for EPOLLOUT (before, such uploads kept it
#    at 100% CPU).
# While the stalled flows stay open: the engine serves a curl, its RSS stays
# under the ceiling and its CPU is idle. FLOOD_LONG=1 (make floods): 500
# downloads and 400 uploads, held 60 s, CPU sampled at the end of it.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_flood.sh"
flood_up

downs=$(flood_scale 50 500)
ups=$(flood_scale 40 400)
hold=$(flood_scale 0 60)
sink_port=5999

# A server that accepts and never reads.
sink_py=$(engine_py sink.py <<'EOF2'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(4096)
held = []
print("ready", flush=True)
while True:
    held.append(s.accept()[0])
EOF2
)
lab_inet "$ENGINE_PY" "$sink_py" "$LAB_ECHO4" "$sink_port" >"$LAB_DIR/sink.out" 2>&1 &
lab_wait_until 10 "the sink server" grep -q ready "$LAB_DIR/sink.out"

# stall.py down HOST N MARK | up HOST PORT N MARK: opens the flows, waits
# until they are stalled (uploads: until no socket takes a byte for 2 s),
# prints what it saw, writes MARK and holds the connections (the tree ends
# it).
stall_py=$(engine_py stall.py <<'EOF2'
import socket, sys, time
mode, host = sys.argv[1], sys.argv[2]
socks, failed = [], 0
if mode == "down":
    n, mark = int(sys.argv[3]), sys.argv[4]
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        try:
            s.connect((host, 80))
            s.sendall(b"GET /bytes/10000000000 HTTP/1.1\r\nHost: www.example.test\r\n\r\n")
            socks.append(s)
        except OSError:
            failed += 1
    time.sleep(2)  # the windows shut
    print("downloads open %d failed %d" % (len(socks), failed), flush=True)
else:
    port, n, mark = int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        try:
            s.connect((host, port))
            s.setblocking(False)
            socks.append(s)
        except OSError:
            failed += 1
    # Send on every socket until it would block, twice a second, until no
    # socket has taken a byte for 2 s: stalled, not slow.
    sent, last, still, buf = 0, -1, 0, b"u" * 65536
    t0 = time.time()
    while still < 4 and time.time() - t0 < 120:
        for s in socks:
            while True:
                try:
                    sent += s.send(buf)
                except (BlockingIOError, OSError):
                    break
        still = still + 1 if sent == last else 0
        last = sent
        time.sleep(0.5)
    print("uploads open %d failed %d sent %d bytes, %s after %.1f s" %
          (len(socks), failed, sent, "stalled" if still >= 4 else "still moving", time.time() - t0),
          flush=True)
open(mark, "w").close()
while True:
    time.sleep(60)
EOF2
)

# stall_tree NAME ARGS... : the tree for one run: stall.py in the background,
# then (once its flows are stalled, and FLOOD_LONG's hold) the curl.
stall_tree() {
  local name=$1
  shift
  echo "$ENGINE_PY $stall_py $* $FLOOD_DIR/$name.stalled >$FLOOD_DIR/$name.py.out 2>&1 &
for i in \$(seq 1800); do [ -e $FLOOD_DIR/$name.stalled ] && break; sleep 0.1; done
sleep $hold"
}

flood_run stall-down "$(stall_tree stall-down down "$LAB_WWW4" "$downs")"
flood_wait_done "$(flood_scale 120 600)"
out=$(cat "$FLOOD_DIR/stall-down.py.out")
echo "# $out"
check_contains "$out" "downloads open $downs failed 0" "[stall-down] all $downs downloads were opened"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish

flood_run stall-up "$(stall_tree stall-up up "$LAB_ECHO4" "$sink_port" "$ups")"
flood_wait_done "$(flood_scale 180 600)"
out=$(cat "$FLOOD_DIR/stall-up.py.out")
echo "# $out"
check_match "$out" "uploads open $ups failed 0 .* stalled after" "[stall-up] all $ups uploads were opened and stalled"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish
engine_finish
