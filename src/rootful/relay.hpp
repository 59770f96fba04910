// The rootful backend's TPROXY relay: with --proxy, every TCP connection of
// the tree (but DNS, and what goes to the gateway addresses) is handed by
// the run's nftables table (ruleset.hpp, chain `divert`) to a listening
// socket here, and carried to its destination through the upstream proxy
// with the rootless engine's connectors (proxy/proxy.hpp).
//
// Theory of operation. Two listeners, on gw4 and [gw6] at ports the kernel
// picks, with IP_TRANSPARENT so that they can be bound before the veth
// gives those addresses and so that TPROXY may hand them connections for
// any destination; the table names their ports. They are created before
// the table, so its `tproxy` rules always find them. For each accepted
// connection (only from the tree's own addresses):
//   1. the original destination is the accepted socket's local address;
//   2. judged by the same Policy as a proxied flow of the rootless engine
//      (judge_addr, via_proxy): connect_attempt, and when denied a
//      policy_violation, connect_result "denied by policy" and a reset;
//   3. a non-blocking connect to the proxy (its address resolved once at
//      start-up), then one proxy::Handshake driven by readiness events;
//      an https:// proxy's session goes to a proxy::TlsPump whose
//      socketpair end stands in for the proxy socket. The handshake has
//      15 s, as in the engine;
//   4. failure (proxy unreachable, refused, bad credentials, time-out):
//      connect_result with the engine's error text, and the tree's
//      connection is reset. Success: connect_result, then bytes are relayed
//      both ways through two fixed 16 KiB buffers of the flow, with
//      half-close (an EOF from one side, once its bytes are out, becomes
//      shutdown(SHUT_WR) towards the other); a socket error resets both.
//      The end writes flow_end with the payload bytes each way.
// Unlike rootless, the kernel completes the tree's handshake before the
// relay sees the connection, so a refusal (policy, proxy) is a reset of an
// established connection (curl: exit 56 or 52) rather than of the SYN.
// Everything runs on the rootful loop (loop.hpp), edge-triggered; nothing
// blocks, nothing allocates per read or write, no thread per flow.
// Bounds: 4096 connections at once, fewer when RLIMIT_NOFILE leaves no
// room for two descriptors each (more are reset at once); out of
// descriptors, a pending connection is shed (loop.hpp, accept_shedding).
#pragma once
#include <cstdint>
#include <memory>

#include "common/addr.hpp"
#include "common/net_plan.hpp"
#include "common/result.hpp"
#include "rootful/loop.hpp"
#include "rootful/port_slot.hpp"

namespace cf::policy {
class Policy;
}
namespace cf::observe {
class Recorder;
}
namespace cf::proxy {
class Upstream;
}
namespace cf::engine {
class SynthMap;
}

namespace cf::rootful {

class FlowIds;

struct RelayOptions {
  NetPlan plan;
  IpAddr proxy_addr;                          // resolved once
  const proxy::Upstream* upstream = nullptr;  // the connectors' shared state
  // A relayed connection with no byte either way for this long is reset
  // (the engine's TCP time-outs: a day; five minutes once half-closed).
  uint64_t idle_ms = 24 * 3600 * 1000ull;
  uint64_t half_closed_idle_ms = 300 * 1000ull;
};

class Relay {
 public:
  // Binds and registers the listeners (the loop must outlive the relay).
  static Result<std::unique_ptr<Relay>> open(const RelayOptions& o, policy::Policy& pol,
                                             observe::Recorder& rec, Loop& loop);
  virtual ~Relay() = default;
  virtual uint16_t port4() const = 0;
  virtual uint16_t port6() const = 0;  // 0 without IPv6
  // --iface: the fwmark of the sockets to the proxy (rootful/uplink.hpp),
  // known once the host side is set up; 0 for none.
  virtual void set_mark(uint32_t mark) = 0;
  // The run's shared flow ids (flow_ids.hpp), so that a captured frame and
  // the relay's events name a connection alike; nullptr for none.
  virtual void set_flow_ids(FlowIds* ids) = 0;
  // wire-egress: the connections to the proxy bind to a port of `r` (the
  // run's host ports, port_slot.hpp) and are named in the flow ids, so the
  // capture sees them with their flow's id. One that finds no free port
  // goes on uncaptured (counted: uncaptured()).
  virtual void set_host_ports(PortRange r) = 0;
  // --proxy-dns remote: the synthetic addresses the forwarder hands out
  // (engine/synth.hpp, shared, on the same loop); a connection to one asks
  // the proxy for its name, judged by name. nullptr: none.
  virtual void set_synth(engine::SynthMap* synth) = 0;
  virtual uint64_t uncaptured() const = 0;
  // At the tree's end: the connections still open are closed and logged
  // (flow_end, close rst), as the engine does with its flows.
  virtual void close_all() = 0;
};

}  // namespace cf::rootful
