// Domain rules in the rootful backend: the addresses the DNS forwarder
// learnt for names that domain rules match, as elements of nft sets in the
// run's own table, so the kernel judges a flow's address by its names as
// the rootless engine does (docs/policy.md, "Domain rules and addresses").
//
// Theory of operation. Rootless asks the Policy, whose name map a relayed
// answer teaches "name -> address for TTL + kNameGraceMs" (policy.hpp). The
// kernel cannot ask the Policy, so every pair the forwarder learns also
// becomes an element of the sets its name belongs to, one per family:
//   deny_domain_exact4/6  a --deny-domain-exact rule names the name;
//   deny_domain4/6        a --deny-domain rule matches it (or a parent);
//   allow_domain4/6       an --allow-domain(-exact) rule matches it.
// A name no rule matches changes nothing: rootless judges such an address
// as if it had no name too. The judge chain tests the sets in the rule
// order (ruleset.hpp: deny-cidr, the two deny sets, allow-cidr, the allow
// set, default-deny), so "a deny rule matching any of its names denies, an
// allow rule matching any of them allows" holds as in Policy::judge_addr.
//
// Timeouts. An element lives as long as the pair would in the Policy: the
// record's TTL plus kNameGraceMs, no other floor or ceiling. A later answer
// for the same address and set extends it, never shortens it: the element
// is replaced (add, delete, add with the new timeout, in one transaction;
// nft would leave an existing element's timeout as it was) only when its
// new expiry is later than the one it has.
//
// No race. learn() only queues; flush() loads the queue in one libnftables
// transaction. The forwarder calls it once an answer has been accepted and
// before it sends the answer to the tree, so the tree's first packet to an
// address it just resolved already meets the address's element. When the
// transaction fails the forwarder answers SERVFAIL instead (fail closed:
// no answer reaches the tree whose elements are not in place).
//
// Bounds. Each set holds at most kMaxElements (nft refuses more: the
// answer that would add one gets SERVFAIL); the expiries kept here are
// pruned of past ones when they reach that many. Rootless's map holds
// 16384 pairs and pushes out the oldest; here an element always lives out
// its timeout.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/addr.hpp"
#include "common/result.hpp"
#include "config/config.hpp"
#include "policy/policy.hpp"

namespace cf::rootful {

enum class DomainSet : uint8_t { DenyExact, Deny, Allow };

// "deny_domain_exact4", "deny_domain6", "allow_domain4", ...
const char* set_name(DomainSet s, bool v4);

inline constexpr uint64_t kMaxElements = 65536;

// The set declarations of the table (all six, with timeouts).
std::string domain_set_decls();

// The sets whose rules match `name` (normalised), by the Config's rules.
std::vector<DomainSet> sets_for(const Config& c, std::string_view name);

// The commands that make `ip` an element of `s` that expires in
// `timeout_ms`, replacing an element already there.
std::string element_update(const std::string& table, DomainSet s, const IpAddr& ip,
                           uint64_t timeout_ms);

class DomainSets {
 public:
  // `run` loads an nft transaction (rootful::nft_run; a fake in tests).
  using Runner = std::function<Status(const std::string& commands)>;
  DomainSets(const Config& c, const policy::Policy& pol, std::string table, Runner run);

  // A pair of an accepted answer (as Policy::learn gets it): queued.
  void learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s, uint64_t now_ms);
  // Loads what learn() queued in one transaction (nothing to do: ok).
  Status flush();
  // The domain rule that denied `ip` when its element was added (for the
  // report after the run, when the pair may have expired from the Policy).
  std::optional<policy::Verdict> denial(const IpAddr& ip) const;

 private:
  void prune(uint64_t now_ms);
  uint64_t next_prune_ms_ = 0;
  const Config& cfg_;
  const policy::Policy& pol_;
  std::string table_;
  Runner run_;
  std::map<std::pair<DomainSet, IpAddr>, uint64_t> expires_;  // monotonic ms
  std::map<IpAddr, policy::Verdict> denials_;                 // at most kMaxDenials
  std::string queued_;
  // What learn() changed in expires_ since the last flush, to put back
  // when the transaction fails (the elements are then not there).
  std::vector<std::pair<std::pair<DomainSet, IpAddr>, uint64_t>> undo_;
  static constexpr size_t kMaxDenials = 4096;  // the size of a denied set
};

}  // namespace cf::rootful
