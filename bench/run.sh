#!/usr/bin/env bash
# bench/run.sh — childflow against native, pasta and slirp4netns, interleaved.
#
# Theory of operation
#   Topology (all created here, all removed on exit, even on failure):
#
#     "bench host" netns  cfbench<PID>-host   (plays the user's machine)
#        bench0 198.51.100.2/24, default route via 198.51.100.1
#        /etc/netns/<ns>/resolv.conf -> nameserver 203.0.113.53
#          │ veth
#     "server" netns      cfbench<PID>-srv
#        bench1 198.51.100.1/24, 203.0.113.10/24, 203.0.113.53/24
#        iperf3 -s :5201, sockperf server :11111, bench/http_server :8080
#        (all on 203.0.113.10), dnsmasq on 203.0.113.53:53 answering
#        bench.example.test A 203.0.113.10
#
#   Every variant runs the same client in the bench host netns, against the
#   same server address, so only the sandbox in between differs:
#     native       the client itself
#     pasta        pasta --config-net -- CLIENT   (new user+net ns, tap, host sockets)
#     slirp4netns  bench/slirp-run.sh CLIENT      (unshare -Urn + slirp4netns attached)
#     childflow    childflow -- CLIENT
#     childflow-copy  the same with CHILDFLOW_FORCE_FALLBACK=tcp_peek_off: the TCP copy
#                  path of kernels before 6.9 (its cost: childflow-copy/childflow)
#   Traffic from each sandbox leaves through host sockets in the bench host
#   netns, crosses the veth and reaches the servers. Nothing is sent anywhere
#   but the documentation addresses above.
#
#   Workloads (see docs/performance.md):
#     throughput  iperf3 -c 203.0.113.10 -t DURATION -J   receiver Gbit/s   higher is better
#     latency     sockperf ping-pong --tcp -t DURATION    p50 µs            lower is better
#     connrate    wrk -t1 -c20 -H 'Connection: close'     requests/s        higher is better
#     dns         dnsperf against the sandbox's resolver  queries/s         higher is better
#     startup     VARIANT -- true, RUNS times             median ms         lower is better
#
#   Interleaving: for each round, for each workload, each variant in turn, so
#   the machine's noise spreads over all variants alike. Each (workload,
#   variant) gets the median of its samples; the table shows the medians and
#   the ratios of childflow to each peer. Only ratios from one run mean
#   anything: the machine is shared and noisy.
#
#   A peer that cannot run (missing tool, failure, unreadable output) gets
#   "n/a" with the reason; the run goes on. Every client runs under a timeout.
#
# Usage: bench/run.sh [--rounds N] [--duration S] [--only W[,W...]]
#                     [--variants V[,V...]] [--startup-runs N] [--out FILE.json]
#                     [--childflow PATH] [--keep]
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

ALL_WORKLOADS=(throughput latency connrate dns startup)
ALL_VARIANTS=(native pasta slirp4netns childflow childflow-copy)

rounds=3
duration=5
startup_runs=20
only=$(IFS=,; echo "${ALL_WORKLOADS[*]}")
variants_arg=$(IFS=,; echo "${ALL_VARIANTS[*]}")
out=""
childflow="$REPO_DIR/build/bench/childflow"
keep=0

usage() {
    sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 2
}

while (($#)); do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --only) only=$2; shift 2 ;;
        --variants) variants_arg=$2; shift 2 ;;
        --startup-runs) startup_runs=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --childflow) childflow=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        -h|--help) usage ;;
        *) echo "run.sh: unknown argument: $1" >&2; usage ;;
    esac
done

IFS=, read -r -a workloads <<<"$only"
IFS=, read -r -a variants <<<"$variants_arg"
for w in "${workloads[@]}"; do
    [[ " ${ALL_WORKLOADS[*]} " == *" $w "* ]] || { echo "run.sh: unknown workload $w" >&2; exit 2; }
done
for v in "${variants[@]}"; do
    [[ " ${ALL_VARIANTS[*]} " == *" $v "* ]] || { echo "run.sh: unknown variant $v" >&2; exit 2; }
done
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ && $startup_runs =~ ^[1-9][0-9]*$ ]] ||
    { echo "run.sh: --rounds, --duration and --startup-runs take positive integers" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
    echo "run.sh: must run as root (it creates network namespaces)" >&2
    exit 2
fi

# ---------------------------------------------------------------- topology

NS_PREFIX="cfbench$$"
HOST_NS="$NS_PREFIX-host"
SRV_NS="$NS_PREFIX-srv"
SERVER4=203.0.113.10
DNS4=203.0.113.53
IPERF_PORT=5201
SOCKPERF_PORT=11111
HTTP_PORT=8080
HTTP_SERVER="$REPO_DIR/build/bench/bench-tools/http_server"
WORK=$(mktemp -d /tmp/cfbench.XXXXXX)
chmod 755 "$WORK"
SAMPLES="$WORK/samples.tsv"
: >"$SAMPLES"
mkdir -p "$WORK/raw"
declare -A server_pid=()

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

kill_pid() {  # kill one process we started, by pid, and reap it
    local pid=$1
    kill "$pid" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    for name in "${!server_pid[@]}"; do kill_pid "${server_pid[$name]}"; done
    # Anything still inside our namespaces was started by this run.
    for ns in "$HOST_NS" "$SRV_NS"; do
        if ip netns list | grep -qw "$ns"; then
            for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
            ip netns del "$ns" 2>/dev/null
        fi
    done
    rm -rf "/etc/netns/$HOST_NS"
    if ((keep)); then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

topology_up() {
    ip netns add "$HOST_NS"
    ip netns add "$SRV_NS"
    ip link add bench0 netns "$HOST_NS" type veth peer name bench1 netns "$SRV_NS"
    ip -n "$HOST_NS" link set lo up
    ip -n "$HOST_NS" link set bench0 up
    ip -n "$HOST_NS" addr add 198.51.100.2/24 dev bench0
    ip -n "$HOST_NS" route add default via 198.51.100.1
    ip -n "$SRV_NS" link set lo up
    ip -n "$SRV_NS" link set bench1 up
    ip -n "$SRV_NS" addr add 198.51.100.1/24 dev bench1
    ip -n "$SRV_NS" addr add "$SERVER4/24" dev bench1
    ip -n "$SRV_NS" addr add "$DNS4/24" dev bench1
    # Connection-rate runs open ~100k connections; give the clients' side
    # (the host sockets of every sandbox live in the bench host ns) room.
    ip netns exec "$HOST_NS" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"
    # Unprivileged ICMP sockets, as on a desktop distribution.
    ip netns exec "$HOST_NS" sysctl -qw net.ipv4.ping_group_range="0 2147483647"
    mkdir -p "/etc/netns/$HOST_NS"
    echo "nameserver $DNS4" >"/etc/netns/$HOST_NS/resolv.conf"
    echo "bench.example.test A" >"$WORK/queries.txt"
}

wait_listening() {  # wait_listening PROTO PORT NAME
    local flag=-Hltn
    [[ $1 == udp ]] && flag=-Hlun
    for _ in $(seq 250); do
        if [[ -n $(ip netns exec "$SRV_NS" ss "$flag" "sport = :$2") ]]; then return 0; fi
        if ! kill -0 "${server_pid[$3]}" 2>/dev/null; then
            echo "run.sh: server $3 died:" >&2
            cat "$WORK/$3.log" >&2
            return 1
        fi
        sleep 0.02
    done
    echo "run.sh: server $3 did not listen on $1 port $2 within 5 s" >&2
    return 1
}

start_server() {  # start_server NAME PROTO PORT CMD...
    local name=$1 proto=$2 port=$3
    shift 3
    ip netns exec "$SRV_NS" "$@" >"$WORK/$name.log" 2>&1 &
    server_pid[$name]=$!
    wait_listening "$proto" "$port" "$name"
}

servers_up() {
    mkdir -p "$(dirname "$HTTP_SERVER")"
    if [[ ! -x $HTTP_SERVER || $BENCH_DIR/http_server.cpp -nt $HTTP_SERVER ]]; then
        log "compiling $HTTP_SERVER"
        g++ -std=c++20 -O2 -Wall -Wextra -Werror -o "$HTTP_SERVER" "$BENCH_DIR/http_server.cpp"
    fi
    start_server iperf3 tcp "$IPERF_PORT" iperf3 -s -B "$SERVER4" -p "$IPERF_PORT"
    start_server sockperf tcp "$SOCKPERF_PORT" sockperf server --tcp -i "$SERVER4" -p "$SOCKPERF_PORT"
    start_server http tcp "$HTTP_PORT" "$HTTP_SERVER" "$SERVER4" "$HTTP_PORT"
    start_server dnsmasq udp 53 dnsmasq --keep-in-foreground --conf-file=/dev/null \
        --no-resolv --no-hosts --bind-interfaces --listen-address="$DNS4" \
        --address=/bench.example.test/"$SERVER4" --pid-file= --user=root \
        --log-facility=- --cache-size=1000
}

restart_iperf3() {  # an aborted client can leave iperf3 -s busy with it
    kill_pid "${server_pid[iperf3]}"
    start_server iperf3 tcp "$IPERF_PORT" iperf3 -s -B "$SERVER4" -p "$IPERF_PORT"
}

# ---------------------------------------------------------------- variants

declare -A variant_na=()  # variant -> reason it cannot run at all

variant_prefix() {  # sets PREFIX to the command words that wrap a client
    case "$1" in
        native) PREFIX=() ;;
        # As root pasta would switch to nobody and then fail to map ids;
        # --runas 0 keeps it root, like the other variants.
        pasta) PREFIX=(pasta --runas 0 --config-net --quiet -t none -u none -T none -U none --) ;;
        slirp4netns) PREFIX=(sh "$BENCH_DIR/slirp-run.sh") ;;
        childflow) PREFIX=("$childflow" --) ;;
        # The TCP path of kernels without SO_PEEK_OFF (docs/kernel.md), forced.
        childflow-copy) PREFIX=(env CHILDFLOW_FORCE_FALLBACK=tcp_peek_off "$childflow" --) ;;
    esac
}

check_variants() {
    for v in "${variants[@]}"; do
        case "$v" in
            pasta) command -v pasta >/dev/null || variant_na[$v]="pasta is not installed" ;;
            slirp4netns)
                command -v slirp4netns >/dev/null || variant_na[$v]="slirp4netns is not installed"
                command -v unshare >/dev/null || variant_na[$v]="unshare is not installed" ;;
            childflow|childflow-copy) [[ -x $childflow ]] || variant_na[$v]="no childflow binary at $childflow" ;;
            native) ;;
        esac
        if [[ -z ${variant_na[$v]:-} && $v != native ]]; then
            variant_prefix "$v"
            # Output to a file, not a pipe: a sandbox that leaves a daemon
            # behind must not block us reading its output.
            if ! ip netns exec "$HOST_NS" timeout -k 2 20 "${PREFIX[@]}" true \
                    </dev/null >"$WORK/check.$v" 2>&1; then
                variant_na[$v]="'${PREFIX[*]} true' failed: $(tail -n 3 "$WORK/check.$v" | tr '\n' ' ')"
            fi
        fi
        if [[ -n ${variant_na[$v]:-} ]]; then log "variant $v: n/a: ${variant_na[$v]}"; fi
    done
}

# ---------------------------------------------------------------- workloads

client_cmd() {  # sets CLIENT to the command words of workload $1
    case "$1" in
        throughput) CLIENT=(iperf3 -c "$SERVER4" -p "$IPERF_PORT" -t "$duration" -J) ;;
        latency) CLIENT=(sockperf ping-pong --tcp -i "$SERVER4" -p "$SOCKPERF_PORT" -t "$duration") ;;
        connrate) CLIENT=(wrk -t1 -c20 -d"${duration}s" -H "Connection: close" "http://$SERVER4:$HTTP_PORT/") ;;
        dns) CLIENT=(sh "$BENCH_DIR/dns-client.sh" "$WORK/queries.txt" "$duration") ;;
        startup) CLIENT=() ;;
    esac
}

client_tool() {
    case "$1" in
        throughput) echo iperf3 ;; latency) echo sockperf ;; connrate) echo wrk ;;
        dns) echo dnsperf ;; startup) echo python3 ;;
    esac
}

record() {  # record WORKLOAD VARIANT ROUND VALUE [REASON]
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$SAMPLES"
}

run_one() {  # run_one WORKLOAD VARIANT ROUND
    local w=$1 v=$2 r=$3 raw="$WORK/raw/$1.$2.$3" status=0 reason
    if [[ -n ${variant_na[$v]:-} ]]; then record "$w" "$v" "$r" n/a "${variant_na[$v]}"; return; fi
    if ! command -v "$(client_tool "$w")" >/dev/null; then
        record "$w" "$v" "$r" n/a "$(client_tool "$w") is not installed"
        return
    fi
    variant_prefix "$v"
    client_cmd "$w"
    local limit=$((duration + 60))
    if [[ $w == startup ]]; then
        limit=$((startup_runs * 5 + 30))
        ip netns exec "$HOST_NS" timeout -k 5 "$limit" \
            python3 "$BENCH_DIR/timeit.py" "$startup_runs" "${PREFIX[@]}" true \
            >"$raw.out" 2>"$raw.err" || status=$?
    else
        ip netns exec "$HOST_NS" timeout -k 5 "$limit" "${PREFIX[@]}" "${CLIENT[@]}" \
            </dev/null >"$raw.out" 2>"$raw.err" || status=$?
    fi
    local values
    if values=$(python3 "$BENCH_DIR/results.py" parse "$w" "$raw.out" 2>"$raw.parse"); then
        if ((status != 0)); then
            reason="exit status $status: $(tail -n 3 "$raw.err" | tr '\n' ' ')"
            record "$w" "$v" "$r" n/a "$reason"
            log "$w/$v round $r: n/a ($reason)"
        else
            for value in $values; do record "$w" "$v" "$r" "$value"; done
            local median
            median=$(printf '%s\n' $values | sort -g |
                awk '{ a[NR] = $1 } END { printf "%.4g", NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
            log "$w/$v round $r: $median $(results_unit "$w")"
        fi
    else
        reason="$(cat "$raw.parse")"
        ((status == 124)) && reason="timed out after ${limit}s; $reason"
        ((status != 0 && status != 124)) && reason="exit status $status; $reason"
        local err
        err=$(tail -n 3 "$raw.err" | tr '\n' ' ')
        [[ -n $err ]] && reason="$reason; stderr: $err"
        record "$w" "$v" "$r" n/a "$reason"
        log "$w/$v round $r: n/a ($reason)"
        [[ $w == throughput ]] && restart_iperf3
    fi
    return 0
}

results_unit() {
    case "$1" in
        throughput) echo Gbit/s ;; latency) echo "µs p50" ;; connrate) echo req/s ;;
        dns) echo queries/s ;; startup) echo "ms (median of this round)" ;;
    esac
}

# ---------------------------------------------------------------- main

commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$REPO_DIR" diff --quiet HEAD -- src 2>/dev/null; then commit="$commit+uncommitted-src"; fi

log "topology $HOST_NS <-> $SRV_NS, work dir $WORK"
topology_up
servers_up
check_variants

for ((round = 1; round <= rounds; round++)); do
    for w in "${workloads[@]}"; do
        for v in "${variants[@]}"; do
            run_one "$w" "$v" "$round"
        done
    done
done

report_args=(report "$SAMPLES"
    --meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" --meta "commit=$commit"
    --meta "rounds=$rounds" --meta "duration_s=$duration" --meta "startup_runs=$startup_runs"
    --meta "kernel=$(uname -r)" --meta "cpus=$(nproc)")
[[ -n $out ]] && report_args+=(--out "$out")
echo
echo "childflow bench: $(date -u +%Y-%m-%d\ %H:%M\ UTC), commit $commit, $rounds round(s) of ${duration}s, start-up x$startup_runs per round, $(nproc) CPUs, kernel $(uname -r)"
echo
python3 "$BENCH_DIR/results.py" "${report_args[@]}"
