// The proxy's replies to the handshake, parsed apart from the socket I/O of
// proxy.cpp: the response to HTTP CONNECT (RFC 9110 9.3.6, RFC 9112 4) and
// the SOCKS5 CONNECT reply (RFC 1928 6).
//
// Theory of operation. Handshake::advance peeks at what the proxy sent and
// hands the bytes to a parser here, which says whether the reply is complete
// and, if so, how many bytes it takes: advance() consumes exactly those, so
// whatever the destination sends after the reply stays in the socket for the
// TCP translator. A parser never reads past what it is given, never blocks
// and never throws; its error text is one line of printable ASCII (the bytes
// of a hostile reply are shown as `?`), ready for connect_result and stderr.
// The parsers are fuzzed (tests/fuzz/fuzz_http_connect.cpp, fuzz_socks5.cpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace cf::proxy {

// The CONNECT response's headers are read up to this many bytes.
inline constexpr size_t kMaxHttpReply = 8192;
// The longest SOCKS5 CONNECT reply: 4 + a domain name (1 + 255) + 2.
inline constexpr size_t kMaxSocksReply = 4 + 1 + 255 + 2;

struct Reply {
  enum class Kind : uint8_t {
    NeedMore,  // incomplete: read more (`length`: the bytes needed in all, 0 unknown)
    Done,      // a complete reply that accepts the tunnel
    Failed,    // the proxy refused, or the reply is malformed (`error`)
  };
  Kind kind = Kind::NeedMore;
  // Done and Failed: the bytes the reply takes, to be consumed (at most the
  // bytes given; 0 for a Failed reply whose end is unknown). NeedMore: see
  // above (always more than the bytes given, or 0).
  size_t length = 0;
  std::string error;  // Failed: "proxy: ..."

  friend bool operator==(const Reply&, const Reply&) = default;
};

// The response to CONNECT from its first bytes: complete once the blank line
// ending the headers is there (only the first kMaxHttpReply bytes count;
// none in them: "headers too long"). A status line other than RFC 9112's
// `HTTP/1.<digit> <3 digits>`, then a space (and a reason phrase) or its end,
// is malformed. A 2xx status accepts the tunnel, 401 and 407 say
// authentication failed, any other status refuses it.
Reply parse_http_reply(std::string_view got);

// The SOCKS5 reply to CONNECT from its first bytes: version 5, the reply
// code (0: succeeded), a reserved byte, the bound address (type 1 IPv4,
// 3 a domain name, 4 IPv6) and port. The version and address type are
// checked once 5 bytes are there; NeedMore says how long the reply is.
Reply parse_socks_reply(std::span<const uint8_t> got);

}  // namespace cf::proxy
