// Cross-field validation of a merged Config; see validate.hpp.
//
// Each message names the flag (profiles use the same names with `_`), says
// what is wrong and how to fix it. The order of the checks is the order a
// user would fix them in: capture, proxy credentials, proxy options, backend.
#include "cli/validate.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fmt/format.h>
#include <utility>

#include "config/profile.hpp"

namespace cf::cli {

Status check_combinations(const Config& c) {
  if (c.capture_point != CapturePoint::Child && !c.capture)
    return Error{fmt::format(
        "--capture-point {} needs --capture FILE: add e.g. --capture out.pcapng, or drop "
        "--capture-point",
        name(c.capture_point))};

  if (c.capture && c.flow_log && *c.capture == *c.flow_log)
    return Error{fmt::format(
        "--capture and --flow-log both name {}: give them different files", *c.capture)};
  for (const auto& [flag, other] : {std::pair{"--capture", &c.capture}, {"--flow-log", &c.flow_log}})
    if (c.learn && *other && **other == *c.learn)
      return Error{fmt::format("--learn and {} both name {}: give them different files", flag,
                               *c.learn)};

  // Where the password came from, as the user gave it (CHILDFLOW_PROXY_PASSWORD
  // counts only with a user, so it never reaches the messages below).
  const char* password = c.proxy_password_file ? "--proxy-password-file" : "--proxy-password";
  if (c.proxy_user && !c.proxy_password)
    return Error{std::string(
        "--proxy-user is given without --proxy-password: give the password too "
        "(--proxy-password-file FILE, CHILDFLOW_PROXY_PASSWORD or -P PASSWORD), or drop "
        "--proxy-user")};
  if (c.proxy_password && !c.proxy_user)
    return Error{fmt::format(
        "{} is given without --proxy-user: give both (-U USER and the password) or neither",
        password)};

  if (!c.proxy) {
    const char* needs = c.proxy_user       ? "--proxy-user"
                        : c.proxy_password ? password
                        : c.proxy_insecure ? "--proxy-insecure"
                        : c.proxy_ca       ? "--proxy-ca"
                        : c.proxy_only     ? "--proxy-only"
                                           : nullptr;
    if (needs)
      return Error{fmt::format(
          "{} needs a proxy: add -p/--proxy URI (e.g. http://proxy.example:3128), or drop {}",
          needs, needs)};
    if (c.proxy_dns == ProxyDns::Remote)
      return Error{std::string(
          "--proxy-dns remote needs a proxy to resolve the names: add -p/--proxy URI (e.g. "
          "socks5://proxy.example:1080), or drop --proxy-dns")};
  } else {
    if (c.proxy_insecure && c.proxy->scheme != ProxyScheme::Https)
      return Error{fmt::format(
          "--proxy-insecure only applies to https:// proxies, and the proxy is {}: drop "
          "--proxy-insecure",
          c.proxy->str())};
    if (c.proxy_ca && c.proxy->scheme != ProxyScheme::Https)
      return Error{fmt::format(
          "--proxy-ca only applies to https:// proxies, and the proxy is {}: drop --proxy-ca",
          c.proxy->str())};
    if (c.proxy_user) {
      if (c.proxy->scheme == ProxyScheme::Socks5) {
        if (c.proxy_user->size() > 255)
          return Error{std::string(
              "--proxy-user is longer than 255 bytes, the SOCKS5 limit (RFC 1929)")};
        if (c.proxy_password->empty() || c.proxy_password->size() > 255)
          return Error{fmt::format(
              "{} must be 1 to 255 bytes for a SOCKS5 proxy (RFC 1929)",
              c.proxy_password_file ? "--proxy-password-file: the password"
                                    : "the proxy password")};
      } else if (c.proxy_user->find(':') != std::string::npos) {
        return Error{std::string(
            "--proxy-user contains `:`, which HTTP Basic authentication cannot carry: use a "
            "user name without `:`")};
      }
    }
  }

  if (c.iface && c.backend != Backend::Rootful)
    return Error{fmt::format(
        "--iface {} needs the rootful backend: add --root (or backend = \"rootful\" in the "
        "profile), or drop --iface",
        *c.iface)};
  return {};
}

// What the rootful backend does not do (docs/rootful.md,
// "--allow-host-loopback: refused"): refused before anything is created,
// rather than silently ignored.
Status check_rootful(const Config& c) {
  if (!c.allow_host_loopback) return {};
  return Error{
      "--allow-host-loopback is not available with the rootful backend (docs/rootful.md): "
      "bind the service to the tree's gateway address, or drop --root to use the "
      "rootless-internal backend"};
}

static Status check_parent_dir(const char* flag, const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = "/";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    return Error{fmt::format("{} {}: the directory {} does not exist: create it first (mkdir -p {})",
                       flag, path, dir, dir)};
  if (!S_ISDIR(st.st_mode))
    return Error{fmt::format("{} {}: {} is not a directory", flag, path, dir)};
  struct stat target {};
  if (::stat(path.c_str(), &target) == 0 && S_ISDIR(target.st_mode))
    return Error{fmt::format("{} {}: that is a directory: give a file name", flag, path)};
  return {};
}

// --learn FILE: the writer must be able to create a file beside it, and an
// existing FILE must be a profile it can merge into (learn/learn.hpp); both
// are known now, before anything runs.
static Status check_learn_file(const std::string& path) {
  if (Status st = check_parent_dir("--learn", path); !st) return st;
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = "/";
  if (::access(dir.c_str(), W_OK) != 0)
    return Error{fmt::format("--learn {}: cannot write in {} ({}): choose a directory you can write to",
                             path, dir, std::strerror(errno))};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  if (!S_ISREG(st.st_mode))
    return Error{fmt::format("--learn {}: not a regular file: give a profile file or a new name",
                             path)};
  if (auto loaded = config::load_profile(path); !loaded)
    return Error{fmt::format("--learn {}: exists but is not a profile to merge into ({}): fix it, "
                             "or give a new file name",
                             path, loaded.error().message)};
  return {};
}

Status check_output_dirs(const Config& c) {
  if (c.capture)
    if (Status st = check_parent_dir("--capture", *c.capture); !st) return st;
  if (c.flow_log)
    if (Status st = check_parent_dir("--flow-log", *c.flow_log); !st) return st;
  if (c.learn) return check_learn_file(*c.learn);
  return {};
}

}  // namespace cf::cli
