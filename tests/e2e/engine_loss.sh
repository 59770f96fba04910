#!/usr/bin/env bash
# TCP through the engine under loss, reordering and duplication, as root and
# as the unprivileged lab user.
#
# Two places get netem (1% loss, 1% duplication, 25% of packets reordered
# behind a 1 ms delay):
#   lab link  the lab host <-> router veth, both ways: the host side of each
#             flow (the host kernel's TCP) sees loss, and the engine must
#             keep up with a host socket that stalls and bursts;
#   tap0      inside the tree, the child's egress: the child's data and ACKs
#             are lost, duplicated and reordered before the engine sees
#             them, which exercises the engine's own receiver (duplicate ACKs
#             for out-of-order data) and sender (fast retransmit, RTO
#             recovery).
# Each way, LOSS_MB megabytes (default 1000) keep their sha256, and curl's
# --speed-time aborts a transfer that moves less than 1 KB/s for 10 s (a
# stall of more than a few RTOs). The same download and upload natively,
# under the same lab-link loss, give the reference rates; all are printed
# ("# rate").
#
# netem is a kernel module that some kernels lack (this project's build
# machine, for one): then the test says so and exits 77, which CTest reports
# as skipped. tests/oldkernel runs it in the Debian 6.1 guest, which has it.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

netem="delay 1ms reorder 25% 50% loss 1% duplicate 1%"
modprobe sch_netem 2>/dev/null || true
if ! lab_root tc qdisc add dev eth0 root netem $netem 2>"$LAB_DIR/netem.err"; then
  echo "skip: netem is not available on this kernel ($(uname -r)): $(cat "$LAB_DIR/netem.err")"
  exit 77
fi
lab_router tc qdisc add dev lan0 root netem $netem
mb=${LOSS_MB:-1000}
bulk_fixtures "$mb"
curl_opts="-sS --speed-limit 1024 --speed-time 10 --max-time 1800"

rate() { awk -v b="$size" -v s="$1" 'BEGIN{printf "%.1f MB/s", b / s / 1e6}'; }

t0=$(now_s)
got=$(lab_root bash -o pipefail -c "curl $curl_opts http://$LAB_WWW4/bytes/$size | sha256sum" | cut -d' ' -f1)
took=$(elapsed_s "$t0")
check_eq "$want_down" "$got" "native: $mb MB download under lab-link loss keeps its sha256"
echo "# rate native download, lab-link loss: $(rate "$took")"
t0=$(now_s)
got=$(lab_root curl $curl_opts -T "$upload" "http://$LAB_WWW4/upload")
took=$(elapsed_s "$t0")
check_eq "$want_up" "$got" "native: $mb MB upload under lab-link loss keeps its sha256"
echo "# rate native upload, lab-link loss: $(rate "$took")"

for who in "${ENGINE_WHO[@]}"; do
  for where in link tap0; do
    tc_tap=true
    [[ $where == tap0 ]] && tc_tap="tc qdisc add dev tap0 root netem $netem"
    t0=$(now_s)
    rc=0
    out=$(CF_TIMEOUT=1900 cf "$who" -- bash -o pipefail -c \
      "$tc_tap && curl $curl_opts http://$LAB_WWW4/bytes/$size | sha256sum" 2>&1) || rc=$?
    took=$(elapsed_s "$t0")
    check_eq 0 "$rc" "[$who] $mb MB download, loss on the $where, finished without a stall (${took}s; ${out:0:200})"
    check_eq "$want_down" "${out%% *}" "[$who] $mb MB download, loss on the $where, keeps its sha256"
    echo "# rate childflow [$who] download, loss on the $where: $(rate "$took")"

    t0=$(now_s)
    rc=0
    out=$(CF_TIMEOUT=1900 cf "$who" -- bash -c \
      "$tc_tap && curl $curl_opts -T $upload http://$LAB_WWW4/upload" 2>&1) || rc=$?
    took=$(elapsed_s "$t0")
    check_eq 0 "$rc" "[$who] $mb MB upload, loss on the $where, finished without a stall (${took}s)"
    check_eq "$want_up" "$out" "[$who] $mb MB upload, loss on the $where, keeps its sha256"
    echo "# rate childflow [$who] upload, loss on the $where: $(rate "$took")"
  done
done
rm -f "$upload"
engine_finish
