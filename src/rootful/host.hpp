// The host side of one rootful run: what it creates and changes on the host,
// in order, and undoes, in reverse order.
//
// Theory of operation (docs/rootful.md has the same list for users).
//   setup     (as root, in the caller's network namespace; signals are
//              already blocked by the caller, so none interrupts it)
//     1. libnftables is opened (dlopen) before anything is created;
//     2. under /run/childflow/lock: runs whose process is gone are named in
//        a warning (`childflow --cleanup` removes their state); this run's
//        record is written (state.hpp) before anything it describes exists;
//        forwarding is saved (first run of the namespace) and enabled;
//        with --iface and with --proxy, a mark == table and a rule
//        priority each are chosen (routing.hpp; before the record is
//        written, which names them); the pin's routes and rules are
//        created (uplink.hpp);
//     3. the run's nftables table is loaded in one transaction
//        (ruleset.hpp), before the link exists, so the tree's first packet
//        is judged; with --proxy, then the policy routing (two rules, two
//        routes) that delivers TPROXY's marked packets locally;
//   attach    (called by the sandbox once the tree's network namespace exists)
//     4. the veth pair: cf<run> here, eth0 in the tree (netlink); the host
//        end's IPv6 sysctls (no DAD, no router advertisements), addresses
//        gw4/30 and gw6/64, up;
//   denied    after the tree ended: the destinations the table rejected
//             (its dynamic sets), for the flow log and the summary;
//   teardown  (the destructor; also after a failed setup, and after
//              SIGINT/SIGTERM, which the caller turns into the tree's end)
//     5. TPROXY's policy routing, where still there (exactly the recorded
//        rules and the routes of its table); the link is deleted if it is
//        still there and still a veth;
//     6. the table is deleted if it is still there; the pin's rules, then
//        the routes in its table (routing.hpp, as in 5);
//     7. under the lock: the record is removed, and the forwarding sysctls
//        are put back when no other run of this namespace is left.
// A SIGKILL skips teardown: the tree dies with childflow (its init has
// PR_SET_PDEATHSIG), which takes the veth with its namespace; the table,
// the record and forwarding stay until `childflow --cleanup` (cleanup()).
#pragma once
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/addr.hpp"
#include "common/result.hpp"
#include "policy/policy.hpp"
#include "rootful/ruleset.hpp"
#include "rootful/state.hpp"

namespace cf::rootful {

// A destination the table rejected (one element of a denied set).
struct Denied {
  policy::Proto proto = policy::Proto::Tcp;
  IpAddr ip;
  std::optional<uint16_t> port;
};

// Parses `nft list set` output into destinations (pure; unit-tested).
std::vector<Denied> parse_denied(const std::string& listing);

class Host {
 public:
  // Steps 1-3. `spec` carries the policy and the plan; its table and link
  // names (TPROXY's mark, when spec.tproxy.port4 says --proxy, and the
  // pin's mark) are filled in here. With `iface` (--iface, checked already
  // by check_iface), step 2 also chooses, records and creates the pin's
  // routing table and rules (routing.hpp, uplink.hpp). Warnings (killed runs) go to
  // stderr unless quiet.
  static Result<std::unique_ptr<Host>> setup(RulesetSpec spec,
                                             const std::optional<std::string>& iface, bool quiet);
  ~Host();  // steps 5-7
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  // Step 4, for the sandbox (sandbox::Options::attach_link).
  Status attach(pid_t init_pid);
  // What the table rejected; empty when it cannot be read.
  std::vector<Denied> denied();
  const std::string& run() const { return record_.run; }
  const std::string& link() const { return record_.link; }
  const std::string& table() const { return record_.table; }
  // The pin's fwmark (--iface), for the forwarder's upstream sockets; 0: none.
  uint32_t egress_mark() const { return record_.pin_mark; }
  // TPROXY's mark (--proxy), also the ct mark of the connections it diverts.
  uint32_t tproxy_mark() const { return record_.mark; }

 private:
  Host() = default;
  void teardown();
  RulesetSpec spec_;
  state::Record record_;
  bool recorded_ = false, forwarding_ = false;
};

// `childflow --cleanup`: undoes what runs whose process is gone left in this
// network namespace. Returns childflow's exit code (0, or 1 when something
// could not be removed); says what it did on stderr.
int cleanup();

// Runs a command through libnftables; its output, or an Error with nft's
// own message.
Result<std::string> nft_run(const std::string& commands);

}  // namespace cf::rootful
