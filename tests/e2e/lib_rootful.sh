# shellcheck shell=bash
# Variables here are used by the rootful_*.sh scripts that source it.
# shellcheck disable=SC2034,SC2016
# Shared helpers for the rootful backend's end-to-end tests
# (tests/e2e/rootful_*.sh), sourced after lib_engine.sh's engine_up.
#
# - rootful_baseline: records the lab host's state a rootful run may change
#   (`nft list ruleset`, links, rules, routes of every table, the
#   forwarding and conntrack accounting sysctls), once when sourced and
#   again on rootful_baseline (after a test changed the lab on purpose);
#   check_state NAME compares with it byte for byte.
# - rf NAME ARGS...: a rootful run as root with the lab resolver and a flow
#   log; sets RC, OUT, ERR and LOG.
# - TIMED / check_fast: tell a reset (curl exit 7 at once) from a drop (curl's
#   --max-time, exit 28) by the status, with the time printed for the reader.
# - check_schema NAME FILE: the flow log validates (docs/flow-log-schema.md).
# - rootful_wait_link DESC: a run started in the background has its link.
# - rootful_signal SIG JOB: SIG to the background run JOB's childflow, then
#   its exit status in SIGNAL_RC.
# - rootful_killed ARGS...: a run with ARGS, SIGKILLed once set up;
#   AFTER_KILL is the host state it left. rootful_cleanup: `--cleanup`
#   exits 0; CLEANUP is what it said.
command -v nft >/dev/null || fail "nft (package nftables) is needed to inspect the ruleset"

# The host state a run may change, as the lab host sees it.
snapshot() {
  lab_root sh -c '
    echo "## nft"; nft list ruleset
    echo "## links"; ip -d link show
    echo "## rules"; ip rule show; ip -6 rule show
    echo "## routes"; ip route show table all; ip -6 route show table all
    echo "## sysctls"
    for f in /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/forwarding \
             /proc/sys/net/ipv6/conf/*/forwarding; do
      [ ! -e "$f" ] || echo "$f $(cat "$f")"
    done
    # Absent until a run loads the conntrack module (a kernel that has it
    # as a module, e.g. Debian 6.1), which nothing unloads: absent reads as
    # the module'"'"'s default, 0.
    f=/proc/sys/net/netfilter/nf_conntrack_acct
    echo "$f $(cat "$f" 2>/dev/null || echo 0)"' 2>&1
}
rootful_baseline() { BEFORE=$(snapshot); }
rootful_baseline
check_state() {
  local now
  now=$(snapshot)
  if [[ "$now" == "$BEFORE" ]]; then
    check_pass "$1: host ruleset, links, rules, routes and sysctls unchanged"
  else
    check_fail "$1: host state changed: $(diff <(echo "$BEFORE") <(echo "$now") | head -20)"
  fi
}

OUTD=${OUTD:-$LAB_DIR/out-root}
install -d -m 0755 "$OUTD"
rf() {
  local name=$1
  shift
  LOG=$OUTD/$name.jsonl
  set +e
  OUT=$(cf root --root -d "$LAB_DNS4" --flow-log "$LOG" "$@" 2>"$OUTD/$name.err")
  RC=$?
  set -e
  ERR=$(cat "$OUTD/$name.err")
}
# timed CMD... inside the tree: "rc=N ms=M"
TIMED='s=$(date +%s%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo "rc=$rc ms=$(((e-s)/1000000))"'
check_fast() {
  if [[ $2 =~ rc=([0-9]+)\ ms=([0-9]+) ]]; then
    check_eq "$3" "${BASH_REMATCH[1]}" "$1: exit status (${BASH_REMATCH[2]} ms)"
  else
    check_fail "$1: no timing line in [$2]"
  fi
}

# The run's link appears: a run started in the background is set up.
rootful_wait_link() {
  lab_wait_until 10 "$1" sh -c "ip netns exec $LAB_NS ip -o link show | grep -q ': cf[0-9a-f]\{8\}@'"
}

# SIG (TERM, KILL) to the childflow of the run started in the background as
# JOB, then wait for it: SIGNAL_RC is its exit status.
rootful_signal() {
  local pid
  pid=$(engine_pid "$2" | head -n1)
  if [[ -n $pid ]]; then kill "-$1" "$pid" || true; else check_fail "SIG$1: no childflow process found"; fi
  wait "$2" && SIGNAL_RC=0 || SIGNAL_RC=$?
}
# A run (`--root -d LAB_DNS4 ARGS... -- sleep 30`) started in the background
# and killed with SIGKILL once its link is there; AFTER_KILL: the host's
# state it left behind.
rootful_killed() {
  local job
  lab_root timeout 60 "$CHILDFLOW" --root -d "$LAB_DNS4" "$@" -- sleep 30 >/dev/null 2>&1 &
  job=$!
  rootful_wait_link "the killed run's link"
  rootful_signal KILL "$job"
  AFTER_KILL=$(snapshot) || true
}
# `childflow --cleanup` exits 0; CLEANUP: what it said.
rootful_cleanup() {
  local crc
  CLEANUP=$(lab_root "$CHILDFLOW" --cleanup 2>&1) && crc=0 || crc=$?
  check_eq 0 "$crc" "--cleanup exits 0 ($CLEANUP)"
}

# The flow log validates against docs/flow-log-schema.md.
check_schema() {
  local v
  if v=$(python3 "$CHILDFLOW_SOURCE_DIR/tests/lab/flowlog_schema.py" "$2" 2>&1); then
    check_pass "$1: the flow log validates ($v)"
  else
    check_fail "$1: the flow log does not validate: $v"
  fi
}
