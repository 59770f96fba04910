// The init stub: pid 1 of the tree's PID namespace. It runs in the child of
// clone(NEWUSER|NEWNS|NEWPID) with a copy of the parent's memory and
// never returns (it _exit()s, so the parent's atexit handlers and stdio
// buffers are never run twice).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "sandbox/sandbox.hpp"

namespace cf::sandbox {

// Everything the stub needs, prepared by the parent before clone.
struct StubArgs {
  int control_fd = -1;       // the stub's end of the control socketpair
  std::vector<char*> argv;   // the command, nullptr-terminated
  NetPlan plan;
  const Overlays* overlays = nullptr;  // texts of /etc/resolv.conf and /etc/hosts
  bool as_root = false;                // Options::as_root
  bool link = false;                   // Options::attach_link is set (rootful)
  bool tap_offload = false;            // Tree::tap_vnet_hdr: tap0 with offloads
  uint32_t caller_uid = 0;             // childflow's euid and egid outside
  uint32_t caller_gid = 0;
};

[[noreturn]] void run_init_stub(const StubArgs& args);

// Exit code of a command that exec could not start (as a shell does):
// 127 when it was not found, 126 when it was found but cannot be executed.
int exit_code_for_exec_errno(int err);

// Exit code for a wait status: the exit code, or 128 + N when killed by N.
int exit_code_from_wait_status(int status);

}  // namespace cf::sandbox
