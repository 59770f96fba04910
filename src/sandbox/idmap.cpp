// Theory of operation: see idmap.hpp for the order. A map file of a user
// namespace can be written once, in one write(2); so each step notes whether
// uid_map is already written and later steps only complete the gid side.
// newuidmap/newgidmap are set-uid helpers from the shadow suite (uidmap
// package); they check /etc/subuid and /etc/subgid themselves, we check first
// only to skip them cleanly and to name what is missing. Their stderr is
// captured into the error message.
#include "sandbox/idmap.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <charconv>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "common/text.hpp"
#include "sandbox/kernel_file.hpp"

extern char** environ;

namespace cf::sandbox::idmap {
namespace {

std::optional<std::string> find_in_path(const char* prog) {
  std::string path_env = getenv("PATH") ? getenv("PATH") : "";
  // Helpers live in /usr/bin; keep finding them when PATH was trimmed (sudo).
  path_env += ":/usr/bin:/bin:/usr/sbin:/sbin";
  size_t pos = 0;
  while (pos <= path_env.size()) {
    size_t end = path_env.find(':', pos);
    if (end == std::string::npos) end = path_env.size();
    std::string dir = path_env.substr(pos, end - pos);
    if (!dir.empty()) {
      std::string candidate = dir + "/" + prog;
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    pos = end + 1;
  }
  return std::nullopt;
}

// A helper started with its stderr on a pipe.
struct Helper {
  pid_t pid = -1;
  UniqueFd stderr_read;
  std::optional<Error> spawn_error;  // it could not be started
};

Helper spawn_helper(const std::string& path, const std::vector<std::string>& args) {
  Helper h;
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  int err_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    h.spawn_error = errno_error("pipe");
    return h;
  }
  h.stderr_read.reset(err_pipe[0]);
  UniqueFd wr(err_pipe[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, wr.get(), STDERR_FILENO);
  int rc = posix_spawn(&h.pid, path.c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    h.pid = -1;
    h.spawn_error = errno_error("cannot run " + path, rc);
  }
  return h;
}

// Waits for a helper: ok on exit 0, else a description with its stderr.
Status finish_helper(Helper& h) {
  if (h.pid < 0) return *h.spawn_error;
  std::string err;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(h.stderr_read.get(), buf, sizeof buf)) > 0 && err.size() < 4096)
    err.append(buf, static_cast<size_t>(n));
  int status = 0;
  while (waitpid(h.pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  std::string why = WIFEXITED(status) ? fmt::format("exit status {}", WEXITSTATUS(status))
                                      : fmt::format("killed by signal {}", WTERMSIG(status));
  if (!err.empty()) why += ": " + one_line(err);
  return Error{why};
}

std::string user_name(uid_t uid) {
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found) return pw.pw_name;
  return std::to_string(uid);
}

}  // namespace

std::optional<SubIdRange> find_subid_range(std::string_view text, std::string_view user,
                                           uint32_t id) {
  std::string id_text = std::to_string(id);
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    size_t c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view owner = line.substr(0, c1);
    if (owner != user && owner != id_text) continue;
    std::string_view start_text = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view count_text = line.substr(c2 + 1);
    while (!count_text.empty() && (count_text.back() == ' ' || count_text.back() == '\r'))
      count_text.remove_suffix(1);
    SubIdRange r;
    auto a = std::from_chars(start_text.data(), start_text.data() + start_text.size(), r.start);
    auto b = std::from_chars(count_text.data(), count_text.data() + count_text.size(), r.count);
    if (a.ec != std::errc() || a.ptr != start_text.data() + start_text.size() ||
        b.ec != std::errc() || b.ptr != count_text.data() + count_text.size() || r.count == 0)
      continue;
    return r;
  }
  return std::nullopt;
}

namespace {

// Each "inside outside count" line of a /proc/<pid>/uid_map text.
template <typename Fn>
void for_each_extent(std::string_view text, Fn fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    uint64_t v[3];
    int got = 0;
    size_t i = 0;
    while (got < 3 && i < line.size()) {
      while (i < line.size() && line[i] == ' ') ++i;
      auto r = std::from_chars(line.data() + i, line.data() + line.size(), v[got]);
      if (r.ec != std::errc()) break;
      i = static_cast<size_t>(r.ptr - line.data());
      ++got;
    }
    if (got == 3 && v[2] > 0) fn(v[0], v[1], v[2]);
  }
}

}  // namespace

std::string identity_map(std::string_view proc_map_text) {
  std::string out;
  // Our ids are the inside column; map each to itself.
  for_each_extent(proc_map_text, [&](uint64_t inside, uint64_t, uint64_t count) {
    out += fmt::format("{} {} {}\n", inside, inside, count);
  });
  return out;
}

std::string inner_map(bool whole, uint32_t caller_id, std::string_view outer_map_text) {
  std::string all = identity_map(outer_map_text);
  if (whole || all.empty()) return all;
  return fmt::format("{} 0 1\n", caller_id);
}

std::optional<std::pair<uint64_t, uint64_t>> inside_range(std::string_view map_text) {
  std::optional<std::pair<uint64_t, uint64_t>> r;
  for_each_extent(map_text, [&](uint64_t inside, uint64_t, uint64_t count) {
    uint64_t last = inside + count - 1;
    if (!r) r.emplace(inside, last);
    r->first = std::min(r->first, inside);
    r->second = std::max(r->second, last);
  });
  if (r) r->second = std::min<uint64_t>(r->second, 0x7fffffff);
  if (r && r->first > r->second) return std::nullopt;
  return r;
}

Result<IdMap> map_ids(pid_t pid, bool want_range) {
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  const std::string proc = fmt::format("/proc/{}/", pid);
  std::vector<std::string> failures;
  bool uid_written = false, gid_written = false;
  IdMap kind = IdMap::Single;  // what the uid side became

  // Completes the gid side directly with a single-id map; false when it
  // failed (the cause is in `failures`).
  auto write_single_gid = [&]() -> bool {
    // A kernel without setgroups (< 3.19) has no file: nothing to deny.
    if (kernel_file_exists(proc + "setgroups")) {
      if (auto w = write_kernel_file(proc + "setgroups", "deny"); !w) {
        failures.push_back("setgroups \"deny\": " + w.error().message);
        return false;
      }
    }
    std::string gmap = fmt::format("0 {} 1", gid);
    auto w = write_kernel_file(proc + "gid_map", gmap);
    if (!w) failures.push_back(fmt::format("gid_map \"{}\": {}", gmap, w.error().message));
    return w.ok();
  };

  // 1. Root: identity over every id we have.
  if (uid == 0) {
    auto umap = read_kernel_file("/proc/self/uid_map");
    auto gmap = read_kernel_file("/proc/self/gid_map");
    if (!umap || !gmap) {
      failures.push_back("cannot read /proc/self/uid_map or gid_map");
    } else {
      std::string u = identity_map(*umap), g = identity_map(*gmap);
      if (auto w = write_kernel_file(proc + "uid_map", u); !w) {
        failures.push_back(
            fmt::format("identity uid_map \"{}\": {}", one_line(u), w.error().message));
      } else {
        uid_written = true;
        kind = IdMap::Identity;
        auto wg = write_kernel_file(proc + "gid_map", g);
        if (wg) return IdMap::Identity;
        failures.push_back(
            fmt::format("identity gid_map \"{}\": {}", one_line(g), wg.error().message));
      }
    }
  }

  // 2. newuidmap/newgidmap with this user's subordinate ranges.
  if (!uid_written && want_range) {
    const std::string user = user_name(uid);
    auto newuidmap = find_in_path("newuidmap");
    auto newgidmap = find_in_path("newgidmap");
    auto subuid_text = read_kernel_file("/etc/subuid");
    auto subgid_text = read_kernel_file("/etc/subgid");
    std::optional<SubIdRange> ur, gr;
    if (subuid_text) ur = find_subid_range(*subuid_text, user, uid);
    if (subgid_text) gr = find_subid_range(*subgid_text, user, uid);
    std::vector<std::string> missing;
    if (!newuidmap) missing.push_back("newuidmap not found in PATH (package uidmap)");
    if (!newgidmap) missing.push_back("newgidmap not found in PATH (package uidmap)");
    if (!ur) missing.push_back(fmt::format("no range for {} in /etc/subuid", user));
    if (!gr) missing.push_back(fmt::format("no range for {} in /etc/subgid", user));
    if (!missing.empty()) {
      std::string joined;
      for (const auto& m : missing) joined += (joined.empty() ? "" : ", ") + m;
      failures.push_back("subordinate ids: " + joined);
    } else {
      // Both helpers run at once (they write different files): start-up time.
      std::string p = std::to_string(pid);
      Helper uh = spawn_helper(*newuidmap, {"newuidmap", p, "0", std::to_string(uid), "1", "1",
                                            std::to_string(ur->start),
                                            std::to_string(ur->count)});
      Helper gh = spawn_helper(*newgidmap, {"newgidmap", p, "0", std::to_string(gid), "1", "1",
                                            std::to_string(gr->start),
                                            std::to_string(gr->count)});
      Status udone = finish_helper(uh);
      Status gdone = finish_helper(gh);
      if (udone) {
        uid_written = true;
        kind = IdMap::SubIds;
      } else {
        failures.push_back("newuidmap: " + udone.error().str());
      }
      if (gdone) {
        gid_written = true;
      } else {
        failures.push_back("newgidmap: " + gdone.error().str());
      }
      if (uid_written && gid_written) return IdMap::SubIds;
    }
  }

  // 3. Direct single-id uid map.
  if (!uid_written) {
    std::string umap = fmt::format("0 {} 1", uid);
    if (auto w = write_kernel_file(proc + "uid_map", umap); !w) {
      failures.push_back(fmt::format("uid_map \"{}\": {}", umap, w.error().message));
    } else {
      uid_written = true;
      kind = IdMap::Single;
    }
  }
  // 3. (gid side) or 4. uid only.
  if (uid_written) {
    if (gid_written || write_single_gid()) return kind;
    return IdMap::UidOnly;
  }

  std::string msg;
  for (size_t i = 0; i < failures.size(); ++i) msg += (i ? "; " : "") + failures[i];
  return Error{msg, "sandbox: cannot map user ids"};
}

}  // namespace cf::sandbox::idmap
