#!/usr/bin/env python3
"""Validate a childflow flow log (JSON Lines) against docs/flow-log-schema.md.

Usage: flowlog_schema.py [--allow-extra] [--foreign] [--min-events N] FILE

Checks every line of FILE, in order, and stops at the first violation with
`flowlog: FILE:LINE: what is wrong` on stderr and exit status 1 (2 for usage
or I/O errors). On success prints `flowlog ok: N events` and exits 0.

What is checked (our own logs, the default):
  - every line is one JSON object, UTF-8, and the file ends with '\n'
    (a cut last line is a violation); no blank lines;
  - schema_version is 1, ts_ms a non-negative integer, event a known name;
  - every field of the event is present with its type (null only where the
    schema allows it) and, where the schema lists values, one of them;
  - no field outside the schema (unless --allow-extra);
  - consistency: remote_addr is remote_ip:remote_port (IPv6 in brackets),
    server is server_ip:server_port, error is null exactly when status is ok,
    policy_violation has a flow_id unless it is a DNS denial, and the flow
    ids join: connect_result and flow_end name a flow that an earlier
    connect_attempt or flow_start opened, with the same destination (and,
    for connect_result, the same via_proxy), and a flow ends at most once.

limit_hit (beyond) must name a known limit with the action that belongs to
it, and a positive max and count.

--foreign reads a log of another writer (the Rust childflow 0.8.1): the
**beyond** fields (flow_id, names, bytes_sent, bytes_received, duration_ms,
close, direct) and dns_answer's rcode become optional, flow_start and limit_hit are
still known,
extra fields are allowed and the flow-id joins are not checked.
"""
import argparse
import ipaddress
import json
import sys

STR, INT, BOOL, STRLIST = "string", "integer", "boolean", "array of strings"

PROTO_DNS = {"udp", "tcp"}
PROTO_FLOW = {"tcp", "udp", "icmpv4", "icmpv6"}
PROTO_FLOW_START = {"udp", "icmpv4", "icmpv6"}
PROTO_VIOLATION = {"tcp", "udp", "dns", "icmpv4", "icmpv6"}
QTYPES = {"A", "AAAA", "CNAME", "MX", "TXT", "NS", "PTR", "SRV", "SOA", "HTTPS", "SVCB",
          "ANY", "CAA", "DS", "DNSKEY", "other"}
REASON_CONTROL = {
    "offline": "--offline",
    "metadata": "--block-metadata",
    "private": "--block-private",
    "deny_cidr": "--deny-cidr",
    "deny_domain_exact": "--deny-domain-exact",
    "deny_domain": "--deny-domain",
    "default_deny": "--default-policy",
    "proxy_only": "--proxy-only",
    # beyond: a TCP connection whose first bytes gave no name to judge.
    "unreadable_name": "--no-sniff-names",
}
CLOSE = {"fin", "rst", "timeout", "error"}
# limit_hit (beyond): each bound of docs/security.md ("Limits") and what the
# tree sees when it is hit.
LIMIT_ACTION = {
    "tcp_flows": "refused",
    "tcp_connecting": "refused",
    "udp_flows": "evicted",
    "icmp_flows": "evicted",
    "dns_in_flight": "refused",
    "dns_tcp_streams": "refused",
    "dns_tcp_in_flight": "paused",
    "dns_tcp_buffer": "paused",
    "tcp_copy_bytes": "paused",
    "name_map": "evicted",
    "synth_names": "refused",
    "sniff_holds": "paused",
    "recorder_keys": "folded",
}


class F:
    """One field: type, whether null is allowed, allowed values, beyond or not."""

    def __init__(self, typ, null=False, values=None, beyond=False, optional=False):
        self.typ, self.null, self.values = typ, null, values
        self.beyond, self.optional = beyond, optional


DNS_FIELDS = {
    "protocol": F(STR, values=PROTO_DNS),
    "server": F(STR),
    "server_ip": F(STR),
    "server_port": F(INT),
    "qname": F(STR),
    "qtype": F(STR, values=QTYPES),
    # beyond: the tree sent the query to an address other than the gateway.
    "direct": F(BOOL, beyond=True),
}
ENDPOINT = {"remote_addr": F(STR), "remote_ip": F(STR), "remote_port": F(INT)}
FLOW_ID = {"flow_id": F(INT, beyond=True)}
NAMES = {"names": F(STRLIST, beyond=True)}

EVENTS = {
    "dns_query": dict(DNS_FIELDS),
    "dns_answer": {
        **DNS_FIELDS,
        # synthetic_remote (beyond): --proxy-dns remote's synthetic addresses.
        "mode": F(STR, values={"relayed", "synthetic_empty", "synthetic_remote"}),
        "bytes": F(INT),
        "answer_ips": F(STRLIST),
        # Not written by the Rust tool: optional in foreign logs.
        "rcode": F(INT, beyond=True),
    },
    "connect_attempt": {
        **FLOW_ID,
        "protocol": F(STR, values={"tcp"}),
        **ENDPOINT,
        "via_proxy": F(BOOL),
        **NAMES,
    },
    "connect_result": {
        **FLOW_ID,
        "protocol": F(STR, values={"tcp"}),
        **ENDPOINT,
        "via_proxy": F(BOOL),
        **NAMES,
        "status": F(STR, values={"ok", "error"}),
        "error": F(STR, null=True),
    },
    "flow_start": {
        **FLOW_ID,
        "protocol": F(STR, values=PROTO_FLOW_START),
        **ENDPOINT,
        **NAMES,
    },
    "flow_end": {
        **FLOW_ID,
        "protocol": F(STR, values=PROTO_FLOW),
        **ENDPOINT,
        "bytes_sent": F(INT, beyond=True),
        "bytes_received": F(INT, beyond=True),
        "duration_ms": F(INT, beyond=True),
        "close": F(STR, values=CLOSE, beyond=True),
    },
    "policy_violation": {
        # Present for flows, absent for DNS denials: checked below.
        "flow_id": F(INT, beyond=True, optional=True),
        "protocol": F(STR, values=PROTO_VIOLATION),
        "remote": F(STR),
        "remote_ip": F(STR, null=True),
        "remote_port": F(INT, null=True),
        "action": F(STR, values={"deny"}),
        "reason_code": F(STR, values=set(REASON_CONTROL)),
        "control": F(STR, values=set(REASON_CONTROL.values())),
        "matched_cidr": F(STR, null=True),
        "matched_domain": F(STR, null=True),
        "reason": F(STR),
        **NAMES,
        # beyond: a TCP connection denied for the name in its first bytes.
        "sniffed_name": F(STR, beyond=True, optional=True),
        "sniffed_from": F(STR, beyond=True, optional=True,
                          values={"tls_sni", "http_host", "http_target"}),
    },
    "runtime_failure": {
        "phase": F(STR),
        "reason_code": F(STR),
        "detail": F(STR),
    },
    # beyond: a bound was hit (docs/security.md, "Limits").
    "limit_hit": {
        "limit": F(STR, values=set(LIMIT_ACTION)),
        "max": F(INT),
        "action": F(STR, values=set(LIMIT_ACTION.values())),
        "count": F(INT),
    },
}
COMMON = {"schema_version", "ts_ms", "event"}


class Violation(Exception):
    pass


def type_ok(v, typ):
    if typ == STR:
        return isinstance(v, str)
    if typ == INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if typ == BOOL:
        return isinstance(v, bool)
    if typ == STRLIST:
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    raise AssertionError(typ)


def endpoint(ip, port):
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def check_ip(v, field):
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise Violation(f"{field} {v!r} is not an IP address")


def check_event(obj, foreign, allow_extra):
    if not isinstance(obj, dict):
        raise Violation(f"not a JSON object but {type(obj).__name__}")
    for k in ("schema_version", "ts_ms", "event"):
        if k not in obj:
            raise Violation(f"missing field {k!r}")
    if obj["schema_version"] != 1 or isinstance(obj["schema_version"], bool):
        raise Violation(f"schema_version is {obj['schema_version']!r}, not 1")
    ts = obj["ts_ms"]
    if not type_ok(ts, INT) or ts < 0:
        raise Violation(f"ts_ms is {ts!r}, not a non-negative integer")
    ev = obj["event"]
    if not isinstance(ev, str) or ev not in EVENTS:
        raise Violation(f"unknown event {ev!r} (known: {', '.join(sorted(EVENTS))})")
    schema = EVENTS[ev]
    for name, f in schema.items():
        if name not in obj:
            if f.optional or (foreign and f.beyond):
                continue
            raise Violation(f"{ev}: missing field {name!r}")
        v = obj[name]
        if v is None:
            if not f.null:
                raise Violation(f"{ev}: {name} is null, must be {f.typ}")
            continue
        if not type_ok(v, f.typ):
            raise Violation(f"{ev}: {name} is {json.dumps(v)}, must be {f.typ}"
                            + (" or null" if f.null else ""))
        if f.values is not None and v not in f.values:
            raise Violation(f"{ev}: {name} is {v!r}, must be one of {sorted(f.values)}")
    if not allow_extra:
        extra = sorted(set(obj) - COMMON - set(schema))
        if extra:
            raise Violation(f"{ev}: unknown field(s) {', '.join(extra)} (not in the schema; "
                            "--allow-extra for logs of other writers)")
    # Consistency within the event.
    if "server_ip" in schema:
        check_ip(obj["server_ip"], "server_ip")
        if not 0 <= obj["server_port"] <= 65535:
            raise Violation(f"{ev}: server_port {obj['server_port']} out of range")
        want = endpoint(obj["server_ip"], obj["server_port"])
        if obj["server"] != want:
            raise Violation(f"{ev}: server is {obj['server']!r}, expected {want!r}")
    if ev == "dns_answer":
        for ip in obj["answer_ips"]:
            check_ip(ip, "answer_ips entry")
        if obj["bytes"] < 12:
            raise Violation(f"{ev}: bytes {obj['bytes']} is smaller than a DNS header")
    if "remote_addr" in schema:
        check_ip(obj["remote_ip"], "remote_ip")
        if not 0 <= obj["remote_port"] <= 65535:
            raise Violation(f"{ev}: remote_port {obj['remote_port']} out of range")
        want = endpoint(obj["remote_ip"], obj["remote_port"])
        if obj["remote_addr"] != want:
            raise Violation(f"{ev}: remote_addr is {obj['remote_addr']!r}, expected {want!r}")
    if ev == "connect_result":
        if (obj["status"] == "ok") != (obj["error"] is None):
            raise Violation(f"{ev}: status {obj['status']!r} with error {obj['error']!r} "
                            "(error must be null exactly when status is ok)")
    if ev == "policy_violation":
        if REASON_CONTROL[obj["reason_code"]] != obj["control"]:
            raise Violation(f"{ev}: control {obj['control']!r} does not belong to reason_code "
                            f"{obj['reason_code']!r}")
        if obj["remote_ip"] is not None:
            check_ip(obj["remote_ip"], "remote_ip")
        if obj["protocol"] == "dns":
            if obj["remote_ip"] is not None or obj["remote_port"] is not None:
                raise Violation(f"{ev}: a DNS denial has remote_ip and remote_port null")
            if "flow_id" in obj:
                raise Violation(f"{ev}: a DNS denial has no flow_id")
        else:
            if obj["remote_ip"] is None:
                raise Violation(f"{ev}: {obj['protocol']} denial without remote_ip")
            if not foreign and "flow_id" not in obj:
                raise Violation(f"{ev}: {obj['protocol']} denial without flow_id")
            icmp = obj["protocol"].startswith("icmp")
            if icmp != (obj["remote_port"] is None):
                raise Violation(f"{ev}: remote_port must be null exactly for ICMP, is "
                                f"{obj['remote_port']!r} for {obj['protocol']}")
            want = obj["remote_ip"] if icmp else endpoint(obj["remote_ip"], obj["remote_port"])
            if obj["remote"] != want:
                raise Violation(f"{ev}: remote is {obj['remote']!r}, expected {want!r}")
        if ("sniffed_name" in obj) != ("sniffed_from" in obj):
            raise Violation(f"{ev}: sniffed_name and sniffed_from go together")
        if "sniffed_name" in obj and obj["protocol"] != "tcp":
            raise Violation(f"{ev}: sniffed_name on a {obj['protocol']} denial")
    if ev == "limit_hit":
        if LIMIT_ACTION[obj["limit"]] != obj["action"]:
            raise Violation(f"{ev}: action {obj['action']!r} does not belong to limit "
                            f"{obj['limit']!r} (expected {LIMIT_ACTION[obj['limit']]!r})")
        if obj["count"] < 1:
            raise Violation(f"{ev}: count {obj['count']} is not positive")
        if obj["max"] < 1:
            raise Violation(f"{ev}: max {obj['max']} is not positive")
    if "flow_id" in obj and type_ok(obj["flow_id"], INT) and obj["flow_id"] <= 0:
        raise Violation(f"{ev}: flow_id {obj['flow_id']} is not positive")
    return ev


class Joins:
    """Flow-id joins across events (our own logs)."""

    def __init__(self):
        self.opened = {}  # flow_id -> (event, remote_addr, via_proxy)
        self.ended = set()

    def check(self, ev, obj):
        fid = obj.get("flow_id")
        if ev in ("connect_attempt", "flow_start"):
            if fid in self.opened:
                raise Violation(f"{ev}: flow_id {fid} was already opened by an earlier "
                                f"{self.opened[fid][0]}")
            self.opened[fid] = (ev, obj["remote_addr"], obj.get("via_proxy"))
        elif ev in ("connect_result", "flow_end"):
            if fid not in self.opened:
                raise Violation(f"{ev}: flow_id {fid} was not opened by an earlier "
                                "connect_attempt or flow_start")
            opener, addr, via_proxy = self.opened[fid]
            if ev == "connect_result" and opener != "connect_attempt":
                raise Violation(f"{ev}: flow_id {fid} belongs to a {opener}")
            if addr != obj["remote_addr"]:
                raise Violation(f"{ev}: flow_id {fid} went to {addr}, not {obj['remote_addr']}")
            if ev == "connect_result" and obj["via_proxy"] != via_proxy:
                raise Violation(f"{ev}: flow_id {fid}: via_proxy is {json.dumps(obj['via_proxy'])}, "
                                f"the attempt said {json.dumps(via_proxy)}")
            if ev == "flow_end":
                if fid in self.ended:
                    raise Violation(f"{ev}: flow_id {fid} ended twice")
                self.ended.add(fid)


def validate(path, foreign, allow_extra):
    """Returns (events, None) or (line_number, message)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        print(f"flowlog: {path}: {e.strerror}", file=sys.stderr)
        sys.exit(2)
    joins = None if foreign else Joins()
    lines = data.split(b"\n")
    last_complete = data.endswith(b"\n") or not data
    if last_complete:
        lines = lines[:-1]
    count = 0
    for no, raw in enumerate(lines, 1):
        try:
            if not last_complete and no == len(lines):
                raise Violation("the last line has no '\\n' (cut off?)")
            if not raw.strip():
                raise Violation("blank line")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise Violation(f"not UTF-8: {e}")
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise Violation(f"not JSON: {e}")
            ev = check_event(obj, foreign, allow_extra)
            if joins:
                joins.check(ev, obj)
        except Violation as v:
            return no, str(v)
        count += 1
    return count, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file")
    ap.add_argument("--allow-extra", action="store_true",
                    help="allow fields that are not in the schema")
    ap.add_argument("--foreign", action="store_true",
                    help="a log of another writer (Rust childflow): beyond fields optional, "
                    "extra fields allowed, no flow-id joins")
    ap.add_argument("--min-events", type=int, default=0,
                    help="fail when the log has fewer events than this")
    a = ap.parse_args()
    n, err = validate(a.file, a.foreign, a.allow_extra or a.foreign)
    if err is not None:
        print(f"flowlog: {a.file}:{n}: {err}", file=sys.stderr)
        return 1
    if n < a.min_events:
        print(f"flowlog: {a.file}: {n} events, expected at least {a.min_events}",
              file=sys.stderr)
        return 1
    print(f"flowlog ok: {n} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
