// capture::LinkTap's end (as root, in a throwaway network namespace of a
// forked child, on its loopback): stop() comes back in bounded time while
// the link is still flooded, and counts the frames it left unread; on a
// quiet link it reads everything that was queued.
#include "capture/link_tap.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

#include "capture/capture.hpp"
#include "common/clock.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"
#include "frames.hpp"

namespace cf::capture {
namespace {

using namespace test_frames;

// `body` in a forked child with a network namespace of its own whose
// loopback is up; the exit code says whether an assertion failed there.
int in_netns(const std::function<void()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) _exit(100);
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strcpy(ifr.ifr_name, "lo");
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) != 0) _exit(102);
    ifr.ifr_flags = short(ifr.ifr_flags | IFF_UP);
    if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) != 0) _exit(102);
    body();
    std::fflush(stdout);  // the child's messages
    _exit(::testing::Test::HasFailure() ? 1 : 0);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return 101;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

// `body` with a LinkTap on the loopback of a network namespace of its own
// (in_netns) and a wire-egress Capture into a fresh directory.
int on_loopback(const std::function<void(LinkTap&, Capture&)>& body) {
  return in_netns([&body] {
    auto tap = LinkTap::open(int(if_nametoindex("lo")));
    ASSERT_TRUE(tap) << tap.error().str();
    TempDir dir;
    auto cap = wire_capture(dir);
    ASSERT_TRUE(cap) << cap.error().str();
    body(*tap.value(), *cap);
  });
}

// UDP datagrams to 127.0.0.1:9 (nobody listens) until `stop`, or 15 s.
void flood(const std::atomic<bool>& stop) {
  UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in to = loopback4(9);
  const uint64_t end = monotonic_ms() + 15'000;
  while (!stop && monotonic_ms() < end)
    for (int i = 0; i < 64; ++i)
      (void)::sendto(fd.get(), "flood", 5, 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
}

// The tap's reader, slowed down (50 us a frame) so that a flood always
// outruns it, as a slow disk would.
FrameNote slow(const FiveTuple&) {
  ::usleep(50);
  return {};
}

TEST(LinkTap, StopIsBoundedOnAFloodedLinkAndCountsWhatItLeft) {
  if (geteuid() != 0) GTEST_SKIP() << "needs CAP_NET_RAW and a network namespace";
  const int rc = on_loopback([](LinkTap& tap, Capture& cap) {
    ASSERT_TRUE(tap.start(cap, slow, false));
    std::atomic<bool> stop{false};
    std::thread flooder([&stop] { flood(stop); });
    ::usleep(300 * 1000);  // the queue fills
    const uint64_t t0 = monotonic_ms();
    tap.stop();
    const uint64_t took = monotonic_ms() - t0;
    stop = true;
    flooder.join();
    EXPECT_LT(took, 4000u) << "stop() must return while the flood goes on (took " << took
                           << " ms)";
    EXPECT_GT(tap.unread(), 0u) << "the frames left unread are counted";
    EXPECT_GT(cap.frames(), 0u) << "what it read is in the file";
    EXPECT_EQ(tap.read_error(), 0);
    ASSERT_TRUE(cap.close());
  });
  EXPECT_EQ(rc, 0) << "the child's assertions (above)";
}

TEST(LinkTap, StopOnAQuietLinkReadsEverythingQueued) {
  if (geteuid() != 0) GTEST_SKIP() << "needs CAP_NET_RAW and a network namespace";
  const int rc = on_loopback([](LinkTap& tap, Capture& cap) {
    // Queued before the reader starts: 500 datagrams to a socket that never
    // reads, each seen twice on loopback (sent and received).
    UniqueFd sink(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in to = loopback4(9);
    ASSERT_EQ(::bind(sink.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    for (int i = 0; i < 500; ++i)
      ASSERT_EQ(::sendto(fd.get(), "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 1);
    ASSERT_TRUE(tap.start(cap, nullptr, false));
    tap.stop();
    EXPECT_EQ(tap.unread(), 0u);
    EXPECT_EQ(tap.drops(), 0u);
    EXPECT_EQ(cap.frames(), 1000u);
    ASSERT_TRUE(cap.close());
  });
  EXPECT_EQ(rc, 0) << "the child's assertions (above)";
}

}  // namespace
}  // namespace cf::capture
