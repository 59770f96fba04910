// Parsers of the proxy's replies; see reply.hpp.
#include "proxy/reply.hpp"

#include <fmt/format.h>

namespace cf::proxy {
namespace {

Reply failed(size_t length, std::string error) {
  return Reply{Reply::Kind::Failed, length, std::move(error)};
}

bool digit(char c) { return c >= '0' && c <= '9'; }

// The status code of an RFC 9112 status line, `HTTP/1.<digit> <3 digits>`
// then a space (and the reason phrase) or the end; -1 for anything else.
int status_code(std::string_view line) {
  if (line.size() < 12 || !line.starts_with("HTTP/1.") || !digit(line[7]) || line[8] != ' ')
    return -1;
  if (!digit(line[9]) || !digit(line[10]) || !digit(line[11])) return -1;
  if (line.size() > 12 && line[12] != ' ') return -1;
  return (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
}

const char* socks_reply_text(uint8_t rep) {
  switch (rep) {
    case 1: return "general SOCKS server failure";
    case 2: return "connection not allowed by ruleset";
    case 3: return "network unreachable";
    case 4: return "host unreachable";
    case 5: return "connection refused";
    case 6: return "TTL expired";
    case 7: return "command not supported";
    case 8: return "address type not supported";
    default: return "unknown reply code";
  }
}

}  // namespace

Reply parse_http_reply(std::string_view got) {
  std::string_view text = got.substr(0, kMaxHttpReply);
  size_t end = text.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (text.size() == kMaxHttpReply) return failed(0, "proxy: CONNECT reply headers too long");
    return Reply{};
  }
  // The headers end with the blank line; what follows belongs to the tunnel.
  size_t hdr_len = end + 4;
  std::string status(text.substr(0, text.find("\r\n")));
  int code = status_code(status);
  for (char& ch : status)
    if (uint8_t(ch) < 0x20 || uint8_t(ch) > 0x7e) ch = '?';
  if (code < 0)
    return failed(hdr_len, fmt::format("proxy: not an HTTP reply to CONNECT: {:.80}", status));
  if (code == 407 || code == 401)
    return failed(hdr_len, fmt::format("proxy: authentication failed: {}", status));
  if (code < 200 || code > 299)
    return failed(hdr_len, fmt::format("proxy: CONNECT refused: {}", status));
  return Reply{Reply::Kind::Done, hdr_len, {}};
}

Reply parse_socks_reply(std::span<const uint8_t> got) {
  if (got.size() < 5) return Reply{Reply::Kind::NeedMore, 5, {}};
  if (got[0] != 5) return failed(0, "proxy: not a SOCKS5 reply");
  size_t alen;
  switch (got[3]) {
    case 1: alen = 4; break;
    case 4: alen = 16; break;
    case 3: alen = 1 + size_t(got[4]); break;
    default: return failed(0, "proxy: SOCKS5 reply with an unknown address type");
  }
  size_t len = 4 + alen + 2;
  if (got.size() < len) return Reply{Reply::Kind::NeedMore, len, {}};
  if (got[1] != 0)
    return failed(len, fmt::format("proxy: SOCKS5 CONNECT failed: {}", socks_reply_text(got[1])));
  return Reply{Reply::Kind::Done, len, {}};
}

}  // namespace cf::proxy
