// The policy routing of a rootful run. See routing.hpp.
#include "rootful/routing.hpp"

#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "common/random.hpp"

namespace cf::rootful {
namespace {

constexpr uint8_t kFamilies[] = {AF_INET, AF_INET6};

netlink::Rule our_rule(uint8_t family, uint32_t priority, uint32_t value) {
  return netlink::Rule{family, priority, value, value, 0xffffffff};
}

}  // namespace

void reserve(RoutingInUse& in_use, const state::Record& r) {
  auto add = [&in_use](uint32_t value, uint32_t priority) {
    if (!value || !priority) return;
    in_use.rules.push_back(our_rule(AF_INET, priority, value));
    in_use.tables.push_back(value);
  };
  add(r.mark, r.rule_priority);
  add(r.pin_table, r.pin_pref4);
  add(r.pin_table, r.pin_pref6);
}

std::optional<RoutingChoice> choose_routing(const RoutingInUse& in_use, Range range,
                                            uint32_t seed) {
  auto taken = [&in_use](uint32_t v) {
    if (std::find(in_use.tables.begin(), in_use.tables.end(), v) != in_use.tables.end())
      return true;
    for (const netlink::Rule& r : in_use.rules) {
      if (r.table == v) return true;
      if (r.fwmark && (v & r.mask) == *r.fwmark) return true;
    }
    return false;
  };
  RoutingChoice out;
  const uint32_t span = range.last - range.first + 1;
  for (uint32_t k = 0; k < span && !out.value; ++k) {
    uint32_t v = range.first + (seed + k) % span;
    if (!taken(v)) out.value = v;
  }
  if (!out.value) return std::nullopt;
  uint32_t lowest = 32766;  // the main table's rule, present on every host
  for (const netlink::Rule& r : in_use.rules)
    if (r.pref > 0) lowest = std::min(lowest, r.pref);
  if (lowest <= 1) return std::nullopt;  // 0 is the local table's rule
  out.priority = lowest - 1;
  return out;
}

Result<RoutingChoice> plan_routing(Range range, const state::Record& self,
                                   const std::string& step) {
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();
  RoutingInUse in_use;
  for (uint8_t family : kFamilies) {
    auto rules = nl->rules(family);
    if (!rules) return rules.error();
    in_use.rules.insert(in_use.rules.end(), rules->begin(), rules->end());
    auto routes = nl->routes(family);
    if (!routes) return routes.error();
    for (const netlink::Route& r : *routes) in_use.tables.push_back(r.table);
  }
  for (const state::Record& r : state::records()) reserve(in_use, r);
  reserve(in_use, self);
  auto chosen = choose_routing(in_use, range, random_u32());
  if (!chosen)
    return Error{fmt::format("no free firewall mark and routing table in {:#x}-{:#x}, or a host "
                             "rule at priority 1",
                             range.first, range.last),
                 step};
  return *chosen;
}

std::vector<netlink::Route> local_delivery_routes(uint32_t table, int lo, bool ipv6) {
  std::vector<netlink::Route> out;
  for (uint8_t family : kFamilies) {
    if (family == AF_INET6 && !ipv6) break;
    netlink::Route r;
    r.family = family;
    r.table = table;
    r.dst.family = family == AF_INET ? Family::V4 : Family::V6;  // default
    r.type = RTN_LOCAL;
    r.scope = RT_SCOPE_HOST;
    r.protocol = RTPROT_BOOT;
    r.ifindex = lo;
    out.push_back(r);
  }
  return out;
}

Status add_routing(const RoutingChoice& c, const std::vector<netlink::Route>& routes, bool ipv6) {
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();
  std::vector<netlink::Route> ordered = routes;
  std::stable_partition(ordered.begin(), ordered.end(),
                        [](const netlink::Route& r) { return !r.gateway; });
  for (const netlink::Route& r : ordered)
    if (auto s = nl->add_route(r); !s) return s;
  for (uint8_t family : kFamilies) {
    if (family == AF_INET6 && !ipv6) break;
    if (auto s = nl->add_rule(our_rule(family, c.priority, c.value)); !s) return s;
  }
  return {};
}

std::string remove_routing(uint32_t value, uint32_t prio4, uint32_t prio6) {
  if (!value) return {};
  std::string errors;
  auto note = [&errors](const Status& s) {
    if (!s) errors += (errors.empty() ? "" : "; ") + s.error().str();
  };
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error().str();
  for (auto [family, prio] : {std::pair{uint8_t(AF_INET), prio4}, {uint8_t(AF_INET6), prio6}}) {
    if (!prio) continue;
    auto rules = nl->rules(family);
    if (!rules) {
      note(rules.error());
      continue;
    }
    for (const netlink::Rule& r : *rules)
      if (r.pref == prio && r.table == value && r.fwmark == value) note(nl->delete_rule(r));
  }
  for (uint8_t family : kFamilies) {
    auto routes = nl->routes(family);
    if (!routes) {
      note(routes.error());
      continue;
    }
    // The reverse of add_routing's order: routes through a gateway first.
    std::vector<netlink::Route> mine;
    for (const netlink::Route& r : *routes)
      if (r.table == value) mine.push_back(r);
    std::stable_partition(mine.begin(), mine.end(),
                          [](const netlink::Route& r) { return bool(r.gateway); });
    for (const netlink::Route& r : mine) note(nl->delete_route(r));
  }
  return errors;
}

}  // namespace cf::rootful
