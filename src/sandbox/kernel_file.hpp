// The small kernel files the sandbox writes: /proc/PID/uid_map, gid_map and
// setgroups (idmap.cpp) and the tree's sysctls (init_stub.cpp). Each takes
// its whole text in one write(2) or not at all (a map file can be written
// only once), so a short write is an error too. Private to src/sandbox/.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace cf::sandbox {

// Writes `text` to the existing file `path` in one write(2). Error: the
// cause (strerror) as message, "write <path>" as step; a caller that words
// its own message uses the message alone.
Status write_kernel_file(const std::string& path, std::string_view text);

// Whether `path` exists: a kernel without a knob (setgroups before 3.19, no
// IPv6) has no file for it, which some callers accept.
bool kernel_file_exists(const std::string& path);

// The whole text of a small file (/proc/self/uid_map, /etc/subuid); nullopt
// when it cannot be opened or read.
std::optional<std::string> read_kernel_file(const char* path);

}  // namespace cf::sandbox
