#!/usr/bin/env bash
# Capture views that read real links (docs/capture.md), as root in the lab
# host namespace:
# - rootless `-C wire-egress`: the tree's curl by name over IPv4 and IPv6
#   while the lab host itself fetches /noise from the same web server, asks
#   the resolver for noise.example.test and pings the server, in a loop, the
#   whole time. The file opens in tshark with no malformed packet, holds the
#   tree's SYNs from the lab host's addresses, its GETs and the pages, and
#   nothing of the host's own traffic; its frames carry `flow_id=N`
#   comments that are the flow log's flow ids of those connections;
# - the unprivileged user's `-C wire-egress` stops before the command runs,
#   exit 1, saying to run as root;
# - rootful frames carry their flow's flow_id (conntrack's, or the
#   violation's for a denied destination);
# - rootful `-C child|egress|both` (docs/rootful.md): the same files and
#   views as rootless, read from the veth's host end; the child view holds
#   the tree's own addresses and its DNS to the gateway, the egress view the
#   lab host's;
# - rootful `-C wire-egress` with the same host traffic beside it: the
#   tree's two connections only, masqueraded to the run's own ports
#   (61000-65095), SYN and SYN-ACK included; two such runs at once get
#   two ranges and each file holds its own run's connection only;
# - the host state is byte-identical after every rootful run.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_capture.sh"
command -v tshark >/dev/null || fail "tshark is not installed (scripts/install-deps.sh)"
engine_up
OUTD=$LAB_DIR/out-wire
# snapshot/check_state: the host state every rootful run must leave as found.
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_rootful.sh"

# check_opens WHAT FILE: tshark reads it and finds no malformed packet.
check_opens() {
  local rc=0 out err
  out=$(tshark -n -r "$2" -Y _ws.malformed -T fields -e frame.number 2>"$OUTD/tshark.err") || rc=$?
  err=$(grep -v '^Running as user' "$OUTD/tshark.err" || true)
  check_eq "0" "$rc" "$1: tshark reads $2 ($err)"
  check_eq "" "$err" "$1: tshark has nothing to say about the file"
  check_eq "" "$out" "$1: no malformed packet"
}
# --- rootless wire-egress, with the host's own traffic beside it --------------------
noise() {
  while :; do
    curl -s --max-time 2 "http://$LAB_WWW4/noise" >/dev/null 2>&1 || true
    curl -s --max-time 2 -g "http://[$LAB_WWW6]/noise" >/dev/null 2>&1 || true
    dig +short +time=1 +tries=1 "@$LAB_DNS4" noise.example.test >/dev/null 2>&1 || true
    ping -c 1 -W 1 "$LAB_WWW4" >/dev/null 2>&1 || true
  done
}
lab_root bash -c "$(declare -f noise); LAB_WWW4=$LAB_WWW4 LAB_WWW6=$LAB_WWW6 LAB_DNS4=$LAB_DNS4; noise" &
noise_job=$!
sleep 0.5

W=$OUTD/wire.pcapng
LOG=$OUTD/wire.jsonl
rc=0
out=$(cf root --flow-log "$LOG" -c "$W" -C wire-egress -- sh -c \
  'curl -4 -sS --max-time 5 http://www.example.test/; curl -6 -sS --max-time 5 http://www.example.test/; ping -4 -c 1 -W 2 www.example.test >/dev/null; echo ping=$?' \
  2>"$OUTD/wire.err") || rc=$?
kill "$noise_job" 2>/dev/null || true
wait "$noise_job" 2>/dev/null || true
check_eq 0 "$rc" "wire-egress: the run exits 0 ($(head -c 300 "$OUTD/wire.err"))"
check_eq 2 "$(grep -c 'childflow lab www' <<<"$out")" "wire-egress: the page over IPv4 and IPv6"
check_contains "$out" "ping=0" "wire-egress: ping through the engine"
check_opens "wire-egress" "$W"
desc=$(tshark -n -r "$W" -V -c 1 2>/dev/null | grep -m1 "Interface description" || true)
check_contains "$desc" "childflow view=wire-egress backend=rootless-internal kind=wire interface=any" "wire-egress: interface description"

syn4=$(tshark_fields "$W" "tcp.flags.syn==1 && tcp.flags.ack==0 && ip.dst==$LAB_WWW4" -e ip.src | sort -u)
check_eq "$LAB_HOST4" "$syn4" "wire-egress: the IPv4 SYN, from the lab host's address"
syn6=$(tshark_fields "$W" "tcp.flags.syn==1 && tcp.flags.ack==0 && ipv6.dst==$LAB_WWW6" -e ipv6.src | sort -u)
check_eq "$LAB_HOST6" "$syn6" "wire-egress: the IPv6 SYN, from the lab host's address"
check_eq 1 "$(tshark_fields "$W" "tcp.flags.syn==1 && tcp.flags.ack==1 && ip.src==$LAB_WWW4" -e frame.number | wc -l)" "wire-egress: the first reply (SYN-ACK) over IPv4"
gets=$(tshark_fields "$W" "http.request" -e http.request.uri | sort | tr '\n' ' ')
check_eq "/ / " "$gets" "wire-egress: the tree's two GETs, and no other request"
check_eq 2 "$(tshark_fields "$W" "http.response" -e frame.number | wc -l)" "wire-egress: the two responses"
check_eq 2 "$(tshark_fields "$W" "tcp" -e tcp.stream | sort -u | wc -l)" "wire-egress: exactly the tree's two TCP connections"
check_eq "" "$(tshark_fields "$W" "dns.qry.name contains \"noise\"" -e dns.qry.name)" "wire-egress: none of the host's own DNS"
dns=$(tshark_fields "$W" "dns.flags.response==0" -e dns.qry.name | sort -u | tr '\n' ' ')
check_contains "$dns" "www.example.test" "wire-egress: the tree's DNS, relayed to the resolver"
echo_ids=$(tshark_fields "$W" "icmp.type==8" -e icmp.ident | sort -u | wc -l)
check_eq 1 "$echo_ids" "wire-egress: one echo identifier (the tree's ping), not the host's pings"
check_not_contains "$(tshark -n -r "$W" -V 2>/dev/null)" "/noise" "wire-egress: no byte of the host's own HTTP"
ids=$(flowlog_ids "$LOG" connect_attempt protocol=tcp remote_port=80)
check_comments "wire-egress: every HTTP frame carries its connection's flow_id ($ids)" "$W" "tcp.port==80" \
  "$(for i in $ids; do printf 'flow_id=%s ' "$i"; done | sed 's/ $//')"

# --- the unprivileged user: stops before the command ----------------------------------
as user mkdir -p "$LAB_DIR/home/wire-user"
rc=0
err=$(cf user -c "$LAB_DIR/home/wire-user/w.pcapng" -C wire-egress -- touch "$LAB_DIR/home/wire-user/ran" 2>&1) || rc=$?
check_eq 1 "$rc" "user: -C wire-egress exits 1"
check_contains "$err" "wire-egress" "user: the error names wire-egress"
check_contains "$err" "run as root" "user: the error says how to get it"
if [[ -e $LAB_DIR/home/wire-user/ran ]]; then check_fail "user: the command ran"; else check_pass "user: the command never started"; fi
if [[ -e $LAB_DIR/home/wire-user/w.pcapng ]]; then check_fail "user: a capture file was created"; else check_pass "user: no capture file"; fi

# --- rootful child, egress, both -------------------------------------------------------
B=$OUTD/rf
rc=0
out=$(cf root --root -d "$LAB_DNS4" --summary --flow-log "$OUTD/rf.jsonl" -c "$B.pcapng" -C both -- sh -c \
  'curl -4 -sS --max-time 5 http://www.example.test/; curl -6 -sS --max-time 5 http://www.example.test/' \
  2>"$OUTD/rf.err") || rc=$?
err=$(cat "$OUTD/rf.err")
check_eq 0 "$rc" "rootful -C both: exit 0 (${err:0:300})"
check_eq 2 "$(grep -c 'childflow lab www' <<<"$out")" "rootful -C both: the page over IPv4 and IPv6"
check_contains "$err" "$B.child.pcapng" "rootful: the summary lists the child file"
check_contains "$err" "$B.egress.pcapng" "rootful: the summary lists the egress file"
check_eq "rf.child.pcapng rf.egress.pcapng" "$(cd "$OUTD" && echo rf*.pcapng)" "rootful -C both writes exactly NAME.child.pcapng and NAME.egress.pcapng"
check_opens "rootful child" "$B.child.pcapng"
check_opens "rootful egress" "$B.egress.pcapng"
child=$(tshark -n -r "$B.child.pcapng" -V 2>/dev/null)
egress=$(tshark -n -r "$B.egress.pcapng" -V 2>/dev/null)
check_match "$child" "Interface description: childflow view=child backend=rootful kind=veth interface=cf[0-9a-f]{8}" "rootful child view: interface description"
check_contains "$egress" "Interface description: childflow view=egress backend=rootful kind=logical interface=eth0" "rootful egress view: interface description"
csyn=$(tshark_fields "$B.child.pcapng" "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==80 && ip" -e ip.src | head -n1)
check_match "$csyn" '^10\.240\.[0-9]+\.[0-9]+$' "rootful child view: the SYN from the tree's 10.240.x.y"
check_contains "$child" "GET / HTTP/1.1" "rootful child view: the GET"
check_contains "$child" "childflow lab www" "rootful child view: the page"
check_contains "$child" "Name: www.example.test" "rootful child view: the DNS query to the forwarder"
check_contains "$child" "Direction: Outbound" "rootful child view: frames from the tree are outbound"
check_contains "$child" "Direction: Inbound" "rootful child view: frames to the tree are inbound"
check_match "$child" "Src: fd[0-9a-f:]+, Dst: $LAB_WWW6" "rootful child view: IPv6 from the tree's fd42::/16 address"
check_contains "$egress" "Src: $LAB_HOST4, Dst: $LAB_WWW4" "rootful egress view: lab host -> www"
check_contains "$egress" "Src: $LAB_WWW4, Dst: $LAB_HOST4" "rootful egress view: www -> lab host"
check_contains "$egress" "Src: $LAB_HOST6, Dst: $LAB_WWW6" "rootful egress view: IPv6 from the lab host"
check_contains "$egress" "Src: $LAB_HOST4, Dst: $LAB_DNS4" "rootful egress view: DNS to the resolver"
check_not_contains "$egress" "10.240." "rootful egress view: no tree address"
n_child=$(tshark_fields "$B.child.pcapng" "tcp.port==80" -e frame.number | wc -l)
n_egress=$(tshark_fields "$B.egress.pcapng" "tcp.port==80" -e frame.number | wc -l)
check_eq "$n_child" "$n_egress" "rootful: both views hold the same HTTP frames ($n_child)"
check_le 12 "$n_child" "rootful: two HTTP exchanges of at least 6 frames each"
# Per-frame comments: the flow_id conntrack's events carry in the flow log
# (rootful/flow_ids.hpp), one per connection, in both views.
want=$(for i in $(flowlog_ids "$OUTD/rf.jsonl" connect_attempt remote_port=80); do printf 'flow_id=%s ' "$i"; done | sed 's/ $//')
check_match "$want" '^flow_id=[0-9]+ flow_id=[0-9]+$' "rootful: the flow log has both HTTP connections ($want)"
for view in child egress; do
  check_comments "rootful $view view: every HTTP frame carries its connection's flow_id" \
    "$B.$view.pcapng" "tcp.port==80" "$want"
done
check_eq "" "$(tshark_fields "$B.child.pcapng" "arp || dns" -e frame.comment | sort -u)" \
  "rootful child view: ARP and DNS to the forwarder carry no flow comment"
check_state "rootful -C both"

# A denied destination: its SYN (and its retries) and the table's reset
# carry the flow_id of the policy_violation and the verdict; so does a UDP
# datagram the table rejects, and, with --proxy, a connection the relay
# refuses.
violations() {
  python3 -c 'import json,sys
print(" ".join("%s:%s" % (e["flow_id"], e["reason_code"]) for e in map(json.loads, open(sys.argv[1])) if e.get("event")=="policy_violation"))' "$1"
}
rc=0
cf root --root -d "$LAB_DNS4" --deny-cidr "$LAB_WWW4/32" --flow-log "$OUTD/rdeny.jsonl" \
  -c "$OUTD/rdeny.pcapng" -- sh -c "curl -4 -sS --max-time 5 http://$LAB_WWW4/ >/dev/null 2>&1; echo rc=\$?; dig +short +time=1 +tries=1 @$LAB_WWW4 -p 5353 x.example.test" >"$OUTD/rdeny.out" 2>&1 || rc=$?
check_contains "$(cat "$OUTD/rdeny.out")" "rc=7" "rootful denied: curl is reset"
viol=$(violations "$OUTD/rdeny.jsonl")
tcp_id=$(flowlog_ids "$OUTD/rdeny.jsonl" policy_violation remote_port=80)
udp_id=$(flowlog_ids "$OUTD/rdeny.jsonl" policy_violation remote_port=5353)
check_match "$tcp_id $udp_id" '^[0-9]+ [0-9]+$' "rootful denied: one violation for TCP and one for UDP ($viol)"
check_comments "rootful denied: the SYN and the reset carry the violation's flow_id and the verdict" \
  "$OUTD/rdeny.pcapng" "tcp.port==80" "flow_id=$tcp_id verdict=denied reason_code=deny_cidr"
check_comments "rootful denied: the UDP datagrams carry the violation's flow_id and the verdict" \
  "$OUTD/rdeny.pcapng" "udp.port==5353 && !icmp" "flow_id=$udp_id verdict=denied reason_code=deny_cidr"
check_opens "rootful denied" "$OUTD/rdeny.pcapng"
check_state "rootful denied with capture"

rc=0
cf root --root -d "$LAB_DNS4" --proxy "http://$LAB_HTTP_PROXY" --deny-cidr "$LAB_WWW4/32" \
  --flow-log "$OUTD/rpdeny.jsonl" -c "$OUTD/rpdeny.pcapng" -- \
  sh -c "curl -4 -sS --max-time 5 http://$LAB_WWW4/ >/dev/null 2>&1; curl -4 -sS --max-time 5 http://$LAB_WWW4/ >/dev/null 2>&1" || rc=$?
pviol=$(violations "$OUTD/rpdeny.jsonl")
check_match "$pviol" '^[0-9]+:deny_cidr [0-9]+:deny_cidr$' "rootful --proxy denied: the relay's two violations ($pviol)"
# (each comment is one value of the list, in flow id order)
got=$(tshark_fields "$OUTD/rpdeny.pcapng" "tcp.port==80" -e frame.comment | sort -u -t= -k2 -n)
want=$(for v in $pviol; do echo "flow_id=${v%%:*} verdict=denied reason_code=deny_cidr"; done | sort -u -t= -k2 -n)
check_eq "$want" "$got" "rootful --proxy denied: each refused connection's frames carry its violation's flow_id and the verdict"
check_state "rootful --proxy denied with capture"

rc=0
out=$(cf root --root -d "$LAB_DNS4" -c "$OUTD/only.pcapng" -- curl -4 -sS --max-time 5 http://www.example.test/ 2>"$OUTD/only.err") || rc=$?
check_eq 0 "$rc" "rootful -c alone: exit 0 ($(head -c 300 "$OUTD/only.err"))"
check_opens "rootful default view" "$OUTD/only.pcapng"
check_contains "$(tshark -n -r "$OUTD/only.pcapng" -V 2>/dev/null)" "view=child backend=rootful" "rootful -c alone is the child view"
check_state "rootful -c alone"

# --- rootful wire-egress, with the host's own traffic beside it ----------------------
lab_root bash -c "$(declare -f noise); LAB_WWW4=$LAB_WWW4 LAB_WWW6=$LAB_WWW6 LAB_DNS4=$LAB_DNS4; noise" &
noise_job=$!
sleep 0.5
RW=$OUTD/rw.pcapng
# An echo with identifier 0, from a raw socket (the tree is root of its
# own namespace): no port-like id, still the tree's.
PING0='import socket,struct,sys
def csum(b):
  s=sum(struct.unpack("!%dH" % (len(b)//2), b)); s=(s>>16)+(s&0xffff); s+=s>>16
  return ~s & 0xffff
body=struct.pack("!BBHHH",8,0,0,0,1)+b"id zero!"
body=body[:2]+struct.pack("!H",csum(body))+body[4:]
s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP); s.settimeout(3)
s.sendto(body,(sys.argv[1],0))
try:
  while True:
    d=s.recv(200)
    if d[20]==0 and d[24:26]==b"\0\0": print("ping0=reply"); break
except socket.timeout: print("ping0=timeout")'
rc=0
out=$(cf root --root -d "$LAB_DNS4" --flow-log "$OUTD/rw.jsonl" -c "$RW" -C wire-egress -- sh -c \
  'curl -4 -sS --max-time 5 http://www.example.test/; curl -6 -sS --max-time 5 http://www.example.test/; ping -4 -c 2 -W 2 www.example.test >/dev/null; echo ping4=$?; ping -6 -c 2 -W 2 www.example.test >/dev/null; echo ping6=$?; python3 -c "$0" "$1"' \
  "$PING0" "$LAB_WWW4" 2>"$OUTD/rw.err") || rc=$?
kill "$noise_job" 2>/dev/null || true
wait "$noise_job" 2>/dev/null || true
check_eq 0 "$rc" "rootful wire-egress: exit 0 ($(head -c 300 "$OUTD/rw.err"))"
check_eq 2 "$(grep -c 'childflow lab www' <<<"$out")" "rootful wire-egress: the page over IPv4 and IPv6"
check_contains "$out" "ping4=0" "rootful wire-egress: ping over IPv4"
check_contains "$out" "ping6=0" "rootful wire-egress: ping over IPv6"
check_opens "rootful wire-egress" "$RW"
check_contains "$(tshark -n -r "$RW" -V -c 1 2>/dev/null)" "childflow view=wire-egress backend=rootful kind=wire interface=any" "rootful wire-egress: interface description"
syn=$(tshark_fields "$RW" "tcp.flags.syn==1 && tcp.flags.ack==0" -e ip.src -e ipv6.src -e tcp.srcport)
check_eq 2 "$(grep -c . <<<"$syn")" "rootful wire-egress: the tree's two SYNs ($syn)"
check_contains "$syn" "$LAB_HOST4" "rootful wire-egress: the IPv4 SYN, masqueraded to the lab host's address"
check_contains "$syn" "$LAB_HOST6" "rootful wire-egress: the IPv6 SYN, masqueraded to the lab host's address"
# A slot is 512 ports from 61000: its first 384 the masquerade's, its last
# 128 childflow's own sockets' (rootful/port_slot.hpp).
ports_ok=$(awk '{p=$NF; if (p < 61000 || p > 65095 || (p - 61000) % 512 >= 384) bad=1} END {print bad ? "no" : "yes"}' <<<"$syn")
check_eq yes "$ports_ok" "rootful wire-egress: the SYNs leave from the run's masquerade ports"
check_eq 2 "$(tshark_fields "$RW" "tcp.flags.syn==1 && tcp.flags.ack==1" -e frame.number | wc -l)" "rootful wire-egress: the two first replies (SYN-ACK)"
check_eq "/ / " "$(tshark_fields "$RW" "http.request" -e http.request.uri | sort | tr '\n' ' ')" "rootful wire-egress: the tree's two GETs, no other request"
check_eq 2 "$(tshark_fields "$RW" "http.response" -e frame.number | wc -l)" "rootful wire-egress: the two responses"
check_eq 2 "$(tshark_fields "$RW" "tcp" -e tcp.stream | sort -u | wc -l)" "rootful wire-egress: exactly the tree's two TCP connections"
rwv=$(tshark -n -r "$RW" -V 2>/dev/null)
check_not_contains "$rwv" "/noise" "rootful wire-egress: no byte of the host's own HTTP"
check_not_contains "$rwv" "10.240." "rootful wire-egress: no frame of the veth"
check_eq "" "$(tshark_fields "$RW" "dns.qry.name contains \"noise\"" -e dns.qry.name)" "rootful wire-egress: none of the host's own DNS"
rdns=$(tshark_fields "$RW" "dns.flags.response==0" -e dns.qry.name -e udp.srcport)
check_contains "$rdns" "www.example.test" "rootful wire-egress: the forwarder's lookups for the tree"
dns_ports_ok=$(awk '{p=$NF; if (p < 61000 || p > 65095 || (p - 61000) % 512 < 384) bad=1} END {print bad ? "no" : "yes"}' <<<"$rdns")
check_eq yes "$dns_ports_ok" "rootful wire-egress: the lookups leave from the run's own host ports ($rdns)"
check_contains "$out" "ping0=reply" "rootful wire-egress: an echo with identifier 0 is answered"
check_eq 3 "$(tshark_fields "$RW" "icmp.type==8" -e frame.number | wc -l)" "rootful wire-egress: the tree's three IPv4 echo requests, none of the host's pings"
check_eq 3 "$(tshark_fields "$RW" "icmp.type==0" -e frame.number | wc -l)" "rootful wire-egress: their three replies"
check_eq 2 "$(tshark_fields "$RW" "icmp.ident==0" -e frame.number | wc -l)" "rootful wire-egress: the identifier 0 echo and its reply"
check_eq 4 "$(tshark_fields "$RW" "icmpv6.type==128 || icmpv6.type==129" -e frame.number | wc -l)" "rootful wire-egress: the IPv6 echo requests and replies"
# Comments: the flow log's ids (conntrack's), on every frame of a flow.
want=$(for i in $(flowlog_ids "$OUTD/rw.jsonl" connect_attempt protocol=tcp) \
           $(flowlog_ids "$OUTD/rw.jsonl" flow_start protocol=icmpv4) \
           $(flowlog_ids "$OUTD/rw.jsonl" flow_start protocol=icmpv6); do echo "$i"; done |
  sort -n | while read -r i; do printf 'flow_id=%s ' "$i"; done | sed 's/ $//')
check_match "$want" '^flow_id=[0-9]+( flow_id=[0-9]+){4}$' "rootful wire-egress: the flow log has two connections and three pings ($want)"
check_comments "rootful wire-egress: every TCP and echo frame carries its flow's flow_id" \
  "$RW" "tcp || icmp || icmpv6.type==128 || icmpv6.type==129" "$want"
check_eq "" "$(tshark_fields "$RW" "dns" -e frame.comment | sort -u)" "rootful wire-egress: the forwarder's lookups carry no flow comment"
check_state "rootful wire-egress"

# Two rootful wire-egress runs at once: each has its own port range, and each
# file holds its own run's connection only.
SYNC=$OUTD/sync
install -d -m 0777 "$SYNC"
both_up="touch $SYNC/\$0; while [ ! -e $SYNC/a ] || [ ! -e $SYNC/b ]; do sleep 0.1; done; curl -4 -s --max-time 5 -o /dev/null http://www.example.test/from-\$0; echo rc=\$?"
cf root --root -d "$LAB_DNS4" -c "$OUTD/wa.pcapng" -C wire-egress -- sh -c "$both_up" a >"$OUTD/wa.out" 2>&1 &
ja=$!
cf root --root -d "$LAB_DNS4" -c "$OUTD/wb.pcapng" -C wire-egress -- sh -c "$both_up" b >"$OUTD/wb.out" 2>&1 &
jb=$!
wait "$ja" && ra=0 || ra=$?
wait "$jb" && rb=0 || rb=$?
check_eq "0 0" "$ra $rb" "two rootful wire-egress runs at once: both exit 0 ($(head -c 200 "$OUTD/wa.out") $(head -c 200 "$OUTD/wb.out"))"
check_eq "rc=0 rc=0" "$(cat "$OUTD/wa.out" "$OUTD/wb.out" | grep -o 'rc=[0-9]*' | tr '\n' ' ' | sed 's/ $//')" "two runs at once: both fetched"
check_eq "/from-a" "$(tshark_fields "$OUTD/wa.pcapng" "http.request" -e http.request.uri)" "two runs at once: run a's file holds its request only"
check_eq "/from-b" "$(tshark_fields "$OUTD/wb.pcapng" "http.request" -e http.request.uri)" "two runs at once: run b's file holds its request only"
pa=$(tshark_fields "$OUTD/wa.pcapng" "tcp.flags.syn==1 && tcp.flags.ack==0" -e tcp.srcport)
pb=$(tshark_fields "$OUTD/wb.pcapng" "tcp.flags.syn==1 && tcp.flags.ack==0" -e tcp.srcport)
check_eq "different" "$([[ -n $pa && -n $pb && $(((pa - 61000) / 512)) != $(((pb - 61000) / 512)) ]] && echo different || echo "same ($pa $pb)")" "two runs at once: two port ranges ($pa, $pb)"
check_state "two rootful wire-egress runs"

engine_finish
