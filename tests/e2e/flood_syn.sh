#!/usr/bin/env bash
# SYN flood (docs/security.md, "Limits"): a tree sends 100,000 TCP SYNs from
# a raw socket (so as root in the tree: --as-root) to many destinations of
# the lab's documentation ranges (closed ports of every lab host, addresses
# behind the router's unreachable routes, over IPv4 and IPv6). The engine
# takes at most tcp_connecting (1024) connects at once and resets the rest;
# afterwards it still serves a curl, its RSS stayed under the ceiling, its
# CPU falls back to idle, and the summary and flow log count the refusals.
# FLOOD_LONG=1 (make floods): one million SYNs.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_flood.sh"
flood_up

n=$(flood_scale 100000 1000000)

# syn.py N: N SYNs (IPv4 and IPv6, random source ports) to random closed
# ports of the lab's hosts and to random addresses of the unreachable
# ranges, paced at about 30,000 a second; prints how many were sent.
syn_py=$(engine_py syn.py <<'EOF2'
import random, socket, struct, sys, time
n = int(sys.argv[1])
v4 = ["203.0.113.%d" % a for a in (2, 10, 20, 30, 53)] + ["198.51.100.1"]
v6 = ["2001:db8:2::%d" % a for a in (2, 10, 20, 30, 53)]
def src_of(fam, dst):
    s = socket.socket(fam, socket.SOCK_DGRAM); s.connect((dst, 9)); a = s.getsockname()[0]; s.close()
    return a
src4 = socket.inet_aton(src_of(socket.AF_INET, v4[0]))
r4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
r6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_TCP)
r6.setsockopt(socket.IPPROTO_IPV6, 7, 16)  # IPV6_CHECKSUM: the kernel sums at offset 16
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def syn(sport, dport, seq):
    # SYN with MSS 1460 and window scaling, as a real client sends.
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 7 << 4, 0x02, 64240, 0, 0) + \
        b"\x02\x04\x05\xb4\x01\x03\x03\x07"
sent = 0
t0 = time.time()
for i in range(n):
    sport = 1024 + random.randrange(60000)
    dport = 1 + random.randrange(65535)
    k = i % 8
    try:
        if k < 4:
            dst = random.choice(v4) if k < 2 else "203.0.113.%d" % (192 + random.randrange(63))
            seg = syn(sport, dport, random.getrandbits(32))
            pseudo = src4 + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(seg))
            c = csum(pseudo + seg)
            r4.sendto(seg[:16] + struct.pack("!H", c) + seg[18:], (dst, 0))
        else:
            dst = random.choice(v6) if k < 6 else "2001:db8:3::%x" % random.randrange(1, 65535)
            r6.sendto(syn(sport, dport, random.getrandbits(32)), (dst, 0))
        sent += 1
    except OSError:
        pass
    if i % 300 == 299:
        lag = (i + 1) / 30000.0 - (time.time() - t0)
        if lag > 0: time.sleep(lag)
print("sent %d SYNs in %.1f s" % (sent, time.time() - t0))
EOF2
)

# Raw sockets need root in the tree (docs/sandbox.md).
flood_run syn "$ENGINE_PY $syn_py $n >$LAB_DIR/flood/syn.py.out 2>&1" --as-root
flood_wait_done "$(flood_scale 120 600)"
echo "# $(cat "$LAB_DIR/flood/syn.py.out")"
flood_check_served
flood_check_rss
flood_check_idle
flood_finish
flood_check_hit tcp_connecting
attempts=$(flood_events connect_attempt)
echo "# connect_attempt events: $attempts"
check_le 1000 "$attempts" "[syn] the flood reached the engine (connect attempts logged)"
engine_finish
