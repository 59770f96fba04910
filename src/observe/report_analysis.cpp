// Streaming analysis of a flow log for `--report`; see report_model.hpp.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fmt/format.h>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/unique_fd.hpp"
#include "observe/report_model.hpp"

namespace cf::observe {
namespace {

using Json = nlohmann::json;

// The events of docs/flow-log-schema.md (flow_start and limit_hit, ours
// alone, included).
constexpr std::string_view kKnownEvents[] = {
    "dns_query",        "dns_answer",      "connect_attempt", "connect_result", "flow_start",
    "flow_end",         "policy_violation", "runtime_failure", "limit_hit",
};

bool known_event(std::string_view e) {
  return std::find(std::begin(kKnownEvents), std::end(kKnownEvents), e) != std::end(kKnownEvents);
}

// Counts keys of one or more string parts. Parts are stored length-prefixed
// in one string, so any byte may appear in a part.
class KeyCounter {
 public:
  void add(std::initializer_list<std::string_view> parts, uint64_t n = 1) {
    scratch_.clear();
    for (auto p : parts) {
      uint32_t len = uint32_t(p.size());
      scratch_.append(reinterpret_cast<const char*>(&len), sizeof len);
      scratch_.append(p);
    }
    auto it = m_.find(scratch_);
    if (it == m_.end()) m_.emplace(scratch_, n);
    else it->second += n;
  }

  Ranked ranked() const {
    std::vector<RankedRow> rows;
    rows.reserve(m_.size());
    for (const auto& [k, n] : m_) rows.push_back({split(k), n});
    auto by_count_then_key = [](const RankedRow& a, const RankedRow& b) {
      return a.count != b.count ? a.count > b.count : a.key < b.key;
    };
    Ranked r;
    r.distinct = rows.size();
    if (rows.size() > kReportTop) {
      std::partial_sort(rows.begin(), rows.begin() + kReportTop, rows.end(), by_count_then_key);
      rows.resize(kReportTop);
    } else {
      std::sort(rows.begin(), rows.end(), by_count_then_key);
    }
    r.top = std::move(rows);
    return r;
  }

 private:
  static std::vector<std::string> split(const std::string& k) {
    std::vector<std::string> parts;
    size_t at = 0;
    while (at + sizeof(uint32_t) <= k.size()) {
      uint32_t len;
      std::memcpy(&len, k.data() + at, sizeof len);
      at += sizeof len;
      parts.emplace_back(k.substr(at, len));
      at += len;
    }
    return parts;
  }

  std::unordered_map<std::string, uint64_t> m_;
  std::string scratch_;
};

// The fields the analysis reads. A line is parsed by a SAX handler that keeps
// only these top-level fields (no DOM: no map of keys, no values we do not
// read), which makes parsing about twice as fast as json::parse.
enum class Field : uint8_t {
  SchemaVersion, TsMs, Event, Protocol, Qname, Qtype, Mode, AnswerIps, RemoteAddr, RemoteIp,
  RemotePort, ViaProxy, Names, Status, Error, BytesSent, BytesReceived, Close, ReasonCode,
  Control, MatchedDomain, MatchedCidr, Remote, Phase, Detail, FlowId, DurationMs, Count
};

// Field::Count for a key the analysis does not read.
Field field_of(std::string_view key) {
  static const std::unordered_map<std::string_view, Field> fields = {
      {"schema_version", Field::SchemaVersion}, {"ts_ms", Field::TsMs},
      {"event", Field::Event}, {"protocol", Field::Protocol}, {"qname", Field::Qname},
      {"qtype", Field::Qtype}, {"mode", Field::Mode}, {"answer_ips", Field::AnswerIps},
      {"remote_addr", Field::RemoteAddr}, {"remote_ip", Field::RemoteIp},
      {"remote_port", Field::RemotePort}, {"via_proxy", Field::ViaProxy},
      {"names", Field::Names}, {"status", Field::Status}, {"error", Field::Error},
      {"bytes_sent", Field::BytesSent}, {"bytes_received", Field::BytesReceived},
      {"close", Field::Close}, {"reason_code", Field::ReasonCode}, {"control", Field::Control},
      {"matched_domain", Field::MatchedDomain}, {"matched_cidr", Field::MatchedCidr},
      {"remote", Field::Remote}, {"phase", Field::Phase}, {"detail", Field::Detail},
      {"flow_id", Field::FlowId}, {"duration_ms", Field::DurationMs},
  };
  auto it = fields.find(key);
  return it == fields.end() ? Field::Count : it->second;
}

// One top-level value. Only what the analysis needs is kept: strings,
// non-negative integers, booleans, and the string elements of arrays.
struct Value {
  enum class Kind : uint8_t { Absent, Null, Bool, Uint, NegativeInt, Float, String, Array, Object };
  Kind kind = Kind::Absent;
  bool b = false;
  uint64_t u = 0;
  std::string s;
  std::vector<std::string> list;  // string elements of an array
};

// The fields of one line, read by name whatever their order.
struct Line {
  std::array<Value, size_t(Field::Count)> v;
  bool root_is_object = false;

  void clear() {
    for (auto& x : v) {
      x.kind = Value::Kind::Absent;
      x.list.clear();
    }
    root_is_object = false;
  }
  const Value& operator[](Field f) const { return v[size_t(f)]; }
  // Missing fields and fields of the wrong type read alike: absent.
  const std::string* str(Field f) const {
    const Value& x = v[size_t(f)];
    return x.kind == Value::Kind::String ? &x.s : nullptr;
  }
  std::optional<uint64_t> uint(Field f) const {
    const Value& x = v[size_t(f)];
    if (x.kind != Value::Kind::Uint) return std::nullopt;
    return x.u;
  }
  std::optional<bool> boolean(Field f) const {
    const Value& x = v[size_t(f)];
    if (x.kind != Value::Kind::Bool) return std::nullopt;
    return x.b;
  }
  const std::vector<std::string>* list(Field f) const {
    const Value& x = v[size_t(f)];
    return x.kind == Value::Kind::Array ? &x.list : nullptr;
  }
};

// nlohmann-json SAX handler filling a Line. Depth 1 is the root object's
// members; depth 2 the elements of a member array. Deeper values and values
// of unknown keys are parsed (so the line must be valid JSON) and dropped.
class LineReader {
 public:
  explicit LineReader(Line& line) : line_(line) {}

  bool null() { return scalar(Value::Kind::Null); }
  bool boolean(bool b) {
    if (Value* x = target()) {
      x->kind = Value::Kind::Bool;
      x->b = b;
    }
    return true;
  }
  bool number_integer(Json::number_integer_t) { return scalar(Value::Kind::NegativeInt); }
  bool number_unsigned(Json::number_unsigned_t u) {
    if (Value* x = target()) {
      x->kind = Value::Kind::Uint;
      x->u = u;
    }
    return true;
  }
  bool number_float(Json::number_float_t, const std::string&) {
    return scalar(Value::Kind::Float);
  }
  bool string(std::string& s) {
    if (Value* x = target()) {
      x->kind = Value::Kind::String;
      x->s.swap(s);
    } else if (in_member_array()) {
      line_.v[size_t(member_)].list.push_back(std::move(s));
    }
    return true;
  }
  bool binary(Json::binary_t&) { return true; }
  bool start_object(size_t) {
    if (depth_ == 0) line_.root_is_object = true;
    else if (Value* x = target()) x->kind = Value::Kind::Object;
    ++depth_;
    return true;
  }
  bool end_object() {
    --depth_;
    if (depth_ == 1) member_ = Field::Count;
    return true;
  }
  bool start_array(size_t) {
    if (depth_ == 0) return false;  // not an event: stop here
    if (Value* x = target()) {
      x->kind = Value::Kind::Array;
      x->list.clear();
    }
    ++depth_;
    return true;
  }
  bool end_array() {
    --depth_;
    if (depth_ == 1) member_ = Field::Count;
    return true;
  }
  bool key(std::string& k) {
    if (depth_ == 1) member_ = field_of(k);
    return true;
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception&) {
    return false;
  }

 private:
  // The slot for a value at depth 1 (a member), or null.
  Value* target() {
    if (depth_ != 1 || member_ == Field::Count) return nullptr;
    return &line_.v[size_t(member_)];
  }
  bool in_member_array() const {
    return depth_ == 2 && member_ != Field::Count &&
           line_.v[size_t(member_)].kind == Value::Kind::Array;
  }
  bool scalar(Value::Kind k) {
    if (Value* x = target()) x->kind = k;
    if (depth_ == 0) return false;  // a bare scalar is not an event
    return true;
  }

  Line& line_;
  int depth_ = 0;
  Field member_ = Field::Count;  // the member being read; Count: none we keep
};

// "ip:port" of a flow event: remote_addr, else built from remote_ip/port.
std::optional<std::string> target_of(const Line& l) {
  if (auto* a = l.str(Field::RemoteAddr)) return *a;
  const std::string* ip = l.str(Field::RemoteIp);
  if (!ip) return std::nullopt;
  auto port = l.uint(Field::RemotePort);
  if (!port) return *ip;
  return ip->find(':') != std::string::npos ? fmt::format("[{}]:{}", *ip, *port)
                                            : fmt::format("{}:{}", *ip, *port);
}

// At most this many names are remembered per address (a bound against
// hostile logs; real answers name an address a handful of times).
constexpr size_t kMaxNamesPerIp = 16;

// `s` cut at kReportMaxString bytes, on a UTF-8 character boundary.
std::string clip(std::string_view s) {
  if (s.size() <= kReportMaxString) return std::string(s);
  size_t n = kReportMaxString;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n)) + "\xe2\x80\xa6";
}

}  // namespace

struct FlowLogAnalysis::State {
  ReportData d;  // scalar counters; ranked tables are filled by result()
  KeyCounter unknown_events, protocols, dns_names, dns_qtypes, correlation, connect_errors,
      targets, close_reasons, reasons, controls, matched_domains, matched_cidrs, remotes,
      runtime_failures;
  std::unordered_map<std::string, std::vector<std::string>> names_by_ip;
  Line line;                       // the line being read (reused)
  std::vector<std::string> names;  // scratch

  // Flow records (report_model.hpp, "Flow records").
  KeyCounter denials;
  std::vector<FlowRecord> flows;
  uint64_t flows_not_drawn = 0;
  std::unordered_map<uint64_t, size_t> flow_by_id;
  // Logs without flow_id: per target, the records waiting for their
  // connect_result and for their end, oldest first. A record that ended
  // otherwise is skipped (and dropped) when it reaches the front, so every
  // join is O(1) amortised, whatever a hostile log does.
  struct Waiting {
    std::deque<size_t> result, end;
  };
  std::unordered_map<std::string, Waiting> waiting;

  void on_event(const std::string& event, const Line& l);
  void correlate(const Line& l, const std::string& target);
  size_t new_flow(const Line& l, FlowRecord::Kind kind, bool count_if_full);
  size_t by_id(const Line& l) const;
  size_t next_result(const std::optional<std::string>& target);
  size_t next_end(const std::optional<std::string>& target);
  size_t next_denial(const std::optional<std::string>& target);
  void forget_if_idle(std::unordered_map<std::string, Waiting>::iterator it);
  void set_names(FlowRecord& r, const std::vector<std::string>& from);
};

namespace {
constexpr size_t kNoFlow = SIZE_MAX;
// A TCP denial without flow_id looks this far into the records waiting for
// a result (it follows its connect_attempt at once in every real log).
constexpr size_t kDenialScan = 8;
}  // namespace

// A new record for the flow of `l`, or kNoFlow when the table is full (then
// the flow counts as not drawn if `count_if_full`).
size_t FlowLogAnalysis::State::new_flow(const Line& l, FlowRecord::Kind kind,
                                        bool count_if_full) {
  if (flows.size() >= kReportMaxFlows) {
    if (count_if_full) ++flows_not_drawn;
    return kNoFlow;
  }
  size_t i = flows.size();
  FlowRecord& r = flows.emplace_back();
  r.kind = kind;
  if (auto* p = l.str(Field::Protocol)) r.protocol = clip(*p);
  if (auto id = l.uint(Field::FlowId)) {
    r.flow_id = id;
    flow_by_id.emplace(*id, i);
  }
  return i;
}

// The record of `l`'s flow_id; kNoFlow without one or for an unknown one.
size_t FlowLogAnalysis::State::by_id(const Line& l) const {
  auto id = l.uint(Field::FlowId);
  if (!id) return kNoFlow;
  auto it = flow_by_id.find(*id);
  return it == flow_by_id.end() ? kNoFlow : it->second;
}

void FlowLogAnalysis::State::forget_if_idle(std::unordered_map<std::string, Waiting>::iterator it) {
  if (it->second.result.empty() && it->second.end.empty()) waiting.erase(it);
}

// The oldest record to `target` waiting for its connect_result, taken.
size_t FlowLogAnalysis::State::next_result(const std::optional<std::string>& target) {
  if (!target) return kNoFlow;
  auto it = waiting.find(*target);
  if (it == waiting.end()) return kNoFlow;
  auto& q = it->second.result;
  size_t found = kNoFlow;
  while (!q.empty() && found == kNoFlow) {
    size_t i = q.front();
    q.pop_front();
    // Ended without a result (a flow_end while connecting): not this one.
    // A denial ends a record that still gets its result.
    if (!flows[i].ended || flows[i].denied) found = i;
  }
  forget_if_idle(it);
  return found;
}

// The oldest record to `target` not ended yet, taken.
size_t FlowLogAnalysis::State::next_end(const std::optional<std::string>& target) {
  if (!target) return kNoFlow;
  auto it = waiting.find(*target);
  if (it == waiting.end()) return kNoFlow;
  auto& q = it->second.end;
  size_t found = kNoFlow;
  while (!q.empty() && found == kNoFlow) {
    size_t i = q.front();
    q.pop_front();
    if (!flows[i].ended) found = i;
  }
  forget_if_idle(it);
  return found;
}

// The oldest record to `target` waiting for its result and not denied yet.
size_t FlowLogAnalysis::State::next_denial(const std::optional<std::string>& target) {
  if (!target) return kNoFlow;
  auto it = waiting.find(*target);
  if (it == waiting.end()) return kNoFlow;
  const auto& q = it->second.result;
  for (size_t k = 0; k < q.size() && k < kDenialScan; ++k)
    if (!flows[q[k]].ended) return q[k];
  return kNoFlow;
}

void FlowLogAnalysis::State::set_names(FlowRecord& r, const std::vector<std::string>& from) {
  r.names.clear();
  for (const auto& n : from) {
    if (r.names.size() == kReportMaxFlowNames) {
      r.names_cut = true;
      break;
    }
    r.names.push_back(clip(n));
  }
}

FlowLogAnalysis::FlowLogAnalysis() : s_(std::make_unique<State>()) {}
FlowLogAnalysis::~FlowLogAnalysis() = default;

void FlowLogAnalysis::add_overlong_line() {
  ++s_->d.lines;
  ++s_->d.malformed_lines;
}

void FlowLogAnalysis::add_line(std::string_view text) {
  ReportData& d = s_->d;
  Line& l = s_->line;
  ++d.lines;
  if (text.find_first_not_of(" \t\r") == std::string_view::npos) return;
  l.clear();
  LineReader reader(l);
  bool parsed = Json::sax_parse(text.begin(), text.end(), &reader);
  const std::string* event = parsed && l.root_is_object ? l.str(Field::Event) : nullptr;
  if (!event) {
    ++d.malformed_lines;
    return;
  }
  ++d.events;
  const Value& sv = l[Field::SchemaVersion];
  switch (sv.kind) {
    case Value::Kind::Absent: ++d.schema_versions["missing"]; break;
    case Value::Kind::Uint: ++d.schema_versions[fmt::format("{}", sv.u)]; break;
    case Value::Kind::Null:
    case Value::Kind::Bool:
    case Value::Kind::NegativeInt:
    case Value::Kind::Float:
    case Value::Kind::String:
    case Value::Kind::Array:
    case Value::Kind::Object: ++d.schema_versions["invalid"]; break;
  }
  if (auto ts = l.uint(Field::TsMs)) {
    if (!d.first_ts_ms || *ts < *d.first_ts_ms) d.first_ts_ms = *ts;
    if (!d.last_ts_ms || *ts > *d.last_ts_ms) d.last_ts_ms = *ts;
  }
  if (!known_event(*event)) {
    ++d.unknown_events_total;
    s_->unknown_events.add({*event});
    return;
  }
  ++d.event_counts[*event];
  if (auto* p = l.str(Field::Protocol)) s_->protocols.add({*p});
  s_->on_event(*event, l);
}

void FlowLogAnalysis::State::correlate(const Line& l, const std::string& target) {
  names.clear();
  if (auto* own = l.list(Field::Names)) names = *own;
  if (auto* ip = l.str(Field::RemoteIp)) {
    auto known = names_by_ip.find(*ip);
    if (known != names_by_ip.end())
      for (const auto& n : known->second) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.empty()) ++d.targets_without_name;
  for (const auto& n : names) correlation.add({n, target});
}

void FlowLogAnalysis::State::on_event(const std::string& event, const Line& l) {
  if (event == "dns_query") {
    ++d.dns_queries;
    if (auto* q = l.str(Field::Qname)) dns_names.add({*q});
    if (auto* t = l.str(Field::Qtype)) dns_qtypes.add({*t});
  } else if (event == "dns_answer") {
    ++d.dns_answers;
    auto* mode = l.str(Field::Mode);
    if (mode && *mode == "synthetic_empty") ++d.dns_synthetic_empty;
    auto* q = l.str(Field::Qname);
    auto* ips = l.list(Field::AnswerIps);
    if (q && ips) {
      for (const auto& ip : *ips) {
        auto& list = names_by_ip[ip];
        if (list.size() < kMaxNamesPerIp && std::find(list.begin(), list.end(), *q) == list.end())
          list.push_back(*q);
      }
    }
  } else if (event == "connect_attempt" || event == "flow_start") {
    auto target = target_of(l);
    auto via = l.boolean(Field::ViaProxy);
    if (event == "connect_attempt") {
      ++d.connect_attempts;
      if (via && *via) ++d.via_proxy;
      else if (via) ++d.direct;
    }
    names.clear();
    if (target) {
      targets.add({*target});
      correlate(l, *target);
    }
    size_t i = by_id(l);
    if (i == kNoFlow) {
      i = new_flow(l, FlowRecord::Kind::Flow, true);
      if (i != kNoFlow && !flows[i].flow_id && target) {
        auto& w = waiting[*target];
        if (event == "connect_attempt") w.result.push_back(i);
        w.end.push_back(i);
      }
    }
    if (i != kNoFlow) {
      FlowRecord& r = flows[i];
      r.start_ms = l.uint(Field::TsMs);
      if (target) r.target = clip(*target);
      set_names(r, names);
      r.via_proxy = via;
    }
  } else if (event == "connect_result") {
    auto* status = l.str(Field::Status);
    auto* err = l.str(Field::Error);
    auto target = target_of(l);
    if (status && *status == "ok") {
      ++d.connect_ok;
    } else if (status && *status == "error") {
      ++d.connect_error;
      connect_errors.add({target.value_or("?"), err ? *err : "?"});
    }
    size_t i = l.uint(Field::FlowId) ? by_id(l) : next_result(target);
    if (i != kNoFlow && status && *status == "error") {
      FlowRecord& r = flows[i];
      r.error = clip(err ? *err : "?");
      r.ended = true;
      if (!r.end_ms) r.end_ms = l.uint(Field::TsMs);
    }
  } else if (event == "flow_end") {
    ++d.flow_ends;
    auto sent = l.uint(Field::BytesSent), received = l.uint(Field::BytesReceived);
    d.bytes_sent += sent.value_or(0);
    d.bytes_received += received.value_or(0);
    auto* close = l.str(Field::Close);
    if (close) close_reasons.add({*close});
    auto target = target_of(l);
    auto ts = l.uint(Field::TsMs);
    size_t i = l.uint(Field::FlowId) ? by_id(l) : next_end(target);
    if (i == kNoFlow) {
      // A flow_end whose start the log does not have (the Rust tool writes
      // no flow_start). Past the cap its start was counted already.
      i = new_flow(l, FlowRecord::Kind::Flow, false);
      if (i != kNoFlow) {
        FlowRecord& r = flows[i];
        if (target) r.target = clip(*target);
        auto dur = l.uint(Field::DurationMs);
        if (ts && dur && *dur <= *ts) r.start_ms = *ts - *dur;
        if (auto* own = l.list(Field::Names)) set_names(r, *own);
      }
    }
    if (i != kNoFlow) {
      FlowRecord& r = flows[i];
      if (ts) r.end_ms = ts;
      r.bytes_sent = sent;
      r.bytes_received = received;
      r.close = close ? clip(*close) : std::string();
      r.ended = true;
    }
  } else if (event == "policy_violation") {
    ++d.policy_violations;
    auto* reason = l.str(Field::ReasonCode);
    auto* control = l.str(Field::Control);
    auto* domain = l.str(Field::MatchedDomain);
    auto* cidr = l.str(Field::MatchedCidr);
    auto* remote = l.str(Field::Remote);
    if (reason) reasons.add({*reason});
    if (control) controls.add({*control});
    if (domain) matched_domains.add({*domain});
    if (cidr) matched_cidrs.add({*cidr});
    if (remote) remotes.add({*remote});
    const std::string none;
    const std::string& rule = domain ? *domain : cidr ? *cidr : none;
    denials.add({reason ? *reason : "?", control ? *control : "?", rule, remote ? *remote : "?"});

    auto* protocol = l.str(Field::Protocol);
    bool dns = protocol && *protocol == "dns";
    bool tcp = protocol && *protocol == "tcp";
    auto target = target_of(l);
    if (!target && remote) target = *remote;
    auto ts = l.uint(Field::TsMs);
    // A TCP denial joins its connect_attempt; a UDP or ICMP denial has no
    // earlier event (its flow_id, in our logs, is new).
    size_t i = kNoFlow;
    if (!dns) i = l.uint(Field::FlowId) ? by_id(l) : tcp ? next_denial(target) : kNoFlow;
    if (i == kNoFlow) {
      // A denied query, or a denied flow whose start the log does not have
      // (UDP and ICMP denials have none). Past the cap, a TCP denial's
      // connect_attempt was counted already.
      i = new_flow(l, dns ? FlowRecord::Kind::DnsQuery : FlowRecord::Kind::Flow, !tcp);
      if (i != kNoFlow) {
        FlowRecord& r = flows[i];
        r.start_ms = ts;
        if (target) r.target = clip(*target);
        if (auto* own = l.list(Field::Names)) set_names(r, *own);
      }
    }
    if (i != kNoFlow) {
      FlowRecord& r = flows[i];
      r.denied = true;
      r.ended = true;
      if (!r.end_ms) r.end_ms = ts;
      r.reason_code = clip(reason ? *reason : "?");
      r.control = clip(control ? *control : "?");
      r.rule = clip(rule);
    }
  } else if (event == "runtime_failure") {
    ++d.runtime_failures_total;
    auto* phase = l.str(Field::Phase);
    auto* code = l.str(Field::ReasonCode);
    auto* detail = l.str(Field::Detail);
    runtime_failures.add({phase ? *phase : "?", code ? *code : "?", detail ? *detail : ""});
  }
}

ReportData FlowLogAnalysis::result() const {
  ReportData d = s_->d;
  d.unknown_events = s_->unknown_events.ranked();
  d.protocols = s_->protocols.ranked();
  d.dns_names = s_->dns_names.ranked();
  d.dns_qtypes = s_->dns_qtypes.ranked();
  d.dns_correlation = s_->correlation.ranked();
  d.connect_errors = s_->connect_errors.ranked();
  d.top_targets = s_->targets.ranked();
  d.close_reasons = s_->close_reasons.ranked();
  d.policy_reasons = s_->reasons.ranked();
  d.policy_controls = s_->controls.ranked();
  d.policy_matched_domains = s_->matched_domains.ranked();
  d.policy_matched_cidrs = s_->matched_cidrs.ranked();
  d.policy_remotes = s_->remotes.ranked();
  d.runtime_failures = s_->runtime_failures.ranked();
  d.denials = s_->denials.ranked();
  d.flows = s_->flows;
  d.flows_not_drawn = s_->flows_not_drawn;
  return d;
}

// Lines are cut at '\n'. A line longer than max_line_ (the log is untrusted:
// `cat /dev/zero | childflow --report -`) is skipped to its end and counted
// as malformed, never held in memory.
void FlowLogReader::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    std::string_view piece = chunk.substr(0, nl);
    if (!overlong_) {
      if (line_.size() + piece.size() > max_line_) {
        overlong_ = true;
        line_.clear();
        line_.shrink_to_fit();
      } else {
        line_.append(piece);
      }
    }
    if (nl == std::string_view::npos) break;
    if (overlong_) a_.add_overlong_line();
    else a_.add_line(line_);
    line_.clear();
    overlong_ = false;
    chunk.remove_prefix(nl + 1);
  }
}

ReportData FlowLogReader::finish() {
  if (overlong_) a_.add_overlong_line();
  else if (!line_.empty()) a_.add_line(line_);
  line_.clear();
  overlong_ = false;
  return a_.result();
}

Result<ReportData> analyze_flow_log(const std::string& path) {
  // Standard input is read from fd 0 itself (it may be a socket, which
  // /dev/stdin cannot open).
  UniqueFd own;
  int fd = STDIN_FILENO;
  if (path != "/dev/stdin") {
    own.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!own) return Error{fmt::format("cannot open {}: {}", path, std::strerror(errno)), "report"};
    fd = own.get();
  }
  FlowLogReader reader;
  std::vector<char> buf(1 << 16);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error{fmt::format("cannot read {}: {}", path, std::strerror(errno)), "report"};
    if (n == 0) break;
    reader.feed(std::string_view(buf.data(), size_t(n)));
  }
  return reader.finish();
}

}  // namespace cf::observe
