// Theory of operation: each request builds a libnl object (rtnl_link,
// rtnl_addr, rtnl_route, rtnl_neigh), sends it on the socket and waits for
// the kernel's ack (libnl's *_add/_change calls do nl_send_auto + wait_for_ack).
// libnl objects and addresses are reference counted; every reference taken
// here is owned by a unique_ptr with the matching put/free, so an early return
// leaks nothing. Errors have the step "netlink: <RTM_*> on <ifname>" and the
// cause (nl_geterror) as message, so a setup failure names both.
#include "netlink/netlink.hpp"

#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <linux/if.h>
#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace cf::netlink {
namespace {

struct PutAddr {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
struct PutLink {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
struct PutRtAddr {
  void operator()(rtnl_addr* a) const { rtnl_addr_put(a); }
};
struct PutRoute {
  void operator()(rtnl_route* r) const { rtnl_route_put(r); }
};
struct PutNeigh {
  void operator()(rtnl_neigh* n) const { rtnl_neigh_put(n); }
};
struct PutRule {
  void operator()(rtnl_rule* r) const { rtnl_rule_put(r); }
};
struct FreeCache {
  void operator()(nl_cache* c) const { nl_cache_free(c); }
};
using AddrPtr = std::unique_ptr<nl_addr, PutAddr>;
using RoutePtr = std::unique_ptr<rtnl_route, PutRoute>;
using RulePtr = std::unique_ptr<rtnl_rule, PutRule>;
using CachePtr = std::unique_ptr<nl_cache, FreeCache>;
using LinkPtr = std::unique_ptr<rtnl_link, PutLink>;

int af_of(const IpAddr& ip) { return ip.is_v4() ? AF_INET : AF_INET6; }

AddrPtr to_nl(const IpAddr& ip) {
  return AddrPtr(nl_addr_build(af_of(ip), ip.bytes.data(), ip.size()));
}

// An nl_addr of the right length as an IpAddr.
std::optional<IpAddr> from_nl(nl_addr* a) {
  if (!a) return std::nullopt;
  const auto* p = static_cast<const uint8_t*>(nl_addr_get_binary_addr(a));
  if (nl_addr_get_family(a) == AF_INET && nl_addr_get_len(a) == 4) return IpAddr::v4_bytes(p);
  if (nl_addr_get_family(a) == AF_INET6 && nl_addr_get_len(a) == 16) return IpAddr::v6_bytes(p);
  return std::nullopt;
}

std::string route_name(const Route& r) {
  return fmt::format("{}/{} table {}", r.dst.str(), r.prefix, r.table);
}

Error fail(const char* request, const std::string& ifname, int nl_err) {
  return Error{nl_geterror(nl_err), fmt::format("netlink: {} on {}", request, ifname)};
}
Error out_of_memory(const char* request, const std::string& ifname) {
  return Error{"out of memory", fmt::format("netlink: {} on {}", request, ifname)};
}

}  // namespace

void Socket::Free::operator()(nl_sock* s) const { nl_socket_free(s); }

Result<Socket> Socket::open() {
  nl_sock* s = nl_socket_alloc();
  if (!s) return Error{"out of memory", "netlink: socket"};
  Socket sock(s);
  if (int err = nl_connect(s, NETLINK_ROUTE); err < 0)
    return Error{nl_geterror(err), "netlink: connect NETLINK_ROUTE"};
  return sock;
}

Result<Link> Socket::find_link(std::string_view name) {
  std::string n(name);
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(sock_.get(), 0, n.c_str(), &raw); err < 0)
    return Error{nl_geterror(err), "netlink: no link " + n};
  LinkPtr l(raw);
  return Link{n, rtnl_link_get_ifindex(l.get())};
}

namespace {
Status change_link(nl_sock* sock, const Link& link, rtnl_link* changes) {
  LinkPtr orig(rtnl_link_alloc());
  if (!orig) return out_of_memory("RTM_NEWLINK", link.name);
  rtnl_link_set_ifindex(orig.get(), link.index);
  rtnl_link_set_name(orig.get(), link.name.c_str());
  if (int err = rtnl_link_change(sock, orig.get(), changes, 0); err < 0)
    return fail("RTM_NEWLINK", link.name, err);
  return {};
}
}  // namespace

Status Socket::set_mac_and_mtu(const Link& link, const Mac& mac, uint32_t mtu) {
  LinkPtr changes(rtnl_link_alloc());
  AddrPtr lladdr(nl_addr_build(AF_LLC, mac.data(), mac.size()));
  if (!changes || !lladdr) return out_of_memory("RTM_NEWLINK", link.name);
  rtnl_link_set_addr(changes.get(), lladdr.get());
  rtnl_link_set_mtu(changes.get(), mtu);
  return change_link(sock_.get(), link, changes.get());
}

Status Socket::set_up(const Link& link) {
  LinkPtr changes(rtnl_link_alloc());
  if (!changes) return out_of_memory("RTM_NEWLINK", link.name);
  rtnl_link_set_flags(changes.get(), IFF_UP);
  return change_link(sock_.get(), link, changes.get());
}

Status Socket::add_address(const Link& link, const IpAddr& addr, uint8_t prefix, bool nodad) {
  std::unique_ptr<rtnl_addr, PutRtAddr> a(rtnl_addr_alloc());
  AddrPtr local = to_nl(addr);
  if (!a || !local) return out_of_memory("RTM_NEWADDR", link.name);
  nl_addr_set_prefixlen(local.get(), prefix);
  rtnl_addr_set_ifindex(a.get(), link.index);
  rtnl_addr_set_family(a.get(), af_of(addr));
  if (int err = rtnl_addr_set_local(a.get(), local.get()); err < 0)
    return fail("RTM_NEWADDR", link.name, err);
  rtnl_addr_set_prefixlen(a.get(), prefix);
  if (nodad) rtnl_addr_set_flags(a.get(), IFA_F_NODAD);
  if (int err = rtnl_addr_add(sock_.get(), a.get(), NLM_F_EXCL); err < 0)
    return fail("RTM_NEWADDR", link.name, err);
  return {};
}

Status Socket::add_default_route(const Link& link, const IpAddr& gateway) {
  std::unique_ptr<rtnl_route, PutRoute> r(rtnl_route_alloc());
  IpAddr any;
  any.family = gateway.family;  // all-zero bytes: 0.0.0.0 or ::
  AddrPtr dst = to_nl(any);
  AddrPtr gw = to_nl(gateway);
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!r || !dst || !gw || !nh) {
    if (nh) rtnl_route_nh_free(nh);
    return out_of_memory("RTM_NEWROUTE", link.name);
  }
  nl_addr_set_prefixlen(dst.get(), 0);
  rtnl_route_set_family(r.get(), static_cast<uint8_t>(af_of(gateway)));
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(r.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_protocol(r.get(), RTPROT_STATIC);
  rtnl_route_set_type(r.get(), RTN_UNICAST);
  if (int err = rtnl_route_set_dst(r.get(), dst.get()); err < 0) {
    rtnl_route_nh_free(nh);
    return fail("RTM_NEWROUTE", link.name, err);
  }
  rtnl_route_nh_set_ifindex(nh, link.index);
  rtnl_route_nh_set_gateway(nh, gw.get());
  rtnl_route_add_nexthop(r.get(), nh);  // the route owns nh from here on
  if (int err = rtnl_route_add(sock_.get(), r.get(), NLM_F_EXCL); err < 0)
    return fail("RTM_NEWROUTE", link.name, err);
  return {};
}

Status Socket::add_permanent_neighbour(const Link& link, const IpAddr& addr, const Mac& mac) {
  std::unique_ptr<rtnl_neigh, PutNeigh> n(rtnl_neigh_alloc());
  AddrPtr dst = to_nl(addr);
  AddrPtr lladdr(nl_addr_build(AF_LLC, mac.data(), mac.size()));
  if (!n || !dst || !lladdr) return out_of_memory("RTM_NEWNEIGH", link.name);
  rtnl_neigh_set_ifindex(n.get(), link.index);
  rtnl_neigh_set_family(n.get(), af_of(addr));
  if (int err = rtnl_neigh_set_dst(n.get(), dst.get()); err < 0)
    return fail("RTM_NEWNEIGH", link.name, err);
  rtnl_neigh_set_lladdr(n.get(), lladdr.get());
  rtnl_neigh_set_state(n.get(), NUD_PERMANENT);
  if (int err = rtnl_neigh_add(sock_.get(), n.get(), NLM_F_CREATE | NLM_F_REPLACE); err < 0)
    return fail("RTM_NEWNEIGH", link.name, err);
  return {};
}

Status Socket::add_veth(std::string_view name, const Mac& mac, std::string_view peer,
                        const Mac& peer_mac, pid_t peer_pid, uint32_t mtu) {
  const std::string n(name), pn(peer);
  struct Release {
    void operator()(rtnl_link* l) const { rtnl_link_veth_release(l); }  // and its peer
  };
  std::unique_ptr<rtnl_link, Release> link(rtnl_link_veth_alloc());
  if (!link) return out_of_memory("RTM_NEWLINK", n);
  LinkPtr other(rtnl_link_veth_get_peer(link.get()));  // a reference of its own
  AddrPtr lladdr(nl_addr_build(AF_LLC, mac.data(), mac.size()));
  AddrPtr peer_lladdr(nl_addr_build(AF_LLC, peer_mac.data(), peer_mac.size()));
  if (!other || !lladdr || !peer_lladdr) return out_of_memory("RTM_NEWLINK", n);
  rtnl_link_set_name(link.get(), n.c_str());
  rtnl_link_set_addr(link.get(), lladdr.get());
  rtnl_link_set_mtu(link.get(), mtu);
  rtnl_link_set_name(other.get(), pn.c_str());
  rtnl_link_set_addr(other.get(), peer_lladdr.get());
  rtnl_link_set_mtu(other.get(), mtu);
  rtnl_link_set_ns_pid(other.get(), peer_pid);
  if (int err = rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    return fail("RTM_NEWLINK veth", n, err);
  return {};
}

Result<std::optional<std::string>> Socket::link_kind(std::string_view name) {
  std::string n(name);
  rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(sock_.get(), 0, n.c_str(), &raw);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return std::optional<std::string>{};
  if (err < 0) return fail("RTM_GETLINK", n, err);
  LinkPtr l(raw);
  const char* kind = rtnl_link_get_type(l.get());
  return std::optional<std::string>(kind ? kind : "");
}

Status Socket::delete_link(std::string_view name) {
  std::string n(name);
  LinkPtr l(rtnl_link_alloc());
  if (!l) return out_of_memory("RTM_DELLINK", n);
  rtnl_link_set_name(l.get(), n.c_str());
  if (int err = rtnl_link_delete(sock_.get(), l.get()); err < 0)
    return fail("RTM_DELLINK", n, err);
  return {};
}

Result<std::vector<Route>> Socket::routes(uint8_t family) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_.get(), family, 0, &raw); err < 0)
    return fail("RTM_GETROUTE", "every table", err);
  CachePtr cache(raw);
  std::vector<Route> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_route*>(o);
    Route base;
    base.family = rtnl_route_get_family(r);
    if (base.family != family) continue;
    base.table = rtnl_route_get_table(r);
    nl_addr* dst = rtnl_route_get_dst(r);
    if (auto a = from_nl(dst)) {
      base.dst = *a;
      base.prefix = uint8_t(nl_addr_get_prefixlen(dst));
    } else {
      base.dst = IpAddr{};
      base.dst.family = family == AF_INET ? Family::V4 : Family::V6;
    }
    base.type = rtnl_route_get_type(r);
    base.scope = rtnl_route_get_scope(r);
    base.protocol = rtnl_route_get_protocol(r);
    base.metric = rtnl_route_get_priority(r);
    base.pref_src = from_nl(rtnl_route_get_pref_src(r));
    const int n = rtnl_route_get_nnexthops(r);
    if (n == 0) out.push_back(base);
    for (int i = 0; i < n; ++i) {
      rtnl_nexthop* nh = rtnl_route_nexthop_n(r, i);
      Route one = base;
      one.ifindex = rtnl_route_nh_get_ifindex(nh);
      one.gateway = from_nl(rtnl_route_nh_get_gateway(nh));
      out.push_back(one);
    }
  }
  return out;
}

namespace {
// The libnl object for exactly `r` (for add and delete).
Result<RoutePtr> route_object(const Route& r, const char* request) {
  RoutePtr o(rtnl_route_alloc());
  AddrPtr dst = to_nl(r.dst);
  if (!o || !dst) return out_of_memory(request, route_name(r));
  nl_addr_set_prefixlen(dst.get(), r.prefix);
  rtnl_route_set_family(o.get(), r.family);
  rtnl_route_set_table(o.get(), r.table);
  rtnl_route_set_scope(o.get(), r.scope);
  rtnl_route_set_protocol(o.get(), r.protocol);
  rtnl_route_set_type(o.get(), r.type);
  rtnl_route_set_priority(o.get(), r.metric);
  if (int err = rtnl_route_set_dst(o.get(), dst.get()); err < 0)
    return fail(request, route_name(r), err);
  if (r.pref_src) {
    AddrPtr src = to_nl(*r.pref_src);
    if (!src) return out_of_memory(request, route_name(r));
    if (int err = rtnl_route_set_pref_src(o.get(), src.get()); err < 0)
      return fail(request, route_name(r), err);
  }
  if (r.ifindex) {
    rtnl_nexthop* nh = rtnl_route_nh_alloc();
    if (!nh) return out_of_memory(request, route_name(r));
    rtnl_route_nh_set_ifindex(nh, r.ifindex);
    if (r.gateway) {
      AddrPtr gw = to_nl(*r.gateway);
      if (!gw) {
        rtnl_route_nh_free(nh);
        return out_of_memory(request, route_name(r));
      }
      rtnl_route_nh_set_gateway(nh, gw.get());
    }
    rtnl_route_add_nexthop(o.get(), nh);  // the route owns nh from here on
  }
  return o;
}

Result<RulePtr> rule_object(const Rule& r) {
  RulePtr o(rtnl_rule_alloc());
  if (!o) return Error{"out of memory", "netlink: RTM_NEWRULE"};
  rtnl_rule_set_family(o.get(), r.family);
  rtnl_rule_set_prio(o.get(), r.pref);
  rtnl_rule_set_table(o.get(), r.table);
  rtnl_rule_set_action(o.get(), FR_ACT_TO_TBL);
  if (r.fwmark) {
    rtnl_rule_set_mark(o.get(), *r.fwmark);
    rtnl_rule_set_mask(o.get(), r.mask);
  }
  return o;
}

std::string rule_name(const Rule& r) {
  return fmt::format("pref {} table {}", r.pref, r.table);
}
}  // namespace

Status Socket::add_route(const Route& r) {
  auto o = route_object(r, "RTM_NEWROUTE");
  if (!o) return o.error();
  if (int err = rtnl_route_add(sock_.get(), o->get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    return fail("RTM_NEWROUTE", route_name(r), err);
  return {};
}

Status Socket::delete_route(const Route& r) {
  auto o = route_object(r, "RTM_DELROUTE");
  if (!o) return o.error();
  if (int err = rtnl_route_delete(sock_.get(), o->get(), 0); err < 0)
    return fail("RTM_DELROUTE", route_name(r), err);
  return {};
}

Result<std::vector<Rule>> Socket::rules(uint8_t family) {
  nl_cache* raw = nullptr;
  if (int err = rtnl_rule_alloc_cache(sock_.get(), family, &raw); err < 0)
    return fail("RTM_GETRULE", "every rule", err);
  CachePtr cache(raw);
  std::vector<Rule> out;
  for (nl_object* o = nl_cache_get_first(cache.get()); o; o = nl_cache_get_next(o)) {
    auto* r = reinterpret_cast<rtnl_rule*>(o);
    if (rtnl_rule_get_family(r) != family) continue;
    Rule one;
    one.family = family;
    one.pref = rtnl_rule_get_prio(r);
    one.table = rtnl_rule_get_table(r);
    // No fwmark selector: libnl says 0xffffffff for an absent attribute,
    // and the kernel sends none for mark and mask 0 (which libnl then
    // reports as 0/0); that is no selector either.
    const uint32_t mark = rtnl_rule_get_mark(r), mask = rtnl_rule_get_mask(r);
    if (mark != 0xffffffff && (mark != 0 || mask != 0)) {
      one.fwmark = mark;
      one.mask = mask;
    }
    out.push_back(one);
  }
  return out;
}

Status Socket::add_rule(const Rule& r) {
  auto o = rule_object(r);
  if (!o) return o.error();
  if (int err = rtnl_rule_add(sock_.get(), o->get(), NLM_F_EXCL); err < 0)
    return fail("RTM_NEWRULE", rule_name(r), err);
  return {};
}

Status Socket::delete_rule(const Rule& r) {
  auto o = rule_object(r);
  if (!o) return o.error();
  if (int err = rtnl_rule_delete(sock_.get(), o->get(), 0); err < 0)
    return fail("RTM_DELRULE", rule_name(r), err);
  return {};
}

Status uplink_ready(const std::string& iface) {
  auto nl = Socket::open();
  if (!nl) return nl.error();
  auto link = nl->find_link(iface);
  if (!link)
    return Error{fmt::format("{}: no such interface on this host (`ip link` lists them)", iface)};
  const int index = link->index;
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    auto rs = nl->routes(family);
    if (!rs) return rs.error();
    for (const Route& r : *rs)
      if (r.table == RT_TABLE_MAIN && r.prefix == 0 && r.type == RTN_UNICAST &&
          r.ifindex == index)
        return {};
  }
  return Error{fmt::format(
      "{} has no default route, so nothing beyond its own network is reachable through it: add "
      "one (e.g. `ip route add default via GATEWAY dev {} metric 200`) or pick another interface",
      iface, iface)};
}

}  // namespace cf::netlink
