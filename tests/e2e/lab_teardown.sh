#!/usr/bin/env bash
# Proves that a lab leaves nothing behind: namespaces, processes, LAB_DIR and
# /etc/netns files are gone after a normal exit, after a failed assertion,
# after SIGTERM, and (via the next lab_up's stale cleanup) after SIGKILL; that
# lab_down is idempotent; and that a lab next to another one is not disturbed.
set -euo pipefail
src=${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}
source "$src/tests/lab/lab.sh"
lab_up
work=$LAB_DIR

# A sub-shell script that brings a lab up, records what it created in $1, then
# does $2: "exit", "fail", "down-twice" or "wait" (blocks until signalled).
cat >"$work/child.sh" <<'CHILD'
set -euo pipefail
source "$CHILDFLOW_SOURCE_DIR/tests/lab/lab.sh"
lab_up >/dev/null
rec=$1
{
  echo "ns $LAB_NS $LAB_NS_ROUTER $LAB_NS_INET"
  echo "dir $LAB_DIR"
  echo "pids $(for n in "$LAB_NS" "$LAB_NS_ROUTER" "$LAB_NS_INET"; do ip netns pids "$n"; done | paste -sd' ')"
} >"$rec.tmp"
mv "$rec.tmp" "$rec"
lab_root curl -sS --max-time 5 http://www.example.test/ >/dev/null || fail "child lab does not work"
case $2 in
  exit) exit 0 ;;
  fail) fail "deliberate failure" ;;
  down-twice) lab_down; lab_down; exit 0 ;;
  wait) lab_root sleep 600 & wait $! ;; # wait: a signal interrupts it at once
esac
CHILD

# check_gone REC : everything the child recorded is gone.
check_gone() {
  local rec=$1 what=$2 ns dir pid
  read -r _ ns_list < <(grep '^ns ' "$rec")
  dir=$(awk '/^dir /{print $2}' "$rec")
  local pids
  pids=$(awk '/^pids /{$1=""; print}' "$rec")
  [[ -n $pids ]] || fail "$what: no daemon pids were recorded"
  for ns in $ns_list; do
    assert_not_contains "$(ip netns list)" "$ns" "$what: namespace $ns deleted"
    assert_file_absent "/etc/netns/$ns" "$what: /etc/netns/$ns removed"
  done
  assert_file_absent "$dir" "$what: LAB_DIR removed"
  # A killed daemon whose parent died with the SIGKILLed shell is reparented
  # and may stay a zombie until the machine's init reaps it: a zombie runs
  # nothing and holds nothing, so it counts as gone. Wait briefly for the rest.
  local deadline=$((SECONDS + 10)) alive comm
  while :; do
    alive=""
    for pid in $pids; do
      [[ -e /proc/$pid ]] || continue
      [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && continue
      # It may end between the checks: then cat fails, and under set -e a
      # failing substitution in an assignment would end this script silently.
      comm=$(cat /proc/"$pid"/comm 2>/dev/null) || continue
      alive+=" $pid($comm)"
    done
    [[ -z $alive ]] || ((SECONDS >= deadline)) && break
    sleep 0.05
  done
  [[ -z $alive ]] || fail "$what: process(es)$alive survived"

  ok "$what: all $(wc -w <<<"$pids") lab processes are gone"
}

run_child() { CHILDFLOW_SOURCE_DIR=$src bash "$work/child.sh" "$@"; }

rc=0; run_child "$work/rec.exit" exit || rc=$?
assert_eq 0 "$rc" "normal run exits 0"
check_gone "$work/rec.exit" "normal exit"

rc=0; run_child "$work/rec.fail" fail 2>/dev/null || rc=$?
assert_eq 1 "$rc" "a failed assertion exits 1"
check_gone "$work/rec.fail" "failed assertion"

rc=0; run_child "$work/rec.down" down-twice || rc=$?
assert_eq 0 "$rc" "lab_down twice then exit"
check_gone "$work/rec.down" "lab_down twice"

CHILDFLOW_SOURCE_DIR=$src bash "$work/child.sh" "$work/rec.term" wait &
child=$! # the child bash itself (a function would run in a forked subshell)
lab_wait_until 20 "child lab up" test -s "$work/rec.term"
kill -TERM "$child"
rc=0; wait "$child" || rc=$?
assert_eq 143 "$rc" "SIGTERM ends the lab's shell with 143"
check_gone "$work/rec.term" "SIGTERM"

# SIGKILL: nothing can run in the killed shell; the next lab_up removes the leftovers.
CHILDFLOW_SOURCE_DIR=$src bash "$work/child.sh" "$work/rec.kill" wait &
child=$!
lab_wait_until 20 "child lab up" test -s "$work/rec.kill"
kill -KILL "$child"
wait "$child" 2>/dev/null || true
read -r _ killed_host _ < <(grep '^ns ' "$work/rec.kill")
assert_contains "$(ip netns list)" "$killed_host" "a SIGKILLed lab is left behind at first"
rc=0; run_child "$work/rec.after" exit 2>/dev/null || rc=$?
assert_eq 0 "$rc" "a lab after a SIGKILLed one comes up"
check_gone "$work/rec.kill" "SIGKILL, then the next lab_up"
check_gone "$work/rec.after" "the run after SIGKILL"

# This shell's own lab was not disturbed by any of the above.
out=$(lab_root curl -sS --max-time 5 http://www.example.test/) || fail "parent lab broken"
assert_contains "$out" "childflow lab www" "a concurrent lab keeps working"

# Finally, this shell's own teardown, observed from outside.
own="ns $LAB_NS $LAB_NS_ROUTER $LAB_NS_INET"
own_dir=$LAB_DIR
own_pids=$(for n in "$LAB_NS" "$LAB_NS_ROUTER" "$LAB_NS_INET"; do ip netns pids "$n"; done | paste -sd' ')
lab_down
lab_down
printf '%s\ndir %s\npids %s\n' "$own" "$own_dir" "$own_pids" >/tmp/cflab-teardown-rec.$$
trap 'rm -f /tmp/cflab-teardown-rec.$$' EXIT
check_gone /tmp/cflab-teardown-rec.$$ "lab_down in this shell"
