// The TCP translator, driven turn by turn over a fake tap (fake_tap.hpp).
// Every case runs twice: with SO_PEEK_OFF (where the kernel has it) and with
// the copy path that kernels before 6.9 use.
#include "engine/tcp_seq.hpp"
#include "fake_tap.hpp"

namespace cf::engine::test {
namespace {

class TcpTranslator : public FakeTap, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override { start(GetParam()); }
};

TEST_P(TcpTranslator, HandshakeOffersClampedMssAndScaling) {
  connect(5000, 65535, 1460, 3);
  EXPECT_EQ(synack_.p.opts.mss, kMtu - 40);
  EXPECT_EQ(synack_.p.opts.wscale, 7);
  std::string up = "hello from the child";
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, up);
  EXPECT_EQ(server_read(up.size()), up);
}

TEST_P(TcpTranslator, AHostileMssIsClampedToTheTapMtu) {
  connect(5000, 65535, 65535);
  server_write(pattern(20000, 'a'));
  auto fr = data_frames(run(100));
  ASSERT_FALSE(fr.empty());
  for (const auto& f : fr) EXPECT_LE(f.p.payload_len, kMtu - 40);
}

TEST_P(TcpTranslator, NeverSendsPastTheChildsWindow) {
  connect(5000, 1000);  // no window scaling: 1000 bytes
  std::string down = pattern(5000, 'b');
  server_write(down);
  auto fr = data_frames(run(100));
  size_t sent = 0;
  for (const auto& f : fr) sent += f.p.payload_len;
  EXPECT_EQ(sent, 1000u);
  ASSERT_FALSE(fr.empty());
  EXPECT_EQ(fr.front().p.seq, rcv_nxt_);
  // Acknowledging opens the window for exactly the next 1000 bytes.
  child_send(kAck, snd_nxt_, rcv_nxt_ + 1000, "", 1000);
  auto fr2 = data_frames(run(100));
  size_t sent2 = 0;
  for (const auto& f : fr2) sent2 += f.p.payload_len;
  EXPECT_EQ(sent2, 1000u);
  ASSERT_FALSE(fr2.empty());
  EXPECT_EQ(fr2.front().p.seq, rcv_nxt_ + 1000);
  EXPECT_EQ(fr2.front().payload(), down.substr(1000, fr2.front().p.payload_len));
}

TEST_P(TcpTranslator, RetransmitsOneSegmentOnTimeoutNotTheWindow) {
  connect(5000);
  std::string down = pattern(10 * 1460, 'c');
  server_write(down);
  auto first = data_frames(run(50));
  ASSERT_EQ(first.size(), 10u);
  // No ACK: after the 200 ms RTO, one segment from snd_una, then nothing more
  // until the child acknowledges (slow start from one segment).
  auto again = data_frames(run(400));
  ASSERT_EQ(again.size(), 1u) << "a timeout must not resend the whole window";
  EXPECT_EQ(again[0].p.seq, rcv_nxt_);
  EXPECT_EQ(again[0].payload(), down.substr(0, 1460));
  // The child had everything but the first segment: one ACK covers it all,
  // and nothing is resent.
  child_send(kAck, snd_nxt_, rcv_nxt_ + uint32_t(down.size()));
  EXPECT_TRUE(data_frames(run(300)).empty());
}

TEST_P(TcpTranslator, ThreeDuplicateAcksResendOnlyTheHole) {
  connect(5000);
  std::string down = pattern(10 * 1460, 'd');
  server_write(down);
  auto first = data_frames(run(50));
  ASSERT_EQ(first.size(), 10u);
  // The second segment was lost: the child acknowledges the first, then
  // sends three duplicate ACKs (one per later segment it received).
  uint32_t hole = rcv_nxt_ + 1460;
  child_send(kAck, snd_nxt_, hole);
  auto none = data_frames(run(20));
  for (int i = 0; i < 3; ++i) child_send(kAck, snd_nxt_, hole);
  auto rtx = data_frames(run(50));
  ASSERT_EQ(rtx.size(), 1u) << "fast retransmit resends one segment, before any timeout";
  EXPECT_EQ(rtx[0].p.seq, hole);
  EXPECT_EQ(rtx[0].payload(), down.substr(1460, 1460));
  // More duplicate ACKs during recovery change nothing.
  for (int i = 0; i < 5; ++i) child_send(kAck, snd_nxt_, hole);
  EXPECT_TRUE(data_frames(run(50)).empty());
  // The retransmission filled the hole: everything is acknowledged at once.
  child_send(kAck, snd_nxt_, rcv_nxt_ + uint32_t(down.size()));
  EXPECT_TRUE(data_frames(run(300)).empty());
  (void)none;
}

TEST_P(TcpTranslator, OutOfOrderDataGetsAnImmediateDuplicateAck) {
  connect(5000);
  child_send(kAck | kPsh, snd_nxt_ + 100, rcv_nxt_, "later");
  child_send(kAck | kPsh, snd_nxt_ + 200, rcv_nxt_, "later still");
  auto fr = run(10);
  int acks = 0;
  for (const auto& f : fr)
    if (f.p.flags == kAck && f.p.ack == snd_nxt_) ++acks;
  EXPECT_EQ(acks, 2) << "one duplicate ACK per out-of-order segment";
  // The data in order still gets through.
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "now");
  EXPECT_EQ(server_read(3), "now");
}

TEST_P(TcpTranslator, HalfCloseBothWays) {
  connect(5000);
  child_send(kAck | kPsh | kFin, snd_nxt_, rcv_nxt_, "request");
  EXPECT_EQ(server_read(100), "request") << "the child's FIN is the server's EOF";
  snd_nxt_ += 7 + 1;
  server_write("answer after FIN");
  shutdown(server_.get(), SHUT_WR);
  auto fr = data_frames(run(50));
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].payload(), "answer after FIN");
  EXPECT_EQ(fr[0].p.ack, snd_nxt_) << "our segments acknowledge the child's FIN";
  EXPECT_TRUE(fr[0].p.flags & kFin)
      << "the server's shutdown, there before we sent, rides on its last data";
  // Unacknowledged, data and FIN are resent together on timeout.
  auto again = run_until(400, any_with(kFin));
  ASSERT_FALSE(again.empty());
  EXPECT_TRUE(again.back().p.flags & kFin);
  EXPECT_EQ(again.back().p.seq, rcv_nxt_);
  EXPECT_EQ(again.back().payload(), "answer after FIN");
  // The data acknowledged but not the FIN: the FIN alone is resent.
  child_send(kAck, snd_nxt_, rcv_nxt_ + 16);
  auto fins = run_until(800, any_with(kFin));
  ASSERT_FALSE(fins.empty());
  EXPECT_TRUE(fins.back().p.flags & kFin);
  EXPECT_EQ(fins.back().p.seq, rcv_nxt_ + 16);
  EXPECT_EQ(fins.back().p.payload_len, 0u);
  child_send(kAck, snd_nxt_, rcv_nxt_ + 17);
  EXPECT_TRUE(run(300).empty()) << "nothing more once the FIN is acknowledged";
}

// The server's FIN that comes after its data went out follows at once, not
// after the child acknowledged the data: a client that has read the answer
// and closes must not close first (and keep the TIME_WAIT) only because we
// sat on the FIN.
TEST_P(TcpTranslator, ALaterHostFinFollowsWithoutWaitingForTheAck) {
  connect(5000);
  server_write("answer");
  auto fr = data_frames(run(50));
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_FALSE(fr[0].p.flags & kFin) << "no FIN yet: the server has not closed";
  shutdown(server_.get(), SHUT_WR);
  auto fins = run_until(100, any_with(kFin));
  ASSERT_FALSE(fins.empty()) << "the FIN goes without the data's ACK";
  EXPECT_EQ(fins.back().p.seq, rcv_nxt_ + 6);
  EXPECT_EQ(fins.back().p.payload_len, 0u);
  // One ACK for data and FIN ends it; nothing is resent.
  child_send(kAck, snd_nxt_, rcv_nxt_ + 7);
  EXPECT_TRUE(run(300).empty());
}

TEST_P(TcpTranslator, ChildResetResetsTheServer) {
  connect(5000);
  child_send(kRst, snd_nxt_, 0);
  run(20);
  char b;
  EXPECT_EQ(recv(server_.get(), &b, 1, 0), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST_P(TcpTranslator, ServerResetResetsTheChild) {
  connect(5000);
  linger l{1, 0};
  setsockopt(server_.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  server_.reset();
  auto fr = run_until(500, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_TRUE(fr.back().p.flags & kRst);
}

TEST_P(TcpTranslator, ASynOnAnEstablishedFlowGetsAChallengeAck) {
  connect(5000);
  child_send(kSyn, 777, 0);
  auto fr = run(20);
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].p.flags, kAck);
  EXPECT_EQ(fr[0].p.ack, snd_nxt_);
  EXPECT_EQ(fr[0].p.seq, rcv_nxt_);
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "still here");
  EXPECT_EQ(server_read(10), "still here");
}

TEST_P(TcpTranslator, SequenceNumbersWrapBothWays) {
  g_isn = 0xfffff000u;  // ours wraps after 4 KiB
  uint32_t ours = connect(0xfffff800u);
  EXPECT_EQ(ours, 0xfffff000u);
  // Child -> server across the child's wrap.
  std::string up = pattern(8000, 'u');
  for (size_t off = 0; off < up.size(); off += 1000) {
    child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, up.substr(off, 1000));
    snd_nxt_ += 1000;
  }
  EXPECT_EQ(server_read(up.size()), up);
  // Server -> child across ours, acknowledged as it arrives.
  std::string down = pattern(20000, 'w');
  server_write(down);
  std::string got;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (got.size() < down.size() && std::chrono::steady_clock::now() < end) {
    for (const auto& f : data_frames(run(10))) {
      if (f.p.seq != rcv_nxt_) continue;
      got += f.payload();
      rcv_nxt_ += uint32_t(f.p.payload_len);
    }
    child_send(kAck, snd_nxt_, rcv_nxt_);
  }
  EXPECT_EQ(got, down);
  EXPECT_TRUE(seq_gt(rcv_nxt_, 0xfffff000u + 1)) << "our sequence space wrapped";
}

TEST_P(TcpTranslator, AnIdleFlowIsResetAfterItsTimeOut) {
  e_->tcp_idle_ms = 400;
  e_->tcp_half_closed_idle_ms = 150;
  connect(5000);
  // Activity keeps it open.
  for (int i = 0; i < 3; ++i) {
    child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "x");
    snd_nxt_ += 1;
    EXPECT_EQ(server_read(1), "x");
    run(200);
  }
  auto fr = run_until(800, any_with(kRst));
  ASSERT_FALSE(fr.empty()) << "an idle flow is reset";
  EXPECT_TRUE(fr.back().p.flags & kRst);
  EXPECT_EQ(st_.tcp_idle_reset, 1u);
  char b;
  EXPECT_EQ(recv(server_.get(), &b, 1, 0), -1) << "the host side is reset too";
}

TEST_P(TcpTranslator, AHalfClosedFlowTimesOutSooner) {
  e_->tcp_idle_ms = 60'000;
  e_->tcp_half_closed_idle_ms = 200;
  connect(5000);
  child_send(kAck | kFin, snd_nxt_, rcv_nxt_);
  auto fr = run_until(600, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_TRUE(fr.back().p.flags & kRst) << "half closed and idle for 200 ms: reset";
}

// An EPOLLOUT queued for a flow's socket that is handled after the flow has
// ended and its slot went to a new flow whose connect is still in progress
// must not count as that connect finishing: the child would get a SYN-ACK
// from a port that never answered.
TEST_P(TcpTranslator, AStaleEventForAReusedSlotIsDropped) {
  connect(5000);
  auto old_slot = busy_slot(*e_);
  ASSERT_TRUE(old_slot);
  uint64_t stale = tag(Tag::Tcp, *old_slot, e_->tcp.gen(*old_slot));
  child_send(kRst | kAck, snd_nxt_, rcv_nxt_);
  run(20);
  ASSERT_FALSE(busy_slot(*e_)) << "the child's RST ends the flow";

  // A listener whose accept queue is full drops SYNs: a connect to it stays
  // in progress (SO_ERROR 0, no EPOLLOUT) for as long as this test runs.
  UniqueFd full(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(full.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(listen(full.get(), 0), 0);
  socklen_t al = sizeof a;
  getsockname(full.get(), reinterpret_cast<sockaddr*>(&a), &al);
  std::vector<UniqueFd> fillers;
  for (int i = 0; i < 2; ++i) {
    fillers.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    connect_nb(fillers.back().get(), a);
  }
  usleep(50'000);

  sport_ = kChildPort + 1;
  dport_ = ntohs(a.sin_port);
  child_send(kSyn, 9000, 0);
  auto fr = run(100);
  ASSERT_EQ(busy_slot(*e_), old_slot) << "the new flow took the freed slot";
  ASSERT_EQ(e_->tcp[*old_slot].state, TcpState::Connecting);
  for (const auto& f : fr) EXPECT_FALSE(f.p.flags & kSyn) << "the connect is still in progress";

  uint64_t stale_before = st_.stale_events;
  EXPECT_FALSE(e_->dispatch(stale, EPOLLOUT));
  EXPECT_EQ(st_.stale_events, stale_before + 1);
  fr = run(100);
  for (const auto& f : fr) EXPECT_FALSE(f.p.flags & kSyn) << "no SYN-ACK from a stale event";
  EXPECT_EQ(e_->tcp[*old_slot].state, TcpState::Connecting);
}

// A peer that has lost the connection (rebooted, or its socket vanished
// without a FIN or RST) is found by the host socket's keepalive once the
// child probes, and the child gets a RST instead of the engine answering its
// probes for ever.
TEST_P(TcpTranslator, AVanishedPeerTurnsIntoARstWhenTheChildProbes) {
  e_->tcp_keep_idle_s = 1;
  e_->tcp_keep_intvl_s = 1;
  e_->tcp_keep_cnt = 2;
  connect(5000);
  // TCP_REPAIR makes close() silent: the server's socket disappears without
  // telling the engine's socket (needs CAP_NET_ADMIN).
  int one = 1;
  if (setsockopt(server_.get(), IPPROTO_TCP, TCP_REPAIR, &one, sizeof one) != 0)
    GTEST_SKIP() << "TCP_REPAIR needs CAP_NET_ADMIN: " << strerror(errno);
  server_.reset();
  auto fr = run(1500);
  for (const auto& f : fr) EXPECT_FALSE(f.p.flags & kRst) << "nothing tells the engine yet";
  // The child's keepalive probe: one byte below what it has sent.
  child_send(kAck, snd_nxt_ - 1, rcv_nxt_);
  fr = run_until(6000, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_TRUE(fr.back().p.flags & kRst) << "the vanished peer turns into a RST to the child";
}

// No epoll resources for a new flow's socket: the child gets a RST, as from
// a full table, the refusal is counted, nothing is left behind, and the next
// flow works.
TEST_P(TcpTranslator, AFlowThatCannotBeWatchedIsRefused) {
  fail_add(*e_, 1);
  sport_ = kChildPort + 7;
  child_send(kSyn, 7000, 0);
  auto fr = run_until(500, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_TRUE(fr.back().p.flags & kRst);
  EXPECT_EQ(st_.epoll_refused, 1u);
  EXPECT_FALSE(busy_slot(*e_));
  e_->epoll_add = epoll_add_fd;
  sport_ = kChildPort;
  connect(5000);
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "after");
  EXPECT_EQ(server_read(5), "after");
}

// The same for DNS over TCP to the gateway, whichever of its three sockets
// (stream end, upstream, translator end) cannot be watched.
TEST_P(TcpTranslator, ADnsStreamThatCannotBeWatchedIsRefused) {
  e_->opts.resolver = *IpAddr::parse("127.0.0.1");
  dport_ = 53;
  for (int nth = 1; nth <= 3; ++nth) {
    fail_add(*e_, nth);
    sport_ = uint16_t(kChildPort + nth);
    child_send(kSyn, 7000, 0);
    auto fr = run_until(500, any_with(kRst));
    ASSERT_FALSE(fr.empty()) << nth;
    EXPECT_TRUE(fr.back().p.flags & kRst) << nth;
    EXPECT_EQ(st_.epoll_refused, uint64_t(nth));
    EXPECT_FALSE(busy_slot(*e_)) << nth;
  }
  e_->epoll_add = epoll_add_fd;
  sport_ = kChildPort + 9;
  child_send(kSyn, 7000, 0);
  auto fr = run_until(500, any_with(kSyn));
  ASSERT_FALSE(fr.empty());
  ASSERT_EQ(fr.back().p.flags, kSyn | kAck) << "a stream that could be watched is served";
  // It finishes (its stream is unwatched then) and lingers; releasing the
  // slot afterwards must not unwatch it a second time.
  child_send(kAck | kFin, 7001, fr.back().p.seq + 1);
  auto fins = run_until(1000, any_with(kFin));
  ASSERT_FALSE(fins.empty());
  child_send(kAck, 7002, fins.back().p.seq + 1);
  run(20);
  auto slot = busy_slot(*e_);
  ASSERT_TRUE(slot);
  EXPECT_EQ(e_->tcp[*slot].state, TcpState::Closing);
  e_->tcp_close_all();
  EXPECT_FALSE(busy_slot(*e_));
}

// A UDP flow whose socket cannot be watched: the datagram is refused with
// ICMP administratively prohibited and counted, no flow stays, and the next
// datagram opens the flow.
TEST_P(TcpTranslator, AUdpFlowThatCannotBeWatchedIsRefused) {
  auto send_udp = [&] {
    uint8_t buf[packet::kFrameMax];
    size_t off = packet::payload_offset(Family::V4, packet::kProtoUdp);
    std::memcpy(buf + off, "ping", 4);
    size_t n = packet::build_udp(buf, child_mac_, opts_.plan.gw_mac, opts_.plan.child4, 5353,
                                 opts_.plan.gw4, port_, 4);
    ASSERT_EQ(write(tap_.get(), buf, n), ssize_t(n));
  };
  FlowKey key{opts_.plan.child4, opts_.plan.gw4, 5353, port_};
  fail_add(*e_, 1);
  send_udp();
  auto fr = run(50);
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].p.proto, packet::kProtoIcmp);
  EXPECT_EQ(fr[0].p.icmp_type, packet::icmp4::kUnreach);
  EXPECT_EQ(fr[0].p.icmp_code, packet::icmp4::kAdminProhibited);
  EXPECT_EQ(st_.epoll_refused, 1u);
  EXPECT_FALSE(e_->udp.find(key));
  e_->epoll_add = epoll_add_fd;
  send_udp();
  run(50);
  EXPECT_TRUE(e_->udp.find(key));
  EXPECT_EQ(st_.udp_flows, 1u);
}

TEST(TcpStates, TheTransitionTableAllowsOnlyTheLifeCycle) {
  using S = TcpState;
  const S all[] = {S::Free, S::Connecting, S::SynAckSent, S::Established, S::Closing};
  int allowed = 0;
  for (S from : all)
    for (S to : all)
      if (to != S::Free && tcp_transition_ok(from, to)) ++allowed;
  EXPECT_EQ(allowed, 4) << "exactly the four forward steps";
  EXPECT_TRUE(tcp_transition_ok(S::Free, S::Connecting));
  EXPECT_TRUE(tcp_transition_ok(S::Connecting, S::SynAckSent));
  EXPECT_TRUE(tcp_transition_ok(S::SynAckSent, S::Established));
  EXPECT_TRUE(tcp_transition_ok(S::Established, S::Closing));
  for (S from : all) EXPECT_TRUE(tcp_transition_ok(from, S::Free));
  EXPECT_FALSE(tcp_transition_ok(S::Connecting, S::Established)) << "no data before the SYN-ACK";
  EXPECT_FALSE(tcp_transition_ok(S::Closing, S::Established));
}

INSTANTIATE_TEST_SUITE_P(Paths, TcpTranslator, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("PeekOff") : std::string("Copy");
                         });

}  // namespace
}  // namespace cf::engine::test
