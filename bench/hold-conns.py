#!/usr/bin/env python3
"""bench/hold-conns.py ADDRESS PORT COUNTS MARK GO — hold idle TCP connections.

The client of bench/run.sh's memory workload. It runs inside the sandbox and
opens connections to bench/http_server one after the other, then holds them
open, sending nothing, while the harness reads the sandbox's memory from /proc.

  COUNTS  comma-separated running totals, e.g. 1000,10000: open connections
          until COUNT are open, then report and wait; then go on to the next
  MARK    a fifo the harness reads: one line per step, "held COUNT" once COUNT
          connections are established, or "error TEXT"; after an error it
          still waits for GO (so the harness sees the sandbox as it was),
          then exits 1
  GO      a fifo the harness writes: one line releases the next step

After the last step it closes every connection and exits. The sandbox's host
sockets close first, so each leaves a TIME_WAIT in the bench host namespace
for 60 s: at most 10,000 per variant, well inside its 64,000 ephemeral ports
(bench/run.sh sets ip_local_port_range). Ending each with a request, so that
the server closes first, took minutes through some sandboxes.

The soft limit on open files is raised to the hard limit (the harness raises
the hard limit); each connect has a 10 s timeout.
"""
import resource
import socket
import sys

def main() -> int:
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    address, port = sys.argv[1], int(sys.argv[2])
    counts = [int(c) for c in sys.argv[3].split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with open(sys.argv[4], "w", buffering=1) as mark, open(sys.argv[5]) as go:
        conns = []
        for count in counts:
            try:
                while len(conns) < count:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.settimeout(10)
                    s.connect((address, port))
                    conns.append(s)
            except OSError as e:
                mark.write(f"error after {len(conns)} connections: {e}\n")
                go.readline()
                return 1
            mark.write(f"held {count}\n")
            go.readline()
        for s in conns:
            s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
