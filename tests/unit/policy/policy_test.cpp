// cf::policy: the rule order of docs/policy.md (every precedence pair of the
// ten rules: when rule i and a later rule j both match, rule i decides), the
// verdict fields each rule fills in, DNS-name judging, the name<->address
// mapping with its TTL + grace expiry, and domain_matches' label boundary.
//
// The precedence matrix builds, for each pair (i, j), a Config that enables
// exactly rules i and j, both of which match one destination: the metadata
// address 169.254.169.254 (also in 169.254/16, so "private"), for which the
// policy learnt the name meta.example.com from a DNS answer. The expected
// verdict is rule i's own: a denial with its reason code, or "allowed" for
// the two allow rules (7, 8). The same matrix runs for IPv6 (fd00:ec2::254,
// metadata and inside fc00::/7).
#include "policy/policy.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <fmt/format.h>

namespace cf::policy {
namespace {

IpAddr ip(const char* text) {
  auto a = IpAddr::parse(text);
  EXPECT_TRUE(a.has_value()) << text;
  return a.value_or(IpAddr{});
}

Cidr cidr(const char* text) {
  auto c = Cidr::parse(text);
  EXPECT_TRUE(c) << text;
  return c ? *c : Cidr{};
}

constexpr uint64_t kNow = 1'000'000;

// The ten rules of docs/policy.md, in order.
enum Rule : int {
  kOffline = 1,
  kMetadata,
  kPrivate,
  kDenyCidr,
  kDenyDomainExact,
  kDenyDomain,
  kAllowCidr,
  kAllowDomain,
  kDefaultDeny,
  kProxyOnly,
};
constexpr int kRules = 10;

const char* rule_name(int r) {
  static const char* names[] = {"",           "offline",   "metadata",          "private",
                                "deny_cidr",  "deny_domain_exact", "deny_domain", "allow_cidr",
                                "allow_domain", "default_deny", "proxy_only"};
  return names[r];
}

// What the verdict of each rule looks like: null code = allowed.
struct Expect {
  const char* reason_code;
  const char* control;
};
Expect expected(int r) {
  switch (r) {
    case kOffline: return {"offline", "--offline"};
    case kMetadata: return {"metadata", "--block-metadata"};
    case kPrivate: return {"private", "--block-private"};
    case kDenyCidr: return {"deny_cidr", "--deny-cidr"};
    case kDenyDomainExact: return {"deny_domain_exact", "--deny-domain-exact"};
    case kDenyDomain: return {"deny_domain", "--deny-domain"};
    case kAllowCidr: return {nullptr, nullptr};
    case kAllowDomain: return {nullptr, nullptr};
    case kDefaultDeny: return {"default_deny", "--default-policy"};
    case kProxyOnly: return {"proxy_only", "--proxy-only"};
    default: return {"?", "?"};
  }
}

// Destination that every rule can match, per family.
struct Target {
  const char* addr;
  const char* net;  // a prefix holding addr, for the CIDR rules
};
const Target kTargets[] = {{"169.254.169.254", "169.254.0.0/16"},
                           {"fd00:ec2::254", "fd00::/8"}};
const char* kName = "meta.example.com";

// Turns rule r on in c so that it matches the target.
void enable(Config& c, int r, const Target& t) {
  switch (r) {
    case kOffline: c.offline = true; break;
    case kMetadata: c.block_metadata = true; break;
    case kPrivate: c.block_private = true; break;
    case kDenyCidr: c.deny_cidrs.push_back(cidr(t.net)); break;
    case kDenyDomainExact: c.deny_domains_exact.push_back(kName); break;
    case kDenyDomain: c.deny_domains.push_back("example.com"); break;
    case kAllowCidr: c.allow_cidrs.push_back(cidr(t.net)); break;
    case kAllowDomain: c.allow_domains.push_back("example.com"); break;
    case kDefaultDeny: c.default_policy = DefaultPolicy::Deny; break;
    case kProxyOnly: c.proxy_only = true; break;
    default: ADD_FAILURE() << "rule " << r;
  }
}

Verdict judge_target(const Config& c, const Target& t, Proto proto) {
  Policy p(c);
  p.learn(kName, ip(t.addr), 300, kNow);
  return p.judge_addr(proto, ip(t.addr), /*carried_by_proxy=*/false, kNow + 1);
}

std::string describe(const Verdict& v) {
  return fmt::format("allow={} code={} control={} reason=[{}]", v.allow,
                     v.reason_code ? v.reason_code : "null", v.control ? v.control : "null",
                     v.reason);
}

// Each rule alone matches the target (the precondition of the matrix).
TEST(PolicyPrecedence, EachRuleAloneMatches) {
  for (const auto& t : kTargets)
    for (int r = 1; r <= kRules; ++r) {
      if (r == kAllowCidr || r == kAllowDomain) continue;  // allow = no-op alone
      Config c;
      enable(c, r, t);
      Verdict v = judge_target(c, t, Proto::Udp);
      EXPECT_FALSE(v.allow) << rule_name(r) << " " << t.addr << ": " << describe(v);
      ASSERT_NE(v.reason_code, nullptr) << rule_name(r);
      EXPECT_STREQ(v.reason_code, expected(r).reason_code) << t.addr;
      EXPECT_STREQ(v.control, expected(r).control) << t.addr;
    }
}

// Checks pair (i, j) for one target over TCP, UDP and ICMP: rule i decides.
void check_pair(int i, int j, const Target& t) {
  Config c;
  enable(c, i, t);
  enable(c, j, t);
  for (Proto proto : {Proto::Tcp, Proto::Udp, ip(t.addr).is_v4() ? Proto::Icmp4 : Proto::Icmp6}) {
    Verdict v = judge_target(c, t, proto);
    std::string where = fmt::format("pair ({} {}) vs ({} {}) to {} over {}: {}", i, rule_name(i),
                                    j, rule_name(j), t.addr, name(proto), describe(v));
    Expect e = expected(i);
    if (e.reason_code == nullptr) {
      EXPECT_TRUE(v.allow) << where << " (an allow rule matched first)";
    } else {
      EXPECT_FALSE(v.allow) << where;
      EXPECT_STREQ(v.reason_code ? v.reason_code : "null", e.reason_code) << where;
      EXPECT_STREQ(v.control ? v.control : "null", e.control) << where;
    }
  }
}

bool allow_vs_proxy_only(int i, int j) {
  return (i == kAllowCidr || i == kAllowDomain) && j == kProxyOnly;
}

// Every pair i < j: rule i decides, over TCP, UDP and ICMP. The two pairs of
// an allow rule with --proxy-only are their own test below.
TEST(PolicyPrecedence, EveryPairFirstRuleWins) {
  int pairs = 0;
  for (const auto& t : kTargets)
    for (int i = 1; i <= kRules; ++i)
      for (int j = i + 1; j <= kRules; ++j) {
        ++pairs;
        if (allow_vs_proxy_only(i, j)) continue;
        check_pair(i, j, t);
      }
  EXPECT_EQ(pairs, 2 * kRules * (kRules - 1) / 2);
}

// docs/policy.md: "first match wins", and rules 7/8 (allow) come before rule
// 10 (--proxy-only). So a flow to an allowed destination that the proxy does
// not carry (UDP, ICMP, or TCP without a proxy) is allowed, read literally.
// Kept apart so a deliberate change of this reading (allow rules only lift
// default-deny; --proxy-only always applies) shows up as exactly this test
// and its documentation (docs/policy.md) rather than as noise in the matrix.
TEST(PolicyPrecedence, AllowRulesPrecedeProxyOnly) {
  for (const auto& t : kTargets) {
    check_pair(kAllowCidr, kProxyOnly, t);
    check_pair(kAllowDomain, kProxyOnly, t);
  }
}

// The verdict of each denying rule carries what matched and a reason naming
// the flag (docs/flow-log-schema.md: matched_cidr, matched_domain, reason).
TEST(PolicyVerdict, FieldsPerRule) {
  const Target& t = kTargets[0];
  auto one = [&](int r) {
    Config c;
    enable(c, r, t);
    return judge_target(c, t, Proto::Tcp);
  };
  Verdict v = one(kOffline);
  EXPECT_EQ(v.reason, "blocked by `--offline`");
  EXPECT_FALSE(v.matched_cidr);
  EXPECT_FALSE(v.matched_domain);

  v = one(kMetadata);
  ASSERT_TRUE(v.matched_cidr);
  EXPECT_EQ(v.matched_cidr->str(), "169.254.169.254/32");
  EXPECT_NE(v.reason.find("--block-metadata"), std::string::npos) << v.reason;

  v = one(kPrivate);
  ASSERT_TRUE(v.matched_cidr);
  EXPECT_EQ(v.matched_cidr->str(), "169.254.0.0/16");
  EXPECT_NE(v.reason.find("--block-private"), std::string::npos) << v.reason;

  v = one(kDenyCidr);
  ASSERT_TRUE(v.matched_cidr);
  EXPECT_EQ(v.matched_cidr->str(), "169.254.0.0/16");
  EXPECT_EQ(v.reason, "blocked by `--deny-cidr 169.254.0.0/16`");

  v = one(kDenyDomainExact);
  ASSERT_TRUE(v.matched_domain);
  EXPECT_EQ(*v.matched_domain, kName);
  EXPECT_EQ(v.reason, "blocked by `--deny-domain-exact meta.example.com`");
  EXPECT_FALSE(v.matched_cidr);

  v = one(kDenyDomain);
  ASSERT_TRUE(v.matched_domain);
  EXPECT_EQ(*v.matched_domain, "example.com");
  EXPECT_EQ(v.reason, "blocked by `--deny-domain example.com`");

  v = one(kDefaultDeny);
  EXPECT_EQ(v.reason, "blocked by `--default-policy deny`");

  v = one(kProxyOnly);
  EXPECT_NE(v.reason.find("--proxy-only"), std::string::npos) << v.reason;

  // Allowed verdicts carry nothing.
  Config c;
  Verdict a = judge_target(c, t, Proto::Tcp);
  EXPECT_TRUE(a.allow);
  EXPECT_EQ(a.reason_code, nullptr);
  EXPECT_EQ(a.control, nullptr);
  EXPECT_TRUE(a.reason.empty());
}

// Every metadata endpoint of docs/policy.md (two plus two beyond), and only
// with --block-metadata; a neighbour address is not one.
TEST(PolicyRules, MetadataEndpoints) {
  Config c;
  c.block_metadata = true;
  Policy p(c);
  for (const char* a : {"169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"}) {
    Verdict v = p.judge_addr(Proto::Tcp, ip(a), false, kNow);
    EXPECT_FALSE(v.allow) << a;
    EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "metadata") << a;
  }
  for (const char* a : {"169.254.169.253", "100.100.100.201", "fd00:ec2::253", "203.0.113.10"})
    EXPECT_TRUE(p.judge_addr(Proto::Tcp, ip(a), false, kNow).allow) << a;
  Config off;
  EXPECT_TRUE(Policy(off).judge_addr(Proto::Tcp, ip("169.254.169.254"), false, kNow).allow);
}

// Every private range of docs/policy.md: its first and last address are
// denied; addresses just outside are not.
TEST(PolicyRules, PrivateRanges) {
  Config c;
  c.block_private = true;
  Policy p(c);
  struct R {
    const char* first;
    const char* last;
    const char* range;
  };
  const R ranges[] = {
      {"10.0.0.0", "10.255.255.255", "10.0.0.0/8"},
      {"172.16.0.0", "172.31.255.255", "172.16.0.0/12"},
      {"192.168.0.0", "192.168.255.255", "192.168.0.0/16"},
      {"127.0.0.0", "127.255.255.255", "127.0.0.0/8"},
      {"169.254.0.0", "169.254.255.255", "169.254.0.0/16"},
      {"100.64.0.0", "100.127.255.255", "100.64.0.0/10"},
      {"0.0.0.0", "0.255.255.255", "0.0.0.0/8"},
      {"::1", "::1", "::1/128"},
      {"::", "::", "::/128"},
      {"fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fc00::/7"},
      {"fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::/10"},
  };
  for (const auto& r : ranges)
    for (const char* a : {r.first, r.last}) {
      Verdict v = p.judge_addr(Proto::Udp, ip(a), false, kNow);
      EXPECT_FALSE(v.allow) << a;
      EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "private") << a;
      ASSERT_TRUE(v.matched_cidr) << a;
      EXPECT_EQ(v.matched_cidr->str(), r.range) << a;
    }
  for (const char* a : {"11.0.0.0", "172.15.255.255", "172.32.0.0", "192.169.0.0", "128.0.0.0",
                        "169.255.0.0", "100.63.255.255", "100.128.0.0", "1.0.0.0", "::2",
                        "fe00::", "fec0::", "2001:db8::1", "203.0.113.10", "198.51.100.2"})
    EXPECT_TRUE(p.judge_addr(Proto::Udp, ip(a), false, kNow).allow) << a;
}

// Allow rules under default-deny: exactly the allowed target passes.
TEST(PolicyRules, AllowUnderDefaultDeny) {
  Config c;
  c.default_policy = DefaultPolicy::Deny;
  c.allow_cidrs.push_back(cidr("203.0.113.10/32"));
  c.allow_domains_exact.push_back("echo.example.test");
  Policy p(c);
  p.learn("echo.example.test", ip("203.0.113.20"), 300, kNow);
  p.learn("sub.echo.example.test", ip("203.0.113.21"), 300, kNow);
  EXPECT_TRUE(p.judge_addr(Proto::Tcp, ip("203.0.113.10"), false, kNow).allow);
  EXPECT_TRUE(p.judge_addr(Proto::Tcp, ip("203.0.113.20"), false, kNow).allow);
  Verdict v = p.judge_addr(Proto::Tcp, ip("203.0.113.21"), false, kNow);
  EXPECT_FALSE(v.allow) << "a subdomain is not allowed by --allow-domain-exact";
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "default_deny");
  for (const char* a : {"203.0.113.11", "203.0.113.9", "198.51.100.1"}) {
    Verdict d = p.judge_addr(Proto::Tcp, ip(a), false, kNow);
    EXPECT_FALSE(d.allow) << a;
    EXPECT_STREQ(d.reason_code ? d.reason_code : "null", "default_deny") << a;
  }
}

TEST(PolicyRules, ProxyOnlyPassesProxiedFlows) {
  Config c;
  c.proxy_only = true;
  Policy p(c);
  EXPECT_TRUE(p.judge_addr(Proto::Tcp, ip("203.0.113.10"), true, kNow).allow);
  for (Proto proto : {Proto::Tcp, Proto::Udp, Proto::Icmp4}) {
    Verdict v = p.judge_addr(proto, ip("203.0.113.10"), false, kNow);
    EXPECT_FALSE(v.allow) << name(proto);
    EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "proxy_only");
    EXPECT_NE(v.reason.find(name(proto)), std::string::npos) << v.reason;
  }
  // Being carried by the proxy does not lift the other rules.
  Config d;
  d.proxy_only = true;
  d.deny_cidrs.push_back(cidr("203.0.113.0/24"));
  Verdict v = Policy(d).judge_addr(Proto::Tcp, ip("203.0.113.10"), true, kNow);
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "deny_cidr");
}

// --- DNS queries: judged by name --------------------------------------------

// The rules that apply to names, in order: 1 offline, 5 deny-domain-exact,
// 6 deny-domain, 8 allow-domain, 9 default-deny (only with a domain allow
// rule). Every pair: the earlier one decides.
TEST(PolicyNames, EveryPairFirstRuleWins) {
  const int rules[] = {kOffline, kDenyDomainExact, kDenyDomain, kAllowDomain, kDefaultDeny};
  const Target& t = kTargets[0];
  for (size_t a = 0; a < std::size(rules); ++a)
    for (size_t b = a + 1; b < std::size(rules); ++b) {
      int i = rules[a], j = rules[b];
      Config c;
      enable(c, i, t);
      enable(c, j, t);
      if (j == kDefaultDeny && i != kAllowDomain)
        c.allow_domains_exact.push_back("other.test");  // default-deny needs an allow rule
      Verdict v = Policy(c).judge_name(kName);
      std::string where = fmt::format("name pair ({}) vs ({}): {}", rule_name(i), rule_name(j),
                                      describe(v));
      Expect e = expected(i);
      if (e.reason_code == nullptr) {
        EXPECT_TRUE(v.allow) << where;
      } else {
        EXPECT_FALSE(v.allow) << where;
        EXPECT_STREQ(v.reason_code ? v.reason_code : "null", e.reason_code) << where;
      }
    }
}

TEST(PolicyNames, AddressRulesDoNotApplyToNames) {
  Config c;
  c.block_private = true;
  c.block_metadata = true;
  c.deny_cidrs.push_back(cidr("0.0.0.0/0"));
  c.deny_cidrs.push_back(cidr("::/0"));
  c.proxy_only = true;  // decision: relayed DNS is exempt (docs/policy.md)
  EXPECT_TRUE(Policy(c).judge_name("www.example.test").allow);
}

TEST(PolicyNames, DefaultDenyNeedsADomainAllowRule) {
  Config c;
  c.default_policy = DefaultPolicy::Deny;
  c.allow_cidrs.push_back(cidr("203.0.113.10/32"));
  EXPECT_TRUE(Policy(c).judge_name("www.example.test").allow)
      << "with only CIDR allow rules names still resolve";
  c.allow_domains.push_back("example.test");
  Policy p(c);
  EXPECT_TRUE(p.judge_name("www.example.test").allow);
  EXPECT_TRUE(p.judge_name("example.test").allow);
  Verdict v = p.judge_name("www.example.org");
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "default_deny");
  v = p.judge_name("badexample.test");
  EXPECT_FALSE(v.allow) << "no label boundary: not a subdomain";
}

// --proxy-dns remote: a flow to a synthetic address is judged by the name it
// stands for (judge_named). Every pair of the rules that can see a name
// (1, 5, 6, 8, 9, 10): the earlier one decides; the address rules never
// apply.
TEST(PolicyNamed, EveryPairFirstRuleWins) {
  const int rules[] = {kOffline,     kDenyDomainExact, kDenyDomain,
                       kAllowDomain, kDefaultDeny,     kProxyOnly};
  const Target& t = kTargets[0];
  for (size_t a = 0; a < std::size(rules); ++a)
    for (size_t b = a + 1; b < std::size(rules); ++b) {
      int i = rules[a], j = rules[b];
      Config c;
      enable(c, i, t);
      enable(c, j, t);
      Verdict v = Policy(c).judge_named(Proto::Tcp, kName, /*carried_by_proxy=*/false);
      std::string where = fmt::format("named pair ({}) vs ({}): {}", rule_name(i),
                                      rule_name(j), describe(v));
      Expect e = expected(i);
      if (e.reason_code == nullptr) {
        EXPECT_TRUE(v.allow) << where;
      } else {
        EXPECT_FALSE(v.allow) << where;
        EXPECT_STREQ(v.reason_code ? v.reason_code : "null", e.reason_code) << where;
        EXPECT_STREQ(v.control ? v.control : "null", e.control) << where;
      }
    }
}

TEST(PolicyNamed, AddressRulesCannotSeeAName) {
  Config c;
  c.block_private = true;
  c.block_metadata = true;
  c.deny_cidrs.push_back(cidr("0.0.0.0/0"));
  c.deny_cidrs.push_back(cidr("198.18.0.0/15"));
  EXPECT_TRUE(Policy(c).judge_named(Proto::Tcp, "www.example.test", true).allow);
  // Default deny: an allow-cidr rule cannot allow what has no address; only a
  // domain allow rule can (unlike judge_name, which needs one to deny).
  c = Config{};
  c.default_policy = DefaultPolicy::Deny;
  c.allow_cidrs.push_back(cidr("198.18.0.0/15"));
  Verdict v = Policy(c).judge_named(Proto::Tcp, "www.example.test", true);
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "default_deny");
  c.allow_domains_exact.push_back("www.example.test");
  EXPECT_TRUE(Policy(c).judge_named(Proto::Tcp, "www.example.test", true).allow);
  EXPECT_FALSE(Policy(c).judge_named(Proto::Tcp, "a.www.example.test", true).allow);
}

TEST(PolicyNamed, ProxyOnlyPassesTheProxiedFlow) {
  Config c;
  c.proxy_only = true;
  EXPECT_TRUE(Policy(c).judge_named(Proto::Tcp, "www.example.test", true).allow);
  Verdict v = Policy(c).judge_named(Proto::Udp, "www.example.test", false);
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "proxy_only");
  EXPECT_NE(v.reason.find("udp"), std::string::npos) << v.reason;
}

TEST(PolicyNames, ExactVersusSubdomain) {
  Config c;
  c.default_policy = DefaultPolicy::Deny;
  c.allow_domains_exact.push_back("wild.example.test");
  Policy p(c);
  EXPECT_TRUE(p.judge_name("wild.example.test").allow);
  Verdict v = p.judge_name("a.wild.example.test");
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "default_deny");

  Config s;
  s.default_policy = DefaultPolicy::Deny;
  s.allow_domains.push_back("wild.example.test");
  EXPECT_TRUE(Policy(s).judge_name("a.wild.example.test").allow);
  EXPECT_TRUE(Policy(s).judge_name("b.a.wild.example.test").allow);

  Config d;
  d.deny_domains_exact.push_back("wild.example.test");
  EXPECT_TRUE(Policy(d).judge_name("a.wild.example.test").allow);
  EXPECT_FALSE(Policy(d).judge_name("wild.example.test").allow);
}

// --- the name <-> address mapping ---------------------------------------------

TEST(PolicyNames, MappingExpiresAfterTtlPlusGrace) {
  Config c;
  c.deny_domains.push_back("example.test");
  Policy p(c);
  const IpAddr a = ip("203.0.113.10");
  const uint32_t ttl = 300;
  const uint64_t t0 = 5'000'000;
  const uint64_t end = t0 + uint64_t(ttl) * 1000 + kNameGraceMs;
  EXPECT_EQ(kNameGraceMs, 60'000u) << "docs/policy.md documents 60 s";
  EXPECT_TRUE(p.judge_addr(Proto::Tcp, a, false, t0).allow) << "nothing learnt yet";
  p.learn("www.example.test", a, ttl, t0);

  for (uint64_t now : {t0, t0 + 1, end - 1}) {
    Verdict v = p.judge_addr(Proto::Tcp, a, false, now);
    EXPECT_FALSE(v.allow) << "at +" << (now - t0) << " ms";
    EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "deny_domain");
    EXPECT_EQ(p.names_for(a, now), std::vector<std::string>{"www.example.test"});
  }
  for (uint64_t now : {end, end + 1}) {
    EXPECT_TRUE(p.judge_addr(Proto::Tcp, a, false, now).allow) << "at +" << (now - t0) << " ms";
    EXPECT_TRUE(p.names_for(a, now).empty());
  }
  // TTL 0 still lives for the grace period.
  p.learn("zero.example.test", ip("203.0.113.11"), 0, t0);
  EXPECT_FALSE(p.judge_addr(Proto::Tcp, ip("203.0.113.11"), false, t0 + kNameGraceMs - 1).allow);
  EXPECT_TRUE(p.judge_addr(Proto::Tcp, ip("203.0.113.11"), false, t0 + kNameGraceMs).allow);
}

TEST(PolicyNames, RelearningExtendsAndNeverShortens) {
  Config c;
  Policy p(c);
  const IpAddr a = ip("2001:db8:2::10");
  p.learn("www.example.test", a, 10, 0);
  p.learn("www.example.test", a, 100, 50'000);  // later answer, longer life
  EXPECT_FALSE(p.names_for(a, 50'000 + 100'000 + kNameGraceMs - 1).empty());
  EXPECT_TRUE(p.names_for(a, 50'000 + 100'000 + kNameGraceMs).empty());
  p.learn("v6.example.test", a, 1, 0);
  p.learn("v6.example.test", a, 1, 0);  // a short answer does not shorten
  EXPECT_EQ(p.names_for(a, 0).size(), 2u) << "no duplicates";
}

TEST(PolicyNames, SeveralNamesPerAddressMostRecentFirst) {
  Config c;
  c.deny_domains_exact.push_back("b.example.test");
  Policy p(c);
  const IpAddr a = ip("203.0.113.10");
  p.learn("a.example.test", a, 300, kNow);
  p.learn("b.example.test", a, 300, kNow);
  EXPECT_EQ(p.names_for(a, kNow), (std::vector<std::string>{"b.example.test", "a.example.test"}));
  // Any of the names matching a deny rule denies the address.
  Verdict v = p.judge_addr(Proto::Tcp, a, false, kNow);
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "deny_domain_exact");
  // The mapping is per address and per family.
  EXPECT_TRUE(p.names_for(ip("203.0.113.11"), kNow).empty());
  EXPECT_TRUE(p.names_for(ip("::ffff:203.0.113.10"), kNow).empty());
}

// A domain rule never applies to an address nobody resolved, and an allowed
// name makes an address allowed under default-deny only while it is mapped.
TEST(PolicyNames, AllowDomainFollowsTheMapping) {
  Config c;
  c.default_policy = DefaultPolicy::Deny;
  c.allow_domains.push_back("example.test");
  Policy p(c);
  const IpAddr a = ip("203.0.113.10");
  EXPECT_FALSE(p.judge_addr(Proto::Tcp, a, false, kNow).allow);
  p.learn("www.example.test", a, 2, kNow);
  EXPECT_TRUE(p.judge_addr(Proto::Tcp, a, false, kNow + 2000 + kNameGraceMs - 1).allow);
  Verdict v = p.judge_addr(Proto::Tcp, a, false, kNow + 2000 + kNameGraceMs + 1);
  EXPECT_FALSE(v.allow);
  EXPECT_STREQ(v.reason_code ? v.reason_code : "null", "default_deny");
}

// --- domain_matches --------------------------------------------------------------

TEST(DomainMatches, EdgeCases) {
  EXPECT_TRUE(domain_matches("example.com", "example.com"));
  EXPECT_TRUE(domain_matches("www.example.com", "example.com"));
  EXPECT_TRUE(domain_matches("a.b.example.com", "example.com"));
  EXPECT_TRUE(domain_matches("example.com", "com"));
  EXPECT_FALSE(domain_matches("badexample.com", "example.com")) << "no label boundary";
  EXPECT_FALSE(domain_matches("xexample.com", "example.com"));
  EXPECT_FALSE(domain_matches("example.com", "www.example.com")) << "parent of the rule";
  EXPECT_FALSE(domain_matches("example.co", "example.com"));
  EXPECT_FALSE(domain_matches("example.com.evil.test", "example.com"));
  EXPECT_FALSE(domain_matches("com", "example.com"));
  EXPECT_FALSE(domain_matches("", "example.com"));
  EXPECT_FALSE(domain_matches(".com", "example.com"));
  EXPECT_FALSE(domain_matches("ample.com", "example.com"));
}

// The name<->address map is bounded (docs/security.md, "Limits", name_map):
// past its cap a new pair pushes out the oldest, and learn() says so.
TEST(PolicyNames, TheMapIsBoundedAndDropsTheOldestPair) {
  Config c;
  Policy p(c, 4);
  auto addr = [](int i) { return ip(fmt::format("203.0.113.{}", i).c_str()); };
  for (int i = 1; i <= 4; ++i)
    EXPECT_FALSE(p.learn(fmt::format("n{}.example.test", i), addr(i), 300, kNow)) << i;
  EXPECT_EQ(p.name_pairs(), 4u);
  EXPECT_TRUE(p.learn("n5.example.test", addr(5), 300, kNow)) << "full: the oldest goes";
  EXPECT_EQ(p.name_pairs(), 4u);
  EXPECT_TRUE(p.names_for(addr(1), kNow).empty()) << "the first pair learnt was dropped";
  EXPECT_EQ(p.names_for(addr(5), kNow), std::vector<std::string>{"n5.example.test"});
  EXPECT_FALSE(p.learn("n5.example.test", addr(5), 600, kNow)) << "relearning takes no room";
  // A flood of new names keeps the map at its cap.
  for (int i = 0; i < 1000; ++i) p.learn(fmt::format("f{}.example.test", i), addr(i % 250), 300, kNow);
  EXPECT_EQ(p.name_pairs(), 4u);
  EXPECT_EQ(p.names_for(addr(999 % 250), kNow), std::vector<std::string>{"f999.example.test"});
}

// Expired pairs leave the map (swept at most every 10 s, on the next
// learn), so a long run that resolves many short-lived names does not keep
// them all.
TEST(PolicyNames, ExpiredPairsAreSwept) {
  Config c;
  Policy p(c);
  for (int i = 0; i < 100; ++i)
    p.learn(fmt::format("n{}.example.test", i), ip(fmt::format("203.0.113.{}", i).c_str()), 1, 0);
  EXPECT_EQ(p.name_pairs(), 100u);
  uint64_t later = 1000 + kNameGraceMs + 10'000;
  p.learn("fresh.example.test", ip("198.51.100.1"), 300, later);
  EXPECT_EQ(p.name_pairs(), 1u);
  // The address keeps at most 32 names, oldest out first.
  const IpAddr a = ip("198.51.100.2");
  for (int i = 0; i < 40; ++i) p.learn(fmt::format("m{}.example.test", i), a, 300, later);
  EXPECT_EQ(p.names_for(a, later).size(), 32u);
  EXPECT_EQ(p.names_for(a, later).front(), "m39.example.test");
  EXPECT_EQ(p.name_pairs(), 33u);
}

TEST(PolicyProto, Names) {
  EXPECT_STREQ(name(Proto::Tcp), "tcp");
  EXPECT_STREQ(name(Proto::Udp), "udp");
  EXPECT_STREQ(name(Proto::Dns), "dns");
  EXPECT_STREQ(name(Proto::Icmp4), "icmpv4");
  EXPECT_STREQ(name(Proto::Icmp6), "icmpv6");
}

}  // namespace
}  // namespace cf::policy
