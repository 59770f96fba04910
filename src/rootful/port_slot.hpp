// A masquerade port range of its own, for a rootful run that captures
// wire-egress (docs/capture.md, "wire-egress"). See port_slot.cpp.
#pragma once
#include <cstdint>

#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::rootful {

// kSlots ranges of kSlotSize ports from kSlotBase: 61000-65095, above the
// kernel's default ephemeral range (32768-60999), so the host's own
// connect()s never take these ports.
inline constexpr uint16_t kSlotBase = 61000, kSlotSize = 512, kSlots = 8;

struct PortRange {
  uint16_t lo = 0, hi = 0;  // inclusive
};

// Whether `r` and the ephemeral range "A B" (the text of
// /proc/sys/net/ipv4/ip_local_port_range) share a port. Pure.
bool overlaps_ephemeral(PortRange r, const char* ip_local_port_range);

class PortSlot {
 public:
  // Takes the first free range: an OFD lock on byte 1 + slot of
  // /run/childflow/lock, held while this object (its fd) lives and dropped
  // by the kernel when the process dies, even by SIGKILL: nothing to clean
  // up. Fails when every range is taken, or when the kernel's ephemeral
  // range overlaps the free one.
  static Result<PortSlot> take();
  PortRange range() const { return range_; }

 private:
  PortSlot(UniqueFd fd, PortRange r) : fd_(std::move(fd)), range_(r) {}
  UniqueFd fd_;
  PortRange range_;
};

}  // namespace cf::rootful
