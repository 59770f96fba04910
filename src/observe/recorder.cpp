// Flow-log writer and counters; see recorder.hpp.
#include "observe/recorder.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include "common/clock.hpp"
#include "learn/ledger.hpp"

namespace cf::observe {

const char* name(Close c) {
  switch (c) {
    case Close::Fin: return "fin";
    case Close::Rst: return "rst";
    case Close::Timeout: return "timeout";
    case Close::Error: return "error";
  }
  return "?";
}

const char* name(DnsMode m) {
  switch (m) {
    case DnsMode::Relayed: return "relayed";
    case DnsMode::SyntheticEmpty: return "synthetic_empty";
    case DnsMode::SyntheticRemote: return "synthetic_remote";
  }
  return "?";
}

const char* name(Limit l) {
  switch (l) {
    case Limit::TcpFlows: return "tcp_flows";
    case Limit::TcpConnecting: return "tcp_connecting";
    case Limit::UdpFlows: return "udp_flows";
    case Limit::IcmpFlows: return "icmp_flows";
    case Limit::DnsInFlight: return "dns_in_flight";
    case Limit::DnsTcpStreams: return "dns_tcp_streams";
    case Limit::DnsTcpInFlight: return "dns_tcp_in_flight";
    case Limit::DnsTcpBuffer: return "dns_tcp_buffer";
    case Limit::TcpCopyBytes: return "tcp_copy_bytes";
    case Limit::NameMap: return "name_map";
    case Limit::SynthNames: return "synth_names";
    case Limit::SniffHolds: return "sniff_holds";
    case Limit::RecorderKeys: return "recorder_keys";
  }
  return "?";
}

const char* action(Limit l) {
  switch (l) {
    case Limit::TcpFlows:
    case Limit::TcpConnecting:
    case Limit::DnsInFlight:
    case Limit::DnsTcpStreams:
    case Limit::SynthNames: return "refused";
    case Limit::UdpFlows:
    case Limit::IcmpFlows:
    case Limit::NameMap: return "evicted";
    case Limit::DnsTcpInFlight:
    case Limit::DnsTcpBuffer:
    case Limit::TcpCopyBytes:
    case Limit::SniffHolds: return "paused";
    case Limit::RecorderKeys: return "folded";
  }
  return "?";
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char ch : s) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (ch < 0x20 || ch == 0x7f) out += fmt::format("\\u{:04x}", ch);
        else out.push_back(char(ch));
    }
  }
  out.push_back('"');
}

namespace {

void kv_str(std::string& b, std::string_view k, std::string_view v) {
  b += ",\"";
  b += k;
  b += "\":";
  append_json_string(b, v);
}
void kv_raw(std::string& b, std::string_view k, std::string_view v) {
  b += ",\"";
  b += k;
  b += "\":";
  b += v;
}
void kv_num(std::string& b, std::string_view k, uint64_t v) { kv_raw(b, k, fmt::format("{}", v)); }
void kv_names(std::string& b, const std::vector<std::string>& names) {
  b += ",\"names\":[";
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) b.push_back(',');
    append_json_string(b, names[i]);
  }
  b.push_back(']');
}
void kv_target(std::string& b, const Target& t) {
  kv_str(b, "remote_addr", format_endpoint(t.ip, t.port));
  kv_str(b, "remote_ip", t.ip.str());
  kv_num(b, "remote_port", t.port);
}

// The fields dns_query and dns_answer share.
void kv_dns(std::string& b, std::string_view proto, const IpAddr& server, uint16_t port,
            std::string_view qname, std::string_view qtype, bool direct) {
  kv_str(b, "protocol", proto);
  kv_str(b, "server", format_endpoint(server, port));
  kv_str(b, "server_ip", server.str());
  kv_num(b, "server_port", port);
  kv_str(b, "qname", qname);
  kv_str(b, "qtype", qtype);
  kv_raw(b, "direct", direct ? "true" : "false");
}

}  // namespace

Recorder::Recorder(const Config& c) : cfg_(c) {
  buf_.reserve(1 << 16);
  if (cfg_.verbosity <= 0) return;
  const char* no_colour = std::getenv("NO_COLOR");
  colour_ = ::isatty(STDERR_FILENO) && !(no_colour && *no_colour);
  // A regular file never blocks (and a second file description would write
  // at its own offset): keep fd 2. A pipe or terminal: our own non-blocking
  // description of it. If that cannot be had, fd 2 (it may block).
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) == 0 && !S_ISREG(st.st_mode))
    live_fd_.reset(::open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
}

void Recorder::live(int level, int colour, std::string_view line) {
  if (cfg_.verbosity < level) return;
  if (live_.size() - live_sent_ > (256u << 10)) {
    ++counts_.live_dropped;
    return;
  }
  live_ += colour_ && colour ? fmt::format("\x1b[{}mchildflow: {}\x1b[0m\n", colour, line)
                             : fmt::format("childflow: {}\n", line);
}

std::string Recorder::endpoint_with_names(const Target& t,
                                          const std::vector<std::string>& names) const {
  std::string s = t.port ? format_endpoint(t.ip, t.port) : t.ip.str();
  if (!names.empty()) s += " (" + names.front() + ")";
  return s;
}

Status Recorder::open() {
  if (!cfg_.flow_log) return {};
  int fd = ::open(cfg_.flow_log->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_APPEND,
                  0644);
  if (fd < 0)
    return Error{fmt::format("cannot open {}: {}", *cfg_.flow_log, std::strerror(errno)),
                 "flow log"};
  fd_.reset(fd);
  return {};
}

void Recorder::begin(std::string_view event) {
  ++counts_.events[std::string(event)];
  if (!fd_) {
    mark_ = buf_.size();
    return;
  }
  mark_ = buf_.size();
  buf_ += fmt::format("{{\"schema_version\":1,\"ts_ms\":{}", epoch_ms());
  kv_str(buf_, "event", event);
}

void Recorder::end() {
  if (!fd_) {
    buf_.resize(mark_);
    return;
  }
  buf_ += "}\n";
  if (buf_.size() > (1 << 15)) flush();
}

void Recorder::write_live(bool may_block) {
  int fd = live_fd_ && !may_block ? live_fd_.get() : STDERR_FILENO;
  while (live_sent_ < live_.size()) {
    ssize_t n = ::write(fd, live_.data() + live_sent_, live_.size() - live_sent_);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: the rest waits for the next turn; an error: dropped below
    live_sent_ += size_t(n);
  }
  if (live_sent_ == live_.size() || may_block) {
    live_.clear();
    live_sent_ = 0;
  } else if (live_sent_ > (64u << 10)) {
    live_.erase(0, live_sent_);
    live_sent_ = 0;
  }
}

void Recorder::finish() {
  for (size_t i = 0; i < kLimitCount; ++i)
    if (limit_log_[i].unlogged) write_limit(Limit(i));
  flush();
  write_live(true);
  if (counts_.live_dropped)
    std::fprintf(stderr, "childflow: %llu live lines dropped: stderr did not keep up\n",
                 static_cast<unsigned long long>(counts_.live_dropped));
}

void Recorder::flush() {
  if (!live_.empty()) write_live(false);
  if (!fd_ || buf_.empty()) {
    buf_.clear();
    return;
  }
  const char* p = buf_.data();
  size_t left = buf_.size();
  while (left > 0) {
    ssize_t n = ::write(fd_.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;  // disk full or similar: the run goes on without a complete log
    }
    p += n;
    left -= size_t(n);
  }
  buf_.clear();
}

void Recorder::dns_query(std::string_view proto, const IpAddr& server, uint16_t port,
                         std::string_view qname, std::string_view qtype, bool direct) {
  count(counts_.dns_names, std::string(qname));
  begin("dns_query");
  kv_dns(buf_, proto, server, port, qname, qtype, direct);
  end();
  if (cfg_.verbosity >= 3)
    live(3, 90, fmt::format("debug: dns query {} {} to {} ({})", qname, qtype,
                            format_endpoint(server, port), proto));
}

void Recorder::dns_answer(std::string_view proto, const IpAddr& server, uint16_t port,
                          std::string_view qname, std::string_view qtype, DnsMode mode,
                          size_t bytes, std::span<const IpAddr> ips, int rcode, bool direct) {
  begin("dns_answer");
  kv_dns(buf_, proto, server, port, qname, qtype, direct);
  kv_str(buf_, "mode", name(mode));
  kv_num(buf_, "bytes", bytes);
  buf_ += ",\"answer_ips\":[";
  for (size_t i = 0; i < ips.size(); ++i) {
    if (i) buf_.push_back(',');
    append_json_string(buf_, ips[i].str());
  }
  buf_.push_back(']');
  kv_num(buf_, "rcode", uint64_t(rcode));
  end();
  if (cfg_.verbosity >= 3) {
    std::string list;
    for (const IpAddr& ip : ips) list += (list.empty() ? "" : " ") + ip.str();
    live(3, 90, fmt::format("debug: dns answer {} {}: {} (rcode {}, {})", qname, qtype,
                            list.empty() ? "no address" : list, rcode,
                            mode == DnsMode::Relayed          ? "relayed"
                            : mode == DnsMode::SyntheticEmpty ? "synthetic empty"
                                                              : "synthetic, --proxy-dns remote"));
  }
}

void Recorder::connect_attempt(uint64_t id, const Target& t, bool via_proxy,
                               const std::vector<std::string>& names) {
  count(counts_.targets, format_endpoint(t.ip, t.port));
  begin("connect_attempt");
  kv_num(buf_, "flow_id", id);
  kv_str(buf_, "protocol", "tcp");
  kv_target(buf_, t);
  kv_raw(buf_, "via_proxy", via_proxy ? "true" : "false");
  kv_names(buf_, names);
  end();
  if (cfg_.verbosity >= 3)
    live(3, 90, fmt::format("debug: connect {}{}", endpoint_with_names(t, names),
                            via_proxy ? " via the proxy" : ""));
}

void Recorder::connect_result(uint64_t id, const Target& t, bool via_proxy,
                              const std::vector<std::string>& names, const char* error) {
  if (error) count(counts_.connect_errors, fmt::format("{}: {}", format_endpoint(t.ip, t.port), error));
  begin("connect_result");
  kv_num(buf_, "flow_id", id);
  kv_str(buf_, "protocol", "tcp");
  kv_target(buf_, t);
  kv_raw(buf_, "via_proxy", via_proxy ? "true" : "false");
  kv_names(buf_, names);
  kv_str(buf_, "status", error ? "error" : "ok");
  if (error) kv_str(buf_, "error", error);
  else kv_raw(buf_, "error", "null");
  end();
  if (!error && ledger_) ledger_->flow(t.ip, names);
  if (!error && cfg_.verbosity >= 2)
    live(2, 0, fmt::format("flow tcp {} started{}", endpoint_with_names(t, names),
                           via_proxy ? " (via the proxy)" : ""));
  if (error && id != last_denied_id_ && cfg_.verbosity >= 1) {
    if (via_proxy) live(1, 33, fmt::format("proxy failed: tcp {}: {}", endpoint_with_names(t, names), error));
    else live(1, 33, fmt::format("connect failed: tcp {}: {}", endpoint_with_names(t, names), error));
  }
}

void Recorder::name_sent(std::string_view name) {
  if (ledger_) ledger_->name_sent(name);
}

void Recorder::unreadable_sent() {
  if (ledger_) ledger_->unreadable_sent();
}

void Recorder::flow_start(uint64_t id, policy::Proto p, const Target& t,
                          const std::vector<std::string>& names) {
  count(counts_.targets, format_endpoint(t.ip, t.port));
  begin("flow_start");
  kv_num(buf_, "flow_id", id);
  kv_str(buf_, "protocol", policy::name(p));
  kv_target(buf_, t);
  kv_names(buf_, names);
  end();
  if (ledger_) ledger_->flow(t.ip, names);
  if (cfg_.verbosity >= 2)
    live(2, 0, fmt::format("flow {} {} started", policy::name(p), endpoint_with_names(t, names)));
}

void Recorder::flow_end(uint64_t id, policy::Proto p, const Target& t, uint64_t sent,
                        uint64_t received, uint64_t duration_ms, Close close) {
  begin("flow_end");
  kv_num(buf_, "flow_id", id);
  kv_str(buf_, "protocol", policy::name(p));
  kv_target(buf_, t);
  kv_num(buf_, "bytes_sent", sent);
  kv_num(buf_, "bytes_received", received);
  kv_num(buf_, "duration_ms", duration_ms);
  kv_str(buf_, "close", name(close));
  end();
  if (cfg_.verbosity >= 2)
    live(2, 0, fmt::format("flow {} {} ended ({}): {} B sent, {} B received, {} ms",
                           policy::name(p), endpoint_with_names(t, {}), name(close), sent,
                           received, duration_ms));
}

void Recorder::policy_violation(uint64_t id, policy::Proto p, std::string_view remote,
                                const std::optional<IpAddr>& ip, std::optional<uint16_t> port,
                                const policy::Verdict& v, const std::vector<std::string>& names,
                                const Sniffed* sniffed) {
  ++counts_.violations_total;
  if (p == policy::Proto::Dns) ++counts_.violations_dns;
  count(counts_.violations, fmt::format("{} {}", v.reason_code, remote));
  begin("policy_violation");
  if (id) kv_num(buf_, "flow_id", id);
  kv_str(buf_, "protocol", policy::name(p));
  kv_str(buf_, "remote", remote);
  if (ip) kv_str(buf_, "remote_ip", ip->str());
  else kv_raw(buf_, "remote_ip", "null");
  if (port) kv_num(buf_, "remote_port", *port);
  else kv_raw(buf_, "remote_port", "null");
  kv_str(buf_, "action", "deny");
  kv_str(buf_, "reason_code", v.reason_code);
  kv_str(buf_, "control", v.control);
  if (v.matched_cidr) kv_str(buf_, "matched_cidr", v.matched_cidr->str());
  else kv_raw(buf_, "matched_cidr", "null");
  if (v.matched_domain) kv_str(buf_, "matched_domain", *v.matched_domain);
  else kv_raw(buf_, "matched_domain", "null");
  kv_str(buf_, "reason", v.reason);
  kv_names(buf_, names);
  if (sniffed) {
    kv_str(buf_, "sniffed_name", sniffed->name);
    kv_str(buf_, "sniffed_from", sniffed->source);
  }
  end();
  if (cfg_.verbosity >= 1) {
    last_denied_id_ = id;
    std::string rule = v.reason_code;
    if (v.matched_domain) rule += " " + *v.matched_domain;
    else if (v.matched_cidr) rule += " " + v.matched_cidr->str();
    std::string name = sniffed ? fmt::format(" ({} {})", sniffed->source, sniffed->name)
                       : names.empty() ? ""
                                       : " (" + names.front() + ")";
    live(1, 31, fmt::format("denied {} {}{}: {} ({})", policy::name(p), remote, name, rule,
                            v.control));
  }
}

void Recorder::count(Tally& t, std::string key) {
  auto it = t.keys.find(key);
  if (it != t.keys.end()) {
    ++it->second;
  } else if (t.keys.size() < max_keys_) {
    t.keys.emplace(std::move(key), 1);
  } else {
    ++t.other;
    limit_hit(Limit::RecorderKeys, max_keys_);
  }
}

void Recorder::limit_hit(Limit l, uint64_t max) {
  ++counts_.limits[size_t(l)];
  LimitLog& g = limit_log_[size_t(l)];
  g.max = max;
  ++g.unlogged;
  if (g.last_ms == 0 || monotonic_ms() - g.last_ms >= 1000) write_limit(l);
}

void Recorder::write_limit(Limit l) {
  LimitLog& g = limit_log_[size_t(l)];
  begin("limit_hit");
  kv_str(buf_, "limit", name(l));
  kv_num(buf_, "max", g.max);
  kv_str(buf_, "action", action(l));
  kv_num(buf_, "count", g.unlogged);
  end();
  if (cfg_.verbosity >= 1)
    live(1, 33, fmt::format("limit {} ({}) hit {} time{}: {}", name(l), g.max, g.unlogged,
                            g.unlogged == 1 ? "" : "s", action(l)));
  g.unlogged = 0;
  g.last_ms = std::max<uint64_t>(monotonic_ms(), 1);
}

void Recorder::runtime_failure(std::string_view phase, std::string_view reason_code,
                               std::string_view detail) {
  begin("runtime_failure");
  kv_str(buf_, "phase", phase);
  kv_str(buf_, "reason_code", reason_code);
  kv_str(buf_, "detail", detail);
  end();
  flush();
}

}  // namespace cf::observe
