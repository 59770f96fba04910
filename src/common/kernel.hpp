// Kernel features whose absence changes which code path childflow takes.
//
// Each feature is probed once, cheaply, the first time it is asked for, and
// the answer is kept for the life of the process. A feature can be forced off
// for testing with CHILDFLOW_FORCE_FALLBACK, a comma-separated list of feature
// names (for example CHILDFLOW_FORCE_FALLBACK=tcp_peek_off): the fallback path
// then runs on a kernel that has the feature, which is how the test suite
// exercises it on a new kernel. docs/kernel.md lists every feature, the kernel
// that brought it and what childflow does without it.
#pragma once
#include <string>
#include <vector>

namespace cf::kernel {

enum class Feature {
  // setsockopt(SO_PEEK_OFF) on a TCP socket (Linux 6.9). Without it the TCP
  // translator keeps its own copy of the bytes sent to the child but not yet
  // acknowledged, instead of leaving them in the host socket's queue.
  TcpPeekOff,
  // clone3() (Linux 5.3). Without it the sandbox starts the tree with
  // clone(CLONE_PIDFD) (5.2), which does the same for our flags.
  Clone3,
  // mount_setattr() (Linux 5.12). Without it the read-only bind mounts of
  // the tree's /etc/resolv.conf and /etc/hosts are made read-only by a
  // remount after the bind, instead of before it is attached.
  MountSetattr,
  // tap0 with a virtio-net header (IFF_VNET_HDR, Linux 2.6.27) and the
  // checksum and TCP segmentation offloads (TUNSETOFFLOAD). Without it every
  // frame across tap0 is at most the MTU and carries a full checksum.
  TapOffload,
};

struct Probe {
  const char* name;       // as in CHILDFLOW_FORCE_FALLBACK and --doctor
  bool available = false; // the kernel has it
  bool forced_off = false;// CHILDFLOW_FORCE_FALLBACK names it
  bool in_use() const { return available && !forced_off; }
};

// The probe result for `f` (every feature is probed on the first call).
const Probe& probe(Feature f);

// Every feature, in a fixed order (for --doctor).
std::vector<Feature> all_features();

// What the engine does with and without the feature, for --doctor.
std::string describe_path(Feature f, bool in_use);

}  // namespace cf::kernel
