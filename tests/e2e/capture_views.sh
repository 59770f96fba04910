#!/usr/bin/env bash
# Capture end to end (docs/capture.md), as root and as the
# unprivileged lab user:
# - `-c NAME -C both` writes NAME.child.pcapng and NAME.egress.pcapng (and not
#   NAME), the same paths --summary lists;
# - tshark reads both with IP/TCP/UDP checksum validation on and reports no
#   malformed packet and no expert warning or error;
# - the child view holds the tree's 10.240.x.y address, the HTTP GET, the DNS
#   query to the gateway, both directions, and the description
#   "childflow view=child backend=rootless-internal kind=isolated interface=tap0";
# - the egress view holds the same flows from the lab host's 198.51.100.2 (DNS to
#   the lab resolver 203.0.113.53), never the tree's own addresses, and
#   the description "... view=egress ... kind=logical interface=eth0";
# - `-c NAME` alone writes the child view into NAME; `-C egress` over IPv6
#   shows the lab host's 2001:db8:1::2;
# - every HTTP frame of both views carries the flow log's flow_id as its
#   comment, ARP none; a denied connection's SYN and reset carry the verdict;
# - as the user, `-C wire-egress` fails with exit 1 and a clear message,
#   creating no file (preflight: no CAP_NET_RAW); root's wire-egress is
#   capture_wire.sh's;
# - while the tree still runs (idle after a download), the file already holds
#   every frame of the download (the writer thread keeps up).
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_capture.sh"
command -v tshark >/dev/null || fail "tshark is not installed (scripts/install-deps.sh)"
engine_up


# check_clean WHAT TSHARK_OUTPUT
check_clean() {
  check_not_contains "$2" "Malformed" "$1: no malformed packet"
  check_not_contains "$2" "Expert Info (Warning" "$1: no expert warning"
  check_not_contains "$2" "Expert Info (Error" "$1: no expert error (checksums validated)"
}

for who in "${ENGINE_WHO[@]}"; do
  dir=$LAB_DIR/home/cap-$who
  as "$who" mkdir "$dir"

  # --- both views, HTTP by name over IPv4 ---
  rc=0
  out=$(cf "$who" --summary --flow-log "$dir/x.jsonl" -c "$dir/x.pcapng" -C both -- curl -sS -4 http://www.example.test/ 2>"$LAB_DIR/stderr-$who") || rc=$?
  check_eq 0 "$rc" "$who: curl through childflow with -C both exits 0"
  check_contains "$out" "childflow lab www" "$who: HTTP by name with -C both"
  summary=$(cat "$LAB_DIR/stderr-$who")
  check_contains "$summary" "$dir/x.child.pcapng" "$who: the summary lists the child file"
  check_contains "$summary" "$dir/x.egress.pcapng" "$who: the summary lists the egress file"
  check_eq "x.child.pcapng x.egress.pcapng" "$(cd "$dir" && echo *.pcapng)" "$who: -C both writes exactly NAME.child.pcapng and NAME.egress.pcapng"

  child=$(tshark_verbose "$dir/x.child.pcapng")
  egress=$(tshark_verbose "$dir/x.egress.pcapng")
  check_clean "$who child view" "$child"
  check_clean "$who egress view" "$egress"

  check_contains "$child" "Interface description: childflow view=child backend=rootless-internal kind=isolated interface=tap0" "$who: child view interface description"
  check_contains "$egress" "Interface description: childflow view=egress backend=rootless-internal kind=logical interface=eth0" "$who: egress view interface description"

  child4=$(tshark_fields "$dir/x.child.pcapng" "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==80" -e ip.src | head -n1)
  check_match "$child4" '^10\.240\.[0-9]+\.[0-9]+$' "$who: child view: the HTTP SYN comes from the tree's 10.240.x.y address"
  check_match "$child" "Src: 10\\.240\\.[0-9.]+, Dst: 203\\.0\\.113\\.10" "$who: child view: tree -> www over IPv4"
  check_match "$child" "Src: 203\\.0\\.113\\.10, Dst: 10\\.240\\.[0-9.]+" "$who: child view: www -> tree"
  check_contains "$child" "GET / HTTP/1.1" "$who: child view: the HTTP GET"
  check_contains "$child" "Host: www.example.test" "$who: child view: the Host header"
  check_contains "$child" "childflow lab www" "$who: child view: the HTTP response body"
  check_contains "$child" "Name: www.example.test" "$who: child view: the DNS query"
  check_contains "$child" "Direction: Outbound" "$who: child view: frames from the tree are outbound"
  check_contains "$child" "Direction: Inbound" "$who: child view: frames to the tree are inbound"
  dns_dst=$(tshark_fields "$dir/x.child.pcapng" "dns.flags.response==0" -e ip.dst | head -n1)
  check_match "$dns_dst" '^10\.240\.[0-9]+\.[0-9]+$' "$who: child view: DNS goes to the tree's gateway"

  check_contains "$egress" "Src: $LAB_HOST4, Dst: $LAB_WWW4" "$who: egress view: lab host -> www"
  check_contains "$egress" "Src: $LAB_WWW4, Dst: $LAB_HOST4" "$who: egress view: www -> lab host"
  check_contains "$egress" "GET / HTTP/1.1" "$who: egress view: the HTTP GET"
  check_contains "$egress" "childflow lab www" "$who: egress view: the HTTP response body"
  check_contains "$egress" "Src: $LAB_HOST4, Dst: $LAB_DNS4" "$who: egress view: DNS to the lab resolver"
  check_contains "$egress" "Name: www.example.test" "$who: egress view: the DNS query"
  check_not_contains "$egress" "10.240." "$who: egress view: no tree address anywhere"
  n_child=$(tshark_fields "$dir/x.child.pcapng" "tcp.port==80" -e frame.number | wc -l)
  n_egress=$(tshark_fields "$dir/x.egress.pcapng" "tcp.port==80" -e frame.number | wc -l)
  check_eq "$n_child" "$n_egress" "$who: both views hold the same HTTP segments ($n_child)"
  check_le 6 "$n_child" "$who: the HTTP exchange has at least 6 segments"
  # Per-packet comments: the flow log's flow_id of the connection.
  want_id=$(flowlog_ids "$dir/x.jsonl" connect_attempt remote_port=80)
  for view in child egress; do
    check_comments "$who: $view view: every HTTP frame carries the flow log's flow_id" \
      "$dir/x.$view.pcapng" "tcp.port==80" "flow_id=$want_id"
  done
  check_eq "" "$(tshark_fields "$dir/x.child.pcapng" "arp" -e frame.comment | sort -u)" "$who: ARP frames carry no flow comment"

  # A denied connection: its SYN and the reset carry the verdict.
  rc=0
  cf "$who" --flow-log "$dir/deny.jsonl" --deny-cidr "$LAB_WWW4/32" -c "$dir/deny.pcapng" -- curl -sS -4 --max-time 5 http://www.example.test/ >/dev/null 2>&1 || rc=$?
  check_eq 7 "$rc" "$who: a denied curl fails to connect"
  deny_id=$(flowlog_ids "$dir/deny.jsonl" policy_violation)
  check_comments "$who: the denied SYN and its reset carry the flow_id and the verdict" \
    "$dir/deny.pcapng" "tcp.port==80" "flow_id=$deny_id verdict=denied reason_code=deny_cidr"
  check_eq 2 "$(tshark_fields "$dir/deny.pcapng" "tcp.port==80" -e frame.number | wc -l)" "$who: the denied flow is a SYN and a reset"

  # --- default view ---
  rc=0
  out=$(cf "$who" -c "$dir/only.pcapng" -- curl -sS -4 http://www.example.test/) || rc=$?
  check_eq 0 "$rc" "$who: curl with -c alone exits 0"
  check_eq "$dir/only.pcapng" "$(ls "$dir"/only*)" "$who: -c NAME writes NAME only"
  only=$(tshark_verbose "$dir/only.pcapng")
  check_clean "$who default view" "$only"
  check_contains "$only" "view=child backend=rootless-internal kind=isolated interface=tap0" "$who: -c alone is the child view"
  check_contains "$only" "GET / HTTP/1.1" "$who: default view: the HTTP GET"

  # --- egress over IPv6 ---
  rc=0
  out=$(cf "$who" -c "$dir/v6.pcapng" -C egress -- curl -sS -g "http://[$LAB_WWW6]/") || rc=$?
  check_eq 0 "$rc" "$who: curl over IPv6 with -C egress exits 0"
  check_contains "$out" "childflow lab www" "$who: HTTP over IPv6"
  v6=$(tshark_verbose "$dir/v6.pcapng")
  check_clean "$who IPv6 egress view" "$v6"
  check_contains "$v6" "Src: $LAB_HOST6, Dst: $LAB_WWW6" "$who: egress view: lab host -> www over IPv6"
  check_contains "$v6" "Src: $LAB_WWW6, Dst: $LAB_HOST6" "$who: egress view: www -> lab host over IPv6"
  check_contains "$v6" "GET / HTTP/1.1" "$who: IPv6 egress view: the HTTP GET"
  check_not_contains "$v6" "Src: fd" "$who: IPv6 egress view: no tree address"
  check_not_contains "$v6" "Neighbor Solicitation" "$who: IPv6 egress view: no NDP"

  # --- the file fills while the run goes on (the writer thread) ---
  # A 20 MB download keeps the writer busy; half a second after it, while the
  # tree still runs, every HTTP frame the finished run holds is on file.
  rm -f "$dir/live.done"
  cf "$who" -c "$dir/live.pcapng" -- sh -c \
    "curl -sS -4 -o /dev/null http://www.example.test/bytes/20000000 && touch $dir/live.done && sleep 4" \
    >/dev/null 2>&1 &
  live_job=$!
  for _ in $(seq 300); do [[ -e $dir/live.done ]] && break; sleep 0.1; done
  sleep 0.5
  during=$(tshark_fields "$dir/live.pcapng" "tcp.port == 80" -e frame.number | wc -l)
  rc=0
  wait "$live_job" || rc=$?
  check_eq 0 "$rc" "$who: the 20 MB download with a capture exits 0"
  after=$(tshark_fields "$dir/live.pcapng" "tcp.port == 80" -e frame.number | wc -l)
  check_le 300 "$after" "$who: the download's frames are in the capture"
  check_eq "$after" "$during" "$who: while the tree still ran, every HTTP frame was already on file"

  # --- wire-egress: root's is tested in capture_wire.sh ---
  if [[ $who == user ]]; then
    rc=0
    err=$(cf "$who" -c "$dir/wire.pcapng" -C wire-egress -- true 2>&1) || rc=$?
    check_eq 1 "$rc" "$who: -C wire-egress exits 1"
    # Preflight stops an unprivileged run first: no CAP_NET_RAW for a packet socket.
    check_contains "$err" "--capture-point wire-egress (requested) cannot work" "$who: -C wire-egress: preflight says why"
    if [[ -e $dir/wire.pcapng ]]; then check_fail "$who: -C wire-egress created $dir/wire.pcapng"; else check_pass "$who: -C wire-egress creates no file"; fi
  fi
done

engine_finish
