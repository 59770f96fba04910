#!/usr/bin/env bash
# Engine ICMP and UDP error mapping end to end, as root and as the
# unprivileged lab user:
# - ping and ping -6 of the gateway (answered by the engine) and of a lab
#   server (relayed through the host's ICMP sockets);
# - traceroute -n (UDP) and traceroute -I (ICMP echo), IPv4 and IPv6: the lab
#   router's hop then the server, exactly as natively from the lab host;
#   each traceroute -I run is captured, the child view must hold the
#   router's error and the server's replies, and a failed run prints both
#   views decoded.
# The tree-side scripts are single-quoted on purpose: they expand inside the tree.
# shellcheck disable=SC2016
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up
# Captures of the traceroute -I runs, writable by both users.
capdir=$LAB_DIR/captures
install -d -m 1777 "$capdir"

# hops TRACEROUTE_OUTPUT : "1 ADDR 2 ADDR ..." (one probe per hop).
hops() {
  awk 'NR > 1 {printf "%s%s %s", sep, $1, $2; sep = " "}' <<<"$1"
}

tr_opts=(-n -q 1 -w 2 -m 6)

# show_capture BASE : prints BASE.child.pcapng and BASE.egress.pcapng decoded,
# for a failed check's diagnosis.
show_capture() {
  local view
  for view in child egress; do
    echo "--- $view view ($1.$view.pcapng):" >&2
    tshark -n -r "$1.$view.pcapng" >&2 2>&1 || echo "(no capture: tshark failed)" >&2
  done
}
# delivered BASE FAM ROUTER SERVER : "SENT ERRORS REPLIES" in the child view
# BASE.child.pcapng: echo requests the tree sent, time-exceeded errors from
# ROUTER and echo replies from SERVER it got.
delivered() {
  local filter=icmp src=ip.src type=icmp.type req=8 rep=0 te=11
  if [[ $2 == 6 ]]; then filter=icmpv6 src=ipv6.src type=icmpv6.type req=128 rep=129 te=3; fi
  # An error's fields list its quoted packet's values after its own: keep the first.
  tshark -n -r "$1.child.pcapng" -Y "$filter" -T fields -e "$src" -e "$type" 2>/dev/null |
    awk -v req=$req -v rep=$rep -v te=$te -v router="$3" -v server="$4" '
      { split($1, s, ","); split($2, t, ",") }
      t[1] == req { n++ } t[1] == te && s[1] == router { e++ } t[1] == rep && s[1] == server { r++ }
      END { printf "%d %d %d\n", n, e, r }'
}

declare -A native
for fam in 4 6; do
  www=LAB_WWW$fam
  native[udp$fam]=$(hops "$(lab_root traceroute -"$fam" "${tr_opts[@]}" "${!www}" 2>&1)")
  native[icmp$fam]=$(hops "$(lab_root traceroute -"$fam" -I "${tr_opts[@]}" "${!www}" 2>&1)")
done
check_eq "1 $LAB_ROUTER4 2 $LAB_WWW4" "${native[udp4]}" "natively traceroute -n shows the router then the server"
check_eq "1 $LAB_ROUTER6 2 $LAB_WWW6" "${native[udp6]}" "natively traceroute -6 -n shows the router then the server"
check_eq "${native[udp4]}" "${native[icmp4]}" "natively traceroute -I agrees"
check_eq "${native[udp6]}" "${native[icmp6]}" "natively traceroute -6 -I agrees"

for who in "${ENGINE_WHO[@]}"; do
  # ping: the gateways, then the server, each family.
  rc=0
  out=$(cf "$who" -- bash -c "$GW_SCRIPT"'
    set -e
    ping -c 2 -W 2 "$g4"
    ping -6 -c 2 -W 2 "$g6"' 2>&1) || rc=$?
  check_eq 0 "$rc" "[$who] ping and ping -6 of the gateways exit 0 (output: ${out:0:1500})"
  check_eq 2 "$(grep -c '^64 bytes from 10\.240\.' <<<"$out")" "[$who] the IPv4 gateway answered both pings"
  check_eq 2 "$(grep -c '^64 bytes from fd42:' <<<"$out")" "[$who] the IPv6 gateway answered both pings"
  for fam in 4 6; do
    www=LAB_WWW$fam
    rc=0
    out=$(cf "$who" -- ping -"$fam" -c 2 -W 2 "${!www}" 2>&1) || rc=$?
    check_eq 0 "$rc" "[$who] ping -$fam ${!www} exits 0 (output: ${out:0:800})"
    check_eq 2 "$(grep -c "^64 bytes from ${!www}: icmp_seq=" <<<"$out")" "[$who] ping -$fam: both replies from ${!www}"
  done

  # traceroute, UDP and ICMP, each family.
  for fam in 4 6; do
    www=LAB_WWW$fam
    out=$(cf "$who" -- traceroute -"$fam" "${tr_opts[@]}" "${!www}" 2>&1) || true
    check_eq "${native[udp$fam]}" "$(hops "$out")" "[$who] traceroute -$fam -n (UDP) shows the router hop then the server [${out//$'\n'/ | }]"
    # traceroute -I sends its probes at once; run it a few times, since a
    # probe lost to a race between them must not pass by luck. It runs as
    # root inside (--as-root), with a raw socket as natively: without
    # privilege traceroute uses a ping socket, and then natively too it
    # misses the reply to the first probe after the router's error.
    #
    # Each run is captured, and the child view must show what the engine
    # owes the tree: the router's error for the first probe and the
    # server's reply to every other one. traceroute's own output can still
    # miss them all through a race in the tree's kernel (docs/kernel.md,
    # "traceroute -I and the raw socket's error"): only when the capture
    # proves every frame was delivered is such a run repeated, at most
    # twice, and the repeat must show the router then the server.
    for try in 1 2 3; do
      for attempt in 1 2 3; do
        cap=$capdir/$who-traceroute-I.pcapng
        rm -f "${cap%.pcapng}".*.pcapng
        out=$(cf "$who" --as-root -c "$cap" --capture-point both -- \
          traceroute -"$fam" -I "${tr_opts[@]}" "${!www}" 2>&1) || true
        got=$(hops "$out")
        router=LAB_ROUTER$fam
        read -r sent errors replies < <(delivered "${cap%.pcapng}" "$fam" "${!router}" "${!www}")
        check_eq "1 $((sent - 1))" "$errors $replies" "[$who] traceroute -$fam -I (run $try.$attempt): the tree got the router's error for the first of its $sent probes and the server's reply to the others"
        if [[ $got != "${native[icmp$fam]}" && $errors == 1 && $replies == $((sent - 1)) && $attempt -lt 3 ]]; then
          echo "# [$who] traceroute -$fam -I (run $try.$attempt) missed frames the tree got (the raw socket race): running it again [${out//$'\n'/ | }]"
          continue
        fi
        check_eq "${native[icmp$fam]}" "$got" "[$who] traceroute -$fam -I (run $try) shows the router hop then the server [${out//$'\n'/ | }]"
        [[ $got == "${native[icmp$fam]}" ]] || show_capture "${cap%.pcapng}"
        break
      done
    done
  done
done

engine_finish
