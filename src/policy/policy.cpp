// Outbound policy; see policy.hpp. The rule order is the table in docs/policy.md:
//   1 offline, 2 metadata, 3 private, 4 deny-cidr, 5 deny-domain-exact,
//   6 deny-domain, 7 allow-cidr, 8 allow-domain(-exact), 9 default deny,
//   10 proxy-only.
// Addresses are judged with the names the engine learnt from DNS answers it
// relayed for this tree (domain rules 5, 6, 8); names are judged directly, and
// so are flows to a synthetic address under --proxy-dns remote (judge_named).
#include "policy/policy.hpp"

#include <algorithm>
#include <fmt/format.h>

namespace cf::policy {
namespace {

std::string key_of(const IpAddr& ip) {
  return std::string(reinterpret_cast<const char*>(ip.bytes.data()), ip.size());
}

const Cidr& cidr(const char* text) {
  // Built once; the table is small and fixed.
  static std::unordered_map<std::string, Cidr> cache;
  auto it = cache.find(text);
  if (it == cache.end()) it = cache.emplace(text, *Cidr::parse(text)).first;
  return it->second;
}

constexpr const char* kMetadata[] = {"169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                                     "169.254.170.2"};
constexpr const char* kPrivate[] = {"10.0.0.0/8",     "172.16.0.0/12", "192.168.0.0/16",
                                    "127.0.0.0/8",    "169.254.0.0/16", "100.64.0.0/10",
                                    "0.0.0.0/8",      "::1/128",        "::/128",
                                    "fc00::/7",       "fe80::/10"};

bool is_metadata(const IpAddr& ip) {
  static const std::vector<IpAddr> m = metadata_endpoints();
  return std::find(m.begin(), m.end(), ip) != m.end();
}

std::optional<Cidr> private_range(const IpAddr& ip) {
  for (const char* r : kPrivate)
    if (cidr(r).contains(ip)) return cidr(r);
  return std::nullopt;
}

}  // namespace

std::vector<IpAddr> metadata_endpoints() {
  std::vector<IpAddr> out;
  for (const char* m : kMetadata) out.push_back(*IpAddr::parse(m));
  return out;
}

std::vector<Cidr> private_ranges() {
  std::vector<Cidr> out;
  for (const char* r : kPrivate) out.push_back(cidr(r));
  return out;
}

const char* name(Proto p) {
  switch (p) {
    case Proto::Tcp: return "tcp";
    case Proto::Udp: return "udp";
    case Proto::Dns: return "dns";
    case Proto::Icmp4: return "icmpv4";
    case Proto::Icmp6: return "icmpv6";
  }
  return "?";
}

bool domain_matches(std::string_view n, std::string_view rule) {
  if (n == rule) return true;
  return n.size() > rule.size() && n.ends_with(rule) && n[n.size() - rule.size() - 1] == '.';
}

Policy::Policy(const Config& c, size_t max_names) : cfg_(c), max_names_(max_names) {}

bool Policy::has_domain_allow_rules() const {
  return !cfg_.allow_domains.empty() || !cfg_.allow_domains_exact.empty();
}

bool Policy::sniffs_names() const {
  if (cfg_.no_sniff_names) return false;
  return !cfg_.deny_domains.empty() || !cfg_.deny_domains_exact.empty() ||
         (cfg_.default_policy == DefaultPolicy::Deny && has_domain_allow_rules());
}

Verdict Policy::deny(const char* code, const char* control, std::string reason) const {
  Verdict v;
  v.allow = false;
  v.reason_code = code;
  v.control = control;
  v.reason = std::move(reason);
  return v;
}

// Rules 5, 6 and 8 for a set of names; nullopt when none matched.
std::optional<Verdict> Policy::judge_domains(const std::vector<std::string>& names) const {
  for (const auto& n : names)
    for (const auto& r : cfg_.deny_domains_exact)
      if (n == r) {
        Verdict v = deny("deny_domain_exact", "--deny-domain-exact",
                         fmt::format("blocked by `--deny-domain-exact {}`", r));
        v.matched_domain = r;
        return v;
      }
  for (const auto& n : names)
    for (const auto& r : cfg_.deny_domains)
      if (domain_matches(n, r)) {
        Verdict v = deny("deny_domain", "--deny-domain",
                         fmt::format("blocked by `--deny-domain {}`", r));
        v.matched_domain = r;
        return v;
      }
  return std::nullopt;
}

Verdict Policy::judge_addr(Proto proto, const IpAddr& ip, bool via_proxy,
                           uint64_t now_ms) const {
  if (cfg_.offline) return deny("offline", "--offline", "blocked by `--offline`");
  if (cfg_.block_metadata && is_metadata(ip)) {
    Verdict v = deny("metadata", "--block-metadata",
                     fmt::format("blocked by `--block-metadata` ({} is a metadata endpoint)",
                                 ip.str()));
    v.matched_cidr = Cidr{ip, uint8_t(ip.is_v4() ? 32 : 128)};
    return v;
  }
  if (cfg_.block_private) {
    if (auto r = private_range(ip)) {
      Verdict v = deny("private", "--block-private",
                       fmt::format("blocked by `--block-private` ({} is in {})", ip.str(),
                                   r->str()));
      v.matched_cidr = *r;
      return v;
    }
  }
  for (const auto& c : cfg_.deny_cidrs)
    if (c.contains(ip)) {
      Verdict v = deny("deny_cidr", "--deny-cidr",
                       fmt::format("blocked by `--deny-cidr {}`", c.str()));
      v.matched_cidr = c;
      return v;
    }
  std::vector<std::string> names = names_for(ip, now_ms);
  if (auto v = judge_domains(names)) return *v;
  bool allowed = false;
  for (const auto& c : cfg_.allow_cidrs)
    if (c.contains(ip)) allowed = true;
  for (const auto& n : names)
    if (domain_allowed(n)) allowed = true;
  if (allowed) return Verdict{};  // rules 7-8 match: first match wins
  return judge_rest(proto, via_proxy);
}

bool Policy::domain_allowed(std::string_view n) const {
  for (const auto& r : cfg_.allow_domains_exact)
    if (n == r) return true;
  for (const auto& r : cfg_.allow_domains)
    if (domain_matches(n, r)) return true;
  return false;
}

Verdict Policy::judge_rest(Proto proto, bool via_proxy) const {
  if (cfg_.default_policy == DefaultPolicy::Deny)
    return deny("default_deny", "--default-policy", "blocked by `--default-policy deny`");
  if (cfg_.proxy_only && !via_proxy)
    return deny("proxy_only", "--proxy-only",
                fmt::format("blocked by `--proxy-only` ({} is not carried by the proxy)",
                            name(proto)));
  return Verdict{};
}

Verdict Policy::judge_name(std::string_view qname) const {
  if (cfg_.offline) return deny("offline", "--offline", "blocked by `--offline`");
  std::vector<std::string> names{std::string(qname)};
  if (auto v = judge_domains(names)) return *v;
  if (!domain_allowed(qname) && cfg_.default_policy == DefaultPolicy::Deny && has_domain_allow_rules())
    return deny("default_deny", "--default-policy", "blocked by `--default-policy deny`");
  // --proxy-only does not apply: the tree's queries to the gateway are relayed
  // by the engine to the configured resolver (docs/policy.md).
  return Verdict{};
}

Verdict Policy::judge_named(Proto proto, std::string_view n, bool via_proxy) const {
  if (cfg_.offline) return deny("offline", "--offline", "blocked by `--offline`");
  std::vector<std::string> names{std::string(n)};
  if (auto v = judge_domains(names)) return *v;
  if (domain_allowed(n)) return Verdict{};
  return judge_rest(proto, via_proxy);
}

namespace {
constexpr uint64_t kSweepMs = 10'000;
constexpr size_t kNamesPerAddr = 32;
}  // namespace

bool Policy::learn(const std::string& n, const IpAddr& ip, uint32_t ttl_s, uint64_t now_ms) {
  if (now_ms >= next_sweep_ms_) sweep(now_ms);
  std::string key = key_of(ip);
  auto& v = by_ip_[key];
  uint64_t exp = now_ms + uint64_t(ttl_s) * 1000 + kNameGraceMs;
  for (auto& e : v)
    if (e.name == n) {
      e.expires_ms = std::max(e.expires_ms, exp);
      return false;
    }
  if (v.size() >= kNamesPerAddr) {
    v.erase(v.begin());
    --pairs_;
  }
  v.push_back({n, exp});
  ++pairs_;
  order_.push_back(std::move(key));
  bool dropped = false;
  if (pairs_ > max_names_ && now_ms >= last_full_sweep_ms_ + 1000) {
    last_full_sweep_ms_ = now_ms;  // expired pairs go first, at most once a second
    sweep(now_ms);
  }
  while (pairs_ > max_names_ && !order_.empty()) {
    drop_oldest();
    dropped = true;
  }
  if (order_.size() > 2 * max_names_ + 64) {
    order_.clear();
    for (const auto& [k, names] : by_ip_) order_.insert(order_.end(), names.size(), k);
  }
  return dropped;
}

void Policy::sweep(uint64_t now_ms) {
  next_sweep_ms_ = now_ms + kSweepMs;
  for (auto it = by_ip_.begin(); it != by_ip_.end();) {
    auto& v = it->second;
    size_t before = v.size();
    std::erase_if(v, [now_ms](const NameEntry& e) { return e.expires_ms <= now_ms; });
    pairs_ -= before - v.size();
    it = v.empty() ? by_ip_.erase(it) : std::next(it);
  }
}

void Policy::drop_oldest() {
  while (!order_.empty()) {
    auto it = by_ip_.find(order_.front());
    order_.pop_front();
    if (it == by_ip_.end()) continue;
    it->second.erase(it->second.begin());
    --pairs_;
    if (it->second.empty()) by_ip_.erase(it);
    return;
  }
}

std::vector<std::string> Policy::names_for(const IpAddr& ip, uint64_t now_ms) const {
  std::vector<std::string> out;
  auto it = by_ip_.find(key_of(ip));
  if (it == by_ip_.end()) return out;
  for (auto e = it->second.rbegin(); e != it->second.rend(); ++e)
    if (e->expires_ms > now_ms) out.push_back(e->name);
  return out;
}

}  // namespace cf::policy
