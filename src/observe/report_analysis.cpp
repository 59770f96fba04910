// Streaming analysis of a flow log for `--report`; see report_model.hpp.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "observe/report_model.hpp"

namespace cf::observe {
namespace {

using Json = nlohmann::json;

// The events of docs/flow-log-schema.md (flow_start, ours alone, included).
constexpr std::string_view kKnownEvents[] = {
    "dns_query", "dns_answer",       "connect_attempt", "connect_result",
    "flow_start", "flow_end", "policy_violation", "runtime_failure",
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
  Control, MatchedDomain, MatchedCidr, Remote, Phase, Detail, Count
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

}  // namespace

struct FlowLogAnalysis::State {
  ReportData d;  // scalar counters; ranked tables are filled by result()
  KeyCounter unknown_events, protocols, dns_names, dns_qtypes, correlation, connect_errors,
      targets, close_reasons, reasons, controls, matched_domains, matched_cidrs, remotes,
      runtime_failures;
  std::unordered_map<std::string, std::vector<std::string>> names_by_ip;
  Line line;                       // the line being read (reused)
  std::vector<std::string> names;  // scratch

  void on_event(const std::string& event, const Line& l);
  void correlate(const Line& l, const std::string& target);
};

FlowLogAnalysis::FlowLogAnalysis() : s_(std::make_unique<State>()) {}
FlowLogAnalysis::~FlowLogAnalysis() = default;

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
    if (event == "connect_attempt") {
      ++d.connect_attempts;
      auto via = l.boolean(Field::ViaProxy);
      if (via && *via) ++d.via_proxy;
      else if (via) ++d.direct;
    }
    if (target) {
      targets.add({*target});
      correlate(l, *target);
    }
  } else if (event == "connect_result") {
    auto* status = l.str(Field::Status);
    if (status && *status == "ok") {
      ++d.connect_ok;
    } else if (status && *status == "error") {
      ++d.connect_error;
      auto* err = l.str(Field::Error);
      connect_errors.add({target_of(l).value_or("?"), err ? *err : "?"});
    }
  } else if (event == "flow_end") {
    ++d.flow_ends;
    d.bytes_sent += l.uint(Field::BytesSent).value_or(0);
    d.bytes_received += l.uint(Field::BytesReceived).value_or(0);
    if (auto* c = l.str(Field::Close)) close_reasons.add({*c});
  } else if (event == "policy_violation") {
    ++d.policy_violations;
    if (auto* r = l.str(Field::ReasonCode)) reasons.add({*r});
    if (auto* c = l.str(Field::Control)) controls.add({*c});
    if (auto* m = l.str(Field::MatchedDomain)) matched_domains.add({*m});
    if (auto* m = l.str(Field::MatchedCidr)) matched_cidrs.add({*m});
    if (auto* r = l.str(Field::Remote)) remotes.add({*r});
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
  return d;
}

Result<ReportData> analyze_flow_log(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "re");
  if (!f) return Error{fmt::format("cannot open {}: {}", path, std::strerror(errno)), "report"};
  FlowLogAnalysis a;
  char* buf = nullptr;
  size_t cap = 0;
  ssize_t n;
  errno = 0;
  while ((n = ::getline(&buf, &cap, f)) >= 0) {
    std::string_view line(buf, size_t(n));
    if (line.ends_with('\n')) line.remove_suffix(1);
    a.add_line(line);
  }
  int read_errno = std::ferror(f) ? errno : 0;
  std::free(buf);
  std::fclose(f);
  if (read_errno)
    return Error{fmt::format("cannot read {}: {}", path, std::strerror(read_errno)), "report"};
  return a.result();
}

}  // namespace cf::observe
