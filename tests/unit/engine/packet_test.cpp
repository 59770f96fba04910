// Packet codec: builders and parser agree, checksums verify, malformed and
// fragmented frames are rejected, sequence arithmetic survives the wrap.
#include "engine/packet.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/tcp_seq.hpp"

using namespace cf;
using namespace cf::packet;

namespace {

const Mac kA{2, 0, 0, 0, 0, 1};
const Mac kB{2, 0, 0, 0, 0, 2};
IpAddr ip(const char* s) { return *IpAddr::parse(s); }

// One's-complement sum over pseudo header + L4 must fold to 0 when valid.
bool l4_checksum_ok(const std::vector<uint8_t>& f, const Parsed& p) {
  uint32_t sum = pseudo_header_sum(p.src, p.dst, p.proto, p.l4_len);
  if (p.proto == kProtoIcmp) sum = 0;
  return csum_fold(csum_partial(f.data() + p.l4_off, p.l4_len, sum)) == 0;
}

std::vector<uint8_t> buffer() { return std::vector<uint8_t>(kFrameMax); }

}  // namespace

TEST(Checksum, Rfc1071Example) {
  // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2, checksum 220d.
  const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  uint16_t c = csum_fold(csum_partial(data, sizeof data, 0));
  EXPECT_EQ(c, 0x220d);
}

TEST(Checksum, OddLengthAndChaining) {
  const uint8_t data[] = {0x45, 0x00, 0x00, 0x1c, 0xab};
  uint32_t whole = csum_partial(data, 5, 0);
  uint32_t chained = csum_partial(data + 4, 1, csum_partial(data, 4, 0));
  EXPECT_EQ(csum_fold(whole), csum_fold(chained));
}

TEST(Checksum, EveryLengthAndAlignmentMatchesTheRfc1071Sum) {
  // The reference: 16-bit big-endian words added one by one, carries folded
  // at the end (RFC 1071), against csum_partial's four-way sums.
  std::vector<uint8_t> data(70000);
  uint32_t x = 12345;
  for (auto& b : data) b = uint8_t((x = x * 1103515245 + 12345) >> 16);
  data[100] = data[101] = 0xff;  // runs of ones: carries in every sum
  auto reference = [](const uint8_t* d, size_t n) {
    uint64_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(d[i]) << 8 | d[i + 1];
    if (n % 2) sum += uint32_t(d[n - 1]) << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return uint16_t(~sum);
  };
  for (size_t off : {0, 1, 3, 7}) {
    for (size_t n : {0, 1, 2, 31, 32, 33, 63, 64, 65, 1500, 65535, 65536, 69000}) {
      uint16_t got = csum_fold(csum_partial(data.data() + off, n, 0));
      EXPECT_EQ(got, reference(data.data() + off, n))
          << "offset " << off << ", length " << n;
    }
  }
}

TEST(Packet, TcpSynRoundTripV4) {
  auto f = buffer();
  TcpSeg s{ip("203.0.113.10"), ip("10.240.0.2"), 80, 40000, 0xfffffff0u, 12345,
           kSyn | kAck, 65535, 65480, 7};
  size_t n = build_tcp(f.data(), kA, kB, s, 0);
  ASSERT_GT(n, 0u);
  f.resize(n);
  Parsed p;
  ASSERT_TRUE(parse(f, &p));
  EXPECT_EQ(p.kind, Kind::Ip);
  EXPECT_EQ(p.proto, kProtoTcp);
  EXPECT_EQ(p.src, s.src);
  EXPECT_EQ(p.dst, s.dst);
  EXPECT_EQ(p.sport, 80);
  EXPECT_EQ(p.dport, 40000);
  EXPECT_EQ(p.seq, 0xfffffff0u);
  EXPECT_EQ(p.ack, 12345u);
  EXPECT_EQ(p.flags, kSyn | kAck);
  EXPECT_EQ(p.opts.mss, 65480);
  EXPECT_EQ(p.opts.wscale, 7);
  EXPECT_EQ(p.payload_len, 0u);
  EXPECT_TRUE(l4_checksum_ok(f, p));
  // IPv4 header checksum.
  EXPECT_EQ(csum_fold(csum_partial(f.data() + kEthHdr, 20, 0)), 0);
}

TEST(Packet, TcpDataRoundTripV6) {
  auto f = buffer();
  size_t off = payload_offset(Family::V6, kProtoTcp);
  for (size_t i = 0; i < 1001; ++i) f[off + i] = uint8_t(i * 7);
  TcpSeg s{ip("2001:db8:2::10"), ip("fd42::2"), 443, 50000, 1, 2, kAck | kPsh, 512};
  size_t n = build_tcp(f.data(), kA, kB, s, 1001);
  f.resize(n);
  Parsed p;
  ASSERT_TRUE(parse(f, &p));
  EXPECT_EQ(p.payload_len, 1001u);
  EXPECT_EQ(p.payload_off, off);
  EXPECT_EQ(f[p.payload_off + 1000], uint8_t(1000 * 7));
  EXPECT_TRUE(l4_checksum_ok(f, p));
}

TEST(Packet, UdpAndIcmpRoundTrip) {
  for (const char* pair : {"v4", "v6"}) {
    bool v4 = std::string(pair) == "v4";
    IpAddr src = v4 ? ip("203.0.113.20") : ip("2001:db8:2::20");
    IpAddr dst = v4 ? ip("10.240.0.2") : ip("fd42::2");
    auto f = buffer();
    size_t off = payload_offset(src.family, kProtoUdp);
    std::memcpy(f.data() + off, "hello", 5);
    f.resize(build_udp(f.data(), kA, kB, src, 7, dst, 33000, 5));
    Parsed p;
    ASSERT_TRUE(parse(f, &p));
    EXPECT_EQ(p.proto, kProtoUdp);
    EXPECT_EQ(p.payload_len, 5u);
    EXPECT_TRUE(l4_checksum_ok(f, p)) << pair;

    auto g = buffer();
    const uint8_t data[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    g.resize(build_icmp_echo(g.data(), kA, kB, src, dst, true, 0x1234, 7, data));
    ASSERT_TRUE(parse(g, &p));
    EXPECT_EQ(p.icmp_type, v4 ? icmp4::kEchoReply : icmp6::kEchoReply);
    EXPECT_EQ(p.icmp_id, 0x1234);
    EXPECT_EQ(p.icmp_seq, 7);
    EXPECT_EQ(p.payload_len, sizeof data);
    EXPECT_TRUE(l4_checksum_ok(g, p)) << pair;
  }
}

TEST(Packet, IcmpErrorQuotesAndCaps) {
  auto quoted = std::vector<uint8_t>(2000, 0xab);
  auto f = buffer();
  f.resize(build_icmp_error(f.data(), kA, kB, ip("198.51.100.1"), ip("10.240.0.2"),
                            icmp4::kTimeExceeded, 0, quoted));
  Parsed p;
  ASSERT_TRUE(parse(f, &p));
  EXPECT_EQ(p.icmp_type, icmp4::kTimeExceeded);
  EXPECT_EQ(p.l4_len, 8u + 548u);  // capped to fit 576-byte datagrams
  EXPECT_TRUE(l4_checksum_ok(f, p));
}

TEST(Packet, RejectsMalformed) {
  auto f = buffer();
  TcpSeg s{ip("203.0.113.10"), ip("10.240.0.2"), 80, 40000, 1, 2, kAck, 100};
  f.resize(build_tcp(f.data(), kA, kB, s, 0));
  Parsed p;
  // Truncated below the IPv4 total length.
  std::vector<uint8_t> cut(f.begin(), f.end() - 1);
  EXPECT_FALSE(parse(cut, &p));
  // IHL below 5.
  auto bad = f;
  bad[kEthHdr] = 0x44;
  EXPECT_FALSE(parse(bad, &p));
  // TCP data offset past the segment.
  bad = f;
  bad[kEthHdr + 20 + 12] = 0xf0;
  EXPECT_FALSE(parse(bad, &p));
  // Too short for Ethernet.
  EXPECT_FALSE(parse(std::span<const uint8_t>(f.data(), 10), &p));
  // Unknown ethertype.
  bad = f;
  bad[12] = 0x12;
  EXPECT_FALSE(parse(bad, &p));
}

TEST(Packet, FragmentsAreReported) {
  auto f = buffer();
  f.resize(build_udp(f.data(), kA, kB, ip("10.240.0.2"), 1, ip("203.0.113.20"), 7, 0));
  f[kEthHdr + 6] = 0x20;  // MF
  Parsed p;
  ASSERT_TRUE(parse(f, &p));
  EXPECT_EQ(p.kind, Kind::Fragment);
  // IPv6 with a fragment header after hop-by-hop.
  std::vector<uint8_t> v6(kEthHdr + 40 + 8 + 8 + 8, 0);
  v6[12] = 0x86;
  v6[13] = 0xdd;
  v6[kEthHdr] = 0x60;
  v6[kEthHdr + 5] = 24;  // payload length
  v6[kEthHdr + 6] = 0;   // hop-by-hop
  v6[kEthHdr + 40] = 44;  // next: fragment
  v6[kEthHdr + 48] = 17;
  ASSERT_TRUE(parse(v6, &p));
  EXPECT_EQ(p.kind, Kind::Fragment);
}

TEST(Packet, ArpRequest) {
  std::vector<uint8_t> f(kEthHdr + 28, 0);
  f[12] = 0x08;
  f[13] = 0x06;
  uint8_t* a = f.data() + kEthHdr;
  a[1] = 1;
  a[2] = 0x08;
  a[4] = 6;
  a[5] = 4;
  a[7] = 1;
  std::memcpy(a + 8, kB.data(), 6);
  const uint8_t sip[] = {10, 240, 0, 2}, tip[] = {10, 240, 0, 1};
  std::memcpy(a + 14, sip, 4);
  std::memcpy(a + 24, tip, 4);
  Parsed p;
  ASSERT_TRUE(parse(f, &p));
  EXPECT_EQ(p.kind, Kind::Arp);
  EXPECT_EQ(p.arp_op, 1);
  EXPECT_EQ(p.arp_target_ip, ip("10.240.0.1"));
  auto r = buffer();
  r.resize(build_arp_reply(r.data(), kA, ip("10.240.0.1"), kB, ip("10.240.0.2")));
  ASSERT_TRUE(parse(r, &p));
  EXPECT_EQ(p.arp_op, 2);
  EXPECT_EQ(p.arp_sender_mac, kA);
}

TEST(TcpSeq, SerialArithmeticAcrossTheWrap) {
  using cf::engine::seq_gt;
  using cf::engine::seq_le;
  using cf::engine::seq_lt;
  EXPECT_TRUE(seq_lt(0xfffffff0u, 0x10u));
  EXPECT_FALSE(seq_lt(0x10u, 0xfffffff0u));
  EXPECT_TRUE(seq_gt(0x5u, 0xffffff00u));
  EXPECT_TRUE(seq_le(7u, 7u));
  EXPECT_FALSE(seq_lt(7u, 7u));
  // In-window check used for ACKs: snd_una < ack <= snd_nxt across the wrap.
  uint32_t una = 0xffffff00u, nxt = una + 0x200;  // wraps to 0x100
  EXPECT_TRUE(seq_lt(una, 0x50u) && seq_le(0x50u, nxt));
  EXPECT_FALSE(seq_le(0x101u, nxt));
  EXPECT_EQ(uint32_t(0x50u - una), 0x150u);  // bytes acked
}
