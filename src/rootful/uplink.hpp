// --iface IFACE: the tree's direct egress pinned to one host interface.
//
// Theory of operation. The run's nftables table marks every packet that
// arrives from the tree's veth (`meta mark set M` in a prerouting chain at
// the mangle priority, before the routing decision), and one policy routing
// rule per address family sends marked packets to a routing table of the
// run's own:
//
//   ip rule:   pref P  fwmark M  lookup T        (IPv4 and IPv6)
//   table T:   a copy of the main table's routes through IFACE (its default
//              route(s), its connected and other routes, with their
//              gateways, metrics and preferred sources); for a family in
//              which IFACE has no default route, `unreachable default`, so
//              the tree's traffic of that family fails rather than leaving
//              through another interface.
//
// Masquerade then uses IFACE's address, since that is where the packet
// leaves. Traffic to the host's own addresses (the DNS forwarder on the
// gateway addresses included) is unaffected: the `local` table's rule (pref
// 0) comes first. The DNS forwarder's upstream sockets carry the same mark
// (SO_MARK), so the tree's name lookups leave through IFACE too, and so do
// the TPROXY relay's connections to the proxy (--proxy): the relay's own
// mark on the TCP it intercepts wins, since its chain runs after ours.
//
// M == T and P are chosen, recorded, created and removed by routing.hpp,
// which TPROXY (--proxy) shares: T from 0x43460000-0x4346ffff ("CF"), P
// before every host rule (a VPN's, say), under the run lock. The record
// names them before anything is created; cleanup deletes exactly the rules
// (P, M, T) and every route in T, nothing else.
//
// Replies come back to the host through IFACE and are routed to the tree by
// the main table (its veth's connected route): no mark needed. A host with
// strict reverse-path filtering on IFACE (rp_filter=1) may drop those replies
// when its main table routes the remote peer through another interface;
// docs/rootful.md says what to set.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "netlink/netlink.hpp"

namespace cf::rootful {

// What table T gets: the main table's routes through `ifindex` for each
// family, and `unreachable default` for a family without a default route
// there (pure).
std::vector<netlink::Route> pin_routes(const std::vector<netlink::Route>& routes, int ifindex,
                                       uint32_t table, bool ipv6);

// Checked before anything is created (a bad --iface is a usage error): the
// interface exists and has a default route of at least one family in the
// main table. The Error says what to do.
Status check_iface(const std::string& iface);

// What table T gets now, for `iface`: pin_routes of the main table's
// current routes.
Result<std::vector<netlink::Route>> iface_routes(const std::string& iface, uint32_t table,
                                                 bool ipv6);

}  // namespace cf::rootful
