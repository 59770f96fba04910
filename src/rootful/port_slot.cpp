// Masquerade port ranges for rootful wire-egress.
//
// Theory of operation. A rootful run's flows are forwarded and masqueraded
// by the kernel; a packet socket on the host's interface sees their replies
// before netfilter, so no mark or conntrack state can tell them from the
// host's own traffic there. What can: the port. A run that captures
// wire-egress masquerades to a port range of its own (`masquerade to
// :LO-HI`, ruleset.cpp), so every one of its flows has a host port in that
// range from its first packet on, and the capture's filter matches the
// range (capture/wire.cpp, wire_range_filter). The ranges lie above the
// kernel's ephemeral range, where the host's connect()s never go; a run
// refuses to start when net.ipv4.ip_local_port_range has been widened over
// them, and skips a range where a socket of the host is bound (a service
// listening there would have its traffic match).
//
// Concurrent runs must not share a range. Each range is one byte of the
// state directory's lock file (byte 1 + slot; flock(2) on the same file,
// state.cpp, is a different lock and does not interfere), taken with an
// open file description lock (F_OFD_SETLK, no wait): the first free byte
// is the run's. The kernel drops the lock with the last reference to the
// file description, so a run killed with SIGKILL frees its range with no
// record and nothing for --cleanup; the lock file stays, as it does for
// every run.
#include "rootful/port_slot.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <string>

#include "common/addr.hpp"
#include "rootful/state.hpp"

namespace cf::rootful {

namespace {

// Whether a socket of this network namespace holds a local port of `r`
// (a service bound there would have its traffic match the range).
bool ports_in_use(PortRange r) {
  for (const char* f : {"/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6"}) {
    std::ifstream in(f);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      // "  sl  local_address rem_address ...": local is ADDR:PORT in hex.
      std::istringstream ls(line);
      std::string sl, local;
      ls >> sl >> local;
      size_t colon = local.rfind(':');
      if (colon == std::string::npos) continue;
      unsigned long port = std::strtoul(local.c_str() + colon + 1, nullptr, 16);
      if (port >= r.lo && port <= r.hi) return true;
    }
  }
  return false;
}

}  // namespace

bool overlaps_ephemeral(PortRange r, const char* text) {
  unsigned a = 0, b = 0;
  if (std::sscanf(text, "%u %u", &a, &b) != 2) return true;  // unknown: assume the worst
  return a <= r.hi && r.lo <= b;
}

Result<PortSlot> PortSlot::take() {
  std::string eph;
  {
    std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
    std::stringstream ss;
    ss << in.rdbuf();
    eph = ss.str();
  }
  if (::mkdir(state::kDir, 0700) != 0 && errno != EEXIST)
    return errno_error(fmt::format("capture: mkdir {}", state::kDir));
  std::string path = fmt::format("{}/lock", state::kDir);
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return errno_error(fmt::format("capture: open {}", path));
  for (uint16_t slot = 0; slot < kSlots; ++slot) {
    PortRange r{uint16_t(kSlotBase + slot * kSlotSize),
                uint16_t(kSlotBase + (slot + 1) * kSlotSize - 1)};
    struct flock l {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    l.l_start = 1 + slot;
    l.l_len = 1;
    if (fcntl(fd.get(), F_OFD_SETLK, &l) != 0) {
      if (errno == EAGAIN || errno == EACCES) continue;  // another run's
      return errno_error(fmt::format("capture: locking {}", path));
    }
    if (ports_in_use(r)) {  // a socket of the host's own holds one: the next range
      l.l_type = F_UNLCK;
      (void)fcntl(fd.get(), F_OFD_SETLK, &l);
      continue;
    }
    if (overlaps_ephemeral(r, eph.c_str()))
      return Error{fmt::format("--capture-point wire-egress needs the ports {}-{} outside the "
                               "kernel's ephemeral range, but net.ipv4.ip_local_port_range is "
                               "{}: narrow it (sysctl net.ipv4.ip_local_port_range=\"32768 "
                               "60999\") or capture another view",
                               r.lo, r.hi, eph.substr(0, eph.find('\n'))),
                   "capture"};
    return PortSlot(std::move(fd), r);
  }
  return Error{fmt::format("--capture-point wire-egress: all {} masquerade port ranges are "
                           "taken by other rootful runs that capture wire-egress; wait for one "
                           "to end",
                           kSlots),
               "capture"};
}

uint16_t bind_in(int fd, bool v4, PortRange r) {
  static std::atomic<uint32_t> next{0};
  const uint32_t n = uint32_t(r.hi - r.lo) + 1;
  const uint32_t start = next.fetch_add(1) % n;
  static const uint8_t kZero16[16] = {};
  const IpAddr any = v4 ? IpAddr::v4(0) : IpAddr::v6_bytes(kZero16);  // the wildcard
  for (uint32_t i = 0; i < n; ++i) {
    const uint16_t port = uint16_t(r.lo + (start + i) % n);
    sockaddr_storage ss{};
    const socklen_t len = to_sockaddr(any, port, &ss);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0) {
      next.store(start + i + 1);
      return port;
    }
    if (errno != EADDRINUSE) return 0;
  }
  return 0;
}

}  // namespace cf::rootful
