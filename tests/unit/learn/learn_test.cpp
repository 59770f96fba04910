// The Ledger (what a run used) and render() (the learnt profile, merged into
// an existing one): learn/ledger.hpp, learn/learn.hpp. The Writer process is
// tested end to end by tests/e2e/policy_learn.sh.
#include "learn/learn.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/profile.hpp"

namespace cf::learn {
namespace {

IpAddr ip(const char* s) { return *IpAddr::parse(s); }
using Names = std::vector<std::string>;

TEST(Ledger, NamedFlowsCountForTheirNamesAndOthersForTheirAddress) {
  Ledger l;
  l.flow(ip("203.0.113.10"), Names{"www.example.test"});
  l.flow(ip("203.0.113.10"), Names{"www.example.test", "alias.example.test"});
  l.flow(ip("203.0.113.20"), Names{});
  l.flow(ip("2001:db8::20"), Names{});
  l.flow(ip("2001:db8::20"), Names{});
  EXPECT_EQ(l.flows(), 5u);
  EXPECT_EQ(l.domains(), (Ledger::Counts{{"alias.example.test", 1}, {"www.example.test", 2}}));
  EXPECT_EQ(l.cidrs(), (Ledger::Counts{{"203.0.113.20/32", 1}, {"2001:db8::20/128", 2}}));
  // A name only sent in first bytes is allowed exactly: the tree writes
  // those bytes as it likes (`Host: com`).
  l.name_sent("sni.example.test");
  l.name_sent("com");
  EXPECT_EQ(l.exact(), (Ledger::Counts{{"com", 1}, {"sni.example.test", 1}}));
  // One a DNS answer already gave counts there.
  l.name_sent("www.example.test");
  EXPECT_EQ(l.domains().at("www.example.test"), 3u);
  EXPECT_FALSE(l.host_loopback());
}

TEST(Ledger, TheGatewayIsTheHostsLoopback) {
  Ledger l(ip("10.240.0.1"), ip("fd42::1"));
  l.flow(ip("10.240.0.1"), Names{});
  l.flow(ip("fd42::1"), Names{});
  EXPECT_EQ(l.cidrs(), (Ledger::Counts{{"127.0.0.1/32", 1}, {"::1/128", 1}}));
  EXPECT_TRUE(l.host_loopback());
}

TEST(Ledger, NamesThatWouldNotLoadAreSkipped) {
  Ledger l;
  l.flow(ip("203.0.113.10"), Names{"bad name.example", std::string("x\xff.test")});
  l.name_sent("203.0.113.10");
  l.name_sent("a..b");
  EXPECT_TRUE(l.domains().empty());
  EXPECT_EQ(l.skipped(), 4u);
  // The flow had no usable name: it counts for its address.
  EXPECT_EQ(l.cidrs(), (Ledger::Counts{{"203.0.113.10/32", 1}}));
}

TEST(Ledger, IsBounded) {
  Ledger l(std::nullopt, std::nullopt, 2);
  for (const char* n : {"a.test", "b.test", "c.test", "a.test"}) l.flow(ip("203.0.113.1"), Names{n});
  EXPECT_EQ(l.domains(), (Ledger::Counts{{"a.test", 2}, {"b.test", 1}}));
  EXPECT_EQ(l.dropped(), 1u);
}

TEST(Ledger, SerializesAndRejectsWhatIsCut) {
  Ledger l(ip("10.240.0.1"));
  l.flow(ip("203.0.113.10"), Names{"www.example.test"});
  l.flow(ip("10.240.0.1"), Names{});
  l.name_sent("bad name");
  l.name_sent("sni.example.test");
  l.unreadable_sent();
  std::string text = l.serialize();
  auto back = Ledger::parse(text);
  ASSERT_TRUE(back) << back.error().str();
  EXPECT_EQ(back->domains(), l.domains());
  EXPECT_EQ(back->exact(), l.exact());
  EXPECT_EQ(back->unreadable(), 1u);
  EXPECT_EQ(back->cidrs(), l.cidrs());
  EXPECT_EQ(back->flows(), 2u);
  EXPECT_EQ(back->skipped(), 1u);
  EXPECT_TRUE(back->host_loopback());
  for (size_t cut = 0; cut < text.size(); ++cut)
    EXPECT_FALSE(Ledger::parse(text.substr(0, cut))) << cut;
  EXPECT_FALSE(Ledger::parse(text + "d 1 x.test\n"));
  std::string evil = text;
  evil.replace(evil.find("d 1 www.example.test"), 20, "d 1 www\"]\nx = \"y\"");
  EXPECT_FALSE(Ledger::parse(evil));
}

// The profile text must load; returns its own keys.
config::OwnKeys loads(const std::string& text) {
  auto own = config::load_profile_own(text, "/p/learnt.toml");
  EXPECT_TRUE(own) << (own ? "" : own.error().str()) << "\n" << text;
  return own ? *own : config::OwnKeys{};
}

TEST(Render, ANewProfileDeniesByDefaultAndListsWhatWasUsed) {
  Ledger l;
  for (const char* n : {"www.example.test", "b.example.test", "www.example.test", "a.other.test"})
    l.flow(ip("203.0.113.10"), Names{n});
  l.flow(ip("203.0.113.9"), Names{});
  l.flow(ip("2001:db8::1"), Names{});
  l.flow(ip("198.51.100.200"), Names{});
  l.name_sent("sni.example.test");
  Config run;
  auto text = render(run, l, std::nullopt, "/p/learnt.toml");
  ASSERT_TRUE(text) << text.error().str();
  // Names by their labels from the right; addresses IPv4 first, numerically.
  EXPECT_NE(text->find("default_policy = \"deny\"\n"
                       "allow_cidrs = [\n"
                       "  \"198.51.100.200/32\",  # 1 flow\n"
                       "  \"203.0.113.9/32\",  # 1 flow\n"
                       "  \"2001:db8::1/128\",  # 1 flow\n"
                       "]\n"
                       "allow_domains = [\n"
                       "  \"b.example.test\",  # 1 flow\n"
                       "  \"www.example.test\",  # 2 flows\n"
                       "  \"a.other.test\",  # 1 flow\n"
                       "]\n"
                       "allow_domains_exact = [\n"
                       "  \"sni.example.test\",  # 1 flow\n"
                       "]\n"),
            std::string::npos)
      << *text;
  Config c = config::apply(loads(*text).layer);
  EXPECT_EQ(c.default_policy, DefaultPolicy::Deny);
  EXPECT_EQ(c.allow_domains.size(), 3u);
  EXPECT_EQ(c.allow_domains_exact, (std::vector<std::string>{"sni.example.test"}));
  EXPECT_EQ(c.allow_cidrs.size(), 3u);
  EXPECT_FALSE(c.proxy);
  EXPECT_EQ(text->find("no_sniff_names"), std::string::npos);
  EXPECT_FALSE(c.dns);
}

TEST(Render, CarriesTheRunsDnsAndProxyButNeverAPassword) {
  Ledger l(ip("10.240.0.1"));
  l.flow(ip("10.240.0.1"), Names{});
  Config run;
  run.dns = ip("203.0.113.53");
  run.proxy = ProxyUri{ProxyScheme::Socks5, "proxy.example.test", 1080};
  run.proxy_user = "alice";
  run.proxy_password = "s3cret-pw";
  run.proxy_dns = ProxyDns::Remote;
  run.no_sniff_names = true;
  run.offline = true;         // not carried: the learnt rules replace the run's policy
  run.deny_domains = {"x.test"};
  run.flow_log = "/p/log.jsonl";  // nor its outputs
  auto text = render(run, l, std::nullopt, "/p/learnt.toml");
  ASSERT_TRUE(text) << text.error().str();
  EXPECT_EQ(text->find("s3cret-pw"), std::string::npos);
  EXPECT_NE(text->find("CHILDFLOW_PROXY_PASSWORD"), std::string::npos);
  Config c = config::apply(loads(*text).layer);
  EXPECT_EQ(c.dns, run.dns);
  EXPECT_EQ(c.proxy, run.proxy);
  EXPECT_EQ(c.proxy_user, "alice");
  EXPECT_FALSE(c.proxy_password);
  EXPECT_EQ(c.proxy_dns, ProxyDns::Remote);
  EXPECT_TRUE(c.no_sniff_names);
  EXPECT_TRUE(c.allow_host_loopback);  // the tree reached the host's loopback
  EXPECT_FALSE(c.offline);
  EXPECT_TRUE(c.deny_domains.empty());
  EXPECT_FALSE(c.flow_log);
  EXPECT_EQ(c.allow_cidrs, (std::vector<Cidr>{*Cidr::parse("127.0.0.1/32")}));

  // A password from a file: the file's path (which must exist to load).
  char pw[] = "/tmp/cf-learn-pw-XXXXXX";
  int fd = mkstemp(pw);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "s3cret-pw\n", 10), 10);
  close(fd);
  run.proxy_password_file = pw;
  text = render(run, l, std::nullopt, "/p/learnt.toml");
  unlink(pw);
  ASSERT_TRUE(text) << text.error().str();
  EXPECT_EQ(text->find("s3cret-pw"), std::string::npos);
  EXPECT_NE(text->find(fmt::format("proxy_password_file = \"{}\"\n", pw)), std::string::npos)
      << *text;
}

TEST(Render, MergesIntoAnExistingProfile) {
  const std::string existing =
      "# the user's own comment\n"
      "extends = \"base.toml\"\n"
      "mtu = 1500\n"
      "deny_domains = [\"ads.example.test\"]\n"
      "dns = \"203.0.113.53\"\n"
      "allow_domains = [\n"
      "  \"www.example.test\",  # 3 flows\n"
      "  \"hand.example.test\",\n"
      "]\n"
      "allow_cidrs = [\"203.0.113.0/24\"]\n"
      "command = [\"make\", \"test\"]\n";
  Ledger l;
  l.flow(ip("203.0.113.10"), Names{"www.example.test"});
  l.flow(ip("203.0.113.10"), Names{"new.example.test"});
  l.flow(ip("198.51.100.7"), Names{});
  Config run;  // this run set no DNS: the file's is kept
  auto text = render(run, l, existing, "/p/learnt.toml");
  ASSERT_TRUE(text) << text.error().str();
  EXPECT_NE(text->find("  \"www.example.test\",  # 4 flows\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("  \"hand.example.test\",  # 0 flows\n"), std::string::npos);
  EXPECT_NE(text->find("  \"new.example.test\",  # 1 flow\n"), std::string::npos);
  EXPECT_NE(text->find("  \"203.0.113.0/24\",  # 0 flows\n"), std::string::npos);
  EXPECT_NE(text->find("  \"198.51.100.7/32\",  # 1 flow\n"), std::string::npos);
  EXPECT_EQ(text->find("the user's own comment"), std::string::npos);
  config::OwnKeys own = loads(*text);
  EXPECT_EQ(own.extends, "/p/base.toml");
  Config c = config::apply(own.layer);
  EXPECT_EQ(c.mtu, 1500u);
  EXPECT_EQ(c.deny_domains, (std::vector<std::string>{"ads.example.test"}));
  EXPECT_EQ(c.dns, ip("203.0.113.53"));
  EXPECT_EQ(c.command, (std::vector<std::string>{"make", "test"}));
  EXPECT_EQ(c.default_policy, DefaultPolicy::Deny);
  EXPECT_EQ(c.allow_domains.size(), 3u);
  EXPECT_EQ(c.allow_cidrs.size(), 2u);

  // The run's own DNS wins over the file's; merging again adds up.
  run.dns = ip("198.51.100.53");
  auto again = render(run, l, *text, "/p/learnt.toml");
  ASSERT_TRUE(again);
  EXPECT_NE(again->find("  \"www.example.test\",  # 5 flows\n"), std::string::npos) << *again;
  EXPECT_EQ(config::apply(loads(*again).layer).dns, ip("198.51.100.53"));
}

TEST(Render, KeepsThePathsAsTheFileWroteThem) {
  char dir[] = "/tmp/cf-learn-XXXXXX";
  ASSERT_TRUE(mkdtemp(dir));
  const std::string d = dir;
  std::ofstream(d + "/base.toml") << "offline = false\n";
  std::ofstream(d + "/hosts") << "203.0.113.10 h.example.test\n";
  const std::string existing = "extends = \"base.toml\"\nhosts_file = \"hosts\"\n";
  auto text = render(Config{}, Ledger{}, existing, d + "/learnt.toml");
  std::filesystem::remove_all(d);
  ASSERT_TRUE(text) << text.error().str();
  EXPECT_NE(text->find("extends = \"base.toml\"\n"), std::string::npos) << *text;
  EXPECT_NE(text->find("hosts_file = \"hosts\"\n"), std::string::npos) << *text;
}

TEST(Render, SaysWhenAReplayWouldDenyWhatWasLetThrough) {
  Ledger l;
  l.unreadable_sent();
  auto text = render(Config{}, l, std::nullopt, "/p/learnt.toml");
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("unreadable_name"), std::string::npos) << *text;
  EXPECT_NE(text->find("no_sniff_names = true"), std::string::npos);
  loads(*text);
}

TEST(Render, RefusesAFileThatIsNoLongerAProfile) {
  auto text = render(Config{}, Ledger{}, std::string("mtu = \"big\"\n"), "/p/learnt.toml");
  ASSERT_FALSE(text);
  EXPECT_NE(text.error().str().find("mtu"), std::string::npos) << text.error().str();
}

}  // namespace
}  // namespace cf::learn
