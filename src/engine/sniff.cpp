// Names in the first bytes of a TCP connection; see sniff.hpp.
//
// Theory of operation. The first byte tells the two grammars apart: 0x16 (a
// TLS handshake record) is TLS, anything else is HTTP/1 if it parses as a
// request line. Both parsers only read; they never assume that what they
// were given is complete, and say NeedMore while the bytes are still a
// prefix of what they look for, so tcp.cpp can call them again with more.
//
// TLS (RFC 8446 4.1.2, RFC 6066 3). The ClientHello is the first handshake
// message, possibly cut over several handshake records (RFC 8446 5.1 allows
// it): the fragments are read record by record, in place when the first
// record holds the whole message, else copied into `scratch`. Then
// legacy_version, random, session_id, cipher_suites, compression_methods
// and the extensions, each length checked against what holds it; in
// server_name, the one host_name. A second server_name extension or a
// second host_name is Malformed (RFC 6066 forbids both; servers differ in
// which one they would use). A ClientHello without extensions, or without
// server_name, has no name. encrypted_client_hello (0xfe0d) is noted: its
// server_name is the outer, public one.
//
// HTTP/1 (RFC 9112 2.2, 3, 5). Empty lines before the request line are
// skipped (servers must accept one). The request line is a method token,
// spaces, a target, spaces, `HTTP/<digits>.<digits>`, optional spaces and
// CRLF or LF, with the leniency of common servers (several spaces or tabs,
// LF alone). A first line that cannot become that is Other: the bytes are
// not HTTP/1, and a server that speaks HTTP/1 would refuse them. A version
// other than 1.x is Other too (`PRI * HTTP/2.0`, h2c with prior knowledge:
// its names are in HPACK, never read here). Then header lines up to the
// empty line: a line that starts with white space (obs-fold), a field name
// that is not a token or is followed by white space before the colon, or a
// second Host is Malformed (servers answer 400, RFC 9112 3.2, 5.1, 5.2; one
// that did not could read the name differently from us). Names: the Host
// value, and the authority of an absolute-form target or of CONNECT's
// authority-form target (RFC 9112 3.2.2 makes the target win over Host, but
// a server that got that wrong would use Host, so both are judged).
#include "engine/sniff.hpp"

#include <algorithm>
#include <cstring>

#include "common/addr.hpp"

namespace cf::engine::sniff {

namespace {

constexpr uint8_t kRecordHandshake = 22;
constexpr uint8_t kClientHello = 1;
constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtEch = 0xfe0d;
constexpr size_t kMaxRecord = 16384;  // TLSPlaintext.length (RFC 8446 5.1)

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be24(const uint8_t* p) { return uint32_t(p[0]) << 16 | uint32_t(p[1]) << 8 | p[2]; }

// A bounds-checked cursor over one ClientHello.
struct Cursor {
  const uint8_t* p;
  size_t n;
  size_t off = 0;
  bool ok = true;
  size_t left() const { return n - off; }
  bool need(size_t k) {
    if (!ok || left() < k) ok = false;
    return ok;
  }
  uint8_t u8() { return need(1) ? p[off++] : 0; }
  uint16_t u16() {
    if (!need(2)) return 0;
    off += 2;
    return be16(p + off - 2);
  }
  const uint8_t* take(size_t k) {
    if (!need(k)) return nullptr;
    off += k;
    return p + off - k;
  }
};

Result malformed(Proto proto) {
  Result r;
  r.verdict = Verdict::Malformed;
  r.proto = proto;
  return r;
}

// One complete ClientHello body (after the 4-byte handshake header).
Result client_hello(const uint8_t* body, size_t len) {
  Result r;
  r.proto = Proto::Tls;
  Cursor c{body, len};
  uint16_t version = c.u16();
  c.take(32);  // random
  uint8_t sid = c.u8();
  if (sid > 32) return malformed(Proto::Tls);
  c.take(sid);
  uint16_t suites = c.u16();
  if (suites < 2 || suites % 2) return malformed(Proto::Tls);
  c.take(suites);
  uint8_t comp = c.u8();
  if (comp < 1) return malformed(Proto::Tls);
  c.take(comp);
  if (!c.ok || (version >> 8) != 3) return malformed(Proto::Tls);
  r.verdict = Verdict::Names;
  if (c.left() == 0) return r;  // no extensions: no name
  uint16_t ext_len = c.u16();
  if (!c.ok || ext_len != c.left()) return malformed(Proto::Tls);
  bool seen_sni = false;
  while (c.left() > 0) {
    uint16_t type = c.u16();
    uint16_t elen = c.u16();
    const uint8_t* e = c.take(elen);
    if (!c.ok) return malformed(Proto::Tls);
    if (type == kExtEch) r.ech = true;
    if (type != kExtServerName) continue;
    if (seen_sni) return malformed(Proto::Tls);
    seen_sni = true;
    if (elen == 0) continue;  // a server's empty server_name (not sent by clients)
    Cursor l{e, elen};
    uint16_t list_len = l.u16();
    if (!l.ok || list_len != l.left() || list_len == 0) return malformed(Proto::Tls);
    while (l.left() > 0) {
      uint8_t name_type = l.u8();
      uint16_t nlen = l.u16();
      const uint8_t* nm = l.take(nlen);
      if (!l.ok) return malformed(Proto::Tls);
      if (name_type != 0) continue;  // only host_name is defined
      if (r.n_names || nlen == 0) return malformed(Proto::Tls);
      r.names[r.n_names++] = {{reinterpret_cast<const char*>(nm), nlen}, Source::TlsSni};
    }
  }
  return r;
}

// Bytes that start with a TLS record header (0x16 0x03 ...).
Result tls(std::span<const uint8_t> b, std::span<uint8_t> scratch) {
  Result more;
  more.proto = Proto::Tls;
  size_t off = 0, got = 0, need = 0;
  const uint8_t* msg = nullptr;  // the message, once it is complete
  for (;;) {
    size_t have = b.size() - off;
    // The record header, as far as it came: type, version 3.x.
    if (have >= 1 && b[off] != kRecordHandshake) return malformed(Proto::Tls);
    if (have >= 2 && b[off + 1] != 3) return malformed(Proto::Tls);
    if (have < 5) return more;
    size_t rlen = be16(b.data() + off + 3);
    if (rlen == 0 || rlen > kMaxRecord) return malformed(Proto::Tls);
    if (have - 5 < rlen) return more;  // a server reads whole records only
    const uint8_t* frag = b.data() + off + 5;
    if (off == 0 && rlen >= 4) {
      need = 4 + size_t(be24(frag + 1));
      if (frag[0] != kClientHello) return malformed(Proto::Tls);
      if (need <= rlen) {
        msg = frag;
        break;
      }
    }
    if (scratch.size() < kMax) return malformed(Proto::Tls);
    size_t take = std::min(rlen, kMax - got);
    std::memcpy(scratch.data() + got, frag, take);
    got += take;
    off += 5 + rlen;
    if (need == 0 && got >= 4) {
      if (scratch[0] != kClientHello) return malformed(Proto::Tls);
      need = 4 + size_t(be24(scratch.data() + 1));
    }
    if (need > kMax) return malformed(Proto::Tls);  // larger than we judge
    if (need && got >= need) {
      msg = scratch.data();
      break;
    }
    if (got >= kMax) return malformed(Proto::Tls);
  }
  return client_hello(msg + 4, need - 4);
}

bool is_tchar(uint8_t c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != 0;
}
bool is_ws(uint8_t c) { return c == ' ' || c == '\t'; }
bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = char(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = char(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// The request line `line` (without its LF; maybe cut short when !complete)
// as far as it goes. Other when it cannot be an HTTP/1 request line.
struct RequestLine {
  Verdict v = Verdict::NeedMore;
  std::string_view method, target;
  bool http1 = false;
};

RequestLine request_line(std::string_view line, bool complete) {
  RequestLine r;
  auto other = [&] {
    r.v = Verdict::Other;
    return r;
  };
  // The CR of the line's CRLF (or, while the line is cut short, the CR that
  // may turn out to be one).
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t i = 0, n = line.size();
  auto u = [&](size_t k) { return uint8_t(line[k]); };
  while (i < n && is_tchar(u(i))) ++i;
  if (i > 32) return other();
  r.method = line.substr(0, i);
  if (i == n) return complete ? other() : r;
  if (i == 0 || !is_ws(u(i))) return other();
  while (i < n && is_ws(u(i))) ++i;
  size_t t0 = i;
  while (i < n && u(i) > 0x20 && u(i) != 0x7f) ++i;
  r.target = line.substr(t0, i - t0);
  if (i == n) return complete ? other() : r;
  if (i == t0 || !is_ws(u(i))) return other();
  while (i < n && is_ws(u(i))) ++i;
  // HTTP/<digits>.<digits>, as far as it came.
  static constexpr std::string_view kHttp = "HTTP/";
  for (size_t k = 0; k < kHttp.size(); ++k, ++i) {
    if (i == n) return complete ? other() : r;
    if (line[i] != kHttp[k]) return other();
  }
  size_t maj0 = i;
  while (i < n && is_digit(u(i))) ++i;
  if (i == n) return complete ? other() : r;
  if (i == maj0 || i - maj0 > 3 || line[i] != '.') return other();
  std::string_view major = line.substr(maj0, i - maj0);
  ++i;
  size_t min0 = i;
  while (i < n && is_digit(u(i))) ++i;
  if (i - min0 > 3) return other();
  if (i == min0) return complete || i < n ? other() : r;
  while (i < n && is_ws(u(i))) ++i;
  if (i < n) return other();
  if (!complete) return r;
  int major_num = 0;
  for (char c : major) major_num = major_num * 10 + (c - '0');
  if (major_num != 1) return other();  // not HTTP/1.x (h2c prior knowledge: PRI * HTTP/2.0)
  r.http1 = true;
  r.v = Verdict::Names;
  return r;
}

// The host of an authority ("user@host:port"), or of an absolute-form
// target's authority; empty when the target has none.
std::string_view target_host(std::string_view method, std::string_view target) {
  if (method == "CONNECT") return target;  // authority-form: host:port
  size_t s = target.find("://");
  if (s == std::string_view::npos || s == 0) return {};
  for (size_t k = 0; k < s; ++k) {
    char c = target[k];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!(alpha || (k > 0 && (is_digit(uint8_t(c)) || c == '+' || c == '-' || c == '.'))))
      return {};
  }
  std::string_view auth = target.substr(s + 3);
  auth = auth.substr(0, auth.find_first_of("/?#"));
  if (size_t at = auth.rfind('@'); at != std::string_view::npos) auth.remove_prefix(at + 1);
  return auth;
}

Result http(std::span<const uint8_t> b) {
  std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
  size_t i = 0;
  while (i < s.size() && (s[i] == '\r' || s[i] == '\n')) ++i;
  Result r;
  r.proto = Proto::Http;
  if (i == s.size()) return r;  // only empty lines so far
  size_t eol = s.find('\n', i);
  RequestLine rl = request_line(s.substr(i, eol == std::string_view::npos ? std::string_view::npos
                                                                          : eol - i),
                                eol != std::string_view::npos);
  if (rl.v == Verdict::Other) {
    r.proto = Proto::None;
    r.verdict = Verdict::Other;
    return r;
  }
  if (rl.v == Verdict::NeedMore) return r;
  std::string_view host;
  bool have_host = false;
  size_t pos = eol + 1;
  for (;;) {
    size_t e = s.find('\n', pos);
    if (e == std::string_view::npos) return r;  // the head is not complete
    std::string_view line = s.substr(pos, e - pos);
    pos = e + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;
    if (is_ws(uint8_t(line[0]))) return malformed(Proto::Http);  // obs-fold
    size_t k = 0;
    while (k < line.size() && is_tchar(uint8_t(line[k]))) ++k;
    if (k == 0 || k == line.size() || line[k] != ':') return malformed(Proto::Http);
    if (!ieq(line.substr(0, k), "host")) continue;
    if (have_host) return malformed(Proto::Http);
    have_host = true;
    std::string_view v = line.substr(k + 1);
    while (!v.empty() && is_ws(uint8_t(v.front()))) v.remove_prefix(1);
    while (!v.empty() && is_ws(uint8_t(v.back()))) v.remove_suffix(1);
    host = v;
  }
  r.verdict = Verdict::Names;
  if (std::string_view t = target_host(rl.method, rl.target); !t.empty())
    r.names[r.n_names++] = {t, Source::HttpTarget};
  if (!host.empty()) r.names[r.n_names++] = {host, Source::HttpHost};
  return r;
}

}  // namespace

const char* name(Source s) {
  switch (s) {
    case Source::TlsSni: return "tls_sni";
    case Source::HttpHost: return "http_host";
    case Source::HttpTarget: return "http_target";
  }
  return "?";
}

Result inspect(std::span<const uint8_t> bytes, std::span<uint8_t> scratch) {
  if (bytes.empty()) return {};
  if (bytes[0] == kRecordHandshake) {
    // 0x16 then 0x03 is TLS; 0x16 then anything else is no protocol we read.
    if (bytes.size() >= 2 && bytes[1] != 3) {
      Result r;
      r.verdict = Verdict::Other;
      return r;
    }
    return tls(bytes, scratch);
  }
  return http(bytes);
}

std::string normalize(const Name& n) {
  std::string_view v = n.raw;
  if (n.source != Source::TlsSni) {
    if (!v.empty() && v.front() == '[') return {};  // an IPv6 literal
    if (size_t c = v.rfind(':'); c != std::string_view::npos) {
      std::string_view port = v.substr(c + 1);
      if (std::all_of(port.begin(), port.end(), [](char x) { return is_digit(uint8_t(x)); }))
        v = v.substr(0, c);
    }
  }
  if (!v.empty() && v.back() == '.') v.remove_suffix(1);
  if (v.empty()) return {};
  if (auto ip = IpAddr::parse(v)) return {};  // an address literal, judged as the address
  std::string out;
  out.reserve(v.size());
  for (char ch : v) {
    auto c = uint8_t(ch);
    if (c >= 'A' && c <= 'Z') {
      out.push_back(char(c - 'A' + 'a'));
    } else if (c < 0x21 || c > 0x7e || c == '\\') {
      char esc[5] = {'\\', char('0' + c / 100), char('0' + c / 10 % 10), char('0' + c % 10), 0};
      out.append(esc, 4);
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

}  // namespace cf::engine::sniff
