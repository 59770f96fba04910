// Policy routing through libnl-route-3: the `ip rule` and per-table route
// requests of the rootful backend (TPROXY's `fwmark M lookup T` and
// `local default dev lo table T`, IPv4 and IPv6), and a dump of the rules
// and routing tables the host already uses, so that a run picks a mark and a
// table of its own. No `ip` binary is involved.
//
// Like netlink.hpp: each call opens a NETLINK_ROUTE socket in the calling
// thread's network namespace and does one synchronous request (or dump);
// errors name the request ("netlink: RTM_NEWRULE fwmark 0x63660001 table
// 1667629057 (IPv6): File exists").
#pragma once
#include <cstdint>
#include <vector>

#include "common/result.hpp"

namespace cf::netlink {

// One rule of the host's (FRA_* of RTM_GETRULE), as far as choosing ours
// needs: its priority, its fwmark selector (mark and mask, both 0 for
// none) and the table it looks up (0 for another action).
struct RuleInfo {
  int family = 0;  // AF_INET or AF_INET6
  uint32_t priority = 0, mark = 0, mask = 0, table = 0;
};

// What the host uses now: every rule, and every table that holds a route or
// that a rule looks up.
struct RoutingInUse {
  std::vector<RuleInfo> rules;
  std::vector<uint32_t> tables;
};
Result<RoutingInUse> routing_in_use();

// `ip rule add fwmark mark/0xffffffff lookup table priority prio` for
// AF_INET or AF_INET6 (NLM_F_EXCL: an identical rule is an error).
Status add_fwmark_rule(int family, uint32_t prio, uint32_t mark, uint32_t table);
// Deletes exactly that rule; a rule that is not there is no error.
Status delete_fwmark_rule(int family, uint32_t prio, uint32_t mark, uint32_t table);
// `ip route add local default dev lo table table` (0.0.0.0/0 or ::/0).
Status add_local_default_route(int family, uint32_t table);
// Deletes exactly that route; one that is not there is no error.
Status delete_local_default_route(int family, uint32_t table);

}  // namespace cf::netlink
