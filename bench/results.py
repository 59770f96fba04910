#!/usr/bin/env python3
"""bench/results.py — parse one tool's output; turn all samples into the table.

  results.py parse WORKLOAD FILE
      Prints the sample(s) that FILE (the raw output of one workload run) holds,
      one number per line, in the workload's unit. On output it cannot read it
      prints the reason on stderr and exits 1; the caller records "n/a".
      WORKLOAD is latency, connrate, dns or startup, or iperf3: then it prints
      one line "GBIT_PER_S BYTES SECONDS" (receiver side of an iperf3 -J run,
      either direction).
  results.py report SAMPLES.tsv [--out FILE.json] [--meta KEY=VALUE ...]
      SAMPLES.tsv lines: row, variant, round, value-or-"n/a", reason.
      Prints a Markdown table of medians per (row, variant) with the ratios of
      childflow to each peer, the n/a reasons, the issue 3 minimum and issue
      12's capture target, and a warning for every figure implausibly far
      from native's; writes the same as JSON to --out.

The medians are taken over every sample of a (row, variant): one per round for
the tools that report one figure, RUNS per round for start-up. A workload can
fill several rows (each iperf3 run gives a throughput and a CPU-per-GB row;
the memory workload four rows).
"""
import json
import re
import statistics
import sys

# row -> (title, unit, higher_is_better, kind). kind says which sanity check
# applies: "rate" and "latency" rows are compared with native's figure.
ROWS = {
    "throughput": ("iperf3 TCP throughput, child→host", "Gbit/s", True, "rate"),
    "throughput-rev": ("iperf3 TCP throughput, host→child (-R)", "Gbit/s", True, "rate"),
    "throughput-1500": ("iperf3 TCP throughput, child→host, MTU 1500", "Gbit/s", True, "rate"),
    "throughput-rev-1500": ("iperf3 TCP throughput, host→child, MTU 1500", "Gbit/s", True, "rate"),
    "cpu": ("sandbox CPU per GB, child→host", "CPU s/GB", False, "cpu"),
    "cpu-rev": ("sandbox CPU per GB, host→child", "CPU s/GB", False, "cpu"),
    "cpu-1500": ("sandbox CPU per GB, child→host, MTU 1500", "CPU s/GB", False, "cpu"),
    "cpu-rev-1500": ("sandbox CPU per GB, host→child, MTU 1500", "CPU s/GB", False, "cpu"),
    "latency": ("sockperf TCP ping-pong p50", "µs", False, "latency"),
    "connrate": ("wrk connection rate (Connection: close)", "req/s", True, "rate"),
    "dns": ("DNS query rate (dnsperf)", "queries/s", True, "rate"),
    "startup": ("start-up of `-- true`", "ms", False, "startup"),
    "mem-1k": ("sandbox RSS, 1,000 idle TCP connections (VmRSS)", "MiB", False, "memory"),
    "mem-1k-hwm": ("sandbox peak RSS, 1,000 idle TCP connections (VmHWM)", "MiB", False, "memory"),
    "mem-10k": ("sandbox RSS, 10,000 idle TCP connections (VmRSS)", "MiB", False, "memory"),
    "mem-10k-hwm": ("sandbox peak RSS, 10,000 idle TCP connections (VmHWM)", "MiB", False, "memory"),
    "capture": ("200 MB download, time with capture / without", "x", False, "ratio"),
}
# A sandbox's rate under this share of both native's and the best sandbox's
# in the same row, or its latency over this many times both, is not a figure
# to compare: its set-up is wrong or the tool is broken on this machine, and
# the table says so under it. Native alone is no yardstick at MTU 1500, where
# native keeps its veth's offloads and every sandbox moves each 1500-byte
# frame through user space; the best sandbox alone would miss a row where
# every sandbox is broken. The MTU 1500 rows are not checked: there a tap
# with segmentation offloads (childflow's) moves 64 KiB per frame and one
# without moves 1500 bytes, a tenfold gap by design, not a broken set-up.
IMPLAUSIBLE_RATE = 0.10
IMPLAUSIBLE_LATENCY = 10.0
# Issue 12: a capture may cost at most 30% of the download's time.
CAPTURE_TARGET = 1.30

# childflow-copy is childflow with its TCP copy path forced
# (CHILDFLOW_FORCE_FALLBACK=tcp_peek_off, what kernels before 6.9 get): the
# table shows its cost against the SO_PEEK_OFF path as childflow-copy/childflow.
# childflow-plain (only when asked for) is childflow with tap0's offloads
# forced off (CHILDFLOW_FORCE_FALLBACK=tap_offload): childflow/childflow-plain
# is what they buy.
VARIANTS = ["native", "pasta", "slirp4netns", "childflow", "childflow-copy", "childflow-plain"]
PEERS = ["pasta", "slirp4netns"]


class Unreadable(Exception):
    pass


def parse_iperf3(text):
    """Receiver-side Gbit/s, bytes and seconds of an iperf3 -J run."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise Unreadable(f"iperf3 printed no JSON ({e.msg}): {text.strip()[:200]}")
    if "error" in doc:
        raise Unreadable(f"iperf3: {doc['error']}")
    try:
        received = doc["end"]["sum_received"]
        bps, nbytes, seconds = received["bits_per_second"], received["bytes"], received["seconds"]
    except (KeyError, TypeError):
        raise Unreadable("iperf3 JSON has no end.sum_received")
    if bps <= 0 or nbytes <= 0:
        raise Unreadable("iperf3 received nothing")
    return [f"{bps / 1e9:.6g} {nbytes} {seconds:.6g}"]


def parse_latency(text):
    m = re.search(r"percentile 50\.000\s*=\s*([0-9.]+)", text)
    if not m:
        raise Unreadable("sockperf printed no p50: " + text.strip()[-300:])
    return [float(m.group(1))]


def parse_connrate(text):
    m = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    if not m:
        raise Unreadable("wrk printed no Requests/sec: " + text.strip()[-300:])
    total = re.search(r"(\d+) requests in", text)
    if not total or int(total.group(1)) == 0:
        raise Unreadable("wrk completed no request: " + text.strip()[-300:])
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if errors:
        failed = sum(int(x) for x in errors.groups())
        # A few errors at the end of the run are wrk cutting connections off;
        # many mean the sandbox drops connections, which is not a rate.
        if failed > max(10, int(total.group(1)) // 100):
            raise Unreadable(f"wrk socket errors ({errors.group(0)}) for "
                             f"{total.group(1)} requests")
    return [float(m.group(1))]


def parse_dns(text):
    m = re.search(r"Queries per second:\s*([0-9.]+)", text)
    if not m:
        raise Unreadable("dnsperf printed no rate: " + text.strip()[-300:])
    sent = re.search(r"Queries sent:\s*(\d+)", text)
    lost = re.search(r"Queries lost:\s*(\d+)", text)
    if sent and lost and int(lost.group(1)) > max(10, int(sent.group(1)) // 100):
        raise Unreadable(f"dnsperf lost {lost.group(1)} of {sent.group(1)} queries")
    return [float(m.group(1))]


def parse_startup(text):
    values = [float(x) for x in text.split()]
    if not values:
        raise Unreadable("no start-up sample")
    return values


PARSERS = {
    "iperf3": parse_iperf3,
    "latency": parse_latency,
    "connrate": parse_connrate,
    "dns": parse_dns,
    "startup": parse_startup,
}


def cmd_parse(workload, path):
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    try:
        for v in PARSERS[workload](text):
            print(v if isinstance(v, str) else f"{v:.6g}")
    except Unreadable as e:
        print(" ".join(str(e).split()), file=sys.stderr)
        return 1
    return 0


def fmt(v):
    if v is None:
        return "n/a"
    if v >= 1000:
        return f"{v:,.0f}"
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def cmd_report(path, out, meta):
    samples = {}   # (row, variant) -> [values]
    reasons = {}   # (row, variant) -> [reasons]
    seen_rows, seen_variants = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            row, variant, _round, value = parts[:4]
            if row not in seen_rows:
                seen_rows.append(row)
            if variant not in seen_variants:
                seen_variants.append(variant)
            if value == "n/a":
                reasons.setdefault((row, variant), []).append(parts[4] if len(parts) > 4 else "")
            else:
                samples.setdefault((row, variant), []).append(float(value))

    rows = [r for r in ROWS if r in seen_rows]
    variants = [v for v in VARIANTS if v in seen_variants]
    peers = [p for p in PEERS if p in variants] if "childflow" in variants else []
    # (numerator, denominator) of each ratio column.
    pairs = [("childflow", p) for p in peers]
    if "childflow" in variants and "childflow-copy" in variants:
        pairs.append(("childflow-copy", "childflow"))
    if "childflow" in variants and "childflow-plain" in variants:
        pairs.append(("childflow", "childflow-plain"))

    result = {"meta": meta, "rows": {}}
    header = ["workload", "unit", "better"] + variants + [f"{a}/{b}" for a, b in pairs]
    lines = []
    for r in rows:
        title, unit, higher, kind = ROWS[r]
        entry = {"title": title, "unit": unit, "kind": kind,
                 "better": "higher" if higher else "lower",
                 "median": {}, "samples": {}, "na": {}, "ratio": {}}
        medians = {}
        for v in variants:
            vals = samples.get((r, v), [])
            # A variant that failed in any round has no honest median.
            if vals and (r, v) not in reasons:
                medians[v] = statistics.median(vals)
            else:
                medians[v] = None
            entry["median"][v] = medians[v]
            entry["samples"][v] = vals
            if (r, v) in reasons:
                entry["na"][v] = reasons[(r, v)]
        ratios = []
        for a, b in pairs:
            cf, peer = medians.get(a), medians.get(b)
            q = cf / peer if cf is not None and peer else None
            entry["ratio"][f"{a}/{b}"] = q
            ratios.append("n/a" if q is None else f"{q:.2f}x")
        result["rows"][r] = entry
        lines.append([title, unit, "higher" if higher else "lower"]
                     + [fmt(medians[v]) for v in variants] + ratios)

    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")
    for line in lines:
        print("| " + " | ".join(line) + " |")

    # n/a reasons, one line per (variant, reason) with every row it applies to.
    grouped = {}
    for r in rows:
        for v, rs in result["rows"][r]["na"].items():
            for reason in dict.fromkeys(rs):
                grouped.setdefault((v, reason), []).append(r)
    if grouped:
        print()
        for (v, reason), rs in grouped.items():
            print(f"- n/a {v} ({', '.join(rs)}): {reason}")

    warnings = implausible(result["rows"])
    result["warnings"] = warnings
    if warnings:
        print()
        for w in warnings:
            print(f"- **warning**: {w}")

    checks = issue_checks(result["rows"])
    result["checks"] = checks
    if checks:
        print()
        print("Targets (this run):")
        for c in checks:
            print(f"- {c['verdict']}: {c['what']} ({c['detail']})")

    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0


def implausible(table):
    """Figures so far from native's, and from the best sandbox's, that the
    set-up, not the sandbox, is in question: a peer configured wrongly, or
    broken on this machine."""
    warnings = []
    for row, entry in table.items():
        if row.endswith("-1500"):
            continue
        kind = entry["kind"]
        native = entry["median"].get("native")
        sandboxes = [m for v, m in entry["median"].items() if v != "native" and m is not None]
        if kind not in ("rate", "latency") or not native or not sandboxes:
            continue
        for v, m in entry["median"].items():
            if v == "native" or m is None:
                continue
            if kind == "rate" and m < IMPLAUSIBLE_RATE * min(native, max(sandboxes)):
                warnings.append(
                    f"{v}: {entry['title']} {fmt(m)} {entry['unit']} is under "
                    f"{IMPLAUSIBLE_RATE:.0%} of native's {fmt(native)} and of the best "
                    f"sandbox's {fmt(max(sandboxes))}: implausibly low, a set-up problem or "
                    f"a bug of {v} on this machine; its ratios mean little "
                    f"(docs/performance.md, \"Peers\")")
            if kind == "latency" and m > IMPLAUSIBLE_LATENCY * max(native, min(sandboxes)):
                warnings.append(
                    f"{v}: {entry['title']} {fmt(m)} {entry['unit']} is over "
                    f"{IMPLAUSIBLE_LATENCY:.0f}x native's {fmt(native)} and the best "
                    f"sandbox's {fmt(min(sandboxes))}: implausibly slow, a set-up problem or "
                    f"a bug of {v} on this machine; its ratios mean little "
                    f"(docs/performance.md, \"Peers\")")
    return warnings


def issue_checks(table):
    def med(r, v):
        return table.get(r, {}).get("median", {}).get(v)

    checks = []

    def add(what, ok, detail):
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        checks.append({"what": what, "verdict": verdict, "detail": detail})

    if "throughput" in table:
        cf, sl = med("throughput", "childflow"), med("throughput", "slirp4netns")
        add("issue 3: iperf3 throughput >= slirp4netns",
            None if cf is None or sl is None else cf >= sl,
            f"childflow {fmt(cf)} vs slirp4netns {fmt(sl)} Gbit/s")
    if "latency" in table:
        cf, pa = med("latency", "childflow"), med("latency", "pasta")
        add("issue 3: TCP ping-pong p50 <= 1.5x pasta",
            None if cf is None or pa is None else cf <= 1.5 * pa,
            f"childflow {fmt(cf)} vs pasta {fmt(pa)} µs")
    if "startup" in table:
        cf = med("startup", "childflow")
        add("issue 3: childflow -- true start-up median < 50 ms",
            None if cf is None else cf < 50, f"{fmt(cf)} ms")
    # Issue 12's targets, each against a figure of the same run.
    def ratio_check(what, row, base, factor, higher, unit):
        cf, b = med(row, "childflow"), med(row, base)
        ok = None if cf is None or not b else (cf >= factor * b if higher else cf <= factor * b)
        detail = f"childflow {fmt(cf)} vs {base} {fmt(b)} {unit}"
        if cf is not None and b:
            detail += f" ({cf / b:.2f}x)"
        add(what, ok, detail)

    if "throughput" in table:
        ratio_check("issue 12: child→host throughput >= 0.85x native", "throughput", "native",
                    0.85, True, "Gbit/s")
    if "throughput-rev" in table:
        ratio_check("issue 12: host→child throughput >= 0.75x native", "throughput-rev", "native",
                    0.75, True, "Gbit/s")
    for row in ("throughput-1500", "throughput-rev-1500"):
        if row not in table:
            continue
        peers = {p: med(row, p) for p in PEERS if med(row, p) is not None}
        if peers:
            best = max(peers, key=peers.get)
            ratio_check(f"issue 12: {ROWS[row][0]} >= 1.5x the better peer", row, best, 1.5,
                        True, "Gbit/s")
    for row in ("cpu", "cpu-rev"):
        if row in table:
            ratio_check(f"issue 12: {ROWS[row][0]} <= pasta's", row, "pasta", 1.0, False,
                        "CPU s/GB")
    if "latency" in table:
        ratio_check("issue 12: TCP ping-pong p50 <= 0.8x slirp4netns", "latency", "slirp4netns",
                    0.8, False, "µs")
    if "connrate" in table:
        ratio_check("issue 12: connection rate >= 1.5x pasta", "connrate", "pasta", 1.5, True,
                    "req/s")
    if "dns" in table:
        ratio_check("issue 12: DNS query rate >= 0.8x direct to the resolver (native)", "dns",
                    "native", 0.8, True, "queries/s")
    if "startup" in table:
        cf = med("startup", "childflow")
        add("issue 12: childflow -- true start-up median <= 12 ms",
            None if cf is None else cf <= 12, f"{fmt(cf)} ms")
    if "capture" in table:
        cf = med("capture", "childflow")
        add(f"issue 12: a 200 MB download with --capture takes at most {CAPTURE_TARGET:.2f}x "
            "as long as without",
            None if cf is None else cf <= CAPTURE_TARGET,
            f"childflow {fmt(cf)}" + ("" if cf is None else "x"))
    return checks


def main(argv):
    if len(argv) >= 3 and argv[0] == "parse" and argv[1] in PARSERS:
        return cmd_parse(argv[1], argv[2])
    if len(argv) >= 2 and argv[0] == "report":
        out, meta, rest = None, {}, argv[2:]
        while rest:
            if rest[0] == "--out" and len(rest) > 1:
                out, rest = rest[1], rest[2:]
            elif rest[0] == "--meta" and len(rest) > 1:
                k, _, v = rest[1].partition("=")
                meta[k] = v
                rest = rest[2:]
            else:
                print(f"results.py: unknown argument {rest[0]}", file=sys.stderr)
                return 2
        return cmd_report(argv[1], out, meta)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
