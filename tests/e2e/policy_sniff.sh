#!/usr/bin/env bash
# Domain rules judge the names a TCP connection sends (docs/policy.md, "Names
# the tree sends"; issue 14 part 2), as root and as the unprivileged lab
# user. Nothing here asks DNS: every connection goes to a literal address.
#
# - `curl --resolve www.example.test:80|443:LAB_WWW4` under --deny-domain
#   www.example.test: reset, and the web server's log shows no request
#   (HTTP Host, HTTPS server_name); policy_violation deny_domain with the
#   name in sniffed_name, then flow_end close rst.
# - under --default-policy deny --allow-domain www.example.test (and the
#   address allowed by --allow-cidr): the allowed name passes over HTTPS and
#   HTTP, and v4only.example.test at the same address is denied
#   (default_deny), with nothing in the server's log.
# - a server that speaks first works while names are judged: its greeting
#   reaches the tree before the tree sends anything, and the tree's answer
#   (not TLS, not HTTP) reaches the server.
# - a request head with two Host headers, and one that never ends (5 s),
#   are reset as unreadable_name; the server's log shows neither.
# - --no-sniff-names: the same denied name over HTTP reaches the server.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

W=$LAB_WWW4
GREET_LOG=$LAB_DIR/greet.log

# A server that speaks first (SMTP-like) on LAB_ECHO4:2525: sends a
# greeting, then logs each line it gets.
greet_py=$(engine_py greet.py <<'EOF2'
import socket, sys, threading
addr, logf = sys.argv[1], open(sys.argv[2], "a", buffering=1)
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, 2525)); s.listen(16)
print("ready", flush=True)
def serve(c, peer):
    c.sendall(b"220 greet.example.test ready\r\n")
    for line in c.makefile("rb"):
        logf.write("greet got %s from %s\n" % (line.decode(errors="replace").strip(), peer[0]))
        c.sendall(b"250 ok\r\n")
    c.close()
while True:
    c, peer = s.accept()
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
EOF2
)

# raw.py HOST PORT TEXT WAIT: connects, sends TEXT (Python escapes allowed),
# waits up to WAIT s for the answer; prints "reset", or "eof" / the first
# line of what came.
raw_py=$(engine_py raw.py <<'EOF2'
import socket, sys
host, port, text, wait = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
c = socket.create_connection((host, port), timeout=5)
c.settimeout(wait)
c.sendall(text.encode().decode("unicode_escape").encode("latin-1"))
try:
    d = c.recv(4096)
    print(("got " + d.decode(errors="replace").splitlines()[0]) if d else "eof")
except ConnectionResetError:
    print("reset")
except socket.timeout:
    print("timeout")
EOF2
)

# greet_client.py HOST: reads the greeting before sending anything, then
# sends EHLO and reads the answer.
greet_client=$(engine_py greet_client.py <<'EOF2'
import socket, sys
c = socket.create_connection((sys.argv[1], 2525), timeout=5)
f = c.makefile("rb")
print("greeting", f.readline().decode().strip())
c.sendall(b"EHLO client.example.test\r\n")
print("answer", f.readline().decode().strip())
EOF2
)

lab_inet "$ENGINE_PY" "$greet_py" "$LAB_ECHO4" "$GREET_LOG" >"$LAB_DIR/greet.out" 2>&1 &
lab_wait_until 10 "the greeting server is up" grep -q ready "$LAB_DIR/greet.out"
touch "$GREET_LOG"

CURL="curl -sS --max-time 10 --cacert $LAB_CA"

# sniffed_violation MSG LOG REASON NAME FROM PORT: one policy_violation for
# the name, then flow_end rst for that flow.
sniffed_violation() {
  local msg=$1 log=$2 reason=$3 name=$4 from=$5 port=$6 id
  check_violation "$msg: policy_violation $reason for $name ($from)" "$log" \
    ".protocol==\"tcp\" and .reason_code==\"$reason\" and .sniffed_name==\"$name\" and .sniffed_from==\"$from\" and .remote==\"$W:$port\""
  id=$(jq -r "select(.event==\"policy_violation\" and .sniffed_name==\"$name\") | .flow_id" "$log" | head -1)
  check_eq 1 "$(jq -c "select(.event==\"flow_end\" and .flow_id==${id:-0} and .close==\"rst\")" "$log" | grep -c .)" \
    "$msg: the flow ends with a reset (flow_end close rst)"
}

for who in root user; do
  echo "# --- as $who"

  # A denied name at an allowed address, over HTTP and HTTPS.
  run "$who" deny --deny-domain www.example.test -- sh -c "
    $CURL --resolve www.example.test:80:$W http://www.example.test/sniff-http-$who; echo http=\$?
    $CURL --resolve www.example.test:443:$W https://www.example.test/sniff-https-$who; echo https=\$?"
  check_not_contains "$OUT" "http=0" "[$who] curl --resolve over HTTP to a denied name fails"
  check_not_contains "$OUT" "https=0" "[$who] curl --resolve over HTTPS to a denied name fails"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/sniff-http-$who" "[$who] the web server got no HTTP request"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/sniff-https-$who" "[$who] the web server got no HTTPS request"
  sniffed_violation "[$who] HTTP" "$LOG" deny_domain www.example.test http_host 80
  sniffed_violation "[$who] HTTPS" "$LOG" deny_domain www.example.test tls_sni 443
  check_violation "[$who] the rule is named" "$LOG" '.matched_domain=="www.example.test" and .control=="--deny-domain"'
  check_schema "$LOG"

  # Default-deny with a domain allow rule: the allowed SNI passes, another
  # name at the same (allowed) address does not.
  run "$who" allow --default-policy deny --allow-domain www.example.test --allow-cidr "$W/32" -- sh -c "
    $CURL --resolve www.example.test:443:$W https://www.example.test/allowed-https-$who; echo https=\$?
    $CURL --resolve www.example.test:80:$W http://www.example.test/allowed-http-$who; echo http=\$?
    $CURL --resolve v4only.example.test:443:$W https://v4only.example.test/other-https-$who; echo other_https=\$?
    $CURL --resolve v4only.example.test:80:$W http://v4only.example.test/other-http-$who; echo other_http=\$?"
  # (The paths are the test's own, so the server answers 404 "not found":
  # its answer, and its log, prove that the request reached it.)
  check_contains "$OUT" "not found"$'\n'"https=0" "[$who] an allowed SNI passes: the server's answer came back"
  check_contains "$OUT" "https=0" "[$who] ... over HTTPS (curl exit 0)"
  check_contains "$OUT" "http=0" "[$who] an allowed Host passes over HTTP (curl exit 0)"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /allowed-https-$who" "[$who] the web server served the allowed HTTPS request"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /allowed-http-$who" "[$who] the web server served the allowed HTTP request"
  check_not_contains "$OUT" "other_https=0" "[$who] another name at the allowed address fails over HTTPS"
  check_not_contains "$OUT" "other_http=0" "[$who] ... and over HTTP"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/other-https-$who" "[$who] the web server got no request for the other name (HTTPS)"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/other-http-$who" "[$who] ... (HTTP)"
  sniffed_violation "[$who] other name, HTTPS" "$LOG" default_deny v4only.example.test tls_sni 443
  check_eq 0 "$(violations "$LOG" '.sniffed_name=="www.example.test"')" "[$who] the allowed name has no violation"
  check_schema "$LOG"

  # A server that speaks first.
  run "$who" greet --deny-domain www.example.test -- $PY "$greet_client" "$LAB_ECHO4"
  check_contains "$OUT" "greeting 220 greet.example.test ready" "[$who] a server's greeting reaches the tree before it sends anything"
  check_contains "$OUT" "answer 250 ok" "[$who] the tree's answer goes through"
  check_contains "$(cat "$GREET_LOG")" "greet got EHLO client.example.test from $LAB_HOST4" "[$who] ... and the server got it"

  # Heads that cannot be judged.
  run "$who" unreadable --deny-domain www.example.test -- sh -c "
    $PY $raw_py $W 80 'GET /twohosts-$who HTTP/1.1\r\nHost: a.example.test\r\nHost: www.example.test\r\n\r\n' 5
    s=\$(date +%s); $PY $raw_py $W 80 'GET /partial-$who HTTP/1.1\r\nHost: www.exa' 15; echo waited=\$((\$(date +%s)-s))"
  check_contains "$OUT" "reset" "[$who] a head with two Host headers is reset"
  check_match "$OUT" "reset"$'\n'"waited=[4-8]" "[$who] a head that never ends is reset after about 5 s"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/twohosts-$who" "[$who] the web server got nothing of the two-Host head"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/partial-$who" "[$who] ... nor of the partial head"
  check_eq 2 "$(violations "$LOG" '.reason_code=="unreadable_name" and .control=="--no-sniff-names"')" "[$who] two unreadable_name violations"
  check_schema "$LOG"

  # --no-sniff-names: the name is not read.
  run "$who" nosniff --deny-domain www.example.test --no-sniff-names -- \
    $CURL --resolve www.example.test:80:$W http://www.example.test/nosniff-$who
  check_contains "$OUT" "not found" "[$who] --no-sniff-names: the request by a denied name goes through (the server's 404)"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /nosniff-$who" "[$who] ... and the web server served it"
  check_eq 0 "$(violations "$LOG" 'true')" "[$who] ... with no violation"
done

engine_finish
