#!/usr/bin/env bash
# Demo of the main job: a command tree in the sandbox against local servers.
#
# Builds the test lab (private network namespaces with servers at
# documentation addresses, see docs/lab.md), then runs a small command tree
# through childflow with a policy, a flow log and the summary. Nothing leaves
# the machine; the lab is removed at exit.
set -euo pipefail
CHILDFLOW=${1:-build/release/childflow}
CHILDFLOW=$(realpath "$CHILDFLOW")
cd "$(dirname "$0")/.."
export CHILDFLOW_SOURCE_DIR=$PWD
source tests/lab/lab.sh
lab_up

flow_log="$LAB_DIR/demo-flow.jsonl"
echo
echo "== childflow --summary --deny-domain blocked.example.test --deny-cidr 203.0.113.20/32 -- sh -c '...'"
echo
set +e
lab_root "$CHILDFLOW" --summary --flow-log "$flow_log" \
  --deny-domain blocked.example.test --deny-cidr 203.0.113.20/32 -- sh -c '
    echo "# curl http://www.example.test/ (allowed)"
    curl -sS -m 5 http://www.example.test/
    echo "# curl -6 http://www.example.test/bytes/1000000 (allowed, IPv6)"
    curl -sS -6 -m 5 -o /dev/null -w "%{http_code} %{size_download} bytes\n" http://www.example.test/bytes/1000000
    echo "# curl http://blocked.example.test/ (denied by name: empty DNS answer)"
    curl -sS -m 5 http://blocked.example.test/
    echo "# curl http://203.0.113.20:7/ (denied by --deny-cidr: reset)"
    curl -sS -m 5 http://203.0.113.20:7/
    echo "# ping -c 1 the gateway"
    ping -c 1 -W 2 "$(ip -4 route show default | cut -d" " -f3)" | head -2
    exit 0'
rc=$?
set -e
echo
echo "== childflow exited $rc; the flow log has $(wc -l <"$flow_log") events; --report:"
"$CHILDFLOW" --report "$flow_log" | head -40
