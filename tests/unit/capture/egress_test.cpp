// The egress view's rewrite: addresses replaced, every checksum recomputed
// from scratch by the test and found correct.
#include "capture/egress.hpp"

#include <gtest/gtest.h>

#include <random>

#include "frames.hpp"

namespace cf::capture {
namespace {

using namespace test_frames;

const IpAddr kChild4 = ip("10.240.0.2"), kHost4 = ip("198.51.100.2"),
             kRemote4 = ip("203.0.113.10");
const IpAddr kChild6 = ip("fd00:cf::2"), kHost6 = ip("2001:db8:1::2"),
             kRemote6 = ip("2001:db8:2::10");
EgressAddresses addrs(std::optional<IpAddr> c4, std::optional<IpAddr> c6, std::optional<IpAddr> h4,
                      std::optional<IpAddr> h6) {
  EgressAddresses a;
  a.child4 = c4;
  a.child6 = c6;
  a.host4 = h4;
  a.host6 = h6;
  return a;
}
const EgressAddresses kAddrs = addrs(kChild4, kChild6, kHost4, kHost6);

constexpr size_t kL3 = 14;

IpAddr src4(const Bytes& f) { return IpAddr::v4_bytes(&f[kL3 + 12]); }
IpAddr dst4(const Bytes& f) { return IpAddr::v4_bytes(&f[kL3 + 16]); }
IpAddr src6(const Bytes& f) { return IpAddr::v6_bytes(&f[kL3 + 8]); }
IpAddr dst6(const Bytes& f) { return IpAddr::v6_bytes(&f[kL3 + 24]); }

EgressVerdict rewrite(Bytes& f, const EgressAddresses& a = kAddrs) {
  return to_egress(std::span<uint8_t>(f.data(), f.size()), a);
}

TEST(Egress, Tcp4FromChildRewritesSourceAndChecksums) {
  Bytes f = eth(ipv4_packet(kChild4, kRemote4, 6, tcp(40000, 80, 0x18, "GET / HTTP/1.1\r\n\r\n")), false);
  ASSERT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3));
  Bytes before = f;
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(src4(f), kHost4);
  EXPECT_EQ(dst4(f), kRemote4);
  EXPECT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3));
  EXPECT_NE(get16(&f[kL3 + 10]), get16(&before[kL3 + 10]));  // IP checksum changed
  // Everything but addresses and checksums is untouched.
  EXPECT_TRUE(std::equal(f.begin() + kL3 + 20 + 20, f.end(), before.begin() + kL3 + 20 + 20));
  EXPECT_TRUE(std::equal(f.begin(), f.begin() + kL3 + 10, before.begin()));
}

TEST(Egress, Tcp4ToChildRewritesDestination) {
  Bytes f = eth(ipv4_packet(kRemote4, kChild4, 6, tcp(80, 40000, 0x12)), false);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(src4(f), kRemote4);
  EXPECT_EQ(dst4(f), kHost4);
  EXPECT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3));
}

TEST(Egress, Udp4ChecksumsAreCorrectForEveryPayloadWord) {
  // Sweeping a 16-bit payload word drives the checksum through every value,
  // including the one whose update is 0 (must become 0xffff).
  for (uint32_t v = 0; v <= 0xffff; ++v) {
    Bytes f = eth(ipv4_packet(kChild4, kRemote4, 17, udp(5353, 53, {uint8_t(v >> 8), uint8_t(v)})), false);
    ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
    ASSERT_EQ(src4(f), kHost4);
    ASSERT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3)) << v;
    ASSERT_NE(get16(&f[kL3 + 20 + 6]), 0) << v;
  }
}

TEST(Egress, Udp4WithoutChecksumStaysWithout) {
  Bytes f = eth(ipv4_packet(kChild4, kRemote4, 17, udp(5353, 53, {1, 2, 3}), true), false);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(src4(f), kHost4);
  EXPECT_EQ(get16(&f[kL3 + 20 + 6]), 0);
  EXPECT_TRUE(ipv4_header_ok(&f[kL3]));
}

TEST(Egress, Icmp4EchoKeepsItsChecksumAndFixesTheHeader) {
  Bytes f = eth(ipv4_packet(kChild4, kRemote4, 1, icmp(8, 0, 0x00010001, {'p', 'i', 'n', 'g'})), false);
  Bytes before = f;
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(src4(f), kHost4);
  EXPECT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3));
  EXPECT_EQ(get16(&f[kL3 + 20 + 2]), get16(&before[kL3 + 20 + 2]));  // no pseudo header
}

TEST(Egress, Icmp4ErrorRewritesTheQuotedPacket) {
  // Port unreachable to the child, quoting the child's whole UDP datagram.
  Bytes quoted = ipv4_packet(kChild4, kRemote4, 17, udp(40001, 9, {'x', 'y', 'z'}));
  Bytes f = eth(ipv4_packet(kRemote4, kChild4, 1, icmp(3, 3, 0, quoted)), false);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(dst4(f), kHost4);
  const uint8_t* inner = &f[kL3 + 20 + 8];
  EXPECT_EQ(IpAddr::v4_bytes(inner + 12), kHost4);
  EXPECT_EQ(IpAddr::v4_bytes(inner + 16), kRemote4);
  EXPECT_TRUE(ipv4_all_ok(inner, quoted.size()));           // inner IP + UDP
  EXPECT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3));        // outer IP + ICMP
}

TEST(Egress, Icmp4ErrorWithShortQuoteStaysInBounds) {
  // The classic 8-byte quote of a TCP segment: the TCP checksum is not in it.
  Bytes quoted = ipv4_packet(kChild4, kRemote4, 6, tcp(40000, 81, 0x02));
  quoted.resize(28);
  Bytes f = eth(ipv4_packet(kRemote4, kChild4, 1, icmp(3, 1, 0, quoted)), false);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  const uint8_t* inner = &f[kL3 + 20 + 8];
  EXPECT_EQ(IpAddr::v4_bytes(inner + 12), kHost4);
  EXPECT_TRUE(ipv4_header_ok(inner));
  EXPECT_TRUE(ipv4_all_ok(&f[kL3], f.size() - kL3));
}

TEST(Egress, Tcp6AndUdp6) {
  for (uint8_t proto : {uint8_t(6), uint8_t(17)}) {
    Bytes l4 = proto == 6 ? tcp(40000, 443, 0x02) : udp(40000, 53, {1, 2, 3, 4, 5});
    Bytes f = eth(ipv6_packet(kChild6, kRemote6, proto, l4), true);
    ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
    EXPECT_EQ(src6(f), kHost6);
    EXPECT_EQ(dst6(f), kRemote6);
    EXPECT_TRUE(ipv6_l4_ok(&f[kL3], 40, proto, f.size() - kL3)) << int(proto);
    Bytes back = eth(ipv6_packet(kRemote6, kChild6, proto, l4), true);
    ASSERT_EQ(rewrite(back), EgressVerdict::Keep);
    EXPECT_EQ(dst6(back), kHost6);
    EXPECT_TRUE(ipv6_l4_ok(&back[kL3], 40, proto, back.size() - kL3)) << int(proto);
  }
}

TEST(Egress, Icmp6EchoUpdatesThePseudoHeaderChecksum) {
  Bytes f = eth(ipv6_packet(kChild6, kRemote6, 58, icmp(128, 0, 0x00070001, {'a', 'b', 'c'})), true);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(src6(f), kHost6);
  EXPECT_TRUE(ipv6_l4_ok(&f[kL3], 40, 58, f.size() - kL3));
}

TEST(Egress, Icmp6ErrorRewritesTheQuotedPacket) {
  Bytes quoted = ipv6_packet(kChild6, kRemote6, 17, udp(40001, 9, {'q'}));
  Bytes f = eth(ipv6_packet(kRemote6, kChild6, 58, icmp(1, 4, 0, quoted)), true);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(dst6(f), kHost6);
  const uint8_t* inner = &f[kL3 + 40 + 8];
  EXPECT_EQ(IpAddr::v6_bytes(inner + 8), kHost6);
  EXPECT_TRUE(ipv6_l4_ok(inner, 40, 17, quoted.size()));  // inner UDP
  EXPECT_TRUE(ipv6_l4_ok(&f[kL3], 40, 58, f.size() - kL3));  // outer ICMPv6
}

TEST(Egress, Udp6AfterExtensionHeaders) {
  // Hop-by-hop (8 bytes, PadN) then destination options (8 bytes) then UDP.
  Bytes ext = {60, 0, 1, 4, 0, 0, 0, 0, 17, 0, 1, 4, 0, 0, 0, 0};
  Bytes l4 = udp(40000, 7, {'e', 'c', 'h', 'o'});
  Bytes f = eth(ipv6_packet(kChild6, kRemote6, 17, l4, ext, 0), true);
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(src6(f), kHost6);
  EXPECT_TRUE(ipv6_l4_ok(&f[kL3], 40 + ext.size(), 17, f.size() - kL3));
}

TEST(Egress, LinkPlumbingIsDropped) {
  Bytes arp(42, 0);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_EQ(rewrite(arp), EgressVerdict::Drop);
  Bytes ns = eth(ipv6_packet(ip("fe80::1"), ip("ff02::1:ff00:1"), 58, icmp(135, 0, 0, Bytes(16, 0))), true);
  EXPECT_EQ(rewrite(ns), EgressVerdict::Drop);
  Bytes ns_global = eth(ipv6_packet(kChild6, ip("fd00:cf::1"), 58, icmp(135, 0, 0, Bytes(16, 0))), true);
  EXPECT_EQ(rewrite(ns_global), EgressVerdict::Drop);
  Bytes mdns = eth(ipv4_packet(kChild4, ip("224.0.0.251"), 17, udp(5353, 5353, {0})), false);
  EXPECT_EQ(rewrite(mdns), EgressVerdict::Drop);
  Bytes tiny(10, 0);
  EXPECT_EQ(rewrite(tiny), EgressVerdict::Drop);
}

TEST(Egress, FamilyWithoutHostAddressIsKeptUnchanged) {
  EgressAddresses no6 = addrs(kChild4, kChild6, kHost4, std::nullopt);
  Bytes f = eth(ipv6_packet(kChild6, kRemote6, 6, tcp(1, 2, 0x02)), true);
  Bytes before = f;
  ASSERT_EQ(rewrite(f, no6), EgressVerdict::Keep);
  EXPECT_EQ(f, before);
}

TEST(Egress, OtherAddressesAreNotTouched) {
  Bytes f = eth(ipv4_packet(ip("10.240.0.1"), kRemote4, 6, tcp(1, 2, 0x02)), false);
  Bytes before = f;
  ASSERT_EQ(rewrite(f), EgressVerdict::Keep);
  EXPECT_EQ(f, before);
}

TEST(Egress, TruncatedAndRandomFramesStayInBounds) {
  // Every prefix of valid frames, then random mutations: nothing may read or
  // write past the span (run under ASan in the dev preset).
  std::vector<Bytes> seeds = {
      eth(ipv4_packet(kRemote4, kChild4, 1, icmp(3, 3, 0, ipv4_packet(kChild4, kRemote4, 17, udp(1, 2, {3})))), false),
      eth(ipv6_packet(kRemote6, kChild6, 58, icmp(1, 4, 0, ipv6_packet(kChild6, kRemote6, 6, tcp(1, 2, 2)))), true),
      eth(ipv6_packet(kChild6, kRemote6, 17, udp(1, 2, {3}), {44, 0, 0, 0, 0, 0, 0, 1}, 44), true),
  };
  std::mt19937 rng(42);
  for (const Bytes& s : seeds) {
    for (size_t n = 0; n <= s.size(); ++n) {
      std::vector<uint8_t> heap(s.begin(), s.begin() + long(n));  // exact-size allocation
      to_egress(std::span<uint8_t>(heap.data(), heap.size()), kAddrs);
    }
    for (int i = 0; i < 20000; ++i) {
      Bytes m = s;
      for (int k = 0; k < 3; ++k) m[kL3 + rng() % (m.size() - kL3)] = uint8_t(rng());
      m.resize(kL3 + rng() % (m.size() - kL3 + 1));
      to_egress(std::span<uint8_t>(m.data(), m.size()), kAddrs);
    }
  }
  SUCCEED();
}

}  // namespace
}  // namespace cf::capture

namespace cf::capture {
namespace {

using namespace test_frames;

const IpAddr kGw4 = ip("10.240.0.1"), kResolver4 = ip("203.0.113.53");
const IpAddr kGw6 = ip("fd00:cf::1"), kResolver6 = ip("2001:db8:2::53");

EgressAddresses with_dns() {
  EgressAddresses a = addrs(ip("10.240.0.2"), ip("fd00:cf::2"), ip("198.51.100.2"), ip("2001:db8:1::2"));
  a.gateway4 = kGw4;
  a.gateway6 = kGw6;
  a.resolver4 = kResolver4;
  a.resolver6 = kResolver6;
  return a;
}

TEST(Egress, DnsToTheGatewayBecomesDnsToTheResolver) {
  EgressAddresses a = with_dns();
  Bytes q = eth(ipv4_packet(*a.child4, kGw4, 17, udp(41000, 53, {1, 2, 3, 4})), false);
  ASSERT_EQ(to_egress(std::span<uint8_t>(q.data(), q.size()), a), EgressVerdict::Keep);
  EXPECT_EQ(IpAddr::v4_bytes(&q[14 + 12]), *a.host4);
  EXPECT_EQ(IpAddr::v4_bytes(&q[14 + 16]), kResolver4);
  EXPECT_TRUE(ipv4_all_ok(&q[14], q.size() - 14));

  Bytes r = eth(ipv4_packet(kGw4, *a.child4, 6, tcp(53, 41001, 0x12)), false);
  ASSERT_EQ(to_egress(std::span<uint8_t>(r.data(), r.size()), a), EgressVerdict::Keep);
  EXPECT_EQ(IpAddr::v4_bytes(&r[14 + 12]), kResolver4);
  EXPECT_EQ(IpAddr::v4_bytes(&r[14 + 16]), *a.host4);
  EXPECT_TRUE(ipv4_all_ok(&r[14], r.size() - 14));

  Bytes q6 = eth(ipv6_packet(*a.child6, kGw6, 17, udp(41000, 53, {9, 9})), true);
  ASSERT_EQ(to_egress(std::span<uint8_t>(q6.data(), q6.size()), a), EgressVerdict::Keep);
  EXPECT_EQ(IpAddr::v6_bytes(&q6[14 + 24]), kResolver6);
  EXPECT_TRUE(ipv6_l4_ok(&q6[14], 40, 17, q6.size() - 14));
}

TEST(Egress, OtherGatewayTrafficKeepsTheGatewayAddress) {
  EgressAddresses a = with_dns();
  Bytes p = eth(ipv4_packet(*a.child4, kGw4, 1, icmp(8, 0, 1, {0})), false);
  ASSERT_EQ(to_egress(std::span<uint8_t>(p.data(), p.size()), a), EgressVerdict::Keep);
  EXPECT_EQ(IpAddr::v4_bytes(&p[14 + 16]), kGw4);
  Bytes t = eth(ipv4_packet(*a.child4, kGw4, 6, tcp(40000, 8080, 0x02)), false);
  ASSERT_EQ(to_egress(std::span<uint8_t>(t.data(), t.size()), a), EgressVerdict::Keep);
  EXPECT_EQ(IpAddr::v4_bytes(&t[14 + 16]), kGw4);
  EXPECT_TRUE(ipv4_all_ok(&t[14], t.size() - 14));
  // Port 53 on another address is not the relay.
  Bytes d = eth(ipv4_packet(*a.child4, ip("203.0.113.99"), 17, udp(41000, 53, {1})), false);
  ASSERT_EQ(to_egress(std::span<uint8_t>(d.data(), d.size()), a), EgressVerdict::Keep);
  EXPECT_EQ(IpAddr::v4_bytes(&d[14 + 16]), ip("203.0.113.99"));
}

}  // namespace
}  // namespace cf::capture
