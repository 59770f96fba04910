// The engine confines itself (docs/security.md, "The engine's own
// confinement"). Once the tree's tap0 is in hand and every file the run
// writes is open, childflow needs nothing more from the host than the
// sockets of the tree's flows; lock_down() takes away the rest:
// capabilities, privilege gains through execve, and every system call
// outside a short allowlist.
#pragma once
#include <string>
#include <vector>

#include "common/result.hpp"

namespace cf::confine {

// Drops every capability (effective, permitted, inheritable, ambient, and
// the bounding set where we may), sets no-new-privs, and installs the
// engine's seccomp filter on every thread. The process must already be
// non-dumpable (the sandbox step does that). Irreversible. A system call
// outside the filter makes the process print what it tried and exit 1:
// the tree, whose pid 1 has PR_SET_PDEATHSIG, dies with it (fail closed).
// `bind`: also allow bind(2) (--capture-point wire-egress binds each
// flow's socket to an ephemeral port before its connect, capture/wire.hpp;
// listen and accept stay refused, and without capabilities no privileged
// port can be had).
Status lock_down(bool bind = false);

// The names of the system calls the filter allows (some only with the
// arguments docs/security.md lists), for the doctor and the tests.
std::vector<std::string> allowed_syscalls();

}  // namespace cf::confine
