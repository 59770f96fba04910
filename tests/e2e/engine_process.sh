#!/usr/bin/env bash
# Process semantics end to end, as root and as the unprivileged lab user:
# - exit code propagation (the command's own code; 126/127 as a shell does);
# - signal propagation: a tree killed by signal N gives 128+N;
# - SIGTERM and SIGHUP sent to childflow are forwarded: childflow exits
#   promptly with 128+N while the tree runs `sleep 30`;
# - kill -9 of childflow kills the tree: the sleep inside is gone within a
#   bounded poll and no process of the sandbox's namespaces remains.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# A sleep whose argv[0] carries a unique marker, so it can be found on the host.
marker=cfe2e-$$-$RANDOM
sleeper=$LAB_DIR/sleep-$marker
ln -s "$(command -v sleep)" "$sleeper"
# The lab may wrap $CHILDFLOW (flow-log wrapper); the process is the real binary.
cf_real=$(readlink -f "${CHILDFLOW_REAL:-$CHILDFLOW}")
printf '#!/bin/sh\necho never\n' >"$LAB_DIR/not-executable"
chmod 0644 "$LAB_DIR/not-executable"

# pids_by_exe EXE : pids whose cmdline holds the marker and whose exe is EXE.
pids_by_exe() {
  local p
  for p in $(pgrep -f -- "$marker" || true); do
    [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$1" ]] && echo "$p"
  done
  return 0
}

# childflow_pid : the childflow process itself (its parent is not childflow).
childflow_pid() {
  local p pp
  for p in $(pids_by_exe "$cf_real"); do
    pp=$(awk '/^PPid:/{print $2}' "/proc/$p/status" 2>/dev/null) || continue
    [[ $(readlink "/proc/$pp/exe" 2>/dev/null) == "$cf_real" ]] || echo "$p"
  done
  return 0
}

# procs_in_netns INODE_LINK : pids whose network namespace is INODE_LINK.
procs_in_netns() {
  local d
  for d in /proc/[0-9]*; do
    [[ $(readlink "$d/ns/net" 2>/dev/null) == "$1" ]] && echo "${d#/proc/}"
  done
  return 0
}

# wait_gone TIMEOUT_S PID... : polls until no PID exists; returns 1 on timeout.
wait_gone() {
  local timeout=$1 start=$EPOCHREALTIME p alive
  shift
  while :; do
    alive=0
    for p in "$@"; do [[ -d /proc/$p ]] && alive=1; done
    ((alive)) || return 0
    awk -v a="$start" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN{exit !(b-a > t)}' && return 1
    sleep 0.05
  done
}

real_sleep=$(readlink -f "$(command -v sleep)")

# sleeps_running N : at least N marked sleeps run (called through poll_until).
# shellcheck disable=SC2317
sleeps_running() {
  (($(pids_by_exe "$real_sleep" | wc -l) >= $1))
}

# poll_until TIMEOUT_S CMD... : polls CMD every 50 ms; returns 1 on timeout.
poll_until() {
  local timeout=$1 start=$EPOCHREALTIME
  shift
  until "$@"; do
    awk -v a="$start" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN{exit !(b-a > t)}' && return 1
    sleep 0.05
  done
}

for who in "${ENGINE_WHO[@]}"; do
  # Exit codes.
  for code in 0 1 42 255; do
    rc=0
    cf "$who" -- sh -c "exit $code" || rc=$?
    check_eq "$code" "$rc" "[$who] exit $code of the command is childflow's exit code"
  done
  rc=0
  cf "$who" -- /nonexistent/command 2>/dev/null || rc=$?
  check_eq 127 "$rc" "[$who] a command that does not exist gives 127"
  rc=0
  cf "$who" -- "$LAB_DIR/not-executable" 2>/dev/null || rc=$?
  check_eq 126 "$rc" "[$who] a command that cannot be executed gives 126"

  # The tree killed by a signal: 128 + N.
  for sig in TERM KILL SEGV; do
    num=$(kill -l "$sig")
    rc=0
    cf "$who" -- sh -c "kill -$sig \$\$" 2>/dev/null || rc=$?
    check_eq $((128 + num)) "$rc" "[$who] a tree killed by SIG$sig gives $((128 + num))"
  done

  # Signals sent to childflow are forwarded; childflow exits promptly.
  for sig in TERM HUP; do
    num=$(kill -l "$sig")
    as "$who" "$CHILDFLOW" -- "$sleeper" 30 &
    job=$!
    poll_until 10 sleeps_running 1 || check_fail "[$who] the sleep did not start inside childflow within 10 s"
    cfpid=$(childflow_pid)
    sleep_pid=$(pids_by_exe "$real_sleep")
    if [[ -z $cfpid ]]; then
      check_fail "[$who] could not find the childflow process (marker $marker)"
      kill -KILL "$job" 2>/dev/null || true
      wait "$job" 2>/dev/null || true
      continue
    fi
    t0=$(now_s)
    kill -"$sig" "$cfpid"
    if wait_gone 5 "$cfpid" "$sleep_pid"; then
      check_pass "[$who] SIG$sig to childflow: childflow and the sleep are gone in $(elapsed_s "$t0")s"
    else
      check_fail "[$who] SIG$sig to childflow: still running after 5 s: $(ps -o pid,stat,args -p "$cfpid,$sleep_pid" 2>&1)"
      kill -KILL "$cfpid" "$sleep_pid" 2>/dev/null || true
    fi
    rc=0
    wait "$job" || rc=$?
    check_eq $((128 + num)) "$rc" "[$who] childflow exits $((128 + num)) after SIG$sig is forwarded to the tree"
  done

  # kill -9 of childflow kills the whole tree.
  install -d -m 0700 -o "$( [[ $who == user ]] && echo "$LAB_USER" || echo root)" "$LAB_DIR/tmp-kill9-$who"
  if [[ $who == root ]]; then
    lab_root env TMPDIR="$LAB_DIR/tmp-kill9-$who" "$CHILDFLOW" -- sh -c "'$sleeper' 300 & '$sleeper' 301; wait" &
  else
    lab_user env TMPDIR="$LAB_DIR/tmp-kill9-$who" "$CHILDFLOW" -- sh -c "'$sleeper' 300 & '$sleeper' 301; wait" &
  fi
  job=$!
  poll_until 10 sleeps_running 2 || check_fail "[$who] the two sleeps did not start inside childflow within 10 s"
  cfpid=$(childflow_pid)
  mapfile -t sleeps < <(pids_by_exe "$real_sleep")
  tree_netns=$(readlink "/proc/${sleeps[0]}/ns/net")
  tree_userns=$(readlink "/proc/${sleeps[0]}/ns/user")
  mapfile -t tree < <(procs_in_netns "$tree_netns")
  echo "# [$who] childflow $cfpid, sleeps ${sleeps[*]}, sandbox processes ${tree[*]} ($tree_netns)"
  if [[ -z $cfpid ]]; then
    check_fail "[$who] could not find the childflow process (marker $marker)"
  else
    t0=$(now_s)
    kill -KILL "$cfpid"
    if wait_gone 5 "${sleeps[@]}"; then
      check_pass "[$who] kill -9 of childflow: the sleeps inside are gone in $(elapsed_s "$t0")s"
    else
      check_fail "[$who] kill -9 of childflow: the tree survived 5 s: $(ps -o pid,stat,args -p "$(IFS=,; echo "${sleeps[*]}")" 2>&1)"
    fi
    if wait_gone 5 "${tree[@]}"; then
      check_pass "[$who] kill -9 of childflow: every process of the sandbox is gone"
    else
      check_fail "[$who] kill -9 of childflow: sandbox processes remain: $(ps -o pid,stat,args -p "$(IFS=,; echo "${tree[*]}")" 2>&1)"
    fi
    left=$(procs_in_netns "$tree_netns")
    check_eq "" "$left" "[$who] no process remains in the sandbox's network namespace"
    left=$(for d in /proc/[0-9]*; do [[ $(readlink "$d/ns/user" 2>/dev/null) == "$tree_userns" ]] && echo "${d#/proc/}"; done; true)
    check_eq "" "$left" "[$who] no process remains in the sandbox's user namespace"
    left=$(pgrep -f -- "$marker" || true)
    check_eq "" "$left" "[$who] no process with the run's marker remains"
  fi
  kill -KILL "${sleeps[@]}" 2>/dev/null || true
  wait "$job" 2>/dev/null || true
  left=$(ls -A "$LAB_DIR/tmp-kill9-$who")
  check_eq "" "$left" "[$who] kill -9 of childflow leaves no overlay files behind (TMPDIR)"
done

engine_finish
