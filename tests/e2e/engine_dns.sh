#!/usr/bin/env bash
# Engine DNS and the resolver/hosts overlays end to end, as root and as the
# unprivileged lab user:
# - A/AAAA through the gateway (relayed to the lab's dnsmasq from the lab
#   host), by libc (getent, getaddrinfo) and by dig at both gateway addresses;
# - the large answer: TC set over UDP, all 160 records over TCP, and libc's
#   own UDP-then-TCP retry;
# - resolv.conf: gateway nameservers, the host's search/options lines kept
#   without -d and dropped with -d;
# - -d: an explicit resolver (IPv4 and IPv6) works while the host's resolver is
#   dead, and without -d the dead resolver gives SERVFAIL;
# - --hosts-file: its entries first and winning, host entries kept for other
#   names;
# - the tree's /etc/resolv.conf, and /etc/hosts with --hosts-file, are
#   read-only to its root;
# - the host's /etc/resolv.conf and /etc/hosts unchanged (engine_finish).
# The tree-side scripts are single-quoted on purpose: they expand inside the tree.
# shellcheck disable=SC2016
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# The lab host's files (per-namespace copies under /etc/netns, which the lab
# creates and removes): a search domain, options, and host entries.
lab_resolv=/etc/netns/$LAB_NS/resolv.conf
lab_hosts=/etc/netns/$LAB_NS/hosts
printf 'search example.test\noptions ndots:1 timeout:3\nnameserver %s\n' "$LAB_DNS4" >"$lab_resolv"
printf '203.0.113.20\thostonly.lab both.lab\n' >>"$lab_hosts"
host_files_snapshot

gai_py=$(engine_py gai.py <<'EOF'
import socket, sys
fam = {"4": socket.AF_INET, "6": socket.AF_INET6}[sys.argv[2]]
print(" ".join(sorted({ai[4][0] for ai in socket.getaddrinfo(sys.argv[1], 80, fam, socket.SOCK_STREAM)})))
EOF
)

for who in "${ENGINE_WHO[@]}"; do
  # One run gathers everything the tree sees, so the checks below are cheap.
  before=$(wc -l <"$LAB_DNS_LOG")
  rc=0
  out=$(cf "$who" -- bash -c "$GW_SCRIPT"'
    echo "gw4=$g4 gw6=$g6"
    echo "--- resolv"; cat /etc/resolv.conf
    echo "--- getent4"; getent ahostsv4 www.example.test | awk "{print \$1}" | sort -u
    echo "--- getent6"; getent ahostsv6 www.example.test | awk "{print \$1}" | sort -u
    echo "--- gai4"; '"$ENGINE_PY $gai_py"' www.example.test 4
    echo "--- gai6"; '"$ENGINE_PY $gai_py"' www.example.test 6
    echo "--- search"; getent ahostsv4 www | awk "{print \$1}" | sort -u
    echo "--- dig4A"; dig +short +time=3 +tries=1 A www.example.test @$g4
    echo "--- dig4AAAA"; dig +short +time=3 +tries=1 AAAA www.example.test @$g4
    echo "--- dig6A"; dig +short +time=3 +tries=1 A www.example.test @$g6
    echo "--- dig6AAAA"; dig +short +time=3 +tries=1 AAAA www.example.test @$g6
    echo "--- v4onlyAAAA"; dig +time=3 +tries=1 AAAA v4only.example.test @$g4 | grep -o "status: [A-Z]*"
    echo "--- nxdomain"; dig +time=3 +tries=1 nosuch.example.test @$g4 | grep -o "status: [A-Z]*"
    echo "--- bigudp"; dig +notcp +ignore +noedns +time=3 +tries=1 big.example.test @$g4 | grep "flags:"
    echo "--- bigudpedns"; dig +notcp +ignore +time=3 +tries=1 big.example.test @$g4 | grep "flags:"
    echo "--- bigtcp4"; dig +tcp +time=3 +tries=1 big.example.test @$g4 | grep -o "ANSWER: [0-9]*"
    echo "--- bigtcp6"; dig +tcp +time=3 +tries=1 big.example.test @$g6 | grep -o "ANSWER: [0-9]*"
    echo "--- biglibc"; getent ahostsv4 big.example.test | awk "{print \$1}" | sort -u | wc -l
    echo "--- rofs"; (echo x >>/etc/resolv.conf) 2>&1 | grep -o "Read-only file system"
    echo "--- end"' 2>&1) || rc=$?
  check_eq 0 "$rc" "[$who] the DNS probe run exits 0"
  section() { awk -v s="--- $1" '$0 == s {on=1; next} /^--- / {on=0} on' <<<"$out" | tr '\n' ' ' | sed 's/ *$//'; }
  gw=$(head -n 1 <<<"$out")
  check_match "$gw" '^gw4=10\.240\.[0-9]+\.[0-9]+ gw6=fd42:' "[$who] resolv.conf names the IPv4 and IPv6 gateways"
  resolv=$(section resolv)
  check_contains "$resolv" "search example.test" "[$who] without -d the host's search line is kept"
  check_contains "$resolv" "options ndots:1 timeout:3" "[$who] without -d the host's options line is kept"
  check_not_contains "$resolv" "nameserver $LAB_DNS4" "[$who] the host's nameserver is not in the tree's resolv.conf"
  check_eq "$LAB_WWW4" "$(section getent4)" "[$who] getent ahostsv4 www.example.test (A)"
  check_eq "$LAB_WWW6" "$(section getent6)" "[$who] getent ahostsv6 www.example.test (AAAA)"
  check_eq "$LAB_WWW4" "$(section gai4)" "[$who] getaddrinfo AF_INET www.example.test"
  check_eq "$LAB_WWW6" "$(section gai6)" "[$who] getaddrinfo AF_INET6 www.example.test"
  check_eq "$LAB_WWW4" "$(section search)" "[$who] the search domain resolves the short name www"
  check_eq "$LAB_WWW4" "$(section dig4A)" "[$who] dig A at the IPv4 gateway"
  check_eq "$LAB_WWW6" "$(section dig4AAAA)" "[$who] dig AAAA at the IPv4 gateway"
  check_eq "$LAB_WWW4" "$(section dig6A)" "[$who] dig A at the IPv6 gateway"
  check_eq "$LAB_WWW6" "$(section dig6AAAA)" "[$who] dig AAAA at the IPv6 gateway"
  check_eq "status: NOERROR" "$(section v4onlyAAAA)" "[$who] AAAA of a v4-only name is NOERROR, empty"
  check_eq "status: NXDOMAIN" "$(section nxdomain)" "[$who] NXDOMAIN passes through"
  check_eq "Read-only file system" "$(section rofs)" \
    "[$who] the tree's /etc/resolv.conf is read-only, even to its root"
  check_match "$(section bigudp)" 'flags: qr aa tc' "[$who] big answer over UDP (no EDNS) has TC"
  check_match "$(section bigudpedns)" 'flags: qr aa tc' "[$who] big answer over UDP (EDNS) has TC"
  check_eq "ANSWER: 160" "$(section bigtcp4)" "[$who] big answer over TCP at the IPv4 gateway has 160 records"
  check_eq "ANSWER: 160" "$(section bigtcp6)" "[$who] big answer over TCP at the IPv6 gateway has 160 records"
  check_eq 160 "$(section biglibc)" "[$who] libc retries the truncated answer over TCP and gets 160 addresses"
  dnslog=$(tail -n +"$((before + 1))" "$LAB_DNS_LOG")
  check_contains "$dnslog" "query[AAAA] www.example.test from $LAB_HOST4" \
    "[$who] dnsmasq got the relayed queries from the lab host"

  # --hosts-file: its entries first and winning; the host's kept for others.
  hf=$LAB_DIR/hosts-$who
  printf '203.0.113.10\tboth.lab fileonly.lab\n2001:db8:2::10\tfileonly6.lab\n' >"$hf"
  chmod 0644 "$hf"
  rc=0
  out=$(cf "$who" --hosts-file "$hf" -- bash -c '
    echo "--- hosts"; grep -v "^#" /etc/hosts
    echo "--- both"; getent ahostsv4 both.lab | awk "{print \$1}" | sort -u
    echo "--- fileonly"; getent ahostsv4 fileonly.lab | awk "{print \$1}" | sort -u
    echo "--- fileonly6"; getent ahostsv6 fileonly6.lab | awk "{print \$1}" | sort -u
    echo "--- hostonly"; getent ahostsv4 hostonly.lab | awk "{print \$1}" | sort -u
    echo "--- localhost"; getent ahostsv4 localhost | awk "{print \$1}" | sort -u
    echo "--- dns"; getent ahostsv4 www.example.test | awk "{print \$1}" | sort -u
    echo "--- curl"; curl -sS --max-time 10 http://fileonly.lab/
    echo "--- rofs"; (echo x >>/etc/hosts) 2>&1 | grep -o "Read-only file system"
    echo "--- end"' 2>&1) || rc=$?
  check_eq 0 "$rc" "[$who] the --hosts-file run exits 0"
  check_eq "Read-only file system" "$(section rofs)" "[$who] the --hosts-file /etc/hosts is read-only, even to the tree's root"
  hosts_in=$(section hosts)
  check_match "$hosts_in" '^203\.0\.113\.10[[:space:]]+both\.lab fileonly\.lab' "[$who] /etc/hosts starts with the --hosts-file entries"
  check_eq 203.0.113.10 "$(section both)" "[$who] a name in both files resolves to the --hosts-file address"
  check_eq 203.0.113.10 "$(section fileonly)" "[$who] a name only in --hosts-file resolves"
  check_eq 2001:db8:2::10 "$(section fileonly6)" "[$who] an IPv6 --hosts-file entry resolves"
  check_eq 203.0.113.20 "$(section hostonly)" "[$who] the host's entry for another name is kept"
  check_eq 127.0.0.1 "$(section localhost)" "[$who] the host's localhost entry is kept"
  check_eq "$LAB_WWW4" "$(section dns)" "[$who] names in neither file still go to DNS"
  check_contains "$(section curl)" "childflow lab www" "[$who] curl by a --hosts-file name reaches the server"
  out=$(cf "$who" -- getent ahostsv4 both.lab 2>&1 | awk '{print $1}' | sort -u) || true
  check_eq 203.0.113.20 "$out" "[$who] without --hosts-file the host's entry is used"
done

# -d: the lab host's resolver is now dead (a blackholed address), search and
# options lines present. -d must reach the given resolver; its absence shows.
host_files_check "host files unchanged by the default and --hosts-file runs (machine and lab host view)"
printf 'search example.test\noptions ndots:1 timeout:3\nnameserver %s\n' "$LAB_BLACKHOLE4" >"$lab_resolv"
host_files_snapshot
rc=0
lab_root dig +time=2 +tries=1 www.example.test >/dev/null 2>&1 || rc=$?
check_eq 9 "$rc" "natively the lab host's resolver is now dead (dig: no reply)"
for who in "${ENGINE_WHO[@]}"; do
  for resolver in "$LAB_DNS4" "$LAB_DNS6"; do
    before=$(wc -l <"$LAB_DNS_LOG")
    rc=0
    out=$(cf "$who" -d "$resolver" -- bash -c "$GW_SCRIPT"'
      echo "--- resolv"; cat /etc/resolv.conf
      echo "--- getent4"; getent ahostsv4 www.example.test | awk "{print \$1}" | sort -u
      echo "--- getent6"; getent ahostsv6 www.example.test | awk "{print \$1}" | sort -u
      echo "--- bigtcp"; dig +tcp +time=3 +tries=1 big.example.test @$g4 | grep -o "ANSWER: [0-9]*"
      echo "--- end"' 2>&1) || rc=$?
    check_eq 0 "$rc" "[$who] the -d $resolver run exits 0"
    resolv=$(section resolv)
    check_not_contains "$resolv" "search" "[$who] with -d the search line is dropped"
    check_not_contains "$resolv" "options" "[$who] with -d the options line is dropped"
    check_match "$resolv" 'nameserver 10\.240\.' "[$who] with -d the tree still asks the gateway"
    check_eq "$LAB_WWW4" "$(section getent4)" "[$who] -d $resolver: A resolves"
    check_eq "$LAB_WWW6" "$(section getent6)" "[$who] -d $resolver: AAAA resolves"
    check_eq "ANSWER: 160" "$(section bigtcp)" "[$who] -d $resolver: DNS over TCP reaches it too"
    new=$(tail -n +"$((before + 1))" "$LAB_DNS_LOG")
    check_contains "$new" "query[A] www.example.test" "[$who] -d $resolver: dnsmasq answered the query"
  done
  # Without -d the tree's resolver is the dead one: SERVFAIL, not a hang.
  t0=$(now_s)
  out=$(cf "$who" -- bash -c "$GW_SCRIPT"'; dig +time=12 +tries=1 www.example.test @$g4' 2>&1) || true
  took=$(elapsed_s "$t0")
  check_contains "$out" "status: SERVFAIL" "[$who] without -d the dead host resolver gives SERVFAIL (${took}s)"
done

engine_finish
