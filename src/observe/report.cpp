// `--report FILE` (docs/report.md): reads a flow log with FlowLogAnalysis
// (report_analysis.cpp) and prints one ReportData as text, markdown, JSON or
// HTML.
//
// Text, markdown and JSON carry the same content in the same order: lines and
// malformed lines, schema versions and time span, event counts and unknown
// events, protocols, DNS (top names, query types), DNS-name -> target
// correlation, proxy usage, connect results and errors, top targets, flow
// ends (bytes, close reasons), policy (reasons, controls, matched domains and
// CIDRs, denied remotes) and runtime failures. Tables are ranked by count,
// then key, cut at kReportTop rows; the rest is said as "N more" (text,
// markdown) or `distinct` (JSON).
//
// HTML is one self-contained page (no script, no fetch of any kind: a
// Content-Security-Policy of default-src 'none' makes the browser refuse one
// if a bug ever wrote one): a timeline of the flow records (one table row per
// flow or denied query, with a CSS bar on a common time axis; denied ones in
// red and marked DENIED), the denials, the top destinations and names, then
// the counts of the text report.
//
// Strings come from an untrusted file: text and markdown escape control
// characters (no terminal escapes reach the screen) and markdown escapes
// table pipes; JSON is written by nlohmann-json; HTML escapes control
// characters and &, <, >, ", ' in every string from the log (html_escape).
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


// --- HTML -------------------------------------------------------------------

std::string num(uint64_t n) { return fmt::format("{}", n); }

std::string ms_text(uint64_t ms) {
  if (ms < 1000) return fmt::format("{} ms", ms);
  return fmt::format("{:.3f} s", double(ms) / 1000.0);
}

void html_ranked(std::string& o, const Table& t, const char* id, const char* row_class) {
  o += fmt::format("<h3>{}</h3>\n", html_escape(t.title));
  if (t.rows->top.empty()) {
    o += fmt::format("<p class=\"none\" id=\"{}\">none</p>\n", id);
    return;
  }
  o += fmt::format("<table id=\"{}\"><thead><tr><th class=\"num\">count</th>", id);
  for (auto* p : t.parts) o += fmt::format("<th>{}</th>", html_escape(p));
  o += "</tr></thead><tbody>\n";
  for (const auto& r : t.rows->top) {
    o += fmt::format("<tr class=\"{}\"><td class=\"num\">{}</td>", row_class, num(r.count));
    for (const auto& part : r.key) o += fmt::format("<td><code>{}</code></td>", html_escape(part));
    o += "</tr>\n";
  }
  o += "</tbody></table>\n";
  if (t.rows->distinct > t.rows->top.size())
    o += fmt::format("<p class=\"more\">… and {} more.</p>\n",
                     num(t.rows->distinct - t.rows->top.size()));
}

void html_counts(std::string& o, const char* what, const std::map<std::string, uint64_t>& m,
                 const char* id) {
  if (m.empty()) {
    o += fmt::format("<p class=\"none\" id=\"{}\">none</p>\n", id);
    return;
  }
  o += fmt::format("<table id=\"{}\"><thead><tr><th>{}</th><th class=\"num\">count</th></tr>"
                   "</thead><tbody>\n",
                   id, what);
  for (const auto& [k, n] : m)
    o += fmt::format("<tr><td><code>{}</code></td><td class=\"num\">{}</td></tr>\n",
                     html_escape(k), num(n));
  o += "</tbody></table>\n";
}

// "`key` (n)" of the first row, or "none".
std::string html_first(const Ranked& r, const char* joiner) {
  if (r.top.empty()) return "none";
  std::string key;
  for (size_t i = 0; i < r.top[0].key.size(); ++i) {
    if (i) key += joiner;
    key += r.top[0].key[i];
  }
  return fmt::format("<code>{}</code> ({})", html_escape(key), num(r.top[0].count));
}

const char* kHtmlStyle = R"(
:root { --denied: #c62828; --error: #e65100; --ok: #1565c0; --open: #757575; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem;
       color: #212121; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 1px solid #ddd; margin-top: 2rem; }
h3 { font-size: 1.05rem; margin-bottom: 0.3rem; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.9em;
       overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: 0.3rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.15rem 0.45rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.none { color: #757575; font-style: italic; }
.more { color: #555; font-size: 0.9rem; }
.marker { font-weight: bold; }
tr.denied td, tr.denial td { background: #ffebee; }
tr.denied .marker, tr.denial .marker { color: var(--denied); }
tr.error .marker { color: var(--error); }
tr.open .marker { color: var(--open); }
#timeline-table { width: 100%; }
#timeline-table td.lane, #timeline-table th.lane { width: 35%; min-width: 14rem; padding: 0; }
#timeline-table td code { overflow-wrap: normal; white-space: nowrap; }
.track { position: relative; height: 1.1rem; margin: 0.1rem 0.4rem; }
.axis { position: relative; height: 1.2rem; margin: 0 0.4rem; font-weight: normal;
        font-size: 0.75rem; color: #555; }
.axis span { position: absolute; top: 0; white-space: nowrap; }
.axis span.mid { transform: translateX(-50%); }
.axis span.end { transform: translateX(-100%); }
.bar { position: absolute; top: 0.15rem; height: 0.8rem; min-width: 3px;
       background: var(--ok); border-radius: 2px; }
tr.denied .bar { background: var(--denied); min-width: 6px; }
tr.error .bar { background: var(--error); }
tr.open .bar { background: repeating-linear-gradient(45deg, var(--open) 0 4px, #bdbdbd 4px 8px); }
.legend span { margin-right: 1.2rem; }
.swatch { display: inline-block; width: 0.9rem; height: 0.7rem; margin-right: 0.3rem;
          vertical-align: middle; border-radius: 2px; }
)";

std::string html_outcome(const FlowRecord& r) {
  if (r.denied)
    return fmt::format("<span class=\"marker\">DENIED</span> <code>{}</code>{}",
                       html_escape(r.reason_code),
                       r.rule.empty() ? std::string()
                                      : fmt::format(" <code>{}</code>", html_escape(r.rule)));
  if (!r.error.empty())
    return fmt::format("<span class=\"marker\">ERROR</span> {}", html_escape(r.error));
  if (!r.ended) return "<span class=\"marker\">OPEN</span> no end in the log";
  if (r.close.empty()) return "ended";  // the Rust tool's flow_end has no close
  return fmt::format("<code>{}</code>", html_escape(r.close));
}

const char* row_class(const FlowRecord& r) {
  if (r.denied) return "flow denied";
  if (!r.error.empty()) return "flow error";
  if (!r.ended) return "flow open";
  return "flow ok";
}

void html_timeline(std::string& o, const ReportData& d) {
  o += "<section id=\"timeline\">\n<h2>Timeline</h2>\n";
  const auto& flows = d.flows;
  o += fmt::format(
      "<p>{} flows and denied DNS queries drawn, in the order they started{}.</p>\n",
      num(flows.size()),
      d.flows_not_drawn ? fmt::format("; {} more not drawn (the timeline keeps the first {})",
                                      num(d.flows_not_drawn), num(kReportMaxFlows))
                        : std::string());
  if (flows.empty()) {
    o += "<p class=\"none\">no flows in this log</p>\n</section>\n";
    return;
  }
  // The time axis: from the earliest to the latest time of a record.
  std::optional<uint64_t> t0, t1;
  auto see = [&](std::optional<uint64_t> t) {
    if (!t) return;
    if (!t0 || *t < *t0) t0 = *t;
    if (!t1 || *t > *t1) t1 = *t;
  };
  for (const auto& r : flows) {
    see(r.start_ms);
    see(r.end_ms);
  }
  uint64_t span = t0 ? std::max<uint64_t>(*t1 - *t0, 1) : 1;
  auto pct = [&](uint64_t t) { return double(t - *t0) * 100.0 / double(span); };

  // Rows by start time (a record with only an end sorts by its end); stable.
  std::vector<size_t> order(flows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](size_t i) {
    const auto& r = flows[i];
    return r.start_ms ? *r.start_ms : r.end_ms ? *r.end_ms : UINT64_MAX;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });

  o += "<p class=\"legend\">"
       "<span><span class=\"swatch\" style=\"background:var(--ok)\"></span>ended</span>"
       "<span><span class=\"swatch\" style=\"background:var(--denied)\"></span>"
       "<b>DENIED</b> by policy</span>"
       "<span><span class=\"swatch\" style=\"background:var(--error)\"></span>"
       "<b>ERROR</b>: the connect failed</span>"
       "<span><span class=\"swatch\" style=\"background:var(--open)\"></span>"
       "<b>OPEN</b>: no end in the log</span></p>\n";
  if (t0)
    o += fmt::format("<p>Time axis: {} .. {} ({}).</p>\n", utc(*t0), utc(*t1), ms_text(*t1 - *t0));
  o += "<table id=\"timeline-table\"><thead><tr><th class=\"num\">flow</th>"
       "<th class=\"num\">start</th><th class=\"num\">duration</th><th>protocol</th>"
       "<th>target</th><th>names</th><th class=\"num\">bytes sent</th>"
       "<th class=\"num\">bytes received</th><th>outcome</th><th class=\"lane\">";
  if (t0) {
    o += "<div class=\"axis\">";
    for (int q = 0; q <= 2; ++q)
      o += fmt::format("<span class=\"{}\" style=\"left:{}%\">+{}</span>",
                       q == 0 ? "start" : q == 1 ? "mid" : "end",
                       q * 50, ms_text(span * uint64_t(q) / 2));
    o += "</div>";
  }
  o += "</th></tr></thead>\n<tbody>\n";
  for (size_t i : order) {
    const FlowRecord& r = flows[i];
    bool dns = r.kind == FlowRecord::Kind::DnsQuery;
    std::string id = r.flow_id ? fmt::format("{}", *r.flow_id) : "–";
    std::string start = r.start_ms ? "+" + ms_text(*r.start_ms - *t0) : "?";
    std::string duration = "?";
    if (r.start_ms && r.end_ms && *r.end_ms >= *r.start_ms)
      duration = ms_text(*r.end_ms - *r.start_ms);
    else if (r.start_ms && !r.ended)
      duration = "≥ " + ms_text(*t1 - *r.start_ms);
    std::string names;
    for (const auto& n : r.names)
      names += fmt::format("{}<code>{}</code>", names.empty() ? "" : " ", html_escape(n));
    if (r.names_cut) names += " …";
    auto bytes = [](const std::optional<uint64_t>& b) { return b ? num(*b) : "–"; };
    std::string title = fmt::format("{} {}", r.protocol, r.target);
    if (r.denied) title += fmt::format(" DENIED {} {} {}", r.reason_code, r.control, r.rule);
    o += fmt::format("<tr class=\"{}\" data-kind=\"{}\"><td class=\"num\">{}</td>"
                     "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td>"
                     "<td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td>"
                     "<td class=\"num\">{}</td><td>{}</td><td class=\"lane\">",
                     row_class(r), dns ? "dns" : "flow", id, start, duration,
                     html_escape(r.protocol), html_escape(r.target), names, bytes(r.bytes_sent),
                     bytes(r.bytes_received), html_outcome(r));
    std::optional<uint64_t> from = r.start_ms ? r.start_ms : r.end_ms;
    if (from) {
      uint64_t to = r.end_ms ? *r.end_ms : r.ended ? *from : *t1;
      if (to < *from) to = *from;
      o += fmt::format("<div class=\"track\"><span class=\"bar\" "
                       "style=\"left:{:.3f}%;width:{:.3f}%\" title=\"{}\"></span></div>",
                       pct(*from), pct(to) - pct(*from), html_escape(title));
    }
    o += "</td></tr>\n";
  }
  o += "</tbody></table>\n</section>\n";
}

std::string render_html(const ReportData& d, std::string_view source) {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      "style-src 'unsafe-inline'\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  o += fmt::format("<title>childflow report: {}</title>\n<style>{}</style>\n</head>\n<body>\n",
                   html_escape(source), kHtmlStyle);
  o += fmt::format("<h1>childflow report</h1>\n<p>Flow log <code>{}</code>: {} events in {} "
                   "lines, {} malformed lines skipped.</p>\n",
                   html_escape(source), num(d.events), num(d.lines),
                   num(d.malformed_lines));

  o += "<section id=\"highlights\">\n<h2>Highlights</h2>\n<ul>\n";
  o += fmt::format("<li>Time span: {}</li>\n", html_escape(time_span(d)));
  o += fmt::format("<li>DNS: {} queries for {} names; top name {}</li>\n", num(d.dns_queries),
                   num(d.dns_names.distinct), html_first(d.dns_names, ""));
  o += fmt::format("<li>Connects: {} attempts ({} via proxy, {} direct), {} ok, {} errors; top "
                   "error {}</li>\n",
                   num(d.connect_attempts), num(d.via_proxy), num(d.direct),
                   num(d.connect_ok), num(d.connect_error),
                   html_first(d.connect_errors, ": "));
  o += fmt::format("<li>Top destination: {}</li>\n", html_first(d.top_targets, ""));
  o += fmt::format("<li{}>Policy violations: {}; top reason {}</li>\n",
                   d.policy_violations ? " class=\"denial\"" : "", num(d.policy_violations),
                   html_first(d.policy_reasons, ""));
  o += fmt::format("<li>Flows ended: {} ({} bytes sent, {} bytes received)</li>\n",
                   num(d.flow_ends), num(d.bytes_sent), num(d.bytes_received));
  o += fmt::format("<li>Runtime failures: {}</li>\n", num(d.runtime_failures_total));
  o += fmt::format("<li>Unknown events: {}</li>\n", num(d.unknown_events_total));
  o += "</ul>\n</section>\n";

  html_timeline(o, d);

  o += "<section id=\"denials\">\n<h2>Denials</h2>\n";
  o += fmt::format("<p>{} policy violations.</p>\n", num(d.policy_violations));
  html_ranked(o, {"Denials by reason, rule and remote", {"reason_code", "control", "matched rule",
                                                          "remote"},
                  "", &d.denials},
              "denials-table", "denial");
  o += "</section>\n";

  o += "<section id=\"destinations\">\n<h2>Top destinations and names</h2>\n";
  html_ranked(o, {"Top destinations", {"target"}, "", &d.top_targets}, "top-destinations", "");
  html_ranked(o, {"Top DNS names", {"name"}, "", &d.dns_names}, "top-names", "");
  html_ranked(o, {"DNS name → target", {"name", "target"}, "", &d.dns_correlation},
              "dns-correlation", "");
  o += fmt::format("<p>Targets without a DNS name: {}.</p>\n", num(d.targets_without_name));
  o += "</section>\n";

  o += "<section id=\"counts\">\n<h2>Counts</h2>\n";
  o += "<h3>Lines and events</h3>\n";
  o += fmt::format("<p>{} lines, {} events, {} malformed lines skipped. Time span: {}.</p>\n",
                   num(d.lines), num(d.events), num(d.malformed_lines),
                   html_escape(time_span(d)));
  html_counts(o, "schema_version", d.schema_versions, "schema-versions");
  html_counts(o, "event", d.event_counts, "event-counts");
  html_ranked(o, {"Unknown events", {"event"}, "", &d.unknown_events}, "unknown-events", "");
  html_ranked(o, {"Protocols", {"protocol"}, "", &d.protocols}, "protocols", "");
  o += "<h3>DNS</h3>\n";
  o += fmt::format("<p>{} queries, {} answers ({} synthetic empty).</p>\n", num(d.dns_queries),
                   num(d.dns_answers), num(d.dns_synthetic_empty));
  html_ranked(o, {"DNS query types", {"qtype"}, "", &d.dns_qtypes}, "dns-qtypes", "");
  o += "<h3>Connects</h3>\n";
  o += fmt::format("<p>Proxy usage: {} connect attempts, {} via proxy, {} direct. Connect "
                   "results: {} ok, {} error.</p>\n",
                   num(d.connect_attempts), num(d.via_proxy), num(d.direct),
                   num(d.connect_ok), num(d.connect_error));
  html_ranked(o, {"Connect errors", {"target", "error"}, "", &d.connect_errors}, "connect-errors",
              "error");
  o += "<h3>Flows</h3>\n";
  o += fmt::format("<p>{} flows ended, {} bytes sent, {} bytes received.</p>\n",
                   num(d.flow_ends), num(d.bytes_sent), num(d.bytes_received));
  html_ranked(o, {"Close reasons", {"close"}, "", &d.close_reasons}, "close-reasons", "");
  o += "<h3>Policy</h3>\n";
  o += fmt::format("<p>{} policy violations.</p>\n", num(d.policy_violations));
  html_ranked(o, {"Reasons", {"reason_code"}, "", &d.policy_reasons}, "policy-reasons", "denial");
  html_ranked(o, {"Controls", {"control"}, "", &d.policy_controls}, "policy-controls", "denial");
  html_ranked(o, {"Matched domains", {"domain"}, "", &d.policy_matched_domains},
              "policy-domains", "denial");
  html_ranked(o, {"Matched CIDRs", {"cidr"}, "", &d.policy_matched_cidrs}, "policy-cidrs",
              "denial");
  html_ranked(o, {"Denied remotes", {"remote"}, "", &d.policy_remotes}, "policy-remotes",
              "denial");
  o += "<h3>Runtime failures</h3>\n";
  o += fmt::format("<p>{} runtime failures.</p>\n", num(d.runtime_failures_total));
  html_ranked(o, {"Runtime failure kinds", {"phase", "reason_code", "detail"}, "",
                  &d.runtime_failures},
              "runtime-failures", "error");
  o += "</section>\n</body>\n</html>\n";
  return o;
}

}  // namespace

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : printable(s)) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out.push_back(ch);
    }
  }
  return out;
}

std::string render_report(const ReportData& d, ReportFormat f, std::string_view source) {
  switch (f) {
    case ReportFormat::Text: return render_text(d, source);
    case ReportFormat::Markdown: return render_markdown(d, source);
    case ReportFormat::Json: return render_json(d, source);
    case ReportFormat::Html: return render_html(d, source);
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
