#!/usr/bin/env bash
# user.max_user_namespaces = 0 gives the fatal quota check. The sysctl is per
# user namespace, so the test sets it to 0 for real inside a throwaway user
# namespace (`unshare -U -r`) that LAB_USER creates, and runs childflow in
# there: the quota check is fatal with the sysctl hint, the trial fails with
# ENOSPC, --doctor exits 1, and preflight stops a run with the quota check
# (the first, most precise fatal). The machine's own quota is not changed.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
lab_up
lab_tun_open  # so that the quota is the only thing at fault
lab_defer lab_tun_restore
before=$(cat /proc/sys/user/max_user_namespaces)

run() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}
# in_zero_quota_userns CMD... : runs CMD as LAB_USER inside a new user
# namespace whose max_user_namespaces is 0.
in_zero_quota_userns() {
  # shellcheck disable=SC2016
  lab_user unshare -U -r sh -c 'echo 0 >/proc/sys/user/max_user_namespaces && exec "$@"' sh "$@"
}

assert_eq 0 "$(in_zero_quota_userns cat /proc/sys/user/max_user_namespaces)" \
  "the throwaway user namespace's quota is 0"

run in_zero_quota_userns "$CHILDFLOW" --doctor
assert_eq 1 "$rc" "--doctor exits 1 with a zero quota"
assert_eq "childflow doctor: backend rootless-internal: blocked" "$(head -n1 <<<"$out")" \
  "status line says blocked"
assert_contains "$out" \
  "[FATAL] user namespace quota: user.max_user_namespaces = 0: no user namespace can be created" \
  "fatal quota check"
hint=$(grep -A1 '^\[FATAL\] user namespace quota' <<<"$out" | tail -n1)
assert_contains "$hint" "    hint: as root: sysctl -w user.max_user_namespaces=" "quota hint gives the sysctl"
assert_contains "$out" \
  "[FATAL] user namespace trial: unshare(CLONE_NEWUSER) failed: ENOSPC (No space left on device)" \
  "the real trial fails with ENOSPC"

run in_zero_quota_userns "$CHILDFLOW" --doctor --doctor-format json
assert_eq 1 "$rc" "--doctor --doctor-format json exits 1 too"
quota=$(python3 -c '
import json, sys
d = json.loads(sys.argv[1])
[c] = [c for c in d["capabilities"] if c["key"] == "max_user_namespaces"]
print(d["status"], c["status"], "hint" if c["hint"] else "nohint")' "$out")
assert_eq "blocked fatal hint" "$quota" "JSON: blocked, max_user_namespaces fatal with a hint"

run in_zero_quota_userns "$CHILDFLOW" -- sh -c 'echo COMMAND-RAN'
assert_eq 1 "$rc" "a run exits 1 with a zero quota"
assert_contains "$out" \
  "childflow: error: preflight: user namespace quota: user.max_user_namespaces = 0: no user namespace can be created (hint: as root: sysctl -w user.max_user_namespaces=" \
  "preflight reports the quota check, not the generic trial"
assert_not_contains "$out" "COMMAND-RAN" "the command did not run"

# Control: the same kind of namespace without the write is not blocked.
run lab_user unshare -U -r "$CHILDFLOW" --doctor
assert_contains "$out" "[OK]   user namespace quota: user.max_user_namespaces = " "quota ok without the write"
assert_contains "$out" "[OK]   user namespace trial: " "trial ok without the write"
assert_not_contains "$out" "[FATAL]" "nothing fatal without the write"

assert_eq "$before" "$(cat /proc/sys/user/max_user_namespaces)" "the machine's quota is unchanged"
ok "doctor quota check"
