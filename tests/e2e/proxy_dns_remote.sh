#!/usr/bin/env bash
# --proxy-dns remote end to end (docs/proxy.md, "Names to the proxy"; issue
# 13 part 5), as root and as the lab user, through each lab proxy kind: HTTP
# CONNECT (tinyproxy), HTTPS (TLS to tinyproxy) and SOCKS5 (microsocks).
#
# For each: `curl http://www.example.test/` works, and
# - the proxy was asked for the name: tinyproxy logs `CONNECT
#   www.example.test:80`, microsocks `connected to www.example.test:80` (the
#   domain address type); the www server sees the proxy as its client;
# - the lab resolver (dnsmasq) never heard from childflow: no query from the
#   lab host at all, while the proxy's own query for a fresh name is there;
# - the tree's `getent hosts` and `dig` (UDP and TCP, at both gateways) give
#   addresses of the synthetic range (198.18.0.0/15, fd63:666c:6f77::/96);
# - UDP and ping to a synthetic address fail at once (ICMP administratively
#   prohibited: EHOSTUNREACH / EACCES, "Packet filtered"), and no socket is
#   opened for them;
# - the flow log says synthetic_remote for the answers, names the name on
#   the connection, and validates against the schema.
# Also: --deny-domain denies the name (no address, no proxy request, no
# resolver query); a connection to a synthetic address is judged by its name
# (--default-policy deny without a domain allow rule refuses it before the
# proxy is asked; --allow-domain lets it through); socks5h:// and
# --proxy-dns remote without --proxy are refused with one line (exit 2). A
# capture on the lab host's eth0 shows that nothing addressed to the
# synthetic range ever left the machine.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
POLICY_PROBE_TAG=proxy-dns
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

since() { tail -n "+$(($2 + 1))" "$1"; }
https_port() { echo "${1##*:}"; }
SYNTH_RE='^(198\.1[89]\.[0-9]+\.[0-9]+|fd63:666c:6f77::[0-9a-f:]+)$'
SYNTH4_RE='^198\.1[89]\.[0-9]+\.[0-9]+$'
SYNTH6_RE='^fd63:666c:6f77::[0-9a-f:]+$'

# --- capture: nothing addressed to the synthetic range leaves ----------------
CAP=$LAB_DIR/cap.txt
SENTINEL=203.0.113.98
lab_root timeout 900 tshark -i eth0 -n -l -f \
  "(ip or ip6) and (dst net 198.18.0.0/15 or dst net fd63:666c:6f77::/48 or dst host $SENTINEL)" \
  >"$CAP" 2>"$LAB_DIR/cap.err" &
lab_wait_until 30 "tshark capturing on the lab host's eth0" grep -q "Capturing on" "$LAB_DIR/cap.err"
echo "capture running"

# The tree: each line "key=value".
tree() {
  local name=$1
  cat <<EOF
$GW_SCRIPT
echo getent=\$(getent hosts www.example.test | awk '{print \$1; exit}')
echo getent4=\$(getent ahostsv4 www.example.test | awk '{print \$1; exit}')
echo getent6=\$(getent ahostsv6 www.example.test | awk '{print \$1; exit}')
echo dig4=\$(dig +short +time=2 +tries=1 @\$g4 www.example.test A)
echo dig6tcp=\$(dig +short +tcp +time=2 +tries=1 @\$g6 www.example.test AAAA)
echo mx=\$(dig +short +time=2 +tries=1 @\$g4 www.example.test MX | wc -l)
echo page=\$(curl -sS --noproxy '*' --max-time 20 http://www.example.test/ | grep -c 'childflow lab www')
echo peer=\$(curl -sS --noproxy '*' --max-time 20 -4 http://$name/peer)
echo https=\$(curl -sS --noproxy '*' --max-time 20 --cacert $LAB_CA https://www.example.test/ | grep -c 'childflow lab www')
a4=\$(getent ahostsv4 www.example.test | awk '{print \$1; exit}')
t0=\$(date +%s%N)
echo udp4=\$($PY $udp_py \$a4 7)
echo udp6=\$($PY $udp_py fd63:666c:6f77::1 443)
echo udp_ms=\$(( (\$(date +%s%N) - t0) / 1000000 ))
ping -c1 -W3 \$a4 2>&1 | grep -c 'Packet filtered' | sed 's/^/ping=/'
EOF
}

for who in root user; do
  for kind in http https socks; do
    echo "# --- as $who, $kind proxy"
    case $kind in
      http) args=(-p "http://$LAB_HTTP_PROXY"); plog=$LAB_PROXY_LOG_HTTP ;;
      https) args=(-p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY")" --proxy-ca "$LAB_CA"); plog=$LAB_PROXY_LOG_HTTPS ;;
      socks) args=(-p "socks5://$LAB_SOCKS"); plog=$LAB_PROXY_LOG_SOCKS ;;
    esac
    name="pd-$kind-$who.wild.example.test"
    dns0=$(lines "$LAB_DNS_LOG"); p0=$(lines "$plog"); www0=$(lines "$LAB_WWW_LOG"); echo0=$(lines "$LAB_ECHO_LOG")
    run "$who" "pdns-$kind" "${args[@]}" --proxy-dns remote -- sh -c "$(tree "$name")"
    val() { sed -n "s/^$1=//p" <<<"$OUT" | head -1; }
    check_eq 0 "$RC" "$who $kind: the run exits 0"
    [[ $RC == 0 ]] || echo "$ERR" | tail -5 >&2
    check_match "$(val getent)" "$SYNTH_RE" "$who $kind: getent hosts www.example.test gives a synthetic address"
    check_match "$(val getent4)" "$SYNTH4_RE" "$who $kind: its IPv4 address is in 198.18.0.0/15"
    check_match "$(val getent6)" "$SYNTH6_RE" "$who $kind: its IPv6 address is in fd63:666c:6f77::/96"
    check_eq "$(val getent4)" "$(val dig4)" "$who $kind: dig over UDP at the IPv4 gateway gives the same address"
    check_eq "$(val getent6)" "$(val dig6tcp)" "$who $kind: dig over TCP at the IPv6 gateway gives the same AAAA"
    check_eq 0 "$(val mx)" "$who $kind: an MX query gets an empty answer"
    check_eq 1 "$(val page)" "$who $kind: curl http://www.example.test/ works"
    check_match "$(val peer)" '^(203\.0\.113\.[0-9]+|2001:db8:2::[0-9a-f]+)$' "$who $kind: www saw the proxy (inside the inet namespace) as its client"
    check_eq 1 "$(val https)" "$who $kind: HTTPS by name works too"
    check_eq EHOSTUNREACH "$(val udp4)" "$who $kind: UDP to a synthetic IPv4 address: EHOSTUNREACH"
    check_eq EACCES "$(val udp6)" "$who $kind: UDP to a synthetic IPv6 address: EACCES"
    check_le "$(val udp_ms)" 1500 "$who $kind: both UDP probes failed at once, not after their 3 s timeout"
    check_eq 1 "$(val ping)" "$who $kind: ping of a synthetic address: Packet filtered"
    new=$(since "$plog" "$p0")
    case $kind in
      http | https)
        check_contains "$new" "CONNECT www.example.test:80 " "$who $kind: the proxy was asked CONNECT www.example.test:80"
        check_contains "$new" "CONNECT www.example.test:443 " "$who $kind: the proxy was asked CONNECT www.example.test:443"
        check_contains "$new" "CONNECT $name:80 " "$who $kind: the proxy was asked for the fresh name"
        ;;
      socks)
        check_contains "$new" "connected to www.example.test:80" "$who $kind: SOCKS5 CONNECT by domain name www.example.test:80"
        check_contains "$new" "connected to www.example.test:443" "$who $kind: SOCKS5 CONNECT by domain name www.example.test:443"
        check_contains "$new" "connected to $name:80" "$who $kind: SOCKS5 CONNECT by domain name for the fresh name"
        ;;
    esac
    check_not_contains "$new" "198.18." "$who $kind: the proxy never saw a synthetic address"
    # (childflow itself resolves the proxy's own name, proxy.example.test for
    # the https proxy, once at start-up: docs/proxy.md.)
    dns=$(since "$LAB_DNS_LOG" "$dns0")
    mine=$(grep -v "\] $LAB_PROXY_HOST from" <<<"$dns" || true)
    check_not_contains "$mine" "from $LAB_HOST4" "$who $kind: the lab resolver got no query for the tree's names from childflow (IPv4)"
    check_not_contains "$mine" "from $LAB_HOST6" "$who $kind: the lab resolver got no query for the tree's names from childflow (IPv6)"
    check_contains "$dns" "$name" "$who $kind: the proxy itself resolved the fresh name (the log is live)"
    check_not_contains "$(since "$LAB_WWW_LOG" "$www0")" " $LAB_HOST4 " "$who $kind: www saw no direct connection from the lab host"
    check_not_contains "$(since "$LAB_WWW_LOG" "$www0")" " $LAB_HOST6 " "$who $kind: www saw no direct IPv6 connection from the lab host"
    check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "$who $kind: the echo server received nothing"
    # The flow log.
    check_eq 0 "$(jq -c 'select(.event=="dns_answer" and .mode=="relayed")' "$LOG" | grep -c . || true)" "$who $kind: no DNS answer was relayed"
    ans=$(jq -c 'select(.event=="dns_answer" and .qname=="www.example.test" and .qtype=="A")' "$LOG" | head -1)
    check_contains "$ans" '"mode":"synthetic_remote"' "$who $kind: dns_answer mode synthetic_remote"
    check_contains "$ans" "\"answer_ips\":[\"$(val getent4)\"]" "$who $kind: dns_answer names the synthetic address"
    res=$(jq -c 'select(.event=="connect_result" and (.remote_addr=="'"$(val getent4)"':443" or .remote_addr=="['"$(val getent6)"']:443"))' "$LOG" | head -1)
    check_contains "$res" '"status":"ok"' "$who $kind: connect_result ok for the synthetic address"
    check_contains "$res" '"via_proxy":true' "$who $kind: via the proxy"
    check_contains "$res" '"names":["www.example.test"]' "$who $kind: connect_result names www.example.test"
    check_eq 0 "$(jq -c 'select(.event=="flow_start")' "$LOG" | grep -c . || true)" "$who $kind: no UDP or ICMP flow was opened"
    check_schema "$LOG"
  done

  # --deny-domain: the name is denied by name; nobody outside hears of it.
  dns0=$(lines "$LAB_DNS_LOG"); p0=$(lines "$LAB_PROXY_LOG_SOCKS")
  bad="bad-$who.wild.example.test"
  run "$who" pdns-deny -p "socks5://$LAB_SOCKS" --proxy-dns remote --deny-domain "$bad" -- sh -c "
    echo getent=\$(getent hosts $bad | wc -l)
    curl -sS --noproxy '*' --max-time 20 http://$bad/ >/dev/null 2>&1; echo curl=\$?
    echo ok=\$(curl -sS --noproxy '*' --max-time 20 http://www.example.test/ | grep -c 'childflow lab www')"
  check_contains "$OUT" "getent=0" "$who --deny-domain: the denied name gets no address"
  check_contains "$OUT" "curl=6" "$who --deny-domain: curl cannot resolve it (exit 6)"
  check_contains "$OUT" "ok=1" "$who --deny-domain: other names still work"
  check_violation "$who --deny-domain: deny_domain violation for the name" "$LOG" '.protocol=="dns" and .reason_code=="deny_domain" and .remote=="'"$bad"'"'
  check_not_contains "$(since "$LAB_PROXY_LOG_SOCKS" "$p0")" "$bad" "$who --deny-domain: the proxy never heard the name"
  check_not_contains "$(since "$LAB_DNS_LOG" "$dns0")" "$bad" "$who --deny-domain: the resolver never heard the name"
  check_schema "$LOG"

  # A connection to a synthetic address is judged by its name.
  p0=$(lines "$LAB_PROXY_LOG_HTTP")
  run "$who" pdns-default-deny -p "http://$LAB_HTTP_PROXY" --proxy-dns remote \
    --default-policy deny --allow-cidr 203.0.113.0/24 -- sh -c "
    echo getent=\$(getent ahostsv4 www.example.test | awk '{print \$1; exit}')
    curl -sS --noproxy '*' --max-time 20 -4 http://www.example.test/ >/dev/null 2>&1; echo curl=\$?"
  check_contains "$OUT" "curl=7" "$who default-deny: the named connection is refused at once (curl exit 7)"
  check_violation "$who default-deny: default_deny for the named connection" "$LOG" '.protocol=="tcp" and .reason_code=="default_deny" and (.names == ["www.example.test"]) and (.remote | startswith("198.1"))'
  check_not_contains "$(since "$LAB_PROXY_LOG_HTTP" "$p0")" "CONNECT www.example.test" "$who default-deny: the proxy was never asked"
  check_schema "$LOG"
  p0=$(lines "$LAB_PROXY_LOG_HTTP")
  run "$who" pdns-allow-domain -p "http://$LAB_HTTP_PROXY" --proxy-dns remote --proxy-only \
    --default-policy deny --allow-domain www.example.test -- sh -c "
    echo ok=\$(curl -sS --noproxy '*' --max-time 20 http://www.example.test/ | grep -c 'childflow lab www')
    echo other=\$(getent hosts echo.example.test | wc -l)"
  check_contains "$OUT" "ok=1" "$who --allow-domain: the allowed name is carried by name"
  check_contains "$OUT" "other=0" "$who --allow-domain: another name is denied at the query"
  check_contains "$(since "$LAB_PROXY_LOG_HTTP" "$p0")" "CONNECT www.example.test:80 " "$who --allow-domain: CONNECT by name"
  check_schema "$LOG"
done

# socks5h:// and --proxy-dns remote without --proxy: one line, exit 2.
for who in root user; do
  set +e
  err=$(cf "$who" -p "socks5h://$LAB_SOCKS" -- true 2>&1 >/dev/null)
  rc=$?
  set -e
  check_eq 2 "$rc" "$who socks5h://: exit 2"
  check_eq 1 "$(grep -c . <<<"$err")" "$who socks5h://: one line"
  check_contains "$err" "childflow: error: --proxy: socks5h:// is not a scheme childflow takes: use socks5://$LAB_SOCKS with --proxy-dns remote" "$who socks5h://: the hint points to --proxy-dns remote"
  set +e
  err=$(cf "$who" --proxy-dns remote -- true 2>&1 >/dev/null)
  rc=$?
  set -e
  check_eq 2 "$rc" "$who --proxy-dns remote without --proxy: exit 2"
  check_contains "$err" "--proxy-dns remote needs a proxy" "$who --proxy-dns remote without --proxy: says so"
done

# The capture: a sentinel datagram sent directly from the lab host marks the
# end; nothing before it may be towards the synthetic range.
lab_root $PY -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'end', ('$SENTINEL', 9))"
lab_wait_until 20 "the sentinel datagram in the capture" grep -q "$SENTINEL" "$CAP"
check_eq "" "$(grep -v "$SENTINEL" "$CAP" || true)" "nothing towards the synthetic range left the lab host (tshark on eth0)"

engine_finish
