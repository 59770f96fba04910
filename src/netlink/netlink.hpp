// Links, addresses, routes and neighbours through libnl-route-3: the few
// rtnetlink requests the sandbox needs to give the tree its view of the
// network (lo up; tap0 with a MAC, an MTU, addresses, default routes and
// static neighbour entries for the gateway), and the rootful backend's veth
// pair (created with one end in the tree's namespace; looked up and deleted
// by name at cleanup). No `ip` binary is involved.
//
// Routes and rules (RTM_*ROUTE, RTM_*RULE) are the one policy routing layer
// of the rootful backend (rootful/routing.hpp): the dumps from which a run
// chooses its mark, table and rule priority, and the fwmark rules and the
// routes of its table, for --iface (a copy of an interface's routes) and
// --proxy (TPROXY's `local default dev lo`).
//
// Every request acts on the network namespace of the calling thread at the
// time the socket was opened. Each call is one synchronous request/ack round
// trip; nothing here is on a packet path.
//
// Errors are returned, never thrown, as an Error whose step names the request
// and the interface and whose message is the cause; together
// "netlink: RTM_NEWADDR on tap0: Operation not permitted".
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/addr.hpp"
#include "common/result.hpp"

struct nl_sock;

namespace cf::netlink {

// A link as the requests below name it.
struct Link {
  std::string name;
  int index = 0;
};

// A route with at most one next hop, as the dumps list them and the rootful
// backend adds and deletes them.
struct Route {
  uint8_t family = 0;  // AF_INET or AF_INET6
  uint32_t table = 0;
  IpAddr dst;          // the network (all zero and prefix 0: default)
  uint8_t prefix = 0;
  uint8_t type = 0;    // RTN_UNICAST, RTN_UNREACHABLE, ...
  uint8_t scope = 0;   // RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, ...
  uint8_t protocol = 0;
  uint32_t metric = 0;
  int ifindex = 0;     // 0: none (unreachable)
  std::optional<IpAddr> gateway, pref_src;
};

// A policy routing rule: "from all [fwmark M/mask] lookup table" at pref.
struct Rule {
  uint8_t family = 0;
  uint32_t pref = 0;
  uint32_t table = 0;
  std::optional<uint32_t> fwmark;  // with mask 0xffffffff when we add it
  uint32_t mask = 0xffffffff;
};

// A connected NETLINK_ROUTE socket (close-on-exec).
class Socket {
 public:
  static Result<Socket> open();

  // Looks a link up by name: "netlink: no link tap0: Object not found".
  Result<Link> find_link(std::string_view name);

  // RTM_NEWLINK: sets the link's hardware address and MTU (the link must be
  // down to change a tap's MAC).
  Status set_mac_and_mtu(const Link& link, const Mac& mac, uint32_t mtu);
  // RTM_NEWLINK: sets IFF_UP.
  Status set_up(const Link& link);
  // RTM_NEWADDR: adds addr/prefix; nodad adds IFA_F_NODAD (IPv6: usable at
  // once, no tentative state).
  Status add_address(const Link& link, const IpAddr& addr, uint8_t prefix, bool nodad);
  // RTM_NEWROUTE: default route (0.0.0.0/0 or ::/0) via gateway on link, main
  // table, protocol static.
  Status add_default_route(const Link& link, const IpAddr& gateway);
  // RTM_NEWNEIGH: NUD_PERMANENT entry addr -> mac on link (replaces any entry).
  Status add_permanent_neighbour(const Link& link, const IpAddr& addr, const Mac& mac);

  // RTM_NEWLINK (NLM_F_CREATE | NLM_F_EXCL): a veth pair `name` (here, with
  // `mac`) and `peer` (with `peer_mac`), created directly in the network
  // namespace of process `peer_pid`; both ends with `mtu`, down.
  Status add_veth(std::string_view name, const Mac& mac, std::string_view peer,
                  const Mac& peer_mac, pid_t peer_pid, uint32_t mtu);
  // The kind of link `name` ("veth", "" for a link without one), or nullopt
  // when there is no such link.
  Result<std::optional<std::string>> link_kind(std::string_view name);
  // RTM_DELLINK by name (a veth takes its peer with it).
  Status delete_link(std::string_view name);

  // RTM_GETROUTE dump: every route of `family` in every table. A multipath
  // route is listed once per next hop.
  Result<std::vector<Route>> routes(uint8_t family);
  // RTM_NEWROUTE (NLM_F_CREATE | NLM_F_EXCL) and RTM_DELROUTE of exactly r.
  Status add_route(const Route& r);
  Status delete_route(const Route& r);
  // RTM_GETRULE dump, RTM_NEWRULE (exclusive), RTM_DELRULE of exactly r.
  Result<std::vector<Rule>> rules(uint8_t family);
  Status add_rule(const Rule& r);
  Status delete_rule(const Rule& r);

 private:
  struct Free {
    void operator()(nl_sock* s) const;
  };
  explicit Socket(nl_sock* s) : sock_(s) {}
  std::unique_ptr<nl_sock, Free> sock_;
};

// Whether `iface` exists and has a default route (either family) in the
// main table, which --iface needs. The Error's message says which is missing
// and what to do ("eth9: no such interface ...").
Status uplink_ready(const std::string& iface);

}  // namespace cf::netlink
