# shellcheck shell=bash
# Variables and functions here are used by the scripts that source it.
# shellcheck disable=SC2034
# Shared set-up of the policy_*.sh and proxy_*.sh end-to-end tests. Source it
# right after lib_engine.sh's engine_up. It gives:
#   PY          the python3 both users can run
#   $LAB_DIR/out-root, $LAB_DIR/out-user   per-user output directories
#   udp_py      a probe: `$PY $udp_py HOST PORT` sends one datagram
#               ("childflow $POLICY_PROBE_TAG probe"; set the tag before
#               sourcing, default "policy") on a connected UDP socket and
#               prints "reply N", the errno name the socket got (e.g.
#               EHOSTUNREACH for ICMP prohibited), or TIMEOUT
#   run WHO NAME CHILDFLOW_ARGS...   runs childflow with --flow-log; sets RC,
#               OUT, ERR and LOG, and fails the check when childflow hung
#   violations LOG JQ_FILTER         number of matching policy_violation events
#   check_violation MSG LOG JQ_FILTER  at least one matching violation
#   check_schema LOG                 the log validates against the schema
#   lines FILE                       number of non-empty lines

PY=/usr/bin/python3
for who in root user; do
  install -d -m 0755 -o "$([[ $who == user ]] && echo "$LAB_USER" || echo root)" "$LAB_DIR/out-$who"
done

udp_py=$(engine_py udp_probe.py <<PYEOF
import errno, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((host, port))
try:
    s.send(b"childflow ${POLICY_PROBE_TAG:-policy} probe")
    print("reply", len(s.recv(2048)))
except socket.timeout:
    print("TIMEOUT")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PYEOF
)

run() {
  local who=$1 name=$2
  shift 2
  LOG=$LAB_DIR/out-$who/$name.jsonl
  set +e
  OUT=$(cf "$who" --flow-log "$LOG" "$@" 2>"$LAB_DIR/out-$who/$name.err")
  RC=$?
  set -e
  ERR=$(cat "$LAB_DIR/out-$who/$name.err")
  # 124/137: the CF_TIMEOUT guard killed childflow (a hang).
  if ((RC == 124 || RC == 137)); then check_fail "$who $name: childflow hung (exit $RC): ${ERR:0:500}"; fi
}

violations() {
  jq -c "select(.event==\"policy_violation\") | select($2)" "$1" 2>/dev/null | grep -c . || true
}

check_violation() {
  local n
  n=$(violations "$2" "$3")
  if ((n >= 1)); then check_pass "$1"; else check_fail "$1: no policy_violation with $3 in $(grep policy_violation "$2" 2>/dev/null | head -5)"; fi
}

check_schema() {
  local out
  if out=$($PY "$CHILDFLOW_SOURCE_DIR/tests/lab/flowlog_schema.py" "$1" 2>&1); then
    check_pass "flow log $(basename "$1") validates ($out)"
  else
    check_fail "flow log $(basename "$1") does not validate: $out"
  fi
}

lines() { grep -c . "$1" || true; }
