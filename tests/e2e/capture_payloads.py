#!/usr/bin/env python3
"""capture_payloads.py PCAPNG UPLOAD_FILE TRANSFERS

Checks the bytes of every TCP segment of the HTTP transfers in a capture
(engine_offload.sh's: GET /bytes/N downloads and PUT /upload uploads of
UPLOAD_FILE, on port 80) against what was sent at that sequence number,
original and resent segments alike:

- a download's body byte at offset i is i % 256 (the lab's web server,
  tests/lab/servers/labsrv.py), its headers are those of the first segment;
- an upload's body is UPLOAD_FILE, its headers those of the first segment.

So a resend that carried other bytes than the first send (the engine's or
the tree's), or a frame the capture wrote wrong, is found even when the
receiver kept the first copy and the transfer's sha256 came out right. It
also checks that every body byte was seen at least once and that it found
TRANSFERS transfers in all (a stream it could not read is not skipped
silently). Prints one line; exits 1 on any mismatch, gap or missing
transfer.
"""
import re
import subprocess
import sys


def main() -> int:
    pcap, upload_path, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(upload_path, "rb") as f:
        upload = f.read()
    fields = subprocess.run(
        ["tshark", "-n", "-r", pcap, "-Y", "tcp.port == 80 && tcp.len > 0", "-T", "fields",
         "-e", "tcp.stream", "-e", "tcp.srcport", "-e", "tcp.seq", "-e", "tcp.payload"],
        capture_output=True, text=True, check=True).stdout
    # (stream, from_server) -> [(relative seq, payload)]
    flows: dict[tuple[str, bool], list[tuple[int, bytes]]] = {}
    for line in fields.splitlines():
        stream, sport, seq, payload = line.split("\t")
        flows.setdefault((stream, sport == "80"), []).append((int(seq), bytes.fromhex(payload)))

    checked = mismatches = transfers = 0
    problems: list[str] = []
    for (stream, from_server), segs in sorted(flows.items()):
        first = next((p for s, p in segs if s == 1), None)
        if first is None or b"\r\n\r\n" not in first:
            continue
        head = first[: first.index(b"\r\n\r\n") + 4]
        request = flows.get((stream, False), [(0, b"")])
        request_line = next((p for s, p in request if s == 1), b"").split(b"\r\n", 1)[0]
        if from_server and request_line.startswith(b"GET /bytes/"):
            def body(off: int, n: int) -> bytes:
                return bytes((off + i) % 256 for i in range(n))
        elif not from_server and request_line.startswith(b"PUT /upload"):
            def body(off: int, n: int) -> bytes:
                return upload[off:off + n]
        else:
            continue  # the answers to an upload, the 100 Continue
        m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.IGNORECASE)
        if not m:
            problems.append(f"stream {stream}: no Content-Length in {head[:80]!r}")
            continue
        length = int(m.group(1))
        transfers += 1
        seen = bytearray(length)  # 1 where a body byte was seen
        for seq, payload in segs:
            off = seq - 1  # offset in the byte stream
            # The body bytes it covers: [b0, b1); before b0, header bytes.
            b0 = max(off, len(head)) - len(head)
            b1 = min(off + len(payload), len(head) + length) - len(head)
            want = bytearray(head[off:off + len(payload)] if off < len(head) else b"")
            want += body(b0, len(payload) - len(want))
            checked += 1
            if bytes(want) != payload:
                mismatches += 1
                if len(problems) < 5:
                    at = next(i for i in range(len(payload)) if i >= len(want) or payload[i] != want[i])
                    problems.append(f"stream {stream} seq {seq}: byte {at} differs")
            if b1 > b0:
                seen[b0:b1] = b"\1" * (b1 - b0)
        if seen.count(0):
            problems.append(f"stream {stream}: {seen.count(0)} of {length} body bytes never seen")
    ok = transfers == expected and mismatches == 0 and not problems
    print(f"{transfers} transfers (of {expected}), {checked} segments checked, {mismatches} differ"
          + ("" if not problems else "; " + "; ".join(problems)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
