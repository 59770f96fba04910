#!/usr/bin/env bash
# nmap -sT through childflow sees what it sees natively: open ports open,
# refused ports closed (the engine answers the SYN only after the host
# connect succeeded, and a refusal with RST).
set -uo pipefail
source "${CHILDFLOW_SOURCE_DIR:?}/tests/lab/lab.sh"
: "${CHILDFLOW:?}"
lab_up
lab_tun_open
scan() { "$@" nmap -sT -Pn -n --max-retries 1 --host-timeout 20s -p 80,81 "$LAB_WWW4" 2>&1; }
native=$(scan lab_root)
assert_contains "$native" "80/tcp open" "natively port 80 is open"
assert_contains "$native" "81/tcp closed" "natively port 81 is closed"
for who in root user; do
  out=$(scan "lab_$who" "$CHILDFLOW" --)
  assert_contains "$out" "80/tcp open" "[$who] through childflow port 80 is open"
  assert_contains "$out" "81/tcp closed" "[$who] through childflow port 81 is closed"
done

# Slot reuse under churn: a scan of about 2,000 ports of the proxy host (a few
# open, the rest refused) frees and reuses TCP slots constantly. An epoll event
# queued for a freed slot's old socket must never pass for its new flow's
# finished connect (that turned refused ports into open ones), so every one
# of 20 scans per user must find exactly the ports open natively.
ports=1080-3079,3128-3131,3140-3142
open_ports() { "$@" nmap -sT -Pn -n --max-retries 3 --host-timeout 120s -p "$ports" -oG - "$LAB_PROXY4" 2>&1 |
  grep -o '[0-9]*/open' | tr '\n' ' '; }
native=$(open_ports lab_root)
assert_contains "$native" "1080/open 1081/open 3128/open" "natively the proxy ports are open ($native)"
for who in root user; do
  bad=0
  for i in $(seq 20); do
    got=$(open_ports "lab_$who" "$CHILDFLOW" --)
    if [[ "$got" != "$native" ]]; then
      bad=$((bad + 1))
      echo "# [$who] scan $i found [$got], natively [$native]"
    fi
  done
  assert_eq 0 "$bad" "[$who] 20 scans of $ports through childflow each found exactly the native open ports"
done

# UDP: nmap -sU sends an empty datagram to a port it has no probe for. The
# router's ICMP port unreachable for that empty datagram must reach the tree,
# so a closed UDP port shows closed, as natively (not open|filtered), and the
# echo port shows open. nmap -sU needs raw sockets: root inside (--as-root).
uscan() { "$@" nmap -sU -Pn -n --max-retries 2 --host-timeout 30s -p 7,8,4444 "$LAB_ECHO4" 2>&1; }
native=$(uscan lab_root)
assert_contains "$native" "8/udp    closed" "natively UDP port 8 is closed"
assert_contains "$native" "4444/udp closed" "natively UDP port 4444 is closed"
for who in root user; do
  out=$(uscan "lab_$who" "$CHILDFLOW" --as-root --)
  assert_contains "$out" "8/udp    closed" "[$who] through childflow UDP port 8 is closed (ICMP for an empty datagram)"
  assert_contains "$out" "4444/udp closed" "[$who] through childflow UDP port 4444 is closed"
  assert_eq "$(grep '^7/udp' <<<"$native")" "$(grep '^7/udp' <<<"$out")" "[$who] UDP port 7 shows as natively"
done
