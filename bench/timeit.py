#!/usr/bin/env python3
"""bench/timeit.py RUNS CMD... — wall time of CMD, RUNS times, one warm-up first.

Prints one line per timed run: the elapsed milliseconds. The clock is
time.perf_counter_ns() around subprocess.run(), so each sample includes one
fork+exec from Python; the native variant (`true` alone) shows that floor.
Stops at the first run that exits non-zero, prints its stderr and exits 1, so
a broken sandbox never passes for a fast one.
"""
import subprocess
import sys
import time


def main() -> int:
    if len(sys.argv) < 3:
        print("usage: timeit.py RUNS CMD...", file=sys.stderr)
        return 2
    runs = int(sys.argv[1])
    cmd = sys.argv[2:]
    for i in range(runs + 1):
        start = time.perf_counter_ns()
        done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        elapsed_ms = (time.perf_counter_ns() - start) / 1e6
        if done.returncode != 0:
            print(f"timeit: run {i} of {' '.join(cmd)} exited {done.returncode}",
                  file=sys.stderr)
            sys.stderr.write(done.stderr.decode(errors="replace")[-2000:])
            return 1
        if i > 0:  # run 0 warms caches and is not recorded
            print(f"{elapsed_ms:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
