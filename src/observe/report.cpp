// `--report FILE` (docs/report.md): reads a flow log with FlowLogAnalysis
// (report_analysis.cpp) and prints one ReportData as text, markdown or JSON.
//
// All three formats carry the same content in the same order: lines and
// malformed lines, schema versions and time span, event counts and unknown
// events, protocols, DNS (top names, query types), DNS-name -> target
// correlation, proxy usage, connect results and errors, top targets, flow
// ends (bytes, close reasons), policy (reasons, controls, matched domains and
// CIDRs, denied remotes) and runtime failures. Tables are ranked by count,
// then key, cut at kReportTop rows; the rest is said as "N more" (text,
// markdown) or `distinct` (JSON).
//
// Strings come from an untrusted file: text and markdown escape control
// characters (no terminal escapes reach the screen) and markdown escapes
// table pipes; JSON is written by nlohmann-json.
//
// Exit codes: 0 after a report (also for a log with malformed lines); 1 with
// one warning line when the file holds no event at all (empty, binary, not
// JSON Lines: most likely not a flow log); 2 when the file cannot be opened
// or read (`childflow: error: ...`).
#include "observe/report.hpp"

#include <time.h>

#include <cstdio>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "observe/report_model.hpp"

namespace cf::observe {
namespace {

using OJson = nlohmann::ordered_json;

// Control characters and DEL as \xNN, so a hostile log cannot drive the terminal.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char ch : s) {
    if (ch < 0x20 || ch == 0x7f) out += fmt::format("\\x{:02x}", ch);
    else out.push_back(char(ch));
  }
  return out;
}

// A markdown code span safe inside a table cell.
std::string md_code(std::string_view s) {
  std::string v;
  for (char ch : printable(s)) {
    if (ch == '|') v += "\\|";
    else v.push_back(ch);
  }
  size_t run = 0, longest = 0;
  for (char ch : v) {
    run = ch == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(longest + 1, '`');
  bool pad = v.empty() || v.front() == '`' || v.back() == '`' || v.front() == ' ';
  return pad ? fence + " " + v + " " + fence : fence + v + fence;
}

std::string utc(uint64_t ms) {
  time_t secs = time_t(ms / 1000);
  struct tm tm;
  if (!gmtime_r(&secs, &tm)) return fmt::format("{}", ms);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
}

// One ranked table and the names of its key parts.
struct Table {
  const char* title;               // "top DNS names"
  std::vector<const char*> parts;  // JSON field names of the key parts
  const char* joiner;              // between key parts in text
  const Ranked* rows;
};

// --- text -------------------------------------------------------------------

void text_table(std::string& o, const Table& t) {
  if (t.rows->top.empty()) {
    o += fmt::format("  {}: none\n", t.title);
    return;
  }
  o += fmt::format("  {}:\n", t.title);
  for (const auto& r : t.rows->top) {
    std::string key;
    for (size_t i = 0; i < r.key.size(); ++i) {
      if (i) key += t.joiner;
      key += printable(r.key[i]);
    }
    o += fmt::format("    {:>7}  {}\n", r.count, key);
  }
  if (t.rows->distinct > t.rows->top.size())
    o += fmt::format("    {:>7}  ... {} more\n", "", t.rows->distinct - t.rows->top.size());
}

std::string counts_inline(const std::map<std::string, uint64_t>& m) {
  std::string s;
  for (const auto& [k, n] : m) s += fmt::format("{}{}={}", s.empty() ? "" : " ", printable(k), n);
  return s.empty() ? "none" : s;
}

std::string time_span(const ReportData& d) {
  if (!d.first_ts_ms) return "unknown";
  return fmt::format("{} .. {} ({} ms)", utc(*d.first_ts_ms), utc(*d.last_ts_ms),
                     *d.last_ts_ms - *d.first_ts_ms);
}

std::string render_text(const ReportData& d, std::string_view source) {
  std::string o = fmt::format("childflow report: {}\n", printable(source));
  o += fmt::format("  lines: {} ({} events, {} malformed lines skipped)\n", d.lines, d.events,
                   d.malformed_lines);
  o += fmt::format("  schema versions: {}\n", counts_inline(d.schema_versions));
  o += fmt::format("  time span: {}\n", time_span(d));
  o += fmt::format("  events: {}\n", counts_inline(d.event_counts));
  o += fmt::format("  unknown events: {}\n", d.unknown_events_total);
  if (d.unknown_events_total) text_table(o, {"unknown event names", {}, "", &d.unknown_events});
  text_table(o, {"protocols", {}, "", &d.protocols});
  o += fmt::format("  DNS: {} queries, {} answers ({} synthetic empty)\n", d.dns_queries,
                   d.dns_answers, d.dns_synthetic_empty);
  text_table(o, {"top DNS names", {}, "", &d.dns_names});
  text_table(o, {"DNS query types", {}, "", &d.dns_qtypes});
  text_table(o, {"DNS name -> target", {}, " -> ", &d.dns_correlation});
  o += fmt::format("  targets without a DNS name: {}\n", d.targets_without_name);
  o += fmt::format("  proxy usage: {} connect attempts, {} via proxy, {} direct\n",
                   d.connect_attempts, d.via_proxy, d.direct);
  o += fmt::format("  connect results: {} ok, {} error\n", d.connect_ok, d.connect_error);
  text_table(o, {"connect errors", {}, ": ", &d.connect_errors});
  text_table(o, {"top targets", {}, "", &d.top_targets});
  o += fmt::format("  flows ended: {} ({} bytes sent, {} bytes received)\n", d.flow_ends,
                   d.bytes_sent, d.bytes_received);
  text_table(o, {"close reasons", {}, "", &d.close_reasons});
  o += fmt::format("  policy violations: {}\n", d.policy_violations);
  text_table(o, {"policy reasons", {}, "", &d.policy_reasons});
  text_table(o, {"policy controls", {}, "", &d.policy_controls});
  text_table(o, {"matched domains", {}, "", &d.policy_matched_domains});
  text_table(o, {"matched CIDRs", {}, "", &d.policy_matched_cidrs});
  text_table(o, {"denied remotes", {}, "", &d.policy_remotes});
  o += fmt::format("  runtime failures: {}\n", d.runtime_failures_total);
  text_table(o, {"runtime failure kinds", {}, ": ", &d.runtime_failures});
  return o;
}

// --- markdown ---------------------------------------------------------------

void md_table(std::string& o, const Table& t) {
  o += fmt::format("\n### {}\n\n", t.title);
  if (t.rows->top.empty()) {
    o += "_none_\n";
    return;
  }
  o += "| count |";
  for (auto* p : t.parts) o += fmt::format(" {} |", p);
  o += "\n| ---: |";
  for (size_t i = 0; i < t.parts.size(); ++i) o += " --- |";
  o += "\n";
  for (const auto& r : t.rows->top) {
    o += fmt::format("| {} |", r.count);
    for (const auto& part : r.key) o += fmt::format(" {} |", md_code(part));
    o += "\n";
  }
  if (t.rows->distinct > t.rows->top.size())
    o += fmt::format("\n… and {} more.\n", t.rows->distinct - t.rows->top.size());
}

void md_counts(std::string& o, const char* what, const std::map<std::string, uint64_t>& m) {
  if (m.empty()) {
    o += "_none_\n";
    return;
  }
  o += fmt::format("| {} | count |\n| --- | ---: |\n", what);
  for (const auto& [k, n] : m) o += fmt::format("| {} | {} |\n", md_code(k), n);
}

// "`key` (n)" of the first row, or "none".
std::string md_first(const Ranked& r, const char* joiner) {
  if (r.top.empty()) return "none";
  std::string key;
  for (size_t i = 0; i < r.top[0].key.size(); ++i) {
    if (i) key += joiner;
    key += r.top[0].key[i];
  }
  return fmt::format("{} ({})", md_code(key), r.top[0].count);
}

std::string render_markdown(const ReportData& d, std::string_view source) {
  std::string o = "## Highlights\n\n";
  o += fmt::format("- Flow log {}: {} events in {} lines, {} malformed lines skipped\n",
                   md_code(source), d.events, d.lines, d.malformed_lines);
  o += fmt::format("- Time span: {}\n", time_span(d));
  o += fmt::format("- DNS: {} queries for {} names; top name {}\n", d.dns_queries,
                   d.dns_names.distinct, md_first(d.dns_names, ""));
  o += fmt::format("- Connects: {} attempts ({} via proxy, {} direct), {} ok, {} errors; top "
                   "error {}\n",
                   d.connect_attempts, d.via_proxy, d.direct, d.connect_ok, d.connect_error,
                   md_first(d.connect_errors, ": "));
  o += fmt::format("- Top target: {}\n", md_first(d.top_targets, ""));
  o += fmt::format("- Policy violations: {}; top reason {}\n", d.policy_violations,
                   md_first(d.policy_reasons, ""));
  o += fmt::format("- Runtime failures: {}\n", d.runtime_failures_total);
  o += fmt::format("- Unknown events: {}\n", d.unknown_events_total);

  o += "\n## Lines and events\n\n";
  o += fmt::format("{} lines, {} events, {} malformed lines skipped.\n\n", d.lines, d.events,
                   d.malformed_lines);
  md_counts(o, "schema_version", d.schema_versions);
  o += "\n";
  md_counts(o, "event", d.event_counts);
  md_table(o, {"Unknown events", {"event"}, "", &d.unknown_events});
  md_table(o, {"Protocols", {"protocol"}, "", &d.protocols});

  o += "\n## DNS\n\n";
  o += fmt::format("{} queries, {} answers ({} synthetic empty).\n", d.dns_queries, d.dns_answers,
                   d.dns_synthetic_empty);
  md_table(o, {"Top DNS names", {"name"}, "", &d.dns_names});
  md_table(o, {"DNS query types", {"qtype"}, "", &d.dns_qtypes});
  md_table(o, {"DNS name → target", {"name", "target"}, "", &d.dns_correlation});
  o += fmt::format("\nTargets without a DNS name: {}.\n", d.targets_without_name);

  o += "\n## Connects\n\n";
  o += fmt::format("Proxy usage: {} connect attempts, {} via proxy, {} direct.\n",
                   d.connect_attempts, d.via_proxy, d.direct);
  o += fmt::format("Connect results: {} ok, {} error.\n", d.connect_ok, d.connect_error);
  md_table(o, {"Connect errors", {"target", "error"}, "", &d.connect_errors});
  md_table(o, {"Top targets", {"target"}, "", &d.top_targets});

  o += "\n## Flows\n\n";
  o += fmt::format("{} flows ended, {} bytes sent, {} bytes received.\n", d.flow_ends,
                   d.bytes_sent, d.bytes_received);
  md_table(o, {"Close reasons", {"close"}, "", &d.close_reasons});

  o += "\n## Policy\n\n";
  o += fmt::format("{} policy violations.\n", d.policy_violations);
  md_table(o, {"Reasons", {"reason_code"}, "", &d.policy_reasons});
  md_table(o, {"Controls", {"control"}, "", &d.policy_controls});
  md_table(o, {"Matched domains", {"domain"}, "", &d.policy_matched_domains});
  md_table(o, {"Matched CIDRs", {"cidr"}, "", &d.policy_matched_cidrs});
  md_table(o, {"Denied remotes", {"remote"}, "", &d.policy_remotes});

  o += "\n## Runtime failures\n\n";
  o += fmt::format("{} runtime failures.\n", d.runtime_failures_total);
  md_table(o, {"Runtime failure kinds", {"phase", "reason_code", "detail"}, "",
               &d.runtime_failures});
  return o;
}

// --- JSON -------------------------------------------------------------------

OJson json_ranked(const Ranked& r, std::vector<const char*> parts) {
  OJson top = OJson::array();
  for (const auto& row : r.top) {
    OJson e = OJson::object();
    for (size_t i = 0; i < parts.size() && i < row.key.size(); ++i) e[parts[i]] = row.key[i];
    e["count"] = row.count;
    top.push_back(std::move(e));
  }
  return OJson{{"distinct", r.distinct}, {"top", std::move(top)}};
}

OJson json_opt(const std::optional<uint64_t>& v) { return v ? OJson(*v) : OJson(); }

std::string render_json(const ReportData& d, std::string_view source) {
  OJson j = OJson::object();
  j["source"] = std::string(source);
  j["lines"] = {{"total", d.lines}, {"events", d.events}, {"malformed", d.malformed_lines}};
  j["schema_versions"] = d.schema_versions;
  j["time"] = {{"first_ts_ms", json_opt(d.first_ts_ms)},
               {"last_ts_ms", json_opt(d.last_ts_ms)},
               {"span_ms", d.first_ts_ms ? OJson(*d.last_ts_ms - *d.first_ts_ms) : OJson()}};
  j["event_counts"] = d.event_counts;
  OJson unknown = json_ranked(d.unknown_events, {"event"});
  unknown["total"] = d.unknown_events_total;
  j["unknown_events"] = std::move(unknown);
  j["protocols"] = json_ranked(d.protocols, {"protocol"});
  j["dns"] = {{"queries", d.dns_queries},
              {"answers", d.dns_answers},
              {"synthetic_empty", d.dns_synthetic_empty},
              {"top_names", json_ranked(d.dns_names, {"name"})},
              {"qtypes", json_ranked(d.dns_qtypes, {"qtype"})}};
  OJson corr = json_ranked(d.dns_correlation, {"name", "target"});
  corr["targets_without_name"] = d.targets_without_name;
  j["dns_correlation"] = std::move(corr);
  j["proxy_usage"] = {
      {"connect_attempts", d.connect_attempts}, {"via_proxy", d.via_proxy}, {"direct", d.direct}};
  j["connects"] = {{"ok", d.connect_ok}, {"error", d.connect_error}};
  j["connect_errors"] = json_ranked(d.connect_errors, {"target", "error"});
  j["top_targets"] = json_ranked(d.top_targets, {"target"});
  j["flows"] = {{"ended", d.flow_ends},
                {"bytes_sent", d.bytes_sent},
                {"bytes_received", d.bytes_received},
                {"close", json_ranked(d.close_reasons, {"close"})}};
  j["policy"] = {{"violations", d.policy_violations},
                 {"reasons", json_ranked(d.policy_reasons, {"reason_code"})},
                 {"controls", json_ranked(d.policy_controls, {"control"})},
                 {"matched_domains", json_ranked(d.policy_matched_domains, {"domain"})},
                 {"matched_cidrs", json_ranked(d.policy_matched_cidrs, {"cidr"})},
                 {"remotes", json_ranked(d.policy_remotes, {"remote"})}};
  OJson failures = json_ranked(d.runtime_failures, {"phase", "reason_code", "detail"});
  failures["total"] = d.runtime_failures_total;
  j["runtime_failures"] = std::move(failures);
  return j.dump(2, ' ', false, OJson::error_handler_t::replace) + "\n";
}

}  // namespace

std::string render_report(const ReportData& d, ReportFormat f, std::string_view source) {
  switch (f) {
    case ReportFormat::Text: return render_text(d, source);
    case ReportFormat::Markdown: return render_markdown(d, source);
    case ReportFormat::Json: return render_json(d, source);
  }
  return render_text(d, source);
}

int report(const Config& c) {
  if (!c.report) {
    std::fputs("childflow: error: report: no flow log given (--report FILE)\n", stderr);
    return 2;
  }
  auto data = analyze_flow_log(*c.report);
  if (!data) {
    std::fprintf(stderr, "childflow: error: %s\n", data.error().str().c_str());
    return 2;
  }
  if (data->events == 0) {
    // Nothing in it was an event: an empty file, a binary, another format.
    // An empty report with exit 0 would hide that the wrong file was given.
    std::string what = *c.report == "/dev/stdin" ? "standard input" : printable(*c.report);
    std::string seen = data->lines == 0
                           ? std::string("it is empty")
                           : fmt::format("{} line{} read, none an event", data->lines,
                                         data->lines == 1 ? "" : "s");
    std::fputs(fmt::format("childflow: warning: report: {} has no flow-log events ({}): is it a "
                           "flow log?\n",
                           what, seen)
                   .c_str(),
               stderr);
    return 1;
  }
  std::string out = render_report(*data, c.report_format, *c.report);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return std::fflush(stdout) == 0 ? 0 : 2;
}

}  // namespace cf::observe
