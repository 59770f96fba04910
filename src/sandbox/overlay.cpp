// Theory of operation: see overlay.hpp.
#include "sandbox/overlay.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "common/kernel.hpp"
#include "common/unique_fd.hpp"

namespace cf::sandbox {
namespace {

Status write_file(const std::string& path, const std::string& text, const std::string& step) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno_error(fmt::format("{}: create {}", step, path));
  UniqueFd owned(fd);
  // Keep 0644 whatever the umask: any user inside the tree reads it.
  if (::fchmod(fd, 0644) != 0) return errno_error(fmt::format("{}: chmod {}", step, path));
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error(fmt::format("{}: write {}", step, path));
    done += static_cast<size_t>(n);
  }
  return {};
}

Status bind_read_only(const std::string& source, const char* target, const std::string& step) {
  int tree = ::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) return errno_error(step + ": open_tree " + source);
  UniqueFd owned(tree);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC;
  bool read_only = kernel::probe(kernel::Feature::MountSetattr).in_use();
  if (read_only && ::mount_setattr(tree, "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    if (errno != ENOSYS) return errno_error(step + ": mount_setattr");
    read_only = false;  // 5.2 .. 5.11: remount below
  }
  // No MOVE_MOUNT_T_SYMLINKS: a symlink at target is covered, not followed.
  if (::move_mount(tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) != 0)
    return errno_error(step + ": move_mount");
  if (read_only) return {};
  // The path now ends in our mount (mounts are crossed before symlinks).
  if (::mount(nullptr, target, nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return errno_error(step + ": read-only remount");
  return {};
}

Status place_one(const std::string& scratch, const char* name, const std::string& text,
                 const char* target) {
  const std::string step = fmt::format("sandbox: overlay {}", target);
  struct stat st{};
  if (::lstat(target, &st) != 0)
    return Error{fmt::format("{} (childflow never creates files on the host)", strerror(errno)),
                 step};
  const std::string source = scratch + "/" + name;
  if (auto w = write_file(source, text, step); !w) return w;
  return bind_read_only(source, target, step);
}

}  // namespace

Status place_overlays(const char* scratch_dir, const Overlays& o, const OverlayTargets& targets) {
  if (!o.resolv_conf && !o.hosts) return {};
  if (::mount("childflow", scratch_dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=64k,nr_inodes=16,mode=0755") != 0)
    return errno_error(fmt::format("sandbox: overlay scratch tmpfs on {}", scratch_dir));
  Status done;
  if (o.resolv_conf) done = place_one(scratch_dir, "resolv.conf", *o.resolv_conf, targets.resolv_conf);
  if (done && o.hosts) done = place_one(scratch_dir, "hosts", *o.hosts, targets.hosts);
  // The clones hold the tmpfs; the scratch mount itself goes either way.
  if (::umount2(scratch_dir, MNT_DETACH) != 0 && done)
    done = errno_error(fmt::format("sandbox: detach the scratch tmpfs from {}", scratch_dir));
  return done;
}

}  // namespace cf::sandbox
