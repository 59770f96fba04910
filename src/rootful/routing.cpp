// The policy routing of a rootful run's TPROXY. See routing.hpp.
#include "rootful/routing.hpp"

#include <sys/socket.h>

#include <algorithm>

namespace cf::rootful {

std::optional<TproxyRouting> choose_routing(const netlink::RoutingInUse& in_use, uint32_t seed) {
  auto taken = [&in_use](uint32_t v) {
    if (std::find(in_use.tables.begin(), in_use.tables.end(), v) != in_use.tables.end())
      return true;
    for (const netlink::RuleInfo& r : in_use.rules) {
      if (r.table == v) return true;
      if ((r.mark || r.mask) && (v & r.mask) == r.mark) return true;
    }
    return false;
  };
  TproxyRouting out;
  const uint32_t span = kRoutingLast - kRoutingFirst + 1;
  for (uint32_t k = 0; k < span && !out.mark; ++k) {
    uint32_t v = kRoutingFirst + (seed + k) % span;
    if (!taken(v)) out.mark = out.table = v;
  }
  if (!out.mark) return std::nullopt;
  for (uint32_t p = kPriorityFirst; p <= kPriorityLast && !out.priority; ++p)
    if (std::none_of(in_use.rules.begin(), in_use.rules.end(),
                     [p](const netlink::RuleInfo& r) { return r.priority == p; }))
      out.priority = p;
  if (!out.priority) return std::nullopt;
  return out;
}

Status add_routing(const TproxyRouting& r, bool ipv6) {
  Status st;
  for (int fam : {AF_INET, AF_INET6}) {
    if (fam == AF_INET6 && !ipv6) break;
    if (st = netlink::add_local_default_route(fam, r.table); !st) break;
    if (st = netlink::add_fwmark_rule(fam, r.priority, r.mark, r.table); !st) break;
  }
  if (!st) remove_routing(r);  // the cause is st's; what remains is for --cleanup
  return st;
}

std::string remove_routing(const TproxyRouting& r) {
  if (!r.mark) return {};
  std::string errors;
  auto note = [&errors](const Status& s) {
    if (!s) errors += (errors.empty() ? "" : "; ") + s.error().str();
  };
  for (int fam : {AF_INET, AF_INET6}) {
    note(netlink::delete_fwmark_rule(fam, r.priority, r.mark, r.table));
    note(netlink::delete_local_default_route(fam, r.table));
  }
  return errors;
}

}  // namespace cf::rootful
