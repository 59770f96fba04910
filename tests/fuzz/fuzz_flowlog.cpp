// libFuzzer target for the flow-log reader behind `--report`
// (FlowLogReader and FlowLogAnalysis, src/observe/report_model.hpp) and the
// four renderings of what it read (render_report).
//
// Every input is a flow log, untrusted. It is read three times: at once; in
// chunks of 1 to 7 bytes (as read(2) may cut it), which must give the same
// ReportData; and with a line limit of 1 to 128 bytes taken from the first
// byte, so that the overlong-line path runs on small inputs. Each reading is
// checked against the counts of the log itself (lines, blank lines, overlong
// lines) and against the report's own bounds: events split into known and
// unknown, rankings at most kReportTop rows sorted by count then key, at
// most kReportMaxFlows flow records with strings and names cut. The report
// is then rendered as text, markdown, JSON and HTML: text and markdown hold
// no control byte but newlines (no terminal escapes), the JSON parses, and
// the HTML holds no control byte and only the tags the renderer writes (a
// log's strings cannot open a tag). A broken invariant aborts, which
// libFuzzer reports.
//
// Run: `make fuzz` (scripts/fuzz.sh), or build with the `fuzz` preset, then
//   build/fuzz/fuzz_flowlog -max_total_time=60 build/fuzz/corpus-flowlog tests/fuzz/corpus/flowlog
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "observe/report_model.hpp"

namespace {

using namespace cf::observe;

using cf::fuzz::check;

// What the log itself says, for a line limit.
struct Expect {
  uint64_t lines = 0, blank = 0, overlong = 0;
};

Expect expect(std::string_view log, size_t max_line) {
  Expect e;
  while (!log.empty()) {
    size_t nl = log.find('\n');
    std::string_view line = log.substr(0, nl);
    ++e.lines;
    if (line.size() > max_line) ++e.overlong;
    else if (line.find_first_not_of(" \t\r") == std::string_view::npos) ++e.blank;
    if (nl == std::string_view::npos) break;
    log.remove_prefix(nl + 1);
  }
  return e;
}

void check_ranked(const Ranked& r) {
  check(r.top.size() <= kReportTop && r.top.size() <= r.distinct);
  check(r.distinct <= kReportTop || r.top.size() == kReportTop);
  for (size_t i = 1; i < r.top.size(); ++i) {
    const RankedRow& a = r.top[i - 1];
    const RankedRow& b = r.top[i];
    check(a.count > b.count || (a.count == b.count && a.key < b.key));
  }
  for (const RankedRow& row : r.top) check(row.count > 0 && !row.key.empty());
}

uint64_t sum(const std::map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (const auto& [k, v] : m) n += v;
  return n;
}

void check_data(const ReportData& d, const Expect& e) {
  check(d.lines == e.lines);
  check(d.events + d.malformed_lines + e.blank == d.lines);
  check(d.malformed_lines >= e.overlong);
  check(sum(d.event_counts) + d.unknown_events_total == d.events);
  check(sum(d.schema_versions) == d.events);
  check(d.first_ts_ms.has_value() == d.last_ts_ms.has_value());
  if (d.first_ts_ms) check(*d.first_ts_ms <= *d.last_ts_ms);
  auto count = [&](const char* ev) {
    auto it = d.event_counts.find(ev);
    return it == d.event_counts.end() ? uint64_t(0) : it->second;
  };
  check(d.dns_queries == count("dns_query") && d.dns_answers == count("dns_answer"));
  check(d.dns_synthetic_empty <= d.dns_answers);
  check(d.connect_attempts == count("connect_attempt"));
  check(d.via_proxy + d.direct <= d.connect_attempts);
  check(d.connect_ok + d.connect_error <= count("connect_result"));
  check(d.flow_ends == count("flow_end") && d.policy_violations == count("policy_violation"));
  check(d.runtime_failures_total == count("runtime_failure"));
  for (const Ranked* r : {&d.unknown_events, &d.protocols, &d.dns_names, &d.dns_qtypes,
                          &d.dns_correlation, &d.connect_errors, &d.top_targets,
                          &d.close_reasons, &d.policy_reasons, &d.policy_controls,
                          &d.policy_matched_domains, &d.policy_matched_cidrs,
                          &d.policy_remotes, &d.denials, &d.runtime_failures})
    check_ranked(*r);
  check(d.unknown_events.distinct <= d.unknown_events_total);
  check(d.flows.size() <= kReportMaxFlows);
  constexpr size_t kCut = kReportMaxString + 3;  // and the "…" of a cut string
  for (const FlowRecord& f : d.flows) {
    for (const std::string* s : {&f.protocol, &f.target, &f.close, &f.error, &f.reason_code,
                                 &f.control, &f.rule})
      check(s->size() <= kCut);
    check(f.names.size() <= kReportMaxFlowNames);
    for (const std::string& n : f.names) check(n.size() <= kCut);
    if (f.names_cut) check(f.names.size() == kReportMaxFlowNames);
    if (f.denied) check(f.ended);
  }
}

// Text and markdown: no control byte but '\n' (no terminal escapes).
void check_terminal_safe(const std::string& s) {
  for (unsigned char c : s) check((c >= 0x20 && c != 0x7f) || c == '\n');
}

// Every tag of the page is one the renderer writes.
void check_html(const std::string& s) {
  static const std::string_view kTags[] = {
      "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p",
      "b", "code", "span", "div", "section", "ul", "li", "table", "thead", "tbody", "tr",
      "th", "td"};
  check_terminal_safe(s);
  for (size_t at = s.find('<'); at != std::string::npos; at = s.find('<', at + 1)) {
    size_t from = at + 1 + (at + 1 < s.size() && s[at + 1] == '/');
    size_t to = s.find_first_of(" >", from);
    check(to != std::string::npos);
    std::string_view name(s.data() + from, to - from);
    check(std::find(std::begin(kTags), std::end(kTags), name) != std::end(kTags));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view log(reinterpret_cast<const char*>(data), size);

  FlowLogReader whole;
  whole.feed(log);
  ReportData d = whole.finish();
  check_data(d, expect(log, kReportMaxLine));

  FlowLogReader chunked;
  for (size_t at = 0, n = 1; at < size; at += n, n = n % 7 + 1)
    chunked.feed(log.substr(at, n));
  check(chunked.finish() == d);

  size_t max_line = size ? 1 + data[0] % 128 : 1;
  FlowLogReader small(max_line);
  small.feed(log);
  check_data(small.finish(), expect(log, max_line));

  check_terminal_safe(render_report(d, cf::ReportFormat::Text, "fuzz.jsonl"));
  check_terminal_safe(render_report(d, cf::ReportFormat::Markdown, "fuzz.jsonl"));
  check(nlohmann::json::accept(render_report(d, cf::ReportFormat::Json, "fuzz.jsonl")));
  check_html(render_report(d, cf::ReportFormat::Html, "fuzz.jsonl"));
  return 0;
}
