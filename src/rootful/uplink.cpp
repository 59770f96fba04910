// --iface: fwmark policy routing for the tree's direct egress. See uplink.hpp.
#include "rootful/uplink.hpp"

#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "common/random.hpp"

namespace cf::rootful {
namespace {

constexpr uint32_t kBase = 0x43460000;  // "CF"
constexpr uint32_t kSpan = 0x10000;

bool is_default(const netlink::Route& r) { return r.prefix == 0; }

// The smallest preference above 0 among `family`'s rules, minus one; 0 when
// that would collide with the local rule.
uint32_t pref_before_all(const std::vector<netlink::Rule>& rules, uint8_t family) {
  uint32_t lowest = 32766;  // the main table's rule, present on every host
  for (const netlink::Rule& r : rules)
    if (r.family == family && r.pref > 0) lowest = std::min(lowest, r.pref);
  return lowest > 1 ? lowest - 1 : 0;
}

}  // namespace

std::optional<Pin> choose_pin(const std::string& iface, const std::vector<netlink::Rule>& rules,
                              const std::vector<netlink::Route>& routes, uint32_t random,
                              bool ipv6) {
  std::set<uint32_t> used;
  for (const netlink::Rule& r : rules) {
    used.insert(r.table);
    if (r.fwmark) used.insert(*r.fwmark);
  }
  for (const netlink::Route& r : routes) used.insert(r.table);
  Pin p;
  p.iface = iface;
  for (uint32_t i = 0; i < kSpan; ++i) {
    uint32_t candidate = kBase + (random + i) % kSpan;
    if (!used.contains(candidate)) {
      p.mark = p.table = candidate;
      break;
    }
  }
  if (!p.table) return std::nullopt;
  p.pref4 = pref_before_all(rules, AF_INET);
  if (!p.pref4) return std::nullopt;
  if (ipv6) {
    p.pref6 = pref_before_all(rules, AF_INET6);
    if (!p.pref6) return std::nullopt;
  }
  return p;
}

std::vector<netlink::Route> pin_routes(const std::vector<netlink::Route>& routes, int ifindex,
                                       uint32_t table, bool ipv6) {
  std::vector<netlink::Route> out;
  bool default4 = false, default6 = false;
  for (const netlink::Route& r : routes) {
    if (r.table != RT_TABLE_MAIN || r.ifindex != ifindex || r.type != RTN_UNICAST) continue;
    if (r.family == AF_INET6 && !ipv6) continue;
    netlink::Route copy = r;
    copy.table = table;
    copy.protocol = RTPROT_STATIC;
    out.push_back(copy);
    if (is_default(r)) (r.family == AF_INET ? default4 : default6) = true;
  }
  auto unreachable = [&](uint8_t family) {
    netlink::Route u;
    u.family = family;
    u.table = table;
    u.dst.family = family == AF_INET ? Family::V4 : Family::V6;
    u.type = RTN_UNREACHABLE;
    u.scope = RT_SCOPE_UNIVERSE;
    u.protocol = RTPROT_STATIC;
    out.push_back(u);
  };
  if (!default4) unreachable(AF_INET);
  if (ipv6 && !default6) unreachable(AF_INET6);
  return out;
}

Status check_iface(const std::string& iface) {
  if (Status s = netlink::uplink_ready(iface); !s)
    return Error{"--iface " + s.error().message, s.error().step};
  return {};
}

Result<Pin> plan_pin(const std::string& iface, bool ipv6) {
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();
  std::vector<netlink::Rule> rules;
  std::vector<netlink::Route> routes;
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    auto ru = nl->rules(family);
    if (!ru) return ru.error();
    rules.insert(rules.end(), ru->begin(), ru->end());
    auto ro = nl->routes(family);
    if (!ro) return ro.error();
    routes.insert(routes.end(), ro->begin(), ro->end());
  }
  auto p = choose_pin(iface, rules, routes, random_u32(), ipv6);
  if (!p)
    return Error{"no free routing table in 0x43460000-0x4346ffff, or a host rule at preference 1",
                 fmt::format("rootful: --iface {}", iface)};
  return *p;
}

Status apply_pin(const Pin& p) {
  const unsigned index = ::if_nametoindex(p.iface.c_str());
  if (index == 0) return errno_error(fmt::format("rootful: --iface {}", p.iface));
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();
  std::vector<netlink::Route> all;
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    auto ro = nl->routes(family);
    if (!ro) return ro.error();
    all.insert(all.end(), ro->begin(), ro->end());
  }
  // Connected routes first: a gateway must be reachable when its route is added.
  std::vector<netlink::Route> mine = pin_routes(all, int(index), p.table, p.pref6 != 0);
  std::stable_partition(mine.begin(), mine.end(),
                        [](const netlink::Route& r) { return !r.gateway; });
  for (const netlink::Route& r : mine)
    if (auto s = nl->add_route(r); !s) return s;
  for (auto [family, pref] : {std::pair{uint8_t(AF_INET), p.pref4}, {uint8_t(AF_INET6), p.pref6}}) {
    if (!pref) continue;
    netlink::Rule rule{family, pref, p.table, p.mark, 0xffffffff};
    if (auto s = nl->add_rule(rule); !s) return s;
  }
  return {};
}

std::string undo_pin(const Pin& p) {
  if (!p.table) return {};
  std::string errors;
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error().str();
  for (auto [family, pref] : {std::pair{uint8_t(AF_INET), p.pref4}, {uint8_t(AF_INET6), p.pref6}}) {
    if (!pref) continue;
    auto rules = nl->rules(family);
    if (!rules) {
      errors += rules.error().str() + "; ";
      continue;
    }
    for (const netlink::Rule& r : *rules)
      if (r.pref == pref && r.table == p.table && r.fwmark == p.mark)
        if (auto s = nl->delete_rule(r); !s) errors += s.error().str() + "; ";
  }
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    auto routes = nl->routes(family);
    if (!routes) {
      errors += routes.error().str() + "; ";
      continue;
    }
    // The reverse of apply_pin's order: routes through a gateway first.
    std::vector<netlink::Route> mine;
    for (const netlink::Route& r : *routes)
      if (r.table == p.table) mine.push_back(r);
    std::stable_partition(mine.begin(), mine.end(),
                          [](const netlink::Route& r) { return bool(r.gateway); });
    for (const netlink::Route& r : mine)
      if (auto s = nl->delete_route(r); !s) errors += s.error().str() + "; ";
  }
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  return errors;
}

}  // namespace cf::rootful
