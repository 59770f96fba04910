// cf::rootful policy routing (routing.hpp), shared by --iface and --proxy:
// the choice of mark == table and rule priority from what the host uses and
// what runs' records reserve, and, as root in a throwaway network namespace,
// TPROXY's rules and local routes added and removed for real.
#include "rootful/routing.hpp"

#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "fixtures.hpp"

namespace cf::rootful {
namespace {

using namespace fixtures;

netlink::Rule rule(uint8_t family, uint32_t pref, uint32_t table,
                   std::optional<uint32_t> mark = std::nullopt, uint32_t mask = 0xffffffff) {
  return netlink::Rule{family, pref, table, mark, mask};
}

// A host's usual rules: local, main, default (no marks), plus a VPN's.
RoutingInUse usual_host() {
  RoutingInUse u;
  u.rules = {rule(AF_INET, 0, 255),     rule(AF_INET, 32766, 254), rule(AF_INET, 32767, 253),
             rule(AF_INET6, 0, 255),    rule(AF_INET6, 32766, 254),
             rule(AF_INET, 5210, 254, 0x80000, 0xff0000)};
  u.tables = {253, 254, 255};
  return u;
}

// Only the default rules.
RoutingInUse bare_host() {
  RoutingInUse u = usual_host();
  u.rules.pop_back();
  return u;
}

TEST(Routing, TheRangeOfThePurposeAndAPriorityBeforeEveryRule) {
  auto t = choose_routing(usual_host(), kTproxyRange, 7);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->value, kTproxyRange.first + 7);
  EXPECT_EQ(t->priority, 5209u) << "before the VPN's rule";
  auto p = choose_routing(bare_host(), kIfaceRange, 7);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->value, 0x43460007u);
  EXPECT_EQ(p->priority, 32765u) << "before the main table's rule";
  // Either family's rules count: one priority serves both.
  RoutingInUse u = bare_host();
  u.rules.push_back(rule(AF_INET6, 4000, 1000));
  EXPECT_EQ(choose_routing(u, kIfaceRange, 7)->priority, 3999u);
}

TEST(Routing, NeverATableInUse) {
  RoutingInUse u = usual_host();
  u.tables.push_back(kTproxyRange.first + 7);                       // a route in that table
  u.rules.push_back(rule(AF_INET, 2000, kTproxyRange.first + 8));  // a rule looking up the next
  auto r = choose_routing(u, kTproxyRange, 7);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, kTproxyRange.first + 9);
  EXPECT_EQ(r->priority, 1999u);
}

TEST(Routing, NeverAMarkAHostRuleMatches) {
  RoutingInUse u = usual_host();
  // fwmark 0x63660000/0xffff0000 would take every value of the range.
  u.rules.push_back(rule(AF_INET, 3000, 100, 0x63660000, 0xffff0000));
  EXPECT_FALSE(choose_routing(u, kTproxyRange, 1));
  u.rules.back() = rule(AF_INET, 3000, 100, kTproxyRange.first + 1);  // exactly one
  auto r = choose_routing(u, kTproxyRange, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, kTproxyRange.first + 2);
  // The same for --iface's range.
  RoutingInUse v = bare_host();
  v.rules.push_back(rule(AF_INET, 100, 200, 0x43460000));
  v.tables.push_back(0x43460001);
  auto p = choose_routing(v, kIfaceRange, 0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->value, 0x43460002u);
  EXPECT_EQ(p->priority, 99u);
}

TEST(Routing, WrapsAroundTheRange) {
  const uint32_t span = kTproxyRange.last - kTproxyRange.first + 1;
  EXPECT_EQ(choose_routing(usual_host(), kTproxyRange, span - 1)->value, kTproxyRange.last);
  EXPECT_EQ(choose_routing(usual_host(), kTproxyRange, span)->value, kTproxyRange.first);
  EXPECT_EQ(choose_routing(bare_host(), kIfaceRange, 0xffff)->value, 0x4346ffffu);
  EXPECT_EQ(choose_routing(bare_host(), kIfaceRange, 0x10000)->value, 0x43460000u);
}

TEST(Routing, NoRoomBeforeARuleAtPriorityOne) {
  RoutingInUse u = bare_host();
  u.rules.push_back(rule(AF_INET6, 1, 100));
  EXPECT_FALSE(choose_routing(u, kIfaceRange, 0));
  EXPECT_FALSE(choose_routing(u, kTproxyRange, 0));
}

TEST(Routing, ConcurrentRunsAndBothFeaturesGetTheirOwn) {
  RoutingInUse u = usual_host();
  // A run chose for --proxy and recorded it, but has no rule yet.
  auto a = choose_routing(u, kTproxyRange, 5);
  ASSERT_TRUE(a);
  state::Record ra = record();
  ra.mark = ra.route_table = a->value;
  ra.rule_priority = a->priority;
  reserve(u, ra);
  auto b = choose_routing(u, kTproxyRange, 5);
  ASSERT_TRUE(b);
  EXPECT_NE(a->value, b->value);
  EXPECT_NE(a->priority, b->priority);
  // A run with --iface and --proxy: its pin, chosen first, is reserved by
  // its own record when it chooses for --proxy.
  state::Record rb = record();
  rb.pin_iface = "eth1";
  rb.pin_mark = rb.pin_table = 0x43460005;
  rb.pin_pref4 = rb.pin_pref6 = b->priority;
  reserve(u, rb);
  EXPECT_EQ(choose_routing(u, kIfaceRange, 5)->value, 0x43460006u);
  auto c = choose_routing(u, kTproxyRange, 5);
  ASSERT_TRUE(c);
  EXPECT_NE(c->value, a->value);
  EXPECT_LT(c->priority, b->priority);
  // A record without either reserves nothing.
  RoutingInUse none;
  reserve(none, record());
  EXPECT_TRUE(none.rules.empty() && none.tables.empty());
}

TEST(Routing, TproxyDeliversLocally) {
  auto r = local_delivery_routes(0x63660005, 1, true);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].family, AF_INET);
  EXPECT_EQ(r[1].family, AF_INET6);
  for (const auto& one : r) {
    EXPECT_EQ(one.table, 0x63660005u);
    EXPECT_EQ(one.type, RTN_LOCAL);
    EXPECT_EQ(one.prefix, 0);
    EXPECT_EQ(one.ifindex, 1);
  }
  EXPECT_EQ(local_delivery_routes(0x63660005, 1, false).size(), 1u);
}

// The rules and routes are made, seen by the next choice, and removed
// exactly, through libnl; what else is there is untouched.
TEST(Routing, AddedAndRemovedForReal) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  int rc = in_throwaway_netns([] {
    auto nl = netlink::Socket::open();  // lo up, as in any network namespace in use
    if (!nl) return 1;
    auto lo = nl->find_link("lo");
    if (!lo || !nl->set_up(*lo)) return 1;
    auto dump = [&nl]() {
      std::vector<netlink::Rule> rules;
      std::vector<netlink::Route> routes;
      for (uint8_t f : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
        auto ru = nl->rules(f);
        auto ro = nl->routes(f);
        if (ru) rules.insert(rules.end(), ru->begin(), ru->end());
        if (ro) routes.insert(routes.end(), ro->begin(), ro->end());
      }
      return std::pair{rules, routes};
    };
    auto [rules_before, routes_before] = dump();
    auto r = plan_routing(kTproxyRange, record(), "test");
    if (!r) {
      fprintf(stderr, "%s\n", r.error().str().c_str());
      return 3;
    }
    if (auto s = add_routing(*r, local_delivery_routes(r->value, lo->index, true), true); !s) {
      fprintf(stderr, "%s\n", s.error().str().c_str());
      return 4;
    }
    auto [rules, routes] = dump();
    int ours = 0, local = 0;
    for (const netlink::Rule& i : rules)
      ours += i.pref == r->priority && i.fwmark == r->value && i.mask == 0xffffffff &&
              i.table == r->value;
    for (const netlink::Route& i : routes) local += i.table == r->value && i.type == RTN_LOCAL;
    if (ours != 2 || local != 2) return 6;  // IPv4 and IPv6
    // Its own choice is now taken: a second run would get another.
    auto next = plan_routing(kTproxyRange, record(), "test");
    if (!next || next->value == r->value || next->priority == r->priority) return 8;
    if (std::string e = remove_routing(r->value, r->priority, r->priority); !e.empty()) {
      fprintf(stderr, "%s\n", e.c_str());
      return 9;
    }
    auto [rules_after, routes_after] = dump();
    if (rules_after.size() != rules_before.size() || routes_after.size() != routes_before.size())
      return 11;
    // Removing again is no error (cleanup after a partial teardown).
    if (!remove_routing(r->value, r->priority, r->priority).empty()) return 12;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace cf::rootful
