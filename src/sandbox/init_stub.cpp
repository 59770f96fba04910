// Theory of operation: the init stub, step by step (docs/sandbox.md has the
// same list from the parent's side).
//
//  1. Hygiene: close every inherited fd except 0, 1, 2 and the control
//     socket (the command must not inherit the parent's fds: engine sockets,
//     capture files); reset every signal disposition to SIG_DFL; block only
//     SIGCHLD (read through a signalfd later).
//  2. PR_SET_PDEATHSIG(SIGKILL): if childflow dies, the kernel kills the stub,
//     and pid 1 dying kills the whole PID namespace. The classic getppid()
//     check for a parent that died before prctl cannot work here (the parent
//     is outside our PID namespace, getppid() is 0); the control socket
//     covers that race: the next step reads from it and a dead parent means
//     end of file, so the stub exits.
//  3. Wait for MapsDone (the parent writes our uid/gid maps of the outer user
//     namespace).
//  4. Mounts: make / recursively private (nothing propagates to or from the
//     host), place the overlays over /etc/resolv.conf and /etc/hosts
//     (overlay.hpp), mount a fresh /proc for the new PID namespace.
//  5. Lock: enter a second, inner user namespace together with a new mount
//     and a new network namespace. Every mount of step 4 was made in a more
//     privileged mount namespace, so in the copy the kernel locks them: not
//     even root of the inner namespace can unmount or move them to uncover
//     what lies beneath (the host's /proc). The network namespace belongs to
//     the inner user namespace, so a tree run --as-root can still configure
//     it. A helper forked just before (still in the outer namespace, where it
//     holds CAP_SETUID) writes our inner id maps: by default the caller's own
//     uid and gid, so the command runs as the user who ran childflow; with
//     --as-root, root and every other id of the outer namespace. Then
//     PR_SET_DUMPABLE 0, so the tree cannot ptrace its own init to reach the
//     control socket.
//  6. Network through netlink (netlink/): lo up; tap0 from /dev/net/tun
//     (IFF_TAP | IFF_NO_PI, and IFF_VNET_HDR with the checksum and TSO
//     offloads unless kernel::Feature::TapOffload is off); IPv6 sysctls of tap0 (accept_ra=0: no router
//     solicitations; accept_dad=0 and dad_transmits=0: no DAD, the link-local
//     address is not even briefly tentative; or disable_ipv6=1 when the plan
//     has no IPv6); MAC and MTU; up; addresses (IPv6 with IFA_F_NODAD);
//     default routes via the gateways; permanent neighbour entries gateway ->
//     gateway MAC; the tree's default TCP congestion control, cubic rather
//     than a pacing one inherited from the host (unpaced_congestion_control);
//     net.ipv4.ping_group_range over the tree's gids, so ping works without
//     privilege through ping sockets.
//     Rootful (StubArgs::link): instead of tap0, say NetnsReady once lo is
//     up, wait for LinkReady (the parent has created a veth pair with one
//     end here, named eth0, down), then the same IPv6 sysctls, up,
//     addresses and default routes on eth0 (the kernel resolves the
//     gateway's MAC itself: no static neighbours).
//  7. Send the tap fd (TapReady, SCM_RIGHTS) and close our copy: from now on
//     the engine holds the only reference, so when the engine goes, tap0 goes.
//     Rootful: TapReady without an fd; eth0 goes with the namespace.
//  8. Wait for Release; fork; the child resets its signal dispositions and
//     mask and executes the command, searching PATH as a shell does (127 /
//     126 with a shell-like message when it cannot). Unless the inner uid is
//     0, execve leaves the command with no capabilities.
//  9. Loop: reap every child (pid 1 inherits all orphans of the tree); forward
//     Signal messages to the command's pid; when the command is reaped, exit
//     with its exit code or 128 + N, which kills whatever remains in the
//     namespace. End of file on the control socket (the parent is gone):
//     exit at once.
//
// Any failure in 1-7 is sent to the parent as SetupFailed("phase: cause").
#include "sandbox/init_stub.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>
#include <vector>

#include <fmt/format.h>

#include "common/result.hpp"
#include "netlink/netlink.hpp"
#include "sandbox/control.hpp"
#include "common/text.hpp"
#include "sandbox/idmap.hpp"
#include "sandbox/kernel_file.hpp"
#include "sandbox/overlay.hpp"

extern char** environ;

namespace cf::sandbox {
namespace {

constexpr const char* kTapName = "tap0";

// The parent receives the whole text ("step: cause") and reports it as is.
[[noreturn]] void fail_setup(int ctl, const Error& why) {
  control::send(ctl, control::Tag::SetupFailed, 0, why.str());
  _exit(1);
}

// Once the command may run, the parent is serving tap0 and no longer reads
// the control socket: say it on stderr ("childflow: fork: ...") and exit 1.
[[noreturn]] void fail_after_setup(const Error& why) {
  std::string msg = fmt::format("childflow: {}\n", why.str());
  (void)!::write(STDERR_FILENO, msg.data(), msg.size());
  _exit(1);
}

void close_all_but(int keep) {
  if (keep > 3) ::close_range(3, static_cast<unsigned>(keep - 1), 0);
  ::close_range(static_cast<unsigned>(keep < 3 ? 3 : keep + 1), ~0U, 0);
}

void reset_signal_dispositions() {
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    ::sigaction(sig, &dfl, nullptr);  // EINVAL for libc-reserved signals: fine
  }
}

// Writes a sysctl of the current network namespace.
Status write_sysctl(const std::string& key, const char* value) {
  auto w = write_kernel_file("/proc/sys/" + key, value);
  if (!w) return Error{w.error().message, fmt::format("sandbox: sysctl {}={}", key, value)};
  return {};
}

// Step 5. `*gid_range` receives the inside gids of the inner namespace (for
// ping_group_range), unset when no gid is mapped.
Status enter_inner_namespaces(const StubArgs& a,
                              std::optional<std::pair<uint64_t, uint64_t>>* gid_range) {
  const bool whole = a.as_root || a.caller_uid == 0;
  const std::string umap =
      idmap::inner_map(whole, a.caller_uid, read_kernel_file("/proc/self/uid_map").value_or(""));
  const std::string gmap =
      idmap::inner_map(whole, a.caller_gid, read_kernel_file("/proc/self/gid_map").value_or(""));
  *gid_range = idmap::inside_range(gmap);

  int go[2], report[2];
  if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(report, O_CLOEXEC) != 0)
    return errno_error("sandbox: pipe");
  UniqueFd go_read(go[0]), go_write(go[1]), report_read(report[0]), report_write(report[1]);
  pid_t writer = ::fork();
  if (writer < 0) return errno_error("sandbox: fork the id map writer");
  if (writer == 0) {
    // The writer stays in the outer user namespace: it may map any outer id.
    go_write.reset();
    report_read.reset();
    char c;
    if (::read(go_read.get(), &c, 1) != 1) _exit(1);  // the stub failed first
    std::string why;
    if (auto w = write_kernel_file("/proc/1/uid_map", umap); !w)
      why = fmt::format("inner uid_map \"{}\": {}", one_line(umap), w.error().message);
    else if (!gmap.empty())
      if (auto g = write_kernel_file("/proc/1/gid_map", gmap); !g)
        why = fmt::format("inner gid_map \"{}\": {}", one_line(gmap), g.error().message);
    (void)!::write(report_write.get(), why.data(), why.size());
    _exit(why.empty() ? 0 : 1);
  }
  go_read.reset();
  report_write.reset();
  Status entered;
  if (::unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET) != 0)
    entered = errno_error("sandbox: unshare(user, mount, network namespaces)");
  else if (::write(go_write.get(), "g", 1) != 1)
    entered = errno_error("sandbox: start the id map writer");
  go_write.reset();  // on failure: end of file, the writer exits
  std::string why;
  char buf[512];
  ssize_t n;
  while ((n = ::read(report_read.get(), buf, sizeof buf)) > 0) why.append(buf, size_t(n));
  int status = 0;
  while (::waitpid(writer, &status, 0) < 0 && errno == EINTR) {
  }
  if (!entered) return entered;
  if (!why.empty()) return Error{why, "sandbox: cannot map the inner user namespace"};
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Error{"the id map writer failed", "sandbox"};
  return {};
}

// IPv6 behaviour of the tree's link, set while it is down (before any
// address). A kernel without IPv6 has no such sysctls: nothing to disable
// then, and an error that says so when the plan wants IPv6.
Status link_ipv6_sysctls(const NetPlan& plan, const char* ifname) {
  const std::string conf = fmt::format("net/ipv6/conf/{}/", ifname);
  if (plan.ipv6) {
    // disable_ipv6=0 explicitly: with net.core.devconf_inherit_init_net a new
    // namespace may inherit a host default of 1.
    for (const char* key : {"disable_ipv6", "accept_ra", "accept_dad", "dad_transmits"}) {
      if (auto w = write_sysctl(conf + key, "0"); !w) {
        Error e = w.error();
        if (!kernel_file_exists("/proc/sys/" + conf + key))
          e.message += " (is IPv6 disabled in this kernel?)";
        return e;
      }
    }
  } else if (kernel_file_exists("/proc/sys/" + conf + "disable_ipv6")) {
    if (auto w = write_sysctl(conf + "disable_ipv6", "1"); !w) return w.error();
  }
  return {};
}

// The tree's TCP talks to the engine one hop away, over a link whose only
// queue is tap0's; the engine's host sockets carry the real path, with the
// host's congestion control. A new network namespace inherits the host's
// default, and a pacing one (BBR) spaces the tree's segments out by its
// estimate of a bandwidth that is only the engine's speed: child->host ran at 0.67x native with BBR in the tree, 0.91x with
// cubic (docs/performance.md). So the tree's default becomes cubic, the
// kernel's own default, when the kernel offers it without loading a module
// (an unprivileged namespace cannot). Anything else leaves the inherited
// one: slower, not wrong. A tree may still choose its own per socket.
void unpaced_congestion_control() {
  auto current = read_kernel_file("/proc/sys/net/ipv4/tcp_congestion_control");
  auto available = read_kernel_file("/proc/sys/net/ipv4/tcp_available_congestion_control");
  if (!current || !available || current->starts_with("cubic\n")) return;
  std::istringstream names(*available);
  for (std::string name; names >> name;)
    if (name == "cubic") {
      (void)write_sysctl("net/ipv4/tcp_congestion_control", "cubic");
      return;
    }
}

// Addresses and default routes of the tree's link (up by now).
Status link_addresses(netlink::Socket& nl, const netlink::Link& link, const NetPlan& plan) {
  if (auto r = nl.add_address(link, plan.child4, plan.prefix4, false); !r) return r.error();
  if (plan.ipv6)
    if (auto r = nl.add_address(link, plan.child6, plan.prefix6, true); !r) return r.error();
  if (auto r = nl.add_default_route(link, plan.gw4); !r) return r.error();
  if (plan.ipv6)
    if (auto r = nl.add_default_route(link, plan.gw6); !r) return r.error();
  return {};
}

// Rootful: the parent moves a veth end in; configure it as eth0.
Status setup_link(int ctl, netlink::Socket& nl, const NetPlan& plan) {
  if (!control::send(ctl, control::Tag::NetnsReady)) _exit(1);
  auto go = control::receive(ctl);
  if (!go || go->tag != control::Tag::LinkReady) _exit(1);  // the parent failed: it says why
  if (auto s = link_ipv6_sysctls(plan, kLinkName); !s) return s;
  auto found = nl.find_link(kLinkName);
  if (!found) return found.error();
  if (auto r = nl.set_up(*found); !r) return r.error();
  return link_addresses(nl, *found, plan);
}

Result<UniqueFd> setup_network(int ctl, const StubArgs& a) {
  const NetPlan& plan = a.plan;
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();

  auto lo = nl->find_link("lo");
  if (!lo) return lo.error();
  if (auto r = nl->set_up(*lo); !r) return r.error();
  if (a.link) {
    if (auto s = setup_link(ctl, *nl, plan); !s) return s.error();
    return UniqueFd{};
  }

  int fd = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    struct stat st{};
    std::string mode;
    if (::stat("/dev/net/tun", &st) == 0)
      mode = fmt::format(" (mode {:04o}; run childflow --doctor)", st.st_mode & 07777);
    return Error{strerror(err) + mode, "sandbox: open /dev/net/tun"};
  }
  UniqueFd tap(fd);
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (a.tap_offload ? IFF_VNET_HDR : 0);
  std::memcpy(ifr.ifr_name, kTapName, strlen(kTapName));
  if (::ioctl(tap.get(), TUNSETIFF, &ifr) != 0)
    return errno_error(fmt::format("sandbox: TUNSETIFF {}", kTapName));
  // The tree's kernel may then hand over TCP segments of up to 64 KiB with
  // the checksum left to us (the engine never needs it). Refused, tap0
  // still carries the header, of frames the MTU bounds: slower, not wrong.
  if (a.tap_offload)
    (void)::ioctl(tap.get(), TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);

  if (auto s = link_ipv6_sysctls(plan, kTapName); !s) return s.error();

  auto found = nl->find_link(kTapName);
  if (!found) return found.error();
  const netlink::Link& link = *found;
  if (auto r = nl->set_mac_and_mtu(link, plan.child_mac, plan.mtu); !r) return r.error();
  if (auto r = nl->set_up(link); !r) return r.error();
  if (auto s = link_addresses(*nl, link, plan); !s) return s.error();
  if (auto r = nl->add_permanent_neighbour(link, plan.gw4, plan.gw_mac); !r) return r.error();
  if (plan.ipv6)
    if (auto r = nl->add_permanent_neighbour(link, plan.gw6, plan.gw_mac); !r) return r.error();
  unpaced_congestion_control();
  return tap;
}

// execve, and for a file without a #! line (ENOEXEC) run it with /bin/sh as
// execvp does. Returns errno.
int try_exec(const char* path, char* const* argv) {
  ::execve(path, argv, environ);
  int err = errno;
  if (err != ENOEXEC) return err;
  std::vector<char*> sh_argv{const_cast<char*>("/bin/sh"), const_cast<char*>(path)};
  for (char* const* a = argv + 1; *a; ++a) sh_argv.push_back(*a);
  sh_argv.push_back(nullptr);
  ::execve("/bin/sh", sh_argv.data(), environ);
  return ENOEXEC;
}

// Runs the command like a shell does: a name with '/' is executed as is; a
// bare name is searched in PATH, skipping directories we cannot search and
// files we cannot execute, so "not found" (127) and "found but not
// executable" (126) mean what they mean in bash. (execvp would report EACCES
// for an unreadable PATH directory such as another user's ~/bin.)
[[noreturn]] void exec_command(char* const* argv) {
  reset_signal_dispositions();
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  const std::string cmd = argv[0];
  int err = ENOENT;
  if (cmd.find('/') != std::string::npos) {
    err = try_exec(cmd.c_str(), argv);
  } else if (!cmd.empty()) {
    const char* path_env = getenv("PATH");
    std::string path = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
    int first_failure = 0;  // a file that exists but cannot be executed
    size_t pos = 0;
    while (pos <= path.size()) {
      size_t end = path.find(':', pos);
      if (end == std::string::npos) end = path.size();
      std::string dir = path.substr(pos, end - pos);
      pos = end + 1;
      std::string candidate = (dir.empty() ? "." : dir) + "/" + cmd;
      struct stat st{};
      if (::stat(candidate.c_str(), &st) != 0 || S_ISDIR(st.st_mode)) continue;
      int e = try_exec(candidate.c_str(), argv);
      if (!first_failure) first_failure = e;
    }
    if (first_failure) err = first_failure;
  }
  std::string msg = (err == ENOENT && cmd.find('/') == std::string::npos)
                        ? fmt::format("childflow: {}: command not found\n", cmd)
                        : fmt::format("childflow: {}: {}\n", cmd, strerror(err));
  (void)!::write(STDERR_FILENO, msg.data(), msg.size());
  _exit(exit_code_for_exec_errno(err));
}

[[noreturn]] void supervise(int ctl, pid_t command, int sigchld_fd) {
  for (;;) {
    pollfd fds[2] = {{sigchld_fd, POLLIN, 0}, {ctl, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (fds[0].revents) {
      signalfd_siginfo si;
      while (::read(sigchld_fd, &si, sizeof si) == sizeof si) {
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0)
        if (pid == command) _exit(exit_code_from_wait_status(status));
    }
    if (fds[1].revents) {
      auto msg = control::receive(ctl);
      if (!msg) _exit(1);  // childflow is gone: end the tree now
      if (msg->tag == control::Tag::Signal && msg->value > 0 && msg->value < NSIG)
        ::kill(command, msg->value);
    }
  }
}

}  // namespace

int exit_code_for_exec_errno(int err) { return err == ENOENT ? 127 : 126; }

int exit_code_from_wait_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void run_init_stub(const StubArgs& a) {
  const int ctl = a.control_fd;
  // 1. Hygiene.
  close_all_but(ctl);
  reset_signal_dispositions();
  sigset_t only_chld;
  sigemptyset(&only_chld);
  sigaddset(&only_chld, SIGCHLD);
  ::sigprocmask(SIG_SETMASK, &only_chld, nullptr);

  // 2. Die with childflow (the race with an already dead parent is covered by
  //    the read below: end of file).
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
    fail_setup(ctl, errno_error("sandbox: prctl(PR_SET_PDEATHSIG)"));

  // 3. Id maps of the outer user namespace.
  auto go = control::receive(ctl);
  if (!go || go->tag != control::Tag::MapsDone) _exit(1);

  // 4. Mounts. The scratch tmpfs of the overlays sits on /proc for a moment,
  //    before the fresh /proc goes there.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    fail_setup(ctl, errno_error("sandbox: make / private (mount --make-rprivate /)"));
  if (a.overlays)
    if (auto r = place_overlays("/proc", *a.overlays); !r) fail_setup(ctl, r.error());
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    fail_setup(ctl, errno_error("sandbox: mount a fresh /proc"));

  // 5. Lock the mounts; the inner user namespace and the tree's network.
  std::optional<std::pair<uint64_t, uint64_t>> gids;
  if (auto r = enter_inner_namespaces(a, &gids); !r) fail_setup(ctl, r.error());
  ::prctl(PR_SET_DUMPABLE, 0);

  // 6. Network.
  auto net = setup_network(ctl, a);
  if (!net) fail_setup(ctl, net.error());
  UniqueFd tap = std::move(net).value();
  if (gids) {
    std::string range = fmt::format("{} {}", gids->first, gids->second);
    if (auto w = write_sysctl("net/ipv4/ping_group_range", range.c_str()); !w)
      fail_setup(ctl, w.error());
  }

  // 7. Hand tap0 to the engine.
  if (!control::send(ctl, control::Tag::TapReady, 0, {}, tap ? tap.get() : -1)) _exit(1);
  tap.reset();

  // 8. Wait for the engine, then run the command.
  auto release = control::receive(ctl);
  if (!release || release->tag != control::Tag::Release) _exit(1);
  int sfd = ::signalfd(-1, &only_chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) fail_after_setup(errno_error("signalfd"));
  pid_t command = ::fork();
  if (command < 0) fail_after_setup(errno_error("fork"));
  if (command == 0) exec_command(a.argv.data());

  // 9. Reap and forward until the command exits.
  supervise(ctl, command, sfd);
}

}  // namespace cf::sandbox
