#!/usr/bin/env bash
# DNS floods (docs/security.md, "Limits"), three runs:
#  - udp: 20,000 queries over UDP to the gateway, for names of their own,
#    never reading an answer, relayed to the lab's resolver;
#  - udp-silent: the same towards a resolver that never answers (the lab's
#    blackhole), so queries stay in flight: beyond dns_in_flight (1024) each
#    is answered SERVFAIL at once;
#  - tcp: 200 DNS-over-TCP connections to the gateway, each streaming queries
#    and never reading an answer: beyond dns_tcp_streams (32) they are reset,
#    and each open stream stops being read once it holds dns_tcp_buffer
#    bytes a direction (or dns_tcp_in_flight queries): the child's writes
#    block, and the stream costs nothing: the engine is measured while
#    those streams stay open.
# After each: the engine still serves a curl, its RSS stayed under the
# ceiling, its CPU falls back to idle, and the summary and flow log count the
# limits hit. FLOOD_LONG=1 (make floods): 200,000 UDP queries, at least 60 s
# of TCP streaming.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_flood.sh"
flood_up

n=$(flood_scale 20000 200000)
least=$(flood_scale 2 60)
most=$(flood_scale 60 120)

# dns.py udp SERVER N | tcp SERVER CONNS LEAST MOST MARK: see above. Over
# UDP, names are random labels under wild.example.test (the lab resolver
# answers them all); over TCP, big.example.test. tcp streams for LEAST seconds and then until no stream has taken a
# byte for 2 s (at most MOST seconds), writes MARK, and keeps its
# connections open (the tree ends it).
dns_py=$(engine_py dns.py <<'EOF2'
import random, socket, struct, sys, time
def query(qid, framed):
    # Over TCP, big.example.test: 160 addresses, a 2.6 kB answer for a
    # 34-byte query, so a stream that is not read fills up fast.
    name = "big.example.test" if framed else "r%d.wild.example.test" % random.getrandbits(40)
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    m = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(m)) + m if framed else m
mode, server = sys.argv[1], sys.argv[2]
if mode == "udp":
    n = int(sys.argv[3])
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(16)]
    for s in socks:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # answers unread, dropped
    t0 = time.time()
    for i in range(n):
        try:
            socks[i % 16].sendto(query(random.getrandbits(16), False), (server, 53))
        except OSError:
            pass
        if i % 100 == 99:
            lag = (i + 1) / 10000.0 - (time.time() - t0)
            if lag > 0: time.sleep(lag)
    print("sent %d queries in %.1f s" % (n, time.time() - t0))
else:
    conns, least, most, mark = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
    socks, refused = [], 0
    for _ in range(conns):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)  # blocks sooner
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # never read
        s.settimeout(5)
        try:
            s.connect((server, 53))
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
    # Stream for at least LEAST seconds, then until no stream has taken a
    # byte for 2 s (the engine stopped reading them all), at most MOST.
    sent, last, still = 0, -1, 0
    batch = b"".join(query(random.getrandbits(16), True) for _ in range(40))
    rest = {s: b"" for s in socks}  # what a short send left of the last batch
    t0 = time.time()
    while time.time() - t0 < least or (still < 20 and time.time() - t0 < most):
        for s in socks:
            for _ in range(64):  # until it would block
                data = rest[s] or batch
                try:
                    k = s.send(data)
                except OSError:
                    break
                sent += k
                rest[s] = data[k:]
        still = still + 1 if sent == last else 0
        last = sent
        time.sleep(0.1)
    print("open %d refused %d sent %d bytes, %s after %.1f s" % (len(socks), refused, sent,
          "stalled" if still >= 20 else "still moving", time.time() - t0), flush=True)
    open(mark, "w").close()
    while True:
        time.sleep(60)
EOF2
)

# udp: relayed to the lab's resolver.
flood_run dns-udp "$GW_SCRIPT; $ENGINE_PY $dns_py udp \$g4 $n >$LAB_DIR/flood/dns-udp.py.out 2>&1"
flood_wait_done "$(flood_scale 120 600)"
echo "# $(cat "$LAB_DIR/flood/dns-udp.py.out")"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish
queries=$(flood_events dns_query)
echo "# dns_query events: $queries"
check_le "$((n / 10))" "$queries" "[dns-udp] the flood reached the engine (a tenth of it at least; the tap drops what a slow engine does not take)"
check_le 1 "$(jq -r '.other_keys.top_dns_names' <<<"$FLOOD_SUMMARY")" \
  "[dns-udp] names beyond the recorder's 4096 keys are counted as other"

# udp-silent: a resolver that never answers (the lab's blackhole route);
# the curl goes by address, as no name resolves.
FLOOD_CURL=http://$LAB_WWW4/ flood_run dns-silent "$GW_SCRIPT; $ENGINE_PY $dns_py udp \$g4 $n >$LAB_DIR/flood/dns-silent.py.out 2>&1" \
  -d "$LAB_BLACKHOLE4"
flood_wait_done "$(flood_scale 120 600)"
echo "# $(cat "$LAB_DIR/flood/dns-silent.py.out")"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish
flood_check_hit dns_in_flight
servfail=$(grep -F '"event":"dns_answer"' "$LAB_DIR/flowlogs/run.dns-silent.jsonl" | grep -cF '"rcode":2}' || true)
check_le "$(flood_limits dns_in_flight)" "$servfail" "[dns-silent] every query beyond dns_in_flight got a SERVFAIL (logged)"

# tcp: streams that never read, measured while they stay open.
flood_run dns-tcp "$GW_SCRIPT; $ENGINE_PY $dns_py tcp \$g4 200 $least $most $FLOOD_DIR/dns-tcp.flooded >$LAB_DIR/flood/dns-tcp.py.out 2>&1 &
for i in \$(seq 1200); do [ -e $FLOOD_DIR/dns-tcp.flooded ] && break; sleep 0.1; done"
flood_wait_done "$(flood_scale 120 600)"
out=$(cat "$LAB_DIR/flood/dns-tcp.py.out")
echo "# $out"
check_match "$out" "open 32 refused 168 " "[dns-tcp] 32 streams were served, the other 168 reset"
check_match "$out" " stalled after " "[dns-tcp] the streams stalled: the engine stopped reading them"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish
flood_check_hit dns_tcp_streams
paused=$(($(flood_limits dns_tcp_buffer) + $(flood_limits dns_tcp_in_flight)))
check_le 32 "$paused" "[dns-tcp] every stream that was not read stopped reading its child (counted)"
engine_finish
