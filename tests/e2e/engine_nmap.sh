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
