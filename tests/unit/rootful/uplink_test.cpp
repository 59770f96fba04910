// cf::rootful --iface: the routes the pin's table gets, and (as root) the
// rules and routes created and removed for real in a throwaway network
// namespace. Choosing the table, mark and priority is routing_test.cpp's.
#include "rootful/uplink.hpp"

#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fixtures.hpp"
#include "rootful/routing.hpp"

namespace cf::rootful {
namespace {

using namespace fixtures;

netlink::Route route(const char* dst, uint8_t prefix, int ifindex, const char* gw = nullptr,
                     uint32_t table = RT_TABLE_MAIN) {
  netlink::Route r;
  r.dst = ip(dst);
  r.family = r.dst.is_v4() ? AF_INET : AF_INET6;
  r.prefix = prefix;
  r.table = table;
  r.type = RTN_UNICAST;
  r.scope = gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  r.protocol = RTPROT_KERNEL;
  r.ifindex = ifindex;
  if (gw) r.gateway = ip(gw);
  return r;
}

TEST(Pin, CopiesTheInterfacesMainRoutesAndBlocksAFamilyWithoutDefault) {
  std::vector<netlink::Route> routes{
      route("0.0.0.0", 0, 2, "198.51.100.1"),        // eth0's default
      route("0.0.0.0", 0, 3, "198.51.100.129"),      // eth1's default
      route("198.51.100.128", 25, 3),                // eth1's subnet
      route("2001:db8:5::", 64, 3),                  // eth1's IPv6 subnet, no IPv6 default
      route("10.9.0.0", 16, 3, "198.51.100.129", 100),  // another table: not copied
  };
  auto t = pin_routes(routes, 3, 0x43460005, true);
  ASSERT_EQ(t.size(), 4u);
  for (const auto& r : t) {
    EXPECT_EQ(r.table, 0x43460005u);
    EXPECT_EQ(r.protocol, RTPROT_STATIC);
  }
  EXPECT_EQ(t[0].gateway, ip("198.51.100.129"));
  EXPECT_EQ(t[0].prefix, 0);
  EXPECT_EQ(t[1].dst, ip("198.51.100.128"));
  EXPECT_EQ(t[2].dst, ip("2001:db8:5::"));
  EXPECT_EQ(t[3].type, RTN_UNREACHABLE) << "IPv6 has no default through eth1";
  EXPECT_EQ(t[3].family, AF_INET6);
  EXPECT_EQ(t[3].prefix, 0);
  // Without IPv6 in the run, no IPv6 route at all.
  auto v4 = pin_routes(routes, 3, 0x43460005, false);
  EXPECT_EQ(v4.size(), 2u);
}

// As root, in a throwaway network namespace: lo with a default route stands
// in for the uplink; add_routing creates exactly the rules and the table's
// routes, remove_routing removes exactly them.
TEST(Pin, AppliedAndUndoneForReal) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  int rc = in_throwaway_netns([] {
    auto nl = netlink::Socket::open();
    if (!nl) return 11;
    auto lo = nl->find_link("lo");
    if (!lo || !nl->set_up(*lo)) return 12;
    netlink::Route d = route("0.0.0.0", 0, lo->index);
    d.scope = RT_SCOPE_LINK;
    d.protocol = RTPROT_STATIC;
    if (!nl->add_route(d)) return 13;
    if (!check_iface("lo")) return 14;
    auto before4 = nl->rules(AF_INET);
    if (!before4) return 15;
    auto p = plan_routing(kIfaceRange, record(), "test");
    if (!p || !kIfaceRange.contains(p->value)) return 16;
    auto routes = iface_routes("lo", p->value, true);
    if (!routes || !add_routing(*p, *routes, true)) return 17;
    auto rules4 = nl->rules(AF_INET);
    auto rules6 = nl->rules(AF_INET6);
    if (!rules4 || !rules6) return 18;
    int mine = 0;
    for (const auto& r : *rules4)
      mine += r.pref == p->priority && r.table == p->value && r.fwmark == p->value;
    for (const auto& r : *rules6)
      mine += r.pref == p->priority && r.table == p->value && r.fwmark == p->value;
    if (mine != 2) return 19;
    auto routes4 = nl->routes(AF_INET);
    auto routes6 = nl->routes(AF_INET6);
    int in_table = 0;
    bool unreachable6 = false;
    for (const auto& r : *routes4) in_table += r.table == p->value;
    for (const auto& r : *routes6) {
      in_table += r.table == p->value;
      unreachable6 |= r.table == p->value && r.type == RTN_UNREACHABLE;
    }
    if (in_table < 2 || !unreachable6) return 20;
    if (!remove_routing(p->value, p->priority, p->priority).empty()) return 21;
    auto after4 = nl->rules(AF_INET);
    if (!after4 || after4->size() != before4->size()) return 22;
    auto left4 = nl->routes(AF_INET);
    auto left6 = nl->routes(AF_INET6);
    for (const auto& r : *left4)
      if (r.table == p->value) return 23;
    for (const auto& r : *left6)
      if (r.table == p->value) return 24;
    return 0;
  });
  EXPECT_EQ(rc, 0) << "the step that failed (see the test's step numbers)";
}

}  // namespace
}  // namespace cf::rootful
