// cf::rootful --iface: choosing the pin's table, mark and preferences from
// the host's rules and routes, the routes its table gets, and (as root) the
// rules and routes created and removed for real in a throwaway network
// namespace.
#include "rootful/uplink.hpp"

#include <gtest/gtest.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace cf::rootful {
namespace {

IpAddr ip(const char* t) { return *IpAddr::parse(t); }

netlink::Rule rule(uint8_t family, uint32_t pref, uint32_t table) {
  return netlink::Rule{family, pref, table, std::nullopt, 0xffffffff};
}
std::vector<netlink::Rule> default_rules() {
  std::vector<netlink::Rule> r;
  for (uint8_t f : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    r.push_back(rule(f, 0, RT_TABLE_LOCAL));
    r.push_back(rule(f, 32766, RT_TABLE_MAIN));
    if (f == AF_INET) r.push_back(rule(f, 32767, RT_TABLE_DEFAULT));
  }
  return r;
}

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

TEST(Pin, BeforeEveryHostRuleInATableOfItsOwn) {
  auto p = choose_pin("eth1", default_rules(), {}, 7, true);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->iface, "eth1");
  EXPECT_EQ(p->table, 0x43460007u);
  EXPECT_EQ(p->mark, p->table);
  EXPECT_EQ(p->pref4, 32765u);
  EXPECT_EQ(p->pref6, 32765u);
  // A VPN's rules (wg-quick) and another run's pin come later than ours.
  auto rules = default_rules();
  rules.push_back(rule(AF_INET, 32764, 51820));
  rules.push_back(netlink::Rule{AF_INET, 5000, 0x43460007, 0x43460007u, 0xffffffff});
  auto q = choose_pin("eth1", rules, {}, 7, false);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->pref4, 4999u);
  EXPECT_EQ(q->pref6, 0u) << "no IPv6 rule without IPv6";
  EXPECT_EQ(q->table, 0x43460008u) << "a table a rule names is taken";
}

TEST(Pin, NeverATableWithRoutesOrAMarkInUse) {
  auto rules = default_rules();
  rules.push_back(netlink::Rule{AF_INET, 100, 200, 0x43460000u, 0xffffffff});
  std::vector<netlink::Route> routes{route("0.0.0.0", 0, 3, "198.51.100.1", 0x43460001)};
  auto p = choose_pin("eth1", rules, routes, 0, false);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->table, 0x43460002u);
  EXPECT_EQ(p->pref4, 99u);
  // Wraps around the range.
  auto w = choose_pin("eth1", default_rules(), {}, 0xffff, false);
  ASSERT_TRUE(w);
  EXPECT_EQ(w->table, 0x4346ffffu);
}

TEST(Pin, NoRoomBeforeARuleAtPreferenceOne) {
  auto rules = default_rules();
  rules.push_back(rule(AF_INET, 1, 100));
  EXPECT_FALSE(choose_pin("eth1", rules, {}, 0, false));
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
// in for the uplink; apply_pin creates exactly the rules and routes,
// undo_pin removes exactly them.
TEST(Pin, AppliedAndUndoneForReal) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto step = [](bool ok, int code) {
      if (!ok) _exit(code);
    };
    step(::unshare(CLONE_NEWNET) == 0, 10);
    auto nl = netlink::Socket::open();
    step(bool(nl), 11);
    auto lo = nl->find_link("lo");
    step(lo && nl->set_up(*lo), 12);
    netlink::Route d = route("0.0.0.0", 0, lo->index);
    d.scope = RT_SCOPE_LINK;
    d.protocol = RTPROT_STATIC;
    step(bool(nl->add_route(d)), 13);
    step(bool(check_iface("lo")), 14);
    auto before4 = nl->rules(AF_INET);
    step(bool(before4), 15);
    auto p = plan_pin("lo", true);
    step(bool(p), 16);
    step(bool(apply_pin(*p)), 17);
    auto rules4 = nl->rules(AF_INET);
    auto rules6 = nl->rules(AF_INET6);
    step(rules4 && rules6, 18);
    int mine = 0;
    for (const auto& r : *rules4)
      mine += r.pref == p->pref4 && r.table == p->table && r.fwmark == p->mark;
    for (const auto& r : *rules6)
      mine += r.pref == p->pref6 && r.table == p->table && r.fwmark == p->mark;
    step(mine == 2, 19);
    auto routes = nl->routes(AF_INET);
    auto routes6 = nl->routes(AF_INET6);
    int in_table = 0;
    bool unreachable6 = false;
    for (const auto& r : *routes) in_table += r.table == p->table;
    for (const auto& r : *routes6) {
      in_table += r.table == p->table;
      unreachable6 |= r.table == p->table && r.type == RTN_UNREACHABLE;
    }
    step(in_table >= 2 && unreachable6, 20);
    step(undo_pin(*p).empty(), 21);
    auto after4 = nl->rules(AF_INET);
    step(after4 && after4->size() == before4->size(), 22);
    auto left = nl->routes(AF_INET);
    auto left6 = nl->routes(AF_INET6);
    for (const auto& r : *left) step(r.table != p->table, 23);
    for (const auto& r : *left6) step(r.table != p->table, 24);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the step that failed (see the test's step numbers)";
}

}  // namespace
}  // namespace cf::rootful
