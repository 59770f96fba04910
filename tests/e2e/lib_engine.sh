# shellcheck shell=bash
# Variables and arguments here are used by the engine_*.sh scripts that source it.
# shellcheck disable=SC2034,SC2120,SC2016
# Shared helpers for the engine end-to-end tests (tests/e2e/engine_*.sh).
#
# Theory of operation
# -------------------
# Each engine_*.sh script sources this file and calls engine_up, which brings
# up the test lab (tests/lab/lab.sh), gives lab commands a 0666 /dev/net/tun
# (lab_tun_open, so the unprivileged LAB_USER can run childflow), moves into a
# directory both users can use, and records the sha256 of /etc/resolv.conf and
# /etc/hosts as the machine sees them and as the lab host sees them.
#
# Checks are "soft": check_* print "ok - MSG" or "FAIL: MSG" (with what was
# expected and what was seen) and count failures, so one broken feature does
# not hide the others. engine_finish checks that the host files are unchanged
# and that childflow left no overlay directory behind, prints the tally and
# exits non-zero when any check failed (the lab's EXIT trap tears down).
#
# cf WHO [childflow options] -- CMD... runs childflow in the lab host namespace
# as WHO (root or user), bounded by CF_TIMEOUT seconds (default 60), with
# TMPDIR pointing at a per-user directory so leftover overlays can be seen.
# Every check that runs childflow runs for both users: loop over ENGINE_WHO.

source "${CHILDFLOW_SOURCE_DIR:?CHILDFLOW_SOURCE_DIR must be the repository root}/tests/lab/lab.sh"
: "${CHILDFLOW:?CHILDFLOW must be the path of the childflow binary}"

ENGINE_WHO=(root user)
ENGINE_FAILURES=0
ENGINE_CHECKS=0
ENGINE_PY=/usr/bin/python3
CF_TIMEOUT=${CF_TIMEOUT:-$((60 * ${ENGINE_TIME_SCALE:-1}))}

check_pass() {
  ENGINE_CHECKS=$((ENGINE_CHECKS + 1))
  echo "ok - $*"
}

check_fail() {
  ENGINE_CHECKS=$((ENGINE_CHECKS + 1))
  ENGINE_FAILURES=$((ENGINE_FAILURES + 1))
  echo "FAIL: $*" >&2
}

# check_eq EXPECTED ACTUAL MSG
check_eq() {
  if [[ "$1" == "$2" ]]; then check_pass "$3"; else check_fail "$3: expected [$1], got [${2:0:3000}]"; fi
}

# check_contains HAYSTACK NEEDLE MSG
check_contains() {
  if [[ "$1" == *"$2"* ]]; then check_pass "$3"; else check_fail "$3: [$2] not found in [${1:0:3000}]"; fi
}

# check_not_contains HAYSTACK NEEDLE MSG
# On failure it shows the text around the first match, where the cause is.
check_not_contains() {
  if [[ "$1" != *"$2"* ]]; then check_pass "$3"; return; fi
  local before=${1%%"$2"*}
  local at=$((${#before} > 3000 ? ${#before} - 3000 : 0))
  check_fail "$3: [$2] unexpectedly found in [...${1:at:4000}]"
}

# check_match HAYSTACK ERE MSG
check_match() {
  if [[ "$1" =~ $2 ]]; then check_pass "$3"; else check_fail "$3: /$2/ does not match [${1:0:3000}]"; fi
}

# check_le A B MSG : numeric A <= B (decimals allowed).
check_le() {
  if awk -v a="$1" -v b="$2" 'BEGIN{exit !(a <= b)}'; then
    check_pass "$3 ($1 <= $2)"
  else
    check_fail "$3: expected $1 <= $2"
  fi
}

# as WHO CMD... : runs CMD in the lab host ns as root or as LAB_USER.
as() {
  local who=$1
  shift
  # CHILDFLOW_FORCE_FALLBACK (docs/kernel.md) is passed on explicitly, so a
  # forced-fallback run of these tests forces it for both users.
  local force=()
  [[ -n "${CHILDFLOW_FORCE_FALLBACK:-}" ]] && force=("CHILDFLOW_FORCE_FALLBACK=$CHILDFLOW_FORCE_FALLBACK")
  case $who in
    root) lab_root env TMPDIR="$LAB_DIR/tmp-root" "${force[@]}" "$@" ;;
    user) lab_user env TMPDIR="$LAB_DIR/tmp-user" "${force[@]}" "$@" ;;
    *) fail "as: unknown user $who" ;;
  esac
}

# cf WHO ARGS... : runs childflow ARGS as WHO, killed after CF_TIMEOUT seconds.
cf() {
  local who=$1
  shift
  as "$who" timeout -k 5 "$CF_TIMEOUT" "$CHILDFLOW" "$@"
}

# descendants PID : every descendant of PID, one per line.
descendants() {
  local c
  for c in $(pgrep -P "$1" 2>/dev/null); do
    echo "$c"
    descendants "$c"
  done
}

# engine_pid JOB : the pid of the engine of the childflow run started by the
# background job JOB (the childflow process among its descendants whose
# parent is not childflow: the stub and its helpers are the engine's
# children). Waits up to 10 s; prints nothing if there is none.
engine_pid() {
  local p pp
  for _ in $(seq 200); do
    for p in $(descendants "$1"); do
      [[ $(cat "/proc/$p/comm" 2>/dev/null) == childflow ]] || continue
      pp=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || continue
      [[ $(cat "/proc/$pp/comm" 2>/dev/null) == childflow ]] && continue
      echo "$p"
      return 0
    done
    sleep 0.05
  done
}

# now_s : seconds since the epoch, with microseconds.
now_s() {
  echo "$EPOCHREALTIME"
}

# elapsed_s START : seconds since START (from now_s), 3 decimals.
elapsed_s() {
  awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.3f", b-a}'
}

host_files_digest() {
  sha256sum /etc/resolv.conf /etc/hosts 2>&1
  echo "lab host view:"
  lab_root sha256sum /etc/resolv.conf /etc/hosts 2>&1
}

# host_files_snapshot : remembers the digests that host_files_check compares to.
host_files_snapshot() {
  ENGINE_HOST_FILES=$(host_files_digest)
}

host_files_check() {
  local now
  now=$(host_files_digest)
  check_eq "$ENGINE_HOST_FILES" "$now" "${1:-host /etc/resolv.conf and /etc/hosts unchanged (machine and lab host view)}"
}

engine_up() {
  lab_up
  lab_tun_open
  install -d -m 0700 "$LAB_DIR/tmp-root"
  install -d -m 0700 -o "$LAB_USER" -g "$LAB_USER" "$LAB_DIR/tmp-user"
  install -d -m 0755 "$LAB_DIR/py"
  cd "$LAB_DIR/home" || fail "cd $LAB_DIR/home"
  host_files_snapshot
  echo "childflow: $CHILDFLOW"
  engine_paths_check
}

# engine_paths_check : prints which kernel-feature paths the engine takes
# (childflow --doctor) and, when CHILDFLOW_FORCE_FALLBACK names features,
# checks that the doctor reports each one forced off for both users, so a
# forced-fallback run proves that it ran the fallback.
engine_paths_check() {
  local who doc feature
  for who in "${ENGINE_WHO[@]}"; do
    doc=$(as "$who" "$CHILDFLOW" --doctor 2>&1 | grep "kernel feature" || true)
    echo "# [$who] $doc"
    [[ -z "${CHILDFLOW_FORCE_FALLBACK:-}" ]] && continue
    for feature in ${CHILDFLOW_FORCE_FALLBACK//,/ }; do
      check_match "$doc" "kernel feature $feature: .*CHILDFLOW_FORCE_FALLBACK turns it off" \
        "[$who] the doctor reports $feature forced off for this run"
    done
  done
}

# engine_py NAME : prints the path of a helper script written from stdin.
engine_py() {
  local f=$LAB_DIR/py/$1
  cat >"$f"
  chmod 0644 "$f"
  echo "$f"
}

# bulk_fixtures MB : sets size (bytes), want_down (the sha256 of GET
# /bytes/size), upload (a file of size random bytes, readable by both users)
# and want_up (its sha256), for transfers checked end to end.
bulk_fixtures() {
  size=$(($1 * 1000 * 1000))
  want_down=$(lab_bytes_sha256 "$size")
  upload=$LAB_DIR/upload.bin
  head -c "$size" /dev/urandom >"$upload"
  chmod 0644 "$upload"
  want_up=$(sha256sum "$upload" | cut -d' ' -f1)
}

# The gateway addresses are the nameservers childflow writes into the tree's
# resolv.conf (docs/tree.md).
GW_SCRIPT='g4=$(awk "/^nameserver [0-9.]+\$/{print \$2; exit}" /etc/resolv.conf); g6=$(awk "/^nameserver .*:/{print \$2; exit}" /etc/resolv.conf)'

engine_finish() {
  host_files_check
  local who left
  for who in "${ENGINE_WHO[@]}"; do
    left=$(ls -A "$LAB_DIR/tmp-$who")
    check_eq "" "$left" "no overlay files left by childflow runs as $who (TMPDIR)"
  done
  echo "# $((ENGINE_CHECKS - ENGINE_FAILURES)) checks passed, $ENGINE_FAILURES failed"
  if ((ENGINE_FAILURES > 0)); then exit 1; fi
  exit 0
}
