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
//   Flow records (for the HTML timeline): one FlowRecord per flow (a TCP
//   connect, a UDP or ICMP flow, a denied flow) and per denied DNS query, in
//   the order they started, for the first kReportMaxFlows of them; later ones
//   are only counted (flows_not_drawn), so memory stays bounded however long
//   the log is. Events join their record by flow_id; logs without flow_id
//   (the Rust tool's) join by target, first come first served: a
//   connect_result goes to the oldest record to that target still waiting
//   for one, a TCP denial to the oldest not denied, a flow_end to the oldest
//   not ended (each join O(1) amortised), and a flow_end that none explains
//   starts a record of its own (its start is end - duration_ms when the log
//   says, else unknown). Strings in a record are cut at kReportMaxString
//   bytes (on a UTF-8 boundary), and at most kReportMaxFlowNames names are
//   kept per flow.
//
//   result() ranks every table by count (descending), then key (ascending),
//   and keeps the first kReportTop rows; `distinct` says how many keys there
//   were. render_report() prints one ReportData as text, markdown (starting
//   with `## Highlights`), one JSON object with the same content, or one
//   self-contained HTML page (the same counts, plus the timeline of the flow
//   records and a table of denials).
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
constexpr size_t kReportMaxFlows = 10000;   // flow records kept for the timeline
constexpr size_t kReportMaxString = 256;    // bytes kept of a string in a flow record
constexpr size_t kReportMaxFlowNames = 4;   // names kept per flow record

struct RankedRow {
  std::vector<std::string> key;  // one or more parts (e.g. name, target)
  uint64_t count = 0;
  friend bool operator==(const RankedRow&, const RankedRow&) = default;
};

struct Ranked {
  std::vector<RankedRow> top;  // at most kReportTop rows, by count then key
  uint64_t distinct = 0;       // how many keys there were in all
  friend bool operator==(const Ranked&, const Ranked&) = default;
};

// One flow (or denied DNS query) of the log, for the HTML timeline.
struct FlowRecord {
  enum class Kind : uint8_t { Flow, DnsQuery };
  Kind kind = Kind::Flow;
  std::optional<uint64_t> flow_id;            // absent in the Rust tool's logs
  std::optional<uint64_t> start_ms, end_ms;   // no start: only its end was logged
  std::string protocol;                       // tcp, udp, icmpv4, icmpv6, dns
  std::string target;                         // ip:port (ip for ICMP), qname for DNS
  std::vector<std::string> names;             // DNS names of the target
  bool names_cut = false;                     // more than kReportMaxFlowNames
  std::optional<bool> via_proxy;
  std::optional<uint64_t> bytes_sent, bytes_received;
  std::string close;   // flow_end `close`; empty: none logged
  std::string error;   // connect_result `error` (status error)
  bool ended = false;  // a flow_end, a failed connect_result or a denial closed it
  bool denied = false;
  std::string reason_code, control, rule;  // rule: matched_domain or matched_cidr
  friend bool operator==(const FlowRecord&, const FlowRecord&) = default;
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
  Ranked denials;  // key {reason_code, control, rule, remote} (HTML only)

  // Runtime failures.
  uint64_t runtime_failures_total = 0;
  Ranked runtime_failures;  // key {phase, reason_code, detail}

  // Flow records, in the order the flows started (HTML only).
  std::vector<FlowRecord> flows;  // at most kReportMaxFlows
  uint64_t flows_not_drawn = 0;   // flows and denied queries after the cap
  friend bool operator==(const ReportData&, const ReportData&) = default;
};

class FlowLogAnalysis {
 public:
  FlowLogAnalysis();
  ~FlowLogAnalysis();
  FlowLogAnalysis(const FlowLogAnalysis&) = delete;
  FlowLogAnalysis& operator=(const FlowLogAnalysis&) = delete;

  // One line of the log, without its '\n'.
  void add_line(std::string_view line);
  // A line too long to read (over 1 MiB): counted as malformed.
  void add_overlong_line();
  ReportData result() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// A line of a flow log longer than this is skipped and counted malformed.
constexpr size_t kReportMaxLine = 1 << 20;

// Cuts a flow log into lines however it arrives (chunks of any size, cut
// anywhere) and feeds them to a FlowLogAnalysis, in bounded memory: a line
// longer than `max_line` bytes is skipped to its end, never held, and counted
// malformed. The same log gives the same ReportData whatever its chunks.
class FlowLogReader {
 public:
  explicit FlowLogReader(size_t max_line = kReportMaxLine) : max_line_(max_line) {}
  void feed(std::string_view chunk);
  // The end of the log: a last line without its '\n' counts too.
  ReportData finish();

 private:
  FlowLogAnalysis a_;
  size_t max_line_;
  std::string line_;
  bool overlong_ = false;
};

// Reads the whole file at `path` with a FlowLogReader (/dev/stdin: fd 0
// itself). An open or read error names the path and the cause.
Result<ReportData> analyze_flow_log(const std::string& path);

// `source` is the name printed as the log's origin (the path).
std::string render_report(const ReportData& d, ReportFormat f, std::string_view source);

// `s` with &, <, >, " and ' as character references and control characters
// as \xNN: safe in HTML text and in quoted attribute values.
std::string html_escape(std::string_view s);

}  // namespace cf::observe
