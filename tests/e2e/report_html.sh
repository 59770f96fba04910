#!/usr/bin/env bash
# `--report-format html` (docs/report.md, "HTML") renders in a real browser:
# headless Chromium from Debian, driven over the DevTools protocol by
# tests/lab/browser_check.py, in a network namespace of its own (it can reach
# no address at all).
#
# - The checker itself: a page with an external image and a failing script
#   must show a request and errors, or the clean results below prove nothing.
# - The flow log of a real run in the lab (an allowed HTTP GET by name, a TCP
#   connect denied by --deny-cidr, a query denied by --deny-domain, a refused
#   connect, a ping): the page loads with no console error and asks for
#   nothing but itself; it has the headings, one timeline row (with its bar)
#   per flow or denied query of the log, the denied ones marked DENIED in
#   another colour, the denial rows with reason, rule and remote, the top
#   names and destinations.
# - The Rust childflow's logs (tests/fixtures/flowlogs: no flow_id, no
#   flow_start, keys in alphabetical order): the same checks.
# - The HTML has no URL in it and nothing that loads one (src=, href=, url(),
#   @import, <script>, <link>).
set -euo pipefail
SRC="${CHILDFLOW_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
source "$SRC/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
CHECK="$SRC/tests/lab/browser_check.py"
FIXTURES="$SRC/tests/fixtures/flowlogs"
command -v "${CHROMIUM:-chromium}" >/dev/null ||
  fail "chromium is not installed (scripts/install-deps.sh lab installs it)"

lab_up

# browser FILE.html OUT.json : the browser's view of FILE, bounded in time.
browser() {
  timeout 90 python3 "$CHECK" --timeout 60 --dom "$2.dom.html" "$1" >"$2" 2>"$2.err" ||
    fail "browser_check on $1: $(cat "$2.err")"
}

# --- the checker sees what is wrong ---------------------------------------------
cat >"$LAB_DIR/bad.html" <<'EOF'
<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head>
<body><h1>bad</h1><img src="http://203.0.113.99/x.png" alt=""><script>no_such_function();</script></body></html>
EOF
browser "$LAB_DIR/bad.html" "$LAB_DIR/bad.json"
python3 - "$LAB_DIR/bad.json" <<'EOF' || fail "browser_check missed the bad page's request or error"
import json, sys
j = json.load(open(sys.argv[1]))
assert "http://203.0.113.99/x.png" in j["requests"], j["requests"]
assert any("no_such_function" in e for e in j["errors"]), j["errors"]
assert j["dom"]["headings"] == ["bad"], j["dom"]
EOF
ok "browser_check reports a page's request and its uncaught error"

# check_page HTML JSON LOG DESC : the page of LOG, as the browser saw it.
check_page() {
  local html=$1 json=$2 log=$3 desc=$4
  # Nothing in the file can load anything.
  if grep -Eqi 'https?://|src=|href=|url\(|@import|<script|<link' "$html"; then
    fail "$desc: the HTML refers to something to load: $(grep -Eoi '.{0,40}(https?://|src=|href=|url\(|@import|<script|<link).{0,40}' "$html" | head -3)"
  fi
  ok "$desc: the HTML has no URL, src, href, url(), @import, script or link"
  python3 - "$json" "$log" "$desc" <<'EOF' || fail "$desc: the rendered page is not as expected"
import json, sys
j = json.load(open(sys.argv[1]))
desc = sys.argv[3]
d, t = j["dom"], j["dom"]["timeline"]

# What the log says: one timeline row per flow (by flow_id; the Rust tool's
# logs have none: a connect_attempt, or a denial that no connect_attempt
# precedes) and per denied DNS query.
events = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
ids = {e["flow_id"] for e in events if "flow_id" in e}
dns_denials = [e for e in events if e["event"] == "policy_violation" and e.get("protocol") == "dns"]
if ids:
    flows = len(ids)
    denied_flows = len({e["flow_id"] for e in events if e["event"] == "policy_violation" and "flow_id" in e})
else:
    attempts = sum(e["event"] == "connect_attempt" for e in events)
    own = [e for e in events if e["event"] == "policy_violation" and e.get("protocol") not in ("dns", "tcp")]
    tcp = [e for e in events if e["event"] == "policy_violation" and e.get("protocol") == "tcp"]
    flows, denied_flows = attempts + len(own), len(own) + len(tcp)
rows = flows + len(dns_denials)
denied = denied_flows + len(dns_denials)

def check(cond, what):
    if not cond:
        print(f"FAIL: {desc}: {what}", file=sys.stderr)
        sys.exit(1)
    print(f"ok - {desc}: {what}")

check(j["errors"] == [], f"no console error or exception (saw {j['errors']})")
check(j["requests"] == [j["url"]], f"the page asked for nothing but itself (saw {j['requests']})")
check(d["title"].startswith("childflow report: "), f"title {d['title']!r}")
for h in ("childflow report", "Highlights", "Timeline", "Denials", "Top destinations and names",
          "Top destinations", "Top DNS names", "Counts", "Protocols", "Connect errors",
          "Runtime failures"):
    check(h in d["headings"], f"heading {h!r}")
check(d["scripts"] == 0, "no script element")
check(t["rows"] == rows and rows > 0, f"timeline: one row per flow or denied query ({t['rows']} rows, the log has {rows})")
check(t["bars"] == rows, f"timeline: every row has its bar ({t['bars']})")
check(all(w >= 2 for w in t["bar_widths_px"]), f"timeline: every bar is visible ({t['bar_widths_px']})")
check(t["kinds"].count("dns") == len(dns_denials), f"timeline: {len(dns_denials)} denied queries")
denied_rows = [i for i, c in enumerate(t["classes"]) if "denied" in c.split()]
check(len(denied_rows) == denied and denied > 0, f"timeline: {denied} rows denied")
check(all("DENIED" in t["texts"][i] for i in denied_rows), "timeline: every denied row says DENIED")
others = [i for i in range(t["rows"]) if i not in denied_rows]
check(all(t["colours"][i] not in {t["colours"][k] for k in others} for i in denied_rows),
      f"timeline: denied bars have a colour of their own ({t['colours']})")
check(len(d["denials"]) >= 1, f"denials table: {d['denials']}")
for e in events:
    if e["event"] == "policy_violation":
        rule = e.get("matched_domain") or e.get("matched_cidr") or ""
        check(any(e["reason_code"] in r and e["remote"] in r and rule in r for r in d["denials"]),
              f"denials table: {e['reason_code']} {rule} {e['remote']}")
names = {e["qname"] for e in events if e["event"] == "dns_query"}
check(all(any(n in r for r in d["top_names"]) for n in names), f"top names: {sorted(names)}")
targets = {e["remote_addr"] for e in events if e["event"] in ("connect_attempt", "flow_start")}
check(all(any(x in r for r in d["top_destinations"]) for x in targets), f"top destinations: {sorted(targets)}")
n_events = len(events)
check(f"{n_events} events in {n_events} lines" in d["text"], "the counts: events and lines")
EOF
}

# --- a real run in the lab ----------------------------------------------------------
lab_tun_open
log="$LAB_DIR/flow.jsonl"
set +e
lab_root timeout 120 "$CHILDFLOW" --flow-log "$log" --deny-cidr 203.0.113.20/32 \
  --deny-domain blocked.example.test -- sh -c '
    curl -s --max-time 5 -o /dev/null http://www.example.test/; echo "get=$?"
    curl -s --max-time 5 -o /dev/null http://203.0.113.20:7/; echo "denied=$?"
    getent hosts x.blocked.example.test; echo "getent=$?"
    curl -s --max-time 5 -o /dev/null http://203.0.113.10:81/; echo "refused=$?"
    ping -c1 -W2 203.0.113.10 >/dev/null; echo "ping=$?"' \
  >"$LAB_DIR/run.out" 2>"$LAB_DIR/run.err"
rc=$?
set -e
[[ $rc == 0 ]] || fail "the run exited $rc: $(cat "$LAB_DIR/run.err")"
out=$(cat "$LAB_DIR/run.out")
assert_contains "$out" "get=0" "the run: GET by name succeeded"
assert_contains "$out" "denied=7" "the run: the connect to the denied CIDR was refused"
assert_contains "$out" "getent=2" "the run: the denied name did not resolve"
assert_contains "$out" "refused=7" "the run: the connect to a closed port was refused"
assert_contains "$out" "ping=0" "the run: ping answered"
python3 "$SRC/tests/lab/flowlog_schema.py" "$log" >/dev/null || fail "the run's flow log does not validate"

"$CHILDFLOW" --report "$log" --report-format html >"$LAB_DIR/run.html" 2>"$LAB_DIR/report.err" ||
  fail "--report-format html on the run's log: $(cat "$LAB_DIR/report.err")"
[[ ! -s $LAB_DIR/report.err ]] || fail "--report-format html wrote on stderr: $(cat "$LAB_DIR/report.err")"
browser "$LAB_DIR/run.html" "$LAB_DIR/run.json"
check_page "$LAB_DIR/run.html" "$LAB_DIR/run.json" "$log" "the run's log"
# The run's own values are on the page.
page=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["dom"]["text"])' "$LAB_DIR/run.json")
assert_contains "$page" "deny_cidr" "the page names deny_cidr"
assert_contains "$page" "203.0.113.20/32" "the page names the matched CIDR"
assert_contains "$page" "blocked.example.test" "the page names the matched domain"
assert_contains "$page" "connection refused" "the page shows the refused connect"
assert_contains "$page" "www.example.test" "the page shows the name"

# --- the Rust childflow's logs -------------------------------------------------------
for f in http-origin domain-deny-origin; do
  "$CHILDFLOW" --report "$FIXTURES/$f.jsonl" --report-format html >"$LAB_DIR/$f.html" ||
    fail "--report-format html on the Rust $f log"
  browser "$LAB_DIR/$f.html" "$LAB_DIR/$f.json"
  check_page "$LAB_DIR/$f.html" "$LAB_DIR/$f.json" "$FIXTURES/$f.jsonl" "Rust log $f"
done
