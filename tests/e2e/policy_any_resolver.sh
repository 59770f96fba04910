#!/usr/bin/env bash
# Domain rules hold for DNS sent to any resolver (docs/policy.md, "DNS";
# issue 14 part 1), as root and as the unprivileged lab user.
#
# A second resolver ("fake", a small server on LAB_ECHO4:53, UDP and TCP)
# answers every A query with 203.0.113.98 and logs each query it gets. The
# tree's gateway still relays to the lab's dnsmasq (203.0.113.53).
# - `dig @fake` over UDP and TCP for a name under --deny-domain gets the
#   empty NOERROR answer of the gateway, and neither the fake's log nor
#   dnsmasq's shows the name; the flow log has dns_query (server = the fake,
#   direct true), policy_violation (dns, deny_domain) and dns_answer
#   (synthetic_empty).
# - an allowed name asked of the fake gets the fake's answer (203.0.113.98,
#   which dnsmasq would never give): relayed to the resolver the tree asked,
#   over UDP and TCP, logged as relayed, direct true; dnsmasq saw nothing.
# - the address rules still come first: with --deny-cidr on the fake, a
#   query over UDP gets ICMP administratively prohibited and over TCP a
#   reset, as any denied flow, and the fake logs nothing.
# - a closed port 53 stays closed over TCP (connection refused).
# - DNS over TLS (port 853) is judged as a flow: under --default-policy deny
#   with a domain allow rule, a connection to a DoT server (LAB_DNS4:853,
#   a TLS server the test starts) is refused (default_deny) and the server
#   logs no connection; without rules the same client completes its TLS
#   handshake, which the server logs.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

FAKE=$LAB_ECHO4
FAKE_LOG=$LAB_DIR/fake_dns.log
DOT_LOG=$LAB_DIR/dot.log

fake_py=$(engine_py fake_resolver.py <<'EOF2'
import socket, struct, sys, threading
addr, logf = sys.argv[1], open(sys.argv[2], "a", buffering=1)
def qname(m):
    pos, labels = 12, []
    while m[pos]:
        labels.append(m[pos+1:pos+1+m[pos]].decode()); pos += 1 + m[pos]
    return ".".join(labels), pos + 5
def answer(m):
    name, end = qname(m)
    qid, flags = struct.unpack(">HH", m[:4])
    rr = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton("203.0.113.98")
    return struct.pack(">HHHHHH", qid, 0x8180 | (flags & 0x0100), 1, 1, 0, 0) + m[12:end] + rr, name
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((addr, 53))
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind((addr, 53)); t.listen(16)
def serve(c, peer):
    buf = b""
    while True:
        d = c.recv(65535)
        if not d: break
        buf += d
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            n = struct.unpack(">H", buf[:2])[0]; m = buf[2:2+n]; buf = buf[2+n:]
            r, name = answer(m)
            logf.write("fake tcp %s from %s\n" % (name, peer[0]))
            c.sendall(struct.pack(">H", len(r)) + r)
    c.close()
def tcp():
    while True:
        c, peer = t.accept()
        threading.Thread(target=serve, args=(c, peer), daemon=True).start()
threading.Thread(target=tcp, daemon=True).start()
print("ready", flush=True)
while True:
    m, peer = u.recvfrom(65535)
    r, name = answer(m)
    logf.write("fake udp %s from %s\n" % (name, peer[0]))
    u.sendto(r, peer)
EOF2
)

dot_py=$(engine_py dot_server.py <<'EOF2'
import socket, ssl, sys, threading
addr, cert, key, logf = sys.argv[1], sys.argv[2], sys.argv[3], open(sys.argv[4], "a", buffering=1)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(cert, key)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, 853)); s.listen(16)
print("ready", flush=True)
def serve(c, peer):
    logf.write("dot accept %s\n" % peer[0])
    try:
        t = ctx.wrap_socket(c, server_side=True)
        logf.write("dot tls %s\n" % peer[0])
        t.close()
    except Exception as e:
        logf.write("dot error %s %s\n" % (peer[0], e))
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
EOF2
)

# dot_client: a TLS handshake with the DoT server; prints "tls ok" or the error.
dot_client=$(engine_py dot_client.py <<'EOF2'
import errno, socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.check_hostname = False
try:
    with socket.create_connection((sys.argv[1], 853), timeout=5) as c:
        with ctx.wrap_socket(c, server_hostname="dns.example.test") as t:
            print("tls ok")
except OSError as e:
    print("error", errno.errorcode.get(e.errno, str(e)))
EOF2
)

lab_inet "$ENGINE_PY" "$fake_py" "$FAKE" "$FAKE_LOG" >"$LAB_DIR/fake.out" 2>&1 &
lab_inet "$ENGINE_PY" "$dot_py" "$LAB_DNS4" "$LAB_SERVER_CERT" "$LAB_SERVER_KEY" "$DOT_LOG" >"$LAB_DIR/dot.out" 2>&1 &
lab_wait_until 10 "the fake resolver is up" grep -q ready "$LAB_DIR/fake.out"
lab_wait_until 10 "the DoT server is up" grep -q ready "$LAB_DIR/dot.out"
touch "$FAKE_LOG" "$DOT_LOG"

# dig_out WHO ARGS: the status, answer count and answers of one dig in the tree.
DIG='dig +time=3 +tries=1 "$@" | grep -E "status:|ANSWER:|^[a-z0-9.-]+\.[[:space:]]+[0-9]+[[:space:]]+IN[[:space:]]+A[[:space:]]" | tr -s " \t" " "'

for who in root user; do
  echo "# --- as $who"
  for t in notcp tcp; do
    denied=deny-$who-$t.wild.example.test
    allowed=ok-$who-$t.example.test
    run "$who" "any-$t" --deny-domain wild.example.test -- sh -c "
      sh -c '$DIG' d +$t @$FAKE $denied A
      echo ---
      sh -c '$DIG' d +$t @$FAKE $allowed A"
    denied_out=${OUT%%---*}
    allowed_out=${OUT#*---}
    check_contains "$denied_out" "status: NOERROR" "[$who +$t] a denied name asked of another resolver: NOERROR"
    check_contains "$denied_out" "ANSWER: 0" "[$who +$t] ... with no answer (the gateway's empty answer)"
    check_not_contains "$(cat "$FAKE_LOG")" "$denied" "[$who +$t] the other resolver never saw the denied name"
    check_not_contains "$(cat "$LAB_DNS_LOG")" "$denied" "[$who +$t] dnsmasq never saw the denied name"
    proto=udp; [[ $t == tcp ]] && proto=tcp
    check_eq 1 "$(jq -c "select(.event==\"dns_query\" and .qname==\"$denied\" and .protocol==\"$proto\" and .server==\"$FAKE:53\" and .direct==true)" "$LOG" | grep -c .)" \
      "[$who +$t] dns_query names the resolver the tree asked (server $FAKE:53, direct)"
    check_violation "[$who +$t] policy_violation deny_domain for the name" "$LOG" \
      ".protocol==\"dns\" and .remote==\"$denied\" and .reason_code==\"deny_domain\" and .matched_domain==\"wild.example.test\""
    check_eq 1 "$(jq -c "select(.event==\"dns_answer\" and .qname==\"$denied\" and .mode==\"synthetic_empty\" and .server==\"$FAKE:53\" and .direct==true)" "$LOG" | grep -c .)" \
      "[$who +$t] dns_answer synthetic_empty from the asked server"

    check_contains "$allowed_out" "203.0.113.98" "[$who +$t] an allowed name gets the asked resolver's own answer"
    check_contains "$(cat "$FAKE_LOG")" "fake $proto $allowed from $LAB_HOST4" "[$who +$t] the asked resolver got the allowed query"
    check_not_contains "$(cat "$LAB_DNS_LOG")" "$allowed" "[$who +$t] dnsmasq (the gateway's resolver) did not"
    check_eq 1 "$(jq -c "select(.event==\"dns_answer\" and .qname==\"$allowed\" and .mode==\"relayed\" and .server==\"$FAKE:53\" and .direct==true and .answer_ips==[\"203.0.113.98\"])" "$LOG" | grep -c .)" \
      "[$who +$t] dns_answer relayed from the asked server"
    check_schema "$LOG"
  done

  # Address rules come first: the resolver's address is denied.
  fake0=$(lines "$FAKE_LOG")
  run "$who" any-cidr --deny-cidr "$FAKE/32" -- sh -c "
    $PY $udp_py $FAKE 53
    dig +tcp +time=3 +tries=1 @$FAKE cidr-$who.example.test A >/dev/null 2>&1; echo tcp=\$?"
  check_contains "$OUT" "EHOSTUNREACH" "[$who] UDP to port 53 of a denied address: ICMP administratively prohibited"
  check_contains "$OUT" "tcp=9" "[$who] TCP to port 53 of a denied address: no connection (dig exit 9)"
  check_violation "[$who] UDP to the denied resolver: deny_cidr" "$LOG" '.protocol=="udp" and .reason_code=="deny_cidr" and .remote_port==53'
  check_violation "[$who] TCP to the denied resolver: deny_cidr" "$LOG" '.protocol=="tcp" and .reason_code=="deny_cidr" and .remote_port==53'
  check_eq "$fake0" "$(lines "$FAKE_LOG")" "[$who] the denied resolver logged nothing"
  check_schema "$LOG"

  # A closed port 53 stays closed over TCP (the SYN-ACK waits for the
  # resolver's connect).
  run "$who" any-closed -- sh -c "
    $PY -c 'import socket,sys
try:
    socket.create_connection((sys.argv[1], 53), timeout=3); print(\"connected\")
except OSError as e: print(\"error\", e.errno)' $LAB_WWW4"
  check_contains "$OUT" "error 111" "[$who] TCP to a closed port 53: connection refused"

  # DNS over TLS: a flow like any other.
  dot0=$(lines "$DOT_LOG")
  run "$who" dot-deny --default-policy deny --allow-domain www.example.test -- \
    $PY "$dot_client" "$LAB_DNS4" "$LAB_CA"
  check_contains "$OUT" "error ECONNREFUSED" "[$who] DoT under default-deny with a domain allow rule: refused"
  check_violation "[$who] DoT: default_deny" "$LOG" ".protocol==\"tcp\" and .reason_code==\"default_deny\" and .remote==\"$LAB_DNS4:853\""
  check_eq "$dot0" "$(lines "$DOT_LOG")" "[$who] the DoT server saw no connection"
  check_schema "$LOG"
  run "$who" dot-allow -- $PY "$dot_client" "$LAB_DNS4" "$LAB_CA"
  check_contains "$OUT" "tls ok" "[$who] DoT without rules: the handshake completes"
  check_contains "$(cat "$DOT_LOG")" "dot tls $LAB_HOST4" "[$who] ... and the DoT server logs it"
done

engine_finish
