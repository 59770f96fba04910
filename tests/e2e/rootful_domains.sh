#!/usr/bin/env bash
# The rootful backend's domain rules, --fail-on-leak and conntrack flow
# events end to end (docs/rootful.md), as root in the lab host namespace:
# - --default-policy deny --allow-domain: the web server by name over IPv4
#   and IPv6; its address by literal before any lookup reset (it carries no
#   name yet), allowed after the lookup; another name answered empty,
#   another address reset; the web server saw only the allowed requests;
#   the same script gives the same statuses without --root (rootless);
# - --deny-domain-exact / --deny-domain through a name an answer carried
#   (alias.example.test is a CNAME of www.example.test): reset, the rule
#   in the flow log; an address with no name is not denied;
# - element timeouts: the record's TTL + 60 s (shortttl: TTL 2 s, www: 300 s);
# - --fail-on-leak: exit 1 and its line after a denial with the command's
#   exit 0, the command's own status otherwise, 0 without a denial;
# - connect_attempt / connect_result / flow_end for TCP (with bytes), a
#   refused port, flow_start / flow_end for UDP and ICMP echo, from
#   conntrack; the flow log validates; the summary counts them;
# - after every run the host's ruleset, links, rules, routes and sysctls
#   are byte-identical; SIGKILL then --cleanup restores them.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_rootful.sh"

www_count() { grep -c "^www http .* accept" "$LAB_WWW_LOG" || true; }
field() { jq -r "select(.event==\"$2\") | .$3" "$1" | sort -u | paste -sd' '; }

# --- allow-domain under default-deny ------------------------------------------------
ALLOW_SCRIPT="
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://$LAB_WWW4/
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://www.example.test/
  sh -c '$TIMED' t curl -6 -sS --max-time 5 http://www.example.test/
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://$LAB_WWW4/
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://echo.example.test:9/
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://$LAB_ECHO4:9/
  true"
www0=$(www_count)
rf allow --default-policy deny --allow-domain www.example.test --summary -- sh -c "$ALLOW_SCRIPT"
check_eq 0 "$RC" "allow-domain: exit 0 (stderr: ${ERR:0:300})"
rcs=$(grep -o 'rc=[0-9]*' <<<"$OUT" | paste -sd' ')
check_eq "rc=7 rc=0 rc=0 rc=0 rc=6 rc=7" "$rcs" \
  "allow-domain: literal before lookup reset, by name v4/v6 and literal after lookup allowed, other name empty, other address reset"
check_eq 3 "$(($(www_count) - www0))" "allow-domain: the web server saw exactly the three allowed requests"
check_contains "$(field "$LOG" policy_violation reason_code)" "default_deny" "allow-domain: the denials are default_deny"
check_contains "$(field "$LOG" policy_violation remote)" "$LAB_WWW4:80" "allow-domain: the literal address before its lookup is a violation"
check_contains "$(field "$LOG" policy_violation remote)" "echo.example.test" "allow-domain: the other name is a DNS violation"
check_schema "allow-domain" "$LOG"
check_state "allow-domain"

# The same script, the same config, without --root: the same decisions.
set +e
rl=$(cf root -d "$LAB_DNS4" --default-policy deny --allow-domain www.example.test -- sh -c "$ALLOW_SCRIPT" 2>/dev/null)
set -e
check_eq "$rcs" "$(grep -o 'rc=[0-9]*' <<<"$rl" | paste -sd' ')" "allow-domain: rootless decides the same"

# --- deny-domain through a name the answer carried -----------------------------------
DENY_SCRIPT="
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://$LAB_WWW4/
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://alias.example.test/
  sh -c '$TIMED' t curl -6 -sS --max-time 5 http://alias.example.test/
  getent hosts www.example.test >/dev/null; echo getent=\$?
  true"
www0=$(www_count)
rf denyx --deny-domain-exact www.example.test -- sh -c "$DENY_SCRIPT"
check_eq "rc=0 rc=7 rc=7" "$(grep -o 'rc=[0-9]*' <<<"$OUT" | paste -sd' ')" \
  "deny-domain-exact: the address before any name allowed, then the CNAME's addresses reset"
check_contains "$OUT" "getent=2" "deny-domain-exact: the name itself is answered empty"
check_eq 1 "$(($(www_count) - www0))" "deny-domain-exact: the web server saw only the first request"
check_eq "deny_domain_exact" "$(jq -r 'select(.event=="policy_violation" and .protocol=="tcp") | .reason_code' "$LOG" | sort -u)" \
  "deny-domain-exact: the TCP violations' reason"
check_contains "$(field "$LOG" policy_violation matched_domain)" "www.example.test" "deny-domain-exact: the rule in the flow log"
check_contains "$(field "$LOG" policy_violation remote)" "[$LAB_WWW6]:80" "deny-domain-exact: the IPv6 address denied too"
check_schema "deny-domain-exact" "$LOG"
set +e
rl=$(cf root -d "$LAB_DNS4" --deny-domain-exact www.example.test -- sh -c "$DENY_SCRIPT" 2>/dev/null)
set -e
check_eq "$(grep -Eo '(rc|getent)=[0-9]+' <<<"$OUT" | paste -sd' ')" "$(grep -Eo '(rc|getent)=[0-9]+' <<<"$rl" | paste -sd' ')" \
  "deny-domain-exact: rootless decides the same"

rf deny --deny-domain www.example.test --allow-domain alias.example.test --default-policy deny -- sh -c "
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://alias.example.test/"
check_fast "deny-domain: a subdomain rule denies before the allow rule" "$OUT" 7
check_eq "deny_domain" "$(jq -r 'select(.event=="policy_violation" and .protocol=="tcp") | .reason_code' "$LOG" | sort -u)" \
  "deny-domain: the violation's reason"
check_state "deny-domain"

# --- element timeouts: TTL + 60 s ------------------------------------------------------
SYNC=$LAB_DIR/sync-dom
install -d -m 0777 "$SYNC"
# check_timeout FLAG EXPECTED DESC NAME...: a run allowing example.test
# resolves NAME... and touches $SYNC/FLAG; then the allow_domain4 set holds
# $LAB_WWW4 with the EXPECTED timeout, and the run is ended with SIGTERM.
check_timeout() {
  local flag=$1 expected=$2 desc=$3 lookups="" name job table set4
  shift 3
  for name in "$@"; do lookups+="getent ahostsv4 $name >/dev/null; "; done
  cf root --root -d "$LAB_DNS4" --allow-domain example.test -- sh -c "
    ${lookups}touch $SYNC/$flag; sleep 20" >/dev/null 2>&1 &
  job=$!
  lab_wait_until 20 "$desc: the names resolved" test -e "$SYNC/$flag"
  table=$(lab_root nft list tables | awk '/childflow_/ {print $3}' | head -n1)
  set4=$(lab_root nft list set inet "$table" allow_domain4 2>&1 || true)
  check_match "$set4" "$LAB_WWW4 timeout $expected([ ,]|\$)" "$desc ($set4)"
  rootful_signal TERM "$job"
}
check_timeout resolved 6m "TTL 300 s: the element's timeout is 6 min" \
  shortttl.example.test www.example.test
check_timeout short 1m2s "TTL 2 s: the element's timeout is 62 s" shortttl.example.test
check_state "timeouts"

# --- --fail-on-leak ----------------------------------------------------------------------
rf leak --fail-on-leak --summary --deny-cidr "$LAB_ECHO4/32" -- sh -c "curl -sS --max-time 5 http://$LAB_ECHO4:9/; true"
check_eq 1 "$RC" "--fail-on-leak: a denial and the command's exit 0 give 1"
check_contains "$ERR" "childflow: warning: --fail-on-leak: policy blocked 1 connection(s); exiting 1" "--fail-on-leak: its line"
check_contains "$ERR" "--fail-on-leak: the command exited 0" "--fail-on-leak: the summary says why"
rf leak3 --fail-on-leak --deny-cidr "$LAB_ECHO4/32" -- sh -c "curl -sS --max-time 5 http://$LAB_ECHO4:9/; exit 3"
check_eq 3 "$RC" "--fail-on-leak: a failing command keeps its status"
rf noleak --fail-on-leak --deny-cidr "$LAB_ECHO4/32" -- curl -sS --max-time 5 -o /dev/null http://www.example.test/
check_eq 0 "$RC" "--fail-on-leak: no denial, exit 0"
check_state "fail-on-leak"

# --- flow events from conntrack ----------------------------------------------------------
UDP='import socket,sys
f=socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s=socket.socket(f,socket.SOCK_DGRAM); s.settimeout(3); s.connect((sys.argv[1],7))
s.send(b"rootful probe"); print("udp reply", len(s.recv(100)))'
rf flows --summary -- sh -c "
  curl -4 -sS --max-time 5 -o /dev/null http://www.example.test/; echo tcp4=\$?
  curl -6 -sS --max-time 5 -o /dev/null http://www.example.test/; echo tcp6=\$?
  curl -4 -sS --max-time 5 http://$LAB_WWW4:81/ >/dev/null 2>&1; echo refused=\$?
  python3 -c '$UDP' $LAB_ECHO4
  python3 -c '$UDP' $LAB_ECHO6
  ping -c 1 -W 3 $LAB_WWW4 >/dev/null; echo ping=\$?"
check_eq 0 "$RC" "flows: exit 0 (${ERR:0:300})"
check_contains "$OUT" "tcp4=0" "flows: TCP over IPv4"
check_contains "$OUT" "refused=7" "flows: a closed port is refused"
check_eq 2 "$(grep -c 'udp reply 13' <<<"$OUT")" "flows: UDP echoes over IPv4 and IPv6"
check_contains "$OUT" "ping=0" "flows: ping"
check_schema "flows" "$LOG"
ev() { jq -c "select(.event==\"$1\" and .remote_addr==\"$2\")" "$LOG"; }
check_contains "$(ev connect_attempt "$LAB_WWW4:80")" '"names":["www.example.test"]' "flows: connect_attempt TCP IPv4 with its name"
check_contains "$(ev connect_result "$LAB_WWW4:80")" '"status":"ok"' "flows: connect_result ok"
check_contains "$(ev connect_result "[$LAB_WWW6]:80")" '"status":"ok"' "flows: connect_result ok over IPv6"
end4=$(ev flow_end "$LAB_WWW4:80")
check_contains "$end4" '"close":"fin"' "flows: flow_end TCP, closed with FIN ($end4)"
check_eq 1 "$(jq -r 'select(.bytes_sent > 0 and .bytes_received > 200) | 1' <<<"$end4")" "flows: TCP bytes both ways from conntrack accounting"
check_contains "$(ev connect_result "$LAB_WWW4:81")" '"error":"Connection refused"' "flows: the refused connect"
check_eq "" "$(ev flow_end "$LAB_WWW4:81")" "flows: no flow_end for a connect that failed"
check_contains "$(ev flow_start "$LAB_ECHO4:7")" '"protocol":"udp"' "flows: flow_start UDP IPv4"
check_contains "$(ev flow_start "[$LAB_ECHO6]:7")" '"protocol":"udp"' "flows: flow_start UDP IPv6"
check_contains "$(ev flow_end "$LAB_ECHO4:7")" '"bytes_sent":41' "flows: the UDP flow's bytes (one 41-byte datagram)"
check_contains "$(ev flow_start "$LAB_WWW4:0")" '"protocol":"icmpv4"' "flows: flow_start ICMP echo"
check_not_contains "$(cat "$LOG")" "\"remote_ip\":\"$LAB_DNS4\"" "flows: DNS to the gateway is not a flow, nor the resolver's"
check_contains "$ERR" "$LAB_WWW4:80" "flows: the summary counts the TCP target"
check_contains "$ERR" "$LAB_ECHO4:7" "flows: the summary counts the UDP target"
check_state "flows"

# --- SIGKILL, then --cleanup ---------------------------------------------------------------
lab_root timeout 60 "$CHILDFLOW" --root -d "$LAB_DNS4" --allow-domain example.test --flow-log "$OUTD/killed.jsonl" \
  -- sh -c "getent hosts www.example.test >/dev/null; touch $SYNC/killed; sleep 30" >/dev/null 2>&1 &
job=$!
lab_wait_until 20 "the killed run resolved" test -e "$SYNC/killed"
rootful_signal KILL "$job"
check_contains "$(snapshot)" "allow_domain4" "SIGKILL leaves the table with its sets"
rootful_cleanup
check_state "SIGKILL + --cleanup"

engine_finish
