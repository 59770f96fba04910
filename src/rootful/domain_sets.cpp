// Domain rules as nft sets of the run's table. See domain_sets.hpp.
#include "rootful/domain_sets.hpp"

#include <fmt/format.h>

namespace cf::rootful {

const char* set_name(DomainSet s, bool v4) {
  switch (s) {
    case DomainSet::DenyExact: return v4 ? "deny_domain_exact4" : "deny_domain_exact6";
    case DomainSet::Deny: return v4 ? "deny_domain4" : "deny_domain6";
    case DomainSet::Allow: return v4 ? "allow_domain4" : "allow_domain6";
  }
  return "?";
}

std::string domain_set_decls() {
  std::string t;
  for (DomainSet s : {DomainSet::DenyExact, DomainSet::Deny, DomainSet::Allow})
    for (bool v4 : {true, false})
      t += fmt::format("  set {} {{\n    type {}\n    size {}\n    flags timeout\n  }}\n",
                       set_name(s, v4), v4 ? "ipv4_addr" : "ipv6_addr", kMaxElements);
  return t;
}

std::vector<DomainSet> sets_for(const Config& c, std::string_view name) {
  std::vector<DomainSet> out;
  auto any = [name](const std::vector<std::string>& rules, bool exact) {
    for (const auto& r : rules)
      if (exact ? name == r : policy::domain_matches(name, r)) return true;
    return false;
  };
  if (any(c.deny_domains_exact, true)) out.push_back(DomainSet::DenyExact);
  if (any(c.deny_domains, false)) out.push_back(DomainSet::Deny);
  if (any(c.allow_domains_exact, true) || any(c.allow_domains, false))
    out.push_back(DomainSet::Allow);
  return out;
}

std::string element_update(const std::string& table, DomainSet s, const IpAddr& ip,
                           uint64_t timeout_ms) {
  const char* set = set_name(s, ip.is_v4());
  const std::string a = ip.str();
  // add + delete make sure the element is absent whether or not it was
  // there (a delete alone fails on an absent one); then the new one.
  return fmt::format(
      "add element inet {0} {1} {{ {2} }}\n"
      "delete element inet {0} {1} {{ {2} }}\n"
      "add element inet {0} {1} {{ {2} timeout {3}ms }}\n",
      table, set, a, timeout_ms);
}

DomainSets::DomainSets(const Config& c, const policy::Policy& pol, std::string table, Runner run)
    : cfg_(c), pol_(pol), table_(std::move(table)), run_(std::move(run)) {}

void DomainSets::learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s,
                       uint64_t now_ms) {
  const uint64_t timeout = uint64_t(ttl_s) * 1000 + policy::kNameGraceMs;
  for (DomainSet s : sets_for(cfg_, name)) {
    if (expires_.size() >= kMaxElements) prune(now_ms);
    uint64_t& until = expires_[{s, ip}];
    if (now_ms + timeout <= until) continue;  // never shortened
    undo_.push_back({{s, ip}, until});
    until = now_ms + timeout;
    queued_ += element_update(table_, s, ip, timeout);
    if (s != DomainSet::Allow && (denials_.size() < kMaxDenials || denials_.contains(ip))) {
      policy::Verdict v = pol_.judge_name(name);
      // judge_name tests exact denials first, as judge_addr does; keep the
      // first rule (exact) an address met.
      auto it = denials_.find(ip);
      if (it == denials_.end() || (s == DomainSet::DenyExact &&
                                   it->second.reason_code != std::string_view("deny_domain_exact")))
        denials_[ip] = std::move(v);
    }
  }
}

Status DomainSets::flush() {
  if (queued_.empty()) return {};
  std::string batch = std::move(queued_);
  queued_.clear();
  Status st = run_(batch);
  if (!st)  // none of it is in place: learn() must queue those elements again
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) expires_[it->first] = it->second;
  undo_.clear();
  return st;
}

std::optional<policy::Verdict> DomainSets::denial(const IpAddr& ip) const {
  auto it = denials_.find(ip);
  if (it == denials_.end() || it->second.allow) return std::nullopt;
  return it->second;
}

void DomainSets::prune(uint64_t now_ms) {
  if (!undo_.empty()) return;  // keep what a failed flush must put back
  // A full scan: at most once a second, however many answers a tree asks
  // for while the sets are full of live elements.
  if (now_ms < next_prune_ms_) return;
  next_prune_ms_ = now_ms + 1000;
  std::erase_if(expires_, [now_ms](const auto& kv) { return kv.second <= now_ms; });
}

}  // namespace cf::rootful
