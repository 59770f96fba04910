#!/usr/bin/env bash
# `--doctor --doctor-format json` parses and matches docs/doctor-schema.md
# exactly: the top-level fields, the fields of every check, and, per backend,
# the keys and the section (capabilities / preflight) of every check, as the
# document's key tables list them. Run as root and as LAB_USER, for both
# backends, with wire-egress capture (which adds packet_socket) and, for
# rootful, with --iface (which adds iface).
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/lab/lab.sh"
: "${CHILDFLOW:?set CHILDFLOW to the childflow binary}"
SCHEMA=$CHILDFLOW_SOURCE_DIR/docs/doctor-schema.md
lab_up
lab_tun_open
lab_defer lab_tun_restore

# check_json RUNNER BACKEND WIRE ARGS... : runs the doctor, validates the JSON.
check_json() {
  local runner=$1 backend=$2 wire=$3 out rc uid
  shift 3
  set +e
  out=$($runner "$CHILDFLOW" --doctor --doctor-format json "$@")
  rc=$?
  set -e
  uid=$($runner id -u)
  local verdict
  verdict=$(python3 - "$SCHEMA" "$backend" "$wire" "$rc" "$uid" "$out" <<'PY'
import json, re, sys
schema, backend, wire, rc, uid, text = sys.argv[1:]
rc, uid, extra = int(rc), int(uid), wire
wire = extra == "wire"
# The documented keys: rows "| `key` | section | backend | can be fatal | ...".
documented = {}
for line in open(schema):
    m = re.match(r"\|\s*`([a-z0-9_]+)`\s*\|\s*(capabilities|preflight)\s*\|\s*(rootless-internal|rootful)\s*\|", line)
    if m:
        documented.setdefault(m.group(3), {})[m.group(1)] = m.group(2)
assert documented.get(backend), f"no documented keys for {backend}"
expected = dict(documented[backend])
if backend == "rootless-internal" and not wire:
    expected.pop("packet_socket")   # only with --capture-point wire-egress
if backend == "rootful" and extra != "iface":
    expected.pop("iface")           # only with --iface
d = json.loads(text)
assert isinstance(d, dict), "not an object"
assert set(d) == {"backend", "uid", "euid", "status", "capabilities", "preflight"}, sorted(d)
assert d["backend"] == backend, d["backend"]
assert d["uid"] == uid and isinstance(d["euid"], int), (d["uid"], d["euid"], uid)
assert d["status"] in ("ready", "ready with warnings", "blocked"), d["status"]
seen, statuses = {}, []
for section in ("capabilities", "preflight"):
    assert isinstance(d[section], list)
    for e in d[section]:
        assert set(e) == {"key", "label", "status", "detail", "hint"}, sorted(e)
        assert e["key"] not in seen, f"duplicate key {e['key']}"
        seen[e["key"]] = section
        assert e["status"] in ("ok", "warning", "fatal"), e
        assert isinstance(e["label"], str) and e["label"], e
        assert isinstance(e["detail"], str) and e["detail"], e
        if e["status"] == "ok":
            assert e["hint"] is None, e
        else:
            assert isinstance(e["hint"], str) and e["hint"], e
        statuses.append(e["status"])
assert seen == expected, f"keys/sections differ from the schema: got {seen}, documented {expected}"
want = "blocked" if "fatal" in statuses else "ready with warnings" if "warning" in statuses else "ready"
assert d["status"] == want, (d["status"], want)
assert rc == (1 if want == "blocked" else 0), (rc, want)
print(d["status"])
PY
  ) || fail "JSON from '$runner --doctor $*' does not match the schema: $out"
  ok "JSON matches the schema: $runner, $backend $* ($verdict, exit $rc)"
  last_status=$verdict
}

check_json lab_root rootless-internal no
assert_eq ready "$last_status" "root, rootless: ready"
check_json lab_root rootful no --root
check_json lab_root rootful iface --root --iface eth0
check_json lab_root rootless-internal wire --capture "$LAB_DIR/c.pcapng" --capture-point wire-egress
check_json lab_user rootless-internal no
check_json lab_user rootful no --root
assert_eq blocked "$last_status" "user, rootful: blocked (root is fatal)"
check_json lab_user rootless-internal wire --capture "$LAB_DIR/c.pcapng" --capture-point wire-egress
assert_eq blocked "$last_status" "user, wire-egress capture: blocked (no packet socket)"
ok "doctor JSON matches docs/doctor-schema.md"
