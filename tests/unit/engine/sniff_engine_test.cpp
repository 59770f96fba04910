// The TCP translator holds a connection's first bytes until the name in them
// is judged (docs/policy.md, "Names the tree sends"), over a fake tap: what
// reaches the server, what the child sees, and the sniff_holds bound.
#include "fake_tap.hpp"
#include "learn/ledger.hpp"

namespace cf::engine::test {
namespace {

using observe::Limit;

class Sniff : public FakeTap {
 protected:
  void SetUp() override { cfg_.deny_domains = {"denied.test"}; }
  uint64_t hits(Limit l) const { return rec_->counts().limits[size_t(l)]; }
  // The child's segment with data, then the engine's answer.
  std::vector<Frame> send_data(const std::string& s, int ms = 50) {
    child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, s);
    return run(ms);
  }
  static bool has_ack(const std::vector<Frame>& fr, uint32_t ack) {
    for (const auto& f : fr)
      if ((f.p.flags & kAck) && f.p.ack == ack) return true;
    return false;
  }
  static bool has_rst(const std::vector<Frame>& fr) {
    for (const auto& f : fr)
      if (f.p.flags & kRst) return true;
    return false;
  }
};

TEST_F(Sniff, AnAllowedHostCutOverSegmentsReachesTheServerWhole) {
  start(true);
  connect(5000);
  const std::string head = "GET / HTTP/1.1\r\nHost: ok.test\r\nAccept: */*\r\n\r\nbody";
  for (size_t off = 0; off < head.size(); off += 7) {
    std::string part = head.substr(off, 7);
    auto fr = send_data(part);
    snd_nxt_ += uint32_t(part.size());
    EXPECT_TRUE(has_ack(fr, snd_nxt_)) << "the held bytes are acknowledged (offset " << off << ")";
    if (off + 7 < head.find("\r\n\r\n") + 4) {
      EXPECT_EQ(server_read(1, 20), "") << "nothing reaches the server before the head is complete";
    }
  }
  EXPECT_EQ(server_read(head.size()), head);
  EXPECT_EQ(st_.sniff_denied, 0u);
  EXPECT_EQ(e_->sniff_holding, 0u) << "the hold is freed once it went out";
}

TEST_F(Sniff, ADeniedHostResetsBothEndsAndNothingReachesTheServer) {
  start(true);
  connect(5000);
  auto fr = send_data("GET / HTTP/1.1\r\nHo");
  snd_nxt_ += 18;
  fr = send_data("st: www.DENIED.test\r\n\r\n");
  EXPECT_TRUE(has_rst(fr)) << "the child gets a reset";
  char buf[256];
  ssize_t n = 0;
  for (int i = 0; i < 100; ++i) {
    n = recv(server_.get(), buf, sizeof buf, MSG_DONTWAIT);
    if (n >= 0 || errno != EAGAIN) break;
    usleep(5000);
  }
  EXPECT_LE(n, 0) << "the server got bytes";
  EXPECT_EQ(st_.sniff_denied, 1u);
  EXPECT_EQ(e_->sniff_holding, 0u);
  EXPECT_EQ(rec_->counts().violations_total, 1u);
}

TEST_F(Sniff, OtherProtocolsPassAtOnce) {
  start(true);
  connect(5000);
  send_data("SSH-2.0-OpenSSH_9.2\r\n");
  EXPECT_EQ(server_read(21), "SSH-2.0-OpenSSH_9.2\r\n");
  EXPECT_EQ(e_->sniff_holding, 0u);
}

// At most Limits::sniff_holds flows hold bytes: the next one's segment is
// not taken (no ACK for it), counted as limit_hit; it is taken once a hold
// is free again.
TEST_F(Sniff, FlowsBeyondSniffHoldsArePaused) {
  opts_.limits.sniff_holds = 1;
  start(true);
  connect(5000);
  UniqueFd server_a = std::move(server_);
  uint32_t a_snd = snd_nxt_, a_rcv = rcv_nxt_;
  send_data("GET / HTTP/1.1\r\nHost: a");
  a_snd += 23;
  EXPECT_EQ(e_->sniff_holding, 1u);

  sport_ = kChildPort + 1;
  connect(9000);
  auto fr = send_data("GET / HTTP/1.1\r\nHost: b");
  EXPECT_FALSE(has_ack(fr, snd_nxt_ + 23)) << "the second flow's bytes were taken";
  EXPECT_EQ(hits(Limit::SniffHolds), 1u);

  // The first flow's head ends: its hold is freed, and the second flow's
  // retransmission is taken.
  uint16_t b_port = sport_;
  sport_ = kChildPort;
  child_send(kAck | kPsh, a_snd, a_rcv, ".test\r\n\r\n");
  run(50);
  char buf[256];
  ssize_t n = recv(server_a.get(), buf, sizeof buf, MSG_DONTWAIT);
  EXPECT_EQ(std::string(buf, size_t(std::max<ssize_t>(n, 0))),
            "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
  sport_ = b_port;
  fr = send_data("GET / HTTP/1.1\r\nHost: b");
  EXPECT_TRUE(has_ack(fr, snd_nxt_ + 23)) << "the retransmission is taken once a hold is free";
}

// A FIN while the head is still undecided: it can never complete, so it is
// judged unreadable at once: the flow is reset and the denial logged, and
// nothing reaches the server.
TEST_F(Sniff, AFinBeforeTheHeadEndsIsUnreadable) {
  start(true);
  connect(5000);
  const std::string part = "GET / HTTP/1.1\r\nHost: www.den";
  send_data(part);
  snd_nxt_ += uint32_t(part.size());
  child_send(kFin | kAck, snd_nxt_, rcv_nxt_);
  auto fr = run(50);
  EXPECT_TRUE(has_rst(fr));
  EXPECT_EQ(server_read(1, 100), "");
  EXPECT_EQ(rec_->counts().violations_total, 1u);
  EXPECT_EQ(e_->sniff_holding, 0u);
}

// --learn with no domain rule (Options::learn_names): the first bytes are
// read only to learn the name they send. The name goes to the Ledger, and
// bytes that cannot be read are let through: no rule asked for a judgement.
class LearnSniff : public Sniff {
 protected:
  void SetUp() override { opts_.learn_names = true; }
  void start_learning() {
    start(true);
    rec_->set_ledger(&ledger_);
    connect(5000);
  }
  learn::Ledger ledger_{*IpAddr::parse("10.0.2.1")};
};

TEST_F(LearnSniff, TheNameSentIsLearntAndTheBytesGoOn) {
  start_learning();
  const std::string head = "GET / HTTP/1.1\r\nHost: Learnt.TEST.\r\n\r\n";
  send_data(head);
  EXPECT_EQ(server_read(head.size()), head);
  // (Exactly: the tree chose those bytes.)
  EXPECT_EQ(ledger_.exact(), (learn::Ledger::Counts{{"learnt.test", 1}}));
  // The flow itself (to the gateway: the host's loopback) had no DNS name.
  EXPECT_EQ(ledger_.cidrs(), (learn::Ledger::Counts{{"127.0.0.1/32", 1}}));
  EXPECT_EQ(st_.sniff_denied, 0u);
}

TEST_F(LearnSniff, AHeadThatCannotBeJudgedStillGoesThrough) {
  start_learning();
  const std::string head = "GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n";
  auto fr = send_data(head);
  EXPECT_FALSE(has_rst(fr));
  EXPECT_EQ(server_read(head.size()), head);
  EXPECT_TRUE(ledger_.exact().empty());
  EXPECT_EQ(ledger_.unreadable(), 1u);
  EXPECT_EQ(rec_->counts().violations_total, 0u);
}

TEST_F(LearnSniff, AFinBeforeTheHeadEndsLetsTheHeldBytesGoFirst) {
  start_learning();
  send_data("GET / HTTP/1.1\r\nHost: partial.exa");
  snd_nxt_ += 33;
  child_send(kFin | kAck, snd_nxt_, rcv_nxt_);
  auto fr = run(50);
  EXPECT_FALSE(has_rst(fr));
  EXPECT_TRUE(has_ack(fr, snd_nxt_ + 1)) << "the FIN is taken";
  EXPECT_EQ(server_read(33), "GET / HTTP/1.1\r\nHost: partial.exa");
  char c;
  EXPECT_EQ(recv(server_.get(), &c, 1, 0), 0) << "then the server sees the end";
  EXPECT_EQ(ledger_.unreadable(), 1u);
}

TEST_F(LearnSniff, AHeadLargerThanTheHoldGoesThroughWholeAndInOrder) {
  start_learning();
  // A request head that never ends within sniff::kMax: held up to the
  // bound, then let go, and everything after it follows in order.
  std::string bytes = "GET / HTTP/1.1\r\nX-Big: " + std::string(sniff::kMax + 3000, 'a');
  int retries = 0;
  for (size_t off = 0; off < bytes.size() && retries < 20; off += 1400) {
    std::string part = bytes.substr(off, 1400);
    auto fr = send_data(part, 20);
    EXPECT_FALSE(has_rst(fr)) << off;
    if (has_ack(fr, snd_nxt_ + uint32_t(part.size()))) {
      snd_nxt_ += uint32_t(part.size());
    } else {
      off -= 1400;  // not taken (the hold was full): the child sends it again
      ++retries;
    }
  }
  EXPECT_EQ(server_read(bytes.size(), 3000), bytes);
  EXPECT_EQ(e_->sniff_holding, 0u);
  EXPECT_EQ(rec_->counts().violations_total, 0u);
}

}  // namespace
}  // namespace cf::engine::test
