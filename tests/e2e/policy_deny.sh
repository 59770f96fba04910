#!/usr/bin/env bash
# Policy end to end (docs/policy.md, issue 4 part 1): every reason code blocks
# a real request, at once, and nothing reaches the network. As root and as the
# unprivileged lab user.
#
# - offline: TCP, UDP, ICMP and DNS all denied; no server logs anything.
# - metadata (--block-metadata) and private (--block-private): connects to
#   169.254.169.254, fd00:ec2::254, 10/8, 172.16/12, 192.168/16 and fc00::/7
#   are refused at once (curl exit 7, no connect timeout), UDP gets ICMP
#   administratively prohibited, ping gets "Packet filtered". A capture on the
#   lab host's eth0 proves that no packet towards any of them left (the lab
#   has no route anywhere real; the capture makes the test fail if the policy
#   let one through).
# - deny_cidr: TCP (v4, v6) and UDP to a denied prefix; the www and echo
#   servers' logs show nothing.
# - deny_domain_exact / deny_domain: the query is answered empty (curl exit
#   6), dnsmasq never sees it; the exact rule leaves subdomains alone.
# - default_deny: with no allow rule nothing goes out, but names still
#   resolve (no domain allow rule exists).
# Each denial is one policy_violation with the reason code, the control and
# what matched; denied TCP has connect_result error "denied by policy".
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

# timed CMD...: run inside the tree; prints "rc=N ms=M".
TIMED='s=$(date +%s%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo "rc=$rc ms=$(((e-s)/1000000))"'

# check_fast MSG "rc=N ms=M" RC : the command failed with RC in under 1 s.
check_fast() {
  local msg=$1 line=$2 want=$3
  if [[ $line =~ rc=([0-9]+)\ ms=([0-9]+) ]]; then
    check_eq "$want" "${BASH_REMATCH[1]}" "$msg: exit status"
    check_le "${BASH_REMATCH[2]}" 1000 "$msg: within 1 s (ms)"
  else
    check_fail "$msg: no timing line in [$line]"
  fi
}

# --- capture: nothing towards private or metadata addresses leaves ----------
CAP=$LAB_DIR/cap.txt
SENTINEL=203.0.113.99
lab_root timeout 600 tshark -i eth0 -n -l -f \
  "(ip or ip6) and (dst net 10.0.0.0/8 or dst net 172.16.0.0/12 or dst net 192.168.0.0/16 or dst net 169.254.0.0/16 or dst net 100.64.0.0/10 or dst net fc00::/7 or dst host $SENTINEL)" \
  >"$CAP" 2>"$LAB_DIR/cap.err" &
lab_wait_until 30 "tshark capturing on the lab host's eth0" grep -q "Capturing on" "$LAB_DIR/cap.err"
echo "capture running"

for who in root user; do
  echo "# --- as $who"

  # offline: every kind of traffic, DNS included.
  www0=$(lines "$LAB_WWW_LOG"); echo0=$(lines "$LAB_ECHO_LOG")
  run "$who" offline --offline -- sh -c "
    sh -c '$TIMED' t curl -sS --max-time 10 http://$LAB_WWW4/offline-$who
    $PY $udp_py $LAB_ECHO4 7
    ping -c1 -W2 $LAB_WWW4 >/dev/null 2>&1; echo ping=\$?
    getent hosts offline-$who.wild.example.test; echo getent=\$?"
  check_fast "$who offline: curl refused" "$(grep '^rc=' <<<"$OUT")" 7
  check_contains "$OUT" "EHOSTUNREACH" "$who offline: UDP gets ICMP admin prohibited (EHOSTUNREACH)"
  check_contains "$OUT" "ping=1" "$who offline: ping fails"
  check_contains "$OUT" "getent=2" "$who offline: the name does not resolve"
  check_violation "$who offline: TCP violation" "$LOG" '.protocol=="tcp" and .reason_code=="offline" and .control=="--offline" and .remote_ip=="'"$LAB_WWW4"'" and .remote_port==80'
  check_violation "$who offline: UDP violation" "$LOG" '.protocol=="udp" and .reason_code=="offline" and .remote=="'"$LAB_ECHO4"':7"'
  check_violation "$who offline: ICMP violation" "$LOG" '.protocol=="icmpv4" and .reason_code=="offline" and .remote_port==null'
  check_violation "$who offline: DNS violation" "$LOG" '.protocol=="dns" and .reason_code=="offline" and .remote=="offline-'"$who"'.wild.example.test" and .remote_ip==null'
  check_contains "$(jq -c 'select(.event=="connect_result")' "$LOG")" '"error":"denied by policy"' "$who offline: connect_result says denied by policy"
  check_contains "$(jq -c 'select(.event=="dns_answer" and .qname=="offline-'"$who"'.wild.example.test")' "$LOG")" '"mode":"synthetic_empty"' "$who offline: DNS answered synthetic_empty"
  check_eq "$www0" "$(lines "$LAB_WWW_LOG")" "$who offline: www server received nothing"
  check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "$who offline: echo server received nothing"
  check_not_contains "$(cat "$LAB_DNS_LOG")" "offline-$who" "$who offline: dnsmasq never saw the query"
  check_schema "$LOG"

  # metadata: the four endpoints, TCP, UDP, ICMP.
  run "$who" metadata --block-metadata -- sh -c "
    sh -c '$TIMED' t curl -sS --max-time 10 http://169.254.169.254/latest/meta-data/
    sh -c '$TIMED' t curl -sS --max-time 10 'http://[fd00:ec2::254]/'
    $PY $udp_py 100.100.100.200 80
    ping -c1 -W2 169.254.170.2 2>&1; echo ping=\$?"
  check_fast "$who metadata: curl 169.254.169.254 refused" "$(grep '^rc=' <<<"$OUT" | sed -n 1p)" 7
  check_fast "$who metadata: curl [fd00:ec2::254] refused" "$(grep '^rc=' <<<"$OUT" | sed -n 2p)" 7
  check_contains "$OUT" "EHOSTUNREACH" "$who metadata: UDP to 100.100.100.200 gets admin prohibited"
  check_contains "$OUT" "Packet filtered" "$who metadata: ping 169.254.170.2 sees Packet filtered"
  check_contains "$OUT" "ping=1" "$who metadata: ping fails"
  check_violation "$who metadata: TCP 169.254.169.254" "$LOG" '.protocol=="tcp" and .reason_code=="metadata" and .control=="--block-metadata" and .matched_cidr=="169.254.169.254/32"'
  check_violation "$who metadata: TCP fd00:ec2::254" "$LOG" '.protocol=="tcp" and .reason_code=="metadata" and .remote=="[fd00:ec2::254]:80" and .matched_cidr=="fd00:ec2::254/128"'
  check_violation "$who metadata: UDP 100.100.100.200" "$LOG" '.protocol=="udp" and .reason_code=="metadata" and .remote_ip=="100.100.100.200"'
  check_violation "$who metadata: ICMP 169.254.170.2" "$LOG" '.protocol=="icmpv4" and .reason_code=="metadata" and .remote_ip=="169.254.170.2"'
  check_schema "$LOG"

  # private: RFC 1918, link-local and ULA destinations.
  run "$who" private --block-private -- sh -c "
    sh -c '$TIMED' t curl -sS --max-time 10 http://10.1.2.3/
    sh -c '$TIMED' t curl -sS --max-time 10 http://172.16.0.1:8080/
    sh -c '$TIMED' t curl -sS --max-time 10 'http://[fd12:3456::1]/'
    $PY $udp_py 192.168.1.1 53
    ping -c1 -W2 192.168.0.1 2>&1; echo ping=\$?
    curl -sS --max-time 10 http://$LAB_WWW4/"
  check_fast "$who private: curl 10.1.2.3 refused" "$(grep '^rc=' <<<"$OUT" | sed -n 1p)" 7
  check_fast "$who private: curl 172.16.0.1 refused" "$(grep '^rc=' <<<"$OUT" | sed -n 2p)" 7
  check_fast "$who private: curl [fd12:3456::1] refused" "$(grep '^rc=' <<<"$OUT" | sed -n 3p)" 7
  check_contains "$OUT" "EHOSTUNREACH" "$who private: UDP to 192.168.1.1 gets admin prohibited"
  check_contains "$OUT" "Packet filtered" "$who private: ping 192.168.0.1 sees Packet filtered"
  check_contains "$OUT" "childflow lab www" "$who private: a public (documentation) address still works"
  check_violation "$who private: TCP 10.1.2.3" "$LOG" '.protocol=="tcp" and .reason_code=="private" and .control=="--block-private" and .remote=="10.1.2.3:80" and .matched_cidr=="10.0.0.0/8"'
  check_violation "$who private: TCP 172.16.0.1" "$LOG" '.reason_code=="private" and .matched_cidr=="172.16.0.0/12" and .remote_port==8080'
  check_violation "$who private: TCP fd12:3456::1" "$LOG" '.reason_code=="private" and .matched_cidr=="fc00::/7"'
  check_violation "$who private: UDP 192.168.1.1" "$LOG" '.protocol=="udp" and .reason_code=="private" and .matched_cidr=="192.168.0.0/16" and .remote_port==53'
  check_violation "$who private: ICMP 192.168.0.1" "$LOG" '.protocol=="icmpv4" and .reason_code=="private"'
  check_eq 0 "$(violations "$LOG" '.remote_ip=="'"$LAB_WWW4"'"')" "$who private: no violation for the allowed address"
  check_schema "$LOG"

  # deny_cidr: v4 and v6 TCP, UDP; the servers see nothing.
  www0=$(lines "$LAB_WWW_LOG"); echo0=$(lines "$LAB_ECHO_LOG")
  run "$who" deny-cidr --deny-cidr "$LAB_WWW4/32" --deny-cidr 2001:db8:2::/64 --deny-cidr 203.0.113.16/29 -- sh -c "
    sh -c '$TIMED' t curl -sS --max-time 10 http://$LAB_WWW4/deny-cidr-$who
    sh -c '$TIMED' t curl -sS --max-time 10 'http://[$LAB_WWW6]/deny-cidr6-$who'
    $PY $udp_py $LAB_ECHO4 7"
  check_fast "$who deny_cidr: curl $LAB_WWW4 refused" "$(grep '^rc=' <<<"$OUT" | sed -n 1p)" 7
  check_fast "$who deny_cidr: curl [$LAB_WWW6] refused" "$(grep '^rc=' <<<"$OUT" | sed -n 2p)" 7
  check_contains "$OUT" "EHOSTUNREACH" "$who deny_cidr: UDP to echo gets admin prohibited"
  check_violation "$who deny_cidr: TCP v4" "$LOG" '.protocol=="tcp" and .reason_code=="deny_cidr" and .control=="--deny-cidr" and .matched_cidr=="'"$LAB_WWW4"'/32" and .reason=="blocked by `--deny-cidr '"$LAB_WWW4"'/32`"'
  check_violation "$who deny_cidr: TCP v6" "$LOG" '.protocol=="tcp" and .reason_code=="deny_cidr" and .matched_cidr=="2001:db8:2::/64" and .remote=="['"$LAB_WWW6"']:80"'
  check_violation "$who deny_cidr: UDP" "$LOG" '.protocol=="udp" and .reason_code=="deny_cidr" and .matched_cidr=="203.0.113.16/29"'
  check_eq "$www0" "$(lines "$LAB_WWW_LOG")" "$who deny_cidr: www server received nothing"
  check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "$who deny_cidr: echo server received nothing"
  check_schema "$LOG"

  # deny_domain_exact: the name is answered empty, its subdomain is not.
  www0=$(lines "$LAB_WWW_LOG")
  run "$who" deny-domain-exact --deny-domain-exact "dx-$who.wild.example.test" -- sh -c "
    sh -c '$TIMED' t curl -sS --max-time 10 http://dx-$who.wild.example.test/dx-$who
    curl -sS --max-time 10 http://sub.dx-$who.wild.example.test/
    g4=\$(awk '/^nameserver [0-9.]+\$/{print \$2; exit}' /etc/resolv.conf)
    dig +tcp +time=3 +tries=1 @\$g4 dx-$who.wild.example.test A | grep -E 'status:|ANSWER:' | tr -s ' ' | sed 's/^/tcp-dns /'"
  check_fast "$who deny_domain_exact: curl cannot resolve the name" "$(grep '^rc=' <<<"$OUT")" 6
  check_contains "$OUT" "childflow lab www" "$who deny_domain_exact: a subdomain of the exact name resolves and connects"
  check_contains "$OUT" "status: NOERROR" "$who deny_domain_exact: a DNS-over-TCP query for the name gets NOERROR"
  check_contains "$OUT" "ANSWER: 0," "$who deny_domain_exact: ... with no answer records"
  check_violation "$who deny_domain_exact: DNS violation" "$LOG" '.protocol=="dns" and .reason_code=="deny_domain_exact" and .control=="--deny-domain-exact" and .matched_domain=="dx-'"$who"'.wild.example.test" and .remote=="dx-'"$who"'.wild.example.test" and .remote_port==null'
  check_eq 0 "$(violations "$LOG" '.remote | contains("sub.dx")')" "$who deny_domain_exact: no violation for the subdomain"
  check_contains "$(jq -c 'select(.event=="dns_answer" and .qname=="dx-'"$who"'.wild.example.test")' "$LOG")" '"answer_ips":[]' "$who deny_domain_exact: empty answer"
  check_not_contains "$(cat "$LAB_DNS_LOG")" " dx-$who.wild.example.test" "$who deny_domain_exact: dnsmasq never saw the denied name"
  check_contains "$(cat "$LAB_DNS_LOG")" "sub.dx-$who.wild.example.test" "$who deny_domain_exact: dnsmasq saw the subdomain"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/dx-$who" "$who deny_domain_exact: www never saw the denied request"
  check_schema "$LOG"

  # deny_domain: the name and every subdomain.
  www0=$(lines "$LAB_WWW_LOG")
  run "$who" deny-domain --deny-domain "dd-$who.wild.example.test" -- sh -c "
    sh -c '$TIMED' t curl -sS --max-time 10 http://a.b.dd-$who.wild.example.test/
    getent hosts dd-$who.wild.example.test; echo getent=\$?"
  check_fast "$who deny_domain: curl a.b.dd-$who cannot resolve" "$(grep '^rc=' <<<"$OUT")" 6
  check_contains "$OUT" "getent=2" "$who deny_domain: the rule's own name does not resolve"
  check_violation "$who deny_domain: DNS violation for the subdomain" "$LOG" '.protocol=="dns" and .reason_code=="deny_domain" and .control=="--deny-domain" and .matched_domain=="dd-'"$who"'.wild.example.test" and .remote=="a.b.dd-'"$who"'.wild.example.test"'
  check_not_contains "$(cat "$LAB_DNS_LOG")" "dd-$who.wild.example.test" "$who deny_domain: dnsmasq never saw either name"
  check_eq "$www0" "$(lines "$LAB_WWW_LOG")" "$who deny_domain: www server received nothing"
  check_schema "$LOG"

  # default_deny without allow rules: names resolve, nothing connects.
  www0=$(lines "$LAB_WWW_LOG"); echo0=$(lines "$LAB_ECHO_LOG")
  run "$who" default-deny --default-policy deny -- sh -c "
    getent ahostsv4 www.example.test | head -1
    sh -c '$TIMED' t curl -sS --max-time 10 http://www.example.test/default-deny-$who
    $PY $udp_py $LAB_ECHO4 7"
  check_contains "$OUT" "$LAB_WWW4" "$who default_deny: names still resolve (no domain allow rule)"
  check_fast "$who default_deny: curl refused" "$(grep '^rc=' <<<"$OUT")" 7
  check_contains "$OUT" "EHOSTUNREACH" "$who default_deny: UDP denied"
  check_violation "$who default_deny: TCP violation" "$LOG" '.protocol=="tcp" and .reason_code=="default_deny" and .control=="--default-policy" and (.names | index("www.example.test"))'
  check_eq "$www0" "$(lines "$LAB_WWW_LOG")" "$who default_deny: www server received nothing"
  check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "$who default_deny: echo server received nothing"
  check_schema "$LOG"
done

# The capture: a sentinel datagram sent directly from the lab host marks the
# end; nothing before it may be towards a private or metadata address.
lab_root $PY -c "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'end', ('$SENTINEL', 9))"
lab_wait_until 20 "the sentinel datagram in the capture" grep -q "$SENTINEL" "$CAP"
check_eq "" "$(grep -v "$SENTINEL" "$CAP" || true)" "no packet towards a private or metadata address left the lab host (tshark on eth0)"

engine_finish
