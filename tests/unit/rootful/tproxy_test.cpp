// The pure parts of the rootful backend's --proxy: the choice of TPROXY's
// mark, table and rule priority (routing.hpp), the run record that carries
// them to --cleanup (state.hpp), and the table's TPROXY text (ruleset.hpp).
#include <gtest/gtest.h>

#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "netlink/netlink.hpp"
#include "nft/nft.hpp"
#include "rootful/host.hpp"
#include "rootful/routing.hpp"
#include "rootful/ruleset.hpp"
#include "rootful/state.hpp"

namespace cf::rootful {
namespace {

using netlink::RoutingInUse;
using netlink::RuleInfo;

// A host's usual rules: local, main, default (no marks), plus a VPN's.
RoutingInUse usual_host() {
  RoutingInUse u;
  u.rules = {{AF_INET, 0, 0, 0, 255},      {AF_INET, 32766, 0, 0, 254},
             {AF_INET, 32767, 0, 0, 253},  {AF_INET6, 0, 0, 0, 255},
             {AF_INET6, 32766, 0, 0, 254}, {AF_INET, 5210, 0x80000, 0xff0000, 254}};
  u.tables = {253, 254, 255};
  return u;
}

TEST(TproxyRouting, OurRangeAndTheFirstFreePriority) {
  auto r = choose_routing(usual_host(), 7);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mark, kRoutingFirst + 7);
  EXPECT_EQ(r->table, r->mark);
  EXPECT_EQ(r->priority, kPriorityFirst);
}

TEST(TproxyRouting, NeverATableOrPriorityTheHostUses) {
  RoutingInUse u = usual_host();
  u.tables.push_back(kRoutingFirst + 7);                         // a route in that table
  u.rules.push_back({AF_INET6, kPriorityFirst, 0, 0, 1000});     // a rule at our priority
  u.rules.push_back({AF_INET, 2000, 0, 0, kRoutingFirst + 8});   // a rule looking up the next
  auto r = choose_routing(u, 7);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mark, kRoutingFirst + 9);
  EXPECT_EQ(r->priority, kPriorityFirst + 1);
}

TEST(TproxyRouting, NeverAMarkAHostRuleMatches) {
  RoutingInUse u = usual_host();
  // fwmark 0x63660000/0xffff0000 would take every value of our range.
  u.rules.push_back({AF_INET, 3000, 0x63660000, 0xffff0000, 100});
  EXPECT_FALSE(choose_routing(u, 1));
  u.rules.back() = {AF_INET, 3000, kRoutingFirst + 1, 0xffffffff, 100};  // exactly one
  auto r = choose_routing(u, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mark, kRoutingFirst + 2);
}

TEST(TproxyRouting, WrapsAroundTheRange) {
  auto r = choose_routing(usual_host(), kRoutingLast - kRoutingFirst);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mark, kRoutingLast);
  r = choose_routing(usual_host(), kRoutingLast - kRoutingFirst + 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mark, kRoutingFirst);
}

TEST(TproxyRouting, ConcurrentRunsGetTheirOwn) {
  RoutingInUse u = usual_host();
  auto a = choose_routing(u, 5);
  ASSERT_TRUE(a);
  // What the first run added is in use for the second.
  u.rules.push_back({AF_INET, a->priority, a->mark, 0xffffffff, a->table});
  u.rules.push_back({AF_INET6, a->priority, a->mark, 0xffffffff, a->table});
  u.tables.push_back(a->table);
  auto b = choose_routing(u, 5);
  ASSERT_TRUE(b);
  EXPECT_NE(a->mark, b->mark);
  EXPECT_NE(a->table, b->table);
  EXPECT_NE(a->priority, b->priority);
}

TEST(TproxyRecord, CarriesTheRoutingToCleanup) {
  state::Record r{"0badcafe", 4242, 1, 2, "childflow_0badcafe", "cf0badcafe"};
  EXPECT_EQ(state::render(r).find("mark"), std::string::npos) << "no --proxy: no keys";
  r.mark = r.route_table = kRoutingFirst + 3;
  r.rule_priority = 101;
  auto back = state::parse(state::render(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->mark, r.mark);
  EXPECT_EQ(back->route_table, r.route_table);
  EXPECT_EQ(back->rule_priority, 101u);
  // Cleanup deletes by these: anything outside our range is not trusted.
  state::Record bad = r;
  bad.mark = bad.route_table = 254;
  EXPECT_FALSE(state::parse(state::render(bad)));
  bad = r;
  bad.route_table = 254;
  EXPECT_FALSE(state::parse(state::render(bad)));
  EXPECT_FALSE(state::parse(state::render(state::Record{"0badcafe", 1, 1, 2,
                                                        "childflow_0badcafe", "cf0badcafe"}) +
                            "mark 1667629057\n"))
      << "the three keys come together";
}

RulesetSpec spec() {
  RulesetSpec s;
  s.table = "childflow_0badcafe";
  s.link = "cf0badcafe";
  s.plan.gw4 = *IpAddr::parse("10.240.3.1");
  s.plan.child4 = *IpAddr::parse("10.240.3.2");
  s.plan.gw6 = *IpAddr::parse("fd42:1:2:3::1");
  s.plan.child6 = *IpAddr::parse("fd42:1:2:3::2");
  return s;
}

size_t at(const std::string& hay, const std::string& needle) {
  size_t p = hay.find(needle);
  EXPECT_NE(p, std::string::npos) << "missing: " << needle << "\nin:\n" << hay;
  return p;
}

TEST(TproxyRuleset, NoProxyNoDivert) {
  std::string t = ruleset(spec());
  EXPECT_EQ(t.find("tproxy"), std::string::npos);
  EXPECT_EQ(t.find("prerouting"), std::string::npos);
  EXPECT_EQ(t.find("meta mark"), std::string::npos);
}

TEST(TproxyRuleset, TcpButDnsAndTheGatewayGoesToTheRelay) {
  RulesetSpec s = spec();
  s.tproxy = {0x63660005, 40001, 40002};
  std::string t = ruleset(s);
  size_t chain = at(t, "  chain divert {\n");
  size_t end = t.find("  }\n", chain);
  std::string divert = t.substr(chain, end - chain);
  size_t notcp = at(divert, "meta l4proto != tcp return");
  size_t dns = at(divert, "tcp dport 53 return");
  at(divert, "meta nfproto ipv4 ip saddr != 10.240.3.2 return");
  at(divert, "meta nfproto ipv6 ip6 saddr != fd42:1:2:3::2 return");
  at(divert, "ip daddr 10.240.3.1 return");
  at(divert, "ip6 daddr fd42:1:2:3::1 return");
  at(divert, "ip6 daddr { fe80::/10, ff00::/8 } return");
  size_t v4 = at(divert, "meta nfproto ipv4 meta l4proto tcp meta mark set 0x63660005 ct mark set "
                         "0x63660005 tproxy ip to 10.240.3.1:40001 accept");
  size_t v6 = at(divert, "meta nfproto ipv6 meta l4proto tcp meta mark set 0x63660005 ct mark set "
                         "0x63660005 tproxy ip6 to [fd42:1:2:3::1]:40002 accept");
  size_t drop = at(divert, "    drop\n");
  EXPECT_LT(notcp, v4);
  EXPECT_LT(dns, v4);
  EXPECT_LT(v4, drop);
  EXPECT_LT(v6, drop);
  at(t, "type filter hook prerouting priority mangle; policy accept;");
  at(t, "iifname \"cf0badcafe\" jump divert");
  // The relay judges what TPROXY handed it; the table does not judge it again.
  size_t judge = at(t, "  chain judge {\n");
  size_t mark = at(t.substr(judge), "meta mark 0x63660005 accept");
  EXPECT_LT(mark, t.substr(judge).find("ct state established,related accept"));
}

TEST(TproxyRuleset, ProxyOnlyIsTheLastRule) {
  RulesetSpec s = spec();
  s.tproxy = {0x63660005, 40001, 40002};
  s.proxy_only = true;
  s.default_deny = true;
  std::string t = ruleset(s);
  size_t judge = at(t, "  chain judge {\n");
  std::string body = t.substr(judge, t.find("  }\n", judge) - judge);
  size_t dflt = at(body, "jump deny_default_deny");
  size_t only = at(body, "jump deny_proxy_only");
  size_t accept = at(body, "    accept\n");
  EXPECT_LT(dflt, only);
  EXPECT_LT(only, accept);
  at(t, "chain deny_proxy_only {");
  at(t, "counter name \"proxy_only\"");
}

TEST(TproxyRuleset, WithoutIpv6OnlyTheIpv4Listener) {
  RulesetSpec s = spec();
  s.plan.ipv6 = false;
  s.tproxy = {0x63660005, 40001, 0};
  std::string t = ruleset(s);
  at(t, "tproxy ip to 10.240.3.1:40001");
  EXPECT_EQ(t.find("tproxy ip6"), std::string::npos);
}

// As root, in a throwaway network namespace: `fn` runs in a child that
// unshared one; its exit code is the test's verdict (0 passes).
int in_throwaway_netns(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) _exit(100);
    _exit(fn());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

TEST(TproxyRuleset, LoadsInAThrowawayNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (auto api = nft::api(); !api) GTEST_SKIP() << api.error().str();
  RulesetSpec s = spec();
  s.tproxy = {0x63660005, 40001, 40002};
  s.proxy_only = s.default_deny = true;
  const std::string text = ruleset(s) + delete_table(s.table);
  int rc = in_throwaway_netns([&text] {
    auto r = nft_run(text);
    if (!r) {
      fprintf(stderr, "%s\n", r.error().str().c_str());
      return 1;
    }
    return 0;
  });
  EXPECT_EQ(rc, 0) << text;
}

// The rules and routes are made, seen by routing_in_use, and removed
// exactly, through libnl; what else is there is untouched.
TEST(TproxyRouting, AddedAndRemovedForReal) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  int rc = in_throwaway_netns([] {
    auto nl = netlink::Socket::open();  // lo up, as in any network namespace in use
    if (!nl) return 1;
    auto lo = nl->find_link("lo");
    if (!lo || !nl->set_up(*lo)) return 1;
    auto before = netlink::routing_in_use();
    if (!before) return 2;
    auto r = choose_routing(*before, 42);
    if (!r) return 3;
    if (auto s = add_routing(*r, true); !s) {
      fprintf(stderr, "%s\n", s.error().str().c_str());
      return 4;
    }
    auto during = netlink::routing_in_use();
    if (!during) return 5;
    int ours = 0;
    for (const RuleInfo& i : during->rules)
      if (i.priority == r->priority && i.mark == r->mark && i.mask == 0xffffffff &&
          i.table == r->table)
        ++ours;
    if (ours != 2) return 6;  // IPv4 and IPv6
    if (std::find(during->tables.begin(), during->tables.end(), r->table) == during->tables.end())
      return 7;
    // Its own choice is now taken: a second run would get another.
    auto next = choose_routing(*during, 42);
    if (!next || next->mark == r->mark || next->priority == r->priority) return 8;
    if (std::string e = remove_routing(*r); !e.empty()) {
      fprintf(stderr, "%s\n", e.c_str());
      return 9;
    }
    auto after = netlink::routing_in_use();
    if (!after) return 10;
    if (after->rules.size() != before->rules.size() || after->tables != before->tables) return 11;
    // Removing again is no error (cleanup after a partial teardown).
    if (!remove_routing(*r).empty()) return 12;
    return 0;
  });
  EXPECT_EQ(rc, 0);
}

}  // namespace
}  // namespace cf::rootful
