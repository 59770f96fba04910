#!/usr/bin/env bash
# The rootful backend's --proxy (docs/rootful.md, "--proxy: TPROXY"), as root
# in the lab host namespace:
# - each lab proxy (HTTP CONNECT, HTTPS, SOCKS5, each without and with
#   credentials) carries curl's requests to the lab web server, IPv4 and
#   IPv6, although the tree has no proxy variables: the proxy's log shows
#   the CONNECT, the web server sees the proxy's address (not the lab
#   host's), and the flow log has connect_attempt/connect_result (via_proxy)
#   and flow_end, which --summary counts;
# - a tool that knows nothing of proxies (a raw Python socket) is carried;
# - DNS still goes to the forwarder, by name;
# - a bad proxy (closes, answers garbage, port closed) fails the tree's
#   connection at once, never a hang, with the engine's error in the flow log;
# - policy: --deny-cidr resets a proxied connection before the proxy is
#   asked; --proxy-only denies UDP, and TCP to port 53 of a lab address,
#   which without it the kernel forwards as plain TCP, never proxied;
# - an idle relayed connection is reset (flow_end close timeout);
# - --proxy-dns remote: the tree gets synthetic addresses, the proxy is
#   asked for the names (its log), the lab host resolves nothing (the
#   resolver's log), UDP to a synthetic address and DNS to another server
#   are refused, a denied name gets an empty answer;
# - after every run the lab host's ruleset, links, rules, routes and
#   sysctls are byte-identical to before; a SIGKILLed --proxy run leaves its
#   ip rules, routes and table, and `childflow --cleanup` removes them.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
OUTD=$LAB_DIR/out-proxy
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_rootful.sh"
command -v jq >/dev/null || fail "jq is needed to read the flow log"

since() { tail -n "+$(($2 + 1))" "$1"; }
lines() { grep -c . "$1" 2>/dev/null || true; }
CRED=(-U "$LAB_PROXY_USER" -P "$LAB_PROXY_PASS")
NOPROXY='unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY'
TREE="$NOPROXY
  echo http4=\$(curl -sS --max-time 20 -4 http://www.example.test/peer)
  echo http6=\$(curl -sS --max-time 20 -6 http://www.example.test/peer)"

# carry KIND PROXYLOG LOGSTYLE CHILDFLOW_PROXY_ARGS...
carry() {
  local kind=$1 plog=$2 style=$3 n0 new peer
  shift 3
  n0=$(lines "$plog")
  rf "carry-$kind" --summary "$@" -- sh -c "$TREE"
  check_eq 0 "$RC" "$kind: the run exits 0 (${ERR:0:300})"
  peer=$(sed -n 's/^http4=//p' <<<"$OUT")
  check_match "$peer" '^203\.0\.113\.[0-9]+$' "$kind: IPv4 request reached www from the proxy's side ($peer)"
  check_not_contains "$peer" "$LAB_HOST4" "$kind: IPv4 request not direct from the lab host"
  peer=$(sed -n 's/^http6=//p' <<<"$OUT")
  check_match "$peer" '^2001:db8:2::[0-9a-f]+$' "$kind: IPv6 destination reached through the proxy ($peer)"
  check_not_contains "$peer" "$LAB_HOST6" "$kind: IPv6 request not direct from the lab host"
  new=$(since "$plog" "$n0")
  case $style in
    tinyproxy)
      check_contains "$new" "CONNECT $LAB_WWW4:80 " "$kind: proxy log shows CONNECT $LAB_WWW4:80"
      check_contains "$new" "CONNECT [$LAB_WWW6]:80 " "$kind: proxy log shows CONNECT [$LAB_WWW6]:80"
      ;;
    microsocks)
      check_contains "$new" "connected to $LAB_WWW4:80" "$kind: proxy log shows the connect to $LAB_WWW4:80"
      check_contains "$new" "$LAB_WWW6" "$kind: proxy log shows the IPv6 destination"
      ;;
  esac
  local att res end
  att=$(jq -c 'select(.event=="connect_attempt" and .remote_ip=="'"$LAB_WWW4"'" and .remote_port==80)' "$LOG")
  res=$(jq -c 'select(.event=="connect_result" and .remote_ip=="'"$LAB_WWW4"'" and .remote_port==80)' "$LOG")
  check_contains "$att" '"via_proxy":true' "$kind: connect_attempt via_proxy"
  check_contains "$res" '"status":"ok"' "$kind: connect_result ok"
  end=$(jq -c 'select(.event=="flow_end" and .protocol=="tcp")' "$LOG" | head -n1)
  check_match "$end" '"bytes_received":[1-9]' "$kind: flow_end counts the bytes relayed"
  check_contains "$ERR" "--proxy" "$kind: the summary lists the proxy"
  check_match "$ERR" 'connect_attempt=2 ' "$kind: the summary counts the two proxied connections"
  check_match "$ERR" "top targets:"$'\n'".*$LAB_WWW4" "$kind: the summary's top targets name the destination"
  check_state "$kind"
}

carry http "$LAB_PROXY_LOG_HTTP" tinyproxy -p "http://$LAB_HTTP_PROXY"
carry http-auth "$LAB_PROXY_LOG_HTTP_AUTH" tinyproxy -p "http://$LAB_HTTP_PROXY_AUTH" "${CRED[@]}"
carry https "$LAB_PROXY_LOG_HTTPS" tinyproxy \
  -p "https://$LAB_PROXY_HOST:${LAB_HTTPS_PROXY##*:}" --proxy-ca "$LAB_CA"
carry https-auth "$LAB_PROXY_LOG_HTTPS_AUTH" tinyproxy \
  -p "https://$LAB_PROXY_HOST:${LAB_HTTPS_PROXY_AUTH##*:}" --proxy-ca "$LAB_CA" "${CRED[@]}"
carry socks "$LAB_PROXY_LOG_SOCKS" microsocks -p "socks5://$LAB_SOCKS"
carry socks-auth "$LAB_PROXY_LOG_SOCKS_AUTH" microsocks -p "socks5://$LAB_SOCKS_AUTH" "${CRED[@]}"

# A tool that ignores proxies: a raw socket, by address; and HTTPS by name.
RAW='import socket,sys
s=socket.create_connection((sys.argv[1],80),timeout=10)
s.sendall(b"GET /peer HTTP/1.0\r\nHost: www.example.test\r\n\r\n")
d=b""
while True:
  b=s.recv(4096)
  if not b: break
  d+=b
print("raw="+d.split(b"\r\n\r\n",1)[-1].decode().strip())'
# DNS over TCP straight to the lab's resolver (not the gateway): the
# kernel's, as plain TCP (docs/rootful.md, "--proxy: TPROXY").
TCP53='import socket,struct,sys,errno
q=struct.pack(">HHHHHH",0x1234,0x0100,1,0,0,0)+b"\3www\7example\4test\0"+struct.pack(">HH",1,1)
try:
  s=socket.create_connection((sys.argv[1],53),timeout=10)
  s.sendall(struct.pack(">H",len(q))+q)
  n=struct.unpack(">H",s.recv(2))[0]
  print("tcp53=answered" if n>len(q) else "tcp53=short")
except OSError as e:
  print("tcp53="+str(errno.errorcode.get(e.errno,e)))'
n0=$(lines "$LAB_PROXY_LOG_HTTP")
rf raw -p "http://$LAB_HTTP_PROXY" -- sh -c "$NOPROXY; python3 -c '$RAW' $LAB_WWW4; \
  python3 -c '$TCP53' $LAB_DNS4; \
  curl -sS --max-time 20 --cacert $LAB_CA https://www.example.test/ | grep -c 'childflow lab www'"
check_eq 0 "$RC" "raw socket: exit 0 (${ERR:0:300})"
check_contains "$OUT" "tcp53=answered" "TCP to port 53 of the lab resolver: answered ($OUT)"
check_not_contains "$(since "$LAB_PROXY_LOG_HTTP" "$n0")" "$LAB_DNS4:53" "TCP to port 53: never proxied"
check_match "$(sed -n 's/^raw=//p' <<<"$OUT")" '^203\.0\.113\.[0-9]+$' "raw socket: carried by the proxy"
check_contains "$(since "$LAB_PROXY_LOG_HTTP" "$n0")" "CONNECT $LAB_WWW4:80 " "raw socket: the proxy's log shows its CONNECT"
check_contains "$(since "$LAB_PROXY_LOG_HTTP" "$n0")" "CONNECT $LAB_WWW4:443 " "HTTPS by name: CONNECT to port 443"
check_contains "$(cat "$LOG")" '"event":"dns_query"' "DNS still goes to the forwarder"
check_state "raw socket"

# --- bulk both ways and half-close, through plain and TLS tunnels ---------------
# 20 MB down and up (the upload's SHA-256 is the server's), and a half-close:
# the tree sends, shuts its side, and still reads the server's answer, which
# the server sends only after it saw the FIN.
HALF='import socket,sys
s=socket.create_connection((sys.argv[1],9),timeout=20)
s.sendall(b"x"*100000); s.shutdown(socket.SHUT_WR)
d=b""
while True:
  b=s.recv(4096)
  if not b: break
  d+=b
print("half="+d.decode().strip())'
BULK="$NOPROXY
  echo down=\$(curl -sS --max-time 60 -o /dev/null -w '%{size_download}' http://$LAB_WWW4/bytes/20000000)
  head -c 20000000 /dev/zero > /tmp/up.bin
  echo up=\$(curl -sS --max-time 60 --data-binary @/tmp/up.bin -H 'Content-Type: application/octet-stream' http://$LAB_WWW4/upload)
  python3 -c '$HALF' $LAB_ECHO4"
want_sha=$(head -c 20000000 /dev/zero | sha256sum | cut -d' ' -f1)
for p in "http http://$LAB_HTTP_PROXY" "https https://$LAB_PROXY_HOST:${LAB_HTTPS_PROXY##*:} --proxy-ca $LAB_CA"; do
  read -r kind uri extra <<<"$p"
  e0=$(lines "$LAB_ECHO_LOG")
  # shellcheck disable=SC2086
  rf "bulk-$kind" -p "$uri" $extra -- sh -c "$BULK"
  check_contains "$OUT" "down=20000000" "bulk $kind: 20 MB down through the proxy"
  check_contains "$OUT" "up=$want_sha" "bulk $kind: 20 MB up, byte-exact"
  # The lab's proxies end both directions when their client's side ends, so
  # the server's late answer cannot come back; what the relay owes: the
  # server got every byte and then the FIN, and the tree's read ended.
  check_contains "$OUT" "half=" "bulk $kind: after its half-close the tree's read ended (no hang)"
  check_match "$(since "$LAB_ECHO_LOG" "$e0")" "halfclose tcp [0-9.]+ [0-9]+ fin after 100000 bytes" \
    "bulk $kind: the server got all 100000 bytes, then the FIN"
  big=$(jq -s '[.[] | select(.event=="flow_end" and .protocol=="tcp") | (.bytes_sent + .bytes_received)] | max' "$LOG")
  check_match "$big" '^2[0-9]{7}$' "bulk $kind: flow_end counts the 20 MB ($big)"
  check_state "bulk $kind"
done

# --- two --proxy runs at once: each its own mark, table and priority ---------------
SYNC=$LAB_DIR/sync-proxy
install -d -m 0777 "$SYNC"
# Each tree waits until the test has looked at the rules (go), so both
# runs are certainly there while it looks, however slow the machine.
both="until [ -e $SYNC/go ]; do sleep 0.1; done"
cf root --root -d "$LAB_DNS4" -p "http://$LAB_HTTP_PROXY" -- sh -c "$NOPROXY; touch $SYNC/a; $both; curl -sS --max-time 10 http://www.example.test/peer" >"$OUTD/p1.out" 2>&1 &
p1=$!
cf root --root -d "$LAB_DNS4" -p "socks5://$LAB_SOCKS" -- sh -c "$NOPROXY; touch $SYNC/b; $both; curl -6 -sS --max-time 10 http://www.example.test/peer" >"$OUTD/p2.out" 2>&1 &
p2=$!
lab_wait_until 20 "both --proxy runs started" sh -c "[ -e $SYNC/a ] && [ -e $SYNC/b ]"
rules4=$(lab_root ip rule show | grep -c 'fwmark 0x6366' || true)
rules6=$(lab_root ip -6 rule show | grep -c 'fwmark 0x6366' || true)
marks=$(lab_root ip rule show | grep -o 'fwmark 0x6366[0-9a-f]*' | sort -u | grep -c . || true)
prios=$(lab_root ip rule show | grep 'fwmark 0x6366' | cut -d: -f1 | sort -u | grep -c . || true)
touch "$SYNC/go"
wait "$p1" && r1=0 || r1=$?
wait "$p2" && r2=0 || r2=$?
check_eq "0 0" "$r1 $r2" "two --proxy runs at once both succeed ($(head -c 200 "$OUTD/p1.out") $(head -c 200 "$OUTD/p2.out"))"
check_eq "2 2 2 2" "$rules4 $rules6 $marks $prios" "two --proxy runs: two rules per family, two marks, two priorities"
check_match "$(cat "$OUTD/p1.out")" '203\.0\.113\.[0-9]+' "two --proxy runs: the first carried"
check_match "$(cat "$OUTD/p2.out")" '2001:db8:2::[0-9a-f]+' "two --proxy runs: the second carried"
check_state "two --proxy runs"

# --- a bad proxy: the connection fails at once, the error is logged ----------
bad() {
  local name=$1 uri=$2 want=$3
  rf "bad-$name" -p "$uri" -- sh -c "$TIMED" t curl -sS --max-time 20 http://$LAB_WWW4/
  check_eq 0 "$RC" "bad proxy $name: childflow itself exits 0 (the tree's curl failed: $OUT)"
  if [[ $OUT =~ rc=([0-9]+) ]]; then
    local rc=${BASH_REMATCH[1]}
    if ((rc != 0 && rc != 28)); then check_pass "bad proxy $name: curl failed at once (rc=$rc)"
    else check_fail "bad proxy $name: curl rc=$rc, want a failed connection, not success or a time-out"; fi
  else
    check_fail "bad proxy $name: no timing line ($OUT)"
  fi
  check_contains "$(jq -c 'select(.event=="connect_result")' "$LOG")" "$want" "bad proxy $name: error logged"
  check_state "bad proxy $name"
}
bad close "http://$LAB_BAD_PROXY_CLOSE" "proxy closed the connection during the handshake"
bad garbage "http://$LAB_BAD_PROXY_GARBAGE" "not an HTTP reply to CONNECT"
bad refused "http://$LAB_PROXY4:9" "connection refused"
bad noauth "socks5://$LAB_SOCKS_AUTH" "proxy: SOCKS5 server accepted none of our methods"

# --- policy still applies ----------------------------------------------------------
n0=$(lines "$LAB_PROXY_LOG_HTTP")
rf deny -p "http://$LAB_HTTP_PROXY" --deny-cidr "$LAB_WWW4/32" --summary -- sh -c "$TIMED" t curl -sS --max-time 20 http://$LAB_WWW4/
check_match "$OUT" 'rc=(7|52|56) ' "deny-cidr: the proxied connection is reset ($OUT)"
check_contains "$(cat "$LOG")" '"reason_code":"deny_cidr"' "deny-cidr: policy_violation logged"
check_contains "$(jq -c 'select(.event=="connect_result")' "$LOG")" "denied by policy" "deny-cidr: connect_result denied"
check_not_contains "$(since "$LAB_PROXY_LOG_HTTP" "$n0")" "CONNECT $LAB_WWW4:80" "deny-cidr: the proxy was never asked"
check_contains "$ERR" "deny_cidr" "deny-cidr: in the summary"
check_state "deny-cidr through the proxy"

UDP='import socket,sys,errno
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(3); s.connect((sys.argv[1],7))
try:
  s.send(b"rootful probe"); print("reply", len(s.recv(100)))
except socket.timeout: print("TIMEOUT")
except OSError as e: print(errno.errorcode.get(e.errno))'
rf only -p "http://$LAB_HTTP_PROXY" --proxy-only -- sh -c "$NOPROXY; python3 -c '$UDP' $LAB_ECHO4; \
  python3 -c '$TCP53' $LAB_DNS4; \
  curl -sS --max-time 20 http://www.example.test/peer"
check_contains "$OUT" "EHOSTUNREACH" "proxy-only: UDP denied"
check_contains "$OUT" "tcp53=ECONNREFUSED" "proxy-only: TCP to port 53 of the lab resolver refused ($OUT)"
check_eq proxy_only "$(jq -r 'select(.event=="policy_violation" and .protocol=="tcp" and .remote_port==53) | .reason_code' "$LOG")" \
  "proxy-only: TCP to port 53 logged as a proxy_only violation"
check_match "$OUT" $'\n203\\.0\\.113\\.[0-9]+$' "proxy-only: TCP through the proxy still works"
check_contains "$(cat "$LOG")" '"reason_code":"proxy_only"' "proxy-only: logged"
check_state "proxy-only"

# An idle relayed connection is reset, as the engine's TCP flows are (a day
# without a byte; shortened here with the CHILDFLOW_TEST_RELAY_IDLE_MS hook).
IDLE='import socket,sys,time
s=socket.create_connection((sys.argv[1],7)); t=time.time(); s.settimeout(30)
try: print("recv", len(s.recv(10)), round(time.time()-t))
except OSError as e: print("error", e.errno, round(time.time()-t))'
idle_out=$(lab_root env CHILDFLOW_TEST_RELAY_IDLE_MS=1500 timeout 60 "$CHILDFLOW" --root -d "$LAB_DNS4" \
  -p "http://$LAB_HTTP_PROXY" --flow-log "$OUTD/idle.jsonl" -- python3 -c "$IDLE" "$LAB_ECHO4" 2>&1) || true
check_match "$idle_out" '^error 104 [1-9]$' "idle: the silent connection is reset after the idle time-out ($idle_out)"
check_contains "$(jq -c 'select(.event=="flow_end")' "$OUTD/idle.jsonl")" '"close":"timeout"' "idle: flow_end says timeout"
check_state "idle relayed connection"

# --- --proxy-dns remote: the proxy resolves the names, the host none --------------
dns0=$(lines "$LAB_DNS_LOG")
n0=$(lines "$LAB_PROXY_LOG_HTTP")
rf remote -p "http://$LAB_HTTP_PROXY" --proxy-dns remote --summary -- sh -c "$NOPROXY
  echo addr=\$(getent ahostsv4 www.example.test | head -1 | cut -d' ' -f1)
  echo http4=\$(curl -sS --max-time 20 -4 http://www.example.test/peer)
  echo http6=\$(curl -sS --max-time 20 -6 http://www.example.test/peer)
  echo udp=\$(python3 -c '$UDP' 198.18.0.1)
  dig +short +time=2 +tries=1 @$LAB_DNS4 www.example.test >/dev/null 2>&1; echo dig=\$?"
check_eq 0 "$RC" "remote: the run exits 0 (${ERR:0:300})"
check_match "$OUT" 'addr=198\.1[89]\.[0-9]+\.[0-9]+' "remote: the tree gets a synthetic address ($OUT)"
# (The proxy resolves the name itself and picks the family it likes.)
check_match "$OUT" 'http4=(203\.0\.113\.[0-9]+|2001:db8:2::[0-9a-f]+)' "remote: IPv4 (A synthetic) by name through the proxy"
check_match "$OUT" 'http6=(203\.0\.113\.[0-9]+|2001:db8:2::[0-9a-f]+)' "remote: IPv6 (AAAA synthetic) by name through the proxy"
check_contains "$(since "$LAB_PROXY_LOG_HTTP" "$n0")" "CONNECT www.example.test:80" "remote: the proxy is asked for the name"
check_contains "$OUT" "udp=EHOSTUNREACH" "remote: UDP to a synthetic address is refused"
check_match "$OUT" 'dig=[1-9]' "remote: a lookup sent to another server is refused"
check_not_contains "$(since "$LAB_DNS_LOG" "$dns0")" "from $LAB_HOST4" "remote: the lab host resolved nothing (the proxy did)"
check_contains "$(jq -c 'select(.event=="dns_answer")' "$LOG")" '"mode":"synthetic_remote"' "remote: the flow log's synthetic answers"
check_contains "$(jq -c 'select(.event=="connect_attempt")' "$LOG")" '"names":["www.example.test"]' "remote: the connection is logged with its name"
check_state "--proxy-dns remote"

# A denied name: its lookup is answered empty, as in rootless.
rf remote-deny -p "http://$LAB_HTTP_PROXY" --proxy-dns remote --deny-domain www.example.test -- \
  sh -c "$NOPROXY; curl -sS --max-time 20 http://www.example.test/; echo rc=\$?"
check_contains "$OUT" "rc=6" "remote + deny-domain: the name does not resolve"
check_contains "$(cat "$LOG")" '"reason_code":"deny_domain"' "remote + deny-domain: logged"
check_state "--proxy-dns remote with --deny-domain"

# --- SIGTERM with a proxied connection open: everything undone ---------------------
lab_root timeout 60 "$CHILDFLOW" --root -d "$LAB_DNS4" -p "http://$LAB_HTTP_PROXY" -- \
  sh -c "curl -sS --max-time 30 http://$LAB_WWW4/delay/20000 >/dev/null 2>&1 & sleep 30" >/dev/null 2>&1 &
job=$!
rootful_wait_link "the run's link"
lab_wait_until 10 "the proxied connection" sh -c "grep -q 'CONNECT $LAB_WWW4:80 ' '$LAB_PROXY_LOG_HTTP' && ip netns exec $LAB_NS ss -tn | grep -q '$LAB_PROXY4:3128'"
rootful_signal TERM "$job"
check_eq 143 "$SIGNAL_RC" "SIGTERM with a proxied connection: the tree ends with it (128 + 15)"
check_state "SIGTERM with a proxied connection"

# --- SIGKILL, then --cleanup removes the rules, routes and table -----------------
rootful_killed -p "http://$LAB_HTTP_PROXY"
check_match "$AFTER_KILL" 'fwmark 0x6366[0-9a-f]{4} lookup' "SIGKILL leaves the run's ip rule"
check_match "$AFTER_KILL" 'local default dev lo table 16676' "SIGKILL leaves the run's local route"
rootful_cleanup
check_match "$CLEANUP" 'ip rules \(priority [0-9]+, fwmark 0x6366[0-9a-f]{4}\) and routes of table 16676' "--cleanup says it removed the rules and routes"
check_state "SIGKILL + --cleanup of a --proxy run"

# Every flow log of this script (relay events among them) matches
# docs/flow-log-schema.md.
bad_logs=0
for f in "$OUTD"/*.jsonl; do
  python3 "$LAB_LIB_DIR/flowlog_schema.py" "$f" >/dev/null 2>"$OUTD/schema.err" ||
    { bad_logs=$((bad_logs + 1)); echo "schema: $f: $(head -c 300 "$OUTD/schema.err")" >&2; }
done
check_eq 0 "$bad_logs" "every flow log of the --proxy runs matches the schema"

engine_finish
