// wire-egress's kernel filter (wire_filter), run by a classic BPF
// interpreter written here from the kernel's documented semantics
// (Documentation/networking/filter.rst), and, as root, attached for real to
// a packet socket on loopback. Also the per-packet notes: format_note, the
// opt_comment in the file, five_tuple.
#include "capture/wire.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "capture/link_tap.hpp"
#include "capture/pcapng.hpp"
#include "frames.hpp"

namespace cf::capture {
namespace {

using namespace test_frames;

// Runs `prog` on `pkt` as the kernel would for a packet socket; returns the
// number of bytes kept (0: dropped). Fails the test on an instruction the
// kernel would reject or an out-of-bounds load (which the kernel treats as
// "drop").
uint32_t run_bpf(const std::vector<sock_filter>& prog, const Bytes& pkt, uint32_t ifindex,
                 uint32_t pkttype = PACKET_HOST) {
  EXPECT_LE(prog.size(), size_t(BPF_MAXINSNS));
  uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = {};
  auto load = [&](uint32_t off, uint32_t size, bool* ok) -> uint32_t {
    if (off == uint32_t(SKF_AD_OFF + SKF_AD_IFINDEX)) return ifindex;
    if (off == uint32_t(SKF_AD_OFF + SKF_AD_PKTTYPE)) return pkttype;
    if (off + size > pkt.size()) {
      *ok = false;
      return 0;
    }
    uint32_t v = 0;
    for (uint32_t i = 0; i < size; ++i) v = v << 8 | pkt[off + i];
    return v;
  };
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& f = prog[pc];
    bool ok = true;
    switch (f.code) {
      case BPF_LD | BPF_W | BPF_ABS: A = load(f.k, 4, &ok); break;
      case BPF_LD | BPF_H | BPF_ABS: A = load(f.k, 2, &ok); break;
      case BPF_LD | BPF_B | BPF_ABS: A = load(f.k, 1, &ok); break;
      case BPF_LD | BPF_H | BPF_IND: A = load(X + f.k, 2, &ok); break;
      case BPF_LD | BPF_B | BPF_IND: A = load(X + f.k, 1, &ok); break;
      case BPF_LDX | BPF_B | BPF_MSH: X = 4 * (load(f.k, 1, &ok) & 0xf); break;
      case BPF_LD | BPF_MEM: EXPECT_LT(f.k, uint32_t(BPF_MEMWORDS)); A = M[f.k]; break;
      case BPF_ST: EXPECT_LT(f.k, uint32_t(BPF_MEMWORDS)); M[f.k] = A; break;
      case BPF_JMP | BPF_JA: pc += f.k; break;
      case BPF_JMP | BPF_JEQ | BPF_K: pc += (A == f.k) ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JSET | BPF_K: pc += (A & f.k) ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JGE | BPF_K: pc += (A >= f.k) ? f.jt : f.jf; break;
      case BPF_JMP | BPF_JGT | BPF_K: pc += (A > f.k) ? f.jt : f.jf; break;
      case BPF_ALU | BPF_AND | BPF_K: A &= f.k; break;
      case BPF_LD | BPF_IMM: A = f.k; break;
      case BPF_RET | BPF_K: return f.k;
      default: ADD_FAILURE() << "instruction " << f.code << " at " << pc; return 0;
    }
    if (!ok) return 0;
  }
  ADD_FAILURE() << "the program runs off its end";
  return 0;
}

const IpAddr kHost4 = ip("198.51.100.2"), kWww4 = ip("203.0.113.10"), kOther4 = ip("203.0.113.11");
const IpAddr kHost6 = ip("2001:db8:1::2"), kWww6 = ip("2001:db8:2::10"),
             kOther6 = ip("2001:db8:2::11");

Bytes tcp4(const IpAddr& s, uint16_t sp, const IpAddr& d, uint16_t dp) {
  return eth(ipv4_packet(s, d, 6, tcp(sp, dp, 0x02)), false);
}
Bytes udp4(const IpAddr& s, uint16_t sp, const IpAddr& d, uint16_t dp) {
  return eth(ipv4_packet(s, d, 17, udp(sp, dp, {1, 2, 3})), false);
}
Bytes tcp6(const IpAddr& s, uint16_t sp, const IpAddr& d, uint16_t dp) {
  return eth(ipv6_packet(s, d, 6, tcp(sp, dp, 0x02)), true);
}

TEST(WireFilter, AcceptsExactlyTheFlowsBothWays) {
  std::vector<WireFlow> flows = {
      {IPPROTO_TCP, 40000, kWww4, 80, 1},
      {IPPROTO_UDP, 40001, ip("203.0.113.53"), 53, 0},
      {IPPROTO_TCP, 40002, kWww6, 443, 2},
      {IPPROTO_ICMP, 77, kWww4, 77, 3},
  };
  auto prog = wire_filter(flows, 1);
  const uint32_t eth0 = 2;
  // Ours, outbound and inbound.
  EXPECT_EQ(run_bpf(prog, tcp4(kHost4, 40000, kWww4, 80), eth0), kSnapLen);
  EXPECT_EQ(run_bpf(prog, tcp4(kWww4, 80, kHost4, 40000), eth0), kSnapLen);
  EXPECT_EQ(run_bpf(prog, udp4(kHost4, 40001, ip("203.0.113.53"), 53), eth0), kSnapLen);
  EXPECT_EQ(run_bpf(prog, udp4(ip("203.0.113.53"), 53, kHost4, 40001), eth0), kSnapLen);
  EXPECT_EQ(run_bpf(prog, tcp6(kHost6, 40002, kWww6, 443), eth0), kSnapLen);
  EXPECT_EQ(run_bpf(prog, tcp6(kWww6, 443, kHost6, 40002), eth0), kSnapLen);
  Bytes echo = eth(ipv4_packet(kHost4, kWww4, 1, icmp(8, 0, 77u << 16 | 1, {9})), false);
  Bytes reply = eth(ipv4_packet(kWww4, kHost4, 1, icmp(0, 0, 77u << 16 | 1, {9})), false);
  EXPECT_EQ(run_bpf(prog, echo, eth0), kSnapLen);
  EXPECT_EQ(run_bpf(prog, reply, eth0), kSnapLen);

  // The host's other traffic: every field differing once.
  EXPECT_EQ(run_bpf(prog, tcp4(kHost4, 40009, kWww4, 80), eth0), 0u) << "other local port";
  EXPECT_EQ(run_bpf(prog, tcp4(kWww4, 80, kHost4, 40009), eth0), 0u) << "other local port, in";
  EXPECT_EQ(run_bpf(prog, tcp4(kHost4, 40000, kOther4, 80), eth0), 0u) << "other remote";
  EXPECT_EQ(run_bpf(prog, tcp4(kOther4, 80, kHost4, 40000), eth0), 0u) << "other remote, in";
  EXPECT_EQ(run_bpf(prog, tcp4(kHost4, 40000, kWww4, 81), eth0), 0u) << "other remote port";
  EXPECT_EQ(run_bpf(prog, udp4(kHost4, 40000, kWww4, 80), eth0), 0u) << "other protocol";
  EXPECT_EQ(run_bpf(prog, tcp6(kHost6, 40002, kOther6, 443), eth0), 0u) << "other IPv6 remote";
  EXPECT_EQ(run_bpf(prog, tcp6(kOther6, 443, kHost6, 40002), eth0), 0u);
  EXPECT_EQ(run_bpf(prog, tcp4(kHost4, 40002, kWww4, 443), eth0), 0u) << "an IPv6 flow's ports over IPv4";
  Bytes echo_other = eth(ipv4_packet(kHost4, kWww4, 1, icmp(8, 0, 78u << 16 | 1, {9})), false);
  EXPECT_EQ(run_bpf(prog, echo_other, eth0), 0u) << "another echo identifier";
  Bytes unreach = eth(ipv4_packet(kWww4, kHost4, 1, icmp(3, 3, 77u << 16 | 77, {9})), false);
  EXPECT_EQ(run_bpf(prog, unreach, eth0), 0u) << "not an echo";
  // Loopback, ARP, a later fragment.
  EXPECT_EQ(run_bpf(prog, tcp4(kHost4, 40000, kWww4, 80), 1), 0u) << "loopback is skipped";
  Bytes arp = tcp4(kHost4, 40000, kWww4, 80);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_EQ(run_bpf(prog, arp, eth0), 0u);
  Bytes frag = tcp4(kHost4, 40000, kWww4, 80);
  frag[14 + 7] = 0x10;  // fragment offset 16
  EXPECT_EQ(run_bpf(prog, frag, eth0), 0u);
  // A truncated frame is dropped, never read past.
  Bytes cut = tcp4(kHost4, 40000, kWww4, 80);
  cut.resize(14 + 20 + 2);
  EXPECT_EQ(run_bpf(prog, cut, eth0), 0u);
}

TEST(WireFilter, EmptyDropsEverythingAndTheLimitHolds) {
  auto none = wire_filter({}, 0);
  EXPECT_EQ(run_bpf(none, tcp4(kHost4, 40000, kWww4, 80), 2), 0u);
  EXPECT_EQ(run_bpf(none, tcp6(kHost6, 40000, kWww6, 80), 2), 0u);
  // kMaxWireFlows IPv6 flows (the largest blocks) fit in BPF_MAXINSNS; the
  // ones beyond are left out, never matched.
  std::vector<WireFlow> many;
  for (uint16_t i = 0; i < kMaxWireFlows + 5; ++i)
    many.push_back({IPPROTO_TCP, uint16_t(30000 + i), kWww6, 443, i});
  auto prog = wire_filter(many, 1);
  EXPECT_LE(prog.size(), size_t(BPF_MAXINSNS));
  EXPECT_EQ(run_bpf(prog, tcp6(kHost6, 30000, kWww6, 443), 2), kSnapLen);
  EXPECT_EQ(run_bpf(prog, tcp6(kHost6, uint16_t(30000 + kMaxWireFlows - 1), kWww6, 443), 2),
            kSnapLen);
  EXPECT_EQ(run_bpf(prog, tcp6(kHost6, uint16_t(30000 + kMaxWireFlows), kWww6, 443), 2), 0u);
}

Bytes tcp4f(const IpAddr& s, uint16_t sp, const IpAddr& d, uint16_t dp, uint8_t flags) {
  return eth(ipv4_packet(s, d, 6, tcp(sp, dp, flags)), false);
}

// Rootful: the run's flows are masqueraded to its ports 61512-62023.
TEST(WireRangeFilter, TheRunsPortsOnTheWireOnly) {
  auto prog = wire_range_filter(61512, 62023, 1);
  const uint32_t eth0 = 2;
  auto out = [&](const Bytes& f) { return run_bpf(prog, f, eth0, PACKET_OUTGOING); };
  auto in = [&](const Bytes& f) { return run_bpf(prog, f, eth0, PACKET_HOST); };
  // The run's SYN leaves from a port of the range, the SYN-ACK comes back to it.
  EXPECT_EQ(out(tcp4f(kHost4, 61512, kWww4, 80, 0x02)), kSnapLen);
  EXPECT_EQ(in(tcp4f(kWww4, 80, kHost4, 61512, 0x12)), kSnapLen);
  EXPECT_EQ(out(tcp4f(kHost4, 62023, kWww4, 80, 0x10)), kSnapLen) << "the range's last port";
  EXPECT_EQ(out(udp4(kHost4, 61600, ip("203.0.113.53"), 53)), kSnapLen);
  EXPECT_EQ(in(udp4(ip("203.0.113.53"), 53, kHost4, 61600)), kSnapLen);
  EXPECT_EQ(out(eth(ipv6_packet(kHost6, kWww6, 6, tcp(61700, 443, 0x02)), true)), kSnapLen);
  EXPECT_EQ(in(eth(ipv6_packet(kWww6, kHost6, 6, tcp(443, 61700, 0x12)), true)), kSnapLen);
  // ICMP echo: any identifier (no port of ours), requests leaving and
  // replies arriving; the capture's hook asks conntrack whose they are.
  EXPECT_EQ(out(eth(ipv4_packet(kHost4, kWww4, 1, icmp(8, 0, 7u << 16 | 1, {9})), false)), kSnapLen);
  EXPECT_EQ(in(eth(ipv4_packet(kWww4, kHost4, 1, icmp(0, 0, 7u << 16 | 1, {9})), false)), kSnapLen);
  EXPECT_EQ(out(eth(ipv6_packet(kHost6, kWww6, 58, icmp(128, 0, 7u << 16 | 1, {9})), true)), kSnapLen);
  EXPECT_EQ(in(eth(ipv6_packet(kWww6, kHost6, 58, icmp(129, 0, 7u << 16 | 1, {9})), true)), kSnapLen);
  // ... but not an echo request coming in (a ping of the host), a reply
  // leaving (the host answering), or other ICMP (errors, neighbour discovery).
  EXPECT_EQ(in(eth(ipv4_packet(kWww4, kHost4, 1, icmp(8, 0, 7u << 16 | 1, {9})), false)), 0u);
  EXPECT_EQ(out(eth(ipv4_packet(kHost4, kWww4, 1, icmp(0, 0, 7u << 16 | 1, {9})), false)), 0u);
  EXPECT_EQ(in(eth(ipv6_packet(kWww6, kHost6, 58, icmp(128, 0, 7u << 16 | 1, {9})), true)), 0u);
  EXPECT_EQ(out(eth(ipv4_packet(kHost4, kWww4, 1, icmp(3, 3, 0, {9})), false)), 0u);
  EXPECT_EQ(out(eth(ipv6_packet(kHost6, kWww6, 58, icmp(135, 0, 0, {9})), true)), 0u);
  EXPECT_EQ(out(eth(ipv4_packet(ip("10.240.3.2"), kWww4, 1, icmp(8, 0, 7u << 16 | 1, {9})), false)), 0u)
      << "a veth's echo";

  // The host's own traffic: its ephemeral ports, just outside the range.
  EXPECT_EQ(out(tcp4f(kHost4, 40000, kWww4, 80, 0x02)), 0u);
  EXPECT_EQ(in(tcp4f(kWww4, 80, kHost4, 40000, 0x12)), 0u);
  EXPECT_EQ(out(tcp4f(kHost4, 61511, kWww4, 80, 0x02)), 0u) << "one below the range";
  EXPECT_EQ(out(tcp4f(kHost4, 62024, kWww4, 80, 0x02)), 0u) << "one above the range";
  // A port of the range on the wrong side: the host's server port seen
  // from outside, a new connection in (a scan), a ping of the host.
  EXPECT_EQ(out(tcp4f(kHost4, 22, kWww4, 61600, 0x12)), 0u) << "a reply from the host to a peer's port";
  EXPECT_EQ(in(tcp4f(kWww4, 40000, kHost4, 61600, 0x02)), 0u) << "a SYN to a port of the range";
  // Frames on a veth (a tree's own addresses), loopback, ARP, fragments.
  EXPECT_EQ(out(tcp4f(ip("10.240.3.2"), 61600, kWww4, 80, 0x02)), 0u);
  EXPECT_EQ(out(tcp4f(kWww4, 80, ip("10.240.3.2"), 61600, 0x12)), 0u);
  EXPECT_EQ(out(eth(ipv6_packet(ip("fd42:1:2:3::2"), kWww6, 6, tcp(61700, 443, 0x02)), true)), 0u);
  EXPECT_EQ(run_bpf(prog, tcp4f(kHost4, 61600, kWww4, 80, 0x02), 1, PACKET_OUTGOING), 0u);
  Bytes frag = tcp4f(kHost4, 61600, kWww4, 80, 0x02);
  frag[14 + 7] = 0x10;
  EXPECT_EQ(out(frag), 0u);
  Bytes arp = tcp4f(kHost4, 61600, kWww4, 80, 0x02);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_EQ(out(arp), 0u);
}

TEST(FrameNotes, Text) {
  char buf[kMaxComment];
  EXPECT_EQ(format_note({}, buf), 0u);
  size_t n = format_note({12, nullptr}, buf);
  EXPECT_EQ(std::string(buf, n), "flow_id=12");
  n = format_note({7, "deny_cidr"}, buf);
  EXPECT_EQ(std::string(buf, n), "flow_id=7 verdict=denied reason_code=deny_cidr");
  char tiny[5];
  EXPECT_EQ(format_note({123456, nullptr}, tiny), 5u);  // cut, never past the end
}

TEST(FrameNotes, FiveTuple) {
  auto t = five_tuple(tcp4(kHost4, 40000, kWww4, 80));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->proto, 6);
  EXPECT_EQ(t->src, kHost4);
  EXPECT_EQ(t->dst, kWww4);
  EXPECT_EQ(t->sport, 40000);
  EXPECT_EQ(t->dport, 80);
  t = five_tuple(tcp6(kWww6, 443, kHost6, 40002));
  ASSERT_TRUE(t);
  EXPECT_EQ(t->src, kWww6);
  EXPECT_EQ(t->dport, 40002);
  Bytes echo = eth(ipv4_packet(kHost4, kWww4, 1, icmp(8, 0, 77u << 16 | 1, {9})), false);
  t = five_tuple(echo);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->sport, 77);
  EXPECT_EQ(t->dport, 77);
  Bytes arp = tcp4(kHost4, 40000, kWww4, 80);
  arp[12] = 0x08, arp[13] = 0x06;
  EXPECT_FALSE(five_tuple(arp));
  EXPECT_FALSE(five_tuple(Bytes(10, 0)));
}

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

// The comment is an opt_comment (code 1) before epb_flags, padded, and
// counted in both block lengths.
TEST(FrameNotes, CommentOptionInTheFile) {
  TempDir dir;
  std::string path = dir.path + "/c.pcapng";
  auto w = PcapngWriter::create(path, "tap0", "d");
  ASSERT_TRUE(w);
  Bytes f(61, 0xab);
  w->packet(f, 5, PacketDirection::Outbound, "flow_id=42");
  w->packet(f, 6, PacketDirection::Inbound);
  ASSERT_TRUE(w->close());
  Bytes b = read_all(path);
  auto le32 = [&](size_t o) {
    uint32_t v;
    memcpy(&v, &b[o], 4);
    return v;
  };
  auto le16 = [&](size_t o) {
    uint16_t v;
    memcpy(&v, &b[o], 2);
    return v;
  };
  size_t off = le32(4);       // past the section header
  off += le32(off + 4);       // past the interface description
  ASSERT_EQ(le32(off), kBlockEnhancedPacket);
  uint32_t len = le32(off + 4);
  EXPECT_EQ(len, 28u + 64 + (4 + 12) + 8 + 4 + 4);
  EXPECT_EQ(le32(off + len - 4), len);
  size_t o = off + 28 + 64;
  EXPECT_EQ(le16(o), kOptComment);
  EXPECT_EQ(le16(o + 2), 10);
  EXPECT_EQ(std::string(b.begin() + long(o + 4), b.begin() + long(o + 14)), "flow_id=42");
  EXPECT_EQ(b[o + 14], 0);
  EXPECT_EQ(b[o + 15], 0);
  EXPECT_EQ(le16(o + 16), kOptEpbFlags);
  EXPECT_EQ(le16(o + 24), kOptEndOfOpt);
  // The second packet has no comment.
  size_t off2 = off + len;
  ASSERT_EQ(le32(off2), kBlockEnhancedPacket);
  EXPECT_EQ(le32(off2 + 4), 28u + 64 + 8 + 4 + 4);
  EXPECT_EQ(le16(off2 + 28 + 64), kOptEpbFlags);
}

// As root: the program attached to a real packet socket on loopback lets
// through one UDP flow's datagrams and not those of a flow beside it.
TEST(WireFilter, KernelRunsItOnLoopback) {
  if (geteuid() != 0) GTEST_SKIP() << "needs CAP_NET_RAW";
  auto tap = LinkTap::open(int(if_nametoindex("lo")), true);
  ASSERT_TRUE(tap) << tap.error().str();
  auto udp_sock = [](uint16_t* port) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &l);
    *port = ntohs(a.sin_port);
    return fd;
  };
  uint16_t p_ours, p_other, p_sink;
  int ours = udp_sock(&p_ours), other = udp_sock(&p_other), sink = udp_sock(&p_sink);
  WireFlow flow{IPPROTO_UDP, p_ours, ip("127.0.0.1"), p_sink, 9};
  // The kernel's checker takes the largest programs too.
  std::vector<WireFlow> many;
  for (uint16_t i = 0; i < kMaxWireFlows; ++i)
    many.push_back({IPPROTO_TCP, uint16_t(30000 + i), ip("2001:db8:2::10"), 443, i});
  auto big = tap.value()->set_filter(wire_filter(many, 1));
  EXPECT_TRUE(big) << big.error().str();
  auto range = tap.value()->set_filter(wire_range_filter(61000, 61511, 1));
  EXPECT_TRUE(range) << range.error().str();
  auto prog = wire_filter(std::span(&flow, 1), 0);  // loopback is the link under test
  auto attached = tap.value()->set_filter(prog);
  ASSERT_TRUE(attached) << attached.error().str();
  sockaddr_in to = loopback4(p_sink);
  for (int fd : {other, ours, other})
    ASSERT_EQ(sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 1);
  // What the socket queued is read by LinkTap into a wire-egress Capture.
  TempDir dir;
  auto cap = wire_capture(dir);
  ASSERT_TRUE(cap) << cap.error().str();
  ASSERT_TRUE(tap.value()->start(*cap, nullptr, false));
  usleep(100 * 1000);
  tap.value()->stop();
  // Loopback shows each datagram twice (sent and received): ours only.
  EXPECT_EQ(cap->frames(), 2u);
  ASSERT_TRUE(cap->close());
  for (int fd : {ours, other, sink}) close(fd);
}

}  // namespace
}  // namespace cf::capture
