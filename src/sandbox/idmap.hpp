// Id maps for the tree's user namespace, written by the parent (the process
// that owns the namespace's parent), with fallbacks. Order (docs/sandbox.md):
//
//   1. caller is root: Identity, every extent of /proc/self/uid_map (gid_map)
//      mapped to itself, written directly (no setgroups restriction);
//   2. newuidmap/newgidmap in PATH and ranges for this user in /etc/subuid and
//      /etc/subgid: SubIds, "0 <uid> 1" plus "1 <start> <count>" (the tree
//      gets 65536-ish ids, setgroups stays allowed: package managers, su);
//   3. Single, written directly: uid_map "0 <uid> 1", setgroups "deny",
//      gid_map "0 <gid> 1" (needs no helper and no configuration);
//   4. UidOnly: uid_map as in 3 when gid_map could not be written.
//
// A failed step is remembered; when every step fails the error names each
// step's cause, e.g. "sandbox: cannot map user ids: uid_map "0 1000 1":
// Operation not permitted; newuidmap: not found in PATH".
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.hpp"
#include "sandbox/sandbox.hpp"

namespace cf::sandbox::idmap {

struct SubIdRange {
  uint64_t start = 0;
  uint64_t count = 0;
  friend bool operator==(const SubIdRange&, const SubIdRange&) = default;
};

// The first range of /etc/subuid-format text ("name-or-id:start:count" lines)
// that belongs to `user` or to the numeric `id`; nullopt if none.
std::optional<SubIdRange> find_subid_range(std::string_view text, std::string_view user,
                                           uint32_t id);

// "a b c" lines that map every extent of a /proc/<pid>/uid_map text to itself.
std::string identity_map(std::string_view proc_map_text);

// Writes the maps of process `pid` (a fresh user namespace's first process).
// `want_range`: the run needs every id the caller may map (--as-root), so
// step 2 is tried. A default run needs only the caller's own id (the tree
// is the caller: "Two user namespaces"), so an unprivileged caller goes
// straight to step 3, with no helper to spawn: start-up time.
Result<IdMap> map_ids(pid_t pid, bool want_range);

// The tree's inner user namespace (docs/sandbox.md, "Two user namespaces")
// maps ids of the outer one, whose map text (as /proc/self/uid_map reads in
// the outer namespace) is `outer_map_text`; the caller's own id is outer id 0.
// With `whole` (--as-root, or a root caller): every outer extent to itself.
// Otherwise "<caller_id> 0 1": inside, the caller has its own id. Empty when
// the outer map is empty (a gid_map that could not be written).
std::string inner_map(bool whole, uint32_t caller_id, std::string_view outer_map_text);

// The lowest and highest inside id of a map text, the highest capped at
// 2^31 - 1 (the bound of net.ipv4.ping_group_range); nullopt for no extent.
std::optional<std::pair<uint64_t, uint64_t>> inside_range(std::string_view map_text);

}  // namespace cf::sandbox::idmap
