// The nftables table of one rootful run, as text: a pure function from the
// run's names, addresses and policy settings to what libnftables loads.
//
// Theory of operation. Every run owns exactly one `inet` table, named after
// the run (`childflow_<run id>`), and nothing else in nftables. The table is
// loaded in one transaction (`add table`, `delete table`, then the whole
// table: a stale table of the same name is replaced, and either all of it is
// in place or none), before the veth exists, so the tree's first packet is
// already judged; it is deleted in one command at the end. Chains:
//
//   forward (hook forward)   from the tree's link: jump judge; towards the
//                            tree: only replies (ct established,related);
//   input (hook input)       from the tree's link: neighbour discovery and
//                            DNS to the gateway addresses (the forwarder)
//                            are accepted; anything else to the gateway
//                            addresses is rejected (the host's own services
//                            stay out of reach, as in rootless); traffic to
//                            the host's other addresses is judged like
//                            forwarded traffic;
//   judge                    anti-spoofing (only the tree's own addresses),
//                            replies, then the policy rules in
//                            docs/policy.md's order: offline, metadata,
//                            private, deny-cidr, deny-domain-exact,
//                            deny-domain, allow-cidr, allow-domain,
//                            default-deny; the rest is accepted. The
//                            domain rules match the sets of addresses the
//                            DNS forwarder learnt for the rules' names
//                            (domain_sets.hpp), with the TTL's timeouts;
//   deny_<reason>            counts the packet in the named counter
//                            <reason>, remembers (address, protocol, port)
//                            in a dynamic set so that the run can report
//                            each denied destination once, and rejects it:
//                            TCP with a reset, everything else with ICMP
//                            administratively prohibited;
//   postrouting (nat)        the tree's addresses masqueraded behind the
//                            host's, except towards the tree's link; to
//                            the run's own port range with wire-egress;
//   egress_mark (prerouting, with --iface only)
//                            marks the tree's packets with the pin's fwmark
//                            before the routing decision (uplink.hpp).
//
//   prerouting (--proxy)     from the tree's link, TCP other than DNS and
//                            other than to the gateway addresses: marked
//                            and handed by TPROXY to the relay's listener
//                            (relay.hpp) on the gateway address; dropped if
//                            no listener takes it (fail closed, never
//                            direct). `judge` accepts marked packets: the
//                            relay judges them with the Policy, as the
//                            rootless engine judges proxied flows.
//   --proxy-only             the last rule of `judge` (rule 10 of
//                            docs/policy.md): what reaches it was not
//                            carried by the proxy (UDP, ICMP, DNS to other
//                            addresses).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/addr.hpp"
#include "common/net_plan.hpp"

namespace cf::rootful {

// What the table is made from; the backend fills it from the Config.
struct RulesetSpec {
  std::string table;  // "childflow_<run>"
  std::string link;   // the host end of the veth
  NetPlan plan;
  bool offline = false;
  bool block_metadata = false;
  bool block_private = false;
  bool default_deny = false;
  std::vector<Cidr> deny_cidrs, allow_cidrs;
  uint32_t egress_mark = 0;  // --iface: the pin's fwmark (0: none)
  // Domain rules exist: the domain sets and their rules (domain_sets.hpp).
  bool domains = false;
  bool proxy_only = false;
  // --proxy (not --offline): TPROXY's mark (routing.hpp) and the relay's
  // listening ports on gw4 and gw6; mark 0 for none.
  struct Tproxy {
    uint32_t mark = 0;
    uint16_t port4 = 0, port6 = 0;
  } tproxy;
  // --proxy-dns remote (with tproxy): the synthetic ranges (engine/synth.hpp)
  // lead only to the relay (TCP, diverted); anything else to them, and DNS
  // to any address but the gateway's, is rejected.
  bool synthetic = false;
  // Masquerade to these ports only (inclusive; --capture-point wire-egress).
  std::optional<std::pair<uint16_t, uint16_t>> masquerade_ports;
};

// The reasons, in rule order; each has a named counter and a deny chain.
inline constexpr const char* kReasons[] = {"offline", "metadata", "private", "deny_cidr",
                                           "default_deny", "proxy_only"};

// The reasons of the domain rules, present only with RulesetSpec::domains.
inline constexpr const char* kDomainReasons[] = {"deny_domain_exact", "deny_domain"};

// The names of the dynamic sets of denied destinations.
inline constexpr const char* kDeniedSets[] = {"denied4", "denied4p", "denied6", "denied6p"};

// The whole transaction that loads the table.
std::string ruleset(const RulesetSpec& s);

// The command that deletes the table (and everything in it).
std::string delete_table(const std::string& table);

}  // namespace cf::rootful
