#!/usr/bin/env bash
# /dev/net/tun with mode 0600 blocks an unprivileged user: `--doctor` shows the
# fatal TUN check naming errno, mode and owner, with the chmod/udev hint, and
# exits 1; a run is stopped by preflight with the same line before anything
# runs. Root is not blocked by that mode, and mode 0666 unblocks the user.
# The mode is changed on a private device node only lab commands see
# (lab_tun_mode); the machine's /dev/net/tun is never touched.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
lab_up
lab_defer lab_tun_restore

run() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

lab_tun_mode 0600
run lab_user "$CHILDFLOW" --doctor
assert_eq 1 "$rc" "--doctor exits 1 when /dev/net/tun is 0600 for $LAB_USER"
assert_eq "childflow doctor: backend rootless-internal: blocked" "$(head -n1 <<<"$out")" \
  "status line says blocked"
assert_contains "$out" \
  "[FATAL] /dev/net/tun: cannot be opened: EACCES (Permission denied); mode 0600, owner root:root" \
  "fatal TUN check names errno, mode and owner"
hint=$(grep -A1 '^\[FATAL\] /dev/net/tun' <<<"$out" | tail -n1)
assert_contains "$hint" "    hint: as root: chmod 0666 /dev/net/tun" "indented hint says chmod 0666"
assert_contains "$hint" "udev rule" "hint mentions a udev rule"
assert_eq 1 "$(grep -c '^\[FATAL\]' <<<"$out")" "the TUN check is the only fatal one"
assert_contains "$out" "[OK]   user namespace trial: " "the user can still create namespaces"

# Preflight: a run stops before anything is created, with the same check.
run lab_user "$CHILDFLOW" -- sh -c 'echo COMMAND-RAN'
assert_eq 1 "$rc" "a run exits 1 when preflight fails"
assert_contains "$out" \
  "childflow: error: preflight: /dev/net/tun: cannot be opened: EACCES (Permission denied); mode 0600, owner root:root (hint: as root: chmod 0666 /dev/net/tun" \
  "preflight prints the TUN check and its hint on one line"
assert_not_contains "$out" "COMMAND-RAN" "the command did not run"
assert_eq 1 "$(wc -l <<<"$out")" "preflight prints exactly one line"

# Root opens a 0600 root-owned node.
run lab_root "$CHILDFLOW" --doctor
assert_eq 0 "$rc" "root is not blocked by mode 0600"
assert_contains "$out" "[OK]   /dev/net/tun: opens read-write (mode 0600, owner root:root)" "root: tun ok"

# The usual 0666 mode unblocks the user.
lab_tun_open
run lab_user "$CHILDFLOW" --doctor
assert_eq 0 "$rc" "--doctor exits 0 for $LAB_USER with mode 0666"
assert_contains "$out" "[OK]   /dev/net/tun: opens read-write (mode 0666, owner root:root)" "user: tun ok"
assert_not_contains "$out" "[FATAL]" "nothing fatal for $LAB_USER in the lab"
lab_tun_restore
ok "doctor tun check for an unprivileged user"
