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
// destinations are remembered. Conntrack's DESTROY forgets a flow at once
// (its last frames are long past: TIME_WAIT, or the time-out); the relay's
// end of a connection or its refusal (ended()) forgets it kGraceMs later,
// so the FIN's or the reset's frames still carry its id; a flow nobody
// ever confirmed (the table denied it, or the capture saw a stray frame)
// is forgotten once no frame of it was seen for kUnconfirmedIdleMs. A
// sweep does that at most once a second, on whichever reader asks. Then a
// later connection on the same ports is a new flow; a destination keeps
// its first id (last_to) for the run.
//
// Verdicts. The capture's reader sees a flow's first frame as it enters
// the host, before the table judges it, so it cannot read the table's
// verdict; it asks the same Policy instead (note(): the run's `judge`,
// which holds the loop's lock while the Policy is read, since the
// forwarder teaches it names on the loop's thread). The forwarder loads a
// name's set elements and teaches the Policy before the tree has the
// answer, so the Policy knows at least what the table knows when the
// tree's first packet arrives: the two agree. A denied flow's frames carry
// the reason, and every flow the table denies towards one destination
// takes that destination's first id, the one its policy_violation is
// written under (the relay's refusals are one violation per connection,
// each under its own id, which the relay marks denied itself).
// A confirmation clears the reason (the table let it through after all).
//
// Host sides (wire-egress). The rootful wire-egress view sees a flow on the
// host's interfaces after masquerade: the host's address and a port of the
// run's range. host_side() remembers which flow such a host side is (the
// capture learns it from conntrack, conntrack.hpp's CtQuery); forgetting
// the flow forgets its host side, so a reused port is asked again.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
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

// A flow as the host's interfaces carry it after masquerade: the host's
// port (ICMP echo: the identifier) and the remote address and port.
struct HostKey {
  uint8_t proto = 0;
  uint16_t host_port = 0;
  IpAddr remote;
  uint16_t remote_port = 0;
  friend auto operator<=>(const HostKey&, const HostKey&) = default;
};

class FlowIds {
 public:
  static constexpr size_t kMaxFlows = 16384;

  using Clock = uint64_t (*)();  // monotonic ms; tests give their own
  explicit FlowIds(observe::Recorder& rec, Clock clock = nullptr) : rec_(rec), clock_(clock) {}
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
  // The relay is done with `k` (closed or refused): forgotten kGraceMs later.
  void ended(const FlowKey& k);
  static constexpr uint64_t kGraceMs = 5'000;
  static constexpr uint64_t kUnconfirmedIdleMs = 60'000;

  // The capture's note of a frame: its flow's id and, when the policy
  // denies the flow, the reason code (a static string). `judge` is asked
  // once per new flow, outside this object's lock.
  struct Note {
    uint64_t id = 0;
    const char* denied = nullptr;
  };
  // The judge's answer: the reason code (nullptr: allowed), and whether
  // the run logs one violation per destination (the table's denials) or
  // one per connection (the relay's).
  struct Verdict {
    const char* denied = nullptr;
    bool per_destination = true;
    // Not a flow the run logs (the table drops or rejects it before the
    // policy: broadcast, multicast, link-local): no id, nothing kept.
    bool no_flow = false;
  };
  using Judge = std::function<Verdict(const FlowKey&)>;
  Note note(const FlowKey& k, const Judge& judge);
  // The relay refused flow `k` (known: of() gave its id): its frames carry
  // `reason` from now on, whoever saw it first.
  void deny(const FlowKey& k, const char* reason);

  // wire-egress: `h` is flow `k`'s host side (the capture learnt it from
  // conntrack); of_host() finds it until the flow is forgotten. Bounded
  // like the flows.
  void host_side(const HostKey& h, const FlowKey& k);
  std::optional<FlowKey> of_host(const HostKey& h) const;

 private:
  struct Entry {
    uint64_t id = 0;
    const char* denied = nullptr;
    std::optional<HostKey> host;
    bool confirmed = false;
    uint64_t seen_ms = 0;   // the last time a reader asked
    uint64_t ended_ms = 0;  // ended(): when; 0 while live
  };
  std::optional<Note> find_locked(const FlowKey& k, Reader who, uint64_t now);
  void insert_locked(const FlowKey& k, Entry e);
  void erase_locked(std::map<FlowKey, Entry>::iterator it);
  void sweep_locked(uint64_t now);
  uint64_t clock_now() const;
  uint64_t last_sweep_ = 0;
  observe::Recorder& rec_;
  Clock clock_;
  mutable std::mutex mu_;
  std::map<FlowKey, Entry> ids_;
  std::map<HostKey, FlowKey> hosts_;
  std::map<std::tuple<uint8_t, IpAddr, uint16_t>, uint64_t> last_;
};

}  // namespace cf::rootful
