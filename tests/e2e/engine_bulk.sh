#!/usr/bin/env bash
# Engine bulk transfer end to end, as root and as the unprivileged lab user:
# a 200 MB download (GET /bytes/N, whose content is deterministic) and a 200 MB
# upload (PUT /upload, whose answer is the server's sha256 of the body), both
# checked by sha256 against a digest computed outside the sandbox; the
# download over IPv4 and IPv6. BULK_MB changes the size (the emulated
# old-kernel run in CI uses less). Also: the tree's default TCP congestion
# control is cubic whatever the host's (docs/design.md, "The tree's
# congestion control"), and the host's own is left as it was.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

mb=${BULK_MB:-200}
bulk_fixtures "$mb"
host_cc=$(cat /proc/sys/net/ipv4/tcp_congestion_control)
avail_cc=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control)

for who in "${ENGINE_WHO[@]}"; do
  if [[ " $avail_cc " == *" cubic "* ]]; then
    check_eq cubic "$(cf "$who" -- cat /proc/sys/net/ipv4/tcp_congestion_control 2>&1)" \
      "[$who] the tree's default TCP congestion control is cubic (the host's: $host_cc)"
  fi
  for fam in 4 6; do
    t0=$(now_s)
    rc=0
    # pipefail inside: a curl failure is not hidden by sha256sum.
    out=$(cf "$who" -- bash -o pipefail -c \
      "curl -sS -$fam --max-time ${BULK_MAX_TIME:-40} http://www.example.test/bytes/$size | sha256sum" 2>&1) || rc=$?
    took=$(elapsed_s "$t0")
    check_eq 0 "$rc" "[$who] $mb MB download over IPv$fam finished (${took}s; output: ${out:0:300})"
    check_eq "$want_down" "${out%% *}" "[$who] $mb MB download over IPv$fam has the right sha256"
  done

  t0=$(now_s)
  rc=0
  out=$(cf "$who" -- curl -sS --max-time ${BULK_MAX_TIME:-40} -T "$upload" http://www.example.test/upload 2>&1) || rc=$?
  took=$(elapsed_s "$t0")
  check_eq 0 "$rc" "[$who] $mb MB upload finished (${took}s; output: ${out:0:300})"
  check_eq "$want_up" "$out" "[$who] the server's sha256 of the $mb MB upload matches"
  check_contains "$(grep "www http $LAB_HOST4 .* upload" "$LAB_WWW_LOG" | tail -n 1)" "upload $size bytes" \
    "[$who] the server logged a $size-byte upload"
done

check_eq "$host_cc" "$(cat /proc/sys/net/ipv4/tcp_congestion_control)" \
  "the host's default TCP congestion control is unchanged"
rm -f "$upload"
engine_finish
