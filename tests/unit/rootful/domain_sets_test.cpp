// cf::rootful::DomainSets: which sets a learnt name's address joins (the
// rules of docs/policy.md, rules 5, 6 and 8), the element's timeout (TTL +
// kNameGraceMs, extended, never shortened), the transaction text, a failed
// transaction queued again, the table's domain rules in policy order, and,
// as root, the table and an element update loaded by libnftables in a
// throwaway network namespace.
#include "rootful/domain_sets.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "nft/nft.hpp"
#include "fixtures.hpp"
#include "rootful/ruleset.hpp"

namespace cf::rootful {
namespace {

using namespace fixtures;

TEST(DomainSets, NamesJoinTheSetsOfTheRulesThatMatchThem) {
  Config c;
  c.deny_domains_exact = {"bad.test"};
  c.deny_domains = {"evil.test"};
  c.allow_domains = {"example.test"};
  c.allow_domains_exact = {"only.test"};
  using V = std::vector<DomainSet>;
  EXPECT_EQ(sets_for(c, "bad.test"), V{DomainSet::DenyExact});
  EXPECT_EQ(sets_for(c, "www.bad.test"), V{});  // exact: no subdomain
  EXPECT_EQ(sets_for(c, "evil.test"), V{DomainSet::Deny});
  EXPECT_EQ(sets_for(c, "a.b.evil.test"), V{DomainSet::Deny});
  EXPECT_EQ(sets_for(c, "notevil.test"), V{});  // a label boundary
  EXPECT_EQ(sets_for(c, "www.example.test"), V{DomainSet::Allow});
  EXPECT_EQ(sets_for(c, "only.test"), V{DomainSet::Allow});
  EXPECT_EQ(sets_for(c, "www.only.test"), V{});
  EXPECT_EQ(sets_for(c, "other.test"), V{});
  c.deny_domains.push_back("www.example.test");  // both: the table tests deny first
  EXPECT_EQ(sets_for(c, "www.example.test"), (V{DomainSet::Deny, DomainSet::Allow}));
}

TEST(DomainSets, AnElementIsReplacedWithItsTimeout) {
  EXPECT_EQ(element_update("childflow_0badcafe", DomainSet::Allow, ip("203.0.113.10"), 61500),
            "add element inet childflow_0badcafe allow_domain4 { 203.0.113.10 }\n"
            "delete element inet childflow_0badcafe allow_domain4 { 203.0.113.10 }\n"
            "add element inet childflow_0badcafe allow_domain4 { 203.0.113.10 timeout 61500ms }\n");
  EXPECT_NE(element_update("t", DomainSet::DenyExact, ip("2001:db8::10"), 1)
                .find("deny_domain_exact6 { 2001:db8::10 timeout 1ms }"),
            std::string::npos);
}

struct Fake {
  std::vector<std::string> loaded;
  bool fail = false;
  DomainSets::Runner runner() {
    return [this](const std::string& t) -> Status {
      if (fail) return Error{"refused"};
      loaded.push_back(t);
      return {};
    };
  }
};

TEST(DomainSets, TimeoutIsTheTtlPlusGraceExtendedNeverShortened) {
  Config c;
  c.allow_domains = {"example.test"};
  policy::Policy pol(c);
  Fake nft;
  DomainSets d(c, pol, "childflow_0badcafe", nft.runner());
  d.learn("www.example.test", ip("203.0.113.10"), 30, 1000);
  ASSERT_TRUE(d.flush());
  ASSERT_EQ(nft.loaded.size(), 1u);
  at(nft.loaded[0], "allow_domain4 { 203.0.113.10 timeout 90000ms }");
  // A shorter TTL later: the element keeps its expiry (91000 > 2000 + 70000).
  d.learn("www.example.test", ip("203.0.113.10"), 10, 2000);
  ASSERT_TRUE(d.flush());
  EXPECT_EQ(nft.loaded.size(), 1u) << "nothing to load";
  // A longer one: extended.
  d.learn("www.example.test", ip("203.0.113.10"), 100, 5000);
  ASSERT_TRUE(d.flush());
  ASSERT_EQ(nft.loaded.size(), 2u);
  at(nft.loaded[1], "allow_domain4 { 203.0.113.10 timeout 160000ms }");
  // TTL 0: the grace alone.
  d.learn("x.example.test", ip("2001:db8:2::10"), 0, 5000);
  ASSERT_TRUE(d.flush());
  at(nft.loaded.back(), "allow_domain6 { 2001:db8:2::10 timeout 60000ms }");
}

TEST(DomainSets, ANameNoRuleMatchesChangesNothing) {
  Config c;
  c.deny_domains = {"evil.test"};
  policy::Policy pol(c);
  Fake nft;
  DomainSets d(c, pol, "t", nft.runner());
  d.learn("www.example.test", ip("203.0.113.10"), 30, 1000);
  ASSERT_TRUE(d.flush());
  EXPECT_TRUE(nft.loaded.empty());
  EXPECT_FALSE(d.denial(ip("203.0.113.10")));
}

TEST(DomainSets, AFailedTransactionIsQueuedAgain) {
  Config c;
  c.allow_domains = {"example.test"};
  policy::Policy pol(c);
  Fake nft;
  DomainSets d(c, pol, "t", nft.runner());
  d.learn("www.example.test", ip("203.0.113.10"), 30, 1000);
  nft.fail = true;
  EXPECT_FALSE(d.flush());
  nft.fail = false;
  d.learn("www.example.test", ip("203.0.113.10"), 30, 1000);  // the same answer again
  ASSERT_TRUE(d.flush());
  ASSERT_EQ(nft.loaded.size(), 1u) << "the element was never loaded: it must be queued again";
  at(nft.loaded[0], "203.0.113.10 timeout 90000ms");
}

TEST(DomainSets, TheDenyingRuleIsKeptForTheReport) {
  Config c;
  c.deny_domains = {"evil.test"};
  c.deny_domains_exact = {"bad.evil.test"};
  policy::Policy pol(c);
  Fake nft;
  DomainSets d(c, pol, "t", nft.runner());
  d.learn("www.evil.test", ip("203.0.113.20"), 30, 1000);
  d.learn("bad.evil.test", ip("203.0.113.21"), 30, 1000);
  ASSERT_TRUE(d.flush());
  auto v = d.denial(ip("203.0.113.20"));
  ASSERT_TRUE(v);
  EXPECT_STREQ(v->reason_code, "deny_domain");
  EXPECT_EQ(v->matched_domain, "evil.test");
  v = d.denial(ip("203.0.113.21"));
  ASSERT_TRUE(v);
  EXPECT_STREQ(v->reason_code, "deny_domain_exact");
  EXPECT_FALSE(d.denial(ip("203.0.113.22")));
}

TEST(DomainSets, TheTableTestsTheSetsInPolicyOrder) {
  RulesetSpec s = spec();
  EXPECT_EQ(ruleset(s).find("domain"), std::string::npos) << "no domain rules, no sets";
  s.domains = true;
  s.default_deny = true;
  s.deny_cidrs = {*Cidr::parse("198.51.100.0/24")};
  s.allow_cidrs = {*Cidr::parse("203.0.113.7/32")};
  std::string t = ruleset(s);
  for (const char* set : {"deny_domain_exact4", "deny_domain_exact6", "deny_domain4",
                          "deny_domain6", "allow_domain4", "allow_domain6"}) {
    size_t p = at(t, std::string("set ") + set + " {");
    std::string body = t.substr(p, t.find("  }\n", p) - p);
    at(body, "flags timeout");
  }
  for (const char* r : kDomainReasons) {
    at(t, std::string("counter ") + r + " {");
    at(t, std::string("chain deny_") + r + " {");
  }
  std::string judge = t.substr(at(t, "chain judge {"));
  size_t cidr = at(judge, "ip daddr 198.51.100.0/24 jump deny_deny_cidr");
  size_t exact4 = at(judge, "ip daddr @deny_domain_exact4 jump deny_deny_domain_exact");
  size_t exact6 = at(judge, "ip6 daddr @deny_domain_exact6 jump deny_deny_domain_exact");
  size_t deny4 = at(judge, "ip daddr @deny_domain4 jump deny_deny_domain");
  at(judge, "ip6 daddr @deny_domain6 jump deny_deny_domain");
  size_t allow_cidr = at(judge, "ip daddr 203.0.113.7 accept");
  size_t allow4 = at(judge, "ip daddr @allow_domain4 accept");
  size_t allow6 = at(judge, "ip6 daddr @allow_domain6 accept");
  size_t dflt = at(judge, "jump deny_default_deny");
  EXPECT_LT(cidr, exact4);
  EXPECT_LT(exact6, deny4);
  EXPECT_LT(deny4, allow_cidr);
  EXPECT_LT(allow_cidr, allow4);
  EXPECT_LT(allow6, dflt);
}

// As root: the table with its sets, then element updates (a new element,
// the same one replaced), loaded by libnftables in a namespace of our own.
TEST(DomainSets, LoadsInAThrowawayNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto api = nft::api();
  if (!api) GTEST_SKIP() << api.error().str();
  RulesetSpec s = spec();
  s.domains = true;
  s.default_deny = true;
  const std::string table = ruleset(s);
  const std::string updates =
      element_update(s.table, DomainSet::Allow, ip("203.0.113.10"), 90000) +
      element_update(s.table, DomainSet::Deny, ip("2001:db8:2::10"), 60000) +
      element_update(s.table, DomainSet::DenyExact, ip("203.0.113.11"), 1000);
  const std::string again = element_update(s.table, DomainSet::Allow, ip("203.0.113.10"), 160000);
  const std::string list = "list set inet childflow_0badcafe allow_domain4\n";
  int rc = in_throwaway_netns([&] {
    const nft::Api* a = *api;
    for (const std::string* text : {&table, &updates, &again, &list}) {
      nft_ctx* ctx = a->ctx_new(NFT_CTX_DEFAULT);
      a->buffer_output(ctx);
      a->buffer_error(ctx);
      int status = a->run_cmd_from_buffer(ctx, text->c_str());
      std::string out = a->get_output_buffer(ctx);
      if (status != 0) {
        const char* err = a->get_error_buffer(ctx);
        (void)!::write(2, err, strlen(err));
        return 1;
      }
      // Replaced, not kept: the longer timeout is the element's now.
      if (text == &list && out.find("timeout 2m40s") == std::string::npos) {
        (void)!::write(2, out.data(), out.size());
        return 2;
      }
      a->ctx_free(ctx);
    }
    return 0;
  });
  EXPECT_EQ(rc, 0) << table << updates;
}

}  // namespace
}  // namespace cf::rootful
