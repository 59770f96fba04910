#!/usr/bin/env bash
# Proves the lab's six proxies: each carries one request, the authenticating
# ones reject wrong or missing credentials, and each proxy's log names the
# target it was asked for. Also checks the deliberately broken proxies.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
lab_up

u=$LAB_PROXY_USER:$LAB_PROXY_PASS
page='childflow lab www'
https_proxy_port() { echo "${1##*:}"; }

# proxy_ok KIND LOGVAR TARGET_IN_LOG CURL_ARGS... : one request through a proxy.
proxy_ok() {
  local kind=$1 log=$2 target=$3 out
  shift 3
  out=$(lab_root curl -sS --max-time 10 "$@") || fail "$kind: curl $* failed"
  assert_contains "$out" "$page" "$kind carries a request"
  lab_wait_until 5 "$kind log names $target" grep -q -- "$target" "$log"
  ok "$kind log names the target $target"
}

# HTTP CONNECT proxy, no auth and auth (-p forces a CONNECT tunnel).
proxy_ok "HTTP proxy" "$LAB_PROXY_LOG_HTTP" "CONNECT www.example.test:80" \
  -p -x "http://$LAB_HTTP_PROXY" http://www.example.test/
proxy_ok "HTTP proxy (auth)" "$LAB_PROXY_LOG_HTTP_AUTH" "CONNECT www.example.test:443" \
  -p -x "http://$u@$LAB_HTTP_PROXY_AUTH" --cacert "$LAB_CA" https://www.example.test/

# HTTPS (TLS) proxy, verified with the test CA, no auth and auth.
proxy_ok "HTTPS proxy" "$LAB_PROXY_LOG_HTTPS" "CONNECT www.example.test:443" \
  -x "https://$LAB_PROXY_HOST:$(https_proxy_port "$LAB_HTTPS_PROXY")" --proxy-cacert "$LAB_CA" \
  --cacert "$LAB_CA" https://www.example.test/
proxy_ok "HTTPS proxy (auth)" "$LAB_PROXY_LOG_HTTPS_AUTH" "CONNECT www.example.test:80" \
  -p -x "https://$u@$LAB_PROXY_HOST:$(https_proxy_port "$LAB_HTTPS_PROXY_AUTH")" --proxy-cacert "$LAB_CA" \
  http://www.example.test/

# SOCKS5, name resolved by the proxy (socks5h) and by the client (socks5).
proxy_ok "SOCKS5 proxy" "$LAB_PROXY_LOG_SOCKS" "connected to www.example.test:80" \
  -x "socks5h://$LAB_SOCKS" http://www.example.test/
proxy_ok "SOCKS5 proxy (auth)" "$LAB_PROXY_LOG_SOCKS_AUTH" "connected to $LAB_WWW4:443" \
  -4 -x "socks5://$u@$LAB_SOCKS_AUTH" --cacert "$LAB_CA" https://www.example.test/

# Wrong or missing credentials are rejected and the target is never reached.
before=$(grep -c . "$LAB_WWW_LOG" || true)
reject() {
  local what=$1 rc=0
  shift
  lab_root curl -sS --max-time 10 -o /dev/null "$@" http://www.example.test/never 2>/dev/null || rc=$?
  if ((rc == 0)); then fail "$what: request succeeded"; fi
  ok "$what rejected (curl exit $rc)"
}
reject "HTTP proxy, wrong password" -p -x "http://$LAB_PROXY_USER:wrong@$LAB_HTTP_PROXY_AUTH"
reject "HTTP proxy, no credentials" -p -x "http://$LAB_HTTP_PROXY_AUTH"
reject "HTTPS proxy, wrong password" -p --proxy-cacert "$LAB_CA" \
  -x "https://$LAB_PROXY_USER:wrong@$LAB_PROXY_HOST:$(https_proxy_port "$LAB_HTTPS_PROXY_AUTH")"
reject "SOCKS5 proxy, wrong password" -x "socks5h://$LAB_PROXY_USER:wrong@$LAB_SOCKS_AUTH"
reject "SOCKS5 proxy, no credentials" -x "socks5h://$LAB_SOCKS_AUTH"
reject "HTTPS proxy, untrusted certificate" -p -x "https://$LAB_PROXY_HOST:$(https_proxy_port "$LAB_HTTPS_PROXY")"
out=$(grep -c . "$LAB_WWW_LOG" || true)
assert_eq "$before" "$out" "no rejected request reached the origin server"
assert_not_contains "$(cat "$LAB_WWW_LOG")" "/never" "origin never saw /never"
out=$(cat "$LAB_PROXY_LOG_HTTP_AUTH")
assert_contains "$out" "Request (file descriptor" "tinyproxy logs requests"

# Broken proxies: each misbehaves as documented.
rc=0
lab_root curl -sS --max-time 5 -p -x "http://$LAB_BAD_PROXY_CLOSE" http://www.example.test/ 2>/dev/null || rc=$?
[[ $rc -ne 0 && $rc -ne 28 ]] || fail "closing proxy: curl exit $rc"
ok "proxy closing mid-handshake fails fast (curl exit $rc)"
rc=0
lab_root curl -sS --max-time 5 -p -x "http://$LAB_BAD_PROXY_GARBAGE" http://www.example.test/ 2>/dev/null || rc=$?
[[ $rc -ne 0 && $rc -ne 28 ]] || fail "garbage proxy: curl exit $rc"
ok "proxy answering garbage fails (curl exit $rc)"
rc=0
lab_root curl -sS --max-time 1 -x "socks5h://$LAB_BAD_PROXY_SILENT" http://www.example.test/ 2>/dev/null || rc=$?
assert_eq 28 "$rc" "silent proxy times out"
out=$(cat "$LAB_BAD_PROXY_LOG")
for mode in close garbage silent; do
  assert_contains "$out" "badproxy $mode $LAB_HOST4" "bad proxy log shows the $mode connection"
done
