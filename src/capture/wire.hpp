// --capture-point wire-egress: the tree's flows as real frames on the host's
// interfaces, from a packet socket whose kernel filter lets through only
// the flows the tree made. See wire.cpp for the theory of operation.
#pragma once
#include <linux/filter.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <vector>

#include "capture/capture.hpp"
#include "capture/link_tap.hpp"
#include "common/addr.hpp"

namespace cf::capture {

// One flow of the tree as the host carries it: a host socket of protocol
// `proto` (IPPROTO_TCP, _UDP, _ICMP, _ICMPV6) on local port `lport` (for
// ICMP echo: its identifier) to raddr:rport (ICMP: the identifier again).
struct WireFlow {
  uint8_t proto = 0;
  uint16_t lport = 0;
  IpAddr raddr;
  uint16_t rport = 0;
  uint64_t flow_id = 0;  // in the flow log; 0: none (a DNS relay socket)
};

// At most this many flows are in the filter at once (cBPF programs hold at
// most BPF_MAXINSNS = 4096 instructions; an IPv6 flow takes 27, the
// parsing about 80).
constexpr size_t kMaxWireFlows = 128;

// The classic BPF program for a packet socket (Ethernet frames) that
// accepts, whole, exactly the IPv4/IPv6 frames of `flows`, in either
// direction (local port -> remote, or remote -> local port), and drops
// everything else: other hosts' and the host's other traffic, ARP, IPv4
// fragments after the first, IPv6 with extension headers before TCP/UDP/
// ICMPv6, and frames on link `skip_ifindex` (loopback; 0: none). Only the
// first kMaxWireFlows flows are used. Pure.
std::vector<sock_filter> wire_filter(std::span<const WireFlow> flows, int skip_ifindex);

// The rootful backend's program: its flows are masqueraded to the run's
// own ports [lo, hi] (rootful/port_slot.hpp). Accepts IPv4/IPv6 frames
// leaving the host (PACKET_OUTGOING) with TCP/UDP source port in the range,
// and frames coming in with TCP (ACK set: a reply, never a new connection)
// or UDP destination port in the range, and ICMP/ICMPv6 echo requests
// leaving and echo replies arriving (an echo identifier is no port the
// host reserves: the host's own pings pass too, and the capture's hook
// drops them, FrameNote::discard); drops frames to or from a childflow tree's
// own addresses (10.240.0.0/16, fd42::/16: the veths, where frames are not
// masqueraded yet), link `skip_ifindex` (loopback), ARP, later fragments,
// IPv6 extension headers. Pure.
std::vector<sock_filter> wire_range_filter(uint16_t lo, uint16_t hi, int skip_ifindex);

// The tree's flows for the wire-egress view: the engine adds each host
// socket before it connects; the reader thread asks which flow a frame is.
class WireSet {
 public:
  // `tap`: the packet socket (already filtered to nothing) whose filter
  // this keeps; `skip_ifindex`: the loopback link.
  WireSet(LinkTap& tap, int skip_ifindex) : tap_(tap), skip_ifindex_(skip_ifindex) {}

  // A host socket of the tree, not yet connected, towards raddr:rport:
  // bound to an ephemeral port (so the port is known before its first
  // packet), added, and the filter re-attached, all before the caller's
  // connect(). False when it cannot be captured: kMaxWireFlows flows are
  // live (counted in untracked()), or bind/getsockname failed; the flow
  // itself goes on, uncaptured.
  bool track(int fd, uint8_t proto, const IpAddr& raddr, uint16_t rport, uint64_t flow_id);
  // Drops the flows whose socket has been gone for more than kGraceMs
  // (a closed TCP socket still sends its last FIN and ACKs). Call often
  // (each reactor turn); it works at most once a second.
  void collect(uint64_t now_ms);
  // The reader thread: the flow of a frame, if it is one of ours.
  FrameNote note(const FiveTuple& t) const;
  // Flows not captured: beyond kMaxWireFlows; or whose socket could not be
  // bound (no ephemeral port left).
  uint64_t untracked() const { return untracked_; }
  uint64_t unbound() const { return unbound_; }
  size_t size() const;

  static constexpr uint64_t kGraceMs = 5000;

 private:
  void attach();  // the engine's thread, under no lock (only it writes flows_)
  struct Entry {
    WireFlow flow;
    int fd = -1;
    uint64_t gone_since = 0;  // 0: the socket is still ours
  };
  LinkTap& tap_;
  int skip_ifindex_;
  mutable std::mutex mu_;  // flows_ is read by the reader thread
  std::vector<Entry> flows_;
  uint64_t untracked_ = 0, unbound_ = 0;
  uint64_t last_collect_ = 0;
};

}  // namespace cf::capture
