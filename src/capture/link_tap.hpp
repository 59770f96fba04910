// A packet socket on one real link, read by a thread into a Capture: how
// the rootful backend sees the tree's frames (the host end of its veth).
// See link_tap.cpp for the theory of operation.
#pragma once
#include <linux/filter.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>

#include "capture/capture.hpp"
#include "common/addr.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::capture {

// The addresses and ports of an IPv4/IPv6 frame (ICMP echo: the id in both
// ports), as it crosses the link. nullopt for anything else (ARP, a frame
// too short to tell).
struct FiveTuple {
  uint8_t proto = 0;  // IPPROTO_*
  IpAddr src, dst;
  uint16_t sport = 0, dport = 0;
  uint8_t icmp_type = 0;  // ICMP/ICMPv6: the type
};
std::optional<FiveTuple> five_tuple(std::span<const uint8_t> eth_frame);

// The hook that names a frame's flow: its flow_id in the flow log, 0 when
// unknown. It runs on the reader's thread (the rootful backend's shares its
// ids with the conntrack reader under a lock, rootful/flow_ids.hpp).
using FlowIdOf = std::function<FrameNote(const FiveTuple&)>;

class LinkTap {
 public:
  // Opens a packet socket for every frame of link `ifindex` (0: every
  // link), both directions. Call before the tree starts, so that no frame
  // is missed. `filtered`: nothing is let through until set_filter() (the
  // drop-all filter is attached before the socket is bound). Needs
  // CAP_NET_RAW.
  static Result<std::unique_ptr<LinkTap>> open(int ifindex, bool filtered = false);
  // Replaces the socket's classic BPF filter, atomically (any thread).
  Status set_filter(std::span<const sock_filter> prog);
  ~LinkTap();  // stops
  LinkTap(const LinkTap&) = delete;
  LinkTap& operator=(const LinkTap&) = delete;

  // Starts the reader thread: each frame goes to cap.frame(), outgoing on
  // the link (the host sent it to the tree) as ToChild, the others as
  // FromChild, with the kernel's timestamp and the note `flow_of` gives (if
  // set). `cap` must outlive stop().
  // `outgoing_to_child`: true on the veth's host end; false on the host's
  // own links (wire-egress), where outgoing frames leave for the network
  // (Outbound, FromChild) and the others came from it.
  Status start(Capture& cap, FlowIdOf flow_of, bool outgoing_to_child = true);
  // Reads what is still queued (for 1 s at most), stops the thread and
  // flushes the capture. After it, the caller may close `cap`.
  void stop();
  // Frames the kernel dropped because the socket's queue was full.
  uint64_t drops() const { return drops_; }
  // Frames still queued when stop() gave up reading them (a link flooded
  // after the tree's end): not in the file. Read after stop().
  uint64_t unread() const { return unread_; }
  // The errno that stopped the reader early (0: none); the frames after it
  // are not in the file. Read after stop().
  int read_error() const { return read_error_; }

 private:
  LinkTap() = default;
  void run();
  enum class Drain { Empty, More, Error };
  // Reads until the queue is empty, at most `max` frames (More: there may
  // be more); Error: read_error_ is set.
  Drain drain(size_t max);
  uint64_t discard();  // stops queuing; reads and counts what is left, unwritten

  UniqueFd sock_, stop_, ep_;
  Capture* cap_ = nullptr;
  FlowIdOf flow_of_;
  bool outgoing_to_child_ = true;
  std::unique_ptr<uint8_t[]> buf_;
  std::thread thread_;
  uint64_t drops_ = 0, unread_ = 0;
  int read_error_ = 0;
};

}  // namespace cf::capture
