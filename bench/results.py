#!/usr/bin/env python3
"""bench/results.py — parse one tool's output; turn all samples into the table.

  results.py parse WORKLOAD FILE
      Prints the sample(s) that FILE (the raw output of one workload run) holds,
      one number per line, in the workload's unit. On output it cannot read it
      prints the reason on stderr and exits 1; the caller records "n/a".
  results.py report SAMPLES.tsv [--out FILE.json] [--meta KEY=VALUE ...]
      SAMPLES.tsv lines: workload, variant, round, value-or-"n/a", reason.
      Prints a Markdown table of medians per (workload, variant) with the ratios
      of childflow to each peer, the n/a reasons, and the issue 3 minimum; writes
      the same as JSON to --out.

The medians are taken over every sample of a (workload, variant): one per round
for the tools that report one figure, RUNS per round for start-up.
"""
import json
import re
import statistics
import sys

# name -> (title, unit, higher_is_better)
WORKLOADS = {
    "throughput": ("iperf3 TCP throughput", "Gbit/s", True),
    "latency": ("sockperf TCP ping-pong p50", "µs", False),
    "connrate": ("wrk connection rate (Connection: close)", "req/s", True),
    "dns": ("DNS query rate (dnsperf)", "queries/s", True),
    "startup": ("start-up of `-- true`", "ms", False),
}
# childflow-copy is childflow with its TCP copy path forced
# (CHILDFLOW_FORCE_FALLBACK=tcp_peek_off, what kernels before 6.9 get): the
# table shows its cost against the SO_PEEK_OFF path as childflow-copy/childflow.
VARIANTS = ["native", "pasta", "slirp4netns", "childflow", "childflow-copy"]
PEERS = ["pasta", "slirp4netns"]


class Unreadable(Exception):
    pass


def parse_throughput(text):
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise Unreadable(f"iperf3 printed no JSON ({e.msg}): {text.strip()[:200]}")
    if "error" in doc:
        raise Unreadable(f"iperf3: {doc['error']}")
    try:
        bps = doc["end"]["sum_received"]["bits_per_second"]
    except (KeyError, TypeError):
        raise Unreadable("iperf3 JSON has no end.sum_received")
    if bps <= 0:
        raise Unreadable("iperf3 received nothing")
    return [bps / 1e9]


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
    "throughput": parse_throughput,
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
            print(f"{v:.6g}")
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
    samples = {}   # (workload, variant) -> [values]
    reasons = {}   # (workload, variant) -> [reasons]
    seen_workloads, seen_variants = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            workload, variant, _round, value = parts[:4]
            if workload not in seen_workloads:
                seen_workloads.append(workload)
            if variant not in seen_variants:
                seen_variants.append(variant)
            if value == "n/a":
                reasons.setdefault((workload, variant), []).append(parts[4] if len(parts) > 4 else "")
            else:
                samples.setdefault((workload, variant), []).append(float(value))

    workloads = [w for w in WORKLOADS if w in seen_workloads]
    variants = [v for v in VARIANTS if v in seen_variants]
    peers = [p for p in PEERS if p in variants] if "childflow" in variants else []
    # (numerator, denominator) of each ratio column.
    pairs = [("childflow", p) for p in peers]
    if "childflow" in variants and "childflow-copy" in variants:
        pairs.append(("childflow-copy", "childflow"))

    result = {"meta": meta, "workloads": {}}
    header = ["workload", "unit", "better"] + variants + [f"{a}/{b}" for a, b in pairs]
    rows = []
    for w in workloads:
        title, unit, higher = WORKLOADS[w]
        entry = {"title": title, "unit": unit,
                 "better": "higher" if higher else "lower",
                 "median": {}, "samples": {}, "na": {}, "ratio": {}}
        medians = {}
        for v in variants:
            vals = samples.get((w, v), [])
            # A variant that failed in any round has no honest median.
            if vals and (w, v) not in reasons:
                medians[v] = statistics.median(vals)
            else:
                medians[v] = None
            entry["median"][v] = medians[v]
            entry["samples"][v] = vals
            if (w, v) in reasons:
                entry["na"][v] = reasons[(w, v)]
        ratios = []
        for a, b in pairs:
            cf, peer = medians.get(a), medians.get(b)
            r = cf / peer if cf is not None and peer else None
            entry["ratio"][f"{a}/{b}"] = r
            ratios.append("n/a" if r is None else f"{r:.2f}x")
        result["workloads"][w] = entry
        rows.append([title, unit, "higher" if higher else "lower"]
                    + [fmt(medians[v]) for v in variants] + ratios)

    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 3 + ["---:"] * (len(header) - 3)) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")

    notes = []
    for w in workloads:
        for v, rs in result["workloads"][w]["na"].items():
            uniq = list(dict.fromkeys(rs))
            notes.append(f"- n/a {w}/{v}: " + "; ".join(uniq))
    if notes:
        print()
        print("\n".join(notes))

    checks = issue3_checks(result["workloads"])
    result["issue3"] = checks
    if checks:
        print()
        print("Issue 3 minimum (this run):")
        for c in checks:
            print(f"- {c['verdict']}: {c['what']} ({c['detail']})")

    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, ensure_ascii=False)
            f.write("\n")
    return 0


def issue3_checks(table):
    def med(w, v):
        return table.get(w, {}).get("median", {}).get(v)

    checks = []

    def add(what, ok, detail):
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        checks.append({"what": what, "verdict": verdict, "detail": detail})

    if "throughput" in table:
        cf, sl = med("throughput", "childflow"), med("throughput", "slirp4netns")
        add("iperf3 throughput >= slirp4netns",
            None if cf is None or sl is None else cf >= sl,
            f"childflow {fmt(cf)} vs slirp4netns {fmt(sl)} Gbit/s")
    if "latency" in table:
        cf, pa = med("latency", "childflow"), med("latency", "pasta")
        add("TCP ping-pong p50 <= 1.5x pasta",
            None if cf is None or pa is None else cf <= 1.5 * pa,
            f"childflow {fmt(cf)} vs pasta {fmt(pa)} µs")
    if "startup" in table:
        cf = med("startup", "childflow")
        add("childflow -- true start-up median < 50 ms",
            None if cf is None else cf < 50, f"{fmt(cf)} ms")
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
