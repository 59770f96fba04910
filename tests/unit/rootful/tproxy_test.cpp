// The rootful backend's --proxy: the run record that carries TPROXY's mark,
// table and rule priority to --cleanup (state.hpp), and the table's TPROXY
// text (ruleset.hpp), loaded for real as root. The choice of the mark,
// table and priority is routing_test.cpp's.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "fixtures.hpp"
#include "nft/nft.hpp"
#include "rootful/host.hpp"
#include "rootful/routing.hpp"
#include "rootful/ruleset.hpp"
#include "rootful/state.hpp"

namespace cf::rootful {
namespace {

using namespace fixtures;

TEST(TproxyRecord, CarriesTheRoutingToCleanup) {
  state::Record r = record();
  EXPECT_EQ(state::render(r).find("mark"), std::string::npos) << "no --proxy: no keys";
  r.mark = r.route_table = kTproxyRange.first + 3;
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
  EXPECT_FALSE(state::parse(state::render(record()) + "mark 1667629057\n"))
      << "the three keys come together";
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

}  // namespace
}  // namespace cf::rootful
