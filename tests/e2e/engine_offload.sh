#!/usr/bin/env bash
# tap0's offloads end to end (docs/design.md, "Offloads"), as root and as the
# unprivileged lab user, at --mtu 1500, where without them every TCP segment
# across tap0 is at most 1460 bytes:
# - a 50 MB download and a 50 MB upload over IPv4 and a download over IPv6
#   keep their sha256;
# - in a capture (child view) of a 4 MB download and a 4 MB upload, segments
#   larger than the MTU cross tap0 in both directions (the engine's towards the
#   tree, the tree kernel's towards the engine), over IPv4 and IPv6;
# - tshark validates every IP, TCP and UDP checksum in that file: the engine
#   writes the full checksum into the capture although tap0 carried only the
#   pseudo-header's; and every TCP segment in it, resent ones included, holds
#   the bytes that were sent at its sequence number (capture_payloads.py);
# - with CHILDFLOW_FORCE_FALLBACK=tap_offload (the e2e.engine_offload.no_tap_offload
#   variant) no frame exceeds the MTU, and everything else holds.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_capture.sh"
src=${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}
command -v tshark >/dev/null || fail "tshark is not installed (scripts/install-deps.sh)"
engine_up

offload=1
[[ ",${CHILDFLOW_FORCE_FALLBACK:-}," == *,tap_offload,* ]] && offload=0

mb=${BULK_MB:-50}
bulk_fixtures "$mb"
small=4000000  # bytes: the captured transfers
head -c "$small" /dev/urandom >"$LAB_DIR/home/small.bin"
chmod 0644 "$LAB_DIR/home/small.bin"

for who in "${ENGINE_WHO[@]}"; do
  for fam in 4 6; do
    rc=0
    out=$(cf "$who" --mtu 1500 -- bash -o pipefail -c \
      "curl -sS -$fam --max-time 60 http://www.example.test/bytes/$size | sha256sum" 2>&1) || rc=$?
    check_eq 0 "$rc" "[$who] $mb MB download over IPv$fam at MTU 1500 finished (${out:0:300})"
    check_eq "$want_down" "${out%% *}" "[$who] $mb MB download over IPv$fam at MTU 1500 has the right sha256"
  done
  rc=0
  out=$(cf "$who" --mtu 1500 -- curl -sS --max-time 60 -T "$upload" http://www.example.test/upload 2>&1) || rc=$?
  check_eq 0 "$rc" "[$who] $mb MB upload at MTU 1500 finished (${out:0:300})"
  check_eq "$want_up" "$out" "[$who] the server's sha256 of the $mb MB upload at MTU 1500 matches"

  dir=$LAB_DIR/home/offload-$who
  as "$who" mkdir "$dir"
  rc=0
  cf "$who" --mtu 1500 -c "$dir/t.pcapng" -- bash -o pipefail -c "
    curl -sS -4 --max-time 60 -o /dev/null http://www.example.test/bytes/$small &&
    curl -sS -6 --max-time 60 -o /dev/null http://www.example.test/bytes/$small &&
    curl -sS -4 --max-time 60 -o /dev/null -T $LAB_DIR/home/small.bin http://www.example.test/upload &&
    curl -sS -6 --max-time 60 -o /dev/null -T $LAB_DIR/home/small.bin http://www.example.test/upload" \
    >"$LAB_DIR/out-$who" 2>&1 || rc=$?
  check_eq 0 "$rc" "[$who] captured transfers at MTU 1500 finished ($(head -c 300 "$LAB_DIR/out-$who"))"

  # The largest TCP frame each way and family (the lab's web server is on
  # port 80).
  for fam in 4 6; do
    if [[ $fam == 4 ]]; then ipf=ip; else ipf=ipv6; fi
    down=$(tshark_fields "$dir/t.pcapng" "$ipf && tcp.srcport == 80" -e frame.len | sort -n | tail -n 1)
    up=$(tshark_fields "$dir/t.pcapng" "$ipf && tcp.dstport == 80" -e frame.len | sort -n | tail -n 1)
    if ((offload)); then
      check_le 1515 "${down:-0}" "[$who] IPv$fam: the engine hands the tree segments larger than the MTU"
      check_le 1515 "${up:-0}" "[$who] IPv$fam: the tree's kernel hands the engine segments larger than the MTU"
    else
      check_le "${down:-99999}" 1514 "[$who] IPv$fam without offloads: no frame to the tree exceeds the MTU"
      check_le "${up:-99999}" 1514 "[$who] IPv$fam without offloads: no frame from the tree exceeds the MTU"
      check_le 1000 "${down:-0}" "[$who] IPv$fam without offloads: full-size frames to the tree"
    fi
  done
  v=$(tshark_verbose "$dir/t.pcapng")
  check_contains "$v" "[Checksum Status: Good]" "[$who] tshark validated checksums in the capture"
  check_not_contains "$v" "Malformed" "[$who] no malformed frame in the capture"
  check_not_contains "$v" "Expert Info (Error" "[$who] no checksum error in the capture"
  rc=0
  out=$(python3 "$src/tests/e2e/capture_payloads.py" "$dir/t.pcapng" "$LAB_DIR/home/small.bin" 4 2>&1) ||
    rc=$?
  check_eq 0 "$rc" "[$who] every captured segment, resent ones too, holds the bytes sent at its sequence number ($out)"
done

rm -f "$upload"
engine_finish
