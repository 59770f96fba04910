// libFuzzer target for the parser of the SOCKS5 reply to CONNECT
// (parse_socks_reply, src/proxy/reply.hpp).
//
// Every input is what the SOCKS5 server sent after our CONNECT request. The
// reply is checked against the contract Handshake::advance relies on: it
// never claims more bytes than it was given, an incomplete reply asks for
// more than it had and at most kMaxSocksReply, a complete one is exactly
// 4 + address + 2 bytes of its address type, bytes after it change nothing,
// reading it the way advance() does (5 bytes, then the length they give)
// reaches the same verdict, parsing is deterministic, errors are one line of
// printable ASCII, and only version 5 with reply code 0 accepts the tunnel. A
// broken invariant aborts, which libFuzzer reports.
//
// Run: `make fuzz` (scripts/fuzz.sh), or build with the `fuzz` preset, then
//   build/fuzz/fuzz_socks5 -max_total_time=60 build/fuzz/corpus-socks5 tests/fuzz/corpus/socks5
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "fuzz_check.hpp"
#include "proxy/reply.hpp"

namespace {

using cf::proxy::Reply;

using cf::fuzz::check;
using cf::fuzz::printable_line;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> got(data, size);
  Reply r = cf::proxy::parse_socks_reply(got);
  check(r == cf::proxy::parse_socks_reply(got));

  if (r.kind == Reply::Kind::NeedMore) {
    check(r.length > size && r.length <= cf::proxy::kMaxSocksReply && r.error.empty());
    check(size >= 5 || r.length == 5);
    return 0;
  }
  check(size >= 5 && r.length <= size);
  if (r.kind == Reply::Kind::Failed) {
    check(r.error.rfind("proxy: ", 0) == 0 && printable_line(r.error));
  } else {
    check(r.error.empty() && data[0] == 5 && data[1] == 0);
  }
  if (r.length == 0) {  // refused on its first 5 bytes: version or address type
    check(r.kind == Reply::Kind::Failed);
    check(data[0] != 5 || (data[3] != 1 && data[3] != 3 && data[3] != 4));
    return 0;
  }
  size_t alen = data[3] == 1 ? 4 : data[3] == 4 ? 16 : 1 + size_t(data[4]);
  check(data[0] == 5 && (data[3] == 1 || data[3] == 3 || data[3] == 4));
  check(r.length == 4 + alen + 2);
  // Bytes after the reply belong to the tunnel; advance() peeks at 5 bytes,
  // then takes the length they give.
  check(cf::proxy::parse_socks_reply(got.first(r.length)) == r);
  Reply head = cf::proxy::parse_socks_reply(got.first(5));
  check(head.kind == Reply::Kind::NeedMore && head.length == r.length);
  check(cf::proxy::parse_socks_reply(got.first(r.length - 1)).kind == Reply::Kind::NeedMore);
  return 0;
}
