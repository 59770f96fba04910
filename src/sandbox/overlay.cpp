// Theory of operation: see overlay.hpp. bind_file prefers the new mount API
// (open_tree(OPEN_TREE_CLONE) + mount_setattr + move_mount without
// MOVE_MOUNT_T_SYMLINKS), which can cover a symlink itself; on kernels
// without it (ENOSYS, < 5.12 for mount_setattr) it falls back to
// mount(MS_BIND) on the resolved path followed by a read-only remount.
#include "sandbox/overlay.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "common/kernel.hpp"
#include "common/unique_fd.hpp"

namespace cf::sandbox {
namespace {

std::string pick_base_dir() {
  for (const char* var : {"XDG_RUNTIME_DIR", "TMPDIR"}) {
    const char* v = getenv(var);
    if (!v || v[0] != '/') continue;
    struct stat st{};
    if (::stat(v, &st) == 0 && S_ISDIR(st.st_mode) && ::access(v, W_OK | X_OK) == 0) return v;
  }
  return "/tmp";
}

Status write_file(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return errno_error("sandbox: create " + path);
  UniqueFd owned(fd);
  // Keep 0644 whatever the umask: any user inside the tree reads it.
  if (::fchmod(fd, 0644) != 0) return errno_error("sandbox: chmod " + path);
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_error("sandbox: write " + path);
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<OverlayDir> OverlayDir::create(const Overlays& o) {
  OverlayDir d;
  if (!o.resolv_conf && !o.hosts) return d;
  std::string templ = pick_base_dir() + "/childflow.XXXXXX";
  if (!::mkdtemp(templ.data())) return errno_error("sandbox: mkdtemp " + templ);
  d.dir_ = templ;
  if (o.resolv_conf) {
    std::string p = d.dir_ + "/resolv.conf";
    if (auto w = write_file(p, *o.resolv_conf); !w) {
      ::unlink(p.c_str());
      return w.error();  // d's destructor removes what exists
    }
    d.resolv_conf_ = p;
  }
  if (o.hosts) {
    std::string p = d.dir_ + "/hosts";
    if (auto w = write_file(p, *o.hosts); !w) {
      ::unlink(p.c_str());
      return w.error();
    }
    d.hosts_ = p;
  }
  return d;
}

OverlayDir::OverlayDir(OverlayDir&& o) noexcept
    : dir_(std::exchange(o.dir_, {})),
      resolv_conf_(std::exchange(o.resolv_conf_, std::nullopt)),
      hosts_(std::exchange(o.hosts_, std::nullopt)) {}

OverlayDir& OverlayDir::operator=(OverlayDir&& o) noexcept {
  if (this != &o) {
    remove();
    dir_ = std::exchange(o.dir_, {});
    resolv_conf_ = std::exchange(o.resolv_conf_, std::nullopt);
    hosts_ = std::exchange(o.hosts_, std::nullopt);
  }
  return *this;
}

OverlayDir::~OverlayDir() { remove(); }

void OverlayDir::remove() {
  if (resolv_conf_) ::unlink(resolv_conf_->c_str());
  if (hosts_) ::unlink(hosts_->c_str());
  if (!dir_.empty()) ::rmdir(dir_.c_str());
  resolv_conf_.reset();
  hosts_.reset();
  dir_.clear();
}

Status bind_file(const std::string& source, const char* target) {
  const std::string step = fmt::format("sandbox: overlay {}", target);
  struct stat st{};
  if (::lstat(target, &st) != 0)
    return Error{fmt::format("{} (childflow never creates files on the host)", strerror(errno)),
                 step};

  int tree = ::open_tree(AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree >= 0) {
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
  } else if (errno != ENOSYS) {
    return errno_error(step + ": open_tree " + source);
  } else if (::mount(source.c_str(), target, nullptr, MS_BIND, nullptr) != 0) {
    return errno_error(step + ": bind mount");
  }
  if (::mount(nullptr, target, nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return errno_error(step + ": read-only remount");
  return {};
}

}  // namespace cf::sandbox
