// tap0's offloads (Options::vnet_hdr): every frame across the fake tap
// carries a virtio-net header; TCP segments towards the child may exceed its
// MSS (with the GSO fields set) and leave their checksum to the receiver;
// the child's segments may be as large and carry a partial checksum.
#include "fake_tap.hpp"

namespace cf::engine::test {
namespace {

// The frame's L4 checksum, as a receiver checks it: the sum over the
// pseudo-header and the L4 bytes folds to all ones.
bool l4_csum_ok(const Frame& f) {
  uint32_t sum = packet::pseudo_header_sum(f.p.src, f.p.dst, f.p.proto, f.p.l4_len);
  sum = packet::csum_partial(f.bytes.data() + f.p.l4_off, f.p.l4_len, sum);
  return packet::csum_fold(sum) == 0;
}

class Offload : public FakeTap, public ::testing::WithParamInterface<bool> {
 protected:
  void SetUp() override {
    opts_.vnet_hdr = true;
    start(GetParam());
  }
};

TEST_P(Offload, SegmentsToTheChildSpanManyMssWithTheGsoFieldsSet) {
  connect(5000, 65535, 1460, 7);  // a window of 8 MiB
  std::string down = pattern(200000, 'o');
  server_write(down);
  // The child acknowledges what it got (with SO_PEEK_OFF the host socket
  // keeps it queued until then).
  std::vector<Frame> fr;
  const uint32_t end = rcv_nxt_ + uint32_t(down.size());
  for (int i = 0; i < 50 && rcv_nxt_ != end; ++i) {
    for (auto& f : data_frames(run(20))) {
      if (f.p.seq == rcv_nxt_) rcv_nxt_ += uint32_t(f.p.payload_len);
      fr.push_back(std::move(f));
    }
    child_send(kAck, snd_nxt_, rcv_nxt_, "", 65535);
  }
  ASSERT_FALSE(fr.empty());
  std::string got;
  size_t big = 0;
  for (auto& f : fr) {
    got += f.payload();
    EXPECT_LE(f.p.payload_len, packet::tcp_max_payload(Family::V4));
    EXPECT_EQ(f.vh.flags, packet::kVnetNeedsCsum);
    EXPECT_EQ(f.vh.csum_start, packet::l4_offset(Family::V4));
    EXPECT_EQ(f.vh.csum_offset, 16);
    if (f.p.payload_len > 1460) {
      ++big;
      EXPECT_EQ(f.vh.gso_type, packet::kGsoTcp4);
      EXPECT_EQ(f.vh.gso_size, 1460);
      EXPECT_EQ(f.vh.hdr_len, packet::l4_offset(Family::V4) + 20);
    } else {
      EXPECT_EQ(f.vh.gso_type, packet::kGsoNone);
    }
    // The field holds the pseudo-header's sum; completed as the tree's
    // kernel would, the checksum is right.
    EXPECT_FALSE(l4_csum_ok(f));
    ASSERT_TRUE(packet::finish_partial_csum(f.bytes.data(), f.bytes.size(), f.vh.csum_start,
                                            f.vh.csum_offset));
    EXPECT_TRUE(l4_csum_ok(f));
  }
  EXPECT_GE(big, 3u) << "200 kB in segments of at most 64 KiB";
  EXPECT_EQ(got, down);
}

TEST_P(Offload, HandshakeAndSmallSegmentsKeepTheirMss) {
  connect(5000, 65535, 1460, 7);
  EXPECT_EQ(synack_.p.opts.mss, kMtu - 40) << "the MSS we offer is still the MTU's";
  EXPECT_EQ(synack_.vh.gso_type, packet::kGsoNone);
  server_write("short answer");
  auto fr = data_frames(run(50));
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].payload(), "short answer");
  EXPECT_EQ(fr[0].vh.gso_type, packet::kGsoNone);
}

TEST_P(Offload, TheWindowStillBoundsEachSegment) {
  connect(5000, 3000);  // no scaling: 3000 bytes
  server_write(pattern(10000, 'w'));
  auto fr = data_frames(run(100));
  size_t sent = 0;
  for (const auto& f : fr) sent += f.p.payload_len;
  EXPECT_EQ(sent, 3000u);
}

TEST_P(Offload, ALossResendsOneMssAtATime) {
  connect(5000, 65535, 1460, 7);
  std::string down = pattern(100000, 'l');
  server_write(down);
  auto first = data_frames(run(50));
  ASSERT_FALSE(first.empty());
  // No ACK: the retransmission after the RTO is one MSS from snd_una.
  auto again = data_frames(run(400));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].p.seq, rcv_nxt_);
  EXPECT_EQ(again[0].payload(), down.substr(0, 1460));
  EXPECT_EQ(again[0].vh.gso_type, packet::kGsoNone);
}

TEST_P(Offload, TheChildsLargeSegmentWithAPartialChecksumIsTaken) {
  connect(5000, 65535, 1460, 7);
  std::string up = pattern(60000, 'u');  // 41 MSS in one frame, as TSO hands it over
  uint8_t buf[packet::kFrameMax];
  packet::TcpSeg s{opts_.plan.child4, opts_.plan.gw4, sport_, port_, snd_nxt_, rcv_nxt_,
                   uint8_t(kAck | kPsh), 65535};
  size_t off = packet::payload_offset(Family::V4, packet::kProtoTcp);
  std::memcpy(buf + off, up.data(), up.size());
  size_t n = packet::build_tcp(buf, child_mac_, opts_.plan.gw_mac, s, up.size(),
                               packet::Csum::Partial);
  ASSERT_GT(n, 0u);
  packet::VnetHdr vh;
  vh.flags = packet::kVnetNeedsCsum;
  vh.gso_type = packet::kGsoTcp4;
  vh.gso_size = 1460;
  vh.hdr_len = uint16_t(off);
  vh.csum_start = uint16_t(packet::l4_offset(Family::V4));
  vh.csum_offset = 16;
  child_write(buf, n, vh);
  EXPECT_EQ(server_read(up.size()), up);
  auto slot = busy_slot(*e_);
  ASSERT_TRUE(slot);
  EXPECT_EQ(e_->tcp[*slot].rcv_nxt, snd_nxt_ + up.size()) << "the whole segment is taken";
}

TEST_P(Offload, ATruncatedHeaderIsDroppedAsMalformed) {
  connect(5000);
  uint64_t before = st_.dropped_malformed;
  const uint8_t shorter[6] = {1, 2, 3, 4, 5, 6};
  ASSERT_EQ(write(tap_.get(), shorter, sizeof shorter), ssize_t(sizeof shorter));
  run(20);
  EXPECT_EQ(st_.dropped_malformed, before + 1);
  // The flow goes on.
  child_send(kAck | kPsh, snd_nxt_, rcv_nxt_, "still here");
  EXPECT_EQ(server_read(10), "still here");
}

INSTANTIATE_TEST_SUITE_P(Paths, Offload, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& i) {
                           return i.param ? std::string("PeekOff") : std::string("Copy");
                         });

TEST(OffloadCodec, APartialChecksumCompletesToTheFullOne) {
  uint8_t full[packet::kFrameMax], partial[packet::kFrameMax];
  for (Family fam : {Family::V4, Family::V6}) {
    const bool v4 = fam == Family::V4;
    packet::TcpSeg s{*IpAddr::parse(v4 ? "203.0.113.5" : "2001:db8::5"),
                     *IpAddr::parse(v4 ? "10.0.2.2" : "2001:db8::2"), 443, 40000, 7, 9,
                     uint8_t(kAck | kPsh), 512};
    size_t off = packet::payload_offset(fam, packet::kProtoTcp);
    for (size_t len : {size_t(0), size_t(1), size_t(1460), size_t(33333),
                       packet::tcp_max_payload(fam)}) {
      std::string data = pattern(len, 'c');
      std::memcpy(full + off, data.data(), len);
      std::memcpy(partial + off, data.data(), len);
      size_t n = packet::build_tcp(full, {}, {}, s, len);
      size_t m = packet::build_tcp(partial, {}, {}, s, len, packet::Csum::Partial);
      ASSERT_GT(n, 0u) << len;
      ASSERT_EQ(n, m);
      ASSERT_TRUE(packet::finish_partial_csum(partial, m, packet::l4_offset(fam), 16));
      EXPECT_EQ(0, std::memcmp(full, partial, n)) << (v4 ? "IPv4, " : "IPv6, ") << len;
    }
    // One byte more than an IP packet holds is refused, not wrapped.
    EXPECT_EQ(packet::build_tcp(full, {}, {}, s, packet::tcp_max_payload(fam) + 1), 0u);
  }
}

TEST(OffloadCodec, AChecksumFieldOutsideTheFrameIsRefused) {
  uint8_t f[64] = {};
  EXPECT_FALSE(packet::finish_partial_csum(f, sizeof f, 64, 0));
  EXPECT_FALSE(packet::finish_partial_csum(f, sizeof f, 60, 3));
  EXPECT_FALSE(packet::finish_partial_csum(f, sizeof f, 34, 0xffff));
  EXPECT_TRUE(packet::finish_partial_csum(f, sizeof f, 60, 2));
}

}  // namespace
}  // namespace cf::engine::test
