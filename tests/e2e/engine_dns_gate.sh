#!/usr/bin/env bash
# The engine's DNS gate end to end, as root and as the unprivileged lab user:
# - every UDP query relayed upstream leaves from its own source port, under a
#   transaction id of its own (seen on the wire in the lab's inet namespace);
# - a query with two questions is answered FORMERR over UDP and over TCP, and
#   is not relayed;
# - an upstream answer whose question is not the query's is dropped: a fake
#   resolver first answers with another name's address, then with the right
#   one, and the tree gets only the right one, over UDP and over TCP.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# query.py PROTO SERVER NAME QDCOUNT: one A query (its question repeated
# QDCOUNT times); prints "rcode=N addrs=a,b".
query_py=$(engine_py query.py <<'EOF2'
import random, socket, struct, sys
proto, server, name, qd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
qid = random.randrange(65536)
q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
msg = struct.pack(">HHHHHH", qid, 0x0100, qd, 0, 0, 0) + q * qd
fam = socket.AF_INET6 if ":" in server else socket.AF_INET
if proto == "udp":
    s = socket.socket(fam, socket.SOCK_DGRAM); s.settimeout(6); s.sendto(msg, (server, 53))
    r = s.recv(65535)
else:
    s = socket.create_connection((server, 53), timeout=6); s.sendall(struct.pack(">H", len(msg)) + msg)
    buf = b""
    while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
        c = s.recv(65535)
        if not c: break
        buf += c
    r = buf[2:]
rid, flags, qdc, anc = struct.unpack(">HHHH", r[:8])
assert rid == qid, "id mismatch"
pos = 12
for _ in range(qdc):
    while r[pos]: pos += 1 + r[pos]
    pos += 5
addrs = []
for _ in range(anc):
    while r[pos] and r[pos] < 0xc0: pos += 1 + r[pos]
    pos += 2 if r[pos] >= 0xc0 else 1
    t, c, ttl, rdl = struct.unpack(">HHIH", r[pos:pos+10]); pos += 10
    if t == 1: addrs.append(socket.inet_ntoa(r[pos:pos+4]))
    pos += rdl
print("rcode=%d addrs=%s" % (flags & 15, ",".join(addrs)))
EOF2
)

# fake_dns.py ADDR: answers every A query over UDP and TCP twice, first with
# a response for another name (203.0.113.66), then with the asked name
# (203.0.113.10).
fake_py=$(engine_py fake_dns.py <<'EOF2'
import socket, struct, sys, threading
addr = sys.argv[1]
def name_wire(n): return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"
def answer(query, name, ip):
    qid, flags = struct.unpack(">HH", query[:4])
    q = name_wire(name) + struct.pack(">HH", 1, 1)
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(ip)
    return struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, 1, 0, 0) + q + rr
def qname(query):
    pos, labels = 12, []
    while query[pos]:
        labels.append(query[pos+1:pos+1+query[pos]].decode()); pos += 1 + query[pos]
    return ".".join(labels)
def replies(query):
    return [answer(query, "evil.example.test", "203.0.113.66"), answer(query, qname(query), "203.0.113.10")]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, 53))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((addr, 53)); t.listen(16)
def tcp():
    while True:
        c, _ = t.accept()
        def serve(c):
            buf = b""
            while True:
                d = c.recv(65535)
                if not d: break
                buf += d
                while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                    n = struct.unpack(">H", buf[:2])[0]; m = buf[2:2+n]; buf = buf[2+n:]
                    for r in replies(m): c.sendall(struct.pack(">H", len(r)) + r)
            c.close()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
while True:
    m, peer = u.recvfrom(65535)
    for r in replies(m): u.sendto(r, peer)
EOF2
)

fake_addr=127.0.0.53
lab_root "$ENGINE_PY" "$fake_py" "$fake_addr" >"$LAB_DIR/fake_dns.out" 2>&1 &
fake_pid=$!
for _ in $(seq 50); do grep -q ready "$LAB_DIR/fake_dns.out" 2>/dev/null && break; sleep 0.1; done

for who in "${ENGINE_WHO[@]}"; do
  # Source ports and ids on the wire, in the inet namespace.
  cap=$LAB_DIR/dns-ports-$who.txt
  lab_inet timeout 30 tshark -i any -n -l -f "udp dst port 53 and src host $LAB_HOST4" \
    -T fields -e udp.srcport -e dns.id -c 6 >"$cap" 2>"$cap.err" &
  tpid=$!
  for _ in $(seq 100); do grep -q "Capturing on" "$cap.err" 2>/dev/null && break; sleep 0.1; done
  cf "$who" -- bash -c "$GW_SCRIPT"'; for i in 1 2 3 4 5 6; do dig +short +notcp +time=3 +tries=1 www.example.test @$g4 >/dev/null; done' || true
  wait "$tpid" || true
  check_eq 6 "$(wc -l <"$cap")" "[$who] 6 relayed queries seen on the wire"
  check_eq 6 "$(cut -f1 "$cap" | sort -u | wc -l)" "[$who] each relayed query left from its own source port ($(cut -f1 "$cap" | tr '\n' ' '))"
  check_eq 6 "$(cut -f2 "$cap" | sort -u | wc -l)" "[$who] each relayed query had its own id"

  # Two questions: FORMERR, over both transports.
  for proto in udp tcp; do
    out=$(cf "$who" -- bash -c "$GW_SCRIPT"'; '"$ENGINE_PY $query_py $proto"' $g4 www.example.test 2' 2>&1) || true
    check_contains "$out" "rcode=1 addrs=" "[$who] a query with two questions gets FORMERR over $proto"
  done

  # A resolver whose first answer is for another name.
  for proto in udp tcp; do
    out=$(cf "$who" -d "$fake_addr" -- bash -c "$GW_SCRIPT"'; '"$ENGINE_PY $query_py $proto"' $g4 www.example.test 1' 2>&1) || true
    check_contains "$out" "rcode=0 addrs=203.0.113.10" "[$who] over $proto the tree gets only the answer to its own question"
    check_not_contains "$out" "203.0.113.66" "[$who] over $proto the answer for another name never reaches the tree"
  done
done
kill "$fake_pid" 2>/dev/null || true
pkill -f "$fake_py" 2>/dev/null || true
engine_finish
