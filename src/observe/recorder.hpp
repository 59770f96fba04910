// The Recorder turns engine events into flow-log lines (docs/flow-log-schema.md) and
// keeps the counters the post-run summary needs (docs/summary.md).
//
// Flow-log lines are formatted into one reusable buffer and written with one
// write(2) per event burst (flush() at the end of every reactor turn and at
// exit), so the log is readable while the run goes on and complete when the
// tree crashes. Passwords never reach it: the Recorder is never given one.
//
// Live lines: with -v (Config::verbosity >= 1) the Recorder also writes one
// line per denial, proxy failure and connect error to stderr, with -vv one
// per flow start and end, with CHILDFLOW_DEBUG every DNS query, answer and
// connect attempt. They are buffered like the log and written at flush(),
// in colour only when stderr is a terminal and NO_COLOR is unset. The engine
// must never wait for the user's terminal or pipe (a pager, Ctrl-S): a pipe
// or terminal is reopened through /proc/self/fd/2 with O_NONBLOCK (a file
// description of our own: the tree's stderr keeps its flags), and what it
// will not take now waits in the buffer; past 256 KiB waiting, further lines
// are dropped and counted (live_dropped). finish() writes what is left,
// blocking (the engine is done), and says how many lines were dropped.
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/addr.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"
#include "policy/policy.hpp"

namespace cf::learn {
class Ledger;
}

namespace cf::observe {

enum class Close : uint8_t { Fin, Rst, Timeout, Error };
const char* name(Close c);

// How the tree's DNS answer was made (dns_answer's `mode`): relayed from the
// resolver, made empty (or SERVFAIL) by childflow, or, under --proxy-dns
// remote, an address of the synthetic range made by childflow.
enum class DnsMode : uint8_t { Relayed, SyntheticEmpty, SyntheticRemote };
const char* name(DnsMode m);  // "relayed" | "synthetic_empty" | "synthetic_remote"

// The bounds of docs/security.md, "Limits": what a limit_hit line names.
enum class Limit : uint8_t {
  TcpFlows,        // TCP flow table full: the SYN gets a RST
  TcpConnecting,   // too many TCP connects in progress: RST
  UdpFlows,        // UDP flow table full: the least recently used flow ends
  IcmpFlows,       // ICMP echo flow table full: the same
  DnsInFlight,     // too many UDP queries awaiting the resolver: SERVFAIL
  DnsTcpStreams,   // too many DNS-over-TCP connections to the gateway: RST
  DnsTcpInFlight,  // a DNS-over-TCP stream has its most queries pending: paused
  DnsTcpBuffer,    // a DNS-over-TCP stream holds its most bytes: paused
  TcpCopyBytes,    // the TCP copy path's memory is used up: paused
  NameMap,         // the policy's name<->address map is full: oldest dropped
  SynthNames,      // --proxy-dns remote: every synthetic address held: SERVFAIL
  SniffHolds,      // too many TCP flows hold first bytes to judge a name: paused
  RecorderKeys,    // a summary counter has its most keys: counted in `other`
};
constexpr size_t kLimitCount = size_t(Limit::RecorderKeys) + 1;
const char* name(Limit l);
// What the tree sees when the limit is hit: "refused", "evicted", "paused"
// or "folded" (the flow-log field `action`).
const char* action(Limit l);

struct Target {
  IpAddr ip;
  uint16_t port;  // 0 for ICMP
};

// A name the tree sent in a TCP connection's first bytes (engine/sniff.hpp)
// that the policy denied: the flow log's `sniffed_name` and `sniffed_from`.
struct Sniffed {
  std::string_view name;
  const char* source;  // "tls_sni" | "http_host" | "http_target"
};

class Recorder {
 public:
  explicit Recorder(const Config& c);
  // Opens the flow log (truncating it). The Error names the path and cause.
  Status open();

  // The only member safe from any thread: the rootful capture's reader
  // names new flows too (rootful/flow_ids.hpp).
  uint64_t next_flow_id() { return ++last_flow_id_; }

  // --learn: every flow the policy let through (a connect_result without an
  // error, a flow_start) also goes to the Ledger (learn/ledger.hpp).
  void set_ledger(learn::Ledger* l) { ledger_ = l; }
  bool learning() const { return ledger_ != nullptr; }
  // Under --learn: a name an allowed TCP connection sent in its first bytes
  // (TLS server_name, HTTP Host) that its address's names lack.
  void name_sent(std::string_view name);
  // Under --learn: an allowed TCP connection's first bytes could not be
  // read for a name (and were let through).
  void unreadable_sent();

  // `server` is the address the tree sent the query to; `direct` is true
  // when that is not the gateway (docs/flow-log-schema.md).
  void dns_query(std::string_view proto, const IpAddr& server, uint16_t port,
                 std::string_view qname, std::string_view qtype, bool direct);
  void dns_answer(std::string_view proto, const IpAddr& server, uint16_t port,
                  std::string_view qname, std::string_view qtype, DnsMode mode, size_t bytes,
                  std::span<const IpAddr> ips, int rcode, bool direct);
  void connect_attempt(uint64_t id, const Target& t, bool via_proxy,
                       const std::vector<std::string>& names);
  void connect_result(uint64_t id, const Target& t, bool via_proxy,
                      const std::vector<std::string>& names, const char* error);
  void flow_start(uint64_t id, policy::Proto p, const Target& t,
                  const std::vector<std::string>& names);
  void flow_end(uint64_t id, policy::Proto p, const Target& t, uint64_t sent, uint64_t received,
                uint64_t duration_ms, Close close);
  void policy_violation(uint64_t id, policy::Proto p, std::string_view remote,
                        const std::optional<IpAddr>& ip, std::optional<uint16_t> port,
                        const policy::Verdict& v, const std::vector<std::string>& names,
                        const Sniffed* sniffed = nullptr);
  void runtime_failure(std::string_view phase, std::string_view reason_code,
                       std::string_view detail);
  // A bound was hit (`max` is its value): counted, and logged as limit_hit
  // at most once a second per limit (see above).
  void limit_hit(Limit l, uint64_t max);

  // Writes what is buffered to the flow log and the live lines that stderr
  // takes without blocking.
  void flush();
  // At exit: flush(), then the live lines left, blocking, and a line saying
  // how many were dropped, if any.
  void finish();

  // A counter by key with at most max_keys keys; the rest add up in `other`.
  struct Tally {
    std::map<std::string, uint64_t> keys;
    uint64_t other = 0;
  };
  // Counters for the summary.
  struct Counts {
    std::map<std::string, uint64_t> events;  // by event name (a fixed set)
    Tally targets;                           // "ip:port" of connects / flows
    Tally violations;                        // "reason_code remote"
    Tally connect_errors;                    // "remote: error"
    Tally dns_names;
    uint64_t violations_total = 0;
    uint64_t violations_dns = 0;  // of which DNS lookups
    uint64_t live_dropped = 0;    // live lines stderr did not take in time
    std::array<uint64_t, kLimitCount> limits{};  // hits, by Limit
  };
  const Counts& counts() const { return counts_; }

  // Distinct keys each Tally keeps by default (Limit::RecorderKeys).
  static constexpr size_t kMaxKeys = 4096;
  void set_max_keys(size_t n) { max_keys_ = n; }

 private:
  void begin(std::string_view event);
  void end();
  // One live line at `level` (see above); `colour` an SGR code or 0.
  void live(int level, int colour, std::string_view line);
  std::string endpoint_with_names(const Target& t, const std::vector<std::string>& names) const;
  void count(Tally& t, std::string key);
  void write_limit(Limit l);
  const Config& cfg_;
  learn::Ledger* ledger_ = nullptr;
  size_t max_keys_ = kMaxKeys;
  struct LimitLog {
    uint64_t max = 0;
    uint64_t unlogged = 0;  // hits not yet in a limit_hit line
    uint64_t last_ms = 0;   // monotonic ms of the last line; 0: none yet
  };
  std::array<LimitLog, kLimitCount> limit_log_{};
  UniqueFd fd_;
  std::string buf_;
  size_t mark_ = 0;
  std::atomic<uint64_t> last_flow_id_{0};
  uint64_t last_denied_id_ = 0;  // its connect_result repeats the denial
  Counts counts_;
  std::string live_;
  size_t live_sent_ = 0;  // bytes of live_ already written
  UniqueFd live_fd_;      // stderr, non-blocking (see above); -1: fd 2 itself
  bool colour_ = false;
  void write_live(bool may_block);
};

// Appends `s` as a JSON string literal.
void append_json_string(std::string& out, std::string_view s);

}  // namespace cf::observe
