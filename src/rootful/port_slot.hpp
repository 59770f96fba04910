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

// A range splits in two: the masquerade's ports (the tree's flows) and, at
// its top, kHostPorts for the run's own host sockets (the DNS forwarder's
// queries and the relay's connections to the proxy), which bind_in() puts
// there so that the capture's filter sees them too.
inline constexpr uint16_t kHostPorts = 128;
inline PortRange masquerade_part(PortRange r) { return {r.lo, uint16_t(r.hi - kHostPorts)}; }
inline PortRange host_part(PortRange r) { return {uint16_t(r.hi - kHostPorts + 1), r.hi}; }

// Binds `fd` (an unbound AF_INET or AF_INET6 socket, per `v4`) to the
// wildcard address and a free port of `r`, trying each port at most once
// from where the last call ended. Returns the port, 0 when none was free.
uint16_t bind_in(int fd, bool v4, PortRange r);

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
