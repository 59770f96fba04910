// Policy routing requests. See policy_routing.hpp. The objects are built,
// sent and released as in netlink.cpp (unique_ptr with the put functions).
#include "netlink/policy_routing.hpp"

#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <memory>

#include <fmt/format.h>

namespace cf::netlink {
namespace {

struct FreeSock {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
struct FreeCache {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
struct PutRule {
  void operator()(rtnl_rule* r) const { rtnl_rule_put(r); }
};
struct PutRoute {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct PutAddr {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using SockPtr = std::unique_ptr<nl_sock, FreeSock>;

const char* fam_name(int family) { return family == AF_INET ? "IPv4" : "IPv6"; }

Result<SockPtr> connect_route(const char* step) {
  SockPtr s(nl_socket_alloc());
  if (!s) return Error{"out of memory", step};
  if (int err = nl_connect(s.get(), NETLINK_ROUTE); err < 0) return Error{nl_geterror(err), step};
  return s;
}

std::string rule_step(const char* req, int family, uint32_t prio, uint32_t mark, uint32_t table) {
  return fmt::format("netlink: {} priority {} fwmark {:#x} table {} ({})", req, prio, mark, table,
                     fam_name(family));
}

std::unique_ptr<rtnl_rule, PutRule> make_rule(int family, uint32_t prio, uint32_t mark,
                                              uint32_t table) {
  std::unique_ptr<rtnl_rule, PutRule> r(rtnl_rule_alloc());
  if (!r) return r;
  rtnl_rule_set_family(r.get(), family);
  rtnl_rule_set_prio(r.get(), prio);
  rtnl_rule_set_mark(r.get(), mark);
  rtnl_rule_set_mask(r.get(), 0xffffffff);
  rtnl_rule_set_table(r.get(), table);
  rtnl_rule_set_action(r.get(), FR_ACT_TO_TBL);
  return r;
}

// The route `local default dev lo table T`, scope host.
Result<std::unique_ptr<rtnl_route, PutRoute>> make_local_default(int family, uint32_t table,
                                                                 const std::string& step) {
  std::unique_ptr<rtnl_route, PutRoute> r(rtnl_route_alloc());
  std::array<uint8_t, 16> zero{};
  std::unique_ptr<nl_addr, PutAddr> dst(
      nl_addr_build(family, zero.data(), family == AF_INET ? 4 : 16));
  if (!r || !dst) return Error{"out of memory", step};
  nl_addr_set_prefixlen(dst.get(), 0);
  rtnl_route_set_family(r.get(), uint8_t(family));
  rtnl_route_set_table(r.get(), table);
  rtnl_route_set_type(r.get(), RTN_LOCAL);
  rtnl_route_set_scope(r.get(), RT_SCOPE_HOST);
  rtnl_route_set_protocol(r.get(), RTPROT_BOOT);
  if (int err = rtnl_route_set_dst(r.get(), dst.get()); err < 0)
    return Error{nl_geterror(err), step};
  const unsigned lo = if_nametoindex("lo");
  if (lo == 0) return Error{"no loopback link", step};
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!nh) return Error{"out of memory", step};
  rtnl_route_nh_set_ifindex(nh, int(lo));
  rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh
  return r;
}

}  // namespace

Result<RoutingInUse> routing_in_use() {
  auto s = connect_route("netlink: RTM_GETRULE");
  if (!s) return s.error();
  RoutingInUse out;
  nl_cache* raw = nullptr;
  if (int err = rtnl_rule_alloc_cache(s->get(), AF_UNSPEC, &raw); err < 0)
    return Error{nl_geterror(err), "netlink: RTM_GETRULE"};
  std::unique_ptr<nl_cache, FreeCache> rules(raw);
  for (nl_object* o = nl_cache_get_first(rules.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_rule*>(o);
    RuleInfo i;
    i.family = rtnl_rule_get_family(r);
    i.priority = rtnl_rule_get_prio(r);
    i.mark = rtnl_rule_get_mark(r);
    i.mask = rtnl_rule_get_mask(r);
    if (i.mark == 0 && i.mask == 0xffffffff) i.mask = 0;  // libnl's "no mark"
    i.table = rtnl_rule_get_action(r) == FR_ACT_TO_TBL ? rtnl_rule_get_table(r) : 0;
    out.rules.push_back(i);
    if (i.table) out.tables.push_back(i.table);
  }
  raw = nullptr;
  if (int err = rtnl_route_alloc_cache(s->get(), AF_UNSPEC, 0, &raw); err < 0)
    return Error{nl_geterror(err), "netlink: RTM_GETROUTE"};
  std::unique_ptr<nl_cache, FreeCache> routes(raw);
  for (nl_object* o = nl_cache_get_first(routes.get()); o; o = nl_cache_get_next(o))
    out.tables.push_back(rtnl_route_get_table(reinterpret_cast<rtnl_route*>(o)));
  std::sort(out.tables.begin(), out.tables.end());
  out.tables.erase(std::unique(out.tables.begin(), out.tables.end()), out.tables.end());
  return out;
}

Status add_fwmark_rule(int family, uint32_t prio, uint32_t mark, uint32_t table) {
  const std::string step = rule_step("RTM_NEWRULE", family, prio, mark, table);
  auto s = connect_route(step.c_str());
  if (!s) return s.error();
  auto r = make_rule(family, prio, mark, table);
  if (!r) return Error{"out of memory", step};
  if (int err = rtnl_rule_add(s->get(), r.get(), NLM_F_EXCL); err < 0)
    return Error{nl_geterror(err), step};
  return {};
}

Status delete_fwmark_rule(int family, uint32_t prio, uint32_t mark, uint32_t table) {
  const std::string step = rule_step("RTM_DELRULE", family, prio, mark, table);
  auto s = connect_route(step.c_str());
  if (!s) return s.error();
  auto r = make_rule(family, prio, mark, table);
  if (!r) return Error{"out of memory", step};
  int err = rtnl_rule_delete(s->get(), r.get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND) return Error{nl_geterror(err), step};
  return {};
}

Status add_local_default_route(int family, uint32_t table) {
  const std::string step =
      fmt::format("netlink: RTM_NEWROUTE local default dev lo table {} ({})", table, fam_name(family));
  auto s = connect_route(step.c_str());
  if (!s) return s.error();
  auto r = make_local_default(family, table, step);
  if (!r) return r.error();
  if (int err = rtnl_route_add(s->get(), r->get(), NLM_F_EXCL); err < 0)
    return Error{nl_geterror(err), step};
  return {};
}

Status delete_local_default_route(int family, uint32_t table) {
  const std::string step =
      fmt::format("netlink: RTM_DELROUTE local default dev lo table {} ({})", table, fam_name(family));
  auto s = connect_route(step.c_str());
  if (!s) return s.error();
  auto r = make_local_default(family, table, step);
  if (!r) return r.error();
  int err = rtnl_route_delete(s->get(), r->get(), 0);
  if (err < 0 && err != -NLE_OBJ_NOTFOUND) return Error{nl_geterror(err), step};
  return {};
}

}  // namespace cf::netlink
