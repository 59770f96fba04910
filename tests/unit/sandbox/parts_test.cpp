// The sandbox's pure and small parts: /etc/subuid parsing, identity maps,
// the control protocol (with an fd over SCM_RIGHTS), exit-code mapping, and
// place_overlays over a (dangling) symlink in a throwaway mount namespace,
// and the inner user namespace's maps.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "sandbox/control.hpp"
#include "sandbox/idmap.hpp"
#include "sandbox/init_stub.hpp"
#include "sandbox/overlay.hpp"

namespace cf::sandbox {
namespace {

TEST(SubIdRange, FindsByNameOrNumericId) {
  const char* text =
      "alice:100000:65536\n"
      "# comment\n"
      "broken line\n"
      "bob:x:10\n"
      "1001:200000:1000\r\n"
      "bob:300000:65536\n";
  EXPECT_EQ(idmap::find_subid_range(text, "alice", 1000), (idmap::SubIdRange{100000, 65536}));
  EXPECT_EQ(idmap::find_subid_range(text, "carol", 1001), (idmap::SubIdRange{200000, 1000}));
  // A malformed entry for bob is skipped; the next good one is used.
  EXPECT_EQ(idmap::find_subid_range(text, "bob", 1002), (idmap::SubIdRange{300000, 65536}));
  EXPECT_EQ(idmap::find_subid_range(text, "dave", 1003), std::nullopt);
  EXPECT_EQ(idmap::find_subid_range("eve:1:0\n", "eve", 5), std::nullopt);  // empty range
  EXPECT_EQ(idmap::find_subid_range("", "alice", 1000), std::nullopt);
}

TEST(IdentityMap, MapsEveryExtentToItself) {
  EXPECT_EQ(idmap::identity_map("         0          0 4294967295\n"), "0 0 4294967295\n");
  EXPECT_EQ(idmap::identity_map("         0       1000          1\n"
                                "         1     100000      65536\n"),
            "0 0 1\n1 1 65536\n");
  EXPECT_EQ(idmap::identity_map(""), "");
}

TEST(ExitCodes, ShellConventions) {
  EXPECT_EQ(exit_code_for_exec_errno(ENOENT), 127);
  EXPECT_EQ(exit_code_for_exec_errno(EACCES), 126);
  EXPECT_EQ(exit_code_for_exec_errno(ENOEXEC), 126);
  EXPECT_EQ(exit_code_from_wait_status(3 << 8), 3);  // exited with 3
  EXPECT_EQ(exit_code_from_wait_status(SIGTERM), 128 + SIGTERM);
  EXPECT_EQ(exit_code_from_wait_status(SIGKILL), 137);
  EXPECT_STREQ(name(IdMap::UidOnly), "uid-only");
}

TEST(Control, RoundTripsMessagesAndPassesAnFd) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ASSERT_TRUE(control::send(a.get(), control::Tag::Signal, SIGTERM));
  auto m = control::receive(b.get());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->tag, control::Tag::Signal);
  EXPECT_EQ(m->value, SIGTERM);
  EXPECT_FALSE(m->fd);

  ASSERT_TRUE(control::send(a.get(), control::Tag::SetupFailed, 0, "netlink: x: y"));
  m = control::receive(b.get());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->text, "netlink: x: y");

  int p[2];
  ASSERT_EQ(pipe(p), 0);
  UniqueFd rd(p[0]), wr(p[1]);
  ASSERT_TRUE(control::send(a.get(), control::Tag::TapReady, 0, {}, wr.get()));
  m = control::receive(b.get());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->tag, control::Tag::TapReady);
  ASSERT_TRUE(m->fd);
  EXPECT_NE(m->fd.get(), wr.get());
  EXPECT_TRUE(fcntl(m->fd.get(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(write(m->fd.get(), "z", 1), 1);  // the received fd is the pipe's
  char c = 0;
  ASSERT_EQ(read(rd.get(), &c, 1), 1);
  EXPECT_EQ(c, 'z');

  // An fd on a message that must not carry one is rejected (and closed).
  ASSERT_TRUE(control::send(a.get(), control::Tag::Release, 0, {}, wr.get()));
  EXPECT_FALSE(control::receive(b.get()));
  // A bad tag is rejected; end of file is nullopt.
  const char junk[8] = {99};
  ASSERT_EQ(::send(a.get(), junk, sizeof junk, 0), 8);
  EXPECT_FALSE(control::receive(b.get()));
  a.reset();
  EXPECT_FALSE(control::receive(b.get()));
}

// Runs fn in a child in a throwaway mount namespace (a user namespace too
// when not root); returns what fn returned ("" = fine, "SKIP: ..." = cannot).
std::string in_mount_namespace(const std::function<std::string()>& fn) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return "pipe failed";
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    std::string result;
    int flags = geteuid() == 0 ? CLONE_NEWNS : (CLONE_NEWUSER | CLONE_NEWNS);
    if (unshare(flags) != 0)
      result = std::string("SKIP: unshare: ") + strerror(errno);
    else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      result = std::string("make-rprivate: ") + strerror(errno);
    else
      result = fn();
    (void)!write(pipefd[1], result.data(), result.size());
    _exit(0);
  }
  close(pipefd[1]);
  std::string result;
  char buf[512];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) result.append(buf, n);
  close(pipefd[0]);
  int status;
  waitpid(pid, &status, 0);
  return result;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// place_overlays covers a dangling symlink itself and a regular file, read
// only; nothing is written to the scratch directory's own filesystem, the
// scratch mount is gone afterwards, and the overlays can be covered again
// (childflow inside childflow: a mount of an unlinked file could not be).
TEST(PlaceOverlays, CoversTargetsReadOnlyAndCanBeCoveredAgain) {
  char templ[] = "/tmp/cf-bind-test.XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  const std::string dir = templ;
  const std::string scratch = dir + "/scratch", link = dir + "/resolv.conf",
                    target = dir + "/missing-target", hosts = dir + "/hosts";
  ASSERT_EQ(mkdir(scratch.c_str(), 0755), 0);
  std::ofstream(scratch + "/keep") << "mine\n";
  std::ofstream(hosts) << "127.0.0.1 localhost\n";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  std::string result = in_mount_namespace([&]() -> std::string {
    Overlays o;
    o.resolv_conf = "nameserver 10.240.0.1\n";
    o.hosts = "203.0.113.7 www.example.test\n";
    OverlayTargets t{link.c_str(), hosts.c_str()};
    if (auto r = place_overlays(scratch.c_str(), o, t); !r) return r.error().str();
    if (slurp(link) != "nameserver 10.240.0.1\n") return "read through link: " + slurp(link);
    if (slurp(hosts) != "203.0.113.7 www.example.test\n") return "hosts: " + slurp(hosts);
    if (open(link.c_str(), O_WRONLY | O_APPEND) >= 0 || errno != EROFS)
      return std::string("overlay is writable or wrong errno: ") + strerror(errno);
    if (slurp(scratch + "/keep") != "mine\n") return "the scratch tmpfs is still mounted";
    // A nested run covers the overlays with its own.
    Overlays inner;
    inner.resolv_conf = "nameserver 10.240.0.5\n";
    if (auto r = place_overlays(scratch.c_str(), inner, t); !r) return "again: " + r.error().str();
    if (slurp(link) != "nameserver 10.240.0.5\n") return "covered again: " + slurp(link);
    return "";
  });
  // Outside that mount namespace the symlink is untouched and still dangling.
  char linkbuf[512] = {};
  EXPECT_GT(readlink(link.c_str(), linkbuf, sizeof linkbuf - 1), 0);
  EXPECT_EQ(std::string(linkbuf), target);
  EXPECT_NE(access(target.c_str(), F_OK), 0);
  EXPECT_EQ(slurp(hosts), "127.0.0.1 localhost\n");
  EXPECT_EQ(access((scratch + "/resolv.conf").c_str(), F_OK), -1) << "written to disk";
  std::string cleanup = "rm -rf '" + dir + "'";
  (void)!system(cleanup.c_str());
  if (result.rfind("SKIP: ", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "");
}

TEST(PlaceOverlays, MissingTargetIsNamed) {
  std::string result = in_mount_namespace([]() -> std::string {
    Overlays o;
    o.resolv_conf = "nameserver 10.240.0.1\n";
    OverlayTargets t{"/nonexistent-dir-cf/resolv.conf", "/etc/hosts"};
    auto r = place_overlays("/mnt", o, t);
    if (r) return "placed over a missing target";
    if (r.error().str().rfind("sandbox: overlay /nonexistent-dir-cf/resolv.conf: No such file", 0) != 0)
      return r.error().str();
    return "";
  });
  if (result.rfind("SKIP: ", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "");
}

TEST(InnerMap, CallerOwnIdOrEveryOuterId) {
  const char* single = "         0       1000          1\n";
  const char* subids = "         0       1000          1\n         1     100000      65536\n";
  EXPECT_EQ(idmap::inner_map(false, 1000, single), "1000 0 1\n");
  EXPECT_EQ(idmap::inner_map(false, 1000, subids), "1000 0 1\n");
  EXPECT_EQ(idmap::inner_map(true, 1000, single), "0 0 1\n");
  EXPECT_EQ(idmap::inner_map(true, 1000, subids), "0 0 1\n1 1 65536\n");
  EXPECT_EQ(idmap::inner_map(false, 1000, ""), "") << "no outer gid map: none inside";
  EXPECT_EQ(idmap::inside_range("1000 0 1\n"), std::make_pair(uint64_t{1000}, uint64_t{1000}));
  EXPECT_EQ(idmap::inside_range("0 0 1\n1 1 65536\n"), std::make_pair(uint64_t{0}, uint64_t{65536}));
  EXPECT_EQ(idmap::inside_range("0 0 4294967295\n"),
            std::make_pair(uint64_t{0}, uint64_t{0x7fffffff}));
  EXPECT_FALSE(idmap::inside_range(""));
}

}  // namespace
}  // namespace cf::sandbox
