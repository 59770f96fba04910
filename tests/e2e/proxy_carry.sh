#!/usr/bin/env bash
# Upstream proxies end to end (docs/proxy.md, issue 4 part 2): every lab
# proxy kind -- HTTP CONNECT, HTTPS (TLS) and SOCKS5, each without and with
# credentials -- carries plain HTTP and HTTPS of a tool that ignores proxy
# variables (curl --noproxy '*', no proxy variables set), as root and as the
# unprivileged lab user.
#
# Proof that the traffic went through the proxy and not direct:
# - the www server's /peer answer is an address of the inet namespace where
#   the proxies run (the kernel picks its source address for the proxy's
#   outgoing connection), never the lab host's (198.51.100.2 / 2001:db8:1::2),
#   which is what a direct connection from childflow's engine shows;
# - the proxy's own log shows the CONNECT (tinyproxy) or the connect
#   (microsocks) for the destination the child connected to: the address,
#   since childflow asks the proxy for the IP, not the name;
# - the flow log has connect_attempt/connect_result with via_proxy true and
#   the child's destination (not the proxy) as remote_addr.
# Also: the HTTPS proxy with --proxy-insecure instead of --proxy-ca, IPv6
# destinations through the proxy, and several connections at once.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

# since FILE N : the lines of FILE after its first N.
since() { tail -n "+$(($2 + 1))" "$1"; }

https_port() { echo "${1##*:}"; }
CRED=(-U "$LAB_PROXY_USER" -P "$LAB_PROXY_PASS")

# The command tree: no proxy variables, curl told to ignore them anyway.
# Prints "tag=PEER" per request (the address the www server saw).
TREE="unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY all_proxy no_proxy NO_PROXY
  echo http4=\$(curl -sS --noproxy '*' --max-time 20 -4 http://www.example.test/peer)
  echo https4=\$(curl -sS --noproxy '*' --max-time 20 -4 --cacert $LAB_CA https://www.example.test/peer)
  echo http6=\$(curl -sS --noproxy '*' --max-time 20 -6 http://www.example.test/peer)
  echo page=\$(curl -sS --noproxy '*' --max-time 20 --cacert $LAB_CA https://www.example.test/ | grep -c 'childflow lab www')"

# carry WHO KIND PROXYLOG LOGSTYLE CHILDFLOW_PROXY_ARGS...
carry() {
  local who=$1 kind=$2 plog=$3 style=$4 n0 new peer
  shift 4
  n0=$(lines "$plog")
  run "$who" "carry-$kind" "$@" -- sh -c "$TREE"
  check_eq 0 "$RC" "$who $kind: the run exits 0"
  [[ $RC == 0 ]] || echo "$ERR" | tail -5 >&2
  # /peer answers "<ip> <port>": the address the www server saw.
  for tag in http4 https4; do
    peer=$(sed -n "s/^$tag=//p" <<<"$OUT")
    check_match "$peer" '^203\.0\.113\.[0-9]+$' "$who $kind: $tag request reached www from inside the inet namespace (the proxy)"
    check_not_contains "$peer" "$LAB_HOST4" "$who $kind: $tag not direct from the lab host"
  done
  peer=$(sed -n "s/^http6=//p" <<<"$OUT")
  check_match "$peer" '^2001:db8:2::[0-9a-f]+$' "$who $kind: IPv6 destination reached through the proxy (peer inside the inet namespace)"
  check_not_contains "$peer" "$LAB_HOST6" "$who $kind: IPv6 request not direct from the lab host"
  check_contains "$OUT" "page=1" "$who $kind: HTTPS page by name through the proxy"
  new=$(since "$plog" "$n0")
  case $style in
    tinyproxy)
      check_contains "$new" "CONNECT $LAB_WWW4:80 " "$who $kind: proxy log shows CONNECT $LAB_WWW4:80"
      check_contains "$new" "CONNECT $LAB_WWW4:443 " "$who $kind: proxy log shows CONNECT $LAB_WWW4:443"
      check_contains "$new" "CONNECT [$LAB_WWW6]:80 " "$who $kind: proxy log shows CONNECT [$LAB_WWW6]:80"
      ;;
    microsocks)
      check_contains "$new" "connected to $LAB_WWW4:80" "$who $kind: proxy log shows the connect to $LAB_WWW4:80"
      check_contains "$new" "connected to $LAB_WWW4:443" "$who $kind: proxy log shows the connect to $LAB_WWW4:443"
      check_contains "$new" "$LAB_WWW6" "$who $kind: proxy log shows the IPv6 destination"
      ;;
  esac
  local att res
  att=$(jq -c 'select(.event=="connect_attempt" and .remote_addr=="'"$LAB_WWW4"':443")' "$LOG")
  res=$(jq -c 'select(.event=="connect_result" and .remote_addr=="'"$LAB_WWW4"':443")' "$LOG")
  check_contains "$att" '"via_proxy":true' "$who $kind: connect_attempt via_proxy true for the child's destination"
  check_contains "$res" '"status":"ok"' "$who $kind: connect_result ok"
  check_contains "$res" '"via_proxy":true' "$who $kind: connect_result via_proxy true"
  check_eq 0 "$(jq -c 'select(.event=="connect_attempt" and .via_proxy==false)' "$LOG" | grep -c . || true)" "$who $kind: no direct TCP connection"
  check_eq 0 "$(jq -c 'select((.remote_ip // "")=="'"$LAB_PROXY4"'")' "$LOG" | grep -c . || true)" "$who $kind: the proxy itself is not a flow of the tree"
  check_schema "$LOG"
}

for who in root user; do
  echo "# --- as $who"
  www0=$(lines "$LAB_WWW_LOG")
  carry "$who" http "$LAB_PROXY_LOG_HTTP" tinyproxy -p "http://$LAB_HTTP_PROXY"
  carry "$who" http-auth "$LAB_PROXY_LOG_HTTP_AUTH" tinyproxy -p "http://$LAB_HTTP_PROXY_AUTH" "${CRED[@]}"
  carry "$who" https "$LAB_PROXY_LOG_HTTPS" tinyproxy \
    -p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY")" --proxy-ca "$LAB_CA"
  carry "$who" https-auth "$LAB_PROXY_LOG_HTTPS_AUTH" tinyproxy \
    -p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY_AUTH")" --proxy-ca "$LAB_CA" "${CRED[@]}"
  carry "$who" https-insecure "$LAB_PROXY_LOG_HTTPS" tinyproxy \
    -p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY")" --proxy-insecure
  carry "$who" socks "$LAB_PROXY_LOG_SOCKS" microsocks -p "socks5://$LAB_SOCKS"
  carry "$who" socks-auth "$LAB_PROXY_LOG_SOCKS_AUTH" microsocks -p "socks5://$LAB_SOCKS_AUTH" "${CRED[@]}"
  # Nothing reached www from the lab host directly during all of that.
  check_not_contains "$(since "$LAB_WWW_LOG" "$www0")" " $LAB_HOST4 " "$who: www saw no direct connection from the lab host"
  check_not_contains "$(since "$LAB_WWW_LOG" "$www0")" " $LAB_HOST6 " "$who: www saw no direct IPv6 connection from the lab host"
done

# Many connections at once through each proxy kind (root): each carried.
for kind in http https socks; do
  case $kind in
    http) args=(-p "http://$LAB_HTTP_PROXY") ;;
    https) args=(-p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY")" --proxy-ca "$LAB_CA") ;;
    socks) args=(-p "socks5://$LAB_SOCKS") ;;
  esac
  run root "many-$kind" "${args[@]}" -- sh -c "
    for i in \$(seq 1 40); do curl -sS --noproxy '*' --max-time 30 -4 http://www.example.test/peer & done | grep -c '^203[.]0[.]113[.]'; wait"
  check_eq 40 "$(tail -1 <<<"$OUT")" "root $kind: 40 concurrent connections all carried by the proxy"
done

engine_finish
