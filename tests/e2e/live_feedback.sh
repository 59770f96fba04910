#!/usr/bin/env bash
# Live feedback on stderr (docs/cli.md), as root and as the lab user:
#   -v    one line per denial (rule and name) and per connect error, as they
#         happen, none for allowed flows;
#   -vv   also every flow (start and end);
#   -q    nothing but errors: no line at exit about denials;
#   default: no live line, but one line at exit when something was denied;
#   CHILDFLOW_DEBUG=1: also DNS queries and answers;
#   colour only on a terminal (here stderr is a file: no escape codes), and
#   never with NO_COLOR.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# One allowed fetch by name, one denied by a domain rule, one refused port.
# (Blocking stderr: see the -v case with a stalled reader below.)
# curl -s: the tree's own stderr stays empty, so what is seen is childflow's.
# The denied name costs two denials: curl asks for A and AAAA.
TREE="curl -s -o /dev/null http://www.example.test/index.html; curl -s -o /dev/null http://denied.example.test/ ; curl -s -o /dev/null http://$LAB_WWW4:81/ ; true"
for who in "${ENGINE_WHO[@]}"; do
  err=$(cf "$who" -v --deny-domain denied.example.test -- sh -c "$TREE" 2>&1 >/dev/null)
  check_match "$err" 'childflow: denied dns denied\.example\.test: deny_domain denied\.example\.test' \
    "$who -v: the denied name, with its rule"
  check_match "$err" "childflow: connect failed: tcp $LAB_WWW4:81 \\(www\\.example\\.test\\): connection refused" \
    "$who -v: the refused connect"
  check_not_contains "$err" "childflow: flow " "$who -v: no line for allowed flows"
  check_not_contains "$err" $'\e[' "$who -v: no colour when stderr is not a terminal"
  check_not_contains "$err" "denied by policy (use -v" "$who -v: no notice at exit (the lines said it)"

  err=$(cf "$who" -vv --deny-domain denied.example.test -- sh -c "$TREE" 2>&1 >/dev/null)
  check_match "$err" "childflow: flow tcp $LAB_WWW4:80 \\(www\\.example\\.test\\) started" "$who -vv: a flow's start, with its name"
  check_match "$err" "childflow: flow tcp $LAB_WWW4:80 ended \\((fin|rst)\\): [0-9]+ B sent, [0-9]+ B received" "$who -vv: a flow's end"
  check_match "$err" 'childflow: denied dns denied\.example\.test' "$who -vv: denials too"

  err=$(cf "$who" --deny-domain denied.example.test -- sh -c "$TREE" 2>&1 >/dev/null)
  check_eq "childflow: policy denied 2 DNS lookups (use -v or --summary to see which)" "$err" \
    "$who default: exactly one line at exit"
  err=$(cf "$who" -q --deny-domain denied.example.test -- sh -c "$TREE" 2>&1 >/dev/null)
  check_eq "" "$err" "$who -q: nothing"
  err=$(cf "$who" -- sh -c "curl -s -o /dev/null http://www.example.test/index.html" 2>&1 >/dev/null)
  check_eq "" "$err" "$who default, nothing denied: nothing"

  err=$(as "$who" env CHILDFLOW_DEBUG=1 timeout 60 "$CHILDFLOW" -- sh -c "curl -s -o /dev/null http://www.example.test/index.html" 2>&1 >/dev/null)
  check_match "$err" 'childflow: debug: dns query www\.example\.test A' "$who CHILDFLOW_DEBUG=1: DNS queries"
  check_match "$err" "childflow: debug: dns answer www\\.example\\.test A: $LAB_WWW4" "$who CHILDFLOW_DEBUG=1: DNS answers"
  check_match "$err" "childflow: flow tcp $LAB_WWW4:80" "$who CHILDFLOW_DEBUG=1: and the flows"

  # A terminal gets colour unless NO_COLOR is set (script(1) gives a pty).
  out=$(as "$who" script -qec "$CHILDFLOW -v --deny-domain denied.example.test -- sh -c 'curl -s http://denied.example.test/ >/dev/null; true'" /dev/null 2>&1)
  check_contains "$out" $'\e[31mchildflow: denied dns' "$who -v on a terminal: the denial in red"
  out=$(as "$who" env NO_COLOR=1 script -qec "$CHILDFLOW -v --deny-domain denied.example.test -- sh -c 'curl -s http://denied.example.test/ >/dev/null; true'" /dev/null 2>&1)
  check_contains "$out" "childflow: denied dns" "$who NO_COLOR: the line"
  check_not_contains "$out" $'\e[31m' "$who NO_COLOR: without colour"
done

# A reader that does not read (a pager, Ctrl-S) never stalls the tree: 8000
# refused connects under -v while stderr's reader sleeps finish long before it
# wakes, and the lines that did not fit are counted at exit. The bounds scale
# with the same loop run natively first, so a busy machine does not fail it:
# the tree must take at most twice the native time plus 10 s, and the reader
# sleeps three times the native time plus 20 s.
LOOP='s=${EPOCHREALTIME/./}; for i in $(seq 8000); do (exec 3<>/dev/tcp/'"$LAB_WWW4"'/81) 2>/dev/null; done; e=${EPOCHREALTIME/./}; echo "tree took $(((e - s) / 1000000)) s"'
native=$(lab_root bash -c "$LOOP" | sed -n 's/^tree took \([0-9]*\) s$/\1/p')
nap=$((3 * ${native:-10} + 20))
out=$(CF_TIMEOUT=$((3 * ${native:-10} + 60)) cf root -v -- bash -c "$LOOP" \
  2> >(sleep "$nap"; cat >"$LAB_DIR/stalled.err")) || true
took=$(sed -n 's/^tree took \([0-9]*\) s$/\1/p' <<<"$out")
check_le "${took:-999}" "$((2 * ${native:-10} + 10))" "a stalled stderr reader does not stall the tree (s; natively ${native} s, reader asleep ${nap} s)"
sleep $((nap > took ? nap - took + 2 : 2))
check_match "$(cat "$LAB_DIR/stalled.err")" 'childflow: [0-9]+ live lines dropped: stderr did not keep up' \
  "the lines stderr did not take are counted at exit"

# -q with -v is a contradiction (exit 2).
rc=0; out=$("$CHILDFLOW" -q -v -- true 2>&1) || rc=$?
check_eq 2 "$rc" "-q -v: exit 2"
check_contains "$out" "contradict" "-q -v: says why"
engine_finish
