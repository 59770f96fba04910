#!/usr/bin/env bash
# The tree cannot take its sandbox apart, and childflow runs inside childflow.
# For both users of the lab (root and the unprivileged LAB_USER):
# - by default the command runs as the caller (same uid and gid, no
#   capabilities) and ping still works through ping sockets;
# - with --as-root, root inside tries umount, umount -l and mount --move on
#   /proc, /etc/resolv.conf and /etc/hosts, and the same again from a nested
#   user + mount namespace (unshare -Urm); by default only the nested attempt
#   has the privilege to try. Every attempt must fail;
# - then it searches every /proc/*/environ and /proc/*/cmdline it can read
#   for a canary variable of another process of the same user outside the
#   tree and for the proxy password given with -P: neither may be found;
# - childflow inside childflow, with the outer run as the user and --as-root:
#   the inner run's rules apply on top of the outer run's.
# The tree-side scripts are single-quoted on purpose: they expand inside the tree.
# shellcheck disable=SC2016
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# Tries to remove each of the tree's mounts; prints one line per success.
ATTACK='
for m in /proc /etc/resolv.conf /etc/hosts; do
  umount "$m" 2>/dev/null && echo "UMOUNTED $m"
  umount -l "$m" 2>/dev/null && echo "DETACHED $m"
  d=$(mktemp -d); [ "$m" = /proc ] || { d=$d/f; touch "$d"; }
  mount --move "$m" "$d" 2>/dev/null && echo "MOVED $m"
done
echo "PROCS $(ls -d /proc/[0-9]* | wc -l)"
'
# Searches what the tree can read for the two secrets, split in halves so
# that the search itself does not contain them (the lab exports the proxy
# password to its commands: the tree's command drops it, as a user's would
# not have it).
SEARCH='
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do cat "$f" 2>/dev/null; echo; done |
  tr "\0" "\n" >"$TMPDIR/seen.txt"
echo "CANARY $(grep -c -e "$C1$C2" "$TMPDIR/seen.txt")"
echo "PASSWORD $(grep -c -e "$P1$P2" "$TMPDIR/seen.txt")"
'

canary=cf-canary-$RANDOM$RANDOM
for who in "${ENGINE_WHO[@]}"; do
  want_uid=$(as "$who" id -u)
  want_gid=$(as "$who" id -g)

  # Default: the caller's identity, no capabilities, ping through ping sockets.
  rc=0
  out=$(cf "$who" -- sh -c 'echo "ID $(id -u) $(id -g)"; grep ^CapEff /proc/self/status
    ping -c 1 -W 2 "$1" >/dev/null && echo PING-OK' sh "$LAB_WWW4" 2>&1) || rc=$?
  check_eq 0 "$rc" "[$who] default run exits 0 (output: ${out:0:600})"
  check_contains "$out" "ID $want_uid $want_gid" "[$who] by default the command has the caller's uid and gid"
  if [[ $want_uid != 0 ]]; then
    check_contains "$out" "CapEff:	0000000000000000" "[$who] by default the command has no capabilities"
  fi
  check_contains "$out" "PING-OK" "[$who] ping works as the caller (ping_group_range)"

  # The canary: a process of the same user, outside the tree.
  as "$who" env "CF_CANARY=$canary" sleep 120 &
  canary_pid=$!
  for mode in --as-root default; do
    flags=()
    [[ $mode == --as-root ]] && flags=(--as-root)
    rc=0
    out=$(cf "$who" "${flags[@]}" -p "http://$LAB_HTTP_PROXY_AUTH" -U "$LAB_PROXY_USER" -P "$LAB_PROXY_PASS" -- \
      env -u LAB_PROXY_PASS "C1=${canary:0:8}" "C2=${canary:8}" "P1=${LAB_PROXY_PASS:0:3}" "P2=${LAB_PROXY_PASS:3}" \
      sh -c 'TMPDIR=$(mktemp -d); export TMPDIR; echo "ID $(id -u)"
        '"$ATTACK"'
        unshare -Urm sh -c '"'$ATTACK'"' | sed "s/^/NESTED /"
        '"$SEARCH"'
        curl -sS -m 10 -o /dev/null -w "HTTP %{http_code}\n" http://www.example.test/
        rm -rf "$TMPDIR"' 2>&1) || rc=$?
    check_eq 0 "$rc" "[$who $mode] the attacks ran (output: ${out:0:1500})"
    [[ $mode == --as-root ]] && check_contains "$out" "ID 0" "[$who $mode] the command is root inside"
    check_not_contains "$out" "UMOUNTED" "[$who $mode] no mount of the tree can be unmounted [$out]"
    check_not_contains "$out" "DETACHED" "[$who $mode] no mount of the tree can be detached"
    check_not_contains "$out" "MOVED" "[$who $mode] no mount of the tree can be moved"
    check_match "$out" $'\nPROCS [1-9]\n' "[$who $mode] /proc still shows the tree's few processes"
    check_match "$out" $'\nNESTED PROCS [1-9]\n' "[$who $mode] /proc in a nested namespace too"
    check_contains "$out" "CANARY 0" "[$who $mode] another process's environment is out of sight"
    check_contains "$out" "PASSWORD 0" "[$who $mode] the proxy password is out of sight"
    check_contains "$out" "HTTP 200" "[$who $mode] the authenticated proxy still carried the request"
  done
  kill "$canary_pid" 2>/dev/null || true
  wait "$canary_pid" 2>/dev/null || true

  # childflow inside childflow: the outer run denies the server's IPv6
  # address, the inner one its IPv4 address; names resolve through both.
  for mode in default --as-root; do
    flags=()
    [[ $mode == --as-root ]] && flags=(--as-root)
    rc=0
    out=$(cf "$who" "${flags[@]}" --deny-cidr "$LAB_WWW6/128" -- \
      "$CHILDFLOW" --deny-cidr "$LAB_WWW4/32" -- sh -c '
        getent ahostsv4 www.example.test | head -1
        curl -sS -m 10 -o /dev/null -w "IN4 %{http_code}\n" "http://$1/" 2>/dev/null || echo "IN4 refused"
        curl -sS -m 10 -o /dev/null -w "IN6 %{http_code}\n" "http://[$2]/" 2>/dev/null || echo "IN6 refused"
        curl -sS -m 10 -o /dev/null -w "PROXY %{http_code}\n" "http://$3/" 2>/dev/null || echo "PROXY refused"' \
      sh "$LAB_WWW4" "$LAB_WWW6" "$LAB_HTTP_PROXY" 2>&1) || rc=$?
    check_contains "$out" "$LAB_WWW4" "[$who outer $mode] names resolve through both runs [${out//$'\n'/ | }]"
    check_contains "$out" "IN4 refused" "[$who outer $mode] the inner run's deny rule holds"
    check_contains "$out" "IN6 refused" "[$who outer $mode] the outer run's deny rule holds inside the inner run"
    check_match "$out" "PROXY [1-5][0-9][0-9]" "[$who outer $mode] an address neither run denies is reached"
  done
done

engine_finish
