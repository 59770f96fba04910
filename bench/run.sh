#!/usr/bin/env bash
# bench/run.sh — childflow against native, pasta and slirp4netns, interleaved.
#
# Theory of operation
#   Topology (all created here, all removed on exit, even on failure):
#
#     "bench host" netns  cfbench<PID>-host   (plays the user's machine)
#        bench0 198.51.100.2/24, default route via 198.51.100.1 (veth, MTU 1500)
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
#     native       the client itself, as root (no sandbox: the floor)
#     pasta        pasta --config-net -- CLIENT   (new user+net ns, tap, host sockets)
#     slirp4netns  bench/slirp-run.sh CLIENT      (unshare -Urn + slirp4netns attached)
#     childflow    childflow -- CLIENT
#     childflow-copy  the same with CHILDFLOW_FORCE_FALLBACK=tcp_peek_off: the TCP copy
#                  path of kernels before 6.9 (its cost: childflow-copy/childflow)
#     childflow-plain  (only when --variants names it) the same with
#                  CHILDFLOW_FORCE_FALLBACK=tap_offload: tap0 without its offloads
#                  (what they buy: childflow/childflow-plain)
#   The four sandboxes run as an unprivileged user, as their users run them:
#   BENCH_USER (cfbench, created if missing and left in place, like the test
#   lab's cflab; no subordinate ids: no variant needs them), through
#   bench/as-user.sh, with HOME and the working directory in the work dir. If
#   /dev/net/tun is not 0666 (what the unprivileged sandboxes need), the run
#   says so and gives its own commands a private 0666 node; the machine's node
#   is never changed. Traffic from each sandbox leaves through host sockets in
#   the bench host netns, crosses the veth and reaches the servers. Nothing is
#   sent anywhere but the documentation addresses above.
#
#   Workloads (see docs/performance.md); each fills one or more table rows:
#     throughput           iperf3 -c, child sends, default MTUs    Gbit/s + CPU s/GB
#     throughput-rev       iperf3 -c -R, host sends                Gbit/s + CPU s/GB
#     throughput-1500      as throughput, sandbox MTU 1500         Gbit/s + CPU s/GB
#     throughput-rev-1500  as throughput-rev, sandbox MTU 1500     Gbit/s + CPU s/GB
#     latency     sockperf ping-pong --tcp -t DURATION    p50 µs            lower is better
#     connrate    wrk -t1 -c20 -H 'Connection: close'     requests/s        higher is better
#     dns         dnsperf against the sandbox's resolver  queries/s         higher is better
#     startup     VARIANT -- true, RUNS times             median ms         lower is better
#     memory      1,000 then 10,000 idle TCP connections  sandbox VmRSS and VmHWM, MiB
#     capture     200 MB download (iperf3 -R -n) with and without a packet capture
#                 (into a tmpfs), three pairs a round: time with / time without
#   CPU per GB: the CPU time (user+system, /proc/PID/task/*/schedstat) of the
#   sandbox's own processes (childflow's, pasta's, slirp4netns's; not the client's), read
#   right before and right after the transfer (bench/marked.sh holds the
#   sandbox up for the second reading), divided by the GB iperf3 received.
#   Memory: the sandbox's engine process (childflow's parent, pasta, the
#   slirp4netns helper), read once the client (bench/hold-conns.py) holds the
#   connections and the server has them established.
#
#   Interleaving: for each round, for each workload, each variant in turn, so
#   the machine's noise spreads over all variants alike. Each (row, variant)
#   gets the median of its samples; the table shows the medians and the
#   ratios of childflow to each peer. Only ratios from one run mean anything:
#   the machine is shared and noisy. A figure implausibly far from native's
#   and the best sandbox's gets a warning under the table: it means a broken
#   set-up or tool, not a result.
#
#   A peer that cannot run (missing tool, failure, unreadable output) gets
#   "n/a" with the reason; the run goes on. Every client runs under a timeout.
#
# Usage: bench/run.sh [--rounds N] [--duration S] [--only W[,W...]]
#                     [--variants V[,V...]] [--startup-runs N] [--out FILE.json]
#                     [--childflow PATH] [--user NAME] [--keep]
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")

ALL_WORKLOADS=(throughput throughput-rev throughput-1500 throughput-rev-1500
    latency connrate dns startup memory capture)
ALL_VARIANTS=(native pasta slirp4netns childflow childflow-copy)
KNOWN_VARIANTS=("${ALL_VARIANTS[@]}" childflow-plain)

rounds=3
duration=5
startup_runs=20
only=$(IFS=,; echo "${ALL_WORKLOADS[*]}")
variants_arg=$(IFS=,; echo "${ALL_VARIANTS[*]}")
out=""
childflow="$REPO_DIR/build/release/childflow"
BENCH_USER=cfbench
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
        --user) BENCH_USER=$2; shift 2 ;;
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
    [[ " ${KNOWN_VARIANTS[*]} " == *" $v "* ]] || { echo "run.sh: unknown variant $v" >&2; exit 2; }
done
[[ $rounds =~ ^[1-9][0-9]*$ && $duration =~ ^[1-9][0-9]*$ && $startup_runs =~ ^[1-9][0-9]*$ ]] ||
    { echo "run.sh: --rounds, --duration and --startup-runs take positive integers" >&2; exit 2; }
[[ $BENCH_USER =~ ^[a-z_][a-z0-9_-]*$ && $BENCH_USER != root ]] ||
    { echo "run.sh: --user takes an unprivileged user name" >&2; exit 2; }
if [[ $(id -u) -ne 0 ]]; then
    echo "run.sh: must run as root (it creates network namespaces and runs the sandboxes as $BENCH_USER)" >&2
    exit 2
fi
if [[ -e $childflow ]]; then childflow=$(realpath "$childflow"); fi

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
CONNS=(1000 10000)           # idle connections of the memory workload
CAPTURE_MB=200               # size of the capture workload's download
CAPTURE_PAIRS=3              # downloads without and with capture, per round
NOFILE=65536                 # ulimit -n for the servers and the clients
WORK=$(mktemp -d /tmp/cfbench.XXXXXX)
chmod 755 "$WORK"
BIN="$WORK/bin"              # what the user runs: copies, readable wherever the repo is
UHOME="$WORK/home"           # the user's HOME and working directory
RUN="$WORK/run"              # the fifos of the sampled runs
CAPDIR="$WORK/capture"       # a tmpfs while a capture runs (bench/as-user.sh --tmpfs)
SAMPLES="$WORK/samples.tsv"
: >"$SAMPLES"
mkdir -p "$WORK/raw" "$BIN" "$UHOME" "$RUN" "$CAPDIR"
declare -A server_pid=()
jobs_started=()              # background clients, to stop with their trees on exit
TUN_OPT=()                   # --tun NODE for bench/as-user.sh when the node is not 0666
setup_notes=()               # printed under the table header

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

descendants() {  # descendants PID: every process below PID, deepest last
    ps -e -o pid=,ppid= | awk -v root="$1" '
        { parent[$1] = $2 }
        END {
            for (p in parent) {
                d = 0; q = p
                while ((q in parent) && q != root && q > 1) { q = parent[q]; d++ }
                if (q == root && p != root) print d, p
            }
        }' | sort -n | awk '{ print $2 }'
}

kill_tree() {  # kill_tree PID: a background client we started, and all below it
    local pid=$1 kids
    mapfile -t kids < <(descendants "$pid")
    kill -9 "$pid" "${kids[@]}" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    for pid in "${jobs_started[@]}"; do kill -0 "$pid" 2>/dev/null && kill_tree "$pid"; done
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
    chmod 644 "$WORK/queries.txt"
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

# ---------------------------------------------------------------- the user

# The unprivileged user every sandbox runs as. Created once if missing and
# left in place (like the test lab's cflab): a system user with no home, no
# shell and no subordinate id ranges. No variant needs ranges: pasta maps only
# the caller's id, slirp-run.sh uses `unshare --map-root-user`, childflow's
# default maps only the caller's id (docs/sandbox.md).
user_up() {
    if ! id -u "$BENCH_USER" >/dev/null 2>&1; then
        # Another run may create it at the same moment: then it exists.
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin --comment "childflow bench (bench/run.sh)" "$BENCH_USER" ||
            id -u "$BENCH_USER" >/dev/null
        log "created user $BENCH_USER (left in place after the run)"
    fi
    BENCH_UID=$(id -u "$BENCH_USER")
    chown "$BENCH_USER:" "$UHOME" "$RUN"
    chmod 700 "$UHOME" "$RUN"
    # Copies the user can read and run wherever the repository lives (under
    # /root, say): the scripts the sandboxes run, and the binary under test.
    install -m 755 "$BENCH_DIR/as-user.sh" "$BENCH_DIR/marked.sh" "$BENCH_DIR/hold-conns.py" \
        "$BENCH_DIR/slirp-run.sh" "$BENCH_DIR/dns-client.sh" "$BENCH_DIR/timeit.py" "$BIN/"
    if [[ -x $childflow ]]; then install -m 755 "$childflow" "$BIN/childflow"; fi

    local mode
    mode=$(stat -c %a /dev/net/tun 2>/dev/null || echo none)
    if [[ $mode == none ]]; then
        setup_notes+=("/dev/net/tun does not exist: no sandbox can run")
    elif [[ $mode != 666 ]]; then
        # The test lab's way (tests/lab/lab.sh, lab_tun_open): a private node.
        mknod -m 0666 "$WORK/dev-net-tun" c 10 200
        chmod 0666 "$WORK/dev-net-tun"
        TUN_OPT=(--tun "$WORK/dev-net-tun")
        setup_notes+=("/dev/net/tun is mode 0$mode on this machine, but unprivileged pasta, slirp4netns and childflow need it 0666 (Debian's default). The bench's own commands saw a private 0666 node bind-mounted over it in their mount namespaces; the machine's node was not changed, and its users cannot run these sandboxes until it is 0666.")
    fi
    for note in "${setup_notes[@]}"; do log "note: $note"; done

    # 10,000 idle connections need 10,000 descriptors in the client, the
    # sandbox and the server alike; children inherit this limit.
    # Without CAP_SYS_RESOURCE (in a container) the hard limit stays: then
    # the soft one goes up to it. bench/as-user.sh does the same for the user
    # (whom runuser's pam_limits gives the machine's default soft limit).
    ulimit -n "$NOFILE" 2>/dev/null || ulimit -Sn "$(ulimit -Hn)"
    local hard
    hard=$(ulimit -Hn)
    if [[ $hard != unlimited ]] && ((hard < CONNS[-1] + 100)); then
        NOFILE_NA="ulimit -n is at most $hard here (hard limit), too few for ${CONNS[-1]} connections"
        log "note: $NOFILE_NA: the memory workload holds only ${CONNS[0]} connections"
        CONNS=("${CONNS[0]}")
    fi
}
NOFILE_NA=""

# ---------------------------------------------------------------- variants

declare -A variant_na=()  # variant -> reason it cannot run at all

# variant_prefix VARIANT [MTU [CAPTURE_FILE]]: sets PREFIX to the command words
# that wrap a client (each sandbox with its own documentation's set-up).
variant_prefix() {
    local v=$1 mtu=${2:-} cap=${3:-}
    case "$v" in
        native) PREFIX=() ;;
        # As its users run it (rootless podman's set-up): no port forwarding
        # in either direction, so no port scanning. Its defaults otherwise:
        # MTU 65520.
        pasta)
            PREFIX=(pasta --config-net --quiet -t none -u none -T none -U none)
            [[ -n $mtu ]] && PREFIX+=(--mtu "$mtu")
            [[ -n $cap ]] && PREFIX+=(--pcap "$cap")
            PREFIX+=(--) ;;
        slirp4netns)
            PREFIX=(sh "$BIN/slirp-run.sh")
            [[ -n $mtu ]] && PREFIX+=(--mtu "$mtu") ;;
        childflow|childflow-copy|childflow-plain)
            PREFIX=()
            # The TCP path of kernels without SO_PEEK_OFF (docs/kernel.md), forced.
            [[ $v == childflow-copy ]] && PREFIX=(env CHILDFLOW_FORCE_FALLBACK=tcp_peek_off)
            # tap0 without its offloads (docs/design.md, "Offloads").
            [[ $v == childflow-plain ]] && PREFIX=(env CHILDFLOW_FORCE_FALLBACK=tap_offload)
            PREFIX+=("$BIN/childflow")
            [[ -n $mtu ]] && PREFIX+=(--mtu "$mtu")
            [[ -n $cap ]] && PREFIX+=(--capture "$cap")
            PREFIX+=(--) ;;
    esac
    return 0
}

# launcher VARIANT [as-user.sh options]: sets LAUNCH to the words that run a
# command in the bench host netns: as root for native, else as BENCH_USER.
launcher() {
    if [[ $1 == native ]]; then
        LAUNCH=(ip netns exec "$HOST_NS")
    else
        LAUNCH=(ip netns exec "$HOST_NS" sh "$BIN/as-user.sh" "${TUN_OPT[@]}" "${@:2}" "$BENCH_USER" "$UHOME")
    fi
}

check_variants() {
    for v in "${variants[@]}"; do
        case "$v" in
            pasta) command -v pasta >/dev/null || variant_na[$v]="pasta is not installed" ;;
            slirp4netns)
                command -v slirp4netns >/dev/null || variant_na[$v]="slirp4netns is not installed"
                command -v unshare >/dev/null || variant_na[$v]="unshare is not installed" ;;
            childflow|childflow-copy|childflow-plain) [[ -x $childflow ]] || variant_na[$v]="no childflow binary at $childflow" ;;
            native) ;;
        esac
        if [[ -z ${variant_na[$v]:-} && $v != native ]]; then
            variant_prefix "$v"
            launcher "$v"
            # Output to a file, not a pipe: a sandbox that leaves a daemon
            # behind must not block us reading its output.
            if ! timeout -k 2 20 "${LAUNCH[@]}" "${PREFIX[@]}" true \
                    </dev/null >"$WORK/check.$v" 2>&1; then
                variant_na[$v]="'${PREFIX[*]} true' as $BENCH_USER failed: $(tail -n 3 "$WORK/check.$v" | tr '\n' ' ')"
            fi
        fi
        if [[ -n ${variant_na[$v]:-} ]]; then log "variant $v: n/a: ${variant_na[$v]}"; fi
    done
}

# ---------------------------------------------------------------- sampling

# sandbox_procs JOBPID VARIANT: pids of the sandbox's own processes below
# JOBPID (not the client's), topmost first: childflow's (the engine is the
# topmost), pasta's (its binary may be passt.avx2), slirp4netns's.
sandbox_procs() {
    local pattern
    case "$2" in
        pasta) pattern='^(pasta|passt)' ;;
        slirp4netns) pattern='^slirp4netns$' ;;
        childflow|childflow-copy|childflow-plain) pattern='^childflow' ;;
        *) return 0 ;;
    esac
    local pid
    for pid in $(descendants "$1"); do
        [[ $(cat "/proc/$pid/comm" 2>/dev/null) =~ $pattern ]] && echo "$pid"
    done
    return 0
}

proc_uid() {  # proc_uid PID: the real uid a process runs as
    awk '/^Uid:/ { print $2 }' "/proc/$1/status" 2>/dev/null
}

# cpu_ns PID...: the CPU time (user + system) the processes have used, in ns,
# summed: each thread's sum_exec_runtime (/proc/PID/task/TID/schedstat, exact
# to the ns), else utime + stime from /proc/PID/stat (in clock ticks, 10 ms:
# too coarse for a slow run, but right on average).
cpu_ns() {
    local pid hz
    hz=$(getconf CLK_TCK)
    for pid; do
        if compgen -G "/proc/$pid/task/*/schedstat" >/dev/null; then
            cat "/proc/$pid"/task/*/schedstat 2>/dev/null | awk '{ t += $1 } END { printf "%d\n", t }'
        else
            sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk -v hz="$hz" '{ printf "%d\n", ($12 + $13) * 1e9 / hz }'
        fi
    done | awk '{ t += $1 } END { printf "%d\n", t }'
}

# wait_mark FD JOBPID DEADLINE: reads one line from the fifo open on FD into
# MARK; fails if the job ends first or SECONDS passes DEADLINE.
wait_mark() {
    MARK=""
    while ((SECONDS < $3)); do
        if read -r -t 1 MARK <&"$1"; then return 0; fi
        if ! kill -0 "$2" 2>/dev/null; then
            read -r -t 0.2 MARK <&"$1" && return 0
            return 1
        fi
    done
    return 1
}

# open_marks: fresh fifos MARK_FIFO and GO_FIFO for one sampled run, open
# read-write here on MARK_FD and GO_FD (so no open blocks on either side).
open_marks() {
    MARK_FIFO="$RUN/mark" GO_FIFO="$RUN/go"
    rm -f "$MARK_FIFO" "$GO_FIFO"
    mkfifo -m 600 "$MARK_FIFO" "$GO_FIFO"
    chown "$BENCH_USER:" "$MARK_FIFO" "$GO_FIFO"
    exec {MARK_FD}<>"$MARK_FIFO" {GO_FD}<>"$GO_FIFO"
}

close_marks() {
    exec {MARK_FD}>&- {GO_FD}>&-
}

# ---------------------------------------------------------------- workloads

client_cmd() {  # sets CLIENT to the command words of workload $1
    case "$1" in
        latency) CLIENT=(sockperf ping-pong --tcp -i "$SERVER4" -p "$SOCKPERF_PORT" -t "$duration") ;;
        connrate) CLIENT=(wrk -t1 -c20 -d"${duration}s" -H "Connection: close" "http://$SERVER4:$HTTP_PORT/") ;;
        dns) CLIENT=(sh "$BIN/dns-client.sh" "$WORK/queries.txt" "$duration") ;;
        *) CLIENT=() ;;
    esac
}

client_tool() {
    case "$1" in
        throughput*|capture) echo iperf3 ;; latency) echo sockperf ;; connrate) echo wrk ;;
        dns) echo dnsperf ;; startup|memory) echo python3 ;;
    esac
}

# The table rows a workload fills.
workload_rows() {
    case "$1" in
        throughput*) echo "$1 ${1/throughput/cpu}" ;;
        memory) echo "mem-1k mem-1k-hwm mem-10k mem-10k-hwm" ;;
        *) echo "$1" ;;
    esac
}

record() {  # record ROW VARIANT ROUND VALUE [REASON]
    printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$SAMPLES"
}

record_na() {  # record_na WORKLOAD VARIANT ROUND REASON: every row of the workload
    local row
    for row in $(workload_rows "$1"); do record "$row" "$2" "$3" n/a "$4"; done
    log "$1/$2 round $3: n/a ($4)"
}

stderr_tail() {  # the last lines of a run's stderr, on one line, without pasta's syslog noise
    # (An empty stderr is no error: grep's status 1 must not end the script
    # under `set -e -o pipefail`.)
    { grep -v -e '^Failed to send .* to syslog' -e '^No external routable interface for IPv6' "$1" 2>/dev/null || true; } |
        tail -n 3 | tr '\n' ' '
}

failed_run_reason() {  # failed_run_reason RAW STATUS LIMIT: why a run has no result, on one line
    local raw=$1 status=$2 limit=$3 reason err
    reason="$(cat "$raw.parse")"
    ((status == 124)) && reason="timed out after ${limit}s; $reason"
    ((status != 0 && status != 124)) && reason="exit status $status; $reason"
    err=$(stderr_tail "$raw.err")
    [[ -n $err ]] && reason="$reason; stderr: $err"
    echo "$reason"
}

# An iperf3 run between the marks of bench/marked.sh, the sandbox's CPU time
# read at each: rows WORKLOAD (Gbit/s) and its cpu row (CPU s per GB).
run_iperf() {  # run_iperf WORKLOAD VARIANT ROUND
    local w=$1 v=$2 r=$3 raw="$WORK/raw/$1.$2.$3" mtu="" rev=() status=0
    local cpu_row=${w/throughput/cpu}
    [[ $w == *-1500 ]] && mtu=1500
    [[ $w == throughput-rev* ]] && rev=(-R)
    variant_prefix "$v" "$mtu"
    launcher "$v"
    open_marks
    local limit=$((duration + 60)) deadline
    deadline=$((SECONDS + limit))
    timeout -k 5 "$limit" "${LAUNCH[@]}" "${PREFIX[@]}" sh "$BIN/marked.sh" "$MARK_FIFO" "$GO_FIFO" \
        iperf3 -c "$SERVER4" -p "$IPERF_PORT" -t "$duration" -J "${rev[@]}" \
        </dev/null >"$raw.out" 2>"$raw.err" {MARK_FD}>&- {GO_FD}>&- &
    local job=$!
    jobs_started+=("$job")
    local procs=() t0="" t1="" cpu_na=""
    if wait_mark "$MARK_FD" "$job" "$deadline" && [[ $MARK == start ]]; then
        mapfile -t procs < <(sandbox_procs "$job" "$v")
        t0=$(cpu_ns "${procs[@]}")
        if wait_mark "$MARK_FD" "$job" "$deadline" && [[ $MARK == done* ]]; then
            mapfile -t procs < <(sandbox_procs "$job" "$v")
            t1=$(cpu_ns "${procs[@]}")
        fi
    fi
    if [[ $v == native ]]; then
        cpu_na="no sandbox process to measure (native)"
    elif [[ -z $t1 ]]; then
        cpu_na="the run did not reach its marks"
    elif ((${#procs[@]} == 0)); then
        cpu_na="no $v process found below the run"
    elif [[ $(proc_uid "${procs[0]}") != "$BENCH_UID" ]]; then
        cpu_na="$v ran as uid $(proc_uid "${procs[0]}"), not $BENCH_USER"
    fi
    echo go >&"$GO_FD"
    wait "$job" || status=$?
    close_marks

    local values reason
    if values=$(python3 "$BENCH_DIR/results.py" parse iperf3 "$raw.out" 2>"$raw.parse") && ((status == 0)); then
        local gbps bytes
        read -r gbps bytes _ <<<"$values"
        record "$w" "$v" "$r" "$gbps"
        if [[ -n $cpu_na ]]; then
            record "$cpu_row" "$v" "$r" n/a "$cpu_na"
        else
            local cpu
            cpu=$(awk -v t="$((t1 - t0))" -v b="$bytes" 'BEGIN { printf "%.4g", (t / 1e9) / (b / 1e9) }')
            record "$cpu_row" "$v" "$r" "$cpu"
            cpu="$cpu CPU s/GB"
        fi
        log "$w/$v round $r: $(printf '%.4g' "$gbps") Gbit/s, ${cpu:-CPU n/a}"
    else
        reason=$(failed_run_reason "$raw" "$status" "$limit")
        record_na "$w" "$v" "$r" "$reason"
        restart_iperf3
    fi
    return 0
}

# The memory workload: bench/hold-conns.py in the sandbox opens CONNS[0]
# connections to http_server and holds them idle, then CONNS[1]; at each step
# the engine process's VmRSS and VmHWM are read once the server has them all.
run_memory() {  # run_memory VARIANT ROUND
    local v=$1 r=$2 raw="$WORK/raw/memory.$1.$2" status=0
    if [[ $v == native ]]; then
        record_na memory "$v" "$r" "no sandbox process to measure (native)"
        return 0
    fi
    variant_prefix "$v"
    launcher "$v"
    open_marks
    local limit=180 deadline
    deadline=$((SECONDS + limit))
    timeout -k 5 "$limit" "${LAUNCH[@]}" "${PREFIX[@]}" python3 "$BIN/hold-conns.py" \
        "$SERVER4" "$HTTP_PORT" "$(IFS=,; echo "${CONNS[*]}")" "$MARK_FIFO" "$GO_FIFO" \
        </dev/null >"$raw.out" 2>"$raw.err" {MARK_FD}>&- {GO_FD}>&- &
    local job=$!
    jobs_started+=("$job")
    local n row reason="" established engine rss hwm
    for n in 1000 10000; do
        row="mem-$((n / 1000))k"
        if [[ " ${CONNS[*]} " != *" $n "* ]]; then
            record "$row" "$v" "$r" n/a "$NOFILE_NA"
            record "$row-hwm" "$v" "$r" n/a "$NOFILE_NA"
            continue
        fi
        if [[ -z $reason ]]; then
            if ! wait_mark "$MARK_FD" "$job" "$deadline"; then
                reason="the client did not report $n connections: $(stderr_tail "$raw.err")"
            elif [[ $MARK != "held $n" ]]; then
                reason="client: $MARK"
                engine=$(sandbox_procs "$job" "$v")
                engine=${engine%%$'\n'*}
                if [[ -n $engine ]]; then
                    reason="$reason; $v then had $(find "/proc/$engine/fd" -mindepth 1 2>/dev/null | wc -l) descriptors open, limit $(awk '/^Max open files/ { print $4 }' "/proc/$engine/limits")"
                fi
            else
                sleep 1  # let the handshakes' buffers go
                established=$(ip netns exec "$SRV_NS" ss -Htn state established "( sport = :$HTTP_PORT )" | wc -l)
                engine=$(sandbox_procs "$job" "$v")
                engine=${engine%%$'\n'*}  # the topmost
                if ((established < n)); then
                    reason="the server holds only $established of $n connections"
                elif [[ -z $engine ]]; then
                    reason="no $v process found below the run"
                elif [[ $(proc_uid "$engine") != "$BENCH_UID" ]]; then
                    reason="$v ran as uid $(proc_uid "$engine"), not $BENCH_USER"
                else
                    read -r rss hwm < <(awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 } END { print r + 0, h + 0 }' \
                        "/proc/$engine/status")
                fi
            fi
        fi
        if [[ -n $reason ]]; then
            record "$row" "$v" "$r" n/a "$reason"
            record "$row-hwm" "$v" "$r" n/a "$reason"
            log "memory/$v round $r, $n connections: n/a ($reason)"
        else
            record "$row" "$v" "$r" "$(awk -v k="$rss" 'BEGIN { printf "%.4g", k / 1024 }')"
            record "$row-hwm" "$v" "$r" "$(awk -v k="$hwm" 'BEGIN { printf "%.4g", k / 1024 }')"
            log "memory/$v round $r, $n connections: VmRSS $((rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB"
        fi
        echo go >&"$GO_FD"
    done
    # Past the measurement: give the sandbox 30 s to close 10,000
    # connections and exit (slirp4netns is slow at it), then stop it.
    for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$job" 2>/dev/null; then
        log "memory/$v round $r: still closing its connections after 30 s: stopped"
        kill_tree "$job"
    else
        wait "$job" || status=$?
        if ((status != 0)) && [[ -z $reason ]]; then
            log "memory/$v round $r: the client exited $status after the measurement: $(stderr_tail "$raw.err")"
        fi
    fi
    close_marks
    return 0
}

# The capture workload: a CAPTURE_MB download (iperf3 -R -n) without and with
# the sandbox's packet capture (childflow --capture, pasta --pcap) into a
# tmpfs; each sample is time with / time without. A download takes a fraction
# of a second, so each round takes CAPTURE_PAIRS such pairs, in alternating
# order.
run_capture() {  # run_capture VARIANT ROUND
    local v=$1 r=$2 raw="$WORK/raw/capture.$1.$2"
    case "$v" in
        native) record_na capture "$v" "$r" "no sandbox, no capture (native)"; return 0 ;;
        slirp4netns) record_na capture "$v" "$r" "slirp4netns has no packet capture"; return 0 ;;
    esac
    local pair mode status values reason="" limit=120 ratio ratios=() size
    declare -A secs=()
    for ((pair = 1; pair <= CAPTURE_PAIRS; pair++)); do
        local modes=(plain capture)
        (((r + pair) % 2 == 1)) && modes=(capture plain)
        for mode in "${modes[@]}"; do
            status=0
            if [[ $mode == plain ]]; then
                variant_prefix "$v"
                launcher "$v"
            else
                variant_prefix "$v" "" "$CAPDIR/capture.pcap"
                launcher "$v" --tmpfs "$CAPDIR" --size-of "$CAPDIR/capture.pcap" "$raw.size"
            fi
            timeout -k 5 "$limit" "${LAUNCH[@]}" "${PREFIX[@]}" \
                iperf3 -c "$SERVER4" -p "$IPERF_PORT" -R -n "${CAPTURE_MB}M" -J \
                </dev/null >"$raw.$mode.out" 2>"$raw.$mode.err" || status=$?
            if values=$(python3 "$BENCH_DIR/results.py" parse iperf3 "$raw.$mode.out" 2>"$raw.parse") &&
                    ((status == 0)); then
                secs[$mode]=$(awk '{ print $3 }' <<<"$values")
            else
                reason="$mode run: exit status $status; $(cat "$raw.parse"); $(stderr_tail "$raw.$mode.err")"
                restart_iperf3
                break 2
            fi
            if [[ $mode == capture ]]; then
                size=$(cat "$raw.size" 2>/dev/null || echo missing)
                if [[ ! $size =~ ^[0-9]+$ ]] || ((size < CAPTURE_MB * 1000000)); then
                    reason="the capture file holds $size bytes, less than the ${CAPTURE_MB} MB downloaded"
                    break 2
                fi
            fi
        done
        ratios+=("$(awk -v a="${secs[capture]}" -v b="${secs[plain]}" 'BEGIN { printf "%.4g", a / b }')")
        log "capture/$v round $r: ${secs[plain]} s without, ${secs[capture]} s with: ${ratios[-1]}x"
    done
    if [[ -n $reason ]]; then
        record_na capture "$v" "$r" "$reason"
        return 0
    fi
    for ratio in "${ratios[@]}"; do record capture "$v" "$r" "$ratio"; done
    return 0
}

run_one() {  # run_one WORKLOAD VARIANT ROUND
    local w=$1 v=$2 r=$3 raw="$WORK/raw/$1.$2.$3" status=0 reason
    if [[ -n ${variant_na[$v]:-} ]]; then record_na "$w" "$v" "$r" "${variant_na[$v]}"; return; fi
    if ! command -v "$(client_tool "$w")" >/dev/null; then
        record_na "$w" "$v" "$r" "$(client_tool "$w") is not installed"
        return
    fi
    case "$w" in
        throughput*) run_iperf "$w" "$v" "$r"; return ;;
        memory) run_memory "$v" "$r"; return ;;
        capture) run_capture "$v" "$r"; return ;;
    esac
    variant_prefix "$v"
    launcher "$v"
    client_cmd "$w"
    local limit=$((duration + 60))
    if [[ $w == startup ]]; then
        limit=$((startup_runs * 5 + 30))
        timeout -k 5 "$limit" "${LAUNCH[@]}" \
            python3 "$BIN/timeit.py" "$startup_runs" "${PREFIX[@]}" true \
            </dev/null >"$raw.out" 2>"$raw.err" || status=$?
    else
        timeout -k 5 "$limit" "${LAUNCH[@]}" "${PREFIX[@]}" "${CLIENT[@]}" \
            </dev/null >"$raw.out" 2>"$raw.err" || status=$?
    fi
    local values
    if values=$(python3 "$BENCH_DIR/results.py" parse "$w" "$raw.out" 2>"$raw.parse"); then
        if ((status != 0)); then
            reason="exit status $status: $(stderr_tail "$raw.err")"
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
        reason=$(failed_run_reason "$raw" "$status" "$limit")
        record "$w" "$v" "$r" n/a "$reason"
        log "$w/$v round $r: n/a ($reason)"
    fi
    return 0
}

results_unit() {
    case "$1" in
        latency) echo "µs p50" ;; connrate) echo req/s ;;
        dns) echo queries/s ;; startup) echo "ms (median of this round)" ;;
    esac
}

# ---------------------------------------------------------------- versions

pasta_version() {
    local v
    v=$(pasta --version 2>/dev/null | head -n 1 || true)
    # Debian 12's build says "pasta unknown version": its package says more.
    if [[ -z $v || $v == *unknown* ]]; then
        v="passt package $(dpkg-query -W -f='${Version}' passt 2>/dev/null || echo unknown)"
    fi
    echo "$v"
}

slirp_version() {
    slirp4netns --version 2>/dev/null |
        awk 'NR == 1 { v = $3 } /^libslirp:/ { l = $2 } END { printf "%s (libslirp %s)", v, l }'
}

# ---------------------------------------------------------------- main

commit=$(git -C "$REPO_DIR" rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git -C "$REPO_DIR" diff --quiet HEAD -- src 2>/dev/null; then commit="$commit+uncommitted-src"; fi
cf_version=$([[ -x $childflow ]] && "$childflow" --version 2>/dev/null | head -n 1 || echo "no binary")
pasta_v=$(command -v pasta >/dev/null && pasta_version || echo "not installed")
slirp_v=$(command -v slirp4netns >/dev/null && slirp_version || echo "not installed")

log "topology $HOST_NS <-> $SRV_NS, work dir $WORK"
topology_up
user_up
servers_up
check_variants

started=$SECONDS
for ((round = 1; round <= rounds; round++)); do
    for w in "${workloads[@]}"; do
        for v in "${variants[@]}"; do
            run_one "$w" "$v" "$round"
        done
    done
done
log "measured in $((SECONDS - started)) s"

report_args=(report "$SAMPLES"
    --meta "date=$(date -u +%Y-%m-%dT%H:%MZ)" --meta "commit=$commit"
    --meta "childflow=$cf_version" --meta "pasta=$pasta_v" --meta "slirp4netns=$slirp_v"
    --meta "user=$BENCH_USER" --meta "rounds=$rounds" --meta "duration_s=$duration"
    --meta "startup_runs=$startup_runs" --meta "kernel=$(uname -r)" --meta "cpus=$(nproc)")
[[ -n $out ]] && report_args+=(--out "$out")
echo
echo "childflow bench: $(date -u +%Y-%m-%d\ %H:%M\ UTC), commit $commit, $rounds round(s) of ${duration}s, start-up x$startup_runs per round, $(nproc) CPUs, kernel $(uname -r)"
echo "versions: $cf_version; pasta: $pasta_v; slirp4netns $slirp_v"
echo "sandboxes run as $BENCH_USER (uid $BENCH_UID), native as root; /dev/net/tun $(stat -c 0%a /dev/net/tun 2>/dev/null || echo missing)"
for note in "${setup_notes[@]}"; do echo "note: $note"; done
echo
python3 "$BENCH_DIR/results.py" "${report_args[@]}"
