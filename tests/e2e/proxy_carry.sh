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
#
# The password sources (docs/proxy.md, "Credentials"): while a run with -P
# or --proxy-password= is going on, /proc/PID/cmdline of childflow and of the
# tree's init stub shows x's instead of the password, and so does the tree's
# own /proc/1/cmdline; --proxy-password-file and CHILDFLOW_PROXY_PASSWORD
# authenticate against the HTTP and SOCKS5 proxies, the variable's bytes are
# overwritten in /proc/PID/environ and the tree does not inherit it; a wrong
# password from either source is refused by the proxy; -P wins over the
# variable, the file too.
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

# --- The password out of sight (docs/proxy.md, "Credentials") --------------
# secret_run WHO NAME [VAR=VALUE...] -- CHILDFLOW_ARGS... : runs childflow in
# the background with a tree that records its init's /proc/1/cmdline (the
# sandbox's init stub, a clone of childflow) and its own environment, then
# waits (at most 10 s) for this shell to read /proc while childflow runs,
# then fetches /peer through the proxy. Sets RC, OUT, ERR, LOG, PROCS (pid
# and /proc/PID/cmdline of each process running the childflow binary whose
# command line has the tag, i.e. childflow and the init stub), ENVIRON (their
# CHILDFLOW_* environment entries), INIT and TREE_ENV.
SECRET_TAG=cf-secret-probe
# The binary itself: lab_up points $CHILDFLOW at a wrapper that execs it.
CF_EXE=$(readlink -f "${CHILDFLOW_REAL:-$CHILDFLOW}")
secret_run() {
  local who=$1 name=$2 envs=() sync tree bg i p exe cmd
  shift 2
  while [[ $1 != -- ]]; do
    envs+=("$1")
    shift
  done
  shift
  sync=$LAB_DIR/out-$who/$name.sync
  LOG=$LAB_DIR/out-$who/$name.jsonl
  rm -f "$sync".*
  tree="tr '\\000' ' ' </proc/1/cmdline >$sync.init; env >$sync.env; : >$sync.ready
    i=0; while [ ! -e $sync.go ] && [ \$i -lt 200 ]; do sleep 0.05; i=\$((i + 1)); done
    curl -sS --noproxy '*' --max-time 20 -4 http://www.example.test/peer"
  as "$who" "${envs[@]}" timeout -k 5 "$CF_TIMEOUT" "$CHILDFLOW" --flow-log "$LOG" "$@" \
    -- sh -c "$tree" "$SECRET_TAG" >"$sync.out" 2>"$sync.err" &
  bg=$!
  for ((i = 0; i < 400; i++)); do
    [[ -e $sync.ready ]] && break
    sleep 0.05
  done
  PROCS="" ENVIRON=""
  for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    [[ $exe == "$CF_EXE" ]] || continue
    cmd=$(tr '\0\n' '  ' <"$p/cmdline" 2>/dev/null) || continue
    [[ $cmd == *"$SECRET_TAG"* ]] || continue
    PROCS+="${p#/proc/}: $cmd"$'\n'
    ENVIRON+="$(tr '\0' '\n' <"$p/environ" 2>/dev/null | grep '^CHILDFLOW_' || true)"$'\n'
  done
  : >"$sync.go"
  RC=0
  wait "$bg" || RC=$?
  OUT=$(cat "$sync.out")
  ERR=$(cat "$sync.err")
  INIT=$(cat "$sync.init" 2>/dev/null || true)
  TREE_ENV=$(cat "$sync.env" 2>/dev/null || true)
  if ((RC == 124 || RC == 137)); then check_fail "$who $name: childflow hung (exit $RC): ${ERR:0:500}"; fi
}

# secret_hidden WHO NAME : the password is nowhere a process can read it.
secret_hidden() {
  local who=$1 name=$2
  check_match "$PROCS" "^[0-9]+: .*$SECRET_TAG" "$who $name: childflow's processes seen while it ran"
  check_match "$PROCS" $'\n[0-9]+: .*\n' "$who $name: childflow and the tree's init stub both seen ($(grep -c . <<<"$PROCS") processes)"
  check_not_contains "$PROCS" "$LAB_PROXY_PASS" "$who $name: no password in /proc/PID/cmdline of childflow or its init"
  check_not_contains "$ENVIRON" "$LAB_PROXY_PASS" "$who $name: no password in /proc/PID/environ of childflow or its init"
  check_contains "$INIT" "$SECRET_TAG" "$who $name: the tree read its init's cmdline"
  check_not_contains "$INIT" "$LAB_PROXY_PASS" "$who $name: the tree's /proc/1/cmdline has no password"
  check_contains "$TREE_ENV" "PATH=" "$who $name: the tree recorded its environment"
  check_not_contains "$TREE_ENV" "CHILDFLOW_PROXY_PASSWORD" "$who $name: the tree does not inherit CHILDFLOW_PROXY_PASSWORD"
}

# secret_carried WHO NAME : the run authenticated and the proxy carried it.
secret_carried() {
  local who=$1 name=$2 res
  check_eq 0 "$RC" "$who $name: the run exits 0"
  [[ $RC == 0 ]] || echo "$ERR" | tail -5 >&2
  check_match "$OUT" '^203\.0\.113\.[0-9]+$' "$who $name: the request reached www through the proxy (peer $OUT)"
  res=$(jq -c 'select(.event=="connect_result" and .remote_addr=="'"$LAB_WWW4"':80")' "$LOG")
  check_contains "$res" '"status":"ok"' "$who $name: connect_result ok"
  check_contains "$res" '"via_proxy":true' "$who $name: connect_result via_proxy true"
}

# secret_refused WHO NAME : a wrong password fails the connection.
secret_refused() {
  local who=$1 name=$2 res
  check_match "$RC" '^[1-9][0-9]*$' "$who $name: the run fails (curl's exit $RC)"
  res=$(jq -c 'select(.event=="connect_result" and .remote_addr=="'"$LAB_WWW4"':80")' "$LOG")
  check_contains "$res" 'authentication failed' "$who $name: connect_result says authentication failed"
}

HTTP_AUTH=(-p "http://$LAB_HTTP_PROXY_AUTH" -U "$LAB_PROXY_USER")
SOCKS_AUTH=(-p "socks5://$LAB_SOCKS_AUTH" -U "$LAB_PROXY_USER")
for who in root user; do
  echo "# --- password sources as $who"
  owner=$([[ $who == user ]] && echo "$LAB_USER" || echo root)
  pw=$LAB_DIR/out-$who/proxy.pw
  printf '%s\n' "$LAB_PROXY_PASS" >"$pw"
  chown "$owner" "$pw"
  chmod 0600 "$pw"

  secret_run "$who" secret-P -- "${HTTP_AUTH[@]}" -P "$LAB_PROXY_PASS"
  secret_carried "$who" secret-P
  secret_hidden "$who" secret-P
  check_contains "$PROCS" " -P xxxxxxx " "$who secret-P: -P's value overwritten in place"

  secret_run "$who" secret-long -- "${SOCKS_AUTH[@]}" "--proxy-password=$LAB_PROXY_PASS"
  secret_carried "$who" secret-long
  secret_hidden "$who" secret-long
  check_contains "$PROCS" " --proxy-password=xxxxxxx " "$who secret-long: --proxy-password='s value overwritten in place"

  secret_run "$who" secret-file -- "${HTTP_AUTH[@]}" --proxy-password-file "$pw"
  secret_carried "$who" secret-file
  secret_hidden "$who" secret-file
  secret_run "$who" secret-file-socks -- "${SOCKS_AUTH[@]}" --proxy-password-file "$pw"
  secret_carried "$who" secret-file-socks

  secret_run "$who" secret-env "CHILDFLOW_PROXY_PASSWORD=$LAB_PROXY_PASS" -- "${SOCKS_AUTH[@]}"
  secret_carried "$who" secret-env
  secret_hidden "$who" secret-env
  check_contains "$ENVIRON" "CHILDFLOW_PROXY_PASSWORD=xxxxxxx" "$who secret-env: the variable's bytes overwritten in place"
  secret_run "$who" secret-env-http "CHILDFLOW_PROXY_PASSWORD=$LAB_PROXY_PASS" -- "${HTTP_AUTH[@]}"
  secret_carried "$who" secret-env-http
done

# The password given is the password used: a wrong one from each source is
# refused by the proxy, and -P wins over the variable.
printf 'wrong\n' >"$LAB_DIR/out-root/wrong.pw"
secret_run root secret-file-wrong -- "${HTTP_AUTH[@]}" --proxy-password-file "$LAB_DIR/out-root/wrong.pw"
secret_refused root secret-file-wrong
secret_run root secret-env-wrong CHILDFLOW_PROXY_PASSWORD=wrong -- "${SOCKS_AUTH[@]}"
secret_refused root secret-env-wrong
secret_run root secret-env-under-P CHILDFLOW_PROXY_PASSWORD=wrong -- "${HTTP_AUTH[@]}" -P "$LAB_PROXY_PASS"
secret_carried root secret-env-under-P
secret_run root secret-file-over-env CHILDFLOW_PROXY_PASSWORD=wrong -- "${SOCKS_AUTH[@]}" --proxy-password-file "$LAB_DIR/out-root/proxy.pw"
secret_carried root secret-file-over-env

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
