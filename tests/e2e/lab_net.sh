#!/usr/bin/env bash
# Proves the lab's network: the router is a traceroute hop (IPv4 and IPv6),
# the echo and half-close servers work, the unprivileged user runs commands,
# unprivileged ping works in the lab host, the private /dev/net/tun modes apply,
# and the unreachable, blackhole and refused destinations fail as documented.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
lab_up

# traceroute: the router, then the server.
hops() { lab_root traceroute -n -q1 -w1 "$@" | awk 'NR > 1 {print $2}' | paste -sd' '; }
assert_eq "$LAB_ROUTER4 $LAB_WWW4" "$(hops "$LAB_WWW4")" "traceroute -n (UDP) shows the router hop, IPv4"
assert_eq "$LAB_ROUTER6 $LAB_WWW6" "$(hops "$LAB_WWW6")" "traceroute -n (UDP) shows the router hop, IPv6"
assert_eq "$LAB_ROUTER4 $LAB_WWW4" "$(hops -I "$LAB_WWW4")" "traceroute -I (ICMP) shows the router hop"

# Echo servers, IPv4 and IPv6, by address and by name.
for a in "$LAB_ECHO4" "[$LAB_ECHO6]" echo.example.test; do
  out=$(echo "udp-$a" | lab_root socat -t1 - "UDP:$a:7") || fail "udp echo $a"
  assert_eq "udp-$a" "$out" "UDP echo via $a"
  out=$(echo "tcp-$a" | lab_root socat -t2 - "TCP:$a:7") || fail "tcp echo $a"
  assert_eq "tcp-$a" "$out" "TCP echo via $a"
  out=$(head -c 12345 /dev/zero | lab_root socat -t5 - "TCP:$a:9") || fail "half-close $a"
  assert_eq "got 12345 bytes" "$out" "half-close server replies after the client's FIN via $a"
done
assert_contains "$(cat "$LAB_ECHO_LOG")" "halfclose tcp $LAB_HOST6" "echo log shows the IPv6 half-close client"

# The unprivileged user.
uid=$(lab_user id -u)
[[ $uid =~ ^[0-9]+$ && $uid -ne 0 ]] || fail "lab_user id -u gave [$uid]"
ok "lab_user runs as uid $uid (not root)"
assert_eq "$(id -u "$LAB_USER")" "$uid" "lab_user runs as LAB_USER"
# shellcheck disable=SC2016 # $HOME must expand in the user's shell
assert_eq "$LAB_DIR/home" "$(lab_user sh -c 'echo $HOME')" "lab_user HOME is LAB_DIR/home"
assert_eq "$(pwd)" "$(lab_user pwd)" "lab_user keeps the cwd"
assert_eq "$(pwd)" "$(lab_root pwd)" "lab_root keeps the cwd"
assert_contains "$(grep "^$LAB_USER:" /etc/subuid)" "$LAB_USER:" "LAB_USER has a subuid range"
assert_contains "$(grep "^$LAB_USER:" /etc/subgid)" "$LAB_USER:" "LAB_USER has a subgid range"
# ping has cap_net_raw; prove the ICMP datagram sockets (ping_group_range)
# that childflow's engine uses, from a process without capabilities.
icmp_probe='
import socket, struct, sys
fam, proto, typ, dst = (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, sys.argv[1]) if ":" in sys.argv[1] \
    else (socket.AF_INET, socket.IPPROTO_ICMP, 8, sys.argv[1])
s = socket.socket(fam, socket.SOCK_DGRAM, proto)
s.settimeout(2)
s.sendto(struct.pack("!BBHHH", typ, 0, 0, 0, 1) + b"lab", (dst, 0))
print("reply type", s.recv(64)[0])
'
assert_eq "reply type 0" "$(lab_user python3 -c "$icmp_probe" "$LAB_ROUTER4")" \
  "unprivileged ICMP socket pings the router (ping_group_range)"
assert_eq "reply type 129" "$(lab_user python3 -c "$icmp_probe" "$LAB_WWW6")" \
  "unprivileged ICMPv6 socket pings a lab server"
lab_user touch "$LAB_DIR/home/probe" || fail "LAB_USER cannot write its HOME"
ok "LAB_USER can write its HOME"

# /dev/net/tun as the lab sees it; the machine's node is never changed.
tun_before=$(stat -c %a /dev/net/tun)
lab_tun_open
assert_eq 666 "$(lab_user stat -c %a /dev/net/tun)" "lab_tun_open: lab sees mode 0666"
lab_user sh -c 'exec 3<>/dev/net/tun' || fail "LAB_USER cannot open /dev/net/tun after lab_tun_open"
ok "LAB_USER opens /dev/net/tun after lab_tun_open"
lab_tun_mode 0600
if lab_user sh -c 'exec 3<>/dev/net/tun' 2>/dev/null; then fail "0600 tun opened by LAB_USER"; fi
ok "lab_tun_mode 0600: LAB_USER cannot open /dev/net/tun"
lab_tun_restore
assert_eq "$tun_before" "$(lab_user stat -c %a /dev/net/tun)" "lab_tun_restore: lab sees the machine's node"
assert_eq "$tun_before" "$(stat -c %a /dev/net/tun)" "machine's /dev/net/tun mode untouched"

# Error destinations.
rc=0; lab_root curl -sS --max-time 5 "http://$LAB_WWW4:81/" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "closed port is refused (curl exit 7)"
rc=0; lab_root curl -sS --max-time 5 "http://$LAB_UNREACH4/" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "LAB_UNREACH4 is unreachable (curl exit 7)"
rc=0; lab_root curl -sS --max-time 5 "http://[$LAB_UNREACH6]/" 2>/dev/null || rc=$?
assert_eq 7 "$rc" "LAB_UNREACH6 is unreachable (curl exit 7)"
rc=0; lab_root curl -sS --max-time 1 "http://$LAB_BLACKHOLE4/" 2>/dev/null || rc=$?
assert_eq 28 "$rc" "LAB_BLACKHOLE4 times out (curl exit 28)"
out=$(lab_root ping -c1 -W1 "$LAB_UNREACH4" 2>&1 || true)
assert_contains "$out" "Destination Host Unreachable" "ping of LAB_UNREACH4 gets an ICMP error from the router"

# lab_inet and lab_router run where they say.
assert_contains "$(lab_inet ip -br addr show eth0)" "$LAB_WWW4/24" "lab_inet runs in the inet namespace"
assert_eq 1 "$(lab_router sysctl -n net.ipv4.ip_forward)" "router forwards"

# The iperf3 server answers a short test over IPv4 and IPv6.
for a in "$LAB_WWW4" "$LAB_WWW6"; do
  out=$(lab_root timeout 20 iperf3 -c "$a" -p "$LAB_IPERF_PORT" -n 4M -J) || fail "iperf3 to $a"
  assert_contains "$out" '"sum_received"' "iperf3 server answers on $a"
done
