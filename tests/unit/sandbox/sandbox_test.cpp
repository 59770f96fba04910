// The sandbox end to end against the real kernel: launch a tree, run a dummy
// engine that reads and discards tap frames, and check what the command saw
// (it writes its findings into a file of the test's temp dir) and the exit
// code. Needs root, or an unprivileged user with user namespaces and an
// openable /dev/net/tun; otherwise the tests skip and say why.
#include "sandbox/sandbox.hpp"

#include <pwd.h>

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <functional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "sandbox/idmap.hpp"

namespace cf::sandbox {
namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::set<std::string> dir_entries(const std::string& dir) {
  std::set<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d))
      if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.insert(e->d_name);
    closedir(d);
  }
  return out;
}

// Why this host cannot run the tests, or "".
std::string cannot_run() {
  if (geteuid() == 0) return "";
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) return "needs root (or an openable /dev/net/tun): /dev/net/tun is not openable";
  close(fd);
  return "";
}

bool wait_for_path(const std::string& path) {
  for (int i = 0; i < 200; ++i) {
    if (access(path.c_str(), F_OK) == 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

NetPlan test_plan() {
  NetPlan p;
  p.child4 = *IpAddr::parse("10.240.0.2");
  p.gw4 = *IpAddr::parse("10.240.0.1");
  p.child6 = *IpAddr::parse("fd42::2");
  p.gw6 = *IpAddr::parse("fd42::1");
  p.child_mac = {0x02, 0x63, 0x66, 0x00, 0x00, 0x02};
  p.gw_mac = {0x02, 0x63, 0x66, 0x00, 0x00, 0x01};
  return p;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto why = cannot_run(); !why.empty()) GTEST_SKIP() << why;
    char templ[] = "/tmp/cf-sandbox-test.XXXXXX";
    ASSERT_NE(mkdtemp(templ), nullptr);
    dir_ = templ;
    chmod(dir_.c_str(), 0777);  // the tree's users may write findings here
    runtime_ = dir_ + "/runtime";
    ASSERT_EQ(mkdir(runtime_.c_str(), 0700), 0);
    setenv("XDG_RUNTIME_DIR", runtime_.c_str(), 1);
  }
  void TearDown() override {
    if (!dir_.empty()) {
      std::string cmd = "rm -rf '" + dir_ + "'";
      (void)!system(cmd.c_str());
    }
  }

  // Launches, releases, runs a dummy engine until the stub exits; returns the
  // exit code (or -1 with a failure recorded). during(tree) runs after release.
  int run(const std::vector<std::string>& command, const Overlays& overlays = {},
          const NetPlan& plan = test_plan(),
          const std::function<void(Tree&)>& during = nullptr, bool as_root = false) {
    auto launched = launch({command, plan, overlays, as_root});
    if (!launched) {
      ADD_FAILURE() << "launch: " << launched.error().str();
      return -1;
    }
    Tree& t = *launched;
    last_id_map_ = t.id_map;
    EXPECT_TRUE(dir_entries(runtime_).empty()) << "overlay temp files still on disk";
    EXPECT_TRUE(fcntl(t.tap.get(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(release(t));
    if (during) during(t);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    char frame[70000];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd fds[2] = {{t.tap.get(), POLLIN, 0}, {t.pidfd.get(), POLLIN, 0}};
      poll(fds, 2, 1000);
      if (fds[0].revents & POLLIN)
        while (read(t.tap.get(), frame, sizeof frame) > 0) {
        }
      if (fds[1].revents & POLLIN) {
        auto code = try_reap(t);
        EXPECT_TRUE(code.has_value());
        EXPECT_EQ(try_reap(t), code) << "second try_reap must repeat the code";
        return code.value_or(-1);
      }
    }
    ADD_FAILURE() << "tree did not exit within 30 s";
    return -1;
  }

  std::string dir_, runtime_;
  IdMap last_id_map_ = IdMap::UidOnly;
};

TEST_F(SandboxTest, IdMapsFollowTheCaller) {
  const std::string out = dir_ + "/out";
  ASSERT_EQ(run({"sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map >" + out}), 0);
  std::string seen = read_all(out);
  auto count = [&](const std::string& needle) {
    size_t n = 0;
    for (size_t pos = seen.find(needle); pos != std::string::npos; pos = seen.find(needle, pos + 1))
      ++n;
    return n;
  };
  if (geteuid() == 0) {
    EXPECT_EQ(last_id_map_, IdMap::Identity);
    EXPECT_EQ(count("         0          0 4294967295"), 2u) << seen;  // uid and gid
  } else {
    // A default run needs only the caller's own id: the direct single map,
    // with no helper. Inside, the tree is the caller ("<uid> 0 1": our uid
    // is outer id 0).
    EXPECT_EQ(name(last_id_map_), name(IdMap::Single));
    std::cout << "id map: " << name(last_id_map_) << "\n" << seen;
    std::string uid_line = fmt::format("{:>10} {:>10} {:>10}", geteuid(), 0, 1);
    EXPECT_NE(seen.find(uid_line), std::string::npos) << seen;
    // --as-root wants every id: subordinate ids when we have them and the
    // helpers are installed.
    passwd* pw = getpwuid(geteuid());
    const std::string user = pw ? pw->pw_name : "";
    const bool have_ranges =
        idmap::find_subid_range(read_all("/etc/subuid"), user, geteuid()) &&
        idmap::find_subid_range(read_all("/etc/subgid"), user, geteuid()) &&
        access("/usr/bin/newuidmap", X_OK) == 0 && access("/usr/bin/newgidmap", X_OK) == 0;
    ASSERT_EQ(run({"sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map >" + out}, {},
                  test_plan(), nullptr, true),
              0);
    seen = read_all(out);
    EXPECT_EQ(name(last_id_map_), name(have_ranges ? IdMap::SubIds : IdMap::Single));
    std::cout << "--as-root id map: " << name(last_id_map_) << "\n" << seen;
    EXPECT_NE(seen.find(fmt::format("{:>10} {:>10} {:>10}", 0, 0, 1)), std::string::npos) << seen;
    if (last_id_map_ == IdMap::SubIds) {
      EXPECT_EQ(count("         1          1 "), 2u) << seen;
    }
  }
}

TEST_F(SandboxTest, CommandSeesPlannedNetworkOverlaysAndOwnPids) {
  const std::string host_resolv = read_all("/etc/resolv.conf");
  const std::string host_hosts = read_all("/etc/hosts");
  // An fd the parent leaks without O_CLOEXEC must still not reach the command.
  int leaked = open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 0);
  Overlays ov;
  ov.resolv_conf = "nameserver 10.240.0.1\nnameserver fd42::1\n# cf-test-resolv\n";
  ov.hosts = "203.0.113.7 www.example.test\n";
  const std::string out = dir_ + "/out";
  std::string script =
      "exec >" + out + " 2>&1; "
      "echo ADDR; ip -o addr show dev tap0; "
      "echo LINK; ip -o link show; "
      "echo ROUTE4; ip -4 route; echo ROUTE6; ip -6 route; "
      "echo NEIGH; ip neigh show dev tap0; "
      "echo UID $(id -u); "
      "echo FDS $(ls /proc/self/fd | tr '\\n' ' '); "
      "echo PS; ps -e -o pid=,comm=; "
      "echo RESOLV; cat /etc/resolv.conf; echo HOSTS; cat /etc/hosts; "
      "if (echo x >> /etc/resolv.conf) 2>/dev/null; then echo OVERLAY-WRITABLE; "
      "else echo OVERLAY-READONLY; fi; "
      "echo RA $(cat /proc/sys/net/ipv6/conf/tap0/accept_ra); "
      "echo TENTATIVE $(ip -o addr show dev tap0 | grep -c tentative); "
      "exit 3";
  int code = run({"sh", "-c", script}, ov);
  close(leaked);
  EXPECT_EQ(code, 3);
  std::string seen = read_all(out);
  for (const char* want :
       {"inet 10.240.0.2/30", "inet6 fd42::2/64 scope global nodad", "mtu 65520",
        "link/ether 02:63:66:00:00:02", "lo: <LOOPBACK,UP", "default via 10.240.0.1 dev tap0",
        "default via fd42::1 dev tap0", "10.240.0.1 lladdr 02:63:66:00:00:01 PERMANENT",
        "fd42::1 lladdr 02:63:66:00:00:01 PERMANENT", "FDS 0 1 2 3\n",
        "# cf-test-resolv", "203.0.113.7 www.example.test", "OVERLAY-READONLY", "RA 0", "TENTATIVE 0"})
    EXPECT_NE(seen.find(want), std::string::npos) << "missing '" << want << "' in:\n" << seen;
  // By default the command runs as the caller's own uid.
  EXPECT_NE(seen.find(fmt::format("UID {}\n", geteuid())), std::string::npos) << seen;
  // Its own PID namespace: pid 1 is the stub, the command is pid 3 (pid 2
  // was the stub's id map writer), and only the tree's processes are visible.
  std::string ps = seen.substr(seen.find("PS\n"), seen.find("RESOLV") - seen.find("PS\n"));
  EXPECT_NE(ps.find("\n      1 "), std::string::npos) << ps;
  EXPECT_NE(ps.find("\n      3 sh"), std::string::npos) << ps;
  EXPECT_LE(std::count(ps.begin(), ps.end(), '\n'), 5) << ps;
  // The host's files are untouched and no temp file is left.
  EXPECT_EQ(read_all("/etc/resolv.conf"), host_resolv);
  EXPECT_EQ(read_all("/etc/hosts"), host_hosts);
  EXPECT_TRUE(dir_entries(runtime_).empty());
}

// Root inside (--as-root) cannot take the tree's mounts away: /proc and
// the overlays are locked (the inner user namespace), so umount, umount -l
// and mount --move fail, and /proc still shows the tree's PID namespace.
// Root inside still owns the network namespace (ip link works).
TEST_F(SandboxTest, RootInsideCannotRemoveTheTreesMounts) {
  Overlays ov;
  ov.resolv_conf = "nameserver 10.240.0.1\n# cf-locked\n";
  ov.hosts = "203.0.113.7 www.example.test\n";
  const std::string out = dir_ + "/out", moved = dir_ + "/moved";
  ASSERT_EQ(mkdir(moved.c_str(), 0755), 0);
  std::string script = "exec >" + out + " 2>&1; echo UID $(id -u); ";
  for (const char* m : {"/proc", "/etc/resolv.conf", "/etc/hosts"}) {
    script += fmt::format(
        "umount {0} && echo UMOUNTED {0}; umount -l {0} && echo DETACHED {0}; "
        "mount --move {0} {1} && echo MOVED {0}; ",
        m, m == std::string("/proc") ? moved : moved + "/f");
  }
  script += "echo PROCS $(ls -d /proc/[0-9]* | wc -l); grep -c cf-locked /etc/resolv.conf; "
            "ip link set lo mtu 1500 && echo NET-ADMIN";
  ASSERT_EQ(run({"sh", "-c", script}, ov, test_plan(), nullptr, /*as_root=*/true), 0);
  std::string seen = read_all(out);
  EXPECT_NE(seen.find("UID 0\n"), std::string::npos) << seen;
  for (const char* bad : {"UMOUNTED", "DETACHED", "MOVED"})
    EXPECT_EQ(seen.find(bad), std::string::npos) << seen;
  // sh, ls, wc, the stub and the subshell: a handful, not the host's hundreds.
  auto procs = seen.find("PROCS ");
  ASSERT_NE(procs, std::string::npos) << seen;
  EXPECT_LE(std::stoi(seen.substr(procs + 6)), 8) << seen;
  EXPECT_NE(seen.find("\n1\nNET-ADMIN"), std::string::npos) << seen;
}

TEST_F(SandboxTest, WithoutIpv6TheTapHasNone) {
  NetPlan p = test_plan();
  p.ipv6 = false;
  const std::string out = dir_ + "/out";
  int code = run({"sh", "-c",
                  "exec >" + out + " 2>&1; ip -o addr show dev tap0; ip -6 route; "
                  "echo DIS $(cat /proc/sys/net/ipv6/conf/tap0/disable_ipv6)"},
                 {}, p);
  EXPECT_EQ(code, 0);
  std::string seen = read_all(out);
  EXPECT_NE(seen.find("inet 10.240.0.2/30"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("inet6"), std::string::npos) << seen;
  EXPECT_NE(seen.find("DIS 1"), std::string::npos) << seen;
}

TEST_F(SandboxTest, MissingCommandIs127) {
  EXPECT_EQ(run({"childflow-no-such-command-xyz"}), 127);
}

TEST_F(SandboxTest, MissingCommandIs127EvenWithUnsearchablePathDirs) {
  // A PATH directory we cannot search is skipped, as bash does.
  const std::string closed = dir_ + "/closed";
  ASSERT_EQ(mkdir(closed.c_str(), 0), 0);
  const char* old = getenv("PATH");
  std::string saved = old ? old : "";
  setenv("PATH", (closed + ":/usr/bin:/bin").c_str(), 1);
  int code = run({"childflow-no-such-command-xyz"});
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(code, 127);
  EXPECT_EQ(run({dir_ + "/no-such-file"}), 127);
}

TEST_F(SandboxTest, NonExecutableCommandIs126) {
  std::string path = dir_ + "/not-executable";
  std::ofstream(path) << "#!/bin/sh\nexit 0\n";
  chmod(path.c_str(), 0644);
  EXPECT_EQ(run({path}), 126);
  // Found in PATH but not executable anywhere: 126, like bash.
  const char* old = getenv("PATH");
  std::string saved = old ? old : "";
  setenv("PATH", (dir_ + ":/usr/bin:/bin").c_str(), 1);
  int code = run({"not-executable"});
  setenv("PATH", saved.c_str(), 1);
  EXPECT_EQ(code, 126);
}

TEST_F(SandboxTest, ScriptWithoutShebangRunsWithSh) {
  std::string path = dir_ + "/plain-script";
  std::ofstream(path) << "exit 7\n";
  chmod(path.c_str(), 0755);
  EXPECT_EQ(run({path}), 7);
}

TEST_F(SandboxTest, ExitCodePassesThrough) {
  EXPECT_EQ(run({"sh", "-c", "exit 0"}), 0);
  EXPECT_EQ(run({"sh", "-c", "exit 42"}), 42);
}

TEST_F(SandboxTest, ForwardedSignalGives128PlusN) {
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
    const std::string ready = dir_ + "/ready" + std::to_string(sig);
    int code = run({"sh", "-c", "touch " + ready + "; exec sleep 30"}, {}, test_plan(),
                   [&](Tree& t) {
                     ASSERT_TRUE(wait_for_path(ready));
                     forward_signal(t, sig);
                   });
    EXPECT_EQ(code, 128 + sig) << "signal " << sig;
  }
}

TEST_F(SandboxTest, StubReapsOrphansAndTreeEndsWithCommand) {
  // The background sleep is reparented to the stub; when sh exits the stub
  // exits with sh's code and the namespace (with the sleep) is torn down.
  const std::string out = dir_ + "/out";
  auto start = std::chrono::steady_clock::now();
  int code = run({"sh", "-c", "(sleep 0.1; echo orphan-ran >" + out + ") & sleep 0.5; exit 5"});
  EXPECT_EQ(code, 5);
  EXPECT_EQ(read_all(out), "orphan-ran\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(SandboxTest, SetupFailureNamesStepAndLeavesNothing) {
  NetPlan p = test_plan();
  p.mtu = 40;  // below the minimum MTU of an Ethernet device
  Overlays ov;
  ov.resolv_conf = "nameserver 10.240.0.1\n";
  auto launched = launch({{"true"}, p, ov});
  ASSERT_FALSE(launched);
  EXPECT_EQ(launched.error().str().rfind("netlink: RTM_NEWLINK on tap0: ", 0), 0u)
      << launched.error().str();
  EXPECT_TRUE(dir_entries(runtime_).empty());
  int status;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1) << "a stub was left unreaped";
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(SandboxTest, DestroyingTreeKillsIt) {
  pid_t stub;
  {
    auto launched = launch({{"sleep", "30"}, test_plan(), {}});
    ASSERT_TRUE(launched) << launched.error().str();
    Tree& t = *launched;
    ASSERT_TRUE(release(t));
    stub = t.init_pid;
  }
  EXPECT_EQ(kill(stub, 0), -1);  // reaped: the pid no longer exists for us
  int status;
  EXPECT_EQ(waitpid(-1, &status, WNOHANG), -1);
}

// P plays childflow and is SIGKILLed; the test is a subreaper so the
// orphaned stub comes to us and we can see how it died. With
// keep_control_open, P first forks a helper that holds P's end of the control
// socket, so only PR_SET_PDEATHSIG can end the stub.
void sigkill_of_parent_kills_tree(const std::string& dir, bool keep_control_open) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  const std::string ready = dir + "/ready";
  const std::string marker = keep_control_open ? "1000.4243" : "1000.4242";
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t p = fork();
  if (p == 0) {
    close(pipefd[0]);
    auto launched =
        launch({{"sh", "-c", "touch " + ready + "; exec sleep " + marker}, test_plan(), {}});
    if (!launched) _exit(1);
    Tree& t = *launched;
    release(t);
    pid_t holder = -1;
    if (keep_control_open && (holder = fork()) == 0) {
      for (;;) pause();  // holds the control socket (and the tap) open
    }
    pid_t pids[2] = {t.init_pid, holder};
    (void)!write(pipefd[1], pids, sizeof pids);
    char frame[70000];
    for (;;) {
      pollfd fd{t.tap.get(), POLLIN, 0};
      poll(&fd, 1, -1);
      while (read(t.tap.get(), frame, sizeof frame) > 0) {
      }
    }
  }
  close(pipefd[1]);
  pid_t pids[2] = {-1, -1};
  ASSERT_EQ(read(pipefd[0], pids, sizeof pids), static_cast<ssize_t>(sizeof pids));
  close(pipefd[0]);
  const pid_t stub = pids[0], holder = pids[1];
  ASSERT_TRUE(wait_for_path(ready));
  kill(p, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(p, &status, 0), p);
  pid_t r = 0;
  for (int i = 0; i < 100 && r == 0; ++i) {
    r = waitpid(stub, &status, WNOHANG);
    if (r == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (holder > 0) {
    kill(holder, SIGKILL);
    int hs;
    waitpid(holder, &hs, 0);
  }
  ASSERT_EQ(r, stub) << "the stub outlived childflow";
  if (keep_control_open) {
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "stub status " << status;
  } else {
    // SIGKILL (PR_SET_PDEATHSIG) or its own exit on end of file of the
    // control socket, whichever the kernel delivers first while tearing P down.
    EXPECT_TRUE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
                (WIFEXITED(status) && WEXITSTATUS(status) == 1))
        << "stub status " << status;
  }
  // Nothing of the tree survives.
  for (const auto& pid : dir_entries("/proc")) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = read_all("/proc/" + pid + "/cmdline");
    EXPECT_EQ(cmdline.find(marker), std::string::npos) << "pid " << pid << " survived";
  }
  prctl(PR_SET_CHILD_SUBREAPER, 0);
}

TEST_F(SandboxTest, SigkillOfChildflowKillsTheTree) {
  sigkill_of_parent_kills_tree(dir_, false);
}

TEST_F(SandboxTest, ParentDeathSignalAloneKillsTheTree) {
  sigkill_of_parent_kills_tree(dir_, true);
}

}  // namespace
}  // namespace cf::sandbox
