// netlink::Socket against a real kernel: each test forks a child that moves
// into a fresh network namespace (as root: unshare(NEWNET); otherwise a
// user + network namespace), creates a tap device, runs the requests and
// checks the result with `ip` (allowed in tests only). The child reports the
// first failed check through a pipe, so the test process never changes its own
// namespaces.
#include "netlink/netlink.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace cf::netlink {
namespace {

// Output of a shell command run in the current (child's) namespaces.
std::string sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  pclose(p);
  return out;
}

bool write_file(const char* path, const std::string& text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  close(fd);
  return ok;
}

// Runs body in a child inside a new network namespace; returns "" on success,
// "SKIP: why" when the host cannot do it, or the failure text.
std::string in_new_netns(const std::function<std::string()>& body) {
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    std::string result;
    const bool root = geteuid() == 0;
    const uid_t uid = geteuid();
    const gid_t gid = getegid();
    if (unshare(root ? CLONE_NEWNET : (CLONE_NEWUSER | CLONE_NEWNET)) != 0)
      result = std::string("SKIP: cannot create a network namespace: ") + strerror(errno);
    else if (!root && !(write_file("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1") &&
                        write_file("/proc/self/setgroups", "deny") &&
                        write_file("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1")))
      result = std::string("cannot map ids: ") + strerror(errno);
    else
      result = body();
    (void)!write(pipefd[1], result.data(), result.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string result;
  char buf[1024];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) result.append(buf, n);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status)) return "child crashed";
  return result;
}

int make_tap(const char* name, std::string* err) {
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    *err = std::string("SKIP: open /dev/net/tun: ") + strerror(errno);
    return -1;
  }
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    *err = std::string("TUNSETIFF: ") + strerror(errno);
    close(fd);
    return -1;
  }
  return fd;
}

#define CHECK_OK(expr)                                             \
  do {                                                             \
    if (auto r_ = (expr); !r_) return "unexpected: " + r_.error().str(); \
  } while (0)

#define CHECK_CONTAINS(hay, needle)                                               \
  do {                                                                            \
    if ((hay).find(needle) == std::string::npos)                                  \
      return std::string("missing '") + (needle) + "' in:\n" + (hay);             \
  } while (0)

void expect_ok(const std::string& r) {
  if (r.rfind("SKIP: ", 0) == 0) GTEST_SKIP() << r.substr(6);
  EXPECT_EQ(r, "");
}

TEST(Netlink, ConfiguresTapLikeTheSandboxDoes) {
  std::string r = in_new_netns([]() -> std::string {
    std::string err;
    int tap = make_tap("tap0", &err);
    if (tap < 0) return err;
    auto opened = Socket::open();
    if (!opened) return opened.error().str();
    Socket& s = *opened;
    auto lo = s.find_link("lo");
    if (!lo) return lo.error().str();
    CHECK_OK(s.set_up(*lo));
    auto found = s.find_link("tap0");
    if (!found) return found.error().str();
    const Link& t = *found;
    Mac mac{0x02, 0x00, 0x5e, 0x10, 0x20, 0x30};
    Mac gw_mac{0x02, 0x00, 0x5e, 0x00, 0x00, 0x01};
    CHECK_OK(s.set_mac_and_mtu(t, mac, 65520));
    CHECK_OK(s.set_up(t));
    CHECK_OK(s.add_address(t, *IpAddr::parse("10.240.7.2"), 30, false));
    CHECK_OK(s.add_address(t, *IpAddr::parse("fd42:7::2"), 64, true));
    CHECK_OK(s.add_default_route(t, *IpAddr::parse("10.240.7.1")));
    CHECK_OK(s.add_default_route(t, *IpAddr::parse("fd42:7::1")));
    CHECK_OK(s.add_permanent_neighbour(t, *IpAddr::parse("10.240.7.1"), gw_mac));
    CHECK_OK(s.add_permanent_neighbour(t, *IpAddr::parse("fd42:7::1"), gw_mac));

    std::string links = sh("ip -o link show");
    CHECK_CONTAINS(links, "lo: <LOOPBACK,UP");
    CHECK_CONTAINS(links, "mtu 65520");
    CHECK_CONTAINS(links, "link/ether 02:00:5e:10:20:30");
    std::string addrs = sh("ip -o addr show dev tap0");
    CHECK_CONTAINS(addrs, "inet 10.240.7.2/30");
    CHECK_CONTAINS(addrs, "inet6 fd42:7::2/64");
    // IFA_F_NODAD: the global address is usable at once (not "tentative").
    CHECK_CONTAINS(addrs, "inet6 fd42:7::2/64 scope global nodad \\");
    CHECK_CONTAINS(sh("ip -4 route"), "default via 10.240.7.1 dev tap0");
    CHECK_CONTAINS(sh("ip -6 route"), "default via fd42:7::1 dev tap0");
    std::string neigh = sh("ip neigh show dev tap0");
    CHECK_CONTAINS(neigh, "10.240.7.1 lladdr 02:00:5e:00:00:01 PERMANENT");
    CHECK_CONTAINS(neigh, "fd42:7::1 lladdr 02:00:5e:00:00:01 PERMANENT");
    close(tap);
    return "";
  });
  expect_ok(r);
}

TEST(Netlink, ErrorsNameRequestLinkAndCause) {
  std::string r = in_new_netns([]() -> std::string {
    std::string err;
    int tap = make_tap("tap0", &err);
    if (tap < 0) return err;
    auto opened = Socket::open();
    if (!opened) return opened.error().str();
    Socket& s = *opened;
    auto missing = s.find_link("nosuch0");
    if (missing) return "found nosuch0";
    CHECK_CONTAINS(missing.error().str(), "netlink: no link nosuch0: ");

    const Link t = *s.find_link("tap0");
    CHECK_OK(s.add_address(t, *IpAddr::parse("10.240.7.2"), 30, false));
    auto dup = s.add_address(t, *IpAddr::parse("10.240.7.2"), 30, false);
    if (dup) return "duplicate address accepted";
    CHECK_CONTAINS(dup.error().str(), "netlink: RTM_NEWADDR on tap0: ");

    // A nested user namespace has no CAP_NET_ADMIN over this network
    // namespace: every change must fail with EPERM, named as such.
    if (unshare(CLONE_NEWUSER) != 0) return std::string("unshare user: ") + strerror(errno);
    auto opened2 = Socket::open();
    if (!opened2) return opened2.error().str();
    auto denied = opened2->add_address(t, *IpAddr::parse("10.240.8.2"), 30, false);
    if (denied) return "address added without CAP_NET_ADMIN";
    if (denied.error().str() != "netlink: RTM_NEWADDR on tap0: Operation not permitted")
      return "wrong message: " + denied.error().str();
    close(tap);
    return "";
  });
  expect_ok(r);
}

}  // namespace
}  // namespace cf::netlink
