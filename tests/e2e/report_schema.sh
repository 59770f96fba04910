#!/usr/bin/env bash
# The flow log of a real run validates against docs/flow-log-schema.md
# (tests/lab/flowlog_schema.py), and `--report` reads it, the fixture logs and
# the Rust tool's logs in all three formats with the expected content.
#
# The run: a DNS lookup of www.example.test, an HTTP GET by name, and a
# connect to a closed port by address (refused).
#
# A file with no event at all (empty, a binary, a text file; also on standard
# input) is not a report: one warning line, exit 1, nothing on stdout.
set -euo pipefail
SRC="${CHILDFLOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$SRC/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
SCHEMA="$SRC/tests/lab/flowlog_schema.py"
FIXTURES="$SRC/tests/fixtures/flowlogs"
# Flow logs written by the Rust childflow 0.8.1, kept in the fixtures
# (tests/fixtures/flowlogs/README.md says where they come from).
RUST_LOGS="$FIXTURES"

# --- the validator itself: it must reject what is wrong ----------------------
python3 "$SCHEMA" "$FIXTURES/childflow-mixed.jsonl" >/dev/null || fail "validator: the fixture log of ours"
ok "validator accepts the hand-written log of ours"
assert_exit 1 "validator rejects a cut last line" python3 "$SCHEMA" "$FIXTURES/childflow-truncated.jsonl"
assert_exit 1 "validator rejects unknown events and fields" python3 "$SCHEMA" "$FIXTURES/childflow-unknown.jsonl"
for f in domain-deny-origin http-origin; do
  assert_exit 1 "validator (own-log mode) rejects Rust $f: no beyond fields" python3 "$SCHEMA" "$RUST_LOGS/$f.jsonl"
  out=$(python3 "$SCHEMA" --foreign "$RUST_LOGS/$f.jsonl") || fail "validator --foreign on Rust $f"
  assert_contains "$out" "flowlog ok:" "validator --foreign accepts Rust $f"
done
lab_up
# Each mutation of the good fixture must fail at the named line with the message.
bad="$LAB_DIR/bad.jsonl"
reject() {  # SED-SCRIPT EXPECTED-MESSAGE
  sed "$1" "$FIXTURES/childflow-mixed.jsonl" >"$bad"
  local err
  err=$(python3 "$SCHEMA" "$bad" 2>&1) && fail "validator accepted: $1"
  assert_contains "$err" "$2" "validator rejects ($1)"
}
reject '7s/"close":"fin"/"close":"finished"/' "bad.jsonl:7: flow_end: close is 'finished'"
reject '1s/"qtype":"A"/"qtype":"A","extra":1/' "bad.jsonl:1: dns_query: unknown field(s) extra"
reject '3s/,"rcode":0//' "bad.jsonl:3: dns_answer: missing field 'rcode'"
reject '6s/"error":null/"error":"x"/' "bad.jsonl:6: connect_result: status 'ok' with error 'x'"
reject '5d' "bad.jsonl:5: connect_result: flow_id 1 was not opened"
reject '5s/"remote_port":80/"remote_port":81/' "bad.jsonl:5: connect_attempt: remote_addr is"
reject '2s/^/\n/' "bad.jsonl:2: blank line"
reject '1s/"schema_version":1/"schema_version":2/' "bad.jsonl:1: schema_version is 2"
reject '1s/"event":"dns_query"/"event":"dns_question"/' "bad.jsonl:1: unknown event 'dns_question'"
reject '11s/"flow_id":3,//' "bad.jsonl:11: policy_violation: tcp denial without flow_id"
reject '11s/"control":"--deny-cidr"/"control":"--offline"/' "bad.jsonl:11: policy_violation: control"
reject '21s/"flow_id":5/"flow_id":1/' "bad.jsonl:21: flow_end: flow_id 1 went to"
reject '8s/"via_proxy":false/"via_proxy":true/' "bad.jsonl:9: connect_result: flow_id 2: via_proxy is false"
reject '4s/"bytes":78/"bytes":"78"/' "bad.jsonl:4: dns_answer: bytes is \"78\", must be integer"

# --- a real run ----------------------------------------------------------------
lab_tun_open
log="$LAB_DIR/flow.jsonl"
set +e
lab_root "$CHILDFLOW" --flow-log "$log" -- sh -c \
  'getent hosts www.example.test; curl -s --max-time 5 http://www.example.test/ >/dev/null; curl -s --max-time 5 http://203.0.113.10:81/' \
  >"$LAB_DIR/run.out" 2>"$LAB_DIR/run.err"
rc=$?
set -e
# The last command is the refused curl: exit 7.
[ "$rc" = 7 ] || { cat "$LAB_DIR/run.err" >&2; fail "run exit status $rc, expected 7 (curl: refused)"; }
ok "the run ended with the refused curl's exit status 7"
out=$(python3 "$SCHEMA" --min-events 5 "$log") || { cat "$log" >&2; fail "the run's flow log does not validate"; }
assert_contains "$out" "flowlog ok:" "the run's flow log validates against the schema"

flow=$(cat "$log")
assert_contains "$flow" '"event":"dns_query"' "flow log has a dns_query"
assert_contains "$flow" '"qname":"www.example.test"' "flow log names www.example.test"
assert_contains "$flow" '"remote_addr":"203.0.113.10:81"' "flow log has the connect to :81"
assert_contains "$flow" '"error":"connection refused"' "flow log has the refused connect"

# --- --report on that log --------------------------------------------------------
text=$(lab_root "$CHILDFLOW" --report "$log") || fail "--report text"
assert_contains "$text" "childflow report: $log" "text report names the log"
assert_contains "$text" "www.example.test" "text report: the DNS name"
assert_contains "$text" "203.0.113.10:81: connection refused" "text report: the refused connect"
# curl may take the IPv6 or the IPv4 address of www.
grep -Eq 'www\.example\.test -> (203\.0\.113\.10|\[2001:db8:2::10\]):80$' <<<"$text" \
  || fail "text report: DNS name -> target (www.example.test -> www:80) missing: $text"
ok "text report: DNS name -> target"
assert_contains "$text" "0 malformed lines" "text report: no malformed lines"

md=$(lab_root "$CHILDFLOW" --report "$log" --report-format markdown) || fail "--report markdown"
assert_eq "## Highlights" "$(printf '%s\n' "$md" | head -1)" "markdown starts with ## Highlights"
assert_contains "$md" '`www.example.test`' "markdown report: the DNS name"
assert_contains "$md" '| `203.0.113.10:81` | `connection refused` |' "markdown report: the refused connect"

lab_root "$CHILDFLOW" --report "$log" --report-format json >"$LAB_DIR/report.json" || fail "--report json"
python3 - "$LAB_DIR/report.json" <<'EOF' || fail "json report content"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["lines"]["malformed"] == 0, j["lines"]
assert j["event_counts"].get("dns_query", 0) >= 1, j["event_counts"]
names = [r["name"] for r in j["dns"]["top_names"]["top"]]
assert "www.example.test" in names, names
errs = [(r["target"], r["error"]) for r in j["connect_errors"]["top"]]
assert ("203.0.113.10:81", "connection refused") in errs, errs
corr = [(r["name"], r["target"]) for r in j["dns_correlation"]["top"]]
assert {("www.example.test", "203.0.113.10:80"), ("www.example.test", "[2001:db8:2::10]:80")} & set(corr), corr
assert j["connects"]["ok"] >= 1 and j["connects"]["error"] >= 1, j["connects"]
print("json report ok")
EOF
ok "json report: DNS name, refused connect, correlation"

# A log cut mid-line (the run's log without its last 10 bytes).
head -c -10 "$log" >"$LAB_DIR/cut.jsonl"
out=$(lab_root "$CHILDFLOW" --report "$LAB_DIR/cut.jsonl" --report-format json) || fail "--report on a cut log"
assert_contains "$out" '"malformed": 1' "a cut log reports one malformed line"

# --- --report on the fixtures and the Rust logs, all formats -----------------------
for fmt in text markdown json; do
  out=$("$CHILDFLOW" --report "$RUST_LOGS/domain-deny-origin.jsonl" --report-format "$fmt") \
    || fail "--report $fmt on the Rust domain-deny log"
  assert_contains "$out" "deny_domain" "$fmt report of Rust domain-deny: deny_domain"
  assert_contains "$out" "demo.invalid" "$fmt report of Rust domain-deny: demo.invalid"
  assert_contains "$out" "origin-http.demo.invalid" "$fmt report of Rust domain-deny: the name"
  out=$("$CHILDFLOW" --report "$RUST_LOGS/http-origin.jsonl" --report-format "$fmt") \
    || fail "--report $fmt on the Rust http-origin log"
  assert_contains "$out" "icmpv6" "$fmt report of Rust http-origin: icmpv6"
  assert_contains "$out" "10.243.0.10:8080" "$fmt report of Rust http-origin: the target"
  assert_contains "$out" "default_deny" "$fmt report of Rust http-origin: default_deny"
  out=$("$CHILDFLOW" --report "$FIXTURES/childflow-unknown.jsonl" --report-format "$fmt") \
    || fail "--report $fmt on unknown events/fields"
  assert_contains "$out" "tls_client_hello" "$fmt report lists the unknown event"
done

# --- errors --------------------------------------------------------------------------
set +e
err=$("$CHILDFLOW" --report "$LAB_DIR/nonexistent.jsonl" 2>&1)
rc=$?
set -e
assert_eq 2 "$rc" "--report on a missing file exits 2"
assert_contains "$err" "childflow: error:" "--report on a missing file says childflow: error"

# --- not a flow log: one warning line, exit 1, nothing on stdout --------------------
# An empty file, a binary (/bin/true), a text file; and the same through `-`.
: >"$LAB_DIR/empty.jsonl"
cp /bin/true "$LAB_DIR/true.bin"
printf 'Meeting notes\n\n- ask about the proxy\n{"not": "an event"}\n' >"$LAB_DIR/notes.txt"
# not_a_log DESC SHOWN-AS DETAIL ARGS... : `childflow --report ARGS...` (standard
# input as redirected) exits 1 with the one warning line naming SHOWN-AS.
not_a_log() {
  local desc=$1 shown=$2 detail=$3 rc
  shift 3
  set +e
  "$CHILDFLOW" --report "$@" >"$LAB_DIR/na.out" 2>"$LAB_DIR/na.err"
  rc=$?
  set -e
  assert_eq 1 "$rc" "--report on $desc exits 1"
  [[ ! -s $LAB_DIR/na.out ]] || fail "--report on $desc printed on stdout: $(head -c 300 "$LAB_DIR/na.out")"
  ok "--report on $desc prints nothing on stdout"
  assert_eq 1 "$(wc -l <"$LAB_DIR/na.err")" "--report on $desc: one line on stderr"
  assert_eq "childflow: warning: report: $shown has no flow-log events ($detail): is it a flow log?" \
    "$(cat "$LAB_DIR/na.err")" "--report on $desc: the warning"
}
true_lines=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); print(d.count(b"\n") + (0 if d.endswith(b"\n") else 1))' "$LAB_DIR/true.bin")
not_a_log "an empty file" "$LAB_DIR/empty.jsonl" "it is empty" "$LAB_DIR/empty.jsonl"
not_a_log "a binary" "$LAB_DIR/true.bin" "$true_lines lines read, none an event" "$LAB_DIR/true.bin"
not_a_log "a text file" "$LAB_DIR/notes.txt" "4 lines read, none an event" "$LAB_DIR/notes.txt"
not_a_log "a text file, as json" "$LAB_DIR/notes.txt" "4 lines read, none an event" "$LAB_DIR/notes.txt" --report-format json
not_a_log "a text file, as html" "$LAB_DIR/notes.txt" "4 lines read, none an event" "$LAB_DIR/notes.txt" --report-format html
not_a_log "an empty standard input" "standard input" "it is empty" - </dev/null
not_a_log "a binary on standard input" "standard input" "$true_lines lines read, none an event" - <"$LAB_DIR/true.bin"
# One event among garbage is a log: a report, exit 0, the garbage counted.
{ cat "$LAB_DIR/notes.txt"; head -1 "$FIXTURES/childflow-mixed.jsonl"; } >"$LAB_DIR/one.jsonl"
out=$("$CHILDFLOW" --report "$LAB_DIR/one.jsonl" 2>"$LAB_DIR/one.err") || fail "--report on a log with one event among garbage"
assert_contains "$out" "(1 events, 3 malformed lines skipped)" "one event among garbage: a report with the malformed lines counted"
[[ ! -s $LAB_DIR/one.err ]] || fail "one event among garbage: stderr: $(cat "$LAB_DIR/one.err")"
