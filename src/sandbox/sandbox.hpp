// The rootless sandbox: a user + network + mount + PID namespace tree whose
// pid 1 is a small init stub. The stub builds the tree's view (private mount
// propagation, resolv.conf/hosts overlays, lo and tap0 through netlink), hands
// the tap fd to the parent over SCM_RIGHTS, waits for "engine ready", then
// forks + execs the command and reaps orphans until it exits.
#pragma once
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include "common/addr.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"

namespace cf::sandbox {

using Mac = std::array<uint8_t, 6>;

// Addresses of one run, chosen by the parent (SPEC section 3).
struct NetPlan {
  IpAddr child4, gw4;  // inside a /30
  uint8_t prefix4 = 30;
  IpAddr child6, gw6;  // inside a /64
  uint8_t prefix6 = 64;
  Mac child_mac{};  // tap0's address inside the tree
  Mac gw_mac{};     // the engine's address (static neighbour entry)
  uint32_t mtu = 65520;
  bool ipv6 = true;
};

// Contents for the bind-mounted overlays; empty optional = leave as is.
struct Overlays {
  std::optional<std::string> resolv_conf;
  std::optional<std::string> hosts;
};

struct Tree {
  pid_t init_pid = -1;
  UniqueFd pidfd;    // pidfd of the init stub (readable when it exits)
  UniqueFd tap;      // tap0, non-blocking, owned by the engine
  UniqueFd control;  // parent end of the stub's control socket
};

// Creates the namespaces and the stub, maps ids, and returns once the stub has
// configured tap0 and sent its fd. Error: "phase: cause" (e.g.
// "netlink: RTM_NEWADDR on tap0: Operation not permitted").
std::variant<Tree, std::string> launch(const Config& c, const NetPlan& plan,
                                       const Overlays& overlays);

// Tells the stub the engine is ready: it then runs the command.
bool release(Tree& t);

// Forwards a signal (SIGINT, SIGTERM, SIGHUP, SIGQUIT) to the tree.
void forward_signal(const Tree& t, int sig);

// Reaps the stub (non-blocking) and maps its status to childflow's exit code
// (SPEC section 1); nullopt while it still runs.
std::optional<int> try_reap(Tree& t);

}  // namespace cf::sandbox
