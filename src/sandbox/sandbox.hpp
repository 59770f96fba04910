// The rootless sandbox: a user + mount + PID namespace tree whose pid 1 is a
// small init stub. The stub builds the tree's view (private mount
// propagation, resolv.conf/hosts overlays, a fresh /proc), locks it by
// entering an inner user + mount + network namespace, sets up lo and tap0
// through netlink, hands the tap fd to the parent over SCM_RIGHTS, waits for
// "engine ready", then forks + execs the command (as the caller's uid, or as
// root with as_root) and reaps orphans until it exits.
// docs/sandbox.md lists the privilege steps in order and the fail-closed
// argument.
//
// Call order in the parent (the thread that calls launch must live as long as
// the tree: the stub's parent-death signal follows that thread):
//   launch (while still single-threaded) -> engine setup on tree.tap ->
//   prctl(PR_SET_DUMPABLE, 0) -> release -> loop { pidfd readable ->
//   try_reap; signals -> forward_signal } -> Tree destroyed.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/net_plan.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::sandbox {

// Contents for the bind-mounted overlays; empty optional = leave as is.
struct Overlays {
  std::optional<std::string> resolv_conf;
  std::optional<std::string> hosts;
};

// Everything launch needs; the app builds it from the Config, and the
// sandbox sees no other setting.
struct Options {
  std::vector<std::string> command;  // argv of the command; must not be empty
  NetPlan plan;
  Overlays overlays;
  // Run the command as root of the tree's user namespace, with every id of
  // the outer map (--as-root). Default: the caller's own uid and gid.
  bool as_root = false;
  // The rootful backend: instead of tap0, the tree's network is a link the
  // caller moves into the tree's network namespace (the process init_pid's)
  // under the name kLinkName, once that namespace exists; the stub then
  // configures it with the plan's addresses and routes, and Tree::tap stays
  // empty. A failure stops the launch with the Error returned.
  std::function<Status(pid_t init_pid)> attach_link = nullptr;
};

// The name of the tree's link on the rootful backend.
inline constexpr const char* kLinkName = "eth0";

// How the tree's user ids were mapped (docs/sandbox.md, "Id maps").
enum class IdMap : uint8_t {
  Identity,  // caller is root: every id the caller's namespace maps, to itself
  SubIds,    // newuidmap/newgidmap: 0 -> caller, 1.. -> /etc/subuid, /etc/subgid
  Single,    // written directly: 0 -> caller's uid and gid (setgroups denied)
  UidOnly,   // gid_map could not be written: gids show as the overflow gid
};
const char* name(IdMap m);  // "identity" | "subids" | "single" | "uid-only"

// One running tree. Move-only; destroying a Tree whose stub has not been
// reaped kills the stub (and with it the whole PID namespace) and reaps it.
struct Tree {
  pid_t init_pid = -1;  // the stub, as the parent's PID namespace sees it
  UniqueFd pidfd;       // pidfd of the init stub (readable when it exits)
  UniqueFd tap;         // tap0, O_NONBLOCK, owned by the engine (rootless only)
  // tap0 was made with IFF_VNET_HDR and the checksum and TCP segmentation
  // offloads (kernel::Feature::TapOffload): every frame read or written on
  // `tap` starts with a struct virtio_net_hdr (docs/design.md, "Offloads").
  bool tap_vnet_hdr = false;
  UniqueFd control;     // parent end of the stub's control socket
  IdMap id_map = IdMap::Single;
  std::optional<int> exit_code;  // set by try_reap once the stub is reaped

  Tree() = default;
  Tree(Tree&& o) noexcept;
  Tree& operator=(Tree&& o) noexcept;
  ~Tree();
};

// Creates the namespaces and the stub, maps ids, and returns once the stub has
// configured tap0 and sent its fd. Nothing is written to disk (the overlays
// live in a tmpfs of the tree); on failure nothing is left behind. The Error names its step (e.g. "netlink: RTM_NEWADDR on tap0:
// Operation not permitted").
Result<Tree> launch(const Options& o);

// Tells the stub the engine is ready: it then runs the command.
bool release(Tree& t);

// Forwards a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) to the command (the
// stub sends it to the command's process, not to the whole tree). Do not
// forward signals the terminal generated (signalfd_siginfo.ssi_code ==
// SI_KERNEL): the terminal sent those to the whole foreground process group,
// which the tree's processes are members of, so they already got it.
void forward_signal(const Tree& t, int sig);

// Reaps the stub (non-blocking) and maps its status to childflow's exit code
// (docs/cli.md, "Exit codes"): the command's exit code, 128 + N when it was killed by
// signal N, 126/127 when it could not be executed/found. nullopt while it
// still runs. Once reaped, returns the same code again.
std::optional<int> try_reap(Tree& t);

}  // namespace cf::sandbox
