# shellcheck shell=bash
# The childflow test lab: a private network, with real servers, that every
# end-to-end test runs in. No test traffic ever leaves the machine.
#
# Theory of operation
# -------------------
# A test sources this file and calls lab_up. lab_up builds three network
# namespaces named after the calling shell's pid (cflab<PID>-host, -rtr, -inet):
#
#   host ns (LAB_NS)        eth0 198.51.100.2/24 2001:db8:1::2/64
#        |  veth                 default routes via the router
#   router ns               lan0 198.51.100.1/24 2001:db8:1::1/64
#        |  veth            wan0 203.0.113.1/24  2001:db8:2::1/64
#   inet ns ("internet")    eth0 203.0.113.{2,10,20,30,53}/24, 2001:db8:2::{2,10,20,30,53}/64
#                               default routes via the router
#
# The router forwards IPv4 and IPv6 with ICMP rate limits off, so traceroute
# sees it as a hop. It also holds an unreachable route (LAB_UNREACH*) and a
# blackhole route (LAB_BLACKHOLE*) for error-path tests. IPv6 addresses are added
# with DAD off, so none is ever tentative.
#
# The inet ns runs real daemons, each started here, tracked by pid, logging into
# LAB_DIR/log: dnsmasq (lab DNS), six proxies (tinyproxy for HTTP CONNECT, socat
# TLS in front of tinyproxy for HTTPS, microsocks for SOCKS5; each without and
# with auth), servers/labsrv.py (HTTP/HTTPS origin, echo, half-close, broken
# proxies) and an iperf3 server. servers/ready.py then probes every endpoint
# from the host ns (so the routed path is proven too), polling every 50 ms for at most 10 s; a server that
# does not come up fails lab_up with its log printed. Nothing sleep-waits.
#
# lab_down (run by the EXIT trap that lab_up installs, also on failure and on
# INT/TERM/HUP) runs the lab_defer commands, SIGKILLs every process in the
# three namespaces, waits for them to be gone, deletes the namespaces, their
# /etc/netns files and LAB_DIR. It is idempotent. lab_up also removes labs left
# by runs that were SIGKILLed (their owning pid no longer exists).
#
# The only persistent changes to the machine: the user LAB_USER (cflab) and its
# /etc/subuid and /etc/subgid ranges, created once if missing. /dev/net/tun on
# the machine is never modified: lab_tun_open gives lab commands a private
# 0666 device node bind-mounted over /dev/net/tun in their own mount namespace.
#
# Limits: must run as root; one lab per shell (call lab_up once).
# The full contract is docs/lab.md.

LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/lab/assert.sh
source "$LAB_LIB_DIR/assert.sh"

export LAB_ROUTER4=198.51.100.1 LAB_ROUTER6=2001:db8:1::1
export LAB_HOST4=198.51.100.2 LAB_HOST6=2001:db8:1::2
export LAB_WWW4=203.0.113.10 LAB_WWW6=2001:db8:2::10
export LAB_DNS4=203.0.113.53 LAB_DNS6=2001:db8:2::53
export LAB_ECHO4=203.0.113.20 LAB_ECHO6=2001:db8:2::20
export LAB_PROXY4=203.0.113.30 LAB_PROXY6=2001:db8:2::30
export LAB_PROXY_HOST=proxy.example.test
export LAB_PROXY_USER=labuser LAB_PROXY_PASS=labpass
export LAB_HTTP_PROXY=$LAB_PROXY4:3128 LAB_HTTP_PROXY_AUTH=$LAB_PROXY4:3129
export LAB_HTTPS_PROXY=$LAB_PROXY4:3130 LAB_HTTPS_PROXY_AUTH=$LAB_PROXY4:3131
export LAB_SOCKS=$LAB_PROXY4:1080 LAB_SOCKS_AUTH=$LAB_PROXY4:1081
export LAB_BAD_PROXY_CLOSE=$LAB_PROXY4:3140 LAB_BAD_PROXY_GARBAGE=$LAB_PROXY4:3141
export LAB_BAD_PROXY_SILENT=$LAB_PROXY4:3142
export LAB_UNREACH4=203.0.113.200 LAB_UNREACH6=2001:db8:3::1
export LAB_BLACKHOLE4=203.0.113.170 LAB_BLACKHOLE6=2001:db8:4::1
export LAB_IPERF_PORT=5201
export LAB_USER=cflab

LAB__UP=""
LAB__PIDS=()
LAB__DEFERRED=()
LAB__TUN_NODE=""

# lab__run DESC CMD... : runs CMD; on failure stops the test naming the step.
lab__run() {
  local desc=$1 out
  shift
  if ! out=$("$@" 2>&1); then
    fail "lab: $desc: $out"
  fi
}

lab__ns_pids() {
  ip netns pids "$1" 2>/dev/null || true
}

# Kills every process of the namespaces and deletes them, with their files.
lab__destroy() {
  local prefix=$1 dir=${2:-} ns pids deadline
  local all=("$prefix-host" "$prefix-rtr" "$prefix-inet")
  for ns in "${all[@]}"; do
    pids=$(lab__ns_pids "$ns")
    if [[ -n $pids ]]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
    fi
  done
  deadline=$((SECONDS + 10))
  for ns in "${all[@]}"; do
    while [[ -n $(lab__ns_pids "$ns") ]] && ((SECONDS < deadline)); do
      pids=$(lab__ns_pids "$ns")
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null || true
      sleep 0.02
    done
    if [[ -e /run/netns/$ns ]]; then
      ip netns del "$ns" 2>/dev/null || echo "lab: warning: could not delete namespace $ns" >&2
    fi
    rm -rf "/etc/netns/$ns"
  done
  if [[ -n $dir && -d $dir ]]; then
    rm -rf "$dir"
  fi
}

# Removes labs whose owning shell no longer exists (e.g. a SIGKILLed test).
lab__cleanup_stale() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
    [[ $ns =~ ^cflab([0-9]+)-host$ ]] || continue
    pid=${BASH_REMATCH[1]}
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "lab: removing stale lab of dead pid $pid" >&2
      lab__destroy "cflab$pid"
      rm -rf /tmp/cflab"$pid".??????
    fi
  done
}

# Creates LAB_USER and its subordinate id ranges once, under a lock, so that
# concurrent labs do not race.
lab__ensure_user() {
  [[ -e /etc/subuid ]] || : >>/etc/subuid
  [[ -e /etc/subgid ]] || : >>/etc/subgid
  # shellcheck disable=SC2094 # fd 9 only holds the lock; appends are safe under it
  (
    flock 9
    if ! id -u "$LAB_USER" >/dev/null 2>&1; then
      useradd --system --user-group --create-home --home-dir "/var/lib/$LAB_USER" \
        --shell /bin/sh --comment "childflow test lab" "$LAB_USER" || exit 1
    fi
    local f start
    for f in /etc/subuid /etc/subgid; do
      if ! grep -q "^$LAB_USER:" "$f"; then
        start=$(awk -F: 'BEGIN{m=100000} NF>=3 {e=$2+$3; if (e>m) m=e} END{print m}' "$f")
        echo "$LAB_USER:$start:65536" >>"$f"
      fi
    done
  ) 9</etc/subuid || fail "lab: could not create user $LAB_USER"
}

lab__sysctl() {
  local ns=$1
  shift
  lab__run "sysctl in $ns" ip netns exec "$ns" sysctl -q -w "$@"
}

lab__make_certs() {
  local d=$LAB_DIR/tls ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
  mkdir -p "$d"
  lab__run "openssl: test CA" openssl req -x509 "${ec[@]}" -keyout "$d/ca.key" -out "$d/ca.pem" \
    -days 3 -subj "/CN=childflow lab test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
  lab__run "openssl: server key" openssl req "${ec[@]}" -keyout "$d/server.key" -out "$d/server.csr" \
    -subj "/CN=www.example.test"
  printf '%s\n' \
    "subjectAltName=DNS:www.example.test,DNS:proxy.example.test,DNS:echo.example.test,DNS:v4only.example.test,DNS:v6only.example.test,DNS:*.wild.example.test,IP:$LAB_WWW4,IP:$LAB_WWW6,IP:$LAB_PROXY4,IP:$LAB_PROXY6" \
    "basicConstraints=CA:FALSE" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,digitalSignature,keyEncipherment" >"$d/server.ext"
  lab__run "openssl: sign server cert" openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" \
    -CAkey "$d/ca.key" -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" -days 3 \
    -extfile "$d/server.ext" -out "$d/server.pem"
  chmod 0644 "$d"/*
  export LAB_CA=$d/ca.pem LAB_SERVER_CERT=$d/server.pem LAB_SERVER_KEY=$d/server.key
}

lab__write_dnsmasq_conf() {
  local f=$LAB_DIR/dnsmasq.conf i
  {
    echo "keep-in-foreground"
    echo "no-resolv"
    echo "no-hosts"
    echo "bind-interfaces"
    echo "listen-address=$LAB_DNS4"
    echo "listen-address=$LAB_DNS6"
    echo "user=root"
    echo "group=root"
    echo "pid-file=$LAB_DIR/dnsmasq.pid"
    echo "log-queries=extra"
    echo "log-facility=$LAB_DNS_LOG"
    echo "local-ttl=300"
    echo "local=/example.test/"
    echo "host-record=www.example.test,$LAB_WWW4,$LAB_WWW6"
    echo "host-record=echo.example.test,$LAB_ECHO4,$LAB_ECHO6"
    echo "host-record=proxy.example.test,$LAB_PROXY4" # A only: the proxies listen on IPv4
    echo "host-record=v4only.example.test,$LAB_WWW4"
    echo "host-record=v6only.example.test,$LAB_WWW6"
    echo "host-record=shortttl.example.test,$LAB_WWW4,$LAB_WWW6,2"
    echo "host-record=unreach.example.test,$LAB_UNREACH4,$LAB_UNREACH6"
    echo "host-record=blackhole.example.test,$LAB_BLACKHOLE4,$LAB_BLACKHOLE6"
    # A name whose answers carry another name (a CNAME chain).
    echo "cname=alias.example.test,www.example.test"
    echo "address=/wild.example.test/$LAB_WWW4"
    echo "address=/wild.example.test/$LAB_WWW6"
    # 160 A records: about 2.6 kB, more than 512 bytes and more than the usual
    # EDNS buffer (1232), so every UDP answer is truncated (TC) and TCP works.
    for i in $(seq 100 179); do echo "host-record=big.example.test,203.0.113.$i"; done
    for i in $(seq 100 179); do echo "host-record=big.example.test,198.51.100.$i"; done
  } >"$f"
}

# lab__tinyproxy NAME LISTEN PORT AUTH(0|1)
lab__tinyproxy() {
  local name=$1 listen=$2 port=$3 auth=$4 conf=$LAB_DIR/tinyproxy-$1.conf
  {
    echo "Port $port"
    echo "Listen $listen"
    echo "Timeout 600"
    echo "MaxClients 1024"
    echo "LogFile \"$LAB_DIR/log/proxy-$name.log\""
    echo "LogLevel Info"
    echo "DisableViaHeader Yes"
    if ((auth)); then echo "BasicAuth $LAB_PROXY_USER $LAB_PROXY_PASS"; fi
  } >"$conf"
  # No Allow/Deny lines: every client is allowed. No ConnectPort lines: CONNECT
  # to any port is allowed.
  lab__spawn "tinyproxy-$name" tinyproxy -d -c "$conf"
}

# lab__spawn NAME CMD... : starts a daemon in the inet ns, its output going to
# LAB__SPAWN_LOG if set, else to log/NAME.out.
lab__spawn() {
  local name=$1 log=${LAB__SPAWN_LOG:-$LAB_DIR/log/$1.out}
  shift
  ip netns exec "$LAB_NS_INET" "$@" >>"$log" 2>&1 </dev/null &
  local pid=$!
  disown "$pid" 2>/dev/null || true
  LAB__PIDS+=("$pid")
  echo "$pid $name" >>"$LAB_DIR/pids"
}

lab__dump_logs() {
  local f
  for f in "$LAB_DIR"/log/*; do
    [[ -s $f ]] || continue
    echo "----- $f" >&2
    tail -n 20 "$f" >&2
  done
  echo "----- processes:" >&2
  while read -r pid name; do
    if [[ -d /proc/$pid ]]; then echo "$name ($pid) running" >&2; else echo "$name ($pid) DEAD" >&2; fi
  done <"$LAB_DIR/pids"
}

lab__on_exit() {
  local rc=$?
  lab__check_flowlogs || { ((rc != 0)) || rc=1; }
  lab_down
  exit "$rc"
}

# Every childflow run in the lab writes a flow log that is checked against
# docs/flow-log-schema.md at teardown (issue 4: "a test validates every event
# of every end-to-end run"). lab_up points $CHILDFLOW at a wrapper that adds
# `--flow-log $LAB_DIR/flowlogs/run.N.jsonl` to plain runs; runs that choose
# their own log, a profile or another mode are passed through untouched.
lab__install_flowlog_wrapper() {
  [[ -n ${CHILDFLOW:-} && -x ${CHILDFLOW:-} ]] || return 0
  mkdir -p "$LAB_DIR/bin" "$LAB_DIR/flowlogs"
  chmod 1777 "$LAB_DIR/flowlogs"
  export CHILDFLOW_REAL=$CHILDFLOW
  cat >"$LAB_DIR/bin/childflow" <<WRAP
#!/usr/bin/env bash
for a in "\$@"; do
  case "\$a" in
    --flow-log | --flow-log=* | --profile | --profile=* | --doctor | --report | --report=* | \\
      --dump-profile | --cleanup | -h | --help | -V | --version)
      exec "$CHILDFLOW" "\$@" ;;
  esac
done
log=\$(mktemp "$LAB_DIR/flowlogs/run.XXXXXX") || exit 125
exec "$CHILDFLOW" --flow-log "\$log" "\$@"
WRAP
  chmod 0755 "$LAB_DIR/bin/childflow"
  export CHILDFLOW=$LAB_DIR/bin/childflow
}

lab__check_flowlogs() {
  [[ -d ${LAB_DIR:-}/flowlogs ]] || return 0
  local f bad=0 n=0
  for f in "$LAB_DIR"/flowlogs/run.*; do
    [[ -e $f ]] || continue
    n=$((n + 1))
    if ! python3 "$LAB_LIB_DIR/flowlog_schema.py" "$f" >/dev/null 2>"$LAB_DIR/schema.err"; then
      echo "FAIL: flow log of a run does not match docs/flow-log-schema.md: $(head -c 400 "$LAB_DIR/schema.err")" >&2
      bad=1
    fi
  done
  [[ $bad -eq 0 ]] && ((n > 0)) && echo "ok - $n flow log(s) of this test match the schema"
  return $bad
}

# lab_up: builds the lab, starts every server, waits until all are ready.
lab_up() {
  [[ $(id -u) -eq 0 ]] || fail "lab: must run as root (it creates network namespaces)"
  [[ -z $LAB__UP ]] || fail "lab: lab_up called twice in one shell"
  local t0=$EPOCHREALTIME
  lab__cleanup_stale
  LAB__PREFIX=cflab$BASHPID
  lab__destroy "$LAB__PREFIX" # a dead run whose pid was reused
  export LAB_NS=$LAB__PREFIX-host LAB_NS_ROUTER=$LAB__PREFIX-rtr LAB_NS_INET=$LAB__PREFIX-inet
  LAB__UP=1
  trap lab__on_exit EXIT
  # Under set -e a failing command ends the script without a word; say which.
  # (Scripts without set -e test exit codes themselves: nothing to say.)
  trap 'lab__rc=$?; [[ $- != *e* ]] || echo "lab: ${BASH_SOURCE[0]##*/} line $LINENO: \"$BASH_COMMAND\" failed with $lab__rc" >&2' ERR
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  LAB_DIR=$(mktemp -d "/tmp/$LAB__PREFIX.XXXXXX") || fail "lab: mktemp failed"
  export LAB_DIR
  chmod 0755 "$LAB_DIR"
  mkdir -p "$LAB_DIR/log"
  lab__install_flowlog_wrapper
  : >"$LAB_DIR/pids"
  export LAB_DNS_LOG=$LAB_DIR/log/dns.log
  export LAB_WWW_LOG=$LAB_DIR/log/www.log LAB_ECHO_LOG=$LAB_DIR/log/echo.log
  export LAB_BAD_PROXY_LOG=$LAB_DIR/log/badproxy.log
  export LAB_PROXY_LOG_HTTP=$LAB_DIR/log/proxy-http.log
  export LAB_PROXY_LOG_HTTP_AUTH=$LAB_DIR/log/proxy-http_auth.log
  export LAB_PROXY_LOG_HTTPS=$LAB_DIR/log/proxy-https.log
  export LAB_PROXY_LOG_HTTPS_AUTH=$LAB_DIR/log/proxy-https_auth.log
  export LAB_PROXY_LOG_SOCKS=$LAB_DIR/log/proxy-socks.log
  export LAB_PROXY_LOG_SOCKS_AUTH=$LAB_DIR/log/proxy-socks_auth.log

  lab__ensure_user
  install -d -o "$LAB_USER" -g "$LAB_USER" -m 0755 "$LAB_DIR/home"

  # Namespaces and their sysctls (before the links exist, so the defaults apply
  # to the new interfaces: no DAD, no rp_filter).
  local ns
  for ns in "$LAB_NS" "$LAB_NS_ROUTER" "$LAB_NS_INET"; do
    lab__run "ip netns add $ns" ip netns add "$ns"
  done
  local common=(net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    net.ipv6.conf.default.accept_ra=0 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    net.ipv4.icmp_ratelimit=0 net.ipv4.icmp_msgs_per_sec=1000000 net.ipv4.icmp_msgs_burst=1000000
    net.ipv6.icmp.ratelimit=0)
  lab__sysctl "$LAB_NS" "${common[@]}" "net.ipv4.ping_group_range=0 2147483647"
  lab__sysctl "$LAB_NS_ROUTER" "${common[@]}" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  lab__sysctl "$LAB_NS_INET" "${common[@]}"

  # Links, addresses, routes.
  # Distinct ifindexes on the two ends of each veth: the kernel treats a carrier
  # change as urgent only when a device's ifindex differs from its peer's
  # (iflink); with equal indexes (2 and 2 in fresh namespaces) carrier-on waits
  # up to 1 s in linkwatch and the first IPv6 packets are lost.
  lab__run "veth host<->router" ip link add eth0 netns "$LAB_NS" index 10 type veth peer name lan0 netns "$LAB_NS_ROUTER" index 11
  lab__run "veth router<->inet" ip link add wan0 netns "$LAB_NS_ROUTER" index 12 type veth peer name eth0 netns "$LAB_NS_INET" index 13
  local h=(ip -n "$LAB_NS") r=(ip -n "$LAB_NS_ROUTER") i=(ip -n "$LAB_NS_INET") a
  lab__run "host addresses" "${h[@]}" -batch - <<EOF
link set lo up
addr add $LAB_HOST4/24 dev eth0
addr add $LAB_HOST6/64 dev eth0 nodad
link set eth0 up
route add default via $LAB_ROUTER4
route add default via $LAB_ROUTER6
EOF
  lab__run "router addresses" "${r[@]}" -batch - <<EOF
link set lo up
addr add $LAB_ROUTER4/24 dev lan0
addr add $LAB_ROUTER6/64 dev lan0 nodad
addr add 203.0.113.1/24 dev wan0
addr add 2001:db8:2::1/64 dev wan0 nodad
link set lan0 up
link set wan0 up
route add unreachable 203.0.113.192/26
route add blackhole 203.0.113.160/28
route add unreachable 2001:db8:3::/64
route add blackhole 2001:db8:4::/64
EOF
  {
    echo "link set lo up"
    for a in 2 10 20 30 53; do
      echo "addr add 203.0.113.$a/24 dev eth0"
      echo "addr add 2001:db8:2::$a/64 dev eth0 nodad"
    done
    echo "link set eth0 up"
    echo "route add default via 203.0.113.1"
    echo "route add default via 2001:db8:2::1"
  } >"$LAB_DIR/inet.ip"
  lab__run "inet addresses" "${i[@]}" -batch "$LAB_DIR/inet.ip"

  # Per-namespace resolver and hosts files (ip netns exec bind-mounts them).
  mkdir -p "/etc/netns/$LAB_NS" "/etc/netns/$LAB_NS_INET"
  printf 'nameserver %s\n' "$LAB_DNS4" >"/etc/netns/$LAB_NS/resolv.conf"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"/etc/netns/$LAB_NS/hosts"
  printf 'nameserver %s\n' "$LAB_DNS4" >"/etc/netns/$LAB_NS_INET/resolv.conf"

  lab__make_certs
  lab__write_dnsmasq_conf

  # Daemons.
  lab__spawn dnsmasq dnsmasq --conf-file="$LAB_DIR/dnsmasq.conf"
  local py=/usr/bin/python3
  [[ -x $py ]] || py=python3
  lab__spawn labsrv "$py" "$LAB_LIB_DIR/servers/labsrv.py" --logdir "$LAB_DIR/log" \
    --cert "$LAB_SERVER_CERT" --key "$LAB_SERVER_KEY" \
    --www "$LAB_WWW4" --www "$LAB_WWW6" --echo "$LAB_ECHO4" --echo "$LAB_ECHO6" \
    --badproxy "$LAB_PROXY4" --badproxy "$LAB_PROXY6"
  lab__tinyproxy http "$LAB_PROXY4" 3128 0
  lab__tinyproxy http_auth "$LAB_PROXY4" 3129 1
  lab__tinyproxy https 127.0.0.1 13130 0
  lab__tinyproxy https_auth 127.0.0.1 13131 1
  local tlsopts="reuseaddr,fork,cert=$LAB_SERVER_CERT,key=$LAB_SERVER_KEY,verify=0"
  lab__spawn socat-https socat -d "OPENSSL-LISTEN:3130,bind=$LAB_PROXY4,$tlsopts" TCP4:127.0.0.1:13130
  lab__spawn socat-https_auth socat -d "OPENSSL-LISTEN:3131,bind=$LAB_PROXY4,$tlsopts" TCP4:127.0.0.1:13131
  # microsocks logs "client[N] IP: connected to TARGET:PORT" on stderr.
  lab__spawn_socks socks 1080
  lab__spawn_socks socks_auth 1081 -u "$LAB_PROXY_USER" -P "$LAB_PROXY_PASS"
  # iperf3 server for benchmarks, on every inet address (IPv4 and IPv6).
  lab__spawn iperf3 iperf3 -s -p "$LAB_IPERF_PORT"

  # Readiness, probed from the host ns through the router.
  local checks=(
    "dns:$LAB_DNS4:www.example.test" "dns:[$LAB_DNS6]:www.example.test" "tcp:$LAB_DNS4:53"
    "tcp:$LAB_WWW4:80" "tcp:[$LAB_WWW6]:80" "tcp:$LAB_WWW4:443" "tcp:[$LAB_WWW6]:443"
    "tcp:$LAB_ECHO4:7" "tcp:[$LAB_ECHO6]:7" "tcp:$LAB_ECHO4:9" "tcp:[$LAB_ECHO6]:9"
    "udp-echo:$LAB_ECHO4:7" "udp-echo:[$LAB_ECHO6]:7"
    "tcp:$LAB_HTTP_PROXY" "tcp:$LAB_HTTP_PROXY_AUTH" "tcp:$LAB_HTTPS_PROXY" "tcp:$LAB_HTTPS_PROXY_AUTH"
    "tcp:$LAB_SOCKS" "tcp:$LAB_SOCKS_AUTH"
    "tcp:$LAB_BAD_PROXY_CLOSE" "tcp:$LAB_BAD_PROXY_GARBAGE" "tcp:$LAB_BAD_PROXY_SILENT"
    "tcp:$LAB_WWW4:$LAB_IPERF_PORT"
  )
  local inner_checks=("tcp:127.0.0.1:13130" "tcp:127.0.0.1:13131")
  local ready=("$py" "$LAB_LIB_DIR/servers/ready.py" --verbose) rlog=$LAB_DIR/log/ready.log
  ip netns exec "$LAB_NS_INET" "${ready[@]}" "${inner_checks[@]}" >>"$rlog" 2>&1 &
  local inner_pid=$! inner_rc=0 outer_rc=0
  ip netns exec "$LAB_NS" "${ready[@]}" "${checks[@]}" >>"$rlog" 2>&1 || outer_rc=$?
  wait "$inner_pid" || inner_rc=$?
  if ((inner_rc || outer_rc)); then
    lab__dump_logs
    fail "lab: servers did not come up (see above)"
  fi
  local t1=$EPOCHREALTIME
  echo "lab: up in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s (ns $LAB_NS, dir $LAB_DIR)"
}

lab__spawn_socks() {
  local name=$1 port=$2
  shift 2
  LAB__SPAWN_LOG=$LAB_DIR/log/proxy-$name.log lab__spawn "proxy-$name" microsocks -i "$LAB_PROXY4" -p "$port" "$@"
}

# lab_down: tears everything down; safe to call any number of times.
lab_down() {
  [[ -n ${LAB__UP:-} ]] || return 0
  local i
  for ((i = ${#LAB__DEFERRED[@]} - 1; i >= 0; i--)); do
    eval "${LAB__DEFERRED[i]}" || true
  done
  LAB__DEFERRED=()
  local pid
  for pid in "${LAB__PIDS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  lab__destroy "$LAB__PREFIX" "${LAB_DIR:-}"
  LAB__PIDS=()
  LAB__UP=""
  LAB__TUN_NODE=""
  trap - EXIT HUP INT TERM ERR
}

# A second uplink for the lab host (the rootful --iface tests): eth1
# 198.51.100.130/25 and 2001:db8:5::2/64, a veth to the router's lan1
# (198.51.100.129/25, 2001:db8:5::1/64), with default routes through it at
# metric 2000, so eth0's (IPv4 metric 0, IPv6 1024) stay the ones in use.
# The router reaches the inet through wan0 as before, so the servers see
# LAB_HOST4_B / LAB_HOST6_B for traffic that left through eth1. Called after
# lab_up by the tests that need it; lab_down removes it with the namespaces.
lab_second_uplink() {
  export LAB_HOST4_B=198.51.100.130 LAB_HOST6_B=2001:db8:5::2
  lab__run "veth host eth1<->router lan1" ip link add eth1 netns "$LAB_NS" index 14 type veth peer name lan1 netns "$LAB_NS_ROUTER" index 15
  lab__run "router lan1" ip -n "$LAB_NS_ROUTER" -batch - <<EOF
addr add 198.51.100.129/25 dev lan1
addr add 2001:db8:5::1/64 dev lan1 nodad
link set lan1 up
EOF
  lab__run "host eth1" ip -n "$LAB_NS" -batch - <<EOF
addr add $LAB_HOST4_B/25 dev eth1
addr add $LAB_HOST6_B/64 dev eth1 nodad
link set eth1 up
route add default via 198.51.100.129 dev eth1 metric 2000
route add default via 2001:db8:5::1 dev eth1 metric 2000
EOF
}

# lab_defer CMD : runs the shell command string CMD at lab_down (last in, first out).
lab_defer() {
  LAB__DEFERRED+=("$1")
}

# Runs CMD in the lab host ns; with lab_tun_open/lab_tun_mode in effect, the
# private tun node is bind-mounted over /dev/net/tun first (in the mount
# namespace that `ip netns exec` creates for this command only).
lab__exec_host() {
  if [[ -n $LAB__TUN_NODE && -e /dev/net/tun ]]; then
    # shellcheck disable=SC2016
    ip netns exec "$LAB_NS" /bin/sh -c 'mount --bind "$0" /dev/net/tun && exec "$@"' "$LAB__TUN_NODE" "$@"
  else
    ip netns exec "$LAB_NS" "$@"
  fi
}

# lab_root CMD... : runs CMD as root in the lab host namespace (cwd preserved).
lab_root() {
  lab__exec_host "$@"
}

# lab_user CMD... : runs CMD as LAB_USER in the lab host namespace (cwd and PATH
# preserved, HOME=LAB_DIR/home).
lab_user() {
  lab__exec_host runuser -u "$LAB_USER" -- env HOME="$LAB_DIR/home" PATH="$PATH" "$@"
}

# lab_inet CMD... : runs CMD as root in the inet namespace.
lab_inet() {
  ip netns exec "$LAB_NS_INET" "$@"
}

# lab_router CMD... : runs CMD as root in the router namespace.
lab_router() {
  ip netns exec "$LAB_NS_ROUTER" "$@"
}

# lab_tun_mode MODE : from now on, lab_root/lab_user commands see /dev/net/tun
# as a private node (same device, 10:200) with MODE, e.g. 0600 to test the
# "tun not openable" path. The machine's /dev/net/tun is never touched.
lab_tun_mode() {
  local mode=$1 node=$LAB_DIR/dev-net-tun
  rm -f "$node"
  lab__run "mknod $node" mknod -m "$mode" "$node" c 10 200
  chmod "$mode" "$node"
  LAB__TUN_NODE=$node
}

# lab_tun_open : lab commands see /dev/net/tun with mode 0666, so LAB_USER can
# open it even where the machine's node is 0600.
lab_tun_open() {
  lab_tun_mode 0666
}

# lab_tun_restore : lab commands see the machine's own /dev/net/tun again.
lab_tun_restore() {
  LAB__TUN_NODE=""
  rm -f "${LAB_DIR:?}/dev-net-tun"
}

# lab_wait_until TIMEOUT_S DESC CMD... : polls CMD every 50 ms until it
# succeeds; fails the test with DESC after TIMEOUT_S seconds.
lab_wait_until() {
  local timeout=$1 desc=$2 start=$EPOCHREALTIME
  shift 2
  until "$@" >/dev/null 2>&1; do
    if awk -v a="$start" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN{exit !(b-a > t)}'; then
      fail "timed out after ${timeout}s waiting for: $desc"
    fi
    sleep 0.05
  done
}

# lab_bytes_sha256 N : prints the sha256 of GET /bytes/N's body.
lab_bytes_sha256() {
  python3 - "$1" <<'EOF'
import hashlib, sys
n = int(sys.argv[1]); block = bytes(range(256)) * 4096; h = hashlib.sha256()
while n:
    k = min(n, len(block)); h.update(block[:k]); n -= k
print(h.hexdigest())
EOF
}
