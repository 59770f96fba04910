#!/usr/bin/env bash
# Policy end to end (docs/policy.md, issue 4 part 1), the allowing side and
# --fail-on-leak. As root and as the unprivileged lab user.
#
# - --default-policy deny --allow-cidr: exactly the allowed address passes
#   (TCP and ICMP); its neighbours are denied for TCP, UDP and ICMP.
# - --default-policy deny --allow-domain: the allowed name resolves and
#   connects; another name is answered empty (a domain allow rule exists);
#   the allowed address is reachable only after the engine relayed a DNS
#   answer naming it (domain rules work through relayed names).
# - a subdomain allowed by --allow-domain but blocked by --allow-domain-exact.
# - --fail-on-leak turns exit 0 into 1 with a one-line warning naming the
#   flag; without a violation, or when the command failed, the exit status is
#   the command's.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

for who in root user; do
  echo "# --- as $who"

  # Allow CIDR under default deny.
  echo0=$(lines "$LAB_ECHO_LOG")
  run "$who" allow-cidr --default-policy deny --allow-cidr "$LAB_WWW4/32" -- sh -c "
    curl -sS --max-time 10 -o /dev/null -w 'http=%{http_code}\\n' http://$LAB_WWW4/allow-cidr-$who; echo curl_www=\$?
    curl -sS --max-time 10 http://$LAB_ECHO4:9/ >/dev/null 2>&1; echo curl_echo=\$?
    $PY $udp_py $LAB_ECHO4 7
    ping -c1 -W3 $LAB_WWW4 >/dev/null 2>&1; echo ping_www=\$?
    ping -c1 -W3 $LAB_ECHO4 >/dev/null 2>&1; echo ping_echo=\$?
    curl -sS --max-time 10 'http://[$LAB_WWW6]/' >/dev/null 2>&1; echo curl_www6=\$?"
  check_contains "$OUT" "http=404" "$who allow-cidr: the allowed server answered (404 for the marker path)"
  check_contains "$OUT" "curl_www=0" "$who allow-cidr: curl to the allowed address exits 0"
  check_contains "$OUT" "curl_echo=7" "$who allow-cidr: TCP to another address refused"
  check_contains "$OUT" "EHOSTUNREACH" "$who allow-cidr: UDP to another address denied"
  check_contains "$OUT" "ping_www=0" "$who allow-cidr: ping of the allowed address works"
  check_contains "$OUT" "ping_echo=1" "$who allow-cidr: ping of another address fails"
  check_contains "$OUT" "curl_www6=7" "$who allow-cidr: the same server's IPv6 address is not allowed"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /allow-cidr-$who" "$who allow-cidr: the www server got the request"
  check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "$who allow-cidr: echo server received nothing"
  check_violation "$who allow-cidr: TCP to echo is default_deny" "$LOG" '.protocol=="tcp" and .reason_code=="default_deny" and .remote=="'"$LAB_ECHO4"':9"'
  check_violation "$who allow-cidr: UDP to echo is default_deny" "$LOG" '.protocol=="udp" and .reason_code=="default_deny"'
  check_violation "$who allow-cidr: ICMP to echo is default_deny" "$LOG" '.protocol=="icmpv4" and .reason_code=="default_deny" and .remote_ip=="'"$LAB_ECHO4"'"'
  check_eq 0 "$(violations "$LOG" '.remote_ip=="'"$LAB_WWW4"'"')" "$who allow-cidr: no violation for the allowed address"
  check_contains "$(jq -c 'select(.event=="connect_result" and .remote_ip=="'"$LAB_WWW4"'")' "$LOG")" '"status":"ok"' "$who allow-cidr: connect_result ok for the allowed address"
  check_schema "$LOG"

  # Allow domain under default deny.
  run "$who" allow-domain --default-policy deny --allow-domain www.example.test -- sh -c "
    curl -sS --max-time 10 http://$LAB_WWW4/before-dns-$who >/dev/null 2>&1; echo before=\$?
    curl -sS --max-time 10 -o /dev/null -w 'http=%{http_code}\\n' http://www.example.test/allow-domain-$who; echo by_name=\$?
    curl -sS --max-time 10 -4 http://$LAB_WWW4/after-dns-$who >/dev/null 2>&1; echo after=\$?
    getent hosts echo.example.test; echo getent_echo=\$?
    curl -sS --max-time 10 http://$LAB_ECHO4:9/ >/dev/null 2>&1; echo curl_echo=\$?"
  check_contains "$OUT" "before=7" "$who allow-domain: the address is denied before any DNS answer named it"
  check_contains "$OUT" "http=404" "$who allow-domain: the allowed name's server answered (404 for the marker path)"
  check_contains "$OUT" "by_name=0" "$who allow-domain: curl by name exits 0"
  check_contains "$OUT" "after=0" "$who allow-domain: the address is allowed once the relayed answer named it"
  check_contains "$OUT" "getent_echo=2" "$who allow-domain: another name is answered empty"
  check_contains "$OUT" "curl_echo=7" "$who allow-domain: another address is refused"
  www=$(cat "$LAB_WWW_LOG")
  check_not_contains "$www" "/before-dns-$who" "$who allow-domain: the denied request never reached www"
  check_contains "$www" "GET /allow-domain-$who" "$who allow-domain: www got the request by name"
  check_contains "$www" "GET /after-dns-$who" "$who allow-domain: www got the request by address after DNS"
  check_violation "$who allow-domain: TCP before DNS is default_deny" "$LOG" '.protocol=="tcp" and .reason_code=="default_deny" and .remote=="'"$LAB_WWW4"':80" and .names==[]'
  check_violation "$who allow-domain: DNS echo.example.test is default_deny" "$LOG" '.protocol=="dns" and .reason_code=="default_deny" and .remote=="echo.example.test"'
  check_not_contains "$(cat "$LAB_DNS_LOG")" "echo.example.test" "$who allow-domain: dnsmasq never saw the denied name"
  check_contains "$(jq -c 'select(.event=="connect_attempt" and .remote_ip=="'"$LAB_WWW4"'")' "$LOG")" '"names":["www.example.test"]' "$who allow-domain: the connect after DNS carries the name"
  check_schema "$LOG"

  # --allow-domain lets subdomains through; --allow-domain-exact does not.
  run "$who" allow-sub --default-policy deny --allow-domain wild.example.test -- \
    curl -sS --max-time 10 -o /dev/null -w 'http=%{http_code}' "http://s-$who.wild.example.test/allow-sub-$who"
  check_eq 0 "$RC" "$who --allow-domain wild.example.test: s-$who.wild.example.test allowed (exit 0)"
  check_contains "$OUT" "http=404" "$who --allow-domain: the subdomain's server answered (404 for the marker path)"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /allow-sub-$who" "$who --allow-domain: www got the subdomain's request"
  run "$who" allow-exact --default-policy deny --allow-domain-exact wild.example.test -- \
    curl -sS --max-time 10 "http://x-$who.wild.example.test/allow-exact-$who"
  check_eq 6 "$RC" "$who --allow-domain-exact wild.example.test: x-$who.wild.example.test blocked (curl exit 6)"
  check_violation "$who --allow-domain-exact: DNS default_deny for the subdomain" "$LOG" '.protocol=="dns" and .reason_code=="default_deny" and .remote=="x-'"$who"'.wild.example.test"'
  check_not_contains "$(cat "$LAB_DNS_LOG")" "x-$who.wild.example.test" "$who --allow-domain-exact: dnsmasq never saw the subdomain"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/allow-exact-$who" "$who --allow-domain-exact: www never saw the request"
  run "$who" allow-exact2 --default-policy deny --allow-domain-exact "e-$who.wild.example.test" -- sh -c "
    curl -sS --max-time 10 http://e-$who.wild.example.test/exact-ok-$who; echo exact=\$?
    curl -sS --max-time 10 http://y.e-$who.wild.example.test/ >/dev/null 2>&1; echo sub=\$?"
  check_contains "$OUT" "exact=0" "$who --allow-domain-exact e-$who...: the exact name is allowed"
  check_contains "$OUT" "sub=6" "$who --allow-domain-exact e-$who...: its subdomain is not"
  check_schema "$LOG"

  # --fail-on-leak.
  run "$who" leak --fail-on-leak --deny-cidr "$LAB_WWW4/32" -- sh -c \
    "curl -sS --max-time 10 http://$LAB_WWW4/ >/dev/null 2>&1; echo curl=\$?; exit 0"
  check_contains "$OUT" "curl=7" "$who --fail-on-leak: the denied curl failed inside"
  check_eq 1 "$RC" "$who --fail-on-leak: exit 0 becomes 1 after a violation"
  check_contains "$ERR" "--fail-on-leak" "$who --fail-on-leak: the warning names the flag"
  check_eq 1 "$(grep -c -- '--fail-on-leak' <<<"$ERR")" "$who --fail-on-leak: the warning is one line"
  run "$who" noleak-flag --deny-cidr "$LAB_WWW4/32" -- sh -c \
    "curl -sS --max-time 10 http://$LAB_WWW4/ >/dev/null 2>&1; exit 0"
  check_eq 0 "$RC" "$who without --fail-on-leak the same run exits 0"
  run "$who" noleak --fail-on-leak --deny-cidr 203.0.113.99/32 -- \
    curl -sS --max-time 10 -o /dev/null "http://$LAB_WWW4/"
  check_eq 0 "$RC" "$who --fail-on-leak without a violation exits 0"
  check_not_contains "$ERR" "--fail-on-leak" "$who --fail-on-leak without a violation: no warning"
  run "$who" leak-fail --fail-on-leak --deny-cidr "$LAB_WWW4/32" -- sh -c \
    "curl -sS --max-time 10 http://$LAB_WWW4/ >/dev/null 2>&1; exit 3"
  check_eq 3 "$RC" "$who --fail-on-leak keeps a failing command's own status"
done

engine_finish
