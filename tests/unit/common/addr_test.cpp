// IpAddr and Cidr: strict parsing, canonical printing, prefix matching, and
// the host-bits error that names the prefix and suggests the fix.
#include "common/addr.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace cf {
namespace {

TEST(IpAddr, ParsesBothFamilies) {
  auto v4 = IpAddr::parse("198.51.100.7");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->is_v4());
  EXPECT_EQ(v4->v4_host_order(), 0xC6336407u);
  EXPECT_EQ(v4->str(), "198.51.100.7");
  auto v6 = IpAddr::parse("2001:DB8::1");
  ASSERT_TRUE(v6);
  EXPECT_FALSE(v6->is_v4());
  EXPECT_EQ(v6->str(), "2001:db8::1");
  EXPECT_EQ(v6->size(), 16u);
}

TEST(IpAddr, RejectsNonAddresses) {
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "example.com", "[::1]",
                          "::1%lo", "1.2.3.4 ", " 1.2.3.4", "2001:db8::1::2", "01.2.3.4x"})
    EXPECT_FALSE(IpAddr::parse(bad)) << bad;
}

TEST(IpAddr, V4AndV6AreDifferentValues) {
  EXPECT_NE(*IpAddr::parse("0.0.0.0"), *IpAddr::parse("::"));
  EXPECT_EQ(*IpAddr::parse("10.0.0.1"), IpAddr::v4(0x0A000001));
}

TEST(IpAddr, Endpoint) {
  EXPECT_EQ(format_endpoint(*IpAddr::parse("203.0.113.5"), 443), "203.0.113.5:443");
  EXPECT_EQ(format_endpoint(*IpAddr::parse("2001:db8::5"), 53), "[2001:db8::5]:53");
}

TEST(IpAddr, SockaddrRoundTripAndMappedV4) {
  sockaddr_storage ss{};
  auto ip = *IpAddr::parse("2001:db8::9");
  to_sockaddr(ip, 8080, &ss);
  IpAddr back;
  uint16_t port = 0;
  ASSERT_TRUE(from_sockaddr(reinterpret_cast<sockaddr*>(&ss), &back, &port));
  EXPECT_EQ(back, ip);
  EXPECT_EQ(port, 8080);
  to_sockaddr(*IpAddr::parse("::ffff:198.51.100.1"), 1, &ss);
  ASSERT_TRUE(from_sockaddr(reinterpret_cast<sockaddr*>(&ss), &back, &port));
  EXPECT_TRUE(back.is_v4());
  EXPECT_EQ(back.str(), "198.51.100.1");
}

Cidr ok(const char* text) {
  auto r = Cidr::parse(text);
  EXPECT_TRUE(r) << text << ": " << (r ? "" : r.error().message);
  return r ? *r : Cidr{};
}

std::string err(const char* text) {
  auto r = Cidr::parse(text);
  EXPECT_FALSE(r) << text;
  return r ? "" : r.error().message;
}

TEST(Cidr, ParsesPrefixes) {
  EXPECT_EQ(ok("10.0.0.0/8").str(), "10.0.0.0/8");
  EXPECT_EQ(ok("0.0.0.0/0").prefix, 0);
  EXPECT_EQ(ok("198.51.100.7/32").str(), "198.51.100.7/32");
  EXPECT_EQ(ok("2001:DB8::/32").str(), "2001:db8::/32");
  EXPECT_EQ(ok("::/0").prefix, 0);
  EXPECT_EQ(ok("::1/128").str(), "::1/128");
}

TEST(Cidr, HostBitsSetNamesThePrefixAndTheFix) {
  std::string e = err("10.1.2.3/8");
  EXPECT_NE(e.find("10.1.2.3/8"), std::string::npos) << e;
  EXPECT_NE(e.find("host bits"), std::string::npos) << e;
  EXPECT_NE(e.find("10.0.0.0/8"), std::string::npos) << e;
  e = err("2001:db8::1/64");
  EXPECT_NE(e.find("2001:db8::1/64"), std::string::npos) << e;
  EXPECT_NE(e.find("2001:db8::/64"), std::string::npos) << e;
  e = err("192.168.1.1/31");
  EXPECT_NE(e.find("192.168.1.0/31"), std::string::npos) << e;
}

TEST(Cidr, RejectsMalformed) {
  for (const char* bad : {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "::/129", "10.0.0.0/-1",
                          "10.0.0.0/8x", "x/8", "/8", "10.0.0.0/ 8", ""})
    EXPECT_FALSE(err(bad).empty()) << bad;
  EXPECT_NE(err("10.0.0.0/33").find("0 to 32"), std::string::npos);
  EXPECT_NE(err("::/129").find("0 to 128"), std::string::npos);
}

TEST(Cidr, Contains) {
  Cidr c = ok("198.51.100.0/24");
  EXPECT_TRUE(c.contains(*IpAddr::parse("198.51.100.255")));
  EXPECT_FALSE(c.contains(*IpAddr::parse("198.51.101.0")));
  EXPECT_FALSE(c.contains(*IpAddr::parse("::ffff:198.51.100.1")));
  Cidr odd = ok("203.0.113.128/25");
  EXPECT_TRUE(odd.contains(*IpAddr::parse("203.0.113.200")));
  EXPECT_FALSE(odd.contains(*IpAddr::parse("203.0.113.127")));
  EXPECT_TRUE(ok("0.0.0.0/0").contains(*IpAddr::parse("203.0.113.1")));
  EXPECT_FALSE(ok("0.0.0.0/0").contains(*IpAddr::parse("2001:db8::1")));
  EXPECT_TRUE(ok("2001:db8::/33").contains(*IpAddr::parse("2001:db8:7fff::1")));
  EXPECT_FALSE(ok("2001:db8::/33").contains(*IpAddr::parse("2001:db8:8000::1")));
}

}  // namespace
}  // namespace cf
