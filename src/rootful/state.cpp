// Run records, the lock and the shared forwarding sysctls. See state.hpp.
#include "rootful/state.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "common/random.hpp"
#include "rootful/routing.hpp"

namespace cf::rootful::state {
namespace {

std::string record_dir(const std::string& run) { return fmt::format("{}/{}", kDir, run); }
std::string saved_path(uint64_t netns) {
  return fmt::format("{}/forwarding-{}.saved", kDir, netns);
}

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Writes `text` to a file of /proc/sys; the Error names the sysctl.
Status write_sysctl(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno_error(fmt::format("rootful: sysctl {}", path));
  UniqueFd f(fd);
  if (::write(fd, text.data(), text.size()) != ssize_t(text.size()))
    return errno_error(fmt::format("rootful: sysctl {}={}", path, text));
  return {};
}

bool exists(const std::string& path);
constexpr const char* kConntrackAcct = "/proc/sys/net/netfilter/nf_conntrack_acct";

// Every forwarding sysctl, in the order they must be written back: the
// switch that sets all others first, then all, default, each interface.
std::vector<std::string> forwarding_paths() {
  std::vector<std::string> out{"/proc/sys/net/ipv4/ip_forward"};
  for (const char* fam : {"ipv4", "ipv6"}) {
    std::string base = fmt::format("/proc/sys/net/{}/conf", fam);
    std::vector<std::string> ifs;
    if (DIR* d = ::opendir(base.c_str())) {
      while (dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n != "." && n != ".." && n != "all" && n != "default") ifs.push_back(n);
      }
      ::closedir(d);
    } else {
      continue;  // no IPv6 in this kernel
    }
    std::sort(ifs.begin(), ifs.end());
    out.push_back(base + "/all/forwarding");
    out.push_back(base + "/default/forwarding");
    for (const std::string& i : ifs) out.push_back(fmt::format("{}/{}/forwarding", base, i));
  }
  // Conntrack accounting (byte counts of the flow log's flow_end,
  // conntrack.hpp): saved, enabled and restored with forwarding.
  if (exists(kConntrackAcct)) out.push_back(kConntrackAcct);
  return out;
}

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

}  // namespace

std::string render(const Record& r) {
  std::string s = fmt::format("run {}\npid {}\nstart_time {}\nnetns {}\ntable {}\nlink {}\n",
                              r.run, r.pid, r.start_time, r.netns, r.table, r.link);
  if (r.mark)
    s += fmt::format("mark {}\nroute_table {}\nrule_priority {}\n", r.mark, r.route_table,
                     r.rule_priority);
  if (r.pin_table)
    s += fmt::format("pin {} {} {} {} {}\n", r.pin_iface, r.pin_mark, r.pin_table, r.pin_pref4,
                     r.pin_pref6);
  return s;
}

std::optional<Record> parse(const std::string& text) {
  Record r;
  std::istringstream in(text);
  std::string key;
  int seen = 0;
  while (in >> key) {
    if (key == "run" && (in >> r.run)) seen |= 1;
    else if (key == "pid" && (in >> r.pid)) seen |= 2;
    else if (key == "start_time" && (in >> r.start_time)) seen |= 4;
    else if (key == "netns" && (in >> r.netns)) seen |= 8;
    else if (key == "table" && (in >> r.table)) seen |= 16;
    else if (key == "link" && (in >> r.link)) seen |= 32;
    else if (key == "mark" && (in >> r.mark)) seen |= 64;
    else if (key == "route_table" && (in >> r.route_table)) seen |= 128;
    else if (key == "rule_priority" && (in >> r.rule_priority)) seen |= 256;
    else if (key == "pin" &&
             (in >> r.pin_iface >> r.pin_mark >> r.pin_table >> r.pin_pref4 >> r.pin_pref6)) {
    } else return std::nullopt;
  }
  // The routing keys come together, and only with values of our range
  // (routing.hpp): cleanup deletes rules and routes by them.
  if (seen & (64 | 128 | 256)) {
    if ((seen & (64 | 128 | 256)) != (64 | 128 | 256) || !kTproxyRange.contains(r.mark) ||
        r.route_table != r.mark || r.rule_priority == 0)
      return std::nullopt;
    seen &= 63;
  }
  if (seen != 63 || r.pid <= 0) return std::nullopt;
  // Names of our own making only: what cleanup deletes must be ours.
  if (!r.table.starts_with("childflow_") || !r.link.starts_with("cf") || r.link.size() > 15)
    return std::nullopt;
  // A pin's table is one of ours (routing.hpp), and so its fwmark.
  if (r.pin_table && (!kIfaceRange.contains(r.pin_table) || r.pin_mark != r.pin_table))
    return std::nullopt;
  return r;
}

std::string new_run_id() { return fmt::format("{:08x}", random_u32()); }

namespace {
uint64_t start_time_of(pid_t pid) {
  auto stat = read_text(fmt::format("/proc/{}/stat", pid));
  if (!stat) return 0;
  size_t close = stat->rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream in(stat->substr(close + 2));
  std::string field;
  // Fields from 3 (state) on; start time is field 22.
  for (int i = 3; i < 22; ++i) in >> field;
  uint64_t t = 0;
  in >> t;
  return t;
}
}  // namespace

uint64_t current_netns() {
  // The namespace's cookie (Linux 5.14+) is never reused during a boot; an
  // inode number is, as soon as the namespace is freed, so a record of a
  // namespace that is gone could be taken for a new one's. The inode is
  // the fallback on older kernels.
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
  UniqueFd s(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (s && ::getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0 && cookie)
    return cookie;
  struct stat st{};
  if (::stat("/proc/self/ns/net", &st) != 0) return 0;
  return st.st_ino;
}

Record describe_self(const std::string& run) {
  Record r;
  r.run = run;
  r.pid = ::getpid();
  r.start_time = start_time_of(r.pid);
  r.netns = current_netns();
  r.table = "childflow_" + run;
  r.link = "cf" + run;
  return r;
}

bool alive(const Record& r) { return start_time_of(r.pid) == r.start_time && r.start_time != 0; }

Result<Lock> Lock::take() {
  if (::mkdir(kDir, 0700) != 0 && errno != EEXIST)
    return errno_error(fmt::format("rootful: mkdir {}", kDir));
  std::string path = fmt::format("{}/lock", kDir);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return errno_error(fmt::format("rootful: open {}", path));
  UniqueFd f(fd);
  while (::flock(fd, LOCK_EX) != 0)
    if (errno != EINTR) return errno_error(fmt::format("rootful: flock {}", path));
  return Lock(std::move(f));
}

Status write_record(const Record& r) {
  std::string dir = record_dir(r.run);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return errno_error(fmt::format("rootful: mkdir {}", dir));
  std::string tmp = dir + "/record.tmp", path = dir + "/record";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << render(r);
    out.flush();
    if (!out) return Error{"cannot write", fmt::format("rootful: {}", tmp)};
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    return errno_error(fmt::format("rootful: rename {}", path));
  return {};
}

void remove_record(const std::string& run) {
  std::string dir = record_dir(run);
  ::unlink((dir + "/record").c_str());
  ::unlink((dir + "/record.tmp").c_str());
  ::rmdir(dir.c_str());
}

std::vector<Record> records() {
  std::vector<Record> out;
  DIR* d = ::opendir(kDir);
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() != 8 || n.find_first_not_of("0123456789abcdef") != std::string::npos) continue;
    if (auto text = read_text(record_dir(n) + "/record"))
      if (auto r = parse(*text); r && r->run == n) out.push_back(*r);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end(), [](const Record& a, const Record& b) { return a.run < b.run; });
  return out;
}

Status enable_forwarding(uint64_t netns) {
  const std::string saved = saved_path(netns);
  if (!exists(saved)) {
    std::string text;
    for (const std::string& p : forwarding_paths())
      if (auto v = read_text(p)) text += fmt::format("{} {}", p, *v);  // *v ends in \n
    std::string tmp = saved + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out << text;
      out.flush();
      if (!out) return Error{"cannot write", fmt::format("rootful: {}", tmp)};
    }
    if (::rename(tmp.c_str(), saved.c_str()) != 0)
      return errno_error(fmt::format("rootful: rename {}", saved));
  }
  if (auto s = write_sysctl("/proc/sys/net/ipv4/ip_forward", "1"); !s) return s;
  if (exists("/proc/sys/net/ipv6/conf/all/forwarding"))
    if (auto s = write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding", "1"); !s) return s;
  if (exists(kConntrackAcct)) {
    // nf_conntrack may have come (with the first run's table) after the
    // values were saved: save this one now, before changing it, so that
    // the last run puts it back too.
    auto text = read_text(saved);
    if (!text) return Error{"cannot read", fmt::format("rootful: {}", saved)};
    if (text->find(fmt::format("{} ", kConntrackAcct)) == std::string::npos)
      if (auto v = read_text(kConntrackAcct)) {
        std::ofstream out(saved, std::ios::binary | std::ios::app);
        out << fmt::format("{} {}", kConntrackAcct, *v);  // *v ends in \n
        out.flush();
        if (!out) return Error{"cannot write", fmt::format("rootful: {}", saved)};
      }
    if (auto s = write_sysctl(kConntrackAcct, "1"); !s) return s;
  }
  return {};
}

Status restore_forwarding_if_last(uint64_t netns) {
  for (const Record& r : records())
    if (r.netns == netns) return {};
  const std::string saved = saved_path(netns);
  auto text = read_text(saved);
  if (!text) return {};
  std::istringstream in(*text);
  std::string path, value;
  Status first_failure;
  while (in >> path >> value) {
    if (!path.starts_with("/proc/sys/net/") || !exists(path)) continue;  // a link gone since
    if (read_text(path) == value + "\n") continue;
    if (auto s = write_sysctl(path, value); !s && first_failure) first_failure = s;
  }
  ::unlink(saved.c_str());
  return first_failure;
}

}  // namespace cf::rootful::state
