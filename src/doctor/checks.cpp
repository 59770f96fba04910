// The checks declared in checks.hpp. Every host fact comes from Host; this
// file only interprets it. Conventions:
//   - detail says what was found, with the sysctl or path name and its value;
//   - hint (warning and fatal only) is one sentence the user can act on,
//     usually a command;
//   - errno values are shown as "EPERM (Operation not permitted)".
#include "doctor/checks.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <string_view>

#include <fmt/format.h>

#include "common/addr.hpp"

namespace cf::doctor {

const char* name(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::Warning: return "warning";
    case Status::Fatal: return "fatal";
  }
  return "?";
}

const char* name(Overall o) {
  switch (o) {
    case Overall::Ready: return "ready";
    case Overall::ReadyWithWarnings: return "ready with warnings";
    case Overall::Blocked: return "blocked";
  }
  return "?";
}

Overall Report::overall() const {
  bool warn = false;
  for (const Check& c : checks) {
    if (c.status == Status::Fatal) return Overall::Blocked;
    if (c.status == Status::Warning) warn = true;
  }
  return warn ? Overall::ReadyWithWarnings : Overall::Ready;
}

namespace {

Check ok(std::string key, std::string label, Section s, std::string detail) {
  return Check{std::move(key), std::move(label), s, Status::Ok, std::move(detail), {}};
}
Check warning(std::string key, std::string label, Section s, std::string detail,
              std::string hint) {
  return Check{std::move(key), std::move(label), s, Status::Warning, std::move(detail),
               std::move(hint)};
}
Check fatal(std::string key, std::string label, Section s, std::string detail,
            std::string hint) {
  return Check{std::move(key), std::move(label), s, Status::Fatal, std::move(detail),
               std::move(hint)};
}

// A rootful check that only root can run, seen by someone else.
Check needs_root(std::string key, std::string label, Section s) {
  return warning(std::move(key), std::move(label), s, "not checked: needs root",
                 "run `childflow --doctor --root` as root to check it");
}

std::string errno_text(int e) {
  if (e == 0) return "failed";
  const char* n = ::strerrorname_np(e);
  return fmt::format("{} ({})", n ? n : fmt::format("errno {}", e), std::strerror(e));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n' ||
                        s.front() == '\r'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

template <typename Int>
std::optional<Int> parse_int(std::string_view s, int base = 10) {
  s = trim(s);
  Int v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::vector<std::string_view> split_ws(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    size_t p = s.find(sep);
    out.push_back(s.substr(0, p));
    if (p == std::string_view::npos) break;
    s.remove_prefix(p + 1);
  }
  return out;
}

// Name of a uid or gid from /etc/passwd or /etc/group (read through Host),
// else the number.
std::string id_name(Host& h, const char* db, unsigned id) {
  if (auto text = h.read_file(db)) {
    for (std::string_view line : lines(*text)) {
      auto f = split(line, ':');
      if (f.size() >= 3 && parse_int<unsigned>(f[2]) == id) return std::string(f[0]);
    }
  }
  return std::to_string(id);
}

// The hint for a failed sysctl we ask root to change.
std::string sysctl_hint(std::string_view setting) {
  return fmt::format("as root: sysctl -w {} (persist it in /etc/sysctl.d/)", setting);
}

bool has_cap_net_raw(Host& h) {
  auto status = h.read_file("/proc/self/status");
  if (!status) return false;
  for (std::string_view line : lines(*status)) {
    if (!line.starts_with("CapEff:")) continue;
    auto caps = parse_int<uint64_t>(line.substr(7), 16);
    return caps && (*caps & (uint64_t{1} << 13)) != 0;  // CAP_NET_RAW
  }
  return false;
}

struct GidRange {
  int64_t low = 1;
  int64_t high = 0;
};

std::optional<GidRange> ping_range(Host& h) {
  auto text = h.read_file("/proc/sys/net/ipv4/ping_group_range");
  if (!text) return std::nullopt;
  auto f = split_ws(trim(*text));
  if (f.size() != 2) return std::nullopt;
  auto lo = parse_int<int64_t>(f[0]);
  auto hi = parse_int<int64_t>(f[1]);
  if (!lo || !hi) return std::nullopt;
  return GidRange{*lo, *hi};
}

// The gid of `id` that the range covers (the kernel tries the effective gid,
// then the supplementary groups).
std::optional<gid_t> covered_gid(const GidRange& r, const Identity& id) {
  auto in = [&](gid_t g) { return r.low <= int64_t{g} && int64_t{g} <= r.high; };
  if (in(id.egid)) return id.egid;
  for (gid_t g : id.groups)
    if (in(g)) return g;
  return std::nullopt;
}

const char* kTrialLabel = "user namespace trial";

}  // namespace

const char* describe(IcmpPath p) {
  switch (p) {
    case IcmpPath::PingSocket: return "unprivileged ping sockets";
    case IcmpPath::AdminProhibited:
      return "no path: the tree's echo requests are answered with ICMP administratively "
             "prohibited";
  }
  return "?";
}

IcmpPath icmp_path(Host& h, const Identity&) {
  // The kernel is the judge: it applies ping_group_range to the caller's
  // groups (in its user namespace), so a trial socket says what the engine
  // will get.
  return h.try_ping_socket(false) == 0 ? IcmpPath::PingSocket : IcmpPath::AdminProhibited;
}

// --- rootless-internal -------------------------------------------------------

Check check_namespace(Host& h, const std::string& ns) {
  static const struct {
    const char* ns;
    const char* label;
    const char* config;
  } kinds[] = {{"user", "user namespaces", "CONFIG_USER_NS"},
               {"net", "network namespaces", "CONFIG_NET_NS"},
               {"mnt", "mount namespaces", "CONFIG_NAMESPACES"},
               {"pid", "PID namespaces", "CONFIG_PID_NS"}};
  std::string label = ns + " namespaces";
  std::string config = "CONFIG_NAMESPACES";
  for (const auto& k : kinds) {
    if (ns == k.ns) {
      label = k.label;
      config = k.config;
    }
  }
  std::string key = ns + "ns";
  std::string path = "/proc/self/ns/" + ns;
  if (h.stat_path(path).exists)
    return ok(key, label, Section::Capability, fmt::format("{} present", path));
  return fatal(key, label, Section::Capability,
               fmt::format("{} missing: this kernel has no {}", path, label),
               fmt::format("use a kernel built with {} (every mainstream distribution kernel is)",
                           config));
}

Check check_max_user_namespaces(Host& h) {
  const char* key = "max_user_namespaces";
  const char* label = "user namespace quota";
  auto text = h.read_file("/proc/sys/user/max_user_namespaces");
  if (!text)
    return warning(key, label, Section::Capability,
                   "cannot read /proc/sys/user/max_user_namespaces",
                   "the user namespace trial shows whether namespaces can be created");
  auto v = parse_int<int64_t>(*text);
  if (!v)
    return warning(key, label, Section::Capability,
                   fmt::format("unexpected user.max_user_namespaces value '{}'", trim(*text)),
                   "the user namespace trial shows whether namespaces can be created");
  if (*v <= 0)
    return fatal(key, label, Section::Capability,
                 fmt::format("user.max_user_namespaces = {}: no user namespace can be created",
                             *v),
                 sysctl_hint("user.max_user_namespaces=15000"));
  return ok(key, label, Section::Capability, fmt::format("user.max_user_namespaces = {}", *v));
}

Check check_unprivileged_userns_clone(Host& h, const Identity& id) {
  const char* key = "unprivileged_userns_clone";
  const char* label = "unprivileged user namespaces switch";
  auto text = h.read_file("/proc/sys/kernel/unprivileged_userns_clone");
  if (!text)
    return ok(key, label, Section::Capability,
              "kernel.unprivileged_userns_clone not present (no such switch on this kernel)");
  auto v = parse_int<int64_t>(*text);
  if (v && *v == 0) {
    if (id.euid == 0)
      return ok(key, label, Section::Capability,
                "kernel.unprivileged_userns_clone = 0, but root is not restricted by it");
    return fatal(key, label, Section::Capability,
                 "kernel.unprivileged_userns_clone = 0: unprivileged user namespaces are "
                 "disabled",
                 sysctl_hint("kernel.unprivileged_userns_clone=1") +
                     ", or run `childflow --root` as root");
  }
  return ok(key, label, Section::Capability,
            fmt::format("kernel.unprivileged_userns_clone = {}", trim(*text)));
}

Check check_apparmor_restrict_userns(Host& h, const Identity& id) {
  const char* key = "apparmor_restrict_userns";
  const char* label = "AppArmor user namespace restriction";
  auto text = h.read_file("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (!text)
    return ok(key, label, Section::Capability,
              "kernel.apparmor_restrict_unprivileged_userns not present (no such restriction)");
  auto v = parse_int<int64_t>(*text);
  if (v && *v != 0) {
    if (id.euid == 0)
      return ok(key, label, Section::Capability,
                fmt::format("kernel.apparmor_restrict_unprivileged_userns = {}, but root is "
                            "not restricted by it",
                            *v));
    return fatal(key, label, Section::Capability,
                 fmt::format("kernel.apparmor_restrict_unprivileged_userns = {}: AppArmor "
                             "gives unconfined programs no capabilities in a new user "
                             "namespace",
                             *v),
                 sysctl_hint("kernel.apparmor_restrict_unprivileged_userns=0") +
                     ", or load an AppArmor profile for childflow that has the `userns,` rule");
  }
  return ok(key, label, Section::Capability,
            fmt::format("kernel.apparmor_restrict_unprivileged_userns = {}", trim(*text)));
}

Check check_confine_trial(Host& h) {
  const char* key = "engine_confinement";
  const char* label = "engine confinement";
  Trial t = h.confine_trial();
  if (t.ok)
    return ok(key, label, Section::Capability,
              "a child dropped its capabilities, set no-new-privs and loaded the engine's "
              "seccomp filter");
  return fatal(key, label, Section::Capability,
               t.message.empty() ? fmt::format("{} failed", t.step) : t.message,
               "the engine runs only confined: use a kernel with CONFIG_SECCOMP_FILTER, and "
               "let a container allow seccomp(2) (Docker's and Podman's default profiles do)");
}

Check check_userns_trial(Host& h) {
  const char* key = "userns_trial";
  Trial t = h.userns_trial();
  if (t.ok)
    return ok(key, kTrialLabel, Section::Capability,
              "a child created a user namespace, mapped its own uid and gid, and created "
              "network, mount and PID namespaces");
  std::string detail = fmt::format("{} failed: {}", t.step, errno_text(t.err));
  if (!t.message.empty()) detail += ": " + t.message;
  std::string hint;
  const bool first_step = t.step.starts_with("unshare(CLONE_NEWUSER)");
  const bool later_unshare = t.step.starts_with("unshare(") && !first_step;
  switch (t.err) {
    case ENOSPC:
      hint = "the user namespace quota is used up or 0: " +
             sysctl_hint("user.max_user_namespaces=15000");
      break;
    case EUSERS:
      hint = "user namespaces are nested 32 deep already: run childflow from a shallower "
             "namespace";
      break;
    case EINVAL:
      hint = "the kernel lacks namespace support: use a kernel with CONFIG_USER_NS and "
             "CONFIG_NET_NS";
      break;
    case EPERM:
    case EACCES:
      if (later_unshare)
        hint = "the new user namespace has no capabilities, which is what AppArmor's "
               "kernel.apparmor_restrict_unprivileged_userns=1 does: " +
               sysctl_hint("kernel.apparmor_restrict_unprivileged_userns=0");
      else if (first_step)
        hint = "unprivileged user namespaces are forbidden here (a distribution switch, a "
               "container's seccomp profile or a security module): enable them, or run "
               "`childflow --root` as root";
      else
        hint = "the kernel refused the single-id map: check for a security module that "
               "restricts /proc/self/uid_map, or run `childflow --root` as root";
      break;
    default:
      hint = "user namespaces cannot be created here: run `childflow --root` as root";
      break;
  }
  return fatal(key, kTrialLabel, Section::Capability, detail, hint);
}

Check check_newuidmap(Host& h, const Identity& id) {
  const char* key = "newuidmap";
  const char* label = "newuidmap/newgidmap";
  std::vector<std::string> found, missing, unprivileged;
  for (const char* tool : {"newuidmap", "newgidmap"}) {
    auto path = h.find_executable(tool);
    if (!path) {
      missing.emplace_back(tool);
      continue;
    }
    FileInfo fi = h.stat_path(*path);
    bool setuid_root = (fi.mode & S_ISUID) != 0 && fi.uid == 0;
    if (setuid_root || fi.has_file_caps)
      found.push_back(fmt::format("{} ({})", *path, setuid_root ? "setuid root" : "file capabilities"));
    else
      unprivileged.push_back(*path);
  }
  if (id.euid == 0) {
    std::string have = found.empty() ? "not installed" : fmt::format("{}", fmt::join(found, ", "));
    return ok(key, label, Section::Capability,
              fmt::format("not needed as root (childflow writes the maps itself); {}", have));
  }
  if (!missing.empty())
    return warning(key, label, Section::Capability,
                   fmt::format("{} not found on PATH: the tree maps only your own uid and gid "
                               "(files of other users show as nobody)",
                               fmt::join(missing, " and ")),
                   "install them (Debian/Ubuntu: apt install uidmap; Fedora: dnf install "
                   "shadow-utils) for a full id range inside the tree");
  if (!unprivileged.empty())
    return warning(key, label, Section::Capability,
                   fmt::format("{} neither setuid root nor given file capabilities: they "
                               "cannot map ranges, so only your own uid and gid are mapped",
                               fmt::join(unprivileged, " and ")),
                   "reinstall the uidmap package so the tools are setuid root");
  return ok(key, label, Section::Capability, fmt::format("{}", fmt::join(found, ", ")));
}

Check check_subid(Host& h, const Identity& id, bool gid_ranges) {
  const std::string key = gid_ranges ? "subgid" : "subuid";
  const std::string path = gid_ranges ? "/etc/subgid" : "/etc/subuid";
  const std::string label = path + " range";
  const std::string who = id.user_name.empty()
                              ? fmt::format("uid {}", id.uid)
                              : fmt::format("{} (uid {})", id.user_name, id.uid);
  const std::string fix = fmt::format(
      "as root: usermod --add-sub{}s 100000-165535 {}", gid_ranges ? "gid" : "uid",
      id.user_name.empty() ? std::to_string(id.uid) : id.user_name);
  if (id.euid == 0)
    return ok(key, label, Section::Preflight,
              "not needed as root (childflow maps ids directly)");
  auto text = h.read_file(path);
  if (!text)
    return warning(key, label, Section::Preflight,
                   fmt::format("{} missing or unreadable: the tree maps only your own {}", path,
                               gid_ranges ? "gid" : "uid"),
                   fix);
  std::vector<std::string> ranges;
  uint64_t total = 0;
  const std::string uid_text = std::to_string(id.uid);
  for (std::string_view line : lines(*text)) {
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    auto f = split(line, ':');
    if (f.size() != 3) continue;
    if (!(f[0] == uid_text || (!id.user_name.empty() && f[0] == id.user_name))) continue;
    auto start = parse_int<uint64_t>(f[1]);
    auto count = parse_int<uint64_t>(f[2]);
    if (!start || !count || *count == 0) continue;
    ranges.push_back(fmt::format("{}-{}", *start, *start + *count - 1));
    total += *count;
  }
  if (ranges.empty())
    return warning(key, label, Section::Preflight,
                   fmt::format("no range for {} in {}: the tree maps only your own {}", who,
                               path, gid_ranges ? "gid" : "uid"),
                   fix);
  return ok(key, label, Section::Preflight,
            fmt::format("{}: {} ({} ids)", who, fmt::join(ranges, ", "), total));
}

Check check_tun(Host& h) {
  const char* key = "tun";
  const char* label = "/dev/net/tun";
  FileInfo fi = h.stat_path("/dev/net/tun");
  if (!fi.exists)
    return fatal(key, label, Section::Capability, "/dev/net/tun does not exist",
                 "as root: modprobe tun, or create it: mknod /dev/net/tun c 10 200 && chmod "
                 "0666 /dev/net/tun");
  std::string mode_owner = fmt::format("mode {:04o}, owner {}:{}", fi.mode & 07777,
                                       id_name(h, "/etc/passwd", fi.uid),
                                       id_name(h, "/etc/group", fi.gid));
  if (!S_ISCHR(fi.mode))
    return fatal(key, label, Section::Capability,
                 fmt::format("/dev/net/tun is not a character device ({})", mode_owner),
                 "as root: rm /dev/net/tun && mknod /dev/net/tun c 10 200 && chmod 0666 "
                 "/dev/net/tun");
  int e = h.try_open_rw("/dev/net/tun");
  if (e == 0)
    return ok(key, label, Section::Capability, fmt::format("opens read-write ({})", mode_owner));
  std::string detail = fmt::format("cannot be opened: {}; {}", errno_text(e), mode_owner);
  if (e == ENODEV || e == ENXIO)
    return fatal(key, label, Section::Capability, detail,
                 "the tun driver is not loaded: as root, modprobe tun");
  return fatal(key, label, Section::Capability, detail,
               "as root: chmod 0666 /dev/net/tun (the mode most distributions ship; opening "
               "it grants nothing by itself), and keep it with a udev rule such as "
               "KERNEL==\"tun\", MODE=\"0666\" in /etc/udev/rules.d/60-tun.rules; or run "
               "`childflow --root` as root");
}

Check check_ping_group_range(Host& h, const Identity& id) {
  const char* key = "ping_group_range";
  const char* label = "ICMP echo";
  auto range = ping_range(h);
  std::string found =
      range ? fmt::format("net.ipv4.ping_group_range = {} {}", range->low, range->high)
            : std::string("net.ipv4.ping_group_range unreadable");
  std::optional<gid_t> g = range ? covered_gid(*range, id) : std::nullopt;
  std::string covers = !range ? std::string()
                       : g    ? fmt::format(" covers gid {}", *g)
                              : fmt::format(" does not cover gid {}", id.egid);
  IcmpPath path = icmp_path(h, id);
  if (path == IcmpPath::PingSocket) {
    int e6 = h.try_ping_socket(true);
    std::string v6 = e6 == 0 ? " (IPv4 and IPv6)"
                             : fmt::format(" (IPv4; IPv6 ping socket: {})", errno_text(e6));
    return ok(key, label, Section::Capability,
              fmt::format("{}{}: ICMP echo uses {}{}", found, covers, describe(path), v6));
  }
  int e = h.try_ping_socket(false);
  std::string why = has_cap_net_raw(h) ? "; CAP_NET_RAW does not help: the engine relays echo "
                                         "through ping sockets only"
                                       : "";
  return warning(key, label, Section::Capability,
                 fmt::format("{}{} and a ping socket fails with {}: ICMP echo has {}{}", found,
                             covers, errno_text(e), describe(path), why),
                 "only ping/traceroute -I need it; " +
                     sysctl_hint(fmt::format("net.ipv4.ping_group_range=\"{} {}\"", id.egid,
                                             id.egid)) +
                     ", or a range such as \"0 2147483647\" for every group");
}

Check check_kernel_feature(Host& h, kernel::Feature f) {
  kernel::Probe p = h.kernel_probe(f);
  std::string key = fmt::format("kernel_{}", p.name);
  std::string found = p.available ? "the kernel has it" : "the kernel lacks it";
  if (p.available && p.forced_off) found += ", but CHILDFLOW_FORCE_FALLBACK turns it off";
  return ok(key, fmt::format("kernel feature {}", p.name), Section::Capability,
            fmt::format("{}: {}", found, kernel::describe_path(f, p.in_use())));
}

// --- both backends -----------------------------------------------------------

Check check_resolver(Host& h, const Config& c) {
  const char* key = "resolver";
  const char* label = "upstream resolver";
  if (c.proxy_dns == ProxyDns::Remote)
    return ok(key, label, Section::Preflight,
              "not used: with --proxy-dns remote the proxy resolves the tree's names");
  if (c.dns)
    return ok(key, label, Section::Preflight, fmt::format("{} (from --dns)", c.dns->str()));
  auto text = h.read_file("/etc/resolv.conf");
  if (!text)
    return warning(key, label, Section::Preflight,
                   "/etc/resolv.conf missing or unreadable and no --dns given: the tree's DNS "
                   "queries will fail",
                   "pass --dns ADDRESS");
  for (std::string_view line : lines(*text)) {
    auto f = split_ws(trim(line));
    if (f.size() < 2 || f[0] != "nameserver") continue;
    std::string_view addr = f[1];
    if (size_t pct = addr.find('%'); pct != std::string_view::npos) addr = addr.substr(0, pct);
    auto ip = IpAddr::parse(addr);
    if (!ip)
      return warning(key, label, Section::Preflight,
                     fmt::format("first nameserver in /etc/resolv.conf is not an address: {}",
                                 f[1]),
                     "fix /etc/resolv.conf or pass --dns ADDRESS");
    return ok(key, label, Section::Preflight,
              fmt::format("{} (first nameserver in /etc/resolv.conf)", ip->str()));
  }
  return warning(key, label, Section::Preflight,
                 "no nameserver in /etc/resolv.conf and no --dns given: the tree's DNS "
                 "queries will fail",
                 "pass --dns ADDRESS, or add a nameserver line to /etc/resolv.conf");
}

namespace {
constexpr unsigned kRtfUp = 0x0001;
constexpr unsigned kRtfReject = 0x0200;
}  // namespace

Check check_ipv4_route(Host& h) {
  const char* key = "ipv4_route";
  const char* label = "IPv4 default route";
  auto text = h.read_file("/proc/net/route");
  const char* consequence =
      "the tree can reach only IPv4 destinations on directly connected networks";
  if (!text)
    return warning(key, label, Section::Preflight,
                   fmt::format("/proc/net/route unreadable: {}", consequence),
                   "check that /proc is mounted");
  auto all = lines(*text);
  for (size_t i = 1; i < all.size(); ++i) {
    auto f = split_ws(all[i]);
    if (f.size() < 8) continue;
    auto dest = parse_int<uint32_t>(f[1], 16);
    auto gw = parse_int<uint32_t>(f[2], 16);
    auto flags = parse_int<unsigned>(f[3], 16);
    auto mask = parse_int<uint32_t>(f[7], 16);
    if (!dest || !gw || !flags || !mask) continue;
    if (*dest != 0 || *mask != 0 || !(*flags & kRtfUp) || (*flags & kRtfReject)) continue;
    // The kernel prints the network-order address as a native integer, so its
    // in-memory bytes are the address bytes.
    uint8_t b[4];
    std::memcpy(b, &*gw, 4);
    std::string via = *gw ? fmt::format("via {} ", IpAddr::v4_bytes(b).str()) : std::string();
    return ok(key, label, Section::Preflight, fmt::format("{}dev {}", via, f[0]));
  }
  return warning(key, label, Section::Preflight,
                 fmt::format("no IPv4 default route: {}", consequence),
                 "add an IPv4 default route if the tree needs IPv4 beyond the local networks");
}

Check check_ipv6_route(Host& h) {
  const char* key = "ipv6_route";
  const char* label = "IPv6 default route";
  const char* consequence =
      "AAAA queries from the tree get empty answers and IPv6 destinations are unreachable";
  const char* hint =
      "nothing to do if this host has no IPv6; otherwise add an IPv6 default route";
  auto text = h.read_file("/proc/net/ipv6_route");
  if (!text)
    return warning(key, label, Section::Preflight,
                   fmt::format("/proc/net/ipv6_route missing (IPv6 disabled?): {}", consequence),
                   hint);
  for (std::string_view line : lines(*text)) {
    auto f = split_ws(line);
    if (f.size() < 10 || f[0].size() != 32 || f[4].size() != 32) continue;
    auto plen = parse_int<unsigned>(f[1], 16);
    auto flags = parse_int<unsigned>(f[8], 16);
    if (!plen || !flags) continue;
    if (f[0] != std::string(32, '0') || *plen != 0) continue;
    if (!(*flags & kRtfUp) || (*flags & kRtfReject)) continue;
    uint8_t nh[16];
    bool parsed = true;
    for (size_t i = 0; i < 16; ++i) {
      auto byte = parse_int<unsigned>(f[4].substr(2 * i, 2), 16);
      if (!byte) parsed = false;
      nh[i] = static_cast<uint8_t>(byte.value_or(0));
    }
    bool has_gw = parsed && std::any_of(nh, nh + 16, [](uint8_t x) { return x != 0; });
    std::string via =
        has_gw ? fmt::format("via {} ", IpAddr::v6_bytes(nh).str()) : std::string();
    return ok(key, label, Section::Preflight, fmt::format("{}dev {}", via, f[9]));
  }
  return warning(key, label, Section::Preflight,
                 fmt::format("no IPv6 default route: {}", consequence), hint);
}

Check check_packet_socket(Host& h, const Identity& id, const Config& c) {
  const char* key = "packet_socket";
  const char* label = "packet sockets";
  const bool wire = c.capture && c.capture_point == CapturePoint::WireEgress;
  // The rootful backend reads every capture view from a packet socket.
  const bool rootful_capture = c.capture && c.backend == Backend::Rootful;
  int e = h.try_packet_socket();
  if (e == 0)
    return ok(key, label, Section::Capability,
              "socket(AF_PACKET, SOCK_RAW) works: --capture-point wire-egress is available");
  std::string detail =
      rootful_capture && !wire
          ? fmt::format("socket(AF_PACKET, SOCK_RAW) failed: {}: --capture (requested) cannot "
                        "work: the rootful backend reads the tree's veth with one",
                        errno_text(e))
          : fmt::format("socket(AF_PACKET, SOCK_RAW) failed: {}: --capture-point wire-egress {}",
                        errno_text(e), wire ? "(requested) cannot work" : "is unavailable");
  std::string hint = id.euid == 0
                         ? "the kernel needs packet sockets (CONFIG_PACKET; modprobe af_packet)"
                         : "wire-egress capture needs CAP_NET_RAW: run as root; the other "
                           "capture points need no privilege";
  if (wire || rootful_capture) return fatal(key, label, Section::Capability, detail, hint);
  return warning(key, label, Section::Capability, detail, hint);
}

// --- rootful -----------------------------------------------------------------

Check check_root(const Identity& id) {
  const char* key = "root";
  const char* label = "root";
  if (id.euid == 0)
    return ok(key, label, Section::Preflight, "running as root (euid 0)");
  return fatal(key, label, Section::Preflight,
               fmt::format("running as uid {} (euid {}): the rootful backend changes host "
                           "networking and needs root",
                           id.uid, id.euid),
               "run it as root (sudo childflow --root ...), or drop --root to use the "
               "rootless-internal backend");
}

Check check_nftables(Host& h, const Identity& id) {
  const char* key = "nftables";
  const char* label = "nftables";
  if (id.euid != 0) return needs_root(key, label, Section::Capability);
  std::string table = fmt::format("inet childflow_doctor_{}", h.pid());
  // What a run's table uses (rootful/ruleset.hpp): conntrack, a dynamic set
  // of concatenations, both rejects, named counters and masquerade.
  Trial t = h.nft_trial(fmt::format(
      "add table {0}\n"
      "add counter {0} c\n"
      "add set {0} s {{ type ipv4_addr . inet_proto . inet_service; flags dynamic; }}\n"
      "add chain {0} f {{ type filter hook forward priority filter; policy accept; }}\n"
      "add rule {0} f ct state established,related accept\n"
      "add rule {0} f meta l4proto tcp add @s {{ ip daddr . meta l4proto . th dport }} "
      "counter name \"c\" reject with tcp reset\n"
      "add rule {0} f reject with icmpx type admin-prohibited\n"
      "add chain {0} n {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
      "add rule {0} n ip saddr 10.240.0.2 masquerade\n"
      "add rule {0} n ip6 saddr fd42::2 masquerade\n"
      "delete table {0}\n",
      table));
  if (t.ok)
    return ok(key, label, Section::Capability,
              fmt::format("table {} with the rules a run needs (conntrack, dynamic sets, "
                          "reject, masquerade) loads in a throwaway network namespace",
                          table));
  std::string detail = fmt::format("{} failed: {}", t.step, t.message.empty() ? errno_text(t.err) : t.message);
  if (t.step == "load libnftables")
    return fatal(key, label, Section::Capability, detail,
                 "the rootful backend needs the nftables library: install libnftables1 "
                 "(Debian, Ubuntu) or nftables (Fedora, RHEL)");
  return fatal(key, label, Section::Capability, detail,
               "the kernel needs nf_tables (CONFIG_NF_TABLES, CONFIG_NF_TABLES_INET): as root, "
               "modprobe nf_tables");
}

Check check_forwarding(Host& h, const Identity& id, bool ipv6) {
  const std::string key = ipv6 ? "ipv6_forward" : "ipv4_forward";
  const std::string label = ipv6 ? "IPv6 forwarding sysctl" : "IPv4 forwarding sysctl";
  const std::string sysctl = ipv6 ? "net.ipv6.conf.all.forwarding" : "net.ipv4.ip_forward";
  const std::string path =
      ipv6 ? "/proc/sys/net/ipv6/conf/all/forwarding" : "/proc/sys/net/ipv4/ip_forward";
  if (id.euid != 0) return needs_root(key, label, Section::Preflight);
  auto text = h.read_file(path);
  if (!text) {
    if (ipv6)
      return warning(key, label, Section::Preflight,
                     fmt::format("{} missing (IPv6 disabled?): the rootful backend forwards "
                                 "IPv4 only",
                                 path),
                     "nothing to do if this host has no IPv6");
    return fatal(key, label, Section::Preflight, fmt::format("{} missing", path),
                 "the kernel needs IPv4 networking with /proc/sys mounted");
  }
  std::string value(trim(*text));
  int e = h.try_open_write(path);
  if (e == 0)
    return ok(key, label, Section::Preflight,
              fmt::format("{} = {}, writable (a rootful run enables it and restores it)",
                          sysctl, value));
  std::string detail =
      fmt::format("{} = {}, not writable: {}", sysctl, value, errno_text(e));
  std::string hint = e == EROFS
                         ? "/proc/sys is read-only here (a container?): run on the host, or "
                           "give the container a writable /proc/sys"
                         : "run as real root in the host's network namespace";
  if (value == "1")
    return warning(key, label, Section::Preflight,
                   detail + " (already enabled, so a run need not change it)", hint);
  return fatal(key, label, Section::Preflight, detail,
               hint + fmt::format(", or enable it beforehand: sysctl -w {}=1", sysctl));
}

Check check_tproxy(Host& h, const Identity& id, const Config& c) {
  const char* key = "tproxy";
  const char* label = "TPROXY";
  if (id.euid != 0) return needs_root(key, label, Section::Capability);
  std::string table = fmt::format("inet childflow_doctor_{}", h.pid());
  Trial t = h.nft_trial(fmt::format(
      "add table {0}\n"
      "add chain {0} pre {{ type filter hook prerouting priority mangle; }}\n"
      "add rule {0} pre meta l4proto tcp tproxy ip to 127.0.0.1:1 meta mark set 1 accept\n"
      "add rule {0} pre meta l4proto tcp tproxy ip6 to [::1]:1 meta mark set 1 accept\n"
      "delete table {0}\n",
      table));
  if (t.ok)
    return ok(key, label, Section::Capability,
              "IPv4 and IPv6 tproxy rules load in a throwaway network namespace");
  std::string detail = fmt::format("a tproxy rule does not load: {} failed: {}", t.step,
                                   t.message.empty() ? errno_text(t.err) : t.message);
  std::string hint =
      t.step == "load libnftables"
          ? "install libnftables1 (Debian, Ubuntu) or nftables (Fedora, RHEL); without it "
            "`--root --proxy` cannot intercept connections"
          : "the kernel needs nft_tproxy with nf_tproxy_ipv4/ipv6 (as root: modprobe "
            "nft_tproxy); without it `--root --proxy` cannot intercept connections";
  if (c.proxy) return fatal(key, label, Section::Capability, detail + " (--proxy needs it)", hint);
  return warning(key, label, Section::Capability, detail + " (only --proxy needs it)", hint);
}

Check check_conntrack_events(Host& h, const Identity& id, const Config& c) {
  const char* key = "conntrack_events";
  const char* label = "conntrack events";
  if (id.euid != 0) return needs_root(key, label, Section::Capability);
  // Conntrack names the tree's direct flows for the flow log, the summary,
  // --learn and the capture's per-frame flow ids (rootful/conntrack.hpp).
  const bool needed = c.flow_log || c.summary || c.learn || c.capture;
  int e = h.try_ctnetlink();
  if (e == 0)
    return ok(key, label, Section::Capability,
              "ctnetlink's event groups can be joined: --flow-log, --summary, --learn and "
              "--capture see the tree's direct flows");
  std::string detail = fmt::format(
      "a NETLINK_NETFILTER socket cannot join the conntrack event groups: {}{}", errno_text(e),
      needed ? " (--flow-log, --summary, --learn or --capture needs it)"
             : " (only --flow-log, --summary, --learn and --capture need it)");
  std::string hint = "the kernel needs nf_conntrack_netlink (CONFIG_NF_CT_NETLINK): as root, "
                     "modprobe nf_conntrack_netlink";
  if (needed) return fatal(key, label, Section::Capability, detail, hint);
  return warning(key, label, Section::Capability, detail, hint);
}

Check check_policy_routing(Host& h, const Identity& id, const Config& c) {
  const char* key = "policy_routing";
  const char* label = "policy routing";
  if (id.euid != 0) return needs_root(key, label, Section::Capability);
  Trial t = h.policy_routing_trial();
  if (t.ok)
    return ok(key, label, Section::Capability,
              "fwmark rules to a numbered table can be added (IPv4 and IPv6) in a throwaway "
              "network namespace: --iface is available");
  std::string detail = fmt::format("{} failed: {}{}", t.step,
                                   t.message.empty() ? errno_text(t.err) : t.message,
                                   c.iface ? " (--iface needs it)" : " (only --iface needs it)");
  std::string hint = "the kernel needs CONFIG_IP_MULTIPLE_TABLES and CONFIG_IPV6_MULTIPLE_TABLES";
  if (c.iface) return fatal(key, label, Section::Capability, detail, hint);
  return warning(key, label, Section::Capability, detail, hint);
}

Check check_iface(Host& h, const std::string& iface) {
  const char* key = "iface";
  const char* label = "--iface";
  if (cf::Status s = h.iface_ready(iface); !s)
    return fatal(key, label, Section::Preflight, s.error().message,
                 "--iface names the host interface the tree's traffic leaves through: it must "
                 "exist and have a default route");
  return ok(key, label, Section::Preflight,
            fmt::format("{} exists and has a default route: the tree's direct traffic leaves "
                        "through it",
                        iface));
}

Check check_leftover_state(Host& h, const Identity& id) {
  const char* key = "leftover_state";
  const char* label = "leftovers of killed runs";
  std::vector<std::string> found;
  std::string not_listed;
  if (id.euid == 0) {
    if (auto tables = h.nft_tables()) {
      for (const std::string& t : *tables) {
        auto f = split_ws(t);
        if (f.size() == 2 && f[1].starts_with(kNftTablePrefix))
          found.push_back(fmt::format("nftables table {}", t));
      }
    } else {
      not_listed = fmt::format(" (nftables tables not listed: {})", tables.error().str());
    }
  } else {
    not_listed = " (nftables tables not listed: needs root)";
  }
  std::vector<std::string> links = h.list_dir("/sys/class/net");
  std::sort(links.begin(), links.end());
  for (const std::string& l : links)
    if (l.starts_with(kLinkPrefix)) found.push_back(fmt::format("link {}", l));
  // The lock file stays after every run (rootful/state.hpp): not a leftover.
  std::vector<std::string> entries = h.list_dir(kStateDir);
  std::erase(entries, std::string("lock"));
  if (!entries.empty())
    found.push_back(fmt::format("{} ({} entries)", kStateDir, entries.size()));
  if (found.empty())
    return ok(key, label, Section::Preflight,
              fmt::format("no {}* tables, {}* links or {} state{}", kNftTablePrefix, kLinkPrefix,
                          kStateDir, not_listed));
  return warning(key, label, Section::Preflight,
                 fmt::format("found {}{}", fmt::join(found, ", "), not_listed),
                 "as root: childflow --cleanup");
}

// --- the whole diagnosis -----------------------------------------------------

Report diagnose(Host& h, const Config& c, Scope scope) {
  Report r;
  r.backend = c.backend;
  Identity id = h.identity();
  r.uid = id.uid;
  r.euid = id.euid;
  const bool all = scope == Scope::All;
  const bool wire = c.capture && c.capture_point == CapturePoint::WireEgress;
  auto& out = r.checks;
  switch (c.backend) {
    case Backend::RootlessInternal:
      for (const char* ns : {"user", "net", "mnt", "pid"}) out.push_back(check_namespace(h, ns));
      out.push_back(check_max_user_namespaces(h));
      out.push_back(check_unprivileged_userns_clone(h, id));
      out.push_back(check_apparmor_restrict_userns(h, id));
      if (scope != Scope::Preflight) out.push_back(check_userns_trial(h));
      if (all) {
        out.push_back(check_newuidmap(h, id));
        out.push_back(check_subid(h, id, false));
        out.push_back(check_subid(h, id, true));
      }
      out.push_back(check_tun(h));
      if (all) out.push_back(check_ping_group_range(h, id));
      if (all)
        for (kernel::Feature f : kernel::all_features()) out.push_back(check_kernel_feature(h, f));
      if (all) out.push_back(check_confine_trial(h));
      if (wire) out.push_back(check_packet_socket(h, id, c));
      break;
    case Backend::Rootful:
      out.push_back(check_root(id));
      // The tree's sandbox is the rootless one's (user, mount, PID and
      // network namespaces); only its link differs.
      for (const char* ns : {"user", "net", "mnt", "pid"}) out.push_back(check_namespace(h, ns));
      out.push_back(check_max_user_namespaces(h));
      out.push_back(check_nftables(h, id));
      if (all || c.proxy) out.push_back(check_tproxy(h, id, c));
      if (all || c.flow_log || c.summary || c.learn || c.capture)
        out.push_back(check_conntrack_events(h, id, c));
      if (all || c.iface) out.push_back(check_policy_routing(h, id, c));
      out.push_back(check_forwarding(h, id, false));
      out.push_back(check_forwarding(h, id, true));
      if (c.iface) out.push_back(check_iface(h, *c.iface));
      if (all || c.capture) out.push_back(check_packet_socket(h, id, c));
      if (all) out.push_back(check_leftover_state(h, id));
      break;
  }
  if (all) {
    out.push_back(check_resolver(h, c));
    out.push_back(check_ipv4_route(h));
    out.push_back(check_ipv6_route(h));
  }
  return r;
}

}  // namespace cf::doctor
