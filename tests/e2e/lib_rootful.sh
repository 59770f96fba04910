# Shared by the rootful end-to-end tests (rootful_net.sh, rootful_proxy.sh):
# the lab host's state that a rootful run may change and must leave as it
# found it, a rootful run with a flow log, and a timed command.
# Source after lib_engine.sh's engine_up.
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
             /proc/sys/net/ipv6/conf/*/forwarding; do echo "$f $(cat "$f")"; done' 2>&1
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

OUTD=${OUTD:-$LAB_DIR/out-root}
install -d -m 0755 "$OUTD"
# rf NAME ARGS... : a rootful run with a flow log; sets RC, OUT, ERR, LOG.
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
# A reset makes curl fail with 7 (cannot connect) at once; a dropped SYN
# would end in its --max-time, exit 28. The status says which, no clock
# needed (the time is printed for the reader).
check_fast() {
  if [[ $2 =~ rc=([0-9]+)\ ms=([0-9]+) ]]; then
    check_eq "$3" "${BASH_REMATCH[1]}" "$1: exit status (${BASH_REMATCH[2]} ms)"
  else
    check_fail "$1: no timing line in [$2]"
  fi
}
