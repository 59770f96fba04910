// The engine's bounds (docs/security.md, "Limits"), driven over a fake tap
// (fake_tap.hpp) with the limits lowered: each limit refuses, evicts or
// pauses as documented, is counted for the summary and logged as limit_hit;
// and a flow that waits costs no CPU.
#include <linux/sock_diag.h>

#include <fmt/format.h>

#include "engine/dns_msg.hpp"
#include "engine/tcp_seq.hpp"
#include "fake_tap.hpp"

namespace cf::engine::test {
namespace {

using observe::Limit;

class Limits : public FakeTap {
 protected:
  uint64_t hits(Limit l) const { return rec_->counts().limits[size_t(l)]; }
  uint64_t limit_lines() const {
    auto it = rec_->counts().events.find("limit_hit");
    return it == rec_->counts().events.end() ? 0 : it->second;
  }

  // A listener on 127.0.0.1 whose accept queue is full: a connect to it stays
  // in progress for as long as the test runs. Returns its port.
  uint16_t full_listener() {
    full_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(full_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(full_.get(), 0), 0);
    socklen_t al = sizeof a;
    getsockname(full_.get(), reinterpret_cast<sockaddr*>(&a), &al);
    for (int i = 0; i < 2; ++i) {
      fillers_.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      connect_nb(fillers_.back().get(), a);
    }
    usleep(50'000);
    return ntohs(a.sin_port);
  }

  // The child sends one datagram of `len` payload bytes to the gateway.
  void child_udp(uint16_t sport, uint16_t dport, const uint8_t* data, size_t len) {
    uint8_t buf[packet::kFrameMax];
    size_t off = packet::payload_offset(Family::V4, packet::kProtoUdp);
    std::memcpy(buf + off, data, len);
    size_t n = packet::build_udp(buf, child_mac_, opts_.plan.gw_mac, opts_.plan.child4, sport,
                                 opts_.plan.gw4, dport, len);
    ASSERT_EQ(write(tap_.get(), buf, n), ssize_t(n));
  }

  UniqueFd full_;
  std::vector<UniqueFd> fillers_;
};

// One DNS query for `name` (type A), framed for TCP when `framed`.
std::string dns_query(const std::string& name, uint16_t id, bool framed) {
  std::string m;
  auto be16 = [&](uint16_t v) {
    m.push_back(char(v >> 8));
    m.push_back(char(v & 0xff));
  };
  be16(id);
  be16(0x0100);
  be16(1);
  be16(0);
  be16(0);
  be16(0);
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(char(dot - start));
    m.append(name, start, dot - start);
    start = dot + 1;
  }
  m.push_back('\0');
  be16(1);
  be16(1);
  if (!framed) return m;
  return std::string{char(m.size() >> 8), char(m.size() & 0xff)} + m;
}

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

// Polling before sleeping (Engine::wait_events): a wait that ended within
// the ceiling starts polling, a poll that finds events keeps its budget, and
// a wait that slept longer (an idle tree) ends polling, so an idle engine
// costs no CPU.
TEST_F(Limits, PollingFollowsHowLongWaitsLast) {
  start(false);
  connect(5000);
  bool exited = false;
  ASSERT_TRUE(e_->turn(20, &exited));  // nothing comes: a long sleep
  EXPECT_EQ(e_->poll_budget_us(), 0u) << "an idle engine must not poll";
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "x");
  snd_nxt_ += 1;
  ASSERT_TRUE(e_->turn(20, &exited));  // the frame was there: a short wait
  EXPECT_EQ(e_->poll_budget_us(), 8u) << "a short wait starts polling";
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "y");
  snd_nxt_ += 1;
  ASSERT_TRUE(e_->turn(20, &exited));  // the poll finds it
  EXPECT_EQ(e_->poll_budget_us(), 8u) << "a poll that found events keeps its budget";
  EXPECT_EQ(server_read(2), "xy");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(e_->turn(20, &exited));
  EXPECT_EQ(e_->poll_budget_us(), 0u) << "waits longer than the ceiling end polling";
}

TEST_F(Limits, OnOneCpuTheEngineNeverPolls) {
  opts_.poll = false;
  start(false);
  connect(5000);
  bool exited = false;
  for (int i = 0; i < 3; ++i) {
    child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "z");
    snd_nxt_ += 1;
    ASSERT_TRUE(e_->turn(20, &exited));  // short waits, that would start polling
    EXPECT_EQ(e_->poll_budget_us(), 0u);
  }
  EXPECT_EQ(server_read(3), "zzz");
}

// A connect in progress holds a slot of Limits::tcp_connecting; a SYN beyond
// it gets a RST, counted and logged; once one finishes, the next SYN is
// served again.
TEST_F(Limits, ConnectsInProgressBeyondTheLimitAreReset) {
  opts_.limits.tcp_connecting = 2;
  start(false);
  uint16_t stuck = full_listener();
  dport_ = stuck;
  for (uint16_t i = 0; i < 2; ++i) {
    sport_ = uint16_t(kChildPort + 10 + i);
    child_send(kSyn, 9000, 0);
  }
  auto fr = run(100);
  for (const auto& f : fr) EXPECT_FALSE(f.p.flags & kRst) << "two connects may be pending";
  EXPECT_EQ(e_->tcp_connecting, 2u);
  sport_ = kChildPort + 12;
  child_send(kSyn, 9000, 0);
  fr = run_until(200, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_TRUE(fr.back().p.flags & kRst);
  EXPECT_EQ(fr.back().p.dport, kChildPort + 12);
  EXPECT_EQ(hits(Limit::TcpConnecting), 1u);
  EXPECT_EQ(limit_lines(), 1u);
  EXPECT_EQ(st_.tcp_refused_overload, 1u);
  // One of the two gives up: a connection to the real listener is served.
  sport_ = kChildPort + 10;
  child_send(kRst, 9001, 0);
  run(20);
  sport_ = kChildPort;
  dport_ = 0;
  connect(5000);
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "after");
  EXPECT_EQ(server_read(5), "after");
}

// The TCP table itself (Limits::tcp_flows): a SYN beyond it gets a RST.
TEST_F(Limits, FlowsBeyondTheTcpTableAreReset) {
  opts_.limits.tcp_flows = 1;
  start(false);
  connect(5000);
  sport_ = kChildPort + 1;
  child_send(kSyn, 7000, 0);
  auto fr = run_until(200, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_TRUE(fr.back().p.flags & kRst);
  EXPECT_EQ(hits(Limit::TcpFlows), 1u);
  EXPECT_EQ(hits(Limit::TcpConnecting), 0u);
}

// DNS over TCP to the gateway: at most Limits::dns_tcp_streams streams at
// once; one more gets a RST; a closed stream gives its place back.
TEST_F(Limits, DnsStreamsBeyondTheLimitAreReset) {
  opts_.limits.dns_tcp_streams = 1;
  opts_.resolver = *IpAddr::parse("127.0.0.1");
  start(false);
  dport_ = 53;
  sport_ = kChildPort + 1;
  child_send(kSyn, 7000, 0);
  auto fr = run_until(300, any_with(kSyn));
  ASSERT_FALSE(fr.empty());
  ASSERT_EQ(fr.back().p.flags, kSyn | kAck);
  uint32_t first_isn = fr.back().p.seq;
  EXPECT_EQ(e_->dns_streams, 1u);
  sport_ = kChildPort + 2;
  child_send(kSyn, 7000, 0);
  fr = run_until(300, any_with(kRst));
  ASSERT_FALSE(fr.empty());
  EXPECT_EQ(fr.back().p.flags & (kRst | kSyn), kRst) << "the second stream is refused";
  EXPECT_EQ(hits(Limit::DnsTcpStreams), 1u);
  // The first one is reset by the child: its place is free again.
  sport_ = kChildPort + 1;
  child_send(kRst | kAck, 7001, first_isn + 1);
  run(20);
  EXPECT_EQ(e_->dns_streams, 0u);
  sport_ = kChildPort + 3;
  child_send(kSyn, 7000, 0);
  fr = run_until(300, any_with(kSyn));
  ASSERT_FALSE(fr.empty());
  EXPECT_EQ(fr.back().p.flags, kSyn | kAck);
}

// A child that streams DNS queries over TCP and never reads an answer: the
// stream stops reading it once a direction holds Limits::dns_tcp_buffer
// bytes, the window to the child shuts, the stream's buffers stay within the
// bound, the pause is counted, and the engine then idles.
TEST_F(Limits, ADnsStreamWhoseChildNeverReadsStopsReadingIt) {
  opts_.resolver = *IpAddr::parse("127.0.0.1");
  cfg_.deny_domains = {"example.test"};  // answered here, at once: no upstream needed
  start(false);
  dport_ = 53;
  child_send(kSyn, 7000, 0);
  auto hs = run_until(500, any_with(kSyn));
  ASSERT_FALSE(hs.empty());
  ASSERT_EQ(hs.back().p.flags, kSyn | kAck);
  rcv_nxt_ = hs.back().p.seq + 1;
  uint32_t base = 7001;
  child_send(kAck, base, rcv_nxt_);
  run(20);
  auto slot = busy_slot(*e_);
  ASSERT_TRUE(slot);
  ASSERT_TRUE(e_->tcp[*slot].dns);
  // One long stream of queries; the child acknowledges nothing and keeps its
  // first window: the engine can send it 64 KiB of answers, then must hold
  // the rest. The child sends on from whatever the engine acknowledged.
  std::string stream;
  for (int i = 0; i < 40'000; ++i) stream += dns_query("flood.example.test", uint16_t(i), true);
  size_t off = 0;
  bool shut = false;
  for (int i = 0; i < 5000 && !shut && off < stream.size(); ++i) {
    child_send(kAck | kPsh, base + uint32_t(off), rcv_nxt_, stream.substr(off, 1400));
    for (const auto& f : run(1)) {
      if (seq_gt(f.p.ack, base + uint32_t(off))) off = f.p.ack - base;
      if ((f.p.flags & kAck) && f.p.window == 0) shut = true;
    }
  }
  EXPECT_TRUE(shut) << "the window to a child that never reads must shut";
  EXPECT_GE(hits(Limit::DnsTcpBuffer), 1u);
  const DnsStream& s = *e_->tcp[*slot].dns;
  size_t cap = std::max<size_t>(opts_.limits.dns_tcp_buffer, 2 + 65535);
  EXPECT_LE(s.from_child.size() + s.to_up.size(), cap);
  EXPECT_LE(s.from_up.size() + s.to_child.size(), cap);
  auto fr = run(300);
  EXPECT_LE(fr.size(), 3u) << "a stalled stream must not keep the engine busy";
}

// UDP queries to the gateway awaiting the resolver (Limits::dns_in_flight):
// one beyond is still judged and logged, and answered SERVFAIL at once.
TEST_F(Limits, DnsQueriesBeyondTheLimitGetServfail) {
  opts_.limits.dns_in_flight = 1;
  opts_.resolver = *IpAddr::parse("127.0.0.1");
  start(false);
  std::string q1 = dns_query("one.example.test", 1, false);
  std::string q2 = dns_query("two.example.test", 2, false);
  // Both in one batch: the first takes the only slot.
  child_udp(5301, 53, reinterpret_cast<const uint8_t*>(q1.data()), q1.size());
  child_udp(5302, 53, reinterpret_cast<const uint8_t*>(q2.data()), q2.size());
  auto fr = run_until(300, [](const std::vector<Frame>& v) {
    for (const auto& f : v)
      if (f.p.proto == packet::kProtoUdp && f.p.dport == 5302) return true;
    return false;
  });
  const Frame* answer = nullptr;
  for (const auto& f : fr)
    if (f.p.proto == packet::kProtoUdp && f.p.dport == 5302) answer = &f;
  ASSERT_NE(answer, nullptr) << "the query beyond the limit is answered at once";
  auto r = dns::parse_response({answer->bytes.data() + answer->p.payload_off,
                                answer->p.payload_len});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rcode, dns::kRcodeServFail);
  EXPECT_EQ(hits(Limit::DnsInFlight), 1u);
  EXPECT_EQ(rec_->counts().dns_names.keys.count("two.example.test"), 1u) << "still logged";
}

// A full UDP table (Limits::udp_flows) evicts its least recently used flow;
// each eviction is a hit, and the log gets one line for the burst.
TEST_F(Limits, AFullUdpTableEvictsAndCounts) {
  opts_.limits.udp_flows = 2;
  start(false);
  const uint8_t ping[] = {'p'};
  for (uint16_t i = 0; i < 5; ++i) child_udp(uint16_t(6000 + i), port_, ping, 1);
  run(50);
  EXPECT_EQ(st_.udp_flows, 5u);
  EXPECT_EQ(st_.dgram_evicted, 3u);
  EXPECT_EQ(hits(Limit::UdpFlows), 3u);
  EXPECT_EQ(limit_lines(), 1u) << "one limit_hit line a second at most";
  rec_->finish();
  EXPECT_EQ(rec_->counts().events.at("limit_hit"), 2u) << "the rest when the run ends";
}

// The copy path's memory (Limits::tcp_copy_bytes): a flow that finds none
// left reads no more from its host socket, counted, and goes on as the
// child's ACKs give memory back; nothing is lost.
TEST_F(Limits, TheCopyPathWaitsForMemoryAndLosesNothing) {
  opts_.limits.tcp_copy_bytes = SendCopy::kMin;
  start(false);
  connect(5000, 65535);
  std::string down = pattern(100'000, 'k');
  server_write(down);
  std::string got;
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (got.size() < down.size() && std::chrono::steady_clock::now() < end) {
    for (const auto& f : data_frames(run(5))) {
      if (f.p.seq != rcv_nxt_) continue;
      got += f.payload();
      rcv_nxt_ += uint32_t(f.p.payload_len);
    }
    child_send(kAck, snd_nxt_, rcv_nxt_);
  }
  EXPECT_EQ(got, down);
  run(20);  // the last ACK
  EXPECT_GE(hits(Limit::TcpCopyBytes), 1u);
  EXPECT_LE(e_->tcp[*busy_slot(*e_)].copy.capacity(), SendCopy::kMin);
  EXPECT_EQ(e_->copy_budget.left, SendCopy::kMin) << "all given back once acknowledged";
}

// Timer entries a flow leaves behind when it queues an earlier deadline are
// dropped once they pile up, and the flow's own entry survives.
TEST_F(Limits, StaleTimerEntriesAreCompacted) {
  start(false);
  e_->tcp_idle_ms = 300;
  connect(5000);
  auto slot = busy_slot(*e_);
  ASSERT_TRUE(slot);
  for (int i = 0; i < 50'000; ++i) e_->arm(Tag::Tcp, *slot, e_->now + 3'600'000 + uint64_t(i));
  EXPECT_LT(e_->timer_entries(), 2 * 4096u + 64) << "stale entries must not pile up";
  auto fr = run_until(1500, any_with(kRst));
  ASSERT_FALSE(fr.empty()) << "the flow's own (idle) timer still fires";
  EXPECT_TRUE(fr.back().p.flags & kRst);
}

}  // namespace
}  // namespace cf::engine::test
