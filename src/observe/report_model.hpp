// What `--report` learns from a flow log, and how it is rendered.
//
// Theory of operation:
//   FlowLogAnalysis is fed the log one line at a time (add_line, without the
//   '\n'); it keeps only counters and small maps, never the events, so a log
//   of millions of lines streams in constant memory per distinct key. Each
//   line is parsed by nlohmann-json's SAX interface (no exceptions, no DOM:
//   only the top-level fields the report uses are kept, by name):
//     - a blank line is skipped;
//     - a line that is not a JSON object with a string `event` (a truncated
//       last line, garbage) counts as a malformed line and is skipped;
//     - an event name not in docs/flow-log-schema.md counts as an unknown event;
//     - unknown fields are ignored, and a known field of the wrong type is
//       treated as absent (logs are untrusted input: never assert on them).
//   Logs of the Rust childflow (keys in alphabetical order, no flow_id, no
//   beyond fields) read the same way: fields are looked up by name.
//
//   DNS-name -> target correlation: every dns_answer adds its answer_ips to an
//   address -> names map; a later connect_attempt or flow_start to one of
//   those addresses is attributed to those names, together with the names the
//   event itself carries (`names`, beyond). A connect to an address no answer
//   named (an address literal) counts as a connect without a name. At most 16
//   names are remembered per address (a bound against hostile logs).
//
//   result() ranks every table by count (descending), then key (ascending),
//   and keeps the first kReportTop rows; `distinct` says how many keys there
//   were. render_report() prints one ReportData as text, markdown (starting
//   with `## Highlights`) or one JSON object with the same content.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::observe {

constexpr size_t kReportTop = 10;

struct RankedRow {
  std::vector<std::string> key;  // one or more parts (e.g. name, target)
  uint64_t count = 0;
};

struct Ranked {
  std::vector<RankedRow> top;  // at most kReportTop rows, by count then key
  uint64_t distinct = 0;       // how many keys there were in all
};

struct ReportData {
  // Lines.
  uint64_t lines = 0;            // every line read, blank ones included
  uint64_t events = 0;           // lines that were an event object
  uint64_t malformed_lines = 0;  // not JSON, not an object, or no string `event`
  std::map<std::string, uint64_t> schema_versions;  // "1" -> n; "missing"
  std::optional<uint64_t> first_ts_ms, last_ts_ms;

  // Events.
  std::map<std::string, uint64_t> event_counts;  // known events only
  uint64_t unknown_events_total = 0;
  Ranked unknown_events;
  Ranked protocols;  // events by their `protocol` field

  // DNS.
  uint64_t dns_queries = 0, dns_answers = 0, dns_synthetic_empty = 0;
  Ranked dns_names;   // qname of dns_query
  Ranked dns_qtypes;  // qtype of dns_query
  Ranked dns_correlation;  // key {name, target}
  uint64_t targets_without_name = 0;

  // Connects and flows.
  uint64_t connect_attempts = 0, via_proxy = 0, direct = 0;
  uint64_t connect_ok = 0, connect_error = 0;
  Ranked connect_errors;  // key {target, error}
  Ranked top_targets;     // remote_addr of connect_attempt and flow_start
  uint64_t flow_ends = 0, bytes_sent = 0, bytes_received = 0;
  Ranked close_reasons;

  // Policy.
  uint64_t policy_violations = 0;
  Ranked policy_reasons, policy_controls, policy_matched_domains, policy_matched_cidrs,
      policy_remotes;

  // Runtime failures.
  uint64_t runtime_failures_total = 0;
  Ranked runtime_failures;  // key {phase, reason_code, detail}
};

class FlowLogAnalysis {
 public:
  FlowLogAnalysis();
  ~FlowLogAnalysis();
  FlowLogAnalysis(const FlowLogAnalysis&) = delete;
  FlowLogAnalysis& operator=(const FlowLogAnalysis&) = delete;

  // One line of the log, without its '\n'.
  void add_line(std::string_view line);
  ReportData result() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Reads the whole file at `path` line by line. An open or read error names
// the path and the cause.
Result<ReportData> analyze_flow_log(const std::string& path);

// `source` is the name printed as the log's origin (the path).
std::string render_report(const ReportData& d, ReportFormat f, std::string_view source);

}  // namespace cf::observe
