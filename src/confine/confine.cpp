// The engine confines itself.
//
// Theory of operation
// -------------------
// childflow's parent process is the only part of a run that lives outside
// the sandbox: it holds the host's network namespace, the user's mount
// namespace and the user's other processes within reach. Everything it has
// to do there happens before the tree runs its command: read the flags and
// the profile, open the flow log and the capture files, create the
// namespaces, take tap0 over the control socket, turn non-dumpable. From
// then on it is a reactor that turns the tree's frames into host sockets
// (docs/design.md), and a bug in that reactor is the one way a hostile tree
// could reach the host. lock_down() makes such a bug worth as little as it
// can, in small explicit steps, before the command is released:
//
//   0. lazy files    what libraries read on first use is read now (the
//                       time zone, which glibc's gmtime reads once).
//   1. SIGSYS handler   a system call outside the filter prints one line
//                       naming its number and exits 1 (the tree dies with
//                       us: its pid 1 has PR_SET_PDEATHSIG). A silent
//                       EPERM would leave a reactor running on a failed
//                       call; killing without a word would hide the bug.
//   2. capabilities     the bounding set is emptied where we hold
//                       CAP_SETPCAP (a run as root), the ambient set
//                       cleared, and effective, permitted and inheritable
//                       zeroed. The engine needs none: its host sockets are
//                       plain TCP, UDP and ICMP datagram sockets.
//   3. no-new-privs     execve could never grant anything again (and
//                       seccomp without CAP_SYS_ADMIN requires it).
//   4. seccomp          an allowlist built from the calls the engine makes
//                       (measured with strace over the lab's workloads, and
//                       every end-to-end test runs under it): memory,
//                       epoll, timerfd, reads and writes on fds it already
//                       has, and new sockets only of the kinds a flow needs.
//                       Loaded with TSYNC, so it covers every thread.
//
// What the filter leaves out on purpose: open/openat (no file can be opened:
// not the user's keys, not another process's /proc/PID/environ), execve,
// ptrace and process_vm_*, mount, unshare, setns, bpf, new AF_UNIX,
// AF_NETLINK or AF_PACKET sockets (no abstract Unix socket of the host
// network namespace, no route changes), listen/accept/bind (bind only with
// --capture-point wire-egress, which binds each flow's socket to an
// ephemeral port before it connects: capture/wire.cpp), kill of any
// process but itself, and PROT_EXEC mappings. clone is allowed only as
// fork() (close_detached hands tap0 to a short-lived child at exit); the
// child inherits the filter. clone3 gets ENOSYS, so glibc falls back to
// clone. docs/security.md lists the calls and what each is for.
//
// Sanitizer builds (the dev preset) add what ASan and LeakSanitizer need at
// exit: LSan stops the world with a clone()d tracer that ptrace()s our
// threads and reads /proc/self. Those extras exist only in builds compiled
// with -fsanitize=address; a release build has none of them.
#include "confine/confine.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <memory>

#if defined(__SANITIZE_ADDRESS__)
#define CF_CONFINE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CF_CONFINE_SANITIZED 1
#endif
#endif

namespace cf::confine {
namespace {

// The calls allowed whatever their arguments. Grouped by what they serve.
constexpr const char* kPlain[] = {
    // memory (mmap and mprotect: below, without PROT_EXEC)
    "brk", "munmap", "mremap", "madvise",
    // the reactor
    "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "timerfd_create",
    "timerfd_settime", "timerfd_gettime",
    // fds we already hold: tap0, sockets, the flow log, capture files, stderr
    "read", "readv", "write", "writev", "pread64", "pwrite64", "close", "fcntl", "lseek",
    "fstat", "newfstatat", "fsync", "fdatasync",
    // socket calls on sockets we made (socket and socketpair: below)
    "connect", "shutdown", "getsockopt", "setsockopt", "getsockname", "getpeername",
    "sendto", "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg",
    // the tree: its pidfd, and reaping the stub and close_detached's child
    "pidfd_send_signal", "wait4", "waitid",
    // signals (rt_sigaction is not here: the SIGSYS handler stays ours)
    "rt_sigprocmask", "rt_sigreturn", "restart_syscall",
    // time, randomness, locks
    "clock_gettime", "clock_getres", "gettimeofday", "nanosleep", "clock_nanosleep",
    "getrandom", "futex", "sched_yield",
    // identity (OpenSSL's fork detection, glibc) and ending
    "getpid", "gettid", "exit", "exit_group",
    // fork()'s child: glibc resets its robust list; it closes all but tap0
    "set_robust_list", "close_range",
};

#ifdef CF_CONFINE_SANITIZED
// What the sanitizer runtime needs beyond the engine's own calls: its leak
// check at exit makes us dumpable again (prctl), clones a tracer that
// ptraces every thread and lists /proc/self/task with the raw open and
// getdents calls; its reports read /proc/self/exe and /proc/self/maps.
// (Measured with the filter's default action set to SCMP_ACT_LOG: the
// kernel's audit lines name each call.)
// The runtime makes raw `open` and `getdents` calls; glibc and OpenSSL use
// openat and getdents64, which stay refused here too, so that a file
// opened by the engine's own code fails the sanitized tests as well.
// UBSan's vptr check, on a miss of its type cache, probes whether memory
// is readable by writing it into a pipe (pipe2): the floods found that.
constexpr const char* kSanitizer[] = {
    "clone", "ptrace", "open", "getdents", "readlink", "prctl", "sigaltstack",
    "rt_sigaction", "sched_getaffinity", "getppid", "tgkill", "kill", "pipe", "pipe2",
};
#endif

// The few ioctls the engine makes: bytes queued on a socket (SIOCOUTQ is
// TIOCOUTQ, SIOCINQ is FIONREAD), non-blocking mode, isatty.
constexpr unsigned long kIoctls[] = {TIOCOUTQ, FIONREAD, FIONBIO, TCGETS};

// 1. SIGSYS: async-signal-safe, so no stdio and no allocation.
void on_sigsys(int, siginfo_t* si, void*) {
  char line[160];
  const char head[] = "childflow: error: engine: system call ";
  const char tail[] =
      " is outside the engine's seccomp allowlist (docs/security.md); this is a bug in "
      "childflow, please report it\n";
  size_t n = 0;
  std::memcpy(line, head, sizeof head - 1);
  n += sizeof head - 1;
  char digits[12];
  int nd = 0;
  unsigned v = unsigned(si->si_syscall);
  do digits[nd++] = char('0' + v % 10); while ((v /= 10) && nd < 12);
  while (nd) line[n++] = digits[--nd];
  size_t t = std::min(sizeof tail - 1, sizeof line - n);
  std::memcpy(line + n, tail, t);
  n += t;
  [[maybe_unused]] ssize_t w = ::write(STDERR_FILENO, line, n);
  _exit(1);
}

Status install_sigsys_handler() {
  struct sigaction sa {};
  sa.sa_sigaction = on_sigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return errno_error("engine: sigaction(SIGSYS)");
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  sigprocmask(SIG_UNBLOCK, &sys, nullptr);
  return {};
}

// 2. capabilities. Raw capget/capset: three 32-bit words (version 3) are
// all the kernel has, and libcap would be one more library for one call.
Status drop_capabilities() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (::syscall(SYS_capget, &hdr, data) != 0) return errno_error("engine: capget");
  const bool may_setpcap = data[0].effective & (1u << CAP_SETPCAP);
  if (may_setpcap) {
    for (int cap = 0; cap <= 63; ++cap)
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno == EINVAL) break;  // past the last
  }
  // EINVAL: a kernel without ambient capabilities (before 4.3) has none.
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
    return errno_error("engine: prctl(PR_CAP_AMBIENT_CLEAR_ALL)");
  __user_cap_data_struct none[2]{};
  hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  if (::syscall(SYS_capset, &hdr, none) != 0) return errno_error("engine: capset");
  return {};
}

// 4. seccomp
struct FilterDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Filter = std::unique_ptr<void, FilterDeleter>;

Status add(scmp_filter_ctx ctx, uint32_t action, const char* name, unsigned n = 0,
           const scmp_arg_cmp* args = nullptr) {
  int nr = seccomp_syscall_resolve_name(name);
  if (nr == __NR_SCMP_ERROR)  // not a call of this architecture: nothing to allow
    return {};
  int rc = seccomp_rule_add_array(ctx, action, nr, n, args);
  if (rc != 0)
    return Error{fmt::format("rule for {}: {}", name, std::strerror(-rc)), "engine: seccomp"};
  return {};
}

Status add_rules(scmp_filter_ctx ctx, pid_t self, bool bind) {
  const uint32_t allow = SCMP_ACT_ALLOW;
  if (bind)
    if (auto s = add(ctx, allow, "bind"); !s) return s;
  for (const char* name : kPlain)
    if (auto s = add(ctx, allow, name); !s) return s;
#ifdef CF_CONFINE_SANITIZED
  for (const char* name : kSanitizer)
    if (auto s = add(ctx, allow, name); !s) return s;
#endif
  // New sockets: TCP, UDP and ICMP datagram sockets over IPv4 and IPv6;
  // socketpair for the engine's own Unix pairs (DNS over TCP, TLS pumps),
  // which reach nothing outside the process.
  for (int domain : {AF_INET, AF_INET6}) {
    scmp_arg_cmp a[] = {SCMP_A0(SCMP_CMP_EQ, uint64_t(domain))};
    if (auto s = add(ctx, allow, "socket", 1, a); !s) return s;
  }
  {
    scmp_arg_cmp a[] = {SCMP_A0(SCMP_CMP_EQ, uint64_t(AF_UNIX))};
    if (auto s = add(ctx, allow, "socketpair", 1, a); !s) return s;
  }
  // Mappings that never become executable.
  for (const char* name : {"mmap", "mprotect"}) {
    scmp_arg_cmp a[] = {SCMP_A2(SCMP_CMP_MASKED_EQ, uint64_t(PROT_EXEC), 0)};
    if (auto s = add(ctx, allow, name, 1, a); !s) return s;
  }
  for (unsigned long req : kIoctls) {
    scmp_arg_cmp a[] = {SCMP_A1(SCMP_CMP_EQ, uint64_t(req))};
    if (auto s = add(ctx, allow, "ioctl", 1, a); !s) return s;
  }
#ifndef CF_CONFINE_SANITIZED
  // fork() and nothing else: no thread, no namespace, no shared memory.
  {
    const uint64_t fork_flags = CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID | CSIGNAL;
    scmp_arg_cmp a[] = {SCMP_A0(SCMP_CMP_MASKED_EQ, ~fork_flags, 0)};
    if (auto s = add(ctx, allow, "clone", 1, a); !s) return s;
  }
  // Signals to ourselves only (abort() raises SIGABRT with tgkill).
  {
    scmp_arg_cmp a[] = {SCMP_A0(SCMP_CMP_EQ, uint64_t(self))};
    if (auto s = add(ctx, allow, "kill", 1, a); !s) return s;
    if (auto s = add(ctx, allow, "tgkill", 1, a); !s) return s;
  }
#else
  (void)self;
#endif
  // glibc tries clone3 first where it has it and falls back on ENOSYS.
  if (auto s = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3"); !s) return s;
  return {};
}

Status install_filter(bool bind) {
  Filter f(seccomp_init(SCMP_ACT_TRAP));
  if (!f) return Error{"seccomp_init failed", "engine: seccomp"};
  scmp_filter_ctx ctx = f.get();
  if (int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1); rc != 0)
    return Error{fmt::format("TSYNC: {}", std::strerror(-rc)), "engine: seccomp"};
  if (auto s = add_rules(ctx, getpid(), bind); !s) return s;
  if (int rc = seccomp_load(ctx); rc != 0)
    return Error{fmt::format("cannot load the filter: {} (a kernel without "
                             "CONFIG_SECCOMP_FILTER, or a container that forbids seccomp)",
                             std::strerror(-rc)),
                 "engine: seccomp"};
  return {};
}

}  // namespace

Status lock_down(bool bind) {
  // Files libraries read lazily, on first use, must be read now. glibc reads
  // the time zone file (/etc/localtime) on the first gmtime() too (for leap
  // seconds), which OpenSSL calls to check a proxy certificate's dates.
  tzset();
  if (auto s = install_sigsys_handler(); !s) return s;
  if (auto s = drop_capabilities(); !s) return s;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return errno_error("engine: prctl(PR_SET_NO_NEW_PRIVS)");
  return install_filter(bind);
}

std::vector<std::string> allowed_syscalls() {
  std::vector<std::string> names(std::begin(kPlain), std::end(kPlain));
  for (const char* n : {"socket", "socketpair", "mmap", "mprotect", "ioctl", "clone", "kill",
                        "tgkill"})
    names.emplace_back(n);
  return names;
}

}  // namespace cf::confine
