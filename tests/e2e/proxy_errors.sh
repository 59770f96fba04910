#!/usr/bin/env bash
# Upstream proxy failures end to end (docs/proxy.md, issue 4 part 2): when the
# proxy refuses, fails authentication, closes mid-handshake, answers garbage,
# presents an untrusted certificate (or one for another name, even with
# --proxy-insecure) or never answers, only that child
# connection fails: the child gets a reset (curl exit 7, at once except for
# the silent proxy, which fails after the 15 s handshake timeout), the flow
# log's connect_result says precisely why, the destination never sees a
# request, and the engine keeps serving the tree (DNS and direct UDP in the
# same run, a good proxy in the next run). As root and as the lab user.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
POLICY_PROBE_TAG=proxy
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

since() { tail -n "+$(($2 + 1))" "$1"; }
https_port() { echo "${1##*:}"; }
CRED=(-U "$LAB_PROXY_USER" -P "$LAB_PROXY_PASS")
BAD=(-U "$LAB_PROXY_USER" -P wrong)

TIMED='s=$(date +%s%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo "rc=$rc ms=$(((e-s)/1000000))"'

# fails WHO NAME MAX_MS ERROR_TEXT PORT CHILDFLOW_PROXY_ARGS... : one request
# to www:PORT through a failing proxy, then DNS and direct UDP in the same
# tree. Checks curl exit 7 within MAX_MS, the connect_result error, that www
# saw nothing, and that the engine still served the rest.
fails() {
  local who=$1 name=$2 max_ms=$3 want=$4 port=$5 www0 line res
  shift 5
  www0=$(lines "$LAB_WWW_LOG")
  run "$who" "$name" "$@" -- sh -c "
    sh -c '$TIMED' t curl -sS --noproxy '*' --max-time 40 -4 http://www.example.test:$port/proxy-error-$name-$who
    getent ahostsv4 echo.example.test | head -1
    $PY $udp_py $LAB_ECHO4 7"
  line=$(grep '^rc=' <<<"$OUT" || true)
  if [[ $line =~ rc=([0-9]+)\ ms=([0-9]+) ]]; then
    check_eq 7 "${BASH_REMATCH[1]}" "$who $name: curl gets a reset (exit 7)"
    check_le "${BASH_REMATCH[2]}" "$max_ms" "$who $name: curl fails within $max_ms ms"
  else
    check_fail "$who $name: no timing line in [$OUT] (childflow exit $RC, stderr: ${ERR:0:500})"
  fi
  check_eq 0 "$RC" "$who $name: childflow exits with the tree's status (0) and does not hang"
  res=$(jq -c 'select(.event=="connect_result" and .remote_addr=="'"$LAB_WWW4:$port"'")' "$LOG")
  check_contains "$res" '"status":"error"' "$who $name: connect_result status error"
  check_contains "$res" '"via_proxy":true' "$who $name: connect_result via_proxy true"
  check_contains "$res" "$want" "$who $name: connect_result error names the cause"
  check_not_contains "$(since "$LAB_WWW_LOG" "$www0")" "/proxy-error-$name-$who" "$who $name: www never saw the request"
  check_contains "$OUT" "$LAB_ECHO4" "$who $name: DNS still answered in the same tree"
  check_contains "$OUT" "reply 21" "$who $name: direct UDP echo still works in the same tree"
  check_schema "$LOG"
}

for who in root user; do
  echo "# --- as $who"
  # Wrong and missing credentials.
  fails "$who" http-wrong-pass 2000 '"error":"proxy: authentication failed: HTTP/1.' 80 \
    -p "http://$LAB_HTTP_PROXY_AUTH" "${BAD[@]}"
  fails "$who" http-no-creds 2000 '"error":"proxy: authentication failed: HTTP/1.' 80 \
    -p "http://$LAB_HTTP_PROXY_AUTH"
  fails "$who" https-wrong-pass 2000 '"error":"proxy: authentication failed: HTTP/1.' 80 \
    -p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY_AUTH")" --proxy-ca "$LAB_CA" "${BAD[@]}"
  fails "$who" socks-wrong-pass 2000 '"error":"proxy: authentication failed (SOCKS5 username/password rejected)' 80 \
    -p "socks5://$LAB_SOCKS_AUTH" "${BAD[@]}"
  fails "$who" socks-no-creds 2000 '"error":"proxy: SOCKS5 server ' 80 \
    -p "socks5://$LAB_SOCKS_AUTH"
  # The proxy refuses the destination (nothing listens on www:81).
  fails "$who" http-connect-refused 2000 '"error":"proxy: CONNECT refused: HTTP/1.' 81 \
    -p "http://$LAB_HTTP_PROXY"
  fails "$who" socks-connect-refused 2000 '"error":"proxy: SOCKS5 CONNECT failed: ' 81 \
    -p "socks5://$LAB_SOCKS_AUTH" "${CRED[@]}"
  # Broken proxies: close mid-handshake, garbage.
  b0=$(lines "$LAB_BAD_PROXY_LOG")
  fails "$who" close-http 2000 '"error":"proxy closed the connection during the handshake"' 80 \
    -p "http://$LAB_BAD_PROXY_CLOSE"
  fails "$who" close-socks 2000 '"error":"proxy closed the connection during the handshake"' 80 \
    -p "socks5://$LAB_BAD_PROXY_CLOSE"
  fails "$who" garbage-http 2000 '"error":"proxy: not an HTTP reply to CONNECT' 80 \
    -p "http://$LAB_BAD_PROXY_GARBAGE"
  fails "$who" garbage-socks 2000 '"error":"proxy: not a SOCKS5 reply' 80 \
    -p "socks5://$LAB_BAD_PROXY_GARBAGE"
  bad=$(since "$LAB_BAD_PROXY_LOG" "$b0")
  check_contains "$bad" "badproxy close $LAB_HOST4" "$who: the closing proxy was reached directly from the lab host"
  check_contains "$bad" "badproxy garbage $LAB_HOST4" "$who: the garbage proxy was reached directly from the lab host"
  # An HTTPS proxy whose certificate is not trusted (no --proxy-ca).
  fails "$who" https-untrusted 2000 '"error":"proxy: TLS certificate of proxy.example.test rejected' 80 \
    -p "https://$LAB_PROXY_HOST:$(https_port "$LAB_HTTPS_PROXY")"
  # Nothing listens on the proxy's port: the engine's connect to it fails.
  fails "$who" proxy-port-closed 2000 "\"error\":\"proxy http://$LAB_PROXY4:81: connection refused\"" 80 \
    -p "http://$LAB_PROXY4:81"
  # A proxy name that does not resolve stops the run before anything starts.
  run "$who" proxy-unresolvable -p http://noproxy.example.test:3128 -- touch "$LAB_DIR/out-$who/ran"
  check_eq 1 "$RC" "$who: an unresolvable proxy name: exit 1"
  check_contains "$ERR" "childflow: error: proxy: cannot resolve proxy host \`noproxy.example.test\`" "$who: an unresolvable proxy name is named"
  check_eq "" "$(ls "$LAB_DIR/out-$who/ran" 2>/dev/null)" "$who: an unresolvable proxy name: the command never ran"
  # After all that, a good proxy in the next run works.
  run "$who" after-good -p "http://$LAB_HTTP_PROXY_AUTH" "${CRED[@]}" -- \
    curl -sS --noproxy '*' --max-time 20 http://www.example.test/
  check_eq 0 "$RC" "$who: the next run through a good proxy exits 0"
  check_contains "$OUT" "childflow lab www" "$who: the next run through a good proxy gets the page"
done

# --proxy-insecure still checks the name: the lab proxy's certificate does
# not name badname.example (which the lab host's own hosts file maps to the
# proxy for this check only; the file is restored before engine_finish).
lab_hosts=/etc/netns/$LAB_NS/hosts
cp "$lab_hosts" "$LAB_DIR/lab-hosts.orig"
echo "$LAB_PROXY4 badname.example" >>"$lab_hosts"
for who in root user; do
  fails "$who" https-insecure-wrong-name 2000 '"error":"proxy: TLS certificate of badname.example rejected: ' 80 \
    -p "https://badname.example:$(https_port "$LAB_HTTPS_PROXY")" --proxy-insecure
  fails "$who" https-ca-wrong-name 2000 '"error":"proxy: TLS certificate of badname.example rejected: ' 80 \
    -p "https://badname.example:$(https_port "$LAB_HTTPS_PROXY")" --proxy-ca "$LAB_CA"
done
cat "$LAB_DIR/lab-hosts.orig" >"$lab_hosts"

# A proxy that never answers: the handshake times out after 15 s; meanwhile
# the engine serves the tree (DNS, direct UDP) at once.
who=root
run "$who" silent -p "http://$LAB_BAD_PROXY_SILENT" -- sh -c "
  sh -c '$TIMED' t curl -sS --noproxy '*' --max-time 40 -4 http://$LAB_WWW4/proxy-silent >$LAB_DIR/out-root/silent.out &
  s=\$(date +%s%N)
  getent ahostsv4 echo.example.test | head -1
  $PY $udp_py $LAB_ECHO4 7
  e=\$(date +%s%N); echo during_ms=\$(((e-s)/1000000))
  wait; cat $LAB_DIR/out-root/silent.out"
line=$(grep '^rc=' <<<"$OUT" || true)
if [[ $line =~ rc=([0-9]+)\ ms=([0-9]+) ]]; then
  check_eq 7 "${BASH_REMATCH[1]}" "silent proxy: curl gets a reset (exit 7)"
  check_le 14000 "${BASH_REMATCH[2]}" "silent proxy: not before the 15 s handshake timeout (ms)"
  check_le "${BASH_REMATCH[2]}" 20000 "silent proxy: soon after the 15 s handshake timeout (ms)"
else
  check_fail "silent proxy: no timing line in [$OUT] (childflow exit $RC, stderr: ${ERR:0:500})"
fi
check_contains "$OUT" "$LAB_ECHO4" "silent proxy: DNS answered while the handshake hangs"
check_contains "$OUT" "reply 21" "silent proxy: UDP echo answered while the handshake hangs"
if [[ $OUT =~ during_ms=([0-9]+) ]]; then
  check_le "${BASH_REMATCH[1]}" 3000 "silent proxy: DNS + UDP took little time while the handshake hangs (ms)"
else
  check_fail "silent proxy: no during_ms in [$OUT]"
fi
res=$(jq -c 'select(.event=="connect_result" and .remote_addr=="'"$LAB_WWW4"':80")' "$LOG")
check_contains "$res" "\"error\":\"proxy http://$LAB_BAD_PROXY_SILENT: handshake timed out\"" "silent proxy: connect_result says the handshake timed out"
check_contains "$(cat "$LAB_BAD_PROXY_LOG")" "badproxy silent $LAB_HOST4" "silent proxy: it was reached"
check_not_contains "$(cat "$LAB_WWW_LOG")" "/proxy-silent" "silent proxy: www never saw the request"
check_schema "$LOG"

engine_finish
