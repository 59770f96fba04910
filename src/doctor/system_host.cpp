// SystemHost: the real Host (see host.hpp). Reads are plain file reads; the
// trials fork a short-lived child that unshares its own namespaces and
// reports back over a pipe, so the host is never changed:
//
//   parent ── pipe ──┐
//   fork ─► child: unshare(...) / write maps / libnftables ─► {step, errno, text}
//   parent: read the report, waitpid, return a Trial
//
// The child exits with _exit right after reporting; its namespaces (and any
// nftables table made inside them) die with it. The parent waits for it, so no
// zombie is left. The nftables trial calls libnftables (which allocates) in
// the forked child, which is safe because the doctor and preflight run
// before childflow starts any thread. Expected cost: about 1 ms for the user-namespace trial and
// 2-3 ms for an nftables trial (measured on a 2-core VM).
#include <fcntl.h>
#include <grp.h>
#include "nft/nft.hpp"
#include <pwd.h>
#include <sched.h>
#include <linux/netfilter/nfnetlink_compat.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "confine/confine.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "doctor/host.hpp"
#include "netlink/netlink.hpp"

namespace cf::doctor {
namespace {

// What the trial child writes to the pipe: a fixed header, then `text_len`
// bytes of text.
struct TrialReport {
  int32_t step_index = -1;  // -1: everything succeeded
  int32_t err = 0;
  uint32_t text_len = 0;
};

// Writes all of `len` bytes; async-signal-safe (used in the forked child).
void write_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

bool read_all(int fd, void* data, size_t len) {
  char* p = static_cast<char*>(data);
  while (len > 0) {
    ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

// Writes `text` to an already-open /proc file in the child; 0 or errno.
int write_proc(const char* path, const char* text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = ::write(fd, text, std::strlen(text));
  int e = n < 0 ? errno : 0;
  ::close(fd);
  return e;
}

[[noreturn]] void report_and_exit(int fd, int32_t step, int32_t err, std::string_view text) {
  TrialReport r;
  r.step_index = step;
  r.err = err;
  r.text_len = static_cast<uint32_t>(text.size());
  write_all(fd, &r, sizeof r);
  if (!text.empty()) write_all(fd, text.data(), text.size());
  ::_exit(0);
}

// Forks, runs `body(report_fd)` in the child (which must end in
// report_and_exit), and turns the report into a Trial using `step_names`.
template <typename Body>
Trial run_in_child(const std::vector<std::string>& step_names, Body body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return Trial{false, "pipe2", errno, {}};
  UniqueFd rd(fds[0]), wr(fds[1]);
  pid_t pid = ::fork();
  if (pid < 0) return Trial{false, "fork", errno, {}};
  if (pid == 0) {
    rd.reset();
    body(wr.get());
    ::_exit(0);  // not reached: body reports and exits
  }
  wr.reset();
  TrialReport r;
  Trial t;
  if (!read_all(rd.get(), &r, sizeof r)) {
    t = Trial{false, "trial child", 0, "the trial child exited without a report"};
  } else {
    std::string text(r.text_len, '\0');
    if (r.text_len > 0 && !read_all(rd.get(), text.data(), text.size())) text.clear();
    if (r.step_index < 0) {
      t = Trial{true, {}, 0, text};
    } else {
      size_t i = static_cast<size_t>(r.step_index);
      t = Trial{false, i < step_names.size() ? step_names[i] : "trial", r.err, text};
    }
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return t;
}

// nftables' error text, kept to its first line (the rest repeats the
// command and marks the failing part with carets).
std::string nft_error_line(const char* s) {
  std::string_view text = s ? s : "";
  return one_line(text.substr(0, text.find('\n')));
}

class SystemHost final : public Host {
 public:
  std::optional<std::string> read_file(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string out;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return std::nullopt;
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
      if (out.size() > (1u << 20)) break;  // nothing the doctor reads is this large
    }
    return out;
  }

  FileInfo stat_path(const std::string& path) override {
    FileInfo fi;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return fi;
    fi.exists = true;
    fi.mode = st.st_mode;
    fi.uid = st.st_uid;
    fi.gid = st.st_gid;
    fi.has_file_caps = ::getxattr(path.c_str(), "security.capability", nullptr, 0) > 0;
    return fi;
  }

  std::vector<std::string> list_dir(const std::string& path) override {
    std::vector<std::string> names;
    DIR* d = ::opendir(path.c_str());
    if (!d) return names;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      names.emplace_back(n);
    }
    ::closedir(d);
    return names;
  }

  int try_open_rw(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK));
    return fd ? 0 : errno;
  }

  int try_open_write(const std::string& path) override {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NONBLOCK));
    return fd ? 0 : errno;
  }

  std::optional<std::string> find_executable(const std::string& name) override {
    const char* env = std::getenv("PATH");
    std::string_view path = env ? env : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= path.size()) {
      size_t end = path.find(':', start);
      if (end == std::string_view::npos) end = path.size();
      std::string dir(path.substr(start, end - start));
      if (dir.empty()) dir = ".";
      std::string full = dir + "/" + name;
      struct stat st {};
      if (::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
          ::access(full.c_str(), X_OK) == 0)
        return full;
      start = end + 1;
    }
    return std::nullopt;
  }

  Identity identity() override {
    Identity id;
    id.uid = ::getuid();
    id.euid = ::geteuid();
    id.gid = ::getgid();
    id.egid = ::getegid();
    int n = ::getgroups(0, nullptr);
    if (n > 0) {
      id.groups.resize(static_cast<size_t>(n));
      n = ::getgroups(n, id.groups.data());
      id.groups.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    passwd pw{};
    passwd* found = nullptr;
    std::vector<char> buf(16384);
    if (::getpwuid_r(id.uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
      id.user_name = found->pw_name;
    return id;
  }

  int pid() override { return static_cast<int>(::getpid()); }

  Trial userns_trial() override {
    // Prepared before fork: the child only makes async-signal-safe calls.
    std::string uid_map = fmt::format("0 {} 1", ::geteuid());
    std::string gid_map = fmt::format("0 {} 1", ::getegid());
    static const std::vector<std::string> steps = {
        "unshare(CLONE_NEWUSER)", "write /proc/self/setgroups",
        "write /proc/self/uid_map", "write /proc/self/gid_map",
        "unshare(CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWPID)"};
    return run_in_child(steps, [&](int fd) {
      if (::unshare(CLONE_NEWUSER) != 0) report_and_exit(fd, 0, errno, {});
      if (int e = write_proc("/proc/self/setgroups", "deny"); e != 0)
        report_and_exit(fd, 1, e, {});
      if (int e = write_proc("/proc/self/uid_map", uid_map.c_str()); e != 0)
        report_and_exit(fd, 2, e, {});
      if (int e = write_proc("/proc/self/gid_map", gid_map.c_str()); e != 0)
        report_and_exit(fd, 3, e, {});
      if (::unshare(CLONE_NEWNET | CLONE_NEWNS | CLONE_NEWPID) != 0)
        report_and_exit(fd, 4, errno, {});
      report_and_exit(fd, -1, 0, {});
    });
  }

  Trial confine_trial() override {
    static const std::vector<std::string> steps = {"confine"};
    return run_in_child(steps, [&](int fd) {
      if (Status s = confine::lock_down(); !s) report_and_exit(fd, 0, 0, s.error().str());
      report_and_exit(fd, -1, 0, {});
    });
  }

  Trial nft_trial(const std::string& commands) override {
    static const std::vector<std::string> steps = {"load libnftables", "unshare(CLONE_NEWNET)",
                                                   "nft_ctx_new", "nft"};
    auto lib = nft::api();  // loaded before the fork: once per process
    return run_in_child(steps, [&](int fd) {
      if (!lib) report_and_exit(fd, 0, 0, lib.error().message);
      if (::unshare(CLONE_NEWNET) != 0) report_and_exit(fd, 1, errno, {});
      const nft::Api& n = **lib;
      nft_ctx* ctx = n.ctx_new(NFT_CTX_DEFAULT);
      if (!ctx) report_and_exit(fd, 2, 0, {});
      n.buffer_output(ctx);
      n.buffer_error(ctx);
      errno = 0;
      int rc = n.run_cmd_from_buffer(ctx, commands.c_str());
      int e = errno;
      if (rc != 0) {
        std::string text = nft_error_line(n.get_error_buffer(ctx));
        report_and_exit(fd, 3, e, text);
      }
      report_and_exit(fd, -1, 0, {});
    });
  }

  Result<std::vector<std::string>> nft_tables() override {
    auto lib = nft::api();
    if (!lib) return lib.error();
    const nft::Api& n = **lib;
    std::unique_ptr<nft_ctx, decltype(n.ctx_free)> ctx(n.ctx_new(NFT_CTX_DEFAULT), n.ctx_free);
    if (!ctx) return Error{"nft_ctx_new failed"};
    n.buffer_output(ctx.get());
    n.buffer_error(ctx.get());
    if (n.run_cmd_from_buffer(ctx.get(), "list tables") != 0)
      return Error{nft_error_line(n.get_error_buffer(ctx.get()))};
    std::vector<std::string> tables;
    std::string_view text = n.get_output_buffer(ctx.get());
    while (!text.empty()) {
      size_t nl = text.find('\n');
      std::string_view line = text.substr(0, nl);
      text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
      if (line.starts_with("table ")) tables.emplace_back(line.substr(6));
    }
    return tables;
  }

  int try_packet_socket() override {
    UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
    return fd ? 0 : errno;
  }

  int try_ctnetlink() override {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
    if (!fd) return errno;
    sockaddr_nl a{};
    a.nl_family = AF_NETLINK;
    a.nl_groups = NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_DESTROY;
    return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
  }

  Trial policy_routing_trial() override {
    static const std::vector<std::string> steps = {"unshare(CLONE_NEWNET)", "netlink",
                                                   "RTM_NEWRULE (IPv4)", "RTM_NEWRULE (IPv6)"};
    return run_in_child(steps, [&](int fd) {
      if (::unshare(CLONE_NEWNET) != 0) report_and_exit(fd, 0, errno, {});
      auto nl = netlink::Socket::open();
      if (!nl) report_and_exit(fd, 1, 0, nl.error().message);
      netlink::Rule r{AF_INET, 100, 0x43460000, 0x43460000u, 0xffffffff};
      if (auto st = nl->add_rule(r); !st) report_and_exit(fd, 2, 0, st.error().message);
      r.family = AF_INET6;
      // A kernel without IPv6 has no IPv6 rules to add: not a failure.
      if (::access("/proc/sys/net/ipv6", F_OK) == 0)
        if (auto st = nl->add_rule(r); !st) report_and_exit(fd, 3, 0, st.error().message);
      report_and_exit(fd, -1, 0, {});
    });
  }

  cf::Status iface_ready(const std::string& name) override { return netlink::uplink_ready(name); }

  kernel::Probe kernel_probe(kernel::Feature f) override { return kernel::probe(f); }
  int try_ping_socket(bool ipv6) override {
    UniqueFd fd(ipv6 ? ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMPV6)
                     : ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_ICMP));
    return fd ? 0 : errno;
  }
};

}  // namespace

std::unique_ptr<Host> make_system_host() { return std::make_unique<SystemHost>(); }

}  // namespace cf::doctor
