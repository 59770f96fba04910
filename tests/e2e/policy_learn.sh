#!/usr/bin/env bash
# --learn FILE (docs/policy.md, "Learning a profile"; issue 14 part 3), as
# root and as the unprivileged lab user:
#
# - learn: a run fetches www.example.test by name and sends a UDP datagram
#   to an address it never resolved; a second run, merged into the same
#   file, fetches v4only.example.test over HTTPS with `curl --resolve` (so
#   only its ClientHello names it). The profile is default-deny, lists the
#   names in allow_domains and the unnamed addresses in allow_cidrs, sorted,
#   each with its `# N flows`; a third run adds to the counts.
# - replay: the same commands under `--profile FILE` work, with no
#   violation, and the servers' logs show them.
# - outside the profile: another name (DNS denied: the resolver's log has no
#   query), another name sent to an allowed address (reset: the web
#   server's log has no request) and another address (the echo server's log
#   has nothing) are denied.
# - the run's DNS and proxy settings are in the profile, never a password;
#   replaying a proxied profile goes through the proxy.
# - a run killed with SIGKILL writes nothing; a profile that cannot be
#   written makes the run exit 1; a file that is not a profile is refused
#   with exit 2 and left as it was.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"

W=$LAB_WWW4
CURL="curl -sS --max-time 10 --cacert $LAB_CA"

# toml FILE PYTHON_EXPR: the expression's value with `p` the parsed profile.
toml() {
  $PY -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb")); print(eval(sys.argv[2]))' "$1" "$2"
}

for who in root user; do
  echo "# --- as $who"
  P=$LAB_DIR/out-$who/learnt.toml
  rm -f "$P"

  # Learn, in two runs merged into one file.
  run "$who" learn1 --learn "$P" -- sh -c "
    $CURL -o /dev/null -w 'http=%{http_code}\\n' http://www.example.test/learn-dns-$who; echo dns=\$?
    $PY $udp_py $LAB_ECHO4 7"
  check_eq 0 "$RC" "[$who] the learning run exits 0"
  check_contains "$OUT" "http=404" "[$who] ... and fetched by name (the server's 404 for the marker path)"
  check_contains "$OUT" "reply" "[$who] ... and its UDP datagram was echoed"
  check_contains "$ERR" "childflow: --learn: wrote 1 name and 1 address from 2 flows into $P" "[$who] it says what it wrote"
  run "$who" learn2 --learn "$P" -- \
    $CURL --resolve "v4only.example.test:443:$W" -o /dev/null -w 'https=%{http_code}\n' "https://v4only.example.test/learn-sni-$who"
  check_contains "$OUT" "https=404" "[$who] the second learning run fetched over HTTPS by --resolve"
  check_contains "$ERR" "merged 1 name and 1 address from 1 flow into $P" "[$who] ... and merged into the file"
  check_eq 'deny' "$(toml "$P" 'p["default_policy"]')" "[$who] the profile denies by default"
  check_eq "['www.example.test']" "$(toml "$P" 'p["allow_domains"]')" \
    "[$who] allow_domains: the name resolved"
  check_eq "['v4only.example.test']" "$(toml "$P" 'p["allow_domains_exact"]')" \
    "[$who] allow_domains_exact: the name only the ClientHello sent (the tree chose those bytes)"
  check_eq "['$W/32', '$LAB_ECHO4/32']" "$(toml "$P" 'p["allow_cidrs"]')" \
    "[$who] allow_cidrs: the addresses reached without a name, sorted"
  check_contains "$(cat "$P")" "\"www.example.test\",  # 1 flow" "[$who] each entry says how many flows it carried"
  check_contains "$(cat "$P")" "\"$W/32\",  # 1 flow" "[$who] ... addresses too"
  check_eq "" "$(toml "$P" '[k for k in p if k not in ("default_policy", "allow_domains", "allow_domains_exact", "allow_cidrs")] or ""')" \
    "[$who] nothing else in a profile learnt with default settings"
  run "$who" learn3 --learn "$P" -- $CURL -o /dev/null http://www.example.test/learn-again-$who
  check_contains "$(cat "$P")" "\"www.example.test\",  # 2 flows" "[$who] a third run adds to the counts"
  check_contains "$(cat "$P")" "\"$LAB_ECHO4/32\",  # 1 flow" "[$who] ... and keeps the others"

  # Replay.
  run "$who" replay --profile "$P" -- sh -c "
    $CURL -o /dev/null -w 'http=%{http_code}\\n' http://www.example.test/replay-dns-$who; echo dns=\$?
    $PY $udp_py $LAB_ECHO4 7
    $CURL --resolve v4only.example.test:443:$W -o /dev/null -w 'https=%{http_code}\\n' https://v4only.example.test/replay-sni-$who"
  check_contains "$OUT" "http=404" "[$who] replay: the name works"
  check_contains "$OUT" "reply" "[$who] replay: the UDP address works"
  check_contains "$OUT" "https=404" "[$who] replay: the --resolve HTTPS fetch works"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /replay-dns-$who" "[$who] replay: the web server served the fetch by name"
  check_contains "$(cat "$LAB_WWW_LOG")" "GET /replay-sni-$who" "[$who] replay: ... and the HTTPS one"
  check_eq 0 "$(violations "$LOG" 'true')" "[$who] replay: no violation"
  check_schema "$LOG"

  # Outside the profile.
  dns0=$(lines "$LAB_DNS_LOG")
  echo0=$(lines "$LAB_ECHO_LOG")
  run "$who" outside --profile "$P" -- sh -c "
    $CURL http://echo.example.test/outside-name-$who; echo name=\$?
    $CURL --resolve proxy.example.test:443:$W https://proxy.example.test/outside-sni-$who; echo sni=\$?
    $PY $udp_py $LAB_ECHO6 7"
  check_contains "$OUT" "name=6" "[$who] outside: another name does not resolve (curl exit 6)"
  check_not_contains "$OUT" "sni=0" "[$who] outside: another name sent to an allowed address fails"
  check_match "$OUT" "(EHOSTUNREACH|EACCES)" "[$who] outside: another address is denied (ICMP prohibited)"
  check_not_contains "$(tail -n +"$((dns0 + 1))" "$LAB_DNS_LOG")" "echo.example.test" "[$who] outside: the resolver got no query for the other name"
  check_not_contains "$(cat "$LAB_WWW_LOG")" "/outside-sni-$who" "[$who] outside: the web server got no request for the other name"
  check_eq "$echo0" "$(lines "$LAB_ECHO_LOG")" "[$who] outside: the echo server got nothing"
  check_violation "[$who] outside: the name is default_deny" "$LOG" '.reason_code=="default_deny" and .remote=="echo.example.test"'
  check_violation "[$who] outside: the sent name is default_deny" "$LOG" '.reason_code=="default_deny" and .sniffed_name=="proxy.example.test"'
  check_violation "[$who] outside: the address is default_deny" "$LOG" '.reason_code=="default_deny" and .protocol=="udp"'
  check_schema "$LOG"

  # The run's DNS and proxy settings; never the password.
  PP=$LAB_DIR/out-$who/learnt-proxy.toml
  rm -f "$PP"
  run "$who" learn-proxy --learn "$PP" -d "$LAB_DNS4" -p "http://$LAB_HTTP_PROXY_AUTH" \
    -U "$LAB_PROXY_USER" -P "$LAB_PROXY_PASS" -- $CURL -o /dev/null -w 'http=%{http_code}\n' http://www.example.test/learn-proxy-$who
  check_contains "$OUT" "http=404" "[$who] a learning run through an authenticating proxy works"
  check_eq "$LAB_DNS4" "$(toml "$PP" 'p["dns"]')" "[$who] the profile has the run's resolver"
  check_eq "http://$LAB_HTTP_PROXY_AUTH" "$(toml "$PP" 'p["proxy"]')" "[$who] ... its proxy"
  check_eq "$LAB_PROXY_USER" "$(toml "$PP" 'p["proxy_user"]')" "[$who] ... its proxy user"
  check_not_contains "$(cat "$PP")" "$LAB_PROXY_PASS" "[$who] ... and never the password"
  check_contains "$(cat "$PP")" "CHILDFLOW_PROXY_PASSWORD" "[$who] ... but says how to give it"
  # Replayed with the password from a file, learning again into the same
  # file: the file's path is written this time.
  PWF=$LAB_DIR/out-$who/proxy-password
  printf '%s\n' "$LAB_PROXY_PASS" >"$PWF"
  chmod 0600 "$PWF"
  [[ $who == user ]] && chown "$LAB_USER" "$PWF"
  proxied0=$(lines "$LAB_PROXY_LOG_HTTP_AUTH")
  run "$who" replay-proxy --profile "$PP" --proxy-password-file "$PWF" --learn "$PP" -- \
    $CURL -4 http://www.example.test/peer
  # /peer answers the address the web server saw.
  check_match "$OUT" '^203\.0\.113\.[0-9]+$' "[$who] replaying the proxied profile works"
  check_not_contains "$OUT" "$LAB_HOST4" "[$who] ... not directly from the lab host"
  check_contains "$(tail -n +"$((proxied0 + 1))" "$LAB_PROXY_LOG_HTTP_AUTH")" "CONNECT $W:80 " "[$who] ... but through the proxy"
  check_eq "$PWF" "$(toml "$PP" 'p["proxy_password_file"]')" "[$who] a password from a file is written as the file's path"
  check_not_contains "$(cat "$PP")" "$LAB_PROXY_PASS" "[$who] ... and the password still is not"
  check_contains "$(cat "$PP")" "\"www.example.test\",  # 2 flows" "[$who] replaying with --learn adds to the same file's counts"
done

# A run killed with SIGKILL writes nothing: the file is what it was, and no
# temporary file is left.
P=$LAB_DIR/out-root/learnt.toml
before=$(sha256sum <"$P")
cf root --learn "$P" -- sh -c "$CURL -o /dev/null http://www.example.test/killed; sleep 60" >/dev/null 2>&1 &
job=$!
lab_wait_until 20 "the killed run fetched" grep -q "GET /killed" "$LAB_WWW_LOG"
kill -KILL "$(engine_pid $job)"
wait $job 2>/dev/null || true
check_eq "$before" "$(sha256sum <"$P")" "SIGKILL: the profile is unchanged"
check_eq "" "$(ls "$LAB_DIR/out-root/" | grep '\.tmp$' || true)" "SIGKILL: no temporary file is left"

# A profile that cannot be written fails a run that otherwise succeeded:
# the tree (the user) takes the write permission of the directory away.
RO=$LAB_DIR/out-user/readonly
install -d -m 0755 -o "$LAB_USER" "$RO"
run user learn-unwritable --learn "$RO/p.toml" -- chmod 0555 "$RO"
check_eq 1 "$RC" "a profile that cannot be written: exit 1 although the command exited 0"
check_contains "$ERR" "childflow: error: --learn $RO/p.toml: nothing written: cannot create" "... with a line that says why"
check_eq "" "$(ls -A "$RO")" "... and nothing is left in the directory"
chmod 0755 "$RO"

# Bad input: exit 2, nothing created or changed.
echo 'not a profile' >"$LAB_DIR/out-root/notes.txt"
set +e
err=$(cf root --learn "$LAB_DIR/out-root/notes.txt" -- true 2>&1); rc=$?
set -e
check_eq 2 "$rc" "an existing file that is not a profile: exit 2"
check_contains "$err" "exists but is not a profile to merge into" "... with a line that says so"
check_eq "not a profile" "$(cat "$LAB_DIR/out-root/notes.txt")" "... and the file is left as it was"
set +e
err=$(cf root --learn "$LAB_DIR/out-root/missing/p.toml" -- true 2>&1); rc=$?
set -e
check_eq 2 "$rc" "a missing directory: exit 2"
check_eq "" "$(ls -d "$LAB_DIR/out-root/missing" 2>/dev/null || true)" "... and nothing is created"

engine_finish
