// libFuzzer target for the parser of the proxy's response to HTTP CONNECT
// (parse_http_reply, src/proxy/reply.hpp).
//
// Every input is what the proxy sent, as Handshake::advance peeks at it. The
// reply is checked against the contract advance() relies on: it never claims
// more bytes than it was given (nor more than kMaxHttpReply), a complete
// reply ends exactly after the first blank line, bytes after that line do not
// change the verdict, a shorter prefix is incomplete, parsing is
// deterministic, errors are one line of printable ASCII, and a reply accepts
// the tunnel exactly when its status line is an RFC 9112 status line
// (`HTTP/1.<digit> <3 digits>` then a space or the end) with a 2xx code. A
// broken invariant aborts, which libFuzzer reports.
//
// Run: `make fuzz` (scripts/fuzz.sh), or build with the `fuzz` preset, then
//   build/fuzz/fuzz_http_connect -max_total_time=60 build/fuzz/corpus-http_connect \
//     tests/fuzz/corpus/http_connect
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "fuzz_check.hpp"
#include "proxy/reply.hpp"

namespace {

using cf::proxy::Reply;

using cf::fuzz::check;
using cf::fuzz::printable_line;

bool digit(char c) { return c >= '0' && c <= '9'; }

// The oracle: the status line (up to the first CRLF) is well formed and 2xx.
bool status_2xx(std::string_view head) {
  std::string_view line = head.substr(0, head.find("\r\n"));
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || !digit(line[7]) || line[8] != ' ')
    return false;
  if (!digit(line[9]) || !digit(line[10]) || !digit(line[11])) return false;
  if (line.size() > 12 && line[12] != ' ') return false;
  return line[9] == '2';
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view got(reinterpret_cast<const char*>(data), size);
  Reply r = cf::proxy::parse_http_reply(got);
  check(r == cf::proxy::parse_http_reply(got));

  std::string_view seen = got.substr(0, cf::proxy::kMaxHttpReply);
  size_t end = seen.find("\r\n\r\n");
  check(r.length <= seen.size());
  switch (r.kind) {
    case Reply::Kind::NeedMore:
      check(end == std::string_view::npos && size < cf::proxy::kMaxHttpReply);
      check(r.length == 0 && r.error.empty());
      return 0;
    case Reply::Kind::Done:
      check(r.error.empty());
      break;
    case Reply::Kind::Failed:
      check(r.error.rfind("proxy: ", 0) == 0 && printable_line(r.error));
      if (r.length == 0) {  // too long: no blank line in the first 8 KiB
        check(end == std::string_view::npos && seen.size() == cf::proxy::kMaxHttpReply);
        return 0;
      }
      break;
  }
  // Complete: the headers end with the first blank line.
  check(end != std::string_view::npos && r.length == end + 4);
  check((r.kind == Reply::Kind::Done) == status_2xx(seen));
  // What follows the headers belongs to the tunnel and changes nothing; one
  // byte less is not a reply yet.
  check(cf::proxy::parse_http_reply(got.substr(0, r.length)) == r);
  check(cf::proxy::parse_http_reply(got.substr(0, r.length - 1)).kind == Reply::Kind::NeedMore);
  return 0;
}
