// The engine's bounds (docs/security.md, "Limits"), driven over a fake tap
// (fake_tap.hpp): a flow that waits costs no CPU.
#include <linux/sock_diag.h>

#include "fake_tap.hpp"

namespace cf::engine::test {
namespace {

class Limits : public FakeTap {};

// SO_MEMINFO's send-buffer size and bytes queued for a TCP socket.
std::pair<int, int> send_memory(int fd) {
  uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t ml = sizeof mem;
  getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &ml);
  return {int(mem[SK_MEMINFO_SNDBUF]), int(mem[SK_MEMINFO_WMEM_QUEUED])};
}

TEST(SockWritable, FollowsTheKernelsOwnTest) {
  // TCP: writable while the free space is at least half of what is queued.
  EXPECT_TRUE(sock_writable(false, 90'000, 60'000));
  EXPECT_FALSE(sock_writable(false, 90'000, 60'002));
  EXPECT_TRUE(sock_writable(false, 90'000, 0));
  EXPECT_FALSE(sock_writable(false, 90'000, 90'000));
  // AF_UNIX: writable while at most a quarter of the buffer is in use
  // (counting one more than SIOCOUTQ does).
  EXPECT_TRUE(sock_writable(true, 4000, 999));
  EXPECT_FALSE(sock_writable(true, 4000, 1000));
}

// An upload whose server never reads stalls with the host socket's send
// buffer nearly full. Whatever its fill level, the engine must then wait
// without spinning: before, a free space between a third of the buffer
// (where the kernel still calls the socket writable) and 8/21 of it (where
// the window offered, 7/8 of it, fell below a third) made every ACK re-arm
// EPOLLOUT, which the kernel reported at once: a busy loop, one ACK to the
// child per turn, for as long as the child sent nothing.
TEST_F(Limits, AStalledUploadCostsNoCpu) {
  start(false);
  int small = 4096;  // the server's receive buffer (inherited from the listener)
  setsockopt(listener_.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  connect(5000);
  auto slot = busy_slot(*e_);
  ASSERT_TRUE(slot);
  int hs = e_->tcp[*slot].sock.get();
  int sndbuf = 65536;  // the kernel doubles it: 128 KiB, and no autotuning
  ASSERT_EQ(setsockopt(hs, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf), 0);
  // Fill the host socket until its free space is in that band.
  const std::string chunk(500, 'u');
  bool in_band = false;
  for (int i = 0; i < 4000 && !in_band; ++i) {
    child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, chunk);
    run(1);
    snd_nxt_ += uint32_t(chunk.size());
    auto [s, q] = send_memory(hs);
    uint32_t offered = uint32_t(s - q) / 8 * 7;
    in_band = sock_writable(false, s, q) && offered < uint32_t(s) / 3;
  }
  ASSERT_TRUE(in_band) << "could not bring the send buffer into the band";
  auto fr = run(300);
  EXPECT_LE(fr.size(), 2u) << "the engine sent " << fr.size()
                           << " frames to a child that sent nothing: a busy loop";

  // Filled until the kernel calls the socket full, the window shuts; once
  // the server reads, EPOLLOUT reopens it.
  for (int i = 0; i < 4000 && sock_writable(false, send_memory(hs).first, send_memory(hs).second);
       ++i) {
    child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, chunk);
    run(1);
    snd_nxt_ += uint32_t(chunk.size());
  }
  fr = run(300);
  EXPECT_LE(fr.size(), 2u) << "a stalled upload must not keep the engine busy";
  bool reopened = false;
  for (int i = 0; i < 200 && !reopened; ++i) {
    char buf[65536];
    while (recv(server_.get(), buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    for (const auto& f : run(5))
      if (f.p.flags == kAck && f.p.window > 0) reopened = true;
  }
  EXPECT_TRUE(reopened) << "no window update once the server read";
}

}  // namespace
}  // namespace cf::engine::test
