// Overlays of /etc/resolv.conf and /etc/hosts for the tree, made by the init
// stub inside its own (private) mount namespace.
//
// Theory of operation. The stub mounts a small scratch tmpfs for a moment on
// a directory of its mount namespace (it uses /proc, just before the fresh
// /proc goes there), writes each overlay's text into a file of it, clones
// that file's mount (open_tree(OPEN_TREE_CLONE)), makes the clone read-only,
// nosuid, nodev and noexec (mount_setattr) and moves it onto the target
// (move_mount without MOVE_MOUNT_T_SYMLINKS: a symlinked /etc/resolv.conf is
// covered itself, not followed). Then the scratch mount is detached; the
// clones keep the tmpfs alive. Nothing is written to the host's disk, and the
// files stay linked in their tmpfs for the life of the tree, so a childflow
// run inside the tree can cover them again with its own overlays (a mount
// cannot be placed on a file that was unlinked: the kernel answers ENOENT).
//
// Kernels: open_tree and move_mount came in 5.2, below the supported minimum;
// mount_setattr came in 5.12, and without it the read-only flags are applied
// by a remount of the target after the move (docs/kernel.md).
#pragma once
#include "common/result.hpp"
#include "sandbox/sandbox.hpp"

namespace cf::sandbox {

// Places the overlays that are set over /etc/resolv.conf and /etc/hosts (or
// over o's targets, for tests) using `scratch_dir` for a moment. A target
// must exist: childflow never creates files on the host.
struct OverlayTargets {
  const char* resolv_conf = "/etc/resolv.conf";
  const char* hosts = "/etc/hosts";
};
Status place_overlays(const char* scratch_dir, const Overlays& o,
                      const OverlayTargets& targets = {});

}  // namespace cf::sandbox
