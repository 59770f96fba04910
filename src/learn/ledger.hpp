// The Ledger: what a command tree used, kept for --learn (docs/policy.md,
// "Learning a profile").
//
// The Recorder (observe/recorder.hpp) hands it every flow the policy let
// through (a TCP connection that connected, a UDP or ICMP echo flow that
// opened) with the names the engine knows for its address, and every name a
// TCP connection sent in its first bytes (TLS server_name, HTTP Host). It
// counts flows per entry:
//   - a flow whose address has names (every name the DNS answers the tree
//     got mapped to it, or the name a --proxy-dns remote address stands
//     for) counts once for each of those names: allow_domains;
//   - a flow without a name counts for its address: allow_cidrs, as a /32
//     or /128. A flow to the gateway (the host's loopback, with
//     --allow-host-loopback) counts for 127.0.0.1/32 or ::1/128, which is
//     what the policy judges for it, and sets host_loopback();
//   - a name sent in the first bytes that is not among the address's names
//     counts for that name too: replayed under default-deny, the connection
//     is judged by it (docs/policy.md, "Names the tree sends"). The tree
//     writes those bytes as it likes (`Host: com`), so such a name is
//     allowed exactly (allow_domains_exact), never with its subdomains,
//     unless a DNS answer already made it an allow_domains entry;
//   - first bytes that started like TLS or HTTP/1 but could not be read for
//     a name are counted (unreadable()): a replay whose profile has domain
//     rules denies such connections, and the run says so.
// A name that would not load back from a profile (not a DNS name) is not
// kept; it is counted in skipped(). At most max_entries names and as many
// addresses are kept; flows for further ones are counted in dropped().
//
// serialize() and parse() carry a Ledger from the engine to the process that
// writes the profile (learn/learn.hpp) as text lines.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/addr.hpp"
#include "common/result.hpp"

namespace cf::learn {

class Ledger {
 public:
  static constexpr size_t kMaxEntries = 4096;
  explicit Ledger(std::optional<IpAddr> gw4 = std::nullopt, std::optional<IpAddr> gw6 = std::nullopt,
                  size_t max_entries = kMaxEntries);

  // An allowed flow to `ip` whose address has `names` (maybe none).
  void flow(const IpAddr& ip, std::span<const std::string> names);
  // A name an allowed TCP connection sent that its address's names lack.
  void name_sent(std::string_view name);
  // A TCP connection whose first bytes could not be read for a name.
  void unreadable_sent() { ++unreadable_; }

  using Counts = std::map<std::string, uint64_t, std::less<>>;
  const Counts& domains() const { return domains_; }  // normalised names
  const Counts& exact() const { return exact_; }      // names sent in first bytes
  const Counts& cidrs() const { return cidrs_; }      // "a.b.c.d/32", "x::y/128"
  bool host_loopback() const { return host_loopback_; }
  uint64_t flows() const { return flows_; }
  uint64_t dropped() const { return dropped_; }
  uint64_t skipped() const { return skipped_; }
  uint64_t unreadable() const { return unreadable_; }

  std::string serialize() const;
  // The text of serialize(); an Error for anything else (a cut message).
  static Result<Ledger> parse(std::string_view text);

 private:
  void add(Counts& m, std::string_view key, uint64_t n);
  std::optional<IpAddr> gw4_, gw6_;
  size_t max_entries_;
  Counts domains_, exact_, cidrs_;
  bool host_loopback_ = false;
  uint64_t flows_ = 0, dropped_ = 0, skipped_ = 0, unreadable_ = 0;
};

}  // namespace cf::learn
