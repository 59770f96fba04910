// The sandbox's pure and small parts: /etc/subuid parsing, identity maps,
// the control protocol (with an fd over SCM_RIGHTS), exit-code mapping, and
// bind_file over a (dangling) symlink in a throwaway mount namespace.
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

TEST(OverlayDir, WritesPrivateFilesAndRemovesThem) {
  char templ[] = "/tmp/cf-overlay-test.XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  setenv("XDG_RUNTIME_DIR", templ, 1);
  std::string dir;
  {
    Overlays o;
    o.resolv_conf = "nameserver 10.240.0.1\n";
    auto made = OverlayDir::create(o);
    ASSERT_TRUE(made) << made.error().str();
    OverlayDir& d = *made;
    dir = d.dir();
    EXPECT_EQ(dir.rfind(std::string(templ) + "/childflow.", 0), 0u) << dir;
    struct stat st{};
    ASSERT_EQ(stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_TRUE(d.resolv_conf());
    EXPECT_FALSE(d.hosts());
    std::ifstream in(*d.resolv_conf());
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(ss.str(), "nameserver 10.240.0.1\n");
  }
  EXPECT_NE(access(dir.c_str(), F_OK), 0) << "temp dir left behind";
  rmdir(templ);
  unsetenv("XDG_RUNTIME_DIR");
}

// bind_file covers a symlink itself: reading through it shows our file, the
// symlink's (missing) target is not created, and the mount is read-only.
TEST(BindFile, CoversDanglingSymlinkReadOnly) {
  char templ[] = "/tmp/cf-bind-test.XXXXXX";
  ASSERT_NE(mkdtemp(templ), nullptr);
  const std::string dir = templ;
  const std::string source = dir + "/source", link = dir + "/resolv.conf",
                    target = dir + "/missing-target";
  std::ofstream(source) << "nameserver 10.240.0.1\n";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    std::string result;
    int flags = geteuid() == 0 ? CLONE_NEWNS : (CLONE_NEWUSER | CLONE_NEWNS);
    if (unshare(flags) != 0) {
      result = std::string("SKIP: unshare: ") + strerror(errno);
    } else if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      result = std::string("make-rprivate: ") + strerror(errno);
    } else if (auto r = bind_file(source, link.c_str()); !r) {
      result = r.error().str();
    } else {
      std::ifstream in(link);
      std::stringstream ss;
      ss << in.rdbuf();
      if (ss.str() != "nameserver 10.240.0.1\n") result = "read through link: " + ss.str();
      else if (open(link.c_str(), O_WRONLY | O_APPEND) >= 0 || errno != EROFS)
        result = std::string("overlay is writable or wrong errno: ") + strerror(errno);
    }
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
  // Outside that mount namespace the symlink is untouched and still dangling.
  char linkbuf[512] = {};
  EXPECT_GT(readlink(link.c_str(), linkbuf, sizeof linkbuf - 1), 0);
  EXPECT_EQ(std::string(linkbuf), target);
  EXPECT_NE(access(target.c_str(), F_OK), 0);
  unlink(link.c_str());
  unlink(source.c_str());
  rmdir(dir.c_str());
  if (result.rfind("SKIP: ", 0) == 0) GTEST_SKIP() << result;
  EXPECT_EQ(result, "");
}

TEST(BindFile, MissingTargetIsNamed) {
  auto r = bind_file("/etc/hostname", "/nonexistent-dir-cf/resolv.conf");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str().rfind("sandbox: overlay /nonexistent-dir-cf/resolv.conf: No such file", 0),
            0u)
      << r.error().str();
}

}  // namespace
}  // namespace cf::sandbox
