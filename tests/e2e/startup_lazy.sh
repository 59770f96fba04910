#!/usr/bin/env bash
# What a default run does not pay for at start-up (docs/performance.md,
# "Start-up"), checked by what the binary does, never by a clock:
#   - childflow links neither OpenSSL nor libnftables (both are opened with
#     dlopen), and a default run as LAB_USER loads neither;
#   - a run with an https:// proxy loads libssl, and still runs the command;
#   - the user namespace trial runs only after a failed launch: in user
#     namespaces nested as deep as the kernel allows, the launch fails and
#     the run's one error line is the doctor's trial line, as preflight gave
#     it before; the command does not run; the flow log records the failure.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
lab_up
lab_tun_open  # so that /dev/net/tun is not what stops a run
lab_defer lab_tun_restore

run() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

# --- libraries ------------------------------------------------------------------
needed=$(readelf -d "${CHILDFLOW_REAL:-$CHILDFLOW}" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
for lib in libssl libcrypto libnftables; do
  assert_not_contains "$needed" "$lib" "childflow does not link $lib (NEEDED: $needed)"
done

# LD_DEBUG=files names every object the dynamic loader opens, dlopen included.
run lab_user env LD_DEBUG=files "$CHILDFLOW" -- true
assert_eq 0 "$rc" "a default run succeeds"
assert_not_contains "$out" "file=libssl" "a default run does not load libssl"
assert_not_contains "$out" "file=libcrypto" "a default run does not load libcrypto"
assert_not_contains "$out" "file=libnftables" "a default run does not load libnftables"

# Nothing listens there: the command opens no connection, and the proxy's
# TLS context is made at start-up all the same.
run lab_user env LD_DEBUG=files "$CHILDFLOW" -p "https://$LAB_PROXY4:1" -- true
assert_eq 0 "$rc" "a run with an https:// proxy succeeds"
assert_contains "$out" "file=libssl.so.3" "an https:// proxy loads libssl"

# --- the user namespace trial after a failed launch ---------------------------
# in_nested_userns N CMD... : CMD as LAB_USER inside N nested user namespaces.
in_nested_userns() {
  local depth=$1
  shift
  # shellcheck disable=SC2016 # expanded by the inner shell
  lab_user bash -c '
    nest() { local n=$1; shift; if ((n == 0)); then exec "$@"; fi
             exec unshare -U -r bash -c "$(declare -f nest); nest \"\$@\"" nest $((n - 1)) "$@"; }
    nest "$@"' nest "$depth" "$@"
}
log="$LAB_DIR/home/nested.jsonl"
# Deep enough that the kernel refuses one more user namespace (ENOSPC past
# level 32), so the sandbox's clone fails and so does the trial's unshare.
run in_nested_userns 33 "$CHILDFLOW" --flow-log "$log" -- sh -c 'echo COMMAND-RAN'
assert_eq 1 "$rc" "a run whose launch fails exits 1"
assert_eq 1 "$(wc -l <<<"$out")" "it prints exactly one line: $out"
assert_contains "$out" \
  "childflow: error: preflight: user namespace trial: unshare(CLONE_NEWUSER) failed: ENOSPC" \
  "the line is the trial's, run after the launch failed"
assert_contains "$out" "(hint: " "with the trial's hint"
assert_not_contains "$out" "COMMAND-RAN" "the command did not run"
flow=$(cat "$log")
assert_contains "$flow" '"launch_failed"' "the flow log records the failed launch"
assert_contains "$flow" "user namespace trial" "with the trial's explanation"

# Control: one level less, the same run works.
run in_nested_userns 31 "$CHILDFLOW" -- sh -c 'echo COMMAND-RAN'
assert_eq 0 "$rc" "a shallower nest runs the command ($out)"
assert_contains "$out" "COMMAND-RAN" "the command ran"
ok "start-up: lazy libraries and the trial after a failed launch"
