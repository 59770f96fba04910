// The policy routing of a rootful run, for both features that need it: one
// chooser of the firewall mark, routing table and rule priority, and one way
// to add and remove the rules and routes made from them.
//
// Theory of operation. --iface (uplink.hpp) and --proxy's TPROXY (ruleset.hpp,
// chain `divert`) both mark packets in the run's nftables table and send the
// marked ones to a routing table of the run's own:
//     ip rule:  priority P  fwmark V/0xffffffff  lookup V  (IPv4; IPv6 too
//                                                           when the run has it)
//     table V:  --iface: a copy of the interface's main-table routes
//                        (uplink.hpp);
//               --proxy: `local default dev lo`, so that packets TPROXY
//                        handed to the relay's socket are delivered locally
//                        although their destination is not a local address.
// A run with both has two such pairs (two values, two priorities).
//
// Choosing V (mark == table) and P, per run, under the state lock
// (state.hpp), so concurrent runs never choose alike and no host rule is
// ever touched:
//   - V comes from the purpose's range, starting at a random point:
//     0x43460000-0x4346ffff ("CF") for --iface, 0x63660001-0x6366ffff ("cf")
//     for --proxy, so a record's values say whose they are. V is taken only
//     if no table in use is V (a route is in it, or a rule looks it up) and
//     no fwmark rule matches V (V & mask == mark), so no rule of another's
//     sees our packets as its own;
//   - P is one below the smallest non-zero priority of every rule in either
//     family (32765 on a host with only the default rules): our rule comes
//     before every host rule that could send marked packets elsewhere (a
//     VPN's, say) and shares its priority with none. Both features want
//     exactly that, so they share the policy. No room (a rule at priority
//     1, just after the `local` table's 0) is an error;
//   - "in use" includes what every run's record reserves (its values and
//     priorities, this run's own included), since a record is written
//     before the rules it names exist: TPROXY's are added after the lock is
//     released, and a run with --iface and --proxy chooses twice.
// The choice is written in the run's record before anything is created, so
// teardown and `childflow --cleanup` delete exactly the rules (priority, V,
// V) of each family and every route in table V, where they are still there.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "netlink/netlink.hpp"
#include "rootful/state.hpp"

namespace cf::rootful {

// The values one purpose chooses from (inclusive).
struct Range {
  uint32_t first = 0, last = 0;
  bool contains(uint32_t v) const { return v >= first && v <= last; }
};
inline constexpr Range kIfaceRange{0x43460000, 0x4346ffff};   // --iface
inline constexpr Range kTproxyRange{0x63660001, 0x6366ffff};  // --proxy

// What the host's policy routing uses: every rule of both families, and
// every table that holds a route; plus reservations (reserve()).
struct RoutingInUse {
  std::vector<netlink::Rule> rules;
  std::vector<uint32_t> tables;
};

// One choice: the mark, which is also the table, and the rule priority.
struct RoutingChoice {
  uint32_t value = 0, priority = 0;
};

// Adds what a record has chosen (--iface's and --proxy's values and
// priorities) to `in_use`, as rules of its own (pure).
void reserve(RoutingInUse& in_use, const state::Record& r);

// The choice above (pure; `seed` picks the starting point). nullopt when
// every value of `range` is taken or there is no priority left.
std::optional<RoutingChoice> choose_routing(const RoutingInUse& in_use, Range range,
                                            uint32_t seed);

// Under the state lock: the host's rules and routes, reserved by every
// record and by `self` (this run's record so far), and the choice from
// `range`. `step` names the feature in the Error.
Result<RoutingChoice> plan_routing(Range range, const state::Record& self,
                                   const std::string& step);

// TPROXY's table: `local default dev lo` in table `table`, IPv4 and, with
// `ipv6`, IPv6 (pure; `lo` is the loopback's ifindex).
std::vector<netlink::Route> local_delivery_routes(uint32_t table, int lo, bool ipv6);

// Adds `routes` (connected ones first, so a gateway is reachable when its
// route is added), then the rule of IPv4 and, with `ipv6`, IPv6. On error,
// what was added stays for remove_routing (the record names it).
Status add_routing(const RoutingChoice& c, const std::vector<netlink::Route>& routes, bool ipv6);
// Removes the rules (priority, fwmark `value`, table `value`) of IPv4 at
// `prio4` and IPv6 at `prio6` (0: none of that family), then every route in
// table `value`, where still there; the errors as one text, empty when none.
std::string remove_routing(uint32_t value, uint32_t prio4, uint32_t prio6);

}  // namespace cf::rootful
