#!/usr/bin/env python3
"""Readiness probe for the lab: polls every given endpoint until all answer.

Theory of operation
-------------------
lab.sh runs this once, from the lab host namespace, after starting the servers,
so a pass proves both the servers and the routed path host -> router -> inet.
Each check is retried every 50 ms until it passes or the deadline (--timeout,
default 10 s) expires; no check ever sleeps blindly. On timeout it prints the
checks that never passed, with their last error, and exits 1. --verbose
prints when each check passed.

Checks (positional arguments):
  tcp:ADDR:PORT        a TCP connect succeeds
  udp-echo:ADDR:PORT   a datagram comes back unchanged
  dns:ADDR:NAME        an A query for NAME gets at least one answer record
ADDR may be IPv6 in brackets, e.g. tcp:[2001:db8:2::10]:80.
"""

import argparse
import os
import socket
import struct
import sys
import time


def split(spec):
    kind, _, rest = spec.partition(":")
    if rest.startswith("["):
        addr, _, tail = rest[1:].partition("]")
        tail = tail.lstrip(":")
    else:
        addr, _, tail = rest.partition(":")
    return kind, addr, tail


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def check_tcp(addr, port):
    with socket.socket(family(addr), socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        s.connect((addr, int(port)))


def check_udp_echo(addr, port):
    with socket.socket(family(addr), socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect((addr, int(port)))  # connected: a port unreachable fails at once
        token = os.urandom(8)
        s.send(token)
        data = s.recv(64)
        if data != token:
            raise OSError("echo mismatch")


def check_dns(addr, name):
    qid = int.from_bytes(os.urandom(2), "big")
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.strip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\x00" + struct.pack(">HH", 1, 1)
    with socket.socket(family(addr), socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.connect((addr, 53))
        s.send(q)
        data = s.recv(4096)
    rid, flags, _, ancount = struct.unpack(">HHHH", data[:8])
    if rid != qid or ancount == 0:
        raise OSError(f"no answer (rcode {flags & 0xF})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--verbose", "-v", action="store_true")
    ap.add_argument("checks", nargs="+")
    a = ap.parse_args()
    pending = {c: "not tried" for c in a.checks}
    start = time.monotonic()
    deadline = start + a.timeout
    while pending:
        for spec in list(pending):
            kind, addr, arg = split(spec)
            try:
                if kind == "tcp":
                    check_tcp(addr, arg)
                elif kind == "udp-echo":
                    check_udp_echo(addr, arg)
                elif kind == "dns":
                    check_dns(addr, arg)
                else:
                    print(f"ready: unknown check {spec}", file=sys.stderr)
                    return 2
                del pending[spec]
                if a.verbose:
                    print(f"ready: {spec} after {time.monotonic() - start:.3f} s", file=sys.stderr)
            except OSError as e:
                pending[spec] = str(e) or type(e).__name__
        if not pending:
            break
        if time.monotonic() > deadline:
            for spec, err in pending.items():
                print(f"ready: {spec} not ready after {a.timeout:g} s: {err}", file=sys.stderr)
            return 1
        time.sleep(0.05)
    return 0


if __name__ == "__main__":
    sys.exit(main())
