#!/usr/bin/env bash
# `childflow --doctor` as root in the lab: the rootless-internal backend is
# `ready` (every check [OK], exit 0) and reports the lab's own resolver, routes
# and ICMP path; `--root` runs every rootful check (throwaway nftables table,
# TPROXY rule) without a fatal, exit 0, and leaves no nftables table behind.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
lab_up

# run_doctor ARGS... : sets out and rc.
run_doctor() {
  set +e
  out=$("$@" 2>&1)
  rc=$?
  set -e
}

run_doctor lab_root "$CHILDFLOW" --doctor
assert_eq 0 "$rc" "--doctor exits 0 as root in the lab"
assert_eq "childflow doctor: backend rootless-internal: ready" "$(head -n1 <<<"$out")" \
  "status line says ready"
assert_not_contains "$out" "[WARN]" "no warning as root in the lab"
assert_not_contains "$out" "[FATAL]" "no fatal as root in the lab"
assert_not_contains "$out" "hint:" "no hint when everything is ok"
assert_eq 21 "$(grep -c '^\[OK\]   ' <<<"$out")" "one [OK] line per rootless check"
for label in "user namespaces" "network namespaces" "mount namespaces" "PID namespaces" \
  "user namespace quota" "user namespace trial" "/dev/net/tun" "ICMP echo" \
  "engine confinement"; do
  assert_contains "$out" "[OK]   $label: " "$label is ok"
done
assert_contains "$out" "[OK]   upstream resolver: $LAB_DNS4 (first nameserver in /etc/resolv.conf)" \
  "resolver is the lab host's first nameserver"
assert_contains "$out" "[OK]   IPv4 default route: via $LAB_ROUTER4 dev " "IPv4 default route via the lab router"
assert_contains "$out" "[OK]   IPv6 default route: via $LAB_ROUTER6 dev " "IPv6 default route via the lab router"
assert_contains "$out" "ICMP echo uses unprivileged ping sockets" "ICMP path: ping sockets (lab ping_group_range)"

run_doctor lab_root "$CHILDFLOW" --doctor -d 2001:db8:2::53
assert_eq 0 "$rc" "--doctor -d exits 0"
assert_contains "$out" "[OK]   upstream resolver: 2001:db8:2::53 (from --dns)" "--dns is the resolver"

# A host without routes: warnings (IPv6 missing means empty AAAA answers), not fatal.
lab_root ip -6 route del default
run_doctor lab_root "$CHILDFLOW" --doctor
assert_eq 0 "$rc" "a missing IPv6 route is not fatal"
assert_eq "childflow doctor: backend rootless-internal: ready with warnings" "$(head -n1 <<<"$out")" \
  "status line says ready with warnings"
assert_contains "$out" "[WARN] IPv6 default route: no IPv6 default route: AAAA queries from the tree get empty answers" \
  "missing IPv6 route is a warning that names the AAAA consequence"
assert_contains "$(grep -A1 '^\[WARN\] IPv6 default route' <<<"$out" | tail -n1)" "    hint: " \
  "the warning has an indented hint"
lab_root ip -6 route add default via "$LAB_ROUTER6"

# The rootful backend.
run_doctor lab_root "$CHILDFLOW" --doctor --root
assert_eq 0 "$rc" "--doctor --root exits 0 as root in the lab"
assert_contains "$(head -n1 <<<"$out")" "childflow doctor: backend rootful: ready" "rootful status line"
assert_not_contains "$out" "[FATAL]" "no rootful check is fatal"
assert_contains "$out" "[OK]   root: running as root (euid 0)" "root ok"
assert_contains "$out" "[OK]   nftables: table inet childflow_doctor_" "nftables trial ok"
assert_contains "$out" "[OK]   TPROXY: IPv4 and IPv6 tproxy rules load" "TPROXY trial ok"
assert_contains "$out" "[OK]   IPv4 forwarding sysctl: net.ipv4.ip_forward = 0, writable" "ip_forward writable"
assert_contains "$out" "[OK]   IPv6 forwarding sysctl: net.ipv6.conf.all.forwarding = 0, writable" "v6 forwarding writable"
assert_contains "$out" "[OK]   packet sockets: " "packet sockets ok"
assert_contains "$out" "[OK]   conntrack events: ctnetlink's event groups can be joined" "conntrack events ok"
assert_contains "$out" "[OK]   policy routing: fwmark rules to a numbered table can be added" "policy routing trial ok"
rules_before=$(lab_root ip rule show; lab_root ip -6 rule show)
run_doctor lab_root "$CHILDFLOW" --doctor --root --iface eth0
assert_contains "$out" "[OK]   --iface: eth0 exists and has a default route" "--iface eth0 checked"
run_doctor lab_root "$CHILDFLOW" --doctor --root --iface nosuch0
assert_eq 1 "$rc" "--doctor --root --iface nosuch0: blocked"
assert_contains "$out" "[FATAL] --iface: nosuch0: no such interface on this host" "--iface nosuch0 fatal"
assert_eq "$rules_before" "$(lab_root ip rule show; lab_root ip -6 rule show)" \
  "the policy routing trial left the lab host's rules alone"
assert_eq 0 "$(lab_root sysctl -n net.ipv4.ip_forward)" "the doctor did not change ip_forward"
# The trials ran in throwaway namespaces: nothing in the lab host's ruleset.
tables=$(lab_root python3 -c '
import ctypes, sys
nft = ctypes.CDLL("libnftables.so.1")
nft.nft_ctx_new.restype = ctypes.c_void_p
nft.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
nft.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
nft.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
nft.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
ctx = nft.nft_ctx_new(0)
nft.nft_ctx_buffer_output(ctx)
if nft.nft_run_cmd_from_buffer(ctx, b"list tables") != 0: sys.exit("list tables failed")
sys.stdout.write(nft.nft_ctx_get_output_buffer(ctx).decode())
')
assert_not_contains "$tables" "childflow_doctor" "no doctor table left in the lab host's nftables"
ok "doctor ready as root"
