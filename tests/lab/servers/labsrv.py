#!/usr/bin/env python3
"""The lab's origin servers, all in one asyncio process in the "internet" namespace.

Theory of operation
-------------------
lab.sh starts this once per lab run, inside the inet namespace, with the addresses
to bind on the command line. One event loop serves every listener, so hundreds of
concurrent connections cost one coroutine each, never a thread.

Listeners (each on every address given for it, IPv4 and IPv6):
  www   HTTP/1.1 on :80 and HTTPS on :443 (certificate from --cert/--key)
          GET  /            small page containing "childflow lab www"
          GET  /bytes/N     N bytes; the byte at offset i is i % 256 (served from a
                            precomputed 1 MiB block, so hundreds of MB stream fast)
          POST|PUT /upload  streams the body (Content-Length or chunked) into sha256
                            and answers the hex digest and "\n"
          GET  /peer        answers the client's address as the server saw it
          GET  /delay/MS    answers "delayed MS\n" after MS milliseconds
          anything else     404
        Keep-alive and "Expect: 100-continue" are honoured.
  echo  TCP echo :7, UDP echo :7 (every datagram is sent straight back),
        TCP half-close server :9 (reads until the client's FIN, then answers
        "got N bytes\n" and closes).
  bad proxies (on --badproxy addresses): :3140 reads the first bytes then closes
        (a proxy dying mid-handshake), :3141 answers garbage then closes, :3142
        accepts and never answers (a proxy that times out).

Every accepted connection, HTTP request and datagram is logged, one line each,
"<server> <proto> <peer-ip> <peer-port> <detail>", to the log file of its server,
flushed at once, so tests can prove what a server did or did not receive.
Limits: request line and headers at most 64 KiB; bodies unbounded (streamed).
"""

import argparse
import asyncio
import hashlib
import socket
import ssl
import sys

BLOCK = bytes(range(256)) * 4096  # 1 MiB; offset i holds i % 256
BLOCK_VIEW = memoryview(BLOCK)
PAGE = b"<html><body>childflow lab www: hello from www.example.test</body></html>\n"
BACKLOG = 4096
BUF_LIMIT = 1 << 20


class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def line(self, *parts):
        self.f.write(" ".join(str(p) for p in parts) + "\n")


def peer_of(writer):
    p = writer.get_extra_info("peername") or ("?", 0)
    return p[0], p[1]


class BadRequest(Exception):
    pass


async def read_head(reader):
    """Reads request line and headers; returns None at a clean EOF."""
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").strip().split()
    if len(parts) != 3:
        raise BadRequest("bad request line")
    headers = {}
    total = len(line)
    while True:
        h = await reader.readline()
        total += len(h)
        if total > 65536:
            raise BadRequest("headers too large")
        if not h:
            raise BadRequest("eof in headers")
        if h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return parts[0], parts[1], parts[2], headers


async def body_chunks(reader, headers):
    """Yields the request body in pieces without holding it in memory."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise BadRequest("eof in chunk size")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers
                    t = await reader.readline()
                    if t in (b"\r\n", b"\n", b""):
                        return
            left = size
            while left:
                data = await reader.read(min(left, BUF_LIMIT))
                if not data:
                    raise BadRequest("eof in chunk")
                left -= len(data)
                yield data
            await reader.readline()
    else:
        left = int(headers.get("content-length", "0") or "0")
        while left > 0:
            data = await reader.read(min(left, BUF_LIMIT))
            if not data:
                raise BadRequest("eof in body")
            left -= len(data)
            yield data


def head(status, length, keep_alive, ctype="text/plain"):
    return (
        f"HTTP/1.1 {status}\r\nServer: childflow-lab\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    ).encode()


async def http_conn(reader, writer, log, scheme):
    ip, port = peer_of(writer)
    log.line("www", scheme, ip, port, "accept")
    try:
        writer.transport.set_write_buffer_limits(high=4 * BUF_LIMIT)
        while True:
            req = await read_head(reader)
            if req is None:
                break
            method, target, version, headers = req
            log.line("www", scheme, ip, port, method, target)
            keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            if method in ("POST", "PUT") and target == "/upload":
                digest = hashlib.sha256()
                n = 0
                async for piece in body_chunks(reader, headers):
                    digest.update(piece)
                    n += len(piece)
                body = (digest.hexdigest() + "\n").encode()
                log.line("www", scheme, ip, port, "upload", n, "bytes")
                writer.write(head("200 OK", len(body), keep_alive) + body)
            else:
                async for _ in body_chunks(reader, headers):
                    pass
                send_body = method != "HEAD"
                if method in ("GET", "HEAD") and target == "/":
                    writer.write(head("200 OK", len(PAGE), keep_alive, "text/html") + (PAGE if send_body else b""))
                elif method in ("GET", "HEAD") and target.startswith("/bytes/") and target[7:].isdigit():
                    n = int(target[7:])
                    writer.write(head("200 OK", n, keep_alive, "application/octet-stream"))
                    left = n if send_body else 0
                    while left:
                        k = min(left, len(BLOCK))
                        writer.write(BLOCK_VIEW[:k])
                        left -= k
                        await writer.drain()
                elif method == "GET" and target == "/peer":
                    body = f"{ip}\n".encode()
                    writer.write(head("200 OK", len(body), keep_alive) + body)
                elif method == "GET" and target.startswith("/delay/") and target[7:].isdigit():
                    ms = int(target[7:])
                    await asyncio.sleep(ms / 1000)
                    body = f"delayed {ms}\n".encode()
                    writer.write(head("200 OK", len(body), keep_alive) + body)
                else:
                    body = b"not found\n"
                    writer.write(head("404 Not Found", len(body), keep_alive) + body)
            await writer.drain()
            if not keep_alive:
                break
    except (ConnectionError, BadRequest, ValueError, ssl.SSLError, asyncio.IncompleteReadError) as e:
        log.line("www", scheme, ip, port, "error", type(e).__name__)
    finally:
        await close(writer)


async def close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError, OSError):
        pass


async def echo_conn(reader, writer, log):
    ip, port = peer_of(writer)
    log.line("echo", "tcp", ip, port, "accept")
    n = 0
    try:
        while True:
            data = await reader.read(BUF_LIMIT)
            if not data:
                break
            n += len(data)
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except ConnectionError:
        pass
    finally:
        log.line("echo", "tcp", ip, port, "closed", n, "bytes")
        await close(writer)


async def halfclose_conn(reader, writer, log):
    ip, port = peer_of(writer)
    log.line("halfclose", "tcp", ip, port, "accept")
    n = 0
    try:
        while True:
            data = await reader.read(BUF_LIMIT)
            if not data:
                break
            n += len(data)
        log.line("halfclose", "tcp", ip, port, "fin after", n, "bytes")
        writer.write(f"got {n} bytes\n".encode())
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        await close(writer)


async def badproxy_conn(reader, writer, log, mode):
    ip, port = peer_of(writer)
    log.line("badproxy", mode, ip, port, "accept")
    try:
        if mode == "close":
            await reader.read(1)
        elif mode == "garbage":
            await reader.read(1)
            writer.write(b"\x07garbage \xff\xfe not a proxy answer\r\n\r\n")
            await writer.drain()
        else:  # silent: hold the connection until the client gives up
            while await reader.read(BUF_LIMIT):
                pass
    except ConnectionError:
        pass
    finally:
        await close(writer)


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, log):
        self.log = log
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.log.line("echo", "udp", addr[0], addr[1], len(data), "bytes")
        self.transport.sendto(data, addr)


def listen_sock(addr, port, kind):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, port))
    if kind == socket.SOCK_STREAM:
        s.listen(BACKLOG)
    s.setblocking(False)
    return s


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--www", action="append", default=[])
    ap.add_argument("--echo", action="append", default=[])
    ap.add_argument("--badproxy", action="append", default=[])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--logdir", required=True)
    a = ap.parse_args()

    www_log = Log(f"{a.logdir}/www.log")
    echo_log = Log(f"{a.logdir}/echo.log")
    bad_log = Log(f"{a.logdir}/badproxy.log")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(a.cert, a.key)

    servers = []

    async def tcp(addr, port, handler, **kw):
        servers.append(await asyncio.start_server(handler, sock=listen_sock(addr, port, socket.SOCK_STREAM),
                                                  limit=BUF_LIMIT, **kw))

    loop = asyncio.get_running_loop()
    for addr in a.www:
        await tcp(addr, 80, lambda r, w: http_conn(r, w, www_log, "http"))
        await tcp(addr, 443, lambda r, w: http_conn(r, w, www_log, "https"), ssl=tls)
    for addr in a.echo:
        await tcp(addr, 7, lambda r, w: echo_conn(r, w, echo_log))
        await tcp(addr, 9, lambda r, w: halfclose_conn(r, w, echo_log))
        await loop.create_datagram_endpoint(lambda: UdpEcho(echo_log),
                                            sock=listen_sock(addr, 7, socket.SOCK_DGRAM))
    for addr in a.badproxy:
        for port, mode in ((3140, "close"), (3141, "garbage"), (3142, "silent")):
            await tcp(addr, port, lambda r, w, m=mode: badproxy_conn(r, w, bad_log, m))
    print("labsrv: listening", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
