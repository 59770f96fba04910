#!/bin/sh
# bench/slirp-run.sh [--mtu N] CMD... — run CMD behind slirp4netns, the way
# rootless container tools do, and exit with CMD's status.
#
# Theory of operation
#   1. `unshare --user --map-root-user --net` starts a shell in a new user and
#      network namespace; it says so through the fifo "inns", then blocks
#      opening the fifo "go" before it execs CMD.
#   2. slirp4netns attaches to that shell's pid, creates and configures tap0
#      (10.0.2.100/24, gateway 10.0.2.2, MTU 65520 or N, no access to the
#      host's loopback) and writes "1" to its ready fd. 65520 is what the
#      slirp4netns manual's example and its README's benchmark use (its own
#      default is 1500, at a fraction of the throughput); the bench's MTU
#      1500 rows pass --mtu 1500.
#   3. Once ready, we open "go" for writing, which releases the shell into CMD.
#   4. When CMD exits, slirp4netns is stopped (SIGTERM) and the temp dir removed.
#   Everything measured for start-up (bench/run.sh's startup workload) is the
#   wall time of this whole script, which is what a user of slirp4netns pays.
set -eu

mtu=65520
if [ "${1:-}" = --mtu ]; then
    mtu=$2
    shift 2
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/cfbench-slirp.XXXXXX")
slirp_pid=""
child=""
cleanup() {
    if [ -n "$child" ]; then kill "$child" 2>/dev/null || true; fi
    if [ -n "$slirp_pid" ]; then kill "$slirp_pid" 2>/dev/null || true; fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
mkfifo "$dir/inns" "$dir/go" "$dir/ready"

# The shell first reports (fifo "inns") that it runs inside the new
# namespaces: slirp4netns must not attach before unshare has switched, or it
# would put tap0 into our own namespace.
unshare --user --map-root-user --net sh -c '
    echo > "$1"; read _ < "$2"; shift 2; exec "$@"' sh "$dir/inns" "$dir/go" "$@" &
child=$!
if ! timeout 10 head -n1 "$dir/inns" >/dev/null; then
    echo "slirp-run: unshare did not start its namespaces" >&2
    exit 125
fi

# Opened read-write so the open does not block; slirp4netns writes "1" to it
# once tap0 is configured.
exec 4<>"$dir/ready"
slirp4netns --configure --mtu="$mtu" --disable-host-loopback \
    --ready-fd=4 "$child" tap0 >"$dir/slirp.log" 2>&1 &
slirp_pid=$!

ready=$(timeout 10 head -c1 <&4 || true)
if [ "$ready" != "1" ]; then
    echo "slirp-run: slirp4netns did not become ready:" >&2
    cat "$dir/slirp.log" >&2
    kill "$child" 2>/dev/null || true
    exit 125
fi
exec 4<&-
echo go > "$dir/go"

status=0
wait "$child" || status=$?
child=""
kill "$slirp_pid" 2>/dev/null || true
wait "$slirp_pid" 2>/dev/null || true
slirp_pid=""
exit "$status"
