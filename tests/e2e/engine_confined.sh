#!/usr/bin/env bash
# The engine confines itself before the command runs (docs/security.md,
# "The engine's own confinement"). For both users of the lab:
# - while the tree runs, the engine's /proc/PID/status shows the seccomp
#   filter, no-new-privs and no capabilities (and, for root, an empty
#   bounding set);
# - an HTTPS proxy whose CA is known only through the system trust store
#   (SSL_CERT_DIR with a hashed name, or SSL_CERT_FILE) still verifies: the
#   store is loaded before the filter, which allows no file to be opened;
#   without it the same run fails verification, so the store is what made
#   the difference; --proxy-ca works too (a certificate's dates are checked
#   with gmtime, which reads the time zone file once: before the filter).
# CHILDFLOW may be a release build (the filter of a sanitized build lets the
# sanitizer's own calls through). Every other end-to-end test also runs its
# engine under the filter.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

marks=$LAB_DIR/confined
install -d -m 1777 "$marks"
certdir=$LAB_DIR/certs
install -d -m 0755 "$certdir"
install -m 0644 "$LAB_CA" "$certdir/$(openssl x509 -hash -noout -in "$LAB_CA").0"
install -m 0644 "$LAB_CA" "$LAB_DIR/ca-bundle.pem"
proxy="https://$LAB_PROXY_HOST:3130"

for who in "${ENGINE_WHO[@]}"; do
  rm -f "$marks/ready"
  # The tree says when it runs: by then the command was released, so the
  # engine has confined itself.
  cf "$who" -- sh -c 'touch "$1"; sleep 3' sh "$marks/ready" >"$marks/out.$who" 2>&1 &
  job=$!
  pid=$(engine_pid "$job")
  [[ -n $pid ]] || fail "[$who] the engine's process did not show up"
  for _ in $(seq 100); do [[ -e $marks/ready ]] && break; sleep 0.05; done
  status=$(cat "/proc/$pid/status")
  check_contains "$status" "Seccomp:	2" "[$who] the engine runs under a seccomp filter"
  check_contains "$status" "NoNewPrivs:	1" "[$who] the engine has no-new-privs"
  check_contains "$status" "CapEff:	0000000000000000" "[$who] the engine has no effective capability"
  check_contains "$status" "CapPrm:	0000000000000000" "[$who] the engine has no permitted capability"
  if [[ $who == root ]]; then
    check_contains "$status" "CapBnd:	0000000000000000" "[root] the engine's bounding set is empty"
  fi
  rc=0
  wait "$job" || rc=$?
  check_eq 0 "$rc" "[$who] the confined run exits 0 ($(head -c 400 "$marks/out.$who"))"

  for store in "SSL_CERT_DIR=$certdir" "SSL_CERT_FILE=$LAB_DIR/ca-bundle.pem"; do
    rc=0
    out=$(as "$who" env "$store" timeout -k 5 "$CF_TIMEOUT" "$CHILDFLOW" -p "$proxy" -- \
      curl -sS -m 10 http://www.example.test/ 2>&1) || rc=$?
    check_eq 0 "$rc" "[$who] HTTPS proxy verified through $store (output: ${out:0:400})"
    check_contains "$out" "childflow lab www" "[$who] the page came through the HTTPS proxy ($store)"
    check_not_contains "$out" "seccomp" "[$who] no call outside the allowlist ($store)"
  done
  rc=0
  out=$(cf "$who" -p "$proxy" --proxy-ca "$LAB_DIR/ca-bundle.pem" -- \
    curl -sS -m 10 http://www.example.test/ 2>&1) || rc=$?
  check_eq 0 "$rc" "[$who] HTTPS proxy verified with --proxy-ca (output: ${out:0:400})"
  check_not_contains "$out" "seccomp" "[$who] no call outside the allowlist (--proxy-ca)"
  rc=0
  out=$(cf "$who" -p "$proxy" -- curl -sS -m 10 http://www.example.test/ 2>&1) || rc=$?
  check_eq 7 "$rc" "[$who] without the CA in the store, the proxy's certificate is refused"
  check_not_contains "$out" "seccomp" "[$who] a refused certificate is no call outside the allowlist"
done

engine_finish
