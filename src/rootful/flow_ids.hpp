// The flow ids of a rootful run's flows, shared by those who name them: the
// conntrack reader (direct flows' events) and the TPROXY relay (proxied
// connections' events), both on the run's loop, and the capture's
// packet-socket reader (per-frame opt_comment, on its own thread).
//
// Theory of operation. A flow is its protocol, the tree's address and port
// (ICMP echo: the identifier) and the remote address and port. Whoever sees
// a flow first, the capture (the tree's first frame crosses the veth before
// conntrack confirms the connection or the relay accepts it) or the other
// reader (no capture), takes the next flow id from the Recorder, and the
// rest find it here, so the flow log's flow_id and the frames' comments
// agree. A destination the table denied never reaches conntrack or the
// relay: for it the capture also remembers the first flow it saw towards
// that (protocol, address, port), and conntrack's or the relay's
// confirmation of that flow strikes it out, so the run writes the
// violation (one per destination) under the id its frames got (last_to),
// never under an allowed flow's. Everything is under one mutex; nothing
// here is on the forwarding path (the kernel forwards), only on the
// readers'. Bounded: at most kMaxFlows flows and kMaxFlows destinations
// (a tree spraying datagrams cannot grow it); beyond that of() says 0 (the
// capture writes no comment, the others take a fresh id) and no more
// destinations are remembered. Conntrack's DESTROY and the relay's end of
// a connection forget the flow, so a later connection on the same ports is
// a new flow.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "common/addr.hpp"

namespace cf::observe {
class Recorder;
}

namespace cf::rootful {

struct FlowKey {
  uint8_t proto = 0;  // IPPROTO_TCP, _UDP, _ICMP, _ICMPV6
  IpAddr tree, remote;
  uint16_t tree_port = 0, remote_port = 0;  // ICMP echo: the id, and 0
  friend auto operator<=>(const FlowKey&, const FlowKey&) = default;
};

class FlowIds {
 public:
  static constexpr size_t kMaxFlows = 16384;

  explicit FlowIds(observe::Recorder& rec) : rec_(rec) {}
  // Who asks: the capture sees every flow, a denied one too; conntrack (a
  // confirmed connection) and the relay (an accepted one) only flows the
  // table let through.
  enum class Reader : uint8_t { Capture, Confirmed };
  // The flow's id, taken from the Recorder the first time; 0 when full.
  uint64_t of(const FlowKey& k, Reader who);
  // The id of the first flow the capture saw towards (proto, remote,
  // remote_port) that was never confirmed: a denied destination's frames;
  // 0 when none.
  uint64_t last_to(uint8_t proto, const IpAddr& remote, uint16_t remote_port) const;
  void forget(const FlowKey& k);

 private:
  observe::Recorder& rec_;
  mutable std::mutex mu_;
  std::map<FlowKey, uint64_t> ids_;
  std::map<std::tuple<uint8_t, IpAddr, uint16_t>, uint64_t> last_;
};

}  // namespace cf::rootful
