#!/usr/bin/env bash
# --proxy-only end to end (docs/policy.md and docs/proxy.md, issue 4 parts
# 1-2), as root and as the lab user, with an HTTP and an HTTPS proxy:
# - a direct UDP send (to the echo server, and a DNS query straight to the
#   lab resolver, bypassing the gateway) is denied with proxy_only: the child
#   gets ICMP administratively prohibited, the servers see nothing;
# - ping (IPv4 and IPv6) is denied with proxy_only (icmpv4 / icmpv6);
# - DNS queries to the gateway are NOT denied: the engine relays them to the
#   configured resolver itself (decision, docs/policy.md), so names resolve
#   and TCP by name works through the proxy;
# - --offline with --proxy: offline wins, the proxy is never asked;
# - the other rules still apply to proxied TCP: a --deny-cidr destination is
#   refused before the proxy is ever asked (the proxy's log shows nothing).
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
POLICY_PROBE_TAG=proxy-only
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

since() { tail -n "+$(($2 + 1))" "$1"; }
https_port() { echo "${1##*:}"; }

for who in root user; do
  for kind in http https; do
    echo "# --- as $who, $kind proxy"
    case $kind in
      http) args=(-p "http://$LAB_HTTP_PROXY"); plog=$LAB_PROXY_LOG_HTTP ;;
      https) args=(-p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY")" --proxy-ca "$LAB_CA"); plog=$LAB_PROXY_LOG_HTTPS ;;
    esac
    tag="po-$kind-$who"
    echo0=$(lines "$LAB_ECHO_LOG"); p0=$(lines "$plog")
    run "$who" "proxy-only-$kind" "${args[@]}" --proxy-only -- sh -c "
      $PY $udp_py $LAB_ECHO4 7
      $PY $udp_py $LAB_ECHO6 7
      dig +time=2 +tries=1 @$LAB_DNS4 direct-$tag.wild.example.test >/dev/null 2>&1; echo dig=\$?
      ping -c1 -W2 $LAB_WWW4 2>&1; echo ping4=\$?
      ping -6 -c1 -W2 $LAB_WWW6 >/dev/null 2>&1; echo ping6=\$?
      getent ahostsv4 gw-$tag.wild.example.test | head -1
      curl -sS --noproxy '*' --max-time 20 -4 http://www.example.test/ | grep -c 'childflow lab www'"
    check_eq 1 "$(grep -c EHOSTUNREACH <<<"$OUT" || true)" "$who $kind: direct UDP (v4) gets admin prohibited"
    check_contains "$OUT" "EACCES" "$who $kind: direct UDP (v6) gets admin prohibited (EACCES)"
    check_contains "$OUT" "dig=9" "$who $kind: a DNS query straight to the lab resolver gets no answer (dig exit 9)"
    check_contains "$OUT" "Packet filtered" "$who $kind: ping sees Packet filtered"
    check_contains "$OUT" "ping4=1" "$who $kind: ping fails"
    check_contains "$OUT" "ping6=1" "$who $kind: ping -6 fails"
    check_contains "$OUT" "$LAB_WWW4" "$who $kind: a DNS query to the gateway is relayed (exempt from --proxy-only)"
    check_eq 1 "$(tail -1 <<<"$OUT")" "$who $kind: TCP by name works through the proxy"
    check_violation "$who $kind: UDP v4 proxy_only" "$LOG" '.protocol=="udp" and .reason_code=="proxy_only" and .control=="--proxy-only" and .remote=="'"$LAB_ECHO4"':7"'
    check_violation "$who $kind: UDP v6 proxy_only" "$LOG" '.protocol=="udp" and .reason_code=="proxy_only" and .remote=="['"$LAB_ECHO6"']:7"'
    check_violation "$who $kind: direct DNS/UDP proxy_only" "$LOG" '.protocol=="udp" and .reason_code=="proxy_only" and .remote=="'"$LAB_DNS4"':53"'
    check_violation "$who $kind: ICMPv4 proxy_only" "$LOG" '.protocol=="icmpv4" and .reason_code=="proxy_only" and .remote_ip=="'"$LAB_WWW4"'"'
    check_violation "$who $kind: ICMPv6 proxy_only" "$LOG" '.protocol=="icmpv6" and .reason_code=="proxy_only" and .remote_ip=="'"$LAB_WWW6"'"'
    check_eq 0 "$(violations "$LOG" '.protocol=="dns" or .protocol=="tcp"')" "$who $kind: no DNS or TCP violation"
    check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "$who $kind: echo server received nothing"
    dns=$(cat "$LAB_DNS_LOG")
    check_not_contains "$dns" "direct-$tag" "$who $kind: the lab resolver never saw the direct query"
    check_contains "$dns" "gw-$tag" "$who $kind: the lab resolver saw the gateway's relayed query"
    check_contains "$(since "$plog" "$p0")" "CONNECT $LAB_WWW4:80 " "$who $kind: the proxy carried the TCP connection"
    check_contains "$(jq -c 'select(.event=="connect_result" and .remote_addr=="'"$LAB_WWW4"':80")' "$LOG")" '"via_proxy":true' "$who $kind: connect_result via_proxy"
    check_schema "$LOG"
  done

  # The other rules still apply to proxied TCP, before the proxy is asked.
  p0=$(lines "$LAB_PROXY_LOG_HTTP")
  run "$who" proxy-deny -p "http://$LAB_HTTP_PROXY" --proxy-only --deny-cidr "$LAB_WWW4/32" -- \
    curl -sS --noproxy '*' --max-time 20 -4 http://www.example.test/
  check_eq 7 "$RC" "$who --proxy-only --deny-cidr: the denied destination is refused (curl exit 7)"
  check_violation "$who --proxy-only --deny-cidr: deny_cidr" "$LOG" '.protocol=="tcp" and .reason_code=="deny_cidr"'
  check_not_contains "$(since "$LAB_PROXY_LOG_HTTP" "$p0")" "CONNECT $LAB_WWW4" "$who --proxy-only --deny-cidr: the proxy was never asked"
  check_contains "$(jq -c 'select(.event=="connect_result")' "$LOG")" '"error":"denied by policy"' "$who --proxy-only --deny-cidr: connect_result denied by policy"
  check_schema "$LOG"
done

# --offline with --proxy: offline wins, the proxy is never asked, and the
# summary says so.
p0=$(lines "$LAB_PROXY_LOG_HTTP")
run root offline-proxy --offline -p "http://$LAB_HTTP_PROXY" --summary -- \
  curl -sS --noproxy '*' --max-time 20 -4 "http://$LAB_WWW4/"
check_eq 7 "$RC" "--offline with --proxy: curl refused"
check_violation "--offline with --proxy: offline violation" "$LOG" '.protocol=="tcp" and .reason_code=="offline"'
check_contains "$ERR" "--offline (wins over --proxy)" "--offline with --proxy: the summary says offline wins"
check_eq "$p0" "$(lines "$LAB_PROXY_LOG_HTTP")" "--offline with --proxy: the proxy saw nothing"

engine_finish
