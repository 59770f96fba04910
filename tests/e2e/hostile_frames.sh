#!/usr/bin/env bash
# A hostile tree crafts frames on tap0 with a packet socket (root inside the
# tree can): towards the host's loopback, with a spoofed source, as IPv4
# fragments, and as garbage. None may reach anything, and the engine must keep
# serving the tree afterwards. A listener on the lab host's 127.0.0.1 (and on
# the lab host's real address as a control) records every connection.
set -uo pipefail
source "${CHILDFLOW_SOURCE_DIR:?}/tests/lab/lab.sh"
: "${CHILDFLOW:?}"
lab_up

# A TCP listener on the lab host's loopback that logs each accepted peer.
hits=$LAB_DIR/loopback-hits.log
: >"$hits"
lab_root python3 - "$hits" <<'PY' &
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8099)); s.listen(16)
open(sys.argv[1] + ".ready", "w").close()
while True:
    c, a = s.accept()
    open(sys.argv[1], "a").write(f"{a}\n"); c.close()
PY
lab_defer "kill $! 2>/dev/null"
lab_wait_until 10 "loopback listener" test -e "$hits.ready"

cat >"$LAB_DIR/craft.py" <<'PY'
# Runs inside the tree as its root: sends crafted frames on tap0.
import socket, struct, subprocess, sys, time
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return (~s) & 0xffff
def ipv4(src, dst, proto, payload, frag=0x4000, ident=1):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload
def syn(src, dst, dport):
    t = struct.pack("!HHIIBBHHH", 40000, dport, 1000, 0, 0x50, 0x02, 65535, 0, 0)
    ph = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(t))
    return t[:16] + struct.pack("!H", csum(ph + t)) + t[18:]
me = subprocess.check_output(["ip", "-4", "-o", "addr", "show", "tap0"]).split()[3].decode().split("/")[0]
gw = subprocess.check_output(["ip", "-4", "route", "show", "default"]).split()[2].decode()
link = subprocess.check_output(["ip", "-o", "link", "show", "tap0"]).split()
mac = link[link.index(b"link/ether") + 1].decode()  # our own MAC
neigh = subprocess.check_output(["ip", "neigh", "show", gw, "dev", "tap0"]).split()
gwmac = neigh[neigh.index(b"lladdr") + 1].decode()
eth = bytes.fromhex(gwmac.replace(":", "")) + bytes.fromhex(mac.replace(":", "")) + b"\x08\x00"
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind(("tap0", 0))
frames = []
for dst in ("127.0.0.1", "0.0.0.0"):          # host loopback / unspecified
    frames.append(eth + ipv4(me, dst, 6, syn(me, dst, 8099)))
frames.append(eth + ipv4("203.0.113.99", sys.argv[1], 6, syn("203.0.113.99", sys.argv[1], 80)))  # spoofed
frames.append(eth + ipv4(me, sys.argv[1], 6, syn(me, sys.argv[1], 80), frag=0x2000))          # fragment
frames.append(eth + b"\x45" + bytes(30))                                                       # garbage
frames.append(eth[:12] + b"\x86\xdd" + bytes(8))                                               # short IPv6
for f in frames * 20:
    s.send(f)
time.sleep(0.3)
print("sent", len(frames) * 20)
PY

out=$(lab_root "$CHILDFLOW" --summary -- sh -c "python3 $LAB_DIR/craft.py $LAB_WWW4 && curl -sS -m 5 http://www.example.test/" 2>&1)
rc=$?
echo "$out" | sed 's/^/  | /'
assert_eq 0 "$rc" "the tree ran the crafted frames and then curl"
assert_contains "$out" "sent 120" "crafted 120 frames on tap0"
assert_contains "$out" "hello from www.example.test" "the engine still serves the tree after hostile frames"
assert_contains "$out" "dropped frames:" "the summary counts the dropped frames"
assert_eq "" "$(cat "$hits")" "nothing reached the host's 127.0.0.1:8099"
www_hits=$(grep -c "203.0.113.99" "$LAB_WWW_LOG" || true)
assert_eq 0 "$www_hits" "no spoofed-source connection reached the www server"
# Control: the listener does accept connections made on the lab host.
lab_root python3 -c 'import socket; socket.create_connection(("127.0.0.1", 8099), 2).close()'
lab_wait_until 5 "control connection logged" test -s "$hits"
ok "the loopback listener itself works (control)"
