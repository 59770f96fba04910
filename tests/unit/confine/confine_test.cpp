// The engine's confinement (src/confine/): each test forks a child that
// calls lock_down() and then tries one thing. What the engine needs still
// works; everything else ends the child with exit 1 and the one line of the
// SIGSYS handler. The capability and no-new-privs state is read by the
// parent from /proc/PID/status, since the confined child may open nothing.
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "confine/confine.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

namespace cf::confine {
namespace {

struct Outcome {
  int status = -1;  // waitpid status
  std::string err;  // what the child wrote to stderr
  bool exited(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

// Forks; the child locks down and returns fn()'s value as its exit code.
// `between` runs in the parent after lock_down with the child's pid (the
// child waits for it to finish before calling fn).
Outcome confined(const std::function<int()>& fn,
                 const std::function<void(pid_t)>& between = nullptr) {
  int err_pipe[2], ready[2], go[2];
  if (pipe(err_pipe) != 0 || pipe(ready) != 0 || pipe(go) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err_pipe[1], STDERR_FILENO);
    close(err_pipe[0]);
    close(ready[0]);
    close(go[1]);
    Status s = lock_down();
    if (!s) {
      std::string line = "lock_down: " + s.error().str() + "\n";
      [[maybe_unused]] ssize_t w = write(STDERR_FILENO, line.data(), line.size());
      _exit(99);
    }
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(98);
    if (read(go[0], &c, 1) != 1) _exit(97);
    _exit(fn());
  }
  close(err_pipe[1]);
  close(ready[1]);
  close(go[0]);
  char c;
  Outcome o;
  if (read(ready[0], &c, 1) == 1 && between) between(pid);
  c = 1;
  [[maybe_unused]] ssize_t w = write(go[1], &c, 1);
  close(go[1]);
  char buf[512];
  ssize_t n;
  while ((n = read(err_pipe[0], buf, sizeof buf)) > 0) o.err.append(buf, size_t(n));
  close(err_pipe[0]);
  close(ready[0]);
  waitpid(pid, &o.status, 0);
  return o;
}

std::map<std::string, std::string> proc_status(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::map<std::string, std::string> m;
  std::string line;
  while (std::getline(in, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    auto v = line.substr(colon + 1);
    v.erase(0, v.find_first_not_of(" \t"));
    m[line.substr(0, colon)] = v;
  }
  return m;
}

TEST(LockDown, LeavesNoCapabilityAndSetsNoNewPrivsAndTheFilter) {
  std::map<std::string, std::string> st;
  Outcome o = confined([] { return 0; }, [&](pid_t pid) { st = proc_status(pid); });
  ASSERT_TRUE(o.exited(0)) << o.err;
  EXPECT_EQ(st["CapEff"], "0000000000000000");
  EXPECT_EQ(st["CapPrm"], "0000000000000000");
  EXPECT_EQ(st["CapInh"], "0000000000000000");
  EXPECT_EQ(st["CapAmb"], "0000000000000000");
  EXPECT_EQ(st["NoNewPrivs"], "1");
  EXPECT_EQ(st["Seccomp"], "2");  // SECCOMP_MODE_FILTER
  // Root (CI) holds CAP_SETPCAP, so the bounding set is emptied too.
  if (geteuid() == 0) {
    EXPECT_EQ(st["CapBnd"], "0000000000000000");
  }
}

// What the engine does all day still works once confined.
TEST(LockDown, TheEnginesOwnCallsStillWork) {
  Outcome o = confined([] {
    int tcp4 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int udp6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (tcp4 < 0 || udp6 < 0) return 10;
    int one = 1;
    if (setsockopt(tcp4, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one) != 0) return 11;
    int queued = 0;
    if (ioctl(tcp4, TIOCOUTQ, &queued) != 0) return 12;
    sockaddr_in lo{};
    lo.sin_family = AF_INET;
    lo.sin_port = htons(9);
    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(tcp4, reinterpret_cast<sockaddr*>(&lo), sizeof lo);  // refused or in progress: fine
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 13;
    if (write(sv[0], "x", 1) != 1) return 14;
    char c;
    if (read(sv[1], &c, 1) != 1) return 15;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (ep < 0 || tfd < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) != 0) return 16;
    void* m = mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || mprotect(m, 4096, PROT_READ) != 0) return 17;
    munmap(m, 1 << 20);
    char rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) return 18;
    // fork() (close_detached) and reaping the child.
    pid_t child = fork();
    if (child == 0) _exit(7);
    int st = 0;
    if (child < 0 || waitpid(child, &st, 0) != child || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
      return 19;
    // glibc's clone3 attempt gets ENOSYS (and so falls back to clone).
    errno = 0;
    if (syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) return 20;
    if (kill(getpid(), 0) != 0) return 21;
    return 0;
  });
  EXPECT_TRUE(o.exited(0)) << "status " << o.status << ", stderr: " << o.err;
  EXPECT_EQ(o.err, "");
}

struct Refused {
  const char* what;
  int (*attempt)();
  bool sanitizer_needs_it;  // allowed in sanitizer builds (src/confine/)
};

const Refused kRefused[] = {
    {"execve", [] { char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
                    execve("/bin/true", argv, environ); return 0; }, false},
    {"openat for reading", [] { return open("/etc/passwd", O_RDONLY); }, false},
    {"openat to create", [] { return open("/tmp/cf-confine-test", O_WRONLY | O_CREAT, 0600); },
     false},
    {"socket(AF_UNIX)", [] { return socket(AF_UNIX, SOCK_STREAM, 0); }, false},
    {"socket(AF_NETLINK)", [] { return socket(AF_NETLINK, SOCK_RAW, 0); }, false},
    {"socket(AF_PACKET)", [] { return socket(AF_PACKET, SOCK_RAW, 0); }, false},
    {"mmap(PROT_EXEC)", [] {
       void* p = mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
       return p == MAP_FAILED ? -1 : 0; }, false},
    {"mprotect(PROT_EXEC)", [] {
       void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
       return mprotect(p, 4096, PROT_READ | PROT_EXEC); }, false},
    {"unshare", [] { return unshare(CLONE_NEWUSER); }, false},
    {"setns", [] { return setns(0, 0); }, false},
    {"mount", [] { return mount("none", "/tmp", "tmpfs", 0, nullptr); }, false},
    {"bind", [] {
       int s = socket(AF_INET, SOCK_STREAM, 0);
       sockaddr_in a{};
       a.sin_family = AF_INET;
       return bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a); }, false},
    {"listen", [] { return listen(socket(AF_INET, SOCK_STREAM, 0), 1); }, false},
    {"ptrace", [] { return int(ptrace(PTRACE_TRACEME, 0, nullptr, nullptr)); }, true},
    {"process_vm_readv", [] {
       char buf[8];
       iovec l{buf, sizeof buf}, r{buf, sizeof buf};
       return int(process_vm_readv(getppid(), &l, 1, &r, 1, 0)); }, false},
    {"kill of another process", [] { return kill(getppid(), 0); }, true},
    {"clone of a thread", [] {
       return int(syscall(SYS_clone, CLONE_VM | CLONE_THREAD | CLONE_SIGHAND, nullptr)); }, true},
    {"clone into a new network namespace", [] {
       return int(syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, nullptr)); }, true},
    {"ioctl(TUNSETIFF)", [] { ifreq r{}; return ioctl(0, TUNSETIFF, &r); }, false},
    {"prctl", [] { return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); }, true},
    {"rt_sigaction", [] { signal(SIGSYS, SIG_DFL); return 0; }, true},
    {"bpf", [] { return int(syscall(SYS_bpf, 0, nullptr, 0)); }, false},
    {"chdir", [] { return chdir("/"); }, false},
};

class RefusedCall : public ::testing::TestWithParam<Refused> {};

TEST_P(RefusedCall, EndsTheProcessWithOneLine) {
  const Refused& r = GetParam();
#ifdef SANITIZED
  if (r.sanitizer_needs_it)
    GTEST_SKIP() << r.what << " is allowed in sanitizer builds (LeakSanitizer needs it); "
                 << "the release build's tests refuse it";
#endif
  Outcome o = confined(r.attempt);
  EXPECT_TRUE(o.exited(1)) << r.what << ": status " << o.status << ", stderr: " << o.err;
  EXPECT_NE(o.err.find("is outside the engine's seccomp allowlist"), std::string::npos)
      << r.what << ": " << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
}

INSTANTIATE_TEST_SUITE_P(Confine, RefusedCall, ::testing::ValuesIn(kRefused),
                         [](const auto& tp) {
                           std::string n;
                           for (char ch : std::string(tp.param.what))
                             n += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
                           return n;
                         });

// docs/security.md lists every call the filter allows; the list and the
// filter must not drift apart.
TEST(LockDown, DocsListTheAllowedCalls) {
  std::ifstream in(std::string(CHILDFLOW_SOURCE_DIR) + "/docs/security.md");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string doc = ss.str();
  auto begin = doc.find("<!-- seccomp-allowlist -->");
  auto end = doc.find("<!-- /seccomp-allowlist -->");
  ASSERT_NE(begin, std::string::npos);
  ASSERT_NE(end, std::string::npos);
  std::string section = doc.substr(begin, end - begin);
  std::set<std::string> documented;
  for (size_t p = section.find('`'); p != std::string::npos; p = section.find('`', p)) {
    size_t q = section.find('`', p + 1);
    if (q == std::string::npos) break;
    documented.insert(section.substr(p + 1, q - p - 1));
    p = q + 1;
  }
  std::set<std::string> allowed;
  for (const auto& n : allowed_syscalls()) allowed.insert(n);
  for (const auto& n : allowed)
    EXPECT_TRUE(documented.count(n)) << n << " is allowed but not in docs/security.md";
  for (const auto& n : documented)
    EXPECT_TRUE(allowed.count(n)) << n << " is in docs/security.md but not allowed";
}

}  // namespace
}  // namespace cf::confine
