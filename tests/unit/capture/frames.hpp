// Test frames for the capture tests, built with a from-scratch checksum
// (independent of the code under test), and full checksum verifiers.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>

#include <cstdint>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "capture/capture.hpp"
#include "common/addr.hpp"
#include "config/config.hpp"

namespace cf::capture::test_frames {

using Bytes = std::vector<uint8_t>;

// A fresh directory, removed with everything in it when the test ends.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/cf_capture_test.XXXXXX";
    const char* d = mkdtemp(tmpl);
    path = d ? d : "";
  }
  ~TempDir() {
    if (!path.empty()) std::filesystem::remove_all(path);
  }
};

// 127.0.0.1:port, for the tests that send on loopback.
inline sockaddr_in loopback4(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A wire-egress Capture (no endpoints to rewrite) into DIR/lo.pcapng, for
// the tests that read loopback with a LinkTap.
inline Result<Capture> wire_capture(const TempDir& dir) {
  Config c;
  c.capture = dir.path + "/lo.pcapng";
  c.capture_point = CapturePoint::WireEgress;
  return Capture::open(c, {});
}


inline IpAddr ip(const char* s) { return *IpAddr::parse(s); }

inline uint32_t sum16(const uint8_t* p, size_t n, uint32_t s = 0) {
  for (size_t i = 0; i + 1 < n; i += 2) s += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) s += uint32_t(p[n - 1] << 8);
  return s;
}
inline uint16_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(s);
}
inline void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

inline uint32_t pseudo(const IpAddr& s, const IpAddr& d, uint8_t proto, size_t len) {
  uint32_t x = sum16(s.bytes.data(), s.size()) + sum16(d.bytes.data(), d.size());
  x += proto;
  x += uint32_t(len >> 16) + uint32_t(len & 0xffff);
  return x;
}

// L4 bodies (checksum field zero; the IP builders fill it in).
inline Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags, const std::string& payload = "") {
  Bytes b(20 + payload.size(), 0);
  put16(&b[0], sport);
  put16(&b[2], dport);
  b[4] = 0x12, b[5] = 0x34, b[6] = 0x56, b[7] = 0x78;  // seq
  b[12] = 5 << 4;
  b[13] = flags;
  put16(&b[14], 64240);
  memcpy(b.data() + 20, payload.data(), payload.size());
  return b;
}
inline Bytes udp(uint16_t sport, uint16_t dport, const Bytes& payload) {
  Bytes b(8 + payload.size(), 0);
  put16(&b[0], sport);
  put16(&b[2], dport);
  put16(&b[4], uint16_t(b.size()));
  memcpy(b.data() + 8, payload.data(), payload.size());
  return b;
}
inline Bytes icmp(uint8_t type, uint8_t code, uint32_t rest, const Bytes& data) {
  Bytes b(8 + data.size(), 0);
  b[0] = type;
  b[1] = code;
  b[4] = uint8_t(rest >> 24), b[5] = uint8_t(rest >> 16), b[6] = uint8_t(rest >> 8),
  b[7] = uint8_t(rest);
  memcpy(b.data() + 8, data.data(), data.size());
  return b;
}

// Checksum offset inside the L4 header, or -1.
inline int csum_off(uint8_t proto) {
  switch (proto) {
    case 6: return 16;
    case 17: return 6;
    case 1:
    case 58: return 2;
    default: return -1;
  }
}

// A bare IPv4 packet (no Ethernet) with correct checksums.
inline Bytes ipv4_packet(const IpAddr& s, const IpAddr& d, uint8_t proto, Bytes l4,
                         bool udp_no_checksum = false) {
  int co = csum_off(proto);
  if (co >= 0 && !(proto == 17 && udp_no_checksum)) {
    uint32_t x = proto == 1 ? 0 : pseudo(s, d, proto, l4.size());
    uint16_t c = uint16_t(~fold(sum16(l4.data(), l4.size(), x)));
    if (proto == 17 && c == 0) c = 0xffff;
    put16(&l4[size_t(co)], c);
  }
  Bytes p(20, 0);
  p[0] = 0x45;
  put16(&p[2], uint16_t(20 + l4.size()));
  put16(&p[4], 0x1234);
  p[6] = 0x40;  // DF
  p[8] = 64;
  p[9] = proto;
  memcpy(&p[12], s.bytes.data(), 4);
  memcpy(&p[16], d.bytes.data(), 4);
  put16(&p[10], uint16_t(~fold(sum16(p.data(), 20))));
  p.insert(p.end(), l4.begin(), l4.end());
  return p;
}

// A bare IPv6 packet; `ext` extension headers (already chained, first next
// header in ext_nh) go between the fixed header and l4.
inline Bytes ipv6_packet(const IpAddr& s, const IpAddr& d, uint8_t proto, Bytes l4,
                         const Bytes& ext = {}, uint8_t ext_nh = 0) {
  int co = csum_off(proto);
  if (co >= 0) {
    uint16_t c = uint16_t(~fold(sum16(l4.data(), l4.size(), pseudo(s, d, proto, l4.size()))));
    if (proto == 17 && c == 0) c = 0xffff;
    put16(&l4[size_t(co)], c);
  }
  Bytes p(40, 0);
  p[0] = 0x60;
  put16(&p[4], uint16_t(ext.size() + l4.size()));
  p[6] = ext.empty() ? proto : ext_nh;
  p[7] = 64;
  memcpy(&p[8], s.bytes.data(), 16);
  memcpy(&p[24], d.bytes.data(), 16);
  p.insert(p.end(), ext.begin(), ext.end());
  p.insert(p.end(), l4.begin(), l4.end());
  return p;
}

inline Bytes eth(const Bytes& packet, bool v6) {
  Bytes f = {0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02, uint8_t(v6 ? 0x86 : 0x08),
             uint8_t(v6 ? 0xdd : 0x00)};
  f.insert(f.end(), packet.begin(), packet.end());
  return f;
}

// Verifiers: recompute over the whole header / message including the stored
// checksum; a correct one sums to 0xffff.
inline bool ipv4_header_ok(const uint8_t* p) {
  size_t ihl = size_t(p[0] & 15) * 4;
  return fold(sum16(p, ihl)) == 0xffff;
}
inline bool l4_ok(const IpAddr& s, const IpAddr& d, uint8_t proto, const uint8_t* l4, size_t len) {
  uint32_t x = (proto == 1) ? 0 : pseudo(s, d, proto, len);
  return fold(sum16(l4, len, x)) == 0xffff;
}
// Verifies the IPv4 packet at p (header + L4 with no extension headers).
inline bool ipv4_all_ok(const uint8_t* p, size_t len) {
  if (!ipv4_header_ok(p)) return false;
  size_t ihl = size_t(p[0] & 15) * 4;
  IpAddr s = IpAddr::v4_bytes(p + 12), d = IpAddr::v4_bytes(p + 16);
  if (p[9] == 17 && get16(p + ihl + 6) == 0) return true;
  return l4_ok(s, d, p[9], p + ihl, len - ihl);
}
inline bool ipv6_l4_ok(const uint8_t* p, size_t l4_off, uint8_t proto, size_t len) {
  IpAddr s = IpAddr::v6_bytes(p + 8), d = IpAddr::v6_bytes(p + 24);
  return l4_ok(s, d, proto, p + l4_off, len - l4_off);
}

}  // namespace cf::capture::test_frames
