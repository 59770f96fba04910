#include "common/addr.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <charconv>
#include <cstring>
#include <fmt/format.h>

#include "common/bytes.hpp"

namespace cf {

IpAddr IpAddr::v4(uint32_t h) {
  IpAddr a;
  a.family = Family::V4;
  store_be32(a.bytes.data(), h);
  return a;
}

IpAddr IpAddr::v4_bytes(const uint8_t* p) {
  IpAddr a;
  a.family = Family::V4;
  std::memcpy(a.bytes.data(), p, 4);
  return a;
}

IpAddr IpAddr::v6_bytes(const uint8_t* p) {
  IpAddr a;
  a.family = Family::V6;
  std::memcpy(a.bytes.data(), p, 16);
  return a;
}

uint32_t IpAddr::v4_host_order() const {
  return load_be32(bytes.data());
}

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  if (text.empty() || text.size() > 45) return std::nullopt;
  char buf[64];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = 0;
  IpAddr a;
  if (inet_pton(AF_INET, buf, a.bytes.data()) == 1) {
    a.family = Family::V4;
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) {
    a.family = Family::V6;
    return a;
  }
  return std::nullopt;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

std::string format_endpoint(const IpAddr& ip, uint16_t port) {
  return ip.is_v4() ? fmt::format("{}:{}", ip.str(), port)
                    : fmt::format("[{}]:{}", ip.str(), port);
}

unsigned to_sockaddr(const IpAddr& ip, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof *out);
  if (ip.is_v4()) {
    auto* s = reinterpret_cast<sockaddr_in*>(out);
    s->sin_family = AF_INET;
    s->sin_port = htons(port);
    std::memcpy(&s->sin_addr, ip.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* s = reinterpret_cast<sockaddr_in6*>(out);
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  std::memcpy(&s->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

bool from_sockaddr(const sockaddr* sa, IpAddr* ip, uint16_t* port) {
  if (sa->sa_family == AF_INET) {
    auto* s = reinterpret_cast<const sockaddr_in*>(sa);
    *ip = IpAddr::v4_bytes(reinterpret_cast<const uint8_t*>(&s->sin_addr));
    *port = ntohs(s->sin_port);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(sa);
    auto* b = reinterpret_cast<const uint8_t*>(&s->sin6_addr);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    *ip = std::memcmp(b, mapped, 12) == 0 ? IpAddr::v4_bytes(b + 12) : IpAddr::v6_bytes(b);
    *port = ntohs(s->sin6_port);
    return true;
  }
  return false;
}

static bool bit_set(const IpAddr& a, unsigned i) {
  return (a.bytes[i / 8] >> (7 - i % 8)) & 1;
}

Result<Cidr> Cidr::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return Error{
        fmt::format("`{}` is not a CIDR prefix: write ADDRESS/LENGTH, e.g. 10.0.0.0/8", text)};
  auto ip = IpAddr::parse(text.substr(0, slash));
  if (!ip)
    return Error{fmt::format("`{}` is not a CIDR prefix: `{}` is not an IP address", text,
                             text.substr(0, slash))};
  auto len_text = text.substr(slash + 1);
  unsigned len = 0;
  auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  unsigned max = ip->is_v4() ? 32 : 128;
  if (len_text.empty() || ec != std::errc{} || p != len_text.data() + len_text.size() ||
      len > max)
    return Error{
        fmt::format("`{}` is not a CIDR prefix: the length must be 0 to {}", text, max)};
  Cidr c{*ip, uint8_t(len)};
  for (unsigned i = len; i < max; ++i) {
    if (bit_set(*ip, i)) {
      Cidr fixed = c;
      for (unsigned j = len; j < max; ++j) fixed.addr.bytes[j / 8] &= uint8_t(~(0x80 >> (j % 8)));
      return Error{fmt::format("`{}` has host bits set: did you mean {}?", text, fixed.str())};
    }
  }
  return c;
}

bool Cidr::contains(const IpAddr& ip) const {
  if (ip.family != addr.family) return false;
  unsigned full = prefix / 8;
  for (unsigned i = 0; i < full; ++i)
    if (ip.bytes[i] != addr.bytes[i]) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  uint8_t mask = uint8_t(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (addr.bytes[full] & mask);
}

std::string Cidr::str() const { return fmt::format("{}/{}", addr.str(), prefix); }

}  // namespace cf
