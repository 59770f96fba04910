// The rootful backend's DNS forwarder: the tree's resolv.conf names the
// gateway addresses (the host end of the veth), and this serves port 53 there,
// over UDP and TCP, through the same DNS gate as the rootless engine
// (engine/dns_gate.hpp), so a query is judged, answered, relayed and logged
// by the same rules in both backends.
//
// Theory of operation. One thread: the forwarder's sockets are watched by
// the rootful parent's epoll loop (loop.hpp), which also waits for the
// tree's end (its pidfd) and for the signals it forwards, as engine::run
// does for rootless, and serves the TPROXY relay (relay.hpp). Listeners are
// registered once; a relayed query's socket and a TCP connection's two
// sockets while they live, with the events their state needs:
//   - UDP: each query is read from the socket bound to gw4:53 or [gw6]:53 and
//     passed to gate_query. Answered by the gate: sent back at once. To be
//     relayed: sent from a new connected socket (a fresh random port) with a
//     fresh random id; the answer must come back on that socket with that
//     id and pass gate_answer (same question), or the tree gets SERVFAIL
//     after 5 s, or at once when the resolver's port is unreachable.
//   - TCP: each connection to gw:53 is read for length-prefixed queries, one
//     at a time; a relayed one goes over a TCP connection of its own to the
//     resolver, under the same checks.
// Bounds: 256 UDP queries in flight (SERVFAIL beyond), 32 TCP connections
// (closed at once beyond), 64 KiB per TCP message, 10 s idle per TCP
// connection.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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
namespace cf::engine {
class SynthMap;
}

namespace cf::rootful {

struct ForwarderOptions {
  NetPlan plan;
  std::optional<IpAddr> resolver;  // none: SERVFAIL
  bool host_has_ipv6 = true;
  uint32_t mark = 0;  // --iface: SO_MARK of the upstream sockets (rootful/uplink.hpp)
  // wire-egress: the upstream sockets bind to a port of this range (the
  // run's host ports, port_slot.hpp), so the capture sees the lookups.
  std::optional<PortRange> host_ports;
  // --proxy-dns remote: A/AAAA queries are answered with this map's
  // synthetic addresses (engine/synth.hpp, shared with the relay), none is
  // relayed. nullptr: names are resolved by the resolver.
  engine::SynthMap* synth = nullptr;
  // Domain rules (domain_sets.hpp): each pair an accepted answer teaches,
  // after the Policy learnt it; then, before that answer goes to the tree,
  // answer_ready(), and when it fails the tree gets SERVFAIL instead.
  std::function<void(const std::string&, const IpAddr&, uint32_t, uint64_t)> on_learn;
  std::function<bool()> answer_ready;
};

class Forwarder {
 public:
  // Binds gw4:53 and [gw6]:53, UDP and TCP (the addresses must exist), and
  // registers them on `loop`, which must outlive the forwarder; it serves
  // while the loop runs (Loop::serve).
  static Result<std::unique_ptr<Forwarder>> open(const ForwarderOptions& o,
                                                 policy::Policy& pol, observe::Recorder& rec,
                                                 Loop& loop);
  virtual ~Forwarder() = default;
  // Queries seen (for the summary).
  virtual uint64_t queries() const = 0;
  // Upstream sockets that found no free host port (not captured).
  virtual uint64_t uncaptured() const = 0;
};

}  // namespace cf::rootful
