#include "common/kernel.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include <array>
#include <cstdlib>
#include <string_view>

#include "common/unique_fd.hpp"

namespace cf::kernel {

namespace {

bool forced_off(std::string_view name) {
  const char* env = std::getenv("CHILDFLOW_FORCE_FALLBACK");
  if (!env) return false;
  std::string_view list(env);
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    if (item == name || item == "all") return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// TCP gained set_peek_off in 6.9; before that the setsockopt fails with
// EOPNOTSUPP whatever the socket's state, so an unconnected socket is enough.
bool has_tcp_peek_off() {
  UniqueFd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) s.reset(socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return false;
  int zero = 0;
  return setsockopt(s.get(), SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
}

// The tun driver lists the flags it supports (TUNGETFEATURES needs no
// device). When /dev/net/tun cannot be opened there is no tap0 anyway; the
// answer is then "no", which the launch's own error explains.
bool has_tap_vnet_hdr() {
  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tun) return false;
  unsigned int features = 0;
  return ::ioctl(tun.get(), TUNGETFEATURES, &features) == 0 && (features & IFF_VNET_HDR);
}

// A syscall the kernel lacks fails with ENOSYS whatever its arguments; these
// arguments are invalid (size 0, fd -1), so a kernel that has it refuses them
// (EINVAL, EBADF) without doing anything.
bool has_syscall(long nr) {
  long r = nr == SYS_clone3 ? ::syscall(nr, nullptr, 0)
                            : ::syscall(nr, -1, "", 0, nullptr, 0);
  return !(r < 0 && errno == ENOSYS);
}

Probe make(Feature f) {
  Probe p{"?"};
  switch (f) {
    case Feature::TcpPeekOff:
      p = Probe{"tcp_peek_off"};
      p.available = has_tcp_peek_off();
      break;
    case Feature::Clone3:
      p = Probe{"clone3"};
      p.available = has_syscall(SYS_clone3);
      break;
    case Feature::MountSetattr:
      p = Probe{"mount_setattr"};
      p.available = has_syscall(SYS_mount_setattr);
      break;
    case Feature::TapOffload:
      p = Probe{"tap_offload"};
      p.available = has_tap_vnet_hdr();
      break;
  }
  p.forced_off = forced_off(p.name);
  return p;
}

}  // namespace

std::vector<Feature> all_features() {
  return {Feature::TcpPeekOff, Feature::Clone3, Feature::MountSetattr, Feature::TapOffload};
}

// Every feature is probed on the first call (one socket, two syscalls and
// an open of /dev/net/tun).
const Probe& probe(Feature f) {
  static const std::array<Probe, 4> probes = {make(Feature::TcpPeekOff), make(Feature::Clone3),
                                              make(Feature::MountSetattr),
                                              make(Feature::TapOffload)};
  static_assert(size_t(Feature::TapOffload) == 3, "probes[] is in enumerator order");
  return probes[size_t(f)];
}

std::string describe_path(Feature f, bool in_use) {
  switch (f) {
    case Feature::TcpPeekOff:
      return in_use ? "TCP towards the tree peeks unacknowledged bytes in place (SO_PEEK_OFF)"
                    : "TCP towards the tree keeps its own bounded copy of unacknowledged bytes "
                      "(no SO_PEEK_OFF on TCP before Linux 6.9)";
    case Feature::Clone3:
      return in_use ? "the tree starts with clone3(CLONE_PIDFD)"
                    : "the tree starts with clone(CLONE_PIDFD) (no clone3 before Linux 5.3)";
    case Feature::MountSetattr:
      return in_use ? "/etc overlays are bound read-only with mount_setattr"
                    : "/etc overlays are bound, then remounted read-only (no mount_setattr "
                      "before Linux 5.12)";
    case Feature::TapOffload:
      return in_use ? "tap0 carries TCP segments of up to 64 KiB with checksums left to the "
                      "receiver (IFF_VNET_HDR, TUNSETOFFLOAD)"
                    : "tap0 carries frames of at most the MTU, each checksummed (no "
                      "IFF_VNET_HDR)";
  }
  return "?";
}

}  // namespace cf::kernel
