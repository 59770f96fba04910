// Synthetic addresses for --proxy-dns remote; see synth.hpp.
#include "engine/synth.hpp"

#include "common/result.hpp"

namespace cf::engine {

namespace {

constexpr uint32_t kBase4 = 198u << 24 | 18u << 16;  // 198.18.0.0/15
constexpr uint32_t kSize4 = 1u << 17;
// fd63:666c:6f77::/96 ("cflow" in the global ID of a unique local /48).
constexpr uint8_t kPrefix6[12] = {0xfd, 0x63, 0x66, 0x6c, 0x6f, 0x77, 0, 0, 0, 0, 0, 0};

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f'); }

// A label that inet_aton (behind a proxy's getaddrinfo) reads as a number:
// decimal or octal digits, or 0x followed by hex digits.
bool numeric_label(std::string_view l) {
  if (l.size() >= 2 && l[0] == '0' && l[1] == 'x') {
    for (char c : l.substr(2))
      if (!is_hex(c)) return false;
    return true;
  }
  for (char c : l)
    if (!is_digit(c)) return false;
  return !l.empty();
}

}  // namespace

SynthMap::SynthMap(uint32_t cap) : cap_(cap) {
  // Entry i is host 1 + i of the IPv4 range; the last address is kept out.
  CF_CHECK(cap >= 1 && cap <= kSize4 - 2);
}

bool SynthMap::in_range(const IpAddr& ip) {
  if (ip.is_v4()) return (ip.v4_host_order() & ~(kSize4 - 1)) == kBase4;
  for (size_t k = 0; k < sizeof kPrefix6; ++k)
    if (ip.bytes[k] != kPrefix6[k]) return false;
  return true;
}

Cidr SynthMap::range4() { return Cidr{IpAddr::v4(kBase4), 15}; }

Cidr SynthMap::range6() {
  uint8_t b[16] = {};
  for (size_t k = 0; k < sizeof kPrefix6; ++k) b[k] = kPrefix6[k];
  return Cidr{IpAddr::v6_bytes(b), 96};
}

bool SynthMap::nameable(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' || c == '.';
    if (!ok) return false;  // upper case never comes from the codec; \DDD is refused
  }
  if (name.front() == '.' || name.back() == '.' || name.find("..") != std::string_view::npos)
    return false;
  if (name == "localhost" || name.ends_with(".localhost")) return false;  // RFC 6761
  size_t dot = name.rfind('.');
  std::string_view last = dot == std::string_view::npos ? name : name.substr(dot + 1);
  return !numeric_label(last);
}

IpAddr SynthMap::v4(uint32_t i) { return IpAddr::v4(kBase4 + 1 + i); }

IpAddr SynthMap::v6(uint32_t i) {
  uint8_t b[16] = {};
  for (size_t k = 0; k < sizeof kPrefix6; ++k) b[k] = kPrefix6[k];
  uint32_t host = i + 1;
  b[12] = uint8_t(host >> 24);
  b[13] = uint8_t(host >> 16);
  b[14] = uint8_t(host >> 8);
  b[15] = uint8_t(host);
  return IpAddr::v6_bytes(b);
}

std::optional<uint32_t> SynthMap::lookup(const IpAddr& ip) const {
  if (!in_range(ip)) return std::nullopt;
  uint32_t host;
  if (ip.is_v4()) {
    host = ip.v4_host_order() - kBase4;
  } else {
    host = uint32_t(ip.bytes[12]) << 24 | uint32_t(ip.bytes[13]) << 16 |
           uint32_t(ip.bytes[14]) << 8 | ip.bytes[15];
  }
  if (host == 0 || host - 1 >= entries_.size()) return std::nullopt;
  return host - 1;
}

void SynthMap::unlink(uint32_t i) {
  Entry& e = entries_[i];
  if (e.prev != kNone) entries_[e.prev].next = e.next;
  else oldest_ = e.next;
  if (e.next != kNone) entries_[e.next].prev = e.prev;
  else newest_ = e.prev;
  e.prev = e.next = kNone;
}

void SynthMap::link_newest(uint32_t i) {
  Entry& e = entries_[i];
  e.prev = newest_;
  e.next = kNone;
  if (newest_ != kNone) entries_[newest_].next = i;
  else oldest_ = i;
  newest_ = i;
}

std::optional<uint32_t> SynthMap::assign(std::string_view name) {
  if (auto it = by_name_.find(name); it != by_name_.end()) {
    uint32_t i = it->second;
    if (entries_[i].refs == 0) {  // used now: the newest in the recency list
      unlink(i);
      link_newest(i);
    }
    return i;
  }
  uint32_t i;
  if (entries_.size() < cap_) {
    i = uint32_t(entries_.size());
    entries_.emplace_back();
  } else {
    if (oldest_ == kNone) return std::nullopt;  // every entry is held by a flow
    i = oldest_;
    unlink(i);
    by_name_.erase(entries_[i].name);
    ++reused_;
  }
  entries_[i].name.assign(name);
  by_name_.emplace(entries_[i].name, i);
  link_newest(i);
  return i;
}

void SynthMap::hold(uint32_t i) {
  Entry& e = entries_[i];
  if (e.refs++ == 0) unlink(i);
}

void SynthMap::release(uint32_t i) {
  Entry& e = entries_[i];
  CF_CHECK(e.refs > 0);
  if (--e.refs == 0) link_newest(i);
}

}  // namespace cf::engine
