# Shared by the rootful end-to-end tests (rootful_*.sh), sourced after
# lib_engine.sh and engine_up: the host state a run may change, and a
# rootful run with a flow log.
#
# snapshot: the lab host's `nft list ruleset`, links, rules, routes and the
# sysctls a run changes (forwarding, conntrack accounting); BEFORE holds the
# state before the first run, and check_state NAME compares with it.
# rf NAME ARGS... runs `childflow --root -d LAB_DNS4 --flow-log LOG ARGS...`
# in the lab host namespace and sets RC, OUT, ERR and LOG.
# check_fast NAME "rc=N ms=M" WANT: the status a command printed through
# TIMED (a reset makes curl exit 7 at once, a dropped SYN 28 at its
# --max-time).
command -v nft >/dev/null || fail "nft (package nftables) is needed to inspect the ruleset"

snapshot() {
  lab_root sh -c '
    echo "## nft"; nft list ruleset
    echo "## links"; ip -d link show
    echo "## rules"; ip rule show; ip -6 rule show
    echo "## routes"; ip route show table all; ip -6 route show table all
    echo "## sysctls"
    for f in /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/forwarding \
             /proc/sys/net/ipv6/conf/*/forwarding /proc/sys/net/netfilter/nf_conntrack_acct; do
      [ -e "$f" ] && echo "$f $(cat "$f")"
    done' 2>&1
}
BEFORE=$(snapshot)
check_state() {
  local now
  now=$(snapshot)
  if [[ "$now" == "$BEFORE" ]]; then
    check_pass "$1: host ruleset, links, rules, routes and sysctls unchanged"
  else
    check_fail "$1: host state changed: $(diff <(echo "$BEFORE") <(echo "$now") | head -20)"
  fi
}

OUTD=$LAB_DIR/out-root
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
# shellcheck disable=SC2016  # expanded inside the tree
TIMED='s=$(date +%s%N); "$@" >/dev/null 2>&1; rc=$?; e=$(date +%s%N); echo "rc=$rc ms=$(((e-s)/1000000))"'
check_fast() {
  if [[ $2 =~ rc=([0-9]+)\ ms=([0-9]+) ]]; then
    check_eq "$3" "${BASH_REMATCH[1]}" "$1: exit status (${BASH_REMATCH[2]} ms)"
  else
    check_fail "$1: no timing line in [$2]"
  fi
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
