// Overlays of /etc/resolv.conf and /etc/hosts, in two halves:
//
//  - parent: OverlayDir writes the contents into a private directory made by
//    mkdtemp (mode 0700) under $XDG_RUNTIME_DIR, else $TMPDIR, else /tmp, and
//    removes the files and the directory when destroyed. The parent destroys
//    it as soon as the stub has made its bind mounts (the mounts keep the
//    unlinked files alive), so nothing stays on disk during the run;
//  - stub: bind_file mounts one file read-only (plus nosuid, nodev, noexec)
//    over a target path inside the tree's private mount namespace. A target
//    that is a symlink (a systemd-resolved /etc/resolv.conf) is covered
//    itself, not followed: the tree reads our file through the usual path,
//    the symlink's target is left alone, and a dangling symlink works too.
//
// The host's files are never opened for writing.
#pragma once
#include <optional>
#include <string>

#include "common/result.hpp"
#include "sandbox/sandbox.hpp"

namespace cf::sandbox {

class OverlayDir {
 public:
  // Creates the directory and files for the overlays that are set.
  static Result<OverlayDir> create(const Overlays& o);

  OverlayDir() = default;
  OverlayDir(OverlayDir&& o) noexcept;
  OverlayDir& operator=(OverlayDir&& o) noexcept;
  ~OverlayDir();

  const std::string& dir() const { return dir_; }
  const std::optional<std::string>& resolv_conf() const { return resolv_conf_; }
  const std::optional<std::string>& hosts() const { return hosts_; }
  // Removes the files and the directory now (idempotent).
  void remove();

 private:
  std::string dir_;
  std::optional<std::string> resolv_conf_, hosts_;
};

// Stub side: bind-mounts `source` read-only over `target` (not following a
// symlink at target). Error: "sandbox: overlay <target>: <cause>".
Status bind_file(const std::string& source, const char* target);

}  // namespace cf::sandbox
