#!/usr/bin/env bash
# The rootful backend end to end (docs/rootful.md), as root in the lab host
# namespace:
# - curl by name (through the DNS forwarder, -d the lab resolver) over IPv4
#   and IPv6 to the lab web server; the server sees the lab host's address
#   (masquerade);
# - each policy rule blocking TCP at once with a reset (curl exit 7, never
#   its time-out's 28), UDP getting ICMP administratively prohibited,
#   and the denial in the flow log; an allow rule under default-deny;
# - the host's wildcard-bound UDP service gets the tree's datagram to the host's
#   address but none sent to a broadcast or multicast address;
# - two runs at once, each with its own link and table;
# - --learn writes a profile from conntrack's flow events, and its replay
#   allows the learnt name and address and nothing else;
# - an option the rootful backend does not do: exit 2, one line, nothing
#   created;
# - after every run, the lab host's `nft list ruleset`, links, rules, routes
#   and forwarding sysctls are byte-identical to before;
# - a failure after each setup step (forced with CHILDFLOW_TEST_FAIL_STEP)
#   undoes everything done before it;
# - SIGTERM and SIGINT end the tree and undo everything;
# - SIGKILL leaves the table and forwarding behind, the next run warns, and
#   `childflow --cleanup` restores the same state.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
source "$CHILDFLOW_SOURCE_DIR/tests/e2e/lib_rootful.sh"

UDP='import socket,sys,errno
f=socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s=socket.socket(f,socket.SOCK_DGRAM); s.settimeout(3); s.connect((sys.argv[1],7))
try:
  s.send(b"rootful probe"); print("reply", len(s.recv(100)))
except socket.timeout: print("TIMEOUT")
except OSError as e: print(errno.errorcode.get(e.errno))'

# --- by name, IPv4 and IPv6, masqueraded --------------------------------------
rf names -- sh -c "curl -4 -sS --max-time 5 http://www.example.test/; echo; \
  curl -6 -sS --max-time 5 http://www.example.test/; echo; \
  curl -4 -sS --max-time 5 http://www.example.test/peer; echo; \
  curl -6 -sS --max-time 5 http://www.example.test/peer; echo"
check_eq 0 "$RC" "by name: exit 0 (stderr: ${ERR:0:300})"
check_eq 2 "$(grep -c 'childflow lab www' <<<"$OUT")" "by name: the page over IPv4 and IPv6"
check_contains "$OUT" "$LAB_HOST4" "IPv4 masqueraded behind the lab host's address"
check_contains "$OUT" "$LAB_HOST6" "IPv6 masqueraded behind the lab host's address"
check_contains "$(cat "$LOG")" '"event":"dns_query"' "the forwarder's queries are in the flow log"
check_state "by name"

# DNS over TCP at the forwarder, and a truncated UDP answer retried over TCP;
# the hidden --network-backend rootful is --root.
rf dnstcp -- sh -c "dig +tcp +short www.example.test A; echo big=\$(dig +short big.example.test A | grep -c .)"
check_contains "$OUT" "$LAB_WWW4" "DNS over TCP through the forwarder"
check_contains "$OUT" "big=160" "a truncated answer is fetched again over TCP"
set +e
out=$(cf root --network-backend rootful -d "$LAB_DNS4" -- sh -c 'ip -o link show eth0 | grep -c veth; curl -sS --max-time 5 http://www.example.test/ >/dev/null; echo rc=$?' 2>&1)
set -e
check_contains "$out" "rc=0" "--network-backend rootful runs the rootful backend ($out)"
check_not_contains "$(as root "$CHILDFLOW" --help)" "network-backend" "--network-backend is not in --help"
check_state "DNS over TCP, --network-backend"

# SIGTERM and SIGINT to childflow: forwarded to the tree, which ends;
# everything undone.
for sig in TERM:143 INT:130; do
  lab_root timeout 60 "$CHILDFLOW" --root -d "$LAB_DNS4" -- sleep 30 >/dev/null 2>&1 &
  job=$!
  rootful_wait_link "the run's link"
  rootful_signal "${sig%:*}" "$job"
  check_eq "${sig#*:}" "$SIGNAL_RC" "SIG${sig%:*}: the tree ends with it (128 + its number)"
  check_state "SIG${sig%:*}"
done

# A setup step that fails: everything done before it is undone, whatever
# the run had created by then (a table with TPROXY routing and an --iface
# pin, a record, forwarding, the veth, the forwarder's sockets).
for step in host attach forwarder; do
  set +e
  out=$(lab_root env CHILDFLOW_TEST_FAIL_STEP=$step timeout 60 "$CHILDFLOW" --root -d "$LAB_DNS4" \
    --proxy "http://$LAB_HTTP_PROXY" --iface eth0 --allow-domain example.test --summary -- \
    sh -c 'echo the command ran' 2>&1)
  frc=$?
  set -e
  check_eq 1 "$frc" "failure after setup step $step: exit 1"
  check_contains "$out" "forced failure after step $step" "failure after setup step $step: says which step"
  check_not_contains "$out" "the command ran" "failure after setup step $step: the command never ran"
  # (Records of runs still alive may belong to other labs; a dead one is a leftover.)
  check_eq "" "$(for r in /run/childflow/*/record; do [ -e "$r" ] || continue
      p=$(awk '$1 == "pid" {print $2}' "$r"); kill -0 "$p" 2>/dev/null || echo "$r"; done)" \
    "failure after setup step $step: no record of a dead run left"
  check_state "failure after setup step $step"
done

# --- each rule blocks, at once --------------------------------------------------
rf offline --offline -- sh -c "sh -c '$TIMED' t curl -sS --max-time 5 http://$LAB_WWW4/; \
  getent hosts www.example.test; echo getent=\$?"
check_fast "offline: TCP reset" "$(grep '^rc=' <<<"$OUT")" 7
check_contains "$OUT" "getent=2" "offline: names do not resolve"
check_contains "$(cat "$LOG")" '"reason_code":"offline"' "offline: policy_violation logged"
check_state "offline"

rf metadata --block-metadata -- sh -c "$TIMED" t curl -sS --max-time 5 http://169.254.169.254/
check_fast "metadata: TCP reset" "$OUT" 7
check_contains "$(cat "$LOG")" '"reason_code":"metadata"' "metadata: policy_violation logged"
rf private --block-private -- sh -c "$TIMED" t curl -sS --max-time 5 http://10.1.2.3/
check_fast "private: TCP reset" "$OUT" 7
check_contains "$(cat "$LOG")" '"reason_code":"private"' "private: policy_violation logged"
check_state "metadata, private"

www0=$(grep -c . "$LAB_WWW_LOG" || true)
rf deny --deny-cidr 203.0.113.0/24 --deny-cidr 2001:db8:2::/64 --summary -- sh -c "
  sh -c '$TIMED' t curl -4 -sS --max-time 5 http://www.example.test/
  sh -c '$TIMED' t curl -6 -sS --max-time 5 http://www.example.test/
  python3 -c '$UDP' $LAB_ECHO4"
check_fast "deny-cidr: IPv4 TCP reset" "$(grep '^rc=' <<<"$OUT" | sed -n 1p)" 7
check_fast "deny-cidr: IPv6 TCP reset" "$(grep '^rc=' <<<"$OUT" | sed -n 2p)" 7
check_contains "$OUT" "EHOSTUNREACH" "deny-cidr: UDP gets ICMP administratively prohibited"
check_eq "$www0" "$(grep -c . "$LAB_WWW_LOG" || true)" "deny-cidr: the web server saw nothing"
check_contains "$(cat "$LOG")" '"remote":"203.0.113.10:80"' "deny-cidr: the IPv4 destination logged"
check_contains "$(cat "$LOG")" '"matched_cidr":"2001:db8:2::/64"' "deny-cidr: the IPv6 rule logged"
check_contains "$ERR" "deny_cidr" "deny-cidr: in the summary"
check_state "deny-cidr"

# The host's services bound to the wildcard address: the tree reaches them
# at the host's own address when the policy allows it (the control), never
# through the limited, the link's directed or a multicast broadcast.
BCAST_PORT=47999
lab_root timeout 20 python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.settimeout(8)
out = open(sys.argv[2], "w")
try:
    while True:
        data, peer = s.recvfrom(100)
        out.write(data.decode() + "\n"); out.flush()
except socket.timeout:
    pass' "$BCAST_PORT" "$OUTD/bcast.got" &
bcast_job=$!
sleep 0.5
rf bcast -- python3 -c '
import socket, sys, time
port = int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.connect((sys.argv[1], 1)); me = s.getsockname()[0]; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
directed = me.rsplit(".", 1)[0] + "." + str(int(me.rsplit(".", 1)[1]) | 3)
for name, dst in (("limited", "255.255.255.255"), ("directed", directed), ("multicast", "224.0.0.1"), ("control", sys.argv[1])):
    for _ in range(3):
        try:
            s.sendto(name.encode(), (dst, port))
        except OSError as e:
            print(name, e)
    time.sleep(0.2)
print("sent")' "$LAB_HOST4" "$BCAST_PORT"
wait "$bcast_job" || true
check_contains "$OUT" "sent" "broadcast: the tree sent its datagrams ($ERR)"
got=$(sort -u "$OUTD/bcast.got" | tr '\n' ' ')
check_eq "control " "$got" "broadcast: the host's wildcard socket got the control only, no broadcast or multicast"
check_state "broadcast"

rf dflt --default-policy deny --allow-cidr "$LAB_WWW4/32" -- sh -c "
  curl -4 -sS --max-time 5 http://www.example.test/; echo
  sh -c '$TIMED' t curl -sS --max-time 5 http://$LAB_ECHO4:9/"
check_contains "$OUT" "childflow lab www" "default-deny: the allowed address is reached"
check_fast "default-deny: anything else reset" "$(grep '^rc=' <<<"$OUT")" 7
check_contains "$(cat "$LOG")" '"reason_code":"default_deny"' "default-deny: logged"
check_state "default-deny"

# --- two runs at once ------------------------------------------------------------
# Each tree waits until both runs are up (a file each in a shared directory),
# so the two are certainly at once.
SYNC=$LAB_DIR/sync
install -d -m 0777 "$SYNC"
both="until [ -e $SYNC/a ] && [ -e $SYNC/b ]; do sleep 0.1; done; sleep 0.5"
cf root --root -d "$LAB_DNS4" -- sh -c "touch $SYNC/a; $both; curl -sS --max-time 5 http://www.example.test/" >"$OUTD/c1.out" 2>&1 &
c1=$!
cf root --root -d "$LAB_DNS4" -- sh -c "touch $SYNC/b; $both; curl -6 -sS --max-time 5 http://www.example.test/" >"$OUTD/c2.out" 2>&1 &
c2=$!
lab_wait_until 20 "both runs started" sh -c "[ -e $SYNC/a ] && [ -e $SYNC/b ]"
links=$(lab_root ip -o link show | grep -c ': cf[0-9a-f]\{8\}@' || true)
tables=$(lab_root nft list tables | grep -c 'table inet childflow_' || true)
wait "$c1" && r1=0 || r1=$?
wait "$c2" && r2=0 || r2=$?
check_eq "0 0" "$r1 $r2" "two runs at once both succeed ($(head -c 300 "$OUTD/c1.out") $(head -c 300 "$OUTD/c2.out"))"
check_eq "2 2" "$links $tables" "two runs at once: two links, two tables"
check_contains "$(cat "$OUTD/c1.out" "$OUTD/c2.out")" "childflow lab www" "two runs at once: pages served"
check_state "two runs"

# --- --learn: a profile from the tree's flows (conntrack's events), replayed ------
P=$OUTD/learnt.toml
rf learn --learn "$P" -- sh -c "curl -4 -sS -o /dev/null -w 'http=%{http_code}\n' http://www.example.test/rootful-learn
  python3 -c '$UDP' $LAB_ECHO4"
check_eq 0 "$RC" "--learn: the run exits 0 ($ERR)"
check_contains "$OUT" "http=404" "--learn: fetched by name"
check_contains "$OUT" "reply" "--learn: the UDP datagram was echoed"
check_contains "$ERR" "childflow: --learn: wrote 1 name and 1 address from 2 flows into $P" "--learn: says what it wrote"
toml() { python3 -c 'import sys, tomllib; p = tomllib.load(open(sys.argv[1], "rb")); print(eval(sys.argv[2]))' "$1" "$2"; }
check_eq "deny" "$(toml "$P" 'p["default_policy"]')" "--learn: the profile denies by default"
check_eq "['www.example.test']" "$(toml "$P" 'p["allow_domains"]')" "--learn: allow_domains, the name resolved"
check_eq "['$LAB_ECHO4/32']" "$(toml "$P" 'p["allow_cidrs"]')" "--learn: allow_cidrs, the address reached without a name"
check_state "--learn"
dns0=$(grep -c . "$LAB_DNS_LOG" || true)
rf replay --profile "$P" -- sh -c "curl -4 -sS -o /dev/null -w 'http=%{http_code}\n' http://www.example.test/rootful-replay
  python3 -c '$UDP' $LAB_ECHO4
  curl -sS --max-time 5 http://echo.example.test/; echo other=\$?
  python3 -c '$UDP' $LAB_ECHO6"
check_contains "$OUT" "http=404" "replay: the learnt name works"
check_contains "$(cat "$LAB_WWW_LOG")" "GET /rootful-replay" "replay: the web server served it"
check_contains "$OUT" "reply" "replay: the learnt address works"
check_contains "$OUT" "other=6" "replay: another name does not resolve"
check_not_contains "$(tail -n +"$((dns0 + 1))" "$LAB_DNS_LOG")" "echo.example.test" "replay: the resolver got no query for it"
check_match "$OUT" "(EHOSTUNREACH|EACCES)" "replay: another address is denied (ICMP prohibited)"
check_state "--learn replay"

# --- not yet: exit 2, one line, nothing created ----------------------------------
rf notyet --allow-host-loopback -- touch "$OUTD/notyet"
check_eq 2 "$RC" "--root with --allow-host-loopback: exit 2"
check_eq 1 "$(grep -c . <<<"$ERR")" "--root with --allow-host-loopback: one line ($ERR)"
check_contains "$ERR" "not available with the rootful backend" "--root with --allow-host-loopback: says why"
check_eq "" "$(ls "$OUTD/notyet" 2>/dev/null)" "--root with --allow-host-loopback: the command never ran"
check_state "refused options"

# --- SIGKILL, then --cleanup -------------------------------------------------------
rootful_killed
check_contains "$AFTER_KILL" "table inet childflow_" "SIGKILL leaves the run's table"
rf next -- true
check_contains "$ERR" "was killed and left its state" "the next run warns about the killed run"
rootful_cleanup
check_contains "$CLEANUP" "removed run" "--cleanup says what it removed"
check_state "SIGKILL + --cleanup"
out=$(lab_root "$CHILDFLOW" --cleanup 2>&1) || true
check_contains "$out" "nothing to clean up" "--cleanup again: nothing left"

engine_finish
