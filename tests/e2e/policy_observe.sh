#!/usr/bin/env bash
# Flow log, summary and report of a run that mixes success, refusal and
# policy denial (issue 4, last test), as root and as the lab user.
#
# The tree: a GET by name (ok), a connect to www:81 (refused), a TCP connect
# and a UDP datagram to a --deny-cidr address (denied), a UDP echo over IPv6
# (ok), and a lookup of a --deny-domain-exact name (answered empty). Then:
# - the flow log validates against docs/flow-log-schema.md and holds each of
#   those events with the right fields (flow ids, names, bytes, close);
# - --summary (text) on stderr and --summary-format json name the controls,
#   the flow log, event counts, top targets, violations and connect errors,
#   and the exit code; with --fail-on-leak the exit code 1 is explained;
# - --report in text, markdown and JSON shows the same facts.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
POLICY_PROBE_TAG=observe
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_policy.sh"


check_jq() {  # check_jq MSG FILE_OR_TEXT JQ_BOOLEAN
  local v
  v=$(jq -e "$3" <<<"$2" 2>&1) && check_pass "$1" || check_fail "$1: jq [$3] gave [$v] on [${2:0:1500}]"
}

DENY=(--deny-cidr 203.0.113.20/32 --deny-domain-exact blocked.wild.example.test)
TREE="curl -sS -4 --max-time 10 http://www.example.test/ | grep -c 'childflow lab www'
  curl -sS --max-time 10 http://$LAB_WWW4:81/ 2>/dev/null; echo refused=\$?
  curl -sS --max-time 10 http://$LAB_ECHO4:9/ 2>/dev/null; echo denied=\$?
  $PY $udp_py $LAB_ECHO4 7
  $PY $udp_py $LAB_ECHO6 7
  getent ahostsv4 blocked.wild.example.test; echo getent=\$?
  exit 0"

for who in root user; do
  echo "# --- as $who"
  log=$LAB_DIR/out-$who/mixed.jsonl
  set +e
  out=$(cf "$who" --flow-log "$log" --summary "${DENY[@]}" -- sh -c "$TREE" 2>"$LAB_DIR/out-$who/mixed.err")
  rc=$?
  set -e
  err=$(cat "$LAB_DIR/out-$who/mixed.err")
  check_eq 0 "$rc" "$who: the mixed run exits 0"
  check_eq 1 "$(head -1 <<<"$out")" "$who: the GET by name succeeded"
  check_contains "$out" "refused=7" "$who: port 81 refused"
  check_contains "$out" "denied=7" "$who: the denied TCP connect refused"
  check_contains "$out" "EHOSTUNREACH" "$who: the denied UDP datagram answered admin prohibited"
  check_contains "$out" "reply 23" "$who: the allowed UDP echo answered"
  check_contains "$out" "getent=2" "$who: the denied name does not resolve"
  check_not_contains "$out" "childflow summary" "$who: the summary is not on stdout"

  # --- the flow log ---
  v=$($PY "$CHILDFLOW_SOURCE_DIR/tests/lab/flowlog_schema.py" --min-events 12 "$log" 2>&1) \
    && check_pass "$who: flow log validates ($v)" || check_fail "$who: flow log does not validate: $v"
  ev() { jq -c "select(.event==\"$1\") | select($2)" "$log"; }
  check_contains "$(ev dns_answer '.qname=="www.example.test"')" '"mode":"relayed"' "$who log: www answer relayed"
  check_contains "$(ev dns_answer '.qname=="www.example.test"')" "\"answer_ips\":[\"$LAB_WWW4\"]" "$who log: www answer_ips"
  ok_id=$(ev connect_result ".remote_addr==\"$LAB_WWW4:80\" and .status==\"ok\"" | jq -r .flow_id | head -1)
  check_match "$ok_id" '^[0-9]+$' "$who log: connect_result ok for www:80 with a flow_id"
  check_contains "$(ev connect_attempt ".flow_id==${ok_id:-0}")" '"names":["www.example.test"]' "$who log: the ok connect carries the name"
  fe=$(ev flow_end ".flow_id==${ok_id:-0}")
  check_contains "$fe" '"close":"fin"' "$who log: the ok flow ended with fin"
  check_jq "$who log: the ok flow moved bytes both ways" "$fe" '.bytes_sent > 0 and .bytes_received > 100 and .duration_ms >= 0'
  check_contains "$(ev connect_result ".remote_addr==\"$LAB_WWW4:81\"")" '"error":"connection refused"' "$who log: port 81 connection refused"
  check_contains "$(ev connect_result ".remote_addr==\"$LAB_ECHO4:9\"")" '"error":"denied by policy"' "$who log: echo:9 denied by policy"
  check_eq 3 "$(ev policy_violation true | grep -c .)" "$who log: three policy violations"
  check_contains "$(ev policy_violation '.protocol=="tcp"')" '"matched_cidr":"203.0.113.20/32"' "$who log: TCP violation deny_cidr"
  check_contains "$(ev policy_violation '.protocol=="udp"')" "\"remote\":\"$LAB_ECHO4:7\"" "$who log: UDP violation"
  check_contains "$(ev policy_violation '.protocol=="dns"')" '"matched_domain":"blocked.wild.example.test"' "$who log: DNS violation"
  check_contains "$(ev dns_answer '.qname=="blocked.wild.example.test"')" '"mode":"synthetic_empty"' "$who log: denied name answered synthetic_empty"
  check_contains "$(ev flow_start '.protocol=="udp"')" "\"remote_addr\":\"[$LAB_ECHO6]:7\"" "$who log: the allowed UDP flow started"
  # Still open when the tree exits: ended in the log at exit.
  check_contains "$(ev flow_end '.protocol=="udp"')" "\"remote_addr\":\"[$LAB_ECHO6]:7\"" "$who log: the allowed UDP flow ended by the end of the run"

  # --- --summary text (stderr) ---
  check_contains "$err" "childflow summary" "$who summary: header on stderr"
  check_contains "$err" "backend:    rootless-internal" "$who summary: backend"
  check_contains "$err" "--deny-cidr 203.0.113.20/32" "$who summary: controls (deny-cidr)"
  check_contains "$err" "--deny-domain-exact blocked.wild.example.test" "$who summary: controls (deny-domain-exact)"
  check_contains "$err" "flow log:   $log" "$who summary: flow log path"
  check_contains "$err" "policy_violation=3" "$who summary: event counts"
  check_contains "$err" "policy violations: 3" "$who summary: violation total"
  check_match "$err" "1  deny_cidr 203\.0\.113\.20:9" "$who summary: top violation deny_cidr TCP"
  check_match "$err" "1  deny_cidr 203\.0\.113\.20:7" "$who summary: top violation deny_cidr UDP"
  check_match "$err" "1  deny_domain_exact blocked\.wild\.example\.test" "$who summary: top violation deny_domain_exact"
  check_contains "$err" "$LAB_WWW4:81: connection refused" "$who summary: connect error refused"
  check_contains "$err" "$LAB_ECHO4:9: denied by policy" "$who summary: connect error denied"
  check_match "$err" "top targets:.*$LAB_WWW4:80" "$who summary: top targets"
  check_contains "$err" "exit code:  0" "$who summary: exit code"

  # --- --summary-format json, same tree ---
  set +e
  cf "$who" --flow-log "$LAB_DIR/out-$who/mixed2.jsonl" --summary --summary-format json "${DENY[@]}" --fail-on-leak \
    -- sh -c "$TREE" >/dev/null 2>"$LAB_DIR/out-$who/mixed2.err"
  rc=$?
  set -e
  check_eq 1 "$rc" "$who --fail-on-leak: exit 1"
  err=$(cat "$LAB_DIR/out-$who/mixed2.err")
  check_contains "$err" "--fail-on-leak" "$who --fail-on-leak: warning"
  sj=$(grep '^{' <<<"$err" | tail -1)
  check_jq "$who summary json: backend and command" "$sj" '.backend=="rootless-internal" and .command[0]=="sh"'
  check_jq "$who summary json: controls" "$sj" '(.controls | index("--deny-cidr 203.0.113.20/32")) and (.controls | index("--fail-on-leak"))'
  check_jq "$who summary json: flow log" "$sj" ".flow_log==\"$LAB_DIR/out-$who/mixed2.jsonl\""
  check_jq "$who summary json: counts" "$sj" '.policy_violations==3 and .event_counts.policy_violation==3 and .event_counts.connect_attempt==3'
  check_jq "$who summary json: top violations" "$sj" '[.top_policy_violations[].key] | (index("deny_cidr 203.0.113.20:9") and index("deny_cidr 203.0.113.20:7") and index("deny_domain_exact blocked.wild.example.test"))'
  check_jq "$who summary json: connect errors" "$sj" "[.connect_errors[].key] | (index(\"$LAB_WWW4:81: connection refused\") and index(\"$LAB_ECHO4:9: denied by policy\"))"
  check_jq "$who summary json: top targets" "$sj" "[.top_targets[].key] | index(\"$LAB_WWW4:80\")"
  check_jq "$who summary json: exit code 1 from --fail-on-leak" "$sj" '.exit_code==1 and .leak_failure==true'

  # --- --report on the first log ---
  rt=$(as "$who" "$CHILDFLOW" --report "$log") || check_fail "$who report text failed"
  check_contains "$rt" "childflow report: $log" "$who report text: header"
  check_contains "$rt" "www.example.test -> $LAB_WWW4:80" "$who report text: DNS name -> target"
  check_contains "$rt" "policy violations: 3" "$who report text: violations"
  check_match "$rt" "2  deny_cidr" "$who report text: reason deny_cidr x2"
  check_match "$rt" "1  deny_domain_exact" "$who report text: reason deny_domain_exact"
  check_match "$rt" "matched domains:[^:]*blocked\.wild\.example\.test" "$who report text: matched domain"
  check_contains "$rt" "$LAB_WWW4:81: connection refused" "$who report text: connect error"
  check_contains "$rt" "connect results: 1 ok, 2 error" "$who report text: connect results"
  rm=$(as "$who" "$CHILDFLOW" --report "$log" --report-format markdown) || check_fail "$who report markdown failed"
  check_eq "## Highlights" "$(head -1 <<<"$rm")" "$who report markdown: starts with ## Highlights"
  check_contains "$rm" "Policy violations: 3" "$who report markdown: highlights name the violations"
  check_contains "$rm" "| \`www.example.test\` | \`$LAB_WWW4:80\` |" "$who report markdown: DNS name -> target row"
  rj=$(as "$who" "$CHILDFLOW" --report "$log" --report-format json) || check_fail "$who report json failed"
  check_jq "$who report json: violations and reasons" "$rj" '.policy.violations==3 and ([.policy.reasons.top[] | select(.reason_code=="deny_cidr") | .count] == [2])'
  check_jq "$who report json: connects" "$rj" '.connects.ok==1 and .connects.error==2'
  check_jq "$who report json: correlation" "$rj" "[.dns_correlation.top[] | select(.name==\"www.example.test\" and .target==\"$LAB_WWW4:80\")] | length == 1"
  check_jq "$who report json: matched domain" "$rj" '[.policy.matched_domains.top[].domain] == ["blocked.wild.example.test"]'
  check_jq "$who report json: the ok flow's bytes" "$rj" '.flows.ended >= 1 and .flows.bytes_received > 100'
done

engine_finish
