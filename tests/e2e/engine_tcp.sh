#!/usr/bin/env bash
# Engine TCP end to end, as root and as the unprivileged lab user:
# - curl over HTTP by name, IPv4 and IPv6;
# - a refused port: curl exit 7 at once, ECONNREFUSED for a socket;
# - an unreachable network (the lab router's `unreachable` routes): the same
#   curl exit code and errno inside the tree as natively from the lab host;
# - a silent destination (blackhole route) times out rather than failing fast;
# - a half-closed connection: the server replies after the client's FIN;
# - 500 concurrent connections, all open at the same time, every response
#   checked.
set -euo pipefail
source "${CHILDFLOW_SOURCE_DIR:-$(dirname "$0")/../..}/tests/e2e/lib_engine.sh"
engine_up

# connect_errno.py HOST PORT TIMEOUT: prints "connected" or the errno name.
connect_py=$(engine_py connect_errno.py <<'EOF'
import errno, socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(timeout)
try:
    s.connect((host, port))
    print("connected")
except socket.timeout:
    print("TIMEOUT")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
EOF
)

# halfclose.py HOST PORT PAYLOAD: sends PAYLOAD, shuts down its sending side,
# then reads until the server closes; prints what it read.
halfclose_py=$(engine_py halfclose.py <<'EOF'
import socket, sys
host, port, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
s = socket.create_connection((host, port), timeout=10)
s.sendall(payload)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    got += chunk
sys.stdout.write(got.decode(errors="replace"))
EOF
)

# many_conns.py HOST N: opens N connections to HOST:80 and holds them all
# open (a barrier), only then sends one request on each and reads every
# response. Prints "open=N ok=M" and the first few errors.
many_conns_py=$(engine_py many_conns.py <<'EOF'
import asyncio, sys
host, n = sys.argv[1], int(sys.argv[2])
async def main():
    async def connect():
        return await asyncio.wait_for(asyncio.open_connection(host, 80), 30)
    conns = await asyncio.gather(*(connect() for _ in range(n)), return_exceptions=True)
    opened = [c for c in conns if not isinstance(c, BaseException)]
    errors = [repr(c) for c in conns if isinstance(c, BaseException)]
    # Every connection is established before any request is sent.
    async def fetch(i, reader, writer):
        writer.write(f"GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return data
    results = await asyncio.gather(*(fetch(i, r, w) for i, (r, w) in enumerate(opened)), return_exceptions=True)
    good = 0
    for r in results:
        if isinstance(r, BaseException):
            errors.append(repr(r))
        elif r.startswith(b"HTTP/1.1 200") and b"childflow lab www" in r:
            good += 1
        else:
            errors.append("bad response: " + repr(r[:80]))
    print(f"open={len(opened)} ok={good}")
    for e in errors[:5]:
        print("error:", e)
asyncio.run(main())
EOF
)

# Native behaviour from the lab host, which childflow must reproduce.
native_refused=$(lab_root "$ENGINE_PY" "$connect_py" "$LAB_WWW4" 81 5)
native_unreach4=$(lab_root "$ENGINE_PY" "$connect_py" "$LAB_UNREACH4" 80 10)
native_unreach6=$(lab_root "$ENGINE_PY" "$connect_py" "$LAB_UNREACH6" 80 10)
native_curl_unreach4=0
lab_root curl -sS --max-time 10 "http://$LAB_UNREACH4/" >/dev/null 2>&1 || native_curl_unreach4=$?
native_curl_unreach6=0
lab_root curl -sS --max-time 10 "http://[$LAB_UNREACH6]/" >/dev/null 2>&1 || native_curl_unreach6=$?
echo "# native from the lab host: refused=$native_refused unreach4=$native_unreach4 (curl $native_curl_unreach4)" \
  "unreach6=$native_unreach6 (curl $native_curl_unreach6)"

for who in "${ENGINE_WHO[@]}"; do
  # HTTP by name over each family.
  for fam in 4 6; do
    rc=0
    out=$(cf "$who" -- curl -sS -"$fam" --max-time 10 http://www.example.test/ 2>&1) || rc=$?
    check_eq 0 "$rc" "[$who] curl -$fam http://www.example.test/ exits 0 (output: ${out:0:300})"
    check_contains "$out" "childflow lab www" "[$who] curl -$fam by name gets the page"
  done
  www=$(cat "$LAB_WWW_LOG")
  check_contains "$www" "www http $LAB_HOST4 " "[$who] the server saw the IPv4 connection from the lab host"
  check_contains "$www" "www http $LAB_HOST6 " "[$who] the server saw the IPv6 connection from the lab host"

  # A refused port: curl exit 7 quickly, and the errno the socket sees.
  t0=$(now_s)
  rc=0
  out=$(cf "$who" -- curl -sS --max-time $((10 * ${ENGINE_TIME_SCALE:-1})) "http://$LAB_WWW4:81/" 2>&1) || rc=$?
  took=$(elapsed_s "$t0")
  check_eq 7 "$rc" "[$who] curl to a refused port exits 7 (output: $out)"
  check_contains "$out" "Couldn't connect" "[$who] curl says it could not connect to the refused port"
  # (A timeout would take curl's 10 s; an emulated guest sets ENGINE_TIME_SCALE.)
  check_le "$took" $((5 * ${ENGINE_TIME_SCALE:-1})) "[$who] the refusal arrives at once, not after a timeout"
  for dst in "$LAB_WWW4" "$LAB_WWW6"; do
    out=$(cf "$who" -- "$ENGINE_PY" "$connect_py" "$dst" 81 5 2>&1) || true
    check_eq "$native_refused" "$out" "[$who] connect to $dst:81 fails with $native_refused as natively"
  done

  # An unreachable network: the router answers ICMP unreachable.
  rc=0
  out=$(cf "$who" -- curl -sS --max-time 10 "http://$LAB_UNREACH4/" 2>&1) || rc=$?
  check_eq "$native_curl_unreach4" "$rc" "[$who] curl to unreachable $LAB_UNREACH4 exits as natively (output: $out)"
  out=$(cf "$who" -- "$ENGINE_PY" "$connect_py" "$LAB_UNREACH4" 80 10 2>&1) || true
  check_eq "$native_unreach4" "$out" "[$who] connect to unreachable $LAB_UNREACH4 fails with the native errno"
  rc=0
  out=$(cf "$who" -- curl -sS --max-time 10 "http://[$LAB_UNREACH6]/" 2>&1) || rc=$?
  check_eq "$native_curl_unreach6" "$rc" "[$who] curl to unreachable $LAB_UNREACH6 exits as natively (output: $out)"
  out=$(cf "$who" -- "$ENGINE_PY" "$connect_py" "$LAB_UNREACH6" 80 10 2>&1) || true
  check_eq "$native_unreach6" "$out" "[$who] connect to unreachable $LAB_UNREACH6 fails with the native errno"

  # A destination that never answers times out in the child (not refused).
  rc=0
  out=$(cf "$who" -- curl -sS --connect-timeout 3 "http://$LAB_BLACKHOLE4/" 2>&1) || rc=$?
  check_eq 28 "$rc" "[$who] curl to a blackholed address times out (exit 28; output: $out)"

  # Half close: the server answers only after our FIN, over each family.
  for dst in "$LAB_ECHO4" "$LAB_ECHO6"; do
    out=$(cf "$who" -- "$ENGINE_PY" "$halfclose_py" "$dst" 9 "half-closed-$who" 2>&1) || true
    n=${#who}
    check_eq "got $((12 + n)) bytes" "$out" "[$who] half-close server at $dst answered after the client's FIN"
  done

  # 500 concurrent connections.
  before=$(grep -c "www http $LAB_HOST4 .* accept" "$LAB_WWW_LOG" || true)
  t0=$(now_s)
  out=$(CF_TIMEOUT=$((90 * ${ENGINE_TIME_SCALE:-1})) cf "$who" -- "$ENGINE_PY" "$many_conns_py" "$LAB_WWW4" 500 2>&1) || true
  took=$(elapsed_s "$t0")
  check_contains "$out" "open=500 ok=500" "[$who] 500 concurrent connections all opened and answered (${took}s)"
  after=$(grep -c "www http $LAB_HOST4 .* accept" "$LAB_WWW_LOG" || true)
  check_eq 500 "$((after - before))" "[$who] the server accepted 500 new connections"
done

engine_finish
