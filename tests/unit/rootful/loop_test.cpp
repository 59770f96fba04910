// cf::rootful::Loop: handlers run for ready fds, a handler may remove its
// own fd (or another's) safely, an event fetched for a removed fd never
// reaches a newer registration of the same number, tickers set the wait,
// and serve() stops when the "pidfd" is readable.
#include "rootful/loop.hpp"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <vector>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"

namespace cf::rootful {
namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    EXPECT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    r = p[0];
    w = p[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
  void poke() const { EXPECT_EQ(::write(w, "x", 1), 1); }
};

TEST(Loop, RunsTheHandlerOfAReadyFd) {
  auto loop = Loop::create();
  ASSERT_TRUE(loop);
  Pipe a, b;
  int ran_a = 0, ran_b = 0;
  ASSERT_TRUE(loop->add(a.r, EPOLLIN, [&](uint32_t ev) { ran_a += (ev & EPOLLIN) ? 1 : 100; }));
  ASSERT_TRUE(loop->add(b.r, EPOLLIN, [&](uint32_t) { ++ran_b; }));
  a.poke();
  ASSERT_TRUE(loop->turn(1000));
  EXPECT_EQ(ran_a, 1);
  EXPECT_EQ(ran_b, 0);
  EXPECT_FALSE(loop->add(a.r, EPOLLIN, [](uint32_t) {})) << "an fd is registered once";
}

TEST(Loop, AHandlerMayRemoveItselfAndOthers) {
  auto loop = Loop::create();
  ASSERT_TRUE(loop);
  Pipe a, b;
  int ran_a = 0, ran_b = 0;
  // Both ready in one batch; whichever runs first removes both, so the
  // other's already fetched event is dropped.
  ASSERT_TRUE(loop->add(a.r, EPOLLIN, [&](uint32_t) {
    ++ran_a;
    loop->remove(a.r);
    loop->remove(b.r);
  }));
  ASSERT_TRUE(loop->add(b.r, EPOLLIN, [&](uint32_t) {
    ++ran_b;
    loop->remove(a.r);
    loop->remove(b.r);
  }));
  a.poke();
  b.poke();
  ASSERT_TRUE(loop->turn(1000));
  EXPECT_EQ(ran_a + ran_b, 1);
  ASSERT_TRUE(loop->turn(0));
  EXPECT_EQ(ran_a + ran_b, 1) << "removed fds stay quiet";
}

TEST(Loop, AStaleEventNeverReachesANewRegistrationOfTheSameFd) {
  auto loop = Loop::create();
  ASSERT_TRUE(loop);
  Pipe a, b;
  int old_b = 0, new_b = 0;
  // a's handler closes b and opens a new fd that takes b's number, and
  // registers it: b's event of this batch is not for it.
  ASSERT_TRUE(loop->add(b.r, EPOLLIN, [&](uint32_t) { ++old_b; }));
  ASSERT_TRUE(loop->add(a.r, EPOLLIN, [&](uint32_t) {
    loop->remove(a.r);
    if (old_b) return;  // b ran first: nothing to test in this order
    const int num = b.r;
    loop->remove(b.r);
    ::close(b.r);
    int fresh = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);  // not readable
    ASSERT_EQ(fresh, num);
    b.r = fresh;
    ASSERT_TRUE(loop->add(fresh, EPOLLIN, [&](uint32_t) { ++new_b; }));
  }));
  a.poke();
  b.poke();
  ASSERT_TRUE(loop->turn(1000));
  EXPECT_EQ(old_b, 0) << "a's handler ran first (the order this test needs)";
  EXPECT_EQ(new_b, 0);
}

TEST(Loop, TickersRunAfterEachTurnAndSetTheWait) {
  auto loop = Loop::create();
  ASSERT_TRUE(loop);
  int ticks = 0;
  uint64_t deadline = monotonic_ms() + 50;
  loop->add_ticker([&](uint64_t) {
    ++ticks;
    return deadline;
  });
  ASSERT_TRUE(loop->turn(0));  // learns the deadline
  EXPECT_EQ(ticks, 1);
  const uint64_t t0 = monotonic_ms();
  ASSERT_TRUE(loop->turn(5000));  // nothing ready: wakes for the deadline
  EXPECT_LT(monotonic_ms() - t0, 2000u);
  EXPECT_EQ(ticks, 2);
}

TEST(Loop, ServeEndsWhenThePidfdIsReadable) {
  auto loop = Loop::create();
  ASSERT_TRUE(loop);
  Pipe pid, data;
  sigset_t none;
  sigemptyset(&none);
  sigaddset(&none, SIGUSR2);
  int sfd = ::signalfd(-1, &none, SFD_NONBLOCK | SFD_CLOEXEC);
  ASSERT_GE(sfd, 0);
  int seen = 0;
  ASSERT_TRUE(loop->add(data.r, EPOLLIN, [&](uint32_t) {
    char c;
    while (::read(data.r, &c, 1) == 1) ++seen;
    pid.poke();  // the "tree" ends after the data
  }));
  data.poke();
  ASSERT_TRUE(loop->serve(pid.r, sfd, [](int, int) {}));
  EXPECT_EQ(seen, 1);
  EXPECT_TRUE(loop->add(pid.r, EPOLLIN, [](uint32_t) {})) << "serve unregistered the pidfd";
  ::close(sfd);
}

// Out of descriptors, a listener's pending connection is shed (accepted
// and closed through the spare descriptor) instead of staying queued and
// waking a level-triggered loop for ever. In a child with a low limit.
TEST(AcceptShedding, OutOfDescriptorsThePendingConnectionIsClosed) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int fail = 0;
    auto check = [&fail](bool ok, int bit) { if (!ok) fail |= bit; };
    UniqueFd l(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    check(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l.get(), 8) == 0 &&
              ::getsockname(l.get(), reinterpret_cast<sockaddr*>(&a), &len) == 0, 1);
    UniqueFd spare = spare_fd();
    UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    check(::connect(c.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, 2);
    // Every descriptor taken.
    rlimit r{64, 64};
    ::setrlimit(RLIMIT_NOFILE, &r);
    std::vector<int> filler;
    for (int fd; (fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;) filler.push_back(fd);
    check(errno == EMFILE, 4);
    bool shed = false;
    UniqueFd got = accept_shedding(l.get(), nullptr, nullptr, spare, &shed);
    check(!got && shed, 8);
    check(bool(spare), 16);  // the reserve is back
    // Nothing is left queued: the next call finds EAGAIN, not the same connection.
    got = accept_shedding(l.get(), nullptr, nullptr, spare, &shed);
    check(!got && !shed && errno == EAGAIN, 32);
    // The client sees its connection end.
    char b;
    timeval tv{2, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = ::recv(c.get(), &b, 1, 0);
    check(n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK), 64);
    _exit(fail);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "failed checks (bits): " << WEXITSTATUS(status);
}

}  // namespace
}  // namespace cf::rootful
