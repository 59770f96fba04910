// Golden tests for the post-run summary (`--summary`, text and JSON): a fixed
// Config and a Recorder fed a fixed sequence of events must render exactly
// the files in tests/fixtures/golden/. Regenerate after an intended change:
//   CHILDFLOW_UPDATE_GOLDEN=1 ./unit_observe --gtest_filter='Summary*'
#include "observe/summary.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sstream>

#include "observe/recorder.hpp"

using namespace cf;

namespace {

const std::string kGolden = std::string(CHILDFLOW_SOURCE_DIR) + "/tests/fixtures/golden/";

IpAddr ip(const char* s) { return *IpAddr::parse(s); }

Config config(TextOrJson format) {
  Config c;
  c.command = {"sh", "-c", "curl http://www.example.test/ && ping -c1 203.0.113.20"};
  c.summary = true;
  c.summary_format = format;
  c.deny_cidrs = {*Cidr::parse("203.0.113.20/32")};
  c.deny_domains = {"blocked.example.test"};
  c.fail_on_leak = true;
  c.flow_log = "/tmp/run.jsonl";  // never opened: Recorder::open is not called
  return c;
}

// The events of a run that mixes success, refusal and denial.
void feed(observe::Recorder& r) {
  IpAddr gw = ip("10.240.0.1"), www = ip("203.0.113.10"), echo = ip("203.0.113.20");
  r.dns_query("udp", gw, 53, "www.example.test", "A", false);
  IpAddr ips[] = {www};
  r.dns_answer("udp", gw, 53, "www.example.test", "A", observe::DnsMode::Relayed, 50, ips, 0,
               false);
  r.connect_attempt(1, {www, 80}, false, {"www.example.test"});
  r.connect_result(1, {www, 80}, false, {"www.example.test"}, nullptr);
  r.flow_end(1, policy::Proto::Tcp, {www, 80}, 78, 1200, 5, observe::Close::Fin);
  r.connect_attempt(2, {www, 81}, false, {"www.example.test"});
  r.connect_result(2, {www, 81}, false, {"www.example.test"}, "connection refused");
  policy::Verdict v;
  v.allow = false;
  v.reason_code = "deny_cidr";
  v.control = "--deny-cidr";
  v.matched_cidr = *Cidr::parse("203.0.113.20/32");
  v.reason = "blocked by `--deny-cidr 203.0.113.20/32`";
  r.policy_violation(3, policy::Proto::Icmp4, echo.str(), echo, std::nullopt, v, {});
  r.dns_query("udp", gw, 53, "blocked.example.test", "A", false);
  policy::Verdict d;
  d.allow = false;
  d.reason_code = "deny_domain";
  d.control = "--deny-domain";
  d.matched_domain = "blocked.example.test";
  d.reason = "blocked by `--deny-domain blocked.example.test`";
  r.policy_violation(0, policy::Proto::Dns, "blocked.example.test", std::nullopt, std::nullopt, d,
                     {});
  r.dns_answer("udp", gw, 53, "blocked.example.test", "A", observe::DnsMode::SyntheticEmpty, 38,
               {}, 0, false);
  r.limit_hit(observe::Limit::TcpConnecting, 1024);
}

std::string render(TextOrJson format) {
  Config c = config(format);
  observe::Recorder rec(c);
  feed(rec);
  observe::RunFacts facts;
  facts.exit_code = 1;
  facts.duration_ms = 1234;
  facts.leak_failure = true;
  facts.dropped_frames = 2;
  facts.evicted_flows = 3;
  return observe::render_summary(c, rec.counts(), facts);
}

void check_golden(const std::string& name, const std::string& got) {
  std::string path = kGolden + name;
  if (std::getenv("CHILDFLOW_UPDATE_GOLDEN")) {
    std::ofstream(path, std::ios::binary) << got;
    GTEST_SKIP() << "rewrote " << path;
  }
  ASSERT_EQ(access(path.c_str(), R_OK), 0) << path << " is missing";
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_EQ(ss.str(), got) << "summary differs from " << path;
}

}  // namespace

TEST(SummaryGolden, Text) { check_golden("summary.txt", render(TextOrJson::Text)); }

TEST(SummaryGolden, Json) { check_golden("summary.json", render(TextOrJson::Json)); }

TEST(Summary, JsonValues) {
  auto j = nlohmann::json::parse(render(TextOrJson::Json));
  EXPECT_EQ(j["backend"], "rootless-internal");
  EXPECT_EQ(j["exit_code"], 1);
  EXPECT_EQ(j["leak_failure"], true);
  EXPECT_EQ(j["policy_violations"], 2);
  EXPECT_EQ(j["event_counts"]["connect_attempt"], 2);
  EXPECT_EQ(j["connect_errors"][0]["key"], "203.0.113.10:81: connection refused");
  EXPECT_EQ(j["top_targets"][0]["key"], "203.0.113.10:80");  // ties ranked by key
  EXPECT_EQ(j["flow_log"], "/tmp/run.jsonl");
  bool has_deny_cidr = false;
  for (const auto& x : j["controls"]) has_deny_cidr |= x == "--deny-cidr 203.0.113.20/32";
  EXPECT_TRUE(has_deny_cidr);
}

TEST(Summary, TextNamesTheLeakFlag) {
  std::string t = render(TextOrJson::Text);
  EXPECT_NE(t.find("--fail-on-leak"), std::string::npos);
  EXPECT_NE(t.find("deny_domain blocked.example.test"), std::string::npos);
  EXPECT_EQ(t.find("password"), std::string::npos);
}

TEST(Summary, EveryLimitHasACounterAlsoWhenZero) {
  auto j = nlohmann::json::parse(render(TextOrJson::Json));
  ASSERT_EQ(j["limits_hit"].size(), observe::kLimitCount);
  for (size_t i = 0; i < observe::kLimitCount; ++i) {
    const char* n = observe::name(observe::Limit(i));
    ASSERT_TRUE(j["limits_hit"].contains(n)) << n;
  }
  EXPECT_EQ(j["limits_hit"]["tcp_connecting"], 1);
  EXPECT_EQ(j["limits_hit"]["udp_flows"], 0);
  EXPECT_EQ(j["event_counts"]["limit_hit"], 1);
  std::string t = render(TextOrJson::Text);
  EXPECT_NE(t.find("  limits hit: tcp_connecting=1\n"), std::string::npos);
}

// Past the recorder's cap on distinct keys, the rest of a counter adds up in
// its `other` bucket: the counters stay bounded whatever the tree does, and
// the summary says how much was folded.
TEST(Summary, KeysBeyondTheCapAreCountedAsOther) {
  Config c = config(TextOrJson::Json);
  observe::Recorder rec(c);
  rec.set_max_keys(3);
  IpAddr gw = ip("10.240.0.1");
  for (int i = 0; i < 10; ++i)
    rec.dns_query("udp", gw, 53, fmt::format("n{}.example.test", i), "A", false);
  rec.dns_query("udp", gw, 53, "n0.example.test", "A", false);  // a kept key still counts
  const auto& k = rec.counts();
  EXPECT_EQ(k.dns_names.keys.size(), 3u);
  EXPECT_EQ(k.dns_names.keys.at("n0.example.test"), 2u);
  EXPECT_EQ(k.dns_names.other, 7u);
  EXPECT_EQ(k.limits[size_t(observe::Limit::RecorderKeys)], 7u);
  EXPECT_EQ(k.events.at("limit_hit"), 1u) << "logged once, the rest within the second wait";
  rec.finish();
  EXPECT_EQ(rec.counts().events.at("limit_hit"), 2u) << "finish() logs what was left";
  auto j = nlohmann::json::parse(observe::render_summary(c, rec.counts(), {}));
  EXPECT_EQ(j["other_keys"]["top_dns_names"], 7);
  EXPECT_EQ(j["limits_hit"]["recorder_keys"], 7);
  c.summary_format = TextOrJson::Text;
  std::string t = observe::render_summary(c, rec.counts(), {});
  EXPECT_NE(t.find("        7  (other: keys beyond the first 3)\n"), std::string::npos) << t;
}

TEST(Summary, ControlsNameTheProxyDnsMode) {
  Config c;
  c.proxy = ProxyUri{ProxyScheme::Socks5, "127.0.0.1", 9050};
  c.proxy_only = true;
  auto v = observe::active_controls(c);
  EXPECT_EQ(std::count(v.begin(), v.end(), "--proxy-dns remote"), 0) << "local is the default";
  c.proxy_dns = ProxyDns::Remote;
  v = observe::active_controls(c);
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(v[0], "--proxy socks5://127.0.0.1:9050");
  EXPECT_EQ(v[1], "--proxy-dns remote");
  EXPECT_EQ(v[2], "--proxy-only");
}
