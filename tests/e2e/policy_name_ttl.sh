#!/usr/bin/env bash
# Domain rules through relayed names expire with TTL + grace (docs/policy.md:
# the record's TTL plus 60 s), end to end, as root.
#
# Under --default-policy deny --allow-domain shortttl.example.test (TTL 2 s):
# after one lookup the address is allowed by the name, still allowed at
# about TTL + grace - 5 s, and denied again (default_deny, no name) at about
# TTL + grace + 4 s. A second lookup afterwards allows it again. About 70 s.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
install -d -m 0755 "$LAB_DIR/out-root"
log=$LAB_DIR/out-root/ttl.jsonl

# Times are measured from the lookup inside the tree.
# shellcheck disable=SC2034  # read by cf() in lib_engine.sh
CF_TIMEOUT=120
set +e
out=$(cf root --flow-log "$log" --default-policy deny --allow-domain shortttl.example.test -- sh -c "
  t0=\$(date +%s)
  getent ahostsv4 shortttl.example.test | head -1
  at() { while [ \$((\$(date +%s) - t0)) -lt \$1 ]; do sleep 0.2; done; }
  curl -sS -o /dev/null --max-time 5 http://$LAB_WWW4/; echo t1=\$?
  at 57
  curl -sS -o /dev/null --max-time 5 http://$LAB_WWW4/; echo t57=\$?
  at 66
  curl -sS -o /dev/null --max-time 5 http://$LAB_WWW4/; echo t66=\$?
  getent ahostsv4 shortttl.example.test >/dev/null
  curl -sS -o /dev/null --max-time 5 http://$LAB_WWW4/; echo again=\$?" 2>"$LAB_DIR/out-root/ttl.err")
rc=$?
set -e
check_eq 0 "$rc" "the run exits 0"
check_contains "$out" "$LAB_WWW4" "the name resolved"
check_contains "$out" "t1=0" "right after the lookup the address is allowed by its name"
check_contains "$out" "t57=0" "at TTL 2 s + grace 60 s - 5 s it is still allowed"
check_contains "$out" "t66=7" "at TTL 2 s + grace 60 s + 4 s it is denied again (curl exit 7)"
check_contains "$out" "again=0" "a new lookup allows it again"
viol=$(jq -c 'select(.event=="policy_violation")' "$log")
check_eq 1 "$(grep -c . <<<"$viol" || true)" "exactly one violation (the expired one)"
check_contains "$viol" '"reason_code":"default_deny"' "the expired mapping gives default_deny"
check_contains "$viol" '"names":[]' "the violation carries no name any more"
check_eq 3 "$(jq -c 'select(.event=="connect_attempt" and (.names | index("shortttl.example.test")))' "$log" | grep -c . || true)" \
  "the three allowed connects carry the name"

engine_finish
