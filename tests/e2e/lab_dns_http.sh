#!/usr/bin/env bash
# Proves the lab's DNS and origin servers: names resolve through the lab
# resolver (IPv4 and IPv6), HTTP and HTTPS (test CA) answer by name, the big
# answer is truncated over UDP and complete over TCP, and the servers log what
# they received.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
lab_up

# The lab host's resolver is the lab's dnsmasq, not the machine's.
resolv=$(lab_root cat /etc/resolv.conf)
assert_eq "nameserver $LAB_DNS4" "$resolv" "lab host resolv.conf points at the lab DNS"

out=$(lab_root getent ahostsv4 www.example.test) || fail "getent www v4"
assert_contains "$out" "$LAB_WWW4" "www.example.test has A $LAB_WWW4"
out=$(lab_root getent ahostsv6 www.example.test) || fail "getent www v6"
assert_contains "$out" "$LAB_WWW6" "www.example.test has AAAA $LAB_WWW6"
out=$(lab_root dig +short AAAA v4only.example.test @"$LAB_DNS6") || fail "dig v4only over IPv6"
assert_eq "" "$out" "v4only.example.test has no AAAA (asked over IPv6)"
out=$(lab_root dig v4only.example.test AAAA) || fail "dig v4only"
assert_contains "$out" "status: NOERROR" "v4only AAAA is NOERROR/empty, not NXDOMAIN"
out=$(lab_root dig nosuch.example.test) || fail "dig nosuch"
assert_contains "$out" "status: NXDOMAIN" "unknown name under example.test is NXDOMAIN"
out=$(lab_root dig +short any.thing.wild.example.test) || fail "dig wild"
assert_eq "$LAB_WWW4" "$out" "wildcard *.wild.example.test resolves"

# big.example.test: truncated over UDP (with and without EDNS), complete over TCP.
out=$(lab_root dig +notcp +ignore +noedns big.example.test) || fail "dig big udp"
assert_contains "$out" "flags: qr aa tc" "big answer over UDP (no EDNS) has TC"
out=$(lab_root dig +notcp +ignore big.example.test) || fail "dig big udp edns"
assert_contains "$out" "flags: qr aa tc" "big answer over UDP (EDNS 1232) has TC"
out=$(lab_root dig +tcp big.example.test) || fail "dig big tcp"
assert_contains "$out" "ANSWER: 160," "big answer over TCP holds all 160 records"
# libc gets TC over UDP and retries over TCP by itself.
n=$(lab_root getent ahostsv4 big.example.test | awk '{print $1}' | sort -u | wc -l)
assert_eq 160 "$n" "getent (libc, UDP then TCP) sees all 160 addresses of big.example.test"
dnslog=$(cat "$LAB_DNS_LOG")
assert_contains "$dnslog" "query[A] big.example.test from $LAB_HOST4" "dnsmasq logged the query"

# HTTP and HTTPS by name, IPv4 and IPv6.
for fam in 4 6; do
  out=$(lab_root curl -sS -$fam --max-time 5 http://www.example.test/) || fail "curl -$fam http"
  assert_contains "$out" "childflow lab www" "HTTP over IPv$fam by name"
  out=$(lab_root curl -sS -$fam --max-time 5 --cacert "$LAB_CA" https://www.example.test/) || fail "curl -$fam https"
  assert_contains "$out" "childflow lab www" "HTTPS over IPv$fam by name, verified against LAB_CA"
done
if lab_root curl -sS --max-time 5 https://www.example.test/ >/dev/null 2>&1; then
  fail "HTTPS without the test CA must not verify"
fi
ok "HTTPS without --cacert fails verification"
www=$(cat "$LAB_WWW_LOG")
assert_contains "$www" "www http $LAB_HOST4 " "www log shows the IPv4 client"
assert_contains "$www" "www https $LAB_HOST6 " "www log shows the IPv6 TLS client"

# Bodies: deterministic download, upload digest, peer address.
want=$(lab_bytes_sha256 3000000)
got=$(lab_root curl -sS --max-time 10 http://www.example.test/bytes/3000000 | sha256sum | cut -d' ' -f1)
assert_eq "$want" "$got" "GET /bytes/N serves the documented bytes"
head -c 5000000 /dev/urandom >"$LAB_DIR/up.bin"
want=$(sha256sum "$LAB_DIR/up.bin" | cut -d' ' -f1)
got=$(lab_root curl -sS --max-time 10 --data-binary @"$LAB_DIR/up.bin" http://www.example.test/upload)
assert_eq "$want" "$got" "POST /upload answers the sha256 of the body"
got=$(lab_root curl -sS --max-time 10 -T "$LAB_DIR/up.bin" -H 'Transfer-Encoding: chunked' http://www.example.test/upload)
assert_eq "$want" "$got" "chunked PUT /upload answers the sha256 of the body"
got=$(lab_root curl -sS -6 --max-time 5 http://www.example.test/peer)
assert_eq "$LAB_HOST6" "$got" "GET /peer shows the client address"
code=$(lab_root curl -s -o /dev/null -w '%{http_code}' --max-time 5 http://www.example.test/nope)
assert_eq 404 "$code" "unknown path is 404"
