// Names in the first bytes of a TCP connection: the TLS ClientHello's
// server_name and the HTTP/1 request's Host (docs/policy.md, "Names the tree
// sends"). Pure functions on byte spans, fuzzed (tests/fuzz/fuzz_sniff.cpp);
// private to src/engine/ (tcp.cpp holds a flow's first bytes until inspect()
// has decided).
//
// inspect() is called with everything the child has sent so far, from the
// first byte, and says whether that is enough to decide:
//   - NeedMore   the bytes are the start of a ClientHello or of an HTTP/1
//                request head that is not complete yet;
//   - Other      they are neither (another protocol, or HTTP/2 with prior
//                knowledge, SSLv2): nothing to judge;
//   - Names      a complete ClientHello or request head; `names` holds what
//                a server would take as the name (0, 1 or 2 of them, raw);
//   - Malformed  they start like TLS or HTTP/1 but break its grammar where a
//                server would refuse them (or read them differently than we
//                would), so no name can be trusted.
// Nothing is allocated; names point into the input (or into `scratch`, where
// a ClientHello cut over several TLS records is put back together).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace cf::engine::sniff {

// The most bytes inspected: a ClientHello or request head that is not
// complete within this many bytes is never judged (the flow is refused).
constexpr size_t kMax = 16 * 1024;

enum class Verdict : uint8_t { NeedMore, Other, Names, Malformed };
enum class Proto : uint8_t { None, Tls, Http };
// Where a name came from (the flow log's `sniffed_from`).
enum class Source : uint8_t { TlsSni, HttpHost, HttpTarget };
const char* name(Source s);  // "tls_sni" | "http_host" | "http_target"

struct Name {
  std::string_view raw;  // as sent: not lowercased, maybe with a port or a trailing dot
  Source source;
};

struct Result {
  Verdict verdict = Verdict::NeedMore;
  Proto proto = Proto::None;
  std::array<Name, 2> names{};
  uint8_t n_names = 0;
  bool ech = false;  // the ClientHello offers Encrypted Client Hello (the name is the outer one)
};

// `scratch` must hold kMax bytes; it is used only for a ClientHello that
// spans several TLS records, and the Result's names may point into it.
Result inspect(std::span<const uint8_t> bytes, std::span<uint8_t> scratch);

// The name as the policy judges it: ASCII lowercase, one trailing dot
// removed, bytes outside '!'..'~' and '\' written as \DDD (as the DNS codec
// does, so a name has one meaning). Empty when there is nothing to judge:
// an empty name, or an IP address literal (IPv4, or IPv6 in brackets, which
// the flow's address was judged as already). A port (":443") is removed
// from HTTP names.
std::string normalize(const Name& n);

}  // namespace cf::engine::sniff
