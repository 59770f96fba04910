// --iface: fwmark policy routing for the tree's direct egress. See uplink.hpp.
#include "rootful/uplink.hpp"

#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <fmt/format.h>

namespace cf::rootful {
namespace {

bool is_default(const netlink::Route& r) { return r.prefix == 0; }

}  // namespace

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

Result<std::vector<netlink::Route>> iface_routes(const std::string& iface, uint32_t table,
                                                 bool ipv6) {
  const unsigned index = ::if_nametoindex(iface.c_str());
  if (index == 0) return errno_error(fmt::format("rootful: --iface {}", iface));
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();
  std::vector<netlink::Route> all;
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    auto ro = nl->routes(family);
    if (!ro) return ro.error();
    all.insert(all.end(), ro->begin(), ro->end());
  }
  return pin_routes(all, int(index), table, ipv6);
}

}  // namespace cf::rootful
