#!/bin/sh
# bench/marked.sh MARK GO CMD... — run CMD between two marks, for the harness
# to measure the sandbox around it.
#
# bench/run.sh wraps an iperf3 client in this script inside the sandbox, so it
# can read the sandbox's CPU time (/proc/PID/stat) right before and right after
# the transfer, and not count the sandbox's start-up and tear-down:
#   1. writes "start" to the fifo MARK (the harness samples, then lets it run);
#   2. runs CMD (its output goes where ours goes);
#   3. writes "done STATUS" to MARK (the harness samples again);
#   4. waits for one line on the fifo GO, then exits with CMD's status. Until
#      then the sandbox is still up, so the second sample sees all of it.
# The harness opens both fifos read-write, so neither open blocks here.
set -u
mark=$1
go=$2
shift 2
echo start >"$mark"
status=0
"$@" || status=$?
echo "done $status" >"$mark"
read -r _ <"$go" || true
exit "$status"
