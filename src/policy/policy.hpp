// Outbound policy (docs/policy.md): a pure function of the Config, the flow's
// destination, and the names the engine saw for that destination in DNS
// answers it relayed. First match wins, in the order of docs/policy.md.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/addr.hpp"
#include "config/config.hpp"

namespace cf::policy {

enum class Proto : uint8_t { Tcp, Udp, Dns, Icmp4, Icmp6 };
const char* name(Proto p);  // "tcp" | "udp" | "dns" | "icmpv4" | "icmpv6"

struct Verdict {
  bool allow = true;
  const char* reason_code = nullptr;  // e.g. "deny_cidr"; null when allowed
  const char* control = nullptr;      // e.g. "--deny-cidr"
  std::optional<Cidr> matched_cidr;
  std::optional<std::string> matched_domain;
  std::string reason;  // "blocked by `--deny-cidr 10.0.0.0/8`"
};

// How long a name<->address mapping outlives its DNS TTL.
constexpr uint64_t kNameGraceMs = 60'000;

// The name<->address map learnt from DNS answers is bounded
// (docs/security.md, "Limits", name_map): at most 32 names per address and
// max_names pairs in all. Expired pairs are dropped every 10 s; a pair
// learnt while the map is full pushes out the (roughly) oldest one, which
// learn() reports so the engine can count it. A name pushed out is lost as
// it would be at the end of its TTL.
class Policy {
 public:
  static constexpr size_t kMaxNames = 16384;
  explicit Policy(const Config& c, size_t max_names = kMaxNames);

  // A connection, datagram flow or echo towards `ip`. `carried_by_proxy` is
  // true when the flow goes through the upstream proxy.
  Verdict judge_addr(Proto proto, const IpAddr& ip, bool carried_by_proxy,
                     uint64_t now_ms) const;
  // A DNS query for `qname` (normalised: lowercase, no trailing dot) sent to
  // the gateway. Rules 1, 5, 6, 8 and 9 apply; default-deny only when a
  // domain allow rule exists; --proxy-only does not (the engine relays the
  // query to the configured resolver itself).
  Verdict judge_name(std::string_view qname) const;
  // A flow towards a host known only by its name: under --proxy-dns remote
  // the tree connects to a synthetic address that stands for `name`, and the
  // proxy resolves it. Rules 1, 5, 6, 8, 9 and 10 apply to the name; the
  // address rules (2, 3, 4, 7) do not, as there is no address to match, so
  // default-deny denies unless a domain allow rule matches.
  Verdict judge_named(Proto proto, std::string_view name, bool carried_by_proxy) const;

  // Records that a relayed DNS answer mapped `name` to `ip` for ttl seconds.
  // True when an older pair had to be dropped because the map was full.
  bool learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s, uint64_t now_ms);
  size_t max_names() const { return max_names_; }
  size_t name_pairs() const { return pairs_; }  // pairs held now, expired or not
  // Names currently mapped to `ip` (for logs), most recent first.
  std::vector<std::string> names_for(const IpAddr& ip, uint64_t now_ms) const;

  bool has_domain_allow_rules() const;
  // Whether a TCP connection's first bytes are read for the name it sends
  // (TLS server_name, HTTP Host) and that name judged with judge_name: on
  // unless --no-sniff-names, and only when some name could be denied (a
  // domain deny rule, or default-deny with a domain allow rule).
  bool sniffs_names() const;

 private:
  struct NameEntry {
    std::string name;
    uint64_t expires_ms;
  };
  Verdict deny(const char* code, const char* control, std::string reason) const;
  std::optional<Verdict> judge_domains(const std::vector<std::string>& names) const;
  // Rule 8: an allow-domain(-exact) rule matches `name`.
  bool domain_allowed(std::string_view name) const;
  // Rules 9 and 10, once nothing earlier matched: default-deny, proxy-only.
  Verdict judge_rest(Proto proto, bool via_proxy) const;
  // Drops every expired pair.
  void sweep(uint64_t now_ms);
  // Drops the oldest pair still held (by the order pairs were learnt in).
  void drop_oldest();
  const Config& cfg_;
  std::unordered_map<std::string, std::vector<NameEntry>> by_ip_;  // key: IpAddr bytes
  size_t max_names_;
  size_t pairs_ = 0;
  // The address of each pair, in the order pairs were learnt; an element
  // whose pair is gone already (expired, or one of 32 names) is skipped by
  // drop_oldest, and the queue is rebuilt when such elements pile up.
  std::deque<std::string> order_;
  uint64_t next_sweep_ms_ = 0, last_full_sweep_ms_ = 0;
};

// True when `name` equals `rule` or is a subdomain of it.
bool domain_matches(std::string_view name, std::string_view rule);

// The addresses rule 2 (--block-metadata) and the prefixes rule 3
// (--block-private) match, in the order they are checked; the rootful
// backend writes the same lists into its nftables rules.
std::vector<IpAddr> metadata_endpoints();
std::vector<Cidr> private_ranges();

}  // namespace cf::policy
