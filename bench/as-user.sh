#!/bin/sh
# bench/as-user.sh [OPTIONS] USER HOME CMD... — run CMD as USER, the way a user
# runs a sandbox, from inside `ip netns exec` (so as root, in the bench host
# network namespace and in a mount namespace of this command's own).
#
# bench/run.sh runs every sandbox (pasta, slirp4netns, childflow) through this
# script; the native variant runs as root without it.
#
#   --tun NODE         bind-mount NODE (a 0666 tun device node the harness made)
#                      over /dev/net/tun first: only for machines whose own
#                      /dev/net/tun is not 0666 (the harness says so). The
#                      mount lives in this command's mount namespace only;
#                      the machine's node is never changed.
#   --tmpfs DIR        mount a tmpfs on DIR, owned by USER, for this command
#                      only (the capture workload writes its file there); it
#                      vanishes with the command, file and all.
#   --size-of FILE OUT after CMD, write FILE's size in bytes to OUT ("missing"
#                      if there is none) and delete FILE.
#
# CMD runs with the working directory HOME (created by the harness, owned by
# USER), HOME=HOME, USER/LOGNAME set, PATH and LANG of the caller, and its
# soft limit on open files raised to the hard one (runuser's pam_limits
# starts the user at the machine's default, 1024 here: too few for the memory
# workload's 10,000 connections; a user would raise it the same way, and
# pasta and childflow raise their own anyway). Exits with CMD's status.
set -eu

tun=""
tmpfs=""
size_of=""
size_out=""
while :; do
    case "$1" in
        --tun) tun=$2; shift 2 ;;
        --tmpfs) tmpfs=$2; shift 2 ;;
        --size-of) size_of=$2; size_out=$3; shift 3 ;;
        *) break ;;
    esac
done
user=$1
home=$2
shift 2

if [ -n "$tun" ]; then mount --bind "$tun" /dev/net/tun; fi
if [ -n "$tmpfs" ]; then
    mount -t tmpfs -o "size=2g,mode=0700,uid=$(id -u "$user"),gid=$(id -g "$user")" \
        cfbench-tmpfs "$tmpfs"
fi

cd "$home"
status=0
# shellcheck disable=SC2016 # expanded by the inner shell
runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
    PATH="$PATH" LANG="${LANG:-C.UTF-8}" \
    sh -c 'ulimit -Sn "$(ulimit -Hn)" && exec "$@"' as-user "$@" || status=$?

if [ -n "$size_of" ]; then
    if [ -e "$size_of" ]; then stat -c %s "$size_of" >"$size_out"; else echo missing >"$size_out"; fi
    rm -f "$size_of"
fi
exit "$status"
