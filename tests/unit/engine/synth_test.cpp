// The synthetic name<->address map of --proxy-dns remote (engine/synth.hpp):
// the ranges, allocation, reverse lookup, the bound, and reuse of the least
// recently used entry that no live flow holds.
#include "engine/synth.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cf::engine {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

TEST(SynthRange, IsReservedAndOutsideTheTreesOwnAddressing) {
  EXPECT_EQ(SynthMap::range4().str(), "198.18.0.0/15");
  EXPECT_EQ(SynthMap::range6().str(), "fd63:666c:6f77::/96");
  EXPECT_TRUE(SynthMap::in_range(ip("198.18.0.0")));
  EXPECT_TRUE(SynthMap::in_range(ip("198.19.255.255")));
  EXPECT_FALSE(SynthMap::in_range(ip("198.17.255.255")));
  EXPECT_FALSE(SynthMap::in_range(ip("198.20.0.0")));
  EXPECT_TRUE(SynthMap::in_range(ip("fd63:666c:6f77::1")));
  EXPECT_TRUE(SynthMap::in_range(ip("fd63:666c:6f77::ffff:ffff")));
  EXPECT_FALSE(SynthMap::in_range(ip("fd63:666c:6f77:0:0:1::1")));
  EXPECT_FALSE(SynthMap::in_range(ip("fd63:666c:6f78::1")));
  // The tree's own addresses (app/run.cpp) and the metadata endpoint.
  EXPECT_FALSE(SynthMap::in_range(ip("10.240.0.1")));
  EXPECT_FALSE(SynthMap::in_range(ip("fd42::1")));
  EXPECT_FALSE(SynthMap::in_range(ip("fd00:ec2::254")));
  EXPECT_FALSE(SynthMap::in_range(ip("::ffff:198.18.0.1")));
}

TEST(SynthMap, OneEntryPerNameForBothFamilies) {
  SynthMap m;
  auto a = m.assign("www.example.test");
  auto b = m.assign("echo.example.test");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(m.assign("www.example.test"), a) << "a name keeps its entry";
  EXPECT_EQ(SynthMap::v4(*a).str(), "198.18.0.1");
  EXPECT_EQ(SynthMap::v6(*a).str(), "fd63:666c:6f77::1");
  EXPECT_EQ(SynthMap::v4(*b).str(), "198.18.0.2");
  EXPECT_EQ(SynthMap::v6(*b).str(), "fd63:666c:6f77::2");
  EXPECT_EQ(m.size(), 2u);
}

TEST(SynthMap, ReverseLookup) {
  SynthMap m;
  auto a = m.assign("www.example.test");
  ASSERT_TRUE(a);
  EXPECT_EQ(m.lookup(SynthMap::v4(*a)), a);
  EXPECT_EQ(m.lookup(SynthMap::v6(*a)), a);
  EXPECT_EQ(m.name(*m.lookup(ip("198.18.0.1"))), "www.example.test");
  EXPECT_FALSE(m.lookup(ip("198.18.0.0"))) << "the range's first address names nothing";
  EXPECT_FALSE(m.lookup(ip("198.18.0.2"))) << "no entry yet";
  EXPECT_FALSE(m.lookup(ip("fd63:666c:6f77::")));
  EXPECT_FALSE(m.lookup(ip("fd63:666c:6f77::2")));
  EXPECT_FALSE(m.lookup(ip("203.0.113.10"))) << "outside the range";
  EXPECT_FALSE(m.lookup(ip("198.19.255.255")));
}

TEST(SynthMap, BoundedWithTheLeastRecentlyUsedReused) {
  SynthMap m(3);
  auto a = m.assign("a.test"), b = m.assign("b.test"), c = m.assign("c.test");
  ASSERT_TRUE(a && b && c);
  EXPECT_EQ(m.assign("a.test"), a);  // a is now the most recently used; b the least
  auto d = m.assign("d.test");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, *b) << "b's entry is reused";
  EXPECT_EQ(m.size(), 3u) << "never more than the cap";
  EXPECT_EQ(m.reused(), 1u);
  EXPECT_EQ(m.name(*m.lookup(SynthMap::v4(*b))), "d.test") << "the address now stands for d";
  auto b2 = m.assign("b.test");  // b comes back: the least recently used now is c
  ASSERT_TRUE(b2);
  EXPECT_EQ(*b2, *c);
  EXPECT_EQ(m.assign("a.test"), a);
  EXPECT_EQ(m.assign("d.test"), d);
}

TEST(SynthMap, AnEntryAFlowHoldsIsNeverReused) {
  SynthMap m(2);
  auto a = m.assign("a.test"), b = m.assign("b.test");
  ASSERT_TRUE(a && b);
  m.hold(*a);  // a live connection to a's address; a is the least recently used
  auto c = m.assign("c.test");
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *b) << "the held entry is skipped";
  EXPECT_EQ(m.name(*a), "a.test");
  m.hold(*c);
  m.hold(*c);  // two flows to c
  EXPECT_FALSE(m.assign("d.test")) << "every entry is held: the map says so";
  EXPECT_EQ(m.assign("a.test"), a) << "a held name is still answered";
  m.release(*c);
  EXPECT_FALSE(m.assign("d.test")) << "c still has a holder";
  m.release(*c);
  auto d = m.assign("d.test");
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, *c);
  EXPECT_EQ(m.holders(*a), 1u);
  m.release(*a);  // a is back in the recency list, newer than d
  auto e = m.assign("e.test");
  ASSERT_TRUE(e);
  EXPECT_EQ(*e, *d);
  auto f = m.assign("f.test");
  ASSERT_TRUE(f);
  EXPECT_EQ(*f, *a) << "released, a is reused in its turn";
}

TEST(SynthMap, ReleaseCountsAsUse) {
  SynthMap m(2);
  auto a = m.assign("a.test"), b = m.assign("b.test");
  ASSERT_TRUE(a && b);
  m.hold(*a);
  m.release(*a);  // a's flow just ended: a is more recent than b
  auto c = m.assign("c.test");
  ASSERT_TRUE(c);
  EXPECT_EQ(*c, *b);
}

TEST(SynthMap, DefaultCapExceedsTheTcpTable) {
  SynthMap m;
  EXPECT_EQ(m.cap(), kSynthCap);
  EXPECT_GT(kSynthCap, 16384u) << "an entry no live flow holds always exists";
  for (uint32_t i = 0; i < 20000; ++i) ASSERT_TRUE(m.assign("n" + std::to_string(i) + ".test"));
  EXPECT_EQ(m.size(), 20000u);
  EXPECT_EQ(m.name(*m.lookup(ip("198.18.78.32"))), "n19999.test");  // host 20000
}

TEST(SynthMap, NamesTheProxyCanBeAskedFor) {
  for (const char* ok : {"www.example.test", "a.b-c.example", "_srv.example.test", "onion",
                         "x2.onion", "1.2.3.example", "a.123x"})
    EXPECT_TRUE(SynthMap::nameable(ok)) << ok;
  for (const char* bad :
       {"", ".", "a\\046b.example", "a b.test", "a:b.test", "localhost", "x.localhost",
        "10.1.2.3", "167772161", "10.0x1", "0x0a000001", "a.b.0x1f", "a..b", ".a", "a.",
        "ex@mple.test", "é.test"})
    EXPECT_FALSE(SynthMap::nameable(bad)) << bad;
  EXPECT_TRUE(SynthMap::nameable(std::string(63, 'a') + "." + std::string(63, 'b') + "." +
                                 std::string(63, 'c') + "." + std::string(61, 'd')));  // 253
  EXPECT_FALSE(SynthMap::nameable(std::string(254, 'a')));
}

}  // namespace
}  // namespace cf::engine
