// The policy routing of a rootful run with --proxy: which firewall mark,
// routing table and rule priority its TPROXY interception uses (a pure
// choice, from what the host already uses), and the rules and routes made
// from them.
//
// Theory of operation. TPROXY (ruleset.hpp, chain `prerouting`) hands each
// TCP packet of the tree to the relay's listening socket and marks it; the
// kernel must then deliver the packet locally although its destination is
// not a local address, which policy routing does:
//     ip rule add fwmark M/0xffffffff lookup T priority P   (IPv4 and IPv6)
//     ip route add local default dev lo table T             (IPv4 and IPv6)
// M and T are chosen per run, so concurrent runs never share them and no
// host rule is ever touched:
//   - M and T are one value V from 0x63660001..0x6366ffff ("cf" and 16 bits),
//     starting at a random point;
//   - V is taken only if no routing table the host uses (with a route, or
//     looked up by a rule) is V, and no fwmark rule of the host's matches V
//     (value == V & mask), so no rule of another's sees our packets as its;
//   - P is the lowest priority from kPriorityFirst on that no rule uses, in
//     either family, so our rule has a priority of its own, ahead of the
//     main table (32766) and of the usual policy routing of VPNs.
// The choice is made under the state lock (state.hpp) and written in the
// run's record before the rules exist, so `childflow --cleanup` deletes
// exactly those (rule: priority, mark, table; route: table) after a SIGKILL.
#pragma once
#include <cstdint>
#include <optional>

#include "common/result.hpp"
#include "netlink/policy_routing.hpp"

namespace cf::rootful {

struct TproxyRouting {
  uint32_t mark = 0, table = 0, priority = 0;  // all 0: none
};

inline constexpr uint32_t kRoutingFirst = 0x63660001, kRoutingLast = 0x6366ffff;
inline constexpr uint32_t kPriorityFirst = 100, kPriorityLast = 9999;

// The choice above (pure; `seed` picks the starting point). nullopt when
// every value or priority is taken.
std::optional<TproxyRouting> choose_routing(const netlink::RoutingInUse& in_use, uint32_t seed);

// Adds the two rules and the two routes (IPv6 ones when `ipv6`); on failure
// removes what it added. Undone by remove_routing.
Status add_routing(const TproxyRouting& r, bool ipv6);
// Removes exactly those rules and routes where they are still there; the
// errors as one text, empty when none.
std::string remove_routing(const TproxyRouting& r);

}  // namespace cf::rootful
