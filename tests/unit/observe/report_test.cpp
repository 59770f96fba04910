// Tests for `--report`: golden files for every format over the fixture logs
// (ours, truncated, unknown events/fields, the Rust tool's), plus checks of
// specific values in the JSON report and of the streaming analysis.
//
// Regenerate the goldens after an intended change of the output:
//   CHILDFLOW_UPDATE_GOLDEN=1 ./unit_observe --gtest_filter='Golden*'
// and review the diff of tests/fixtures/golden/.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "observe/report.hpp"
#include "observe/report_model.hpp"

namespace cf::observe {
namespace {

using Json = nlohmann::json;

const std::string kSrc = CHILDFLOW_SOURCE_DIR;
const std::string kLogs = kSrc + "/tests/fixtures/flowlogs/";
const std::string kGolden = kSrc + "/tests/fixtures/golden/";

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

ReportData analyze(const std::string& fixture) {
  auto d = analyze_flow_log(kLogs + fixture);
  EXPECT_TRUE(d) << d.error().str();
  return d ? std::move(d).value() : ReportData{};
}

Json report_json(const std::string& fixture) {
  return Json::parse(render_report(analyze(fixture), ReportFormat::Json, fixture));
}

// --- golden files -----------------------------------------------------------

struct GoldenCase {
  std::string fixture;  // file in tests/fixtures/flowlogs/
  ReportFormat format;
};

std::string ext(ReportFormat f) {
  switch (f) {
    case ReportFormat::Text: return "txt";
    case ReportFormat::Markdown: return "md";
    case ReportFormat::Json: return "json";
    case ReportFormat::Html: return "html";
  }
  return "?";
}

void PrintTo(const GoldenCase& c, std::ostream* os) { *os << c.fixture << " as " << ext(c.format); }

class Golden : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(Golden, MatchesExactly) {
  const auto& c = GetParam();
  std::string got = render_report(analyze(c.fixture), c.format, c.fixture);
  std::string stem = c.fixture.substr(0, c.fixture.rfind('.'));
  std::string golden = kGolden + "report-" + stem + "." + ext(c.format);
  const char* update = std::getenv("CHILDFLOW_UPDATE_GOLDEN");
  if (update && std::string(update) == "1") {
    std::ofstream(golden, std::ios::binary) << got;
    GTEST_SKIP() << "rewrote " << golden;
  }
  ASSERT_EQ(access(golden.c_str(), R_OK), 0)
      << golden << " is missing: run with CHILDFLOW_UPDATE_GOLDEN=1 to create it";
  EXPECT_EQ(slurp(golden), got) << "report differs from " << golden;
}

std::vector<GoldenCase> golden_cases() {
  std::vector<GoldenCase> v;
  for (const char* f : {"childflow-mixed.jsonl", "childflow-truncated.jsonl",
                        "childflow-unknown.jsonl", "domain-deny-origin.jsonl",
                        "http-origin.jsonl"})
    for (auto fmt : {ReportFormat::Text, ReportFormat::Markdown, ReportFormat::Json,
                     ReportFormat::Html})
      v.push_back({f, fmt});
  return v;
}

std::string golden_case_name(const ::testing::TestParamInfo<GoldenCase>& p) {
  std::string n = p.param.fixture.substr(0, p.param.fixture.rfind('.')) + "_" + ext(p.param.format);
  for (char& ch : n)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return n;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden, ::testing::ValuesIn(golden_cases()), golden_case_name);

// --- specific values ----------------------------------------------------------

// The rank lists as [[key parts..., count], ...] for compact comparisons.
Json rows(const Json& ranked, std::vector<const char*> parts) {
  Json out = Json::array();
  for (const auto& r : ranked.at("top")) {
    Json row = Json::array();
    for (auto* p : parts) row.push_back(r.at(p));
    row.push_back(r.at("count"));
    out.push_back(row);
  }
  return out;
}

TEST(ReportJson, OurMixedLog) {
  Json j = report_json("childflow-mixed.jsonl");
  EXPECT_EQ(j["lines"]["total"], 23);
  EXPECT_EQ(j["lines"]["events"], 23);
  EXPECT_EQ(j["lines"]["malformed"], 0);
  EXPECT_EQ(j["schema_versions"], Json({{"1", 23}}));
  EXPECT_EQ(j["time"]["first_ts_ms"], 1777900000000u);
  EXPECT_EQ(j["time"]["span_ms"], 30100);
  EXPECT_EQ(j["event_counts"]["dns_query"], 3);
  EXPECT_EQ(j["event_counts"]["flow_end"], 4);
  EXPECT_EQ(j["event_counts"]["flow_start"], 2);
  EXPECT_EQ(j["unknown_events"]["total"], 0);
  EXPECT_EQ(rows(j["protocols"], {"protocol"}),
            Json::parse(R"([["tcp",11],["udp",8],["icmpv4",2],["dns",1]])"));
  EXPECT_EQ(rows(j["dns"]["top_names"], {"name"}),
            Json::parse(R"([["www.example.test",2],["x.blocked.example.test",1]])"));
  EXPECT_EQ(j["dns"]["synthetic_empty"], 1);
  // Correlation: names from the answers and from `names`; ties ranked by key.
  EXPECT_EQ(rows(j["dns_correlation"], {"name", "target"}), Json::parse(R"([
      ["www.example.test","203.0.113.10:0",1],
      ["www.example.test","203.0.113.10:80",1],
      ["www.example.test","203.0.113.10:81",1],
      ["www.example.test","[2001:db8:2::10]:80",1]])"));
  EXPECT_EQ(j["dns_correlation"]["targets_without_name"], 2);
  EXPECT_EQ(j["proxy_usage"], Json::parse(R"({"connect_attempts":4,"via_proxy":0,"direct":4})"));
  EXPECT_EQ(j["connects"], Json::parse(R"({"ok":2,"error":2})"));
  EXPECT_EQ(rows(j["connect_errors"], {"target", "error"}),
            Json::parse(R"([["203.0.113.10:81","connection refused",1],
                            ["203.0.113.20:7","denied by policy",1]])"));
  EXPECT_EQ(rows(j["top_targets"], {"target"})[0], Json::parse(R"(["203.0.113.20:7",2])"));
  EXPECT_EQ(j["top_targets"]["distinct"], 5);
  EXPECT_EQ(j["flows"]["ended"], 4);
  EXPECT_EQ(j["flows"]["bytes_sent"], 78 + 78 + 64 + 5);
  EXPECT_EQ(j["flows"]["bytes_received"], 312 + 312 + 64 + 5);
  EXPECT_EQ(rows(j["flows"]["close"], {"close"}),
            Json::parse(R"([["fin",2],["timeout",2]])"));
  EXPECT_EQ(j["policy"]["violations"], 2);
  EXPECT_EQ(rows(j["policy"]["reasons"], {"reason_code"}),
            Json::parse(R"([["deny_cidr",1],["deny_domain",1]])"));
  EXPECT_EQ(rows(j["policy"]["matched_domains"], {"domain"}),
            Json::parse(R"([["blocked.example.test",1]])"));
  EXPECT_EQ(rows(j["policy"]["matched_cidrs"], {"cidr"}),
            Json::parse(R"([["203.0.113.16/28",1]])"));
  EXPECT_EQ(rows(j["runtime_failures"], {"phase", "reason_code", "detail"}),
            Json::parse(R"([["engine","engine_failed","tap read: Input/output error",1]])"));
}

TEST(ReportJson, TruncatedLastLineIsOneMalformedLine) {
  Json j = report_json("childflow-truncated.jsonl");
  EXPECT_EQ(j["lines"]["total"], 13);
  EXPECT_EQ(j["lines"]["events"], 12);
  EXPECT_EQ(j["lines"]["malformed"], 1);
  // The cut dns_query is not counted; the events before it are.
  EXPECT_EQ(j["event_counts"]["dns_query"], 2);
  EXPECT_EQ(j["event_counts"]["connect_result"], 3);
  EXPECT_EQ(j["policy"]["violations"], 1);
  EXPECT_EQ(j["connects"]["error"], 2);
}

TEST(ReportJson, UnknownEventsCountedUnknownFieldsIgnored) {
  Json j = report_json("childflow-unknown.jsonl");
  EXPECT_EQ(j["lines"]["total"], 15);
  // Blank line skipped; array, missing event, numeric event, not-JSON: malformed.
  EXPECT_EQ(j["lines"]["malformed"], 4);
  EXPECT_EQ(j["lines"]["events"], 10);
  EXPECT_EQ(j["unknown_events"]["total"], 3);
  EXPECT_EQ(rows(j["unknown_events"], {"event"}),
            Json::parse(R"([["tls_client_hello",2],["quic_stream",1]])"));
  EXPECT_EQ(j["schema_versions"], Json::parse(R"({"1":8,"2":1,"missing":1})"));
  // Correlation through the answer's addresses (the connect has no names).
  EXPECT_EQ(rows(j["dns_correlation"], {"name", "target"}),
            Json::parse(R"([["api.example.test","198.51.100.7:443",1]])"));
  EXPECT_EQ(j["proxy_usage"]["via_proxy"], 1);
  EXPECT_EQ(rows(j["connect_errors"], {"target", "error"}),
            Json::parse(R"([["198.51.100.7:443","proxy: SOCKS5 authentication failed",1]])"));
  // A known field of the wrong type reads as absent.
  EXPECT_EQ(j["flows"]["bytes_sent"], 0);
  EXPECT_EQ(j["flows"]["bytes_received"], 10);
  EXPECT_EQ(j["time"]["last_ts_ms"], 1777900100011u);
  EXPECT_EQ(rows(j["policy"]["reasons"], {"reason_code"}),
            Json::parse(R"([["proxy_only",1]])"));
  EXPECT_EQ(j["runtime_failures"]["top"][0]["detail"],
            "connect 203.0.113.30:1080: connection refused\x1b[31m");
}

TEST(ReportJson, RustDomainDenyLog) {
  Json j = report_json("domain-deny-origin.jsonl");
  EXPECT_EQ(j["lines"]["events"], 6);
  EXPECT_EQ(j["lines"]["malformed"], 0);
  EXPECT_EQ(j["event_counts"],
            Json::parse(R"({"dns_answer":2,"dns_query":2,"policy_violation":2})"));
  EXPECT_EQ(rows(j["policy"]["reasons"], {"reason_code"}),
            Json::parse(R"([["deny_domain",2]])"));
  EXPECT_EQ(rows(j["policy"]["controls"], {"control"}),
            Json::parse(R"([["--deny-domain",2]])"));
  EXPECT_EQ(rows(j["policy"]["matched_domains"], {"domain"}),
            Json::parse(R"([["demo.invalid",2]])"));
  EXPECT_EQ(rows(j["dns"]["top_names"], {"name"}),
            Json::parse(R"([["origin-http.demo.invalid",2]])"));
  EXPECT_EQ(j["dns"]["synthetic_empty"], 2);
  EXPECT_EQ(rows(j["dns"]["qtypes"], {"qtype"}), Json::parse(R"([["A",1],["AAAA",1]])"));
}

TEST(ReportJson, RustHttpOriginLog) {
  Json j = report_json("http-origin.jsonl");
  EXPECT_EQ(j["lines"]["events"], 4);
  EXPECT_EQ(rows(j["protocols"], {"protocol"}), Json::parse(R"([["tcp",3],["icmpv6",1]])"));
  EXPECT_EQ(j["proxy_usage"], Json::parse(R"({"connect_attempts":1,"via_proxy":1,"direct":0})"));
  EXPECT_EQ(j["connects"], Json::parse(R"({"ok":1,"error":0})"));
  EXPECT_EQ(rows(j["top_targets"], {"target"}), Json::parse(R"([["10.243.0.10:8080",1]])"));
  EXPECT_EQ(rows(j["policy"]["reasons"], {"reason_code"}),
            Json::parse(R"([["default_deny",1]])"));
  EXPECT_EQ(rows(j["policy"]["remotes"], {"remote"}), Json::parse(R"([["ff02::16",1]])"));
  EXPECT_EQ(j["dns_correlation"]["targets_without_name"], 1);
}

// --- analysis ---------------------------------------------------------------

TEST(ReportAnalysis, RanksByCountThenKeyAndCapsTheTable) {
  FlowLogAnalysis a;
  auto q = [&](const std::string& name) {
    a.add_line(R"({"schema_version":1,"ts_ms":1,"event":"dns_query","qname":")" + name +
               R"(","qtype":"A"})");
  };
  for (int i = 0; i < 15; ++i) q("n" + std::to_string(100 + i));  // 15 names once
  q("zz");
  q("zz");
  q("aa");
  q("aa");
  ReportData d = a.result();
  EXPECT_EQ(d.dns_names.distinct, 17u);
  ASSERT_EQ(d.dns_names.top.size(), kReportTop);
  EXPECT_EQ(d.dns_names.top[0].key, std::vector<std::string>{"aa"});
  EXPECT_EQ(d.dns_names.top[0].count, 2u);
  EXPECT_EQ(d.dns_names.top[1].key, std::vector<std::string>{"zz"});
  EXPECT_EQ(d.dns_names.top[2].key, std::vector<std::string>{"n100"});
  EXPECT_EQ(d.dns_names.top[9].key, std::vector<std::string>{"n107"});
  std::string text = render_report(d, ReportFormat::Text, "x");
  EXPECT_NE(text.find("... 7 more"), std::string::npos) << text;
}

TEST(ReportAnalysis, ConnectBeforeAnswerIsNotAttributed) {
  FlowLogAnalysis a;
  a.add_line(R"({"event":"connect_attempt","remote_addr":"203.0.113.5:80","remote_ip":"203.0.113.5","remote_port":80,"via_proxy":false})");
  a.add_line(R"({"event":"dns_answer","qname":"late.example.test","answer_ips":["203.0.113.5"],"mode":"relayed"})");
  a.add_line(R"({"event":"connect_attempt","remote_addr":"203.0.113.5:80","remote_ip":"203.0.113.5","remote_port":80,"via_proxy":false})");
  ReportData d = a.result();
  EXPECT_EQ(d.targets_without_name, 1u);
  ASSERT_EQ(d.dns_correlation.top.size(), 1u);
  EXPECT_EQ(d.dns_correlation.top[0].key,
            (std::vector<std::string>{"late.example.test", "203.0.113.5:80"}));
  EXPECT_EQ(d.dns_correlation.top[0].count, 1u);
  EXPECT_EQ(d.direct, 2u);
}

TEST(ReportAnalysis, KeysMayHoldAnyByte) {
  FlowLogAnalysis a;
  a.add_line(R"({"event":"dns_query","qname":"a\u0000b"})");
  a.add_line(R"({"event":"dns_query","qname":"a"})");
  ReportData d = a.result();
  ASSERT_EQ(d.dns_names.distinct, 2u);
  EXPECT_EQ(d.dns_names.top[0].key[0], "a");
  EXPECT_EQ(d.dns_names.top[1].key[0], std::string("a\0b", 3));
}

TEST(ReportAnalysis, OnlyTopLevelFieldsOfAnObjectCount) {
  FlowLogAnalysis a;
  a.add_line(R"({"nested":{"event":"dns_query"}})");  // no top-level event
  a.add_line(R"("dns_query")");
  a.add_line("true");
  a.add_line("42");
  a.add_line("null");
  a.add_line(R"([{"event":"dns_query"}])");
  a.add_line(R"({"event":"dns_query","qname":"a"} trailing)");
  a.add_line(R"({"event":"dns_query","qname":"a","x":{"qname":"b","event":"flow_end"},)"
             R"("y":[{"qname":"c"},["d"]]})");
  a.add_line(R"({"event":"dns_query","qname":"first","qname":"last"})");
  a.add_line(R"({"event":"connect_attempt","remote_addr":"203.0.113.1:1","remote_ip":"203.0.113.1",)"
             R"("names":["n1",{"n":"n2"},["n3"],7,"n4"]})");
  a.add_line("   ");
  ReportData d = a.result();
  EXPECT_EQ(d.lines, 11u);
  EXPECT_EQ(d.malformed_lines, 7u);
  EXPECT_EQ(d.events, 3u);
  EXPECT_EQ(d.event_counts, (std::map<std::string, uint64_t>{{"connect_attempt", 1},
                                                            {"dns_query", 2}}));
  ASSERT_EQ(d.dns_names.distinct, 2u);
  EXPECT_EQ(d.dns_names.top[0].key[0], "a");
  EXPECT_EQ(d.dns_names.top[1].key[0], "last");
  // Only the string elements of the member array are names.
  ASSERT_EQ(d.dns_correlation.distinct, 2u);
  EXPECT_EQ(d.dns_correlation.top[0].key[0], "n1");
  EXPECT_EQ(d.dns_correlation.top[1].key[0], "n4");
}

TEST(ReportAnalysis, EveryCutOfEveryLineIsSkippedOrCounted) {
  // A log can be cut anywhere: each prefix of each line is either an event
  // (only the whole line) or a malformed line, never a crash.
  std::ifstream in(kLogs + "childflow-mixed.jsonl");
  std::string line;
  uint64_t whole = 0, cuts = 0;
  FlowLogAnalysis a;
  while (std::getline(in, line)) {
    for (size_t n = 1; n < line.size(); ++n) {
      a.add_line(std::string_view(line).substr(0, n));
      ++cuts;
    }
    a.add_line(line);
    ++whole;
  }
  ReportData d = a.result();
  EXPECT_EQ(d.lines, whole + cuts);
  EXPECT_EQ(d.events, whole);
  EXPECT_EQ(d.malformed_lines, cuts);
}

TEST(ReportReader, SameDataWhateverTheChunks) {
  // read(2) may cut the log anywhere: byte by byte it reads the same.
  std::string log = slurp(kLogs + "childflow-mixed.jsonl");
  FlowLogReader whole;
  whole.feed(log);
  ReportData d = whole.finish();
  EXPECT_EQ(d, analyze("childflow-mixed.jsonl"));
  FlowLogReader bytes;
  for (char c : log) bytes.feed(std::string_view(&c, 1));
  EXPECT_EQ(bytes.finish(), d);
  EXPECT_GT(d.events, 0u);
}

TEST(ReportReader, OverlongLinesAreCountedMalformedAndSkipped) {
  FlowLogReader r(20);
  r.feed(R"({"event":"x"})" "\n");                        // 13 bytes: an event
  r.feed(R"({"event":"dns_query","qname":"a"})" "\n");    // 33 bytes: too long
  r.feed(std::string(20, ' ') + "\n");                     // 20 bytes: blank
  r.feed(R"({"event":)");
  r.feed(R"("y"})");                                      // 13 bytes, last, no '\n'
  ReportData d = r.finish();
  EXPECT_EQ(d.lines, 4u);
  EXPECT_EQ(d.events, 2u);
  EXPECT_EQ(d.malformed_lines, 1u);
  EXPECT_EQ(d.dns_queries, 0u);
  EXPECT_EQ(d.unknown_events_total, 2u);
  // An overlong last line without '\n' counts too.
  FlowLogReader tail(4);
  tail.feed("12345");
  EXPECT_EQ(tail.finish().malformed_lines, 1u);
}

TEST(ReportAnalysis, StreamsManyLines) {
  // 40k events through the same path the CLI uses; correctness of the totals
  // (speed is measured by hand, see docs/report.md).
  char path[] = "/tmp/cf-report-test-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    for (int i = 0; i < 20000; ++i) {
      out << R"({"schema_version":1,"ts_ms":)" << 1000 + i
          << R"(,"event":"connect_attempt","flow_id":)" << i
          << R"(,"protocol":"tcp","remote_addr":"203.0.113.)" << i % 200
          << R"(:443","remote_ip":"203.0.113.)" << i % 200
          << R"(","remote_port":443,"via_proxy":false,"names":[]})" << "\n";
      out << R"({"schema_version":1,"ts_ms":)" << 1000 + i
          << R"(,"event":"dns_query","protocol":"udp","qname":"h)" << i % 37
          << R"(.example.test","qtype":"A"})" << "\n";
    }
  }
  auto d = analyze_flow_log(path);
  unlink(path);
  ASSERT_TRUE(d) << d.error().str();
  EXPECT_EQ(d->events, 40000u);
  EXPECT_EQ(d->connect_attempts, 20000u);
  EXPECT_EQ(d->top_targets.distinct, 200u);
  EXPECT_EQ(d->top_targets.top[0].count, 100u);
  EXPECT_EQ(d->dns_names.distinct, 37u);
  EXPECT_EQ(*d->last_ts_ms, 1000u + 19999u);
}

// --- rendering --------------------------------------------------------------

TEST(ReportRender, MarkdownStartsWithHighlights) {
  for (const char* f : {"childflow-mixed.jsonl", "http-origin.jsonl"}) {
    std::string md = render_report(analyze(f), ReportFormat::Markdown, f);
    EXPECT_TRUE(md.starts_with("## Highlights\n")) << md;
  }
}

TEST(ReportRender, TextAndMarkdownEscapeControlCharacters) {
  ReportData d = analyze("childflow-unknown.jsonl");
  for (auto fmt : {ReportFormat::Text, ReportFormat::Markdown}) {
    std::string out = render_report(d, fmt, "childflow-unknown.jsonl");
    EXPECT_EQ(out.find('\x1b'), std::string::npos);
    EXPECT_NE(out.find("\\x1b[31m"), std::string::npos) << out;
  }
}

TEST(ReportRender, MarkdownEscapesTablePipes) {
  FlowLogAnalysis a;
  a.add_line(R"({"event":"dns_query","qname":"a|b`c"})");
  std::string md = render_report(a.result(), ReportFormat::Markdown, "x");
  EXPECT_NE(md.find("| 1 | ``a\\|b`c`` |"), std::string::npos) << md;
}

TEST(ReportRender, EmptyLog) {
  FlowLogAnalysis a;
  ReportData d = a.result();
  Json j = Json::parse(render_report(d, ReportFormat::Json, "empty"));
  EXPECT_EQ(j["lines"]["total"], 0);
  EXPECT_TRUE(j["time"]["first_ts_ms"].is_null());
  EXPECT_NE(render_report(d, ReportFormat::Text, "empty").find("time span: unknown"),
            std::string::npos);
}

// --- flow records and HTML ---------------------------------------------------

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

TEST(ReportFlows, OurMixedLogOneRecordPerFlowAndDeniedQuery) {
  ReportData d = analyze("childflow-mixed.jsonl");
  ASSERT_EQ(d.flows.size(), 7u);  // flows 1..6 and the denied DNS query
  EXPECT_EQ(d.flows_not_drawn, 0u);
  const FlowRecord& f1 = d.flows[0];
  EXPECT_EQ(f1.flow_id, 1u);
  EXPECT_EQ(f1.protocol, "tcp");
  EXPECT_EQ(f1.target, "[2001:db8:2::10]:80");
  EXPECT_EQ(f1.start_ms, 1777900000003u);
  EXPECT_EQ(f1.end_ms, 1777900000011u);
  EXPECT_EQ(f1.bytes_sent, 78u);
  EXPECT_EQ(f1.bytes_received, 312u);
  EXPECT_EQ(f1.close, "fin");
  EXPECT_EQ(f1.names, std::vector<std::string>{"www.example.test"});
  EXPECT_TRUE(f1.ended);
  EXPECT_FALSE(f1.denied);
  const FlowRecord& f2 = d.flows[1];
  EXPECT_EQ(f2.error, "connection refused");
  EXPECT_EQ(f2.end_ms, 1777900000021u);
  const FlowRecord& f3 = d.flows[2];
  EXPECT_TRUE(f3.denied);
  EXPECT_EQ(f3.reason_code, "deny_cidr");
  EXPECT_EQ(f3.control, "--deny-cidr");
  EXPECT_EQ(f3.rule, "203.0.113.16/28");
  EXPECT_EQ(f3.error, "denied by policy");
  const FlowRecord& q = d.flows[3];
  EXPECT_EQ(q.kind, FlowRecord::Kind::DnsQuery);
  EXPECT_TRUE(q.denied);
  EXPECT_EQ(q.target, "x.blocked.example.test");
  EXPECT_EQ(q.rule, "blocked.example.test");
  EXPECT_FALSE(q.flow_id);
  EXPECT_EQ(d.flows[4].protocol, "udp");
  EXPECT_EQ(d.flows[4].end_ms, 1777900030050u);
  EXPECT_EQ(d.flows[4].close, "timeout");
  EXPECT_EQ(d.flows[5].protocol, "icmpv4");
  EXPECT_EQ(d.flows[6].flow_id, 6u);
  ASSERT_EQ(d.denials.top.size(), 2u);
  EXPECT_EQ(d.denials.top[0].key, (std::vector<std::string>{"deny_cidr", "--deny-cidr",
                                                             "203.0.113.16/28", "203.0.113.20:7"}));
}

TEST(ReportFlows, RustLogJoinsByTarget) {
  // No flow_id, no flow_start: the TCP flow is joined by its target, the
  // ICMPv6 denial is a record of its own.
  ReportData d = analyze("http-origin.jsonl");
  ASSERT_EQ(d.flows.size(), 2u);
  EXPECT_TRUE(d.flows[0].denied);
  EXPECT_EQ(d.flows[0].protocol, "icmpv6");
  EXPECT_EQ(d.flows[0].target, "ff02::16");
  EXPECT_EQ(d.flows[0].reason_code, "default_deny");
  const FlowRecord& tcp = d.flows[1];
  EXPECT_FALSE(tcp.flow_id);
  EXPECT_EQ(tcp.target, "10.243.0.10:8080");
  EXPECT_EQ(tcp.start_ms, 1777820921217u);
  EXPECT_EQ(tcp.end_ms, 1777820921231u);
  EXPECT_TRUE(tcp.ended);
  EXPECT_EQ(tcp.via_proxy, true);
  EXPECT_FALSE(tcp.bytes_sent);
  EXPECT_TRUE(tcp.error.empty());
  ReportData q = analyze("domain-deny-origin.jsonl");
  ASSERT_EQ(q.flows.size(), 2u);
  for (const auto& r : q.flows) {
    EXPECT_EQ(r.kind, FlowRecord::Kind::DnsQuery);
    EXPECT_EQ(r.reason_code, "deny_domain");
    EXPECT_EQ(r.rule, "demo.invalid");
  }
}

TEST(ReportFlows, RustLogConcurrentConnectsToOneTargetJoinOldestFirst) {
  FlowLogAnalysis a;
  auto ev = [&](const std::string& event, int ts, const std::string& extra) {
    a.add_line(R"({"event":")" + event + R"(","protocol":"tcp","remote_addr":"203.0.113.5:80",)" +
               R"("remote_ip":"203.0.113.5","remote_port":80,"ts_ms":)" + std::to_string(ts) +
               extra + "}");
  };
  ev("connect_attempt", 10, "");
  ev("connect_attempt", 20, "");
  ev("connect_result", 21, R"(,"status":"ok","error":null)");
  ev("connect_result", 22, R"(,"status":"error","error":"connection refused")");
  ev("flow_end", 50, "");
  // Ended while connecting (no result), then a new connect: the next result
  // and the denial are the new one's.
  ev("connect_attempt", 60, "");
  ev("flow_end", 61, "");
  ev("connect_attempt", 70, "");
  a.add_line(R"({"event":"policy_violation","protocol":"tcp","remote":"203.0.113.5:80",)"
             R"("remote_ip":"203.0.113.5","remote_port":80,"ts_ms":70,"reason_code":"offline"})");
  ev("connect_result", 70, R"(,"status":"error","error":"denied by policy")");
  ReportData d = a.result();
  ASSERT_EQ(d.flows.size(), 4u);
  EXPECT_EQ(d.flows[0].start_ms, 10u);
  EXPECT_EQ(d.flows[0].end_ms, 50u);
  EXPECT_TRUE(d.flows[0].error.empty());
  EXPECT_EQ(d.flows[1].error, "connection refused");
  EXPECT_EQ(d.flows[1].end_ms, 22u);
  EXPECT_EQ(d.flows[2].end_ms, 61u);
  EXPECT_FALSE(d.flows[2].denied);
  EXPECT_TRUE(d.flows[2].error.empty());
  EXPECT_TRUE(d.flows[3].denied);
  EXPECT_EQ(d.flows[3].error, "denied by policy");
  EXPECT_EQ(d.flows[3].reason_code, "offline");
}

TEST(ReportFlows, FlowEndWithoutStartStartsAtEndMinusDuration) {
  FlowLogAnalysis a;
  a.add_line(R"({"event":"flow_end","protocol":"udp","remote_addr":"203.0.113.5:53","ts_ms":1000,)"
             R"("duration_ms":250,"bytes_sent":3,"bytes_received":4,"close":"timeout"})");
  ReportData d = a.result();
  ASSERT_EQ(d.flows.size(), 1u);
  EXPECT_EQ(d.flows[0].start_ms, 750u);
  EXPECT_EQ(d.flows[0].end_ms, 1000u);
  EXPECT_EQ(d.flows[0].bytes_received, 4u);
}

TEST(ReportFlows, CappedAtMaxFlowsTheRestCounted) {
  FlowLogAnalysis a;
  const uint64_t n = kReportMaxFlows + 5;
  for (uint64_t i = 1; i <= n; ++i) {
    std::string common = R"(,"flow_id":)" + std::to_string(i) +
                         R"(,"protocol":"tcp","remote_addr":"203.0.113.7:443","ts_ms":)" +
                         std::to_string(1000 + i);
    a.add_line(R"({"event":"connect_attempt")" + common + "}");
    a.add_line(R"({"event":"connect_result","status":"ok","error":null)" + common + "}");
    a.add_line(R"({"event":"flow_end","bytes_sent":1,"bytes_received":2,"close":"fin")" + common +
               "}");
  }
  // A denied UDP flow and a denied query past the cap count too.
  a.add_line(R"({"event":"policy_violation","flow_id":99999,"protocol":"udp","remote":"203.0.113.8:53","reason_code":"offline"})");
  a.add_line(R"({"event":"policy_violation","protocol":"dns","remote":"x.example.test","reason_code":"offline"})");
  ReportData d = a.result();
  EXPECT_EQ(d.flows.size(), kReportMaxFlows);
  EXPECT_EQ(d.flows_not_drawn, 5u + 2u);
  EXPECT_EQ(d.flow_ends, n);  // the counts cover every flow
  EXPECT_EQ(d.flows.back().flow_id, kReportMaxFlows);
  EXPECT_TRUE(d.flows.back().ended);
  std::string html = render_report(d, ReportFormat::Html, "big");
  EXPECT_EQ(count_of(html, "<tr class=\"flow "), kReportMaxFlows);
  EXPECT_NE(html.find("7 more not drawn"), std::string::npos);
}

TEST(ReportFlows, LongStringsAreCutOnACharacterBoundary) {
  FlowLogAnalysis a;
  std::string name;
  while (name.size() < 3 * kReportMaxString) name += "\xc3\xa9";  // é, two bytes
  a.add_line(R"({"event":"policy_violation","protocol":"dns","remote":")" + name +
             R"(","reason_code":"deny_domain"})");
  ReportData d = a.result();
  ASSERT_EQ(d.flows.size(), 1u);
  const std::string& t = d.flows[0].target;
  EXPECT_LE(t.size(), kReportMaxString + 3);
  EXPECT_TRUE(t.ends_with("\xe2\x80\xa6"));
  // Whole characters only before the ellipsis.
  EXPECT_EQ((t.size() - 3) % 2, 0u);
}

TEST(ReportHtml, EveryStringFromTheLogIsEscaped) {
  FlowLogAnalysis a;
  a.add_line(R"({"event":"dns_query","ts_ms":1,"protocol":"udp","qname":"<script>alert(1)</script>","qtype":"A"})");
  a.add_line(R"({"event":"dns_answer","ts_ms":2,"qname":"<script>alert(1)</script>","answer_ips":["203.0.113.9"],"mode":"relayed"})");
  a.add_line(R"({"event":"connect_attempt","ts_ms":3,"flow_id":1,"protocol":"tcp","remote_addr":"\"onmouseover=alert(1) x='","remote_ip":"203.0.113.9","names":["\"onmouseover=alert(1) x='"]})");
  a.add_line(R"({"event":"connect_result","ts_ms":4,"flow_id":1,"status":"error","error":"<img src=x onerror=alert(1)>"})");
  a.add_line(R"({"event":"policy_violation","ts_ms":5,"protocol":"dns","remote":"<script>alert(1)</script>","reason_code":"</style><b>","control":"&amp;","matched_domain":"\"onmouseover="})");
  a.add_line(R"({"event":"runtime_failure","ts_ms":6,"phase":"<iframe>","reason_code":"x","detail":"\u001b[31m<script>"})");
  a.add_line(R"({"event":"<script>alert(2)</script>","ts_ms":7})");
  std::string html = render_report(a.result(), ReportFormat::Html, "<script>src</script>.jsonl");
  EXPECT_EQ(html.find("<script"), std::string::npos) << html;
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<iframe"), std::string::npos);
  EXPECT_EQ(html.find("</style><b>"), std::string::npos);
  EXPECT_EQ(html.find("\"onmouseover="), std::string::npos);
  EXPECT_EQ(html.find("'onmouseover="), std::string::npos);
  EXPECT_EQ(html.find('\x1b'), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&quot;onmouseover=alert(1) x=&#39;"), std::string::npos);
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(html.find("&amp;amp;"), std::string::npos);
  EXPECT_NE(html.find("\\x1b[31m&lt;script&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(2)&lt;/script&gt;"), std::string::npos);
}

TEST(ReportHtml, EscapeFunction) {
  EXPECT_EQ(html_escape(R"(<a href="x">'&'</a>)"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(html_escape(std::string("a\0b\x7f", 4)), "a\\x00b\\x7f");
}

TEST(ReportHtml, SelfContainedWithTheSectionsAndOneRowPerFlow) {
  for (const char* f : {"childflow-mixed.jsonl", "http-origin.jsonl", "domain-deny-origin.jsonl"}) {
    ReportData d = analyze(f);
    std::string html = render_report(d, ReportFormat::Html, f);
    EXPECT_TRUE(html.starts_with("<!DOCTYPE html>\n")) << f;
    EXPECT_TRUE(html.ends_with("</html>\n")) << f;
    EXPECT_NE(html.find("Content-Security-Policy\" content=\"default-src 'none'"),
              std::string::npos);
    for (const char* id : {"highlights", "timeline", "denials", "destinations", "counts"})
      EXPECT_NE(html.find(std::string("<section id=\"") + id + "\">"), std::string::npos)
          << f << ": " << id;
    EXPECT_EQ(count_of(html, "<tr class=\"flow "), d.flows.size()) << f;
    EXPECT_EQ(count_of(html, "<tr class=\"flow denied\""),
              size_t(std::count_if(d.flows.begin(), d.flows.end(),
                                   [](const FlowRecord& r) { return r.denied; })))
        << f;
    // Nothing to fetch: no URL, no src, no script, no external style.
    for (const char* bad : {"http://", "https://", "src=", "href=", "<script", "<link", "url(",
                            "@import"})
      EXPECT_EQ(html.find(bad), std::string::npos) << f << ": " << bad;
  }
}

// --- errors -------------------------------------------------------------------

TEST(ReportErrors, MissingFileIsExit2WithPathInMessage) {
  auto d = analyze_flow_log("/nonexistent/flow.jsonl");
  ASSERT_FALSE(d);
  std::string err = d.error().str();
  EXPECT_NE(err.find("/nonexistent/flow.jsonl"), std::string::npos) << err;
  EXPECT_NE(err.find("No such file"), std::string::npos) << err;
  Config c;
  c.mode = Mode::Report;
  c.report = "/nonexistent/flow.jsonl";
  testing::internal::CaptureStderr();
  EXPECT_EQ(report(c), 2);
  std::string stderr_text = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(stderr_text.starts_with("childflow: error: report: cannot open /nonexistent/"))
      << stderr_text;
}

TEST(ReportErrors, DirectoryIsAReadError) {
  auto d = analyze_flow_log("/tmp");
  ASSERT_FALSE(d);
  EXPECT_NE(d.error().str().find("/tmp"), std::string::npos) << d.error().str();
}

// `report` on `content`: exit code, stdout, stderr.
struct Ran {
  int rc;
  std::string out, err;
};
Ran report_of(const std::string& content) {
  char path[] = "/tmp/cf-report-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, content.data(), content.size()), ssize_t(content.size()));
  close(fd);
  Config c;
  c.mode = Mode::Report;
  c.report = path;
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  int rc = report(c);
  Ran r{rc, testing::internal::GetCapturedStdout(), testing::internal::GetCapturedStderr()};
  unlink(path);
  return r;
}

TEST(ReportErrors, NoEventAtAllIsOneWarningAndExit1) {
  std::string elf = "\x7f" "ELF\x02\x01\x01";
  elf += std::string("\0\0\0\0\0\0\0\0\x03\0>\0\x01\n\0\0\xff\xfe", 18);
  for (const auto& [what, content, lines] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"empty", "", "(it is empty)"},
           {"binary", elf, "(2 lines read, none an event)"},
           {"text", "hello\nworld\n\n[1,2]\n{\"no\":\"event\"}\n", "(5 lines read, none an event)"},
           {"blank", "\n", "(1 line read, none an event)"},
       }) {
    Ran r = report_of(content);
    EXPECT_EQ(r.rc, 1) << what;
    EXPECT_EQ(r.out, "") << what;
    EXPECT_TRUE(r.err.starts_with("childflow: warning: report: /tmp/cf-report-test-")) << r.err;
    EXPECT_NE(r.err.find(" has no flow-log events " + lines + ": is it a flow log?\n"),
              std::string::npos)
        << what << ": " << r.err;
    EXPECT_EQ(count_of(r.err, "\n"), 1u) << what << ": " << r.err;
  }
}

TEST(ReportErrors, OneEventAmongGarbageIsAReport) {
  Ran r = report_of("garbage\n\x01\x02\n{\"event\":\"dns_query\",\"qname\":\"a\"}\n");
  EXPECT_EQ(r.rc, 0);
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("(1 events, 2 malformed lines skipped)"), std::string::npos) << r.out;
}

TEST(ReportErrors, ReportOfAGoodLogExitsZero) {
  Config c;
  c.mode = Mode::Report;
  c.report = kLogs + "childflow-truncated.jsonl";
  c.report_format = ReportFormat::Json;
  testing::internal::CaptureStdout();
  EXPECT_EQ(report(c), 0);
  Json j = Json::parse(testing::internal::GetCapturedStdout());
  EXPECT_EQ(j["lines"]["malformed"], 1);
  EXPECT_EQ(j["source"], c.report.value());
}

}  // namespace
}  // namespace cf::observe
