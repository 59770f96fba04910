// The doctor's checks (docs/doctor-schema.md). Each check reads the host only
// through Host (host.hpp) and yields one Check: a stable key, a label, a
// status (ok / warning / fatal), a detail that says what was found and, when
// not ok, a hint that says what to do. docs/doctor-schema.md lists every key.
//
// Checks fall in two sections (the two arrays of the JSON report):
//   Capability  what the kernel and the installed tools allow (namespaces,
//               quotas, switches, trials, /dev/net/tun, ICMP, nftables, TPROXY,
//               packet sockets);
//   Preflight   this user, this configuration and this host's current state
//               (sub-id ranges, resolver, default routes, root, forwarding
//               sysctls, leftovers of killed runs).
//
// diagnose() runs the backend's checks in a fixed order; the order puts the
// specific checks (quota, distribution switches) before the generic trial so
// that the first fatal one -- the one preflight reports -- has the most
// precise hint.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "doctor/host.hpp"

namespace cf::doctor {

enum class Status : uint8_t { Ok, Warning, Fatal };
enum class Section : uint8_t { Capability, Preflight };
enum class Overall : uint8_t { Ready, ReadyWithWarnings, Blocked };

const char* name(Status s);   // "ok" | "warning" | "fatal"
const char* name(Overall o);  // "ready" | "ready with warnings" | "blocked"

struct Check {
  std::string key;
  std::string label;
  Section section = Section::Capability;
  Status status = Status::Ok;
  std::string detail;
  std::string hint;  // empty when ok
};

struct Report {
  Backend backend = Backend::RootlessInternal;
  uid_t uid = 0;
  uid_t euid = 0;
  std::vector<Check> checks;
  Overall overall() const;
};

// What diagnose() runs:
//   All        everything (--doctor);
//   FatalOnly  only the checks that can be fatal for this configuration,
//              trials included: what explains a launch that failed;
//   Preflight  FatalOnly without the user namespace trial, which forks a
//              child that creates namespaces: the checks run before every
//              run (fast and silent). The launch itself is that trial; when
//              it fails, FatalOnly says why (doctor.hpp, explain_launch).
enum class Scope : uint8_t { All, FatalOnly, Preflight };

Report diagnose(Host& host, const Config& c, Scope scope = Scope::All);

// --- individual checks (exposed for the unit tests) ------------------------

// Rootless-internal.
Check check_namespace(Host& h, const std::string& ns);  // "user" | "net" | "mnt" | "pid"
Check check_max_user_namespaces(Host& h);
Check check_unprivileged_userns_clone(Host& h, const Identity& id);
Check check_apparmor_restrict_userns(Host& h, const Identity& id);
Check check_userns_trial(Host& h);
Check check_confine_trial(Host& h);
Check check_newuidmap(Host& h, const Identity& id);
Check check_subid(Host& h, const Identity& id, bool gid_ranges);  // /etc/subuid or /etc/subgid
Check check_tun(Host& h);
Check check_ping_group_range(Host& h, const Identity& id);
// A kernel feature with a fallback path (always ok: both paths are correct;
// the detail says which one runs).
Check check_kernel_feature(Host& h, kernel::Feature f);

// Both backends.
Check check_resolver(Host& h, const Config& c);
Check check_ipv4_route(Host& h);
Check check_ipv6_route(Host& h);
Check check_packet_socket(Host& h, const Identity& id, const Config& c);

// Rootful.
Check check_root(const Identity& id);
Check check_nftables(Host& h, const Identity& id);
Check check_forwarding(Host& h, const Identity& id, bool ipv6);
Check check_tproxy(Host& h, const Identity& id, const Config& c);
Check check_conntrack_events(Host& h, const Identity& id, const Config& c);
Check check_policy_routing(Host& h, const Identity& id, const Config& c);
Check check_iface(Host& h, const std::string& iface);
Check check_leftover_state(Host& h, const Identity& id);

// Which ICMP echo path the engine will use (docs/doctor-schema.md,
// `ping_group_range`; src/engine/icmp.cpp has the engine's side).
// The engine (engine/icmp.cpp) relays echo through unprivileged ping sockets
// only; where the kernel refuses them -- for root too, ping_group_range
// applies to every uid -- it answers the tree with administratively
// prohibited. A raw-socket path would need CAP_NET_RAW and an engine change;
// add it here when the engine gains it.
enum class IcmpPath : uint8_t { PingSocket, AdminProhibited };
IcmpPath icmp_path(Host& h, const Identity& id);
const char* describe(IcmpPath p);

// Prefixes of what a rootful run creates; leftovers match these.
inline constexpr const char* kNftTablePrefix = "childflow";
inline constexpr const char* kLinkPrefix = "cf";
inline constexpr const char* kStateDir = "/run/childflow";

}  // namespace cf::doctor
