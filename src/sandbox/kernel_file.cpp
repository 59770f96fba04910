#include "sandbox/kernel_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common/unique_fd.hpp"

namespace cf::sandbox {

Status write_kernel_file(const std::string& path, std::string_view text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return errno_error("write " + path);
  ssize_t n = ::write(fd.get(), text.data(), text.size());
  if (n < 0) return errno_error("write " + path);
  if (size_t(n) != text.size()) return errno_error("write " + path, EIO);
  return {};
}

bool kernel_file_exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::optional<std::string> read_kernel_file(const char* path) {
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  if (n < 0) return std::nullopt;
  return out;
}

}  // namespace cf::sandbox
