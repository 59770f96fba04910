// cf::rootful::ruleset: the run's nftables table as text. The text is checked
// rule by rule (names, the tree's addresses, the order of docs/policy.md,
// how a denial rejects), and, as root, loaded for real by libnftables in a
// throwaway network namespace, so a syntax the library refuses fails here
// and not in a run.
#include "rootful/ruleset.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "nft/nft.hpp"
#include "rootful/host.hpp"
#include "fixtures.hpp"

namespace cf::rootful {
namespace {

using namespace fixtures;

TEST(Ruleset, OneTableNamedAfterTheRunReplacedWhole) {
  std::string t = ruleset(spec());
  EXPECT_EQ(t.rfind("add table inet childflow_0badcafe\ndelete table inet childflow_0badcafe\n"
                    "table inet childflow_0badcafe {\n",
                    0),
            0u);
  EXPECT_EQ(t.find("table ", t.find("table inet childflow_0badcafe {") + 1), std::string::npos)
      << "exactly one table";
  EXPECT_EQ(delete_table("childflow_0badcafe"), "delete table inet childflow_0badcafe\n");
}

TEST(Ruleset, HooksTheTreesLinkOnly) {
  std::string t = ruleset(spec());
  at(t, "iifname \"cf0badcafe\" jump judge");
  at(t, "oifname \"cf0badcafe\" ct state established,related accept");
  at(t, "oifname \"cf0badcafe\" drop");
  at(t, "iifname \"cf0badcafe\" jump to_host");
  at(t, "type filter hook forward priority filter; policy accept;");
  at(t, "type filter hook input priority filter; policy accept;");
}

TEST(Ruleset, MasqueradesBothFamiliesAndAntiSpoofs) {
  std::string t = ruleset(spec());
  at(t, "type nat hook postrouting priority srcnat; policy accept;");
  at(t, "oifname != \"cf0badcafe\" ip saddr 10.240.3.2 masquerade");
  at(t, "oifname != \"cf0badcafe\" ip6 saddr fd42:1:2:3::2 masquerade");
  at(t, "meta nfproto ipv4 ip saddr != 10.240.3.2 drop");
  at(t, "meta nfproto ipv6 ip6 saddr != fd42:1:2:3::2 drop");
}

TEST(Ruleset, WireEgressPinsTheMasqueradeToTheRunsPorts) {
  RulesetSpec s = spec();
  s.masquerade_ports = {{61512, 62023}};
  std::string t = ruleset(s);
  size_t v4 = at(t, "oifname != \"cf0badcafe\" ip saddr 10.240.3.2 meta l4proto { tcp, udp } "
                   "masquerade to :61512-62023\n");
  size_t v6 = at(t, "oifname != \"cf0badcafe\" ip6 saddr fd42:1:2:3::2 meta l4proto { tcp, udp } "
                   "masquerade to :61512-62023\n");
  // The other protocols (no ports) are masqueraded as before, after them.
  EXPECT_LT(v4, at(t, "oifname != \"cf0badcafe\" ip saddr 10.240.3.2 masquerade\n"));
  EXPECT_LT(v6, at(t, "oifname != \"cf0badcafe\" ip6 saddr fd42:1:2:3::2 masquerade\n"));
  EXPECT_EQ(ruleset(spec()).find(" to :"), std::string::npos) << "no range unless asked";
}

TEST(Ruleset, WithoutIpv6TheTreesIpv6IsDropped) {
  RulesetSpec s = spec();
  s.plan.ipv6 = false;
  std::string t = ruleset(s);
  at(t, "meta nfproto ipv6 drop");
  EXPECT_EQ(t.find("ip6 saddr fd42"), std::string::npos);
  EXPECT_EQ(t.find("fd42:1:2:3::1"), std::string::npos);
}

TEST(Ruleset, DnsToTheGatewayOnlyTheRestOfTheHostRejected) {
  std::string t = ruleset(spec());
  size_t dns = at(t, "ip daddr 10.240.3.1 meta l4proto { tcp, udp } th dport 53 accept");
  at(t, "ip6 daddr fd42:1:2:3::1 meta l4proto { tcp, udp } th dport 53 accept");
  size_t rst = at(t, "ip daddr 10.240.3.1 meta l4proto tcp reject with tcp reset");
  at(t, "ip6 daddr fd42:1:2:3::1 reject with icmpx type admin-prohibited");
  EXPECT_LT(dns, rst);
  // Broadcast and multicast reach no host socket: before the judge.
  size_t bcast = at(t, "ip daddr { 255.255.255.255, 224.0.0.0/4 } drop");
  size_t fib = at(t, "fib daddr type { broadcast, multicast, anycast } drop");
  // Other host addresses are judged like forwarded traffic.
  size_t to_host = at(t, "chain to_host {");
  EXPECT_GT(bcast, to_host);
  EXPECT_GT(t.find("jump judge", to_host), rst);
  EXPECT_GT(t.find("jump judge", to_host), fib);
}

TEST(Ruleset, ProxyDnsRemoteRejectsTheSyntheticRangesAndDirectDns) {
  RulesetSpec s = spec();
  std::string plain = ruleset(s);
  EXPECT_EQ(plain.find("198.18.0.0/15"), std::string::npos);
  EXPECT_EQ(plain.find("udp dport 53 reject"), std::string::npos);
  s.synthetic = true;
  std::string t = ruleset(s);
  size_t judge = at(t, "chain judge {");
  size_t r4 = at(t, "ip daddr 198.18.0.0/15 reject with icmpx type admin-prohibited");
  at(t, "ip daddr 198.18.0.0/15 meta l4proto tcp reject with tcp reset");
  at(t, "ip6 daddr fd63:666c:6f77::/96 reject with icmpx type admin-prohibited");
  size_t dns = at(t, "udp dport 53 reject with icmpx type admin-prohibited");
  at(t, "tcp dport 53 reject with tcp reset");
  EXPECT_GT(r4, judge);
  EXPECT_LT(dns, t.find("\n    accept\n", judge)) << "before the judge's final accept";
}

TEST(Ruleset, NoPolicyRulesByDefault) {
  std::string t = ruleset(spec());
  size_t judge = at(t, "chain judge {");
  std::string body = t.substr(judge, t.find("  }\n", judge) - judge);
  EXPECT_EQ(body.find("jump deny_"), std::string::npos) << body;
  at(body, "ct state established,related accept");
}

TEST(Ruleset, RulesInPolicyOrder) {
  RulesetSpec s = spec();
  s.offline = true;
  s.block_metadata = true;
  s.block_private = true;
  s.default_deny = true;
  s.deny_cidrs = {cidr("203.0.113.0/24"), cidr("2001:db8::/32")};
  s.allow_cidrs = {cidr("198.51.100.7/32"), cidr("2001:db8:2::10/128")};
  std::string t = ruleset(s);
  size_t judge = at(t, "chain judge {");
  size_t offline = at(t.substr(judge), "jump deny_offline");
  size_t established = at(t.substr(judge), "ct state established,related accept");
  size_t metadata = at(t.substr(judge), "ip daddr 169.254.169.254 jump deny_metadata");
  at(t, "ip6 daddr fd00:ec2::254 jump deny_metadata");
  size_t priv = at(t.substr(judge), "ip daddr 10.0.0.0/8 jump deny_private");
  at(t, "ip6 daddr fc00::/7 jump deny_private");
  size_t deny = at(t.substr(judge), "ip daddr 203.0.113.0/24 jump deny_deny_cidr");
  at(t, "ip6 daddr 2001:db8::/32 jump deny_deny_cidr");
  size_t allow = at(t.substr(judge), "ip daddr 198.51.100.7 accept");
  at(t, "ip6 daddr 2001:db8:2::10 accept");
  size_t dflt = at(t.substr(judge), "jump deny_default_deny");
  EXPECT_LT(offline, established);
  EXPECT_LT(established, metadata);
  EXPECT_LT(metadata, priv);
  EXPECT_LT(priv, deny);
  EXPECT_LT(deny, allow);
  EXPECT_LT(allow, dflt);
}

TEST(Ruleset, EveryDenialIsCountedRememberedAndRejected) {
  std::string t = ruleset(spec());
  for (const char* r : kReasons) {
    std::string chain = std::string("chain deny_") + r + " {\n";
    size_t c = at(t, chain);
    std::string body = t.substr(c, t.find("  }\n", c) - c);
    size_t count = at(body, std::string("counter name \"") + r + "\"");
    size_t remember = at(body, "jump remember");
    size_t rst = at(body, "meta l4proto tcp reject with tcp reset");
    size_t icmp = at(body, "reject with icmpx type admin-prohibited");
    EXPECT_LT(count, remember);
    EXPECT_LT(remember, rst);
    EXPECT_LT(rst, icmp) << "TCP gets its reset before the catch-all ICMP reject";
    at(t, std::string("counter ") + r + " {");
  }
  for (const char* set : kDeniedSets) at(t, std::string("set ") + set + " {");
  at(t, "add @denied4p { ip daddr . meta l4proto . th dport }");
  at(t, "add @denied6 { ip6 daddr . meta l4proto }");
}

TEST(Ruleset, IfaceMarksTheTreesPacketsBeforeRouting) {
  EXPECT_EQ(ruleset(spec()).find("egress_mark"), std::string::npos) << "no --iface, no mark";
  RulesetSpec s = spec();
  s.egress_mark = 0x43461234;
  std::string t = ruleset(s);
  size_t chain = at(t, "chain egress_mark {");
  EXPECT_LT(chain, at(t, "type filter hook prerouting priority mangle - 1; policy accept;"));
  EXPECT_LT(chain, at(t, "iifname \"cf0badcafe\" meta mark set 0x43461234"));
}

// As root: libnftables takes the text, in a network namespace of our own.
TEST(Ruleset, LoadsInAThrowawayNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto api = nft::api();
  if (!api) GTEST_SKIP() << api.error().str();
  RulesetSpec s = spec();
  s.offline = s.block_metadata = s.block_private = s.default_deny = true;
  s.deny_cidrs = {cidr("203.0.113.0/24"), cidr("2001:db8::/32"), cidr("203.0.113.0/25")};
  s.allow_cidrs = {cidr("198.51.100.7/32")};
  s.egress_mark = 0x43461234;
  s.masquerade_ports = {{61000, 61511}};
  const std::string text = ruleset(s) + ruleset(s) + delete_table(s.table);
  int rc = in_throwaway_netns([&text] {
    auto r = nft_run(text);
    if (!r) (void)!::write(2, r.error().str().data(), r.error().str().size());
    return r ? 0 : 1;
  });
  EXPECT_EQ(rc, 0) << text;
}

}  // namespace
}  // namespace cf::rootful
