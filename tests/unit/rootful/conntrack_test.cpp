// cf::rootful::parse_ct: ctnetlink messages built here byte by byte (as the
// kernel lays them out: nlmsghdr, nfgenmsg, nested attributes, big-endian
// values) parse into the events the flow log needs; malformed ones (lengths
// that do not fit, a tuple without addresses) are skipped and counted, and
// no prefix or corruption of a valid datagram reads out of bounds (ASan).
#include "rootful/conntrack.hpp"
#include "rootful/flow_ids.hpp"

#include <gtest/gtest.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

namespace cf::rootful {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, uint16_t v) { b.insert(b.end(), {uint8_t(v), uint8_t(v >> 8)}); }  // host order (LE)
Bytes attr(uint16_t type, const Bytes& payload, bool nested = false) {
  Bytes b;
  put16(b, uint16_t(4 + payload.size()));
  put16(b, uint16_t(type | (nested ? NLA_F_NESTED : 0)));
  b.insert(b.end(), payload.begin(), payload.end());
  while (b.size() % 4) b.push_back(0);
  return b;
}
Bytes cat(std::initializer_list<Bytes> parts) {
  Bytes b;
  for (const Bytes& p : parts) b.insert(b.end(), p.begin(), p.end());
  return b;
}
Bytes be16(uint16_t v) { return {uint8_t(v >> 8), uint8_t(v)}; }
Bytes be32(uint32_t v) { return {uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; }
Bytes be64(uint64_t v) { return cat({be32(uint32_t(v >> 32)), be32(uint32_t(v))}); }

Bytes tuple4(const Bytes& src, const Bytes& dst, uint8_t proto, uint16_t sport, uint16_t dport) {
  Bytes ip = cat({attr(CTA_IP_V4_SRC, src), attr(CTA_IP_V4_DST, dst)});
  Bytes pr = cat({attr(CTA_PROTO_NUM, {proto}), attr(CTA_PROTO_SRC_PORT, be16(sport)),
                  attr(CTA_PROTO_DST_PORT, be16(dport))});
  return cat({attr(CTA_TUPLE_IP, ip, true), attr(CTA_TUPLE_PROTO, pr, true)});
}

Bytes msg(uint8_t type, uint16_t flags, const Bytes& attrs) {
  Bytes body = {AF_INET, NFNETLINK_V0, 0, 0};  // nfgenmsg
  body.insert(body.end(), attrs.begin(), attrs.end());
  nlmsghdr h{};
  h.nlmsg_len = uint32_t(sizeof h + body.size());
  h.nlmsg_type = uint16_t(NFNL_SUBSYS_CTNETLINK << 8 | type);
  h.nlmsg_flags = flags;
  Bytes b(sizeof h);
  std::memcpy(b.data(), &h, sizeof h);
  b.insert(b.end(), body.begin(), body.end());
  while (b.size() % 4) b.push_back(0);
  return b;
}

Bytes tcp_new() {
  return msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL,
             cat({attr(CTA_TUPLE_ORIG, tuple4({10, 240, 3, 2}, {203, 0, 113, 10}, IPPROTO_TCP,
                                              40000, 80),
                       true),
                  attr(CTA_TUPLE_REPLY, tuple4({203, 0, 113, 10}, {198, 51, 100, 1}, IPPROTO_TCP,
                                               80, 40000),
                       true),
                  attr(CTA_STATUS, be32(IPS_CONFIRMED)),
                  attr(CTA_PROTOINFO,
                       attr(CTA_PROTOINFO_TCP, attr(CTA_PROTOINFO_TCP_STATE, {TCP_CONNTRACK_SYN_SENT}),
                            true),
                       true),
                  attr(CTA_ID, be32(0xdeadbeef))}));
}

Bytes udp6_destroy() {
  Bytes src(16, 0), dst(16, 0);
  src[0] = 0xfd, src[1] = 0x42, src[15] = 2;
  dst[0] = 0x20, dst[1] = 0x01, dst[2] = 0x0d, dst[3] = 0xb8, dst[15] = 7;
  Bytes ip = cat({attr(CTA_IP_V6_SRC, src), attr(CTA_IP_V6_DST, dst)});
  Bytes pr = cat({attr(CTA_PROTO_NUM, {IPPROTO_UDP}), attr(CTA_PROTO_SRC_PORT, be16(5353)),
                  attr(CTA_PROTO_DST_PORT, be16(7))});
  Bytes t = cat({attr(CTA_TUPLE_IP, ip, true), attr(CTA_TUPLE_PROTO, pr, true)});
  return msg(IPCTNL_MSG_CT_DELETE, 0,
             cat({attr(CTA_TUPLE_ORIG, t, true), attr(CTA_ID, be32(7)),
                  attr(CTA_COUNTERS_ORIG,
                       cat({attr(CTA_COUNTERS_PACKETS, be64(3)), attr(CTA_COUNTERS_BYTES, be64(141))}),
                       true),
                  attr(CTA_COUNTERS_REPLY,
                       cat({attr(CTA_COUNTERS_PACKETS, be64(2)), attr(CTA_COUNTERS_BYTES, be64(94))}),
                       true)}));
}

TEST(ParseCt, TheCtMarkOfARelayedConnection) {
  size_t bad = 0;
  EXPECT_EQ(parse_ct(tcp_new(), &bad).at(0).mark, 0u) << "no CTA_MARK: 0";
  Bytes m = tcp_new();
  // Append CTA_MARK to the message and fix its length.
  Bytes extra = attr(CTA_MARK, be32(0x63660005));
  m.insert(m.end(), extra.begin(), extra.end());
  nlmsghdr h;
  std::memcpy(&h, m.data(), sizeof h);
  h.nlmsg_len = uint32_t(m.size());
  std::memcpy(m.data(), &h, sizeof h);
  auto ev = parse_ct(m, &bad);
  EXPECT_EQ(bad, 0u);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].mark, 0x63660005u);
}

TEST(ParseCt, TheFlowKeyIsTheOriginalDirection) {
  size_t bad = 0;
  FlowKey k = flow_key(parse_ct(tcp_new(), &bad).at(0));
  EXPECT_EQ(k.proto, IPPROTO_TCP);
  EXPECT_EQ(k.tree.str(), "10.240.3.2");
  EXPECT_EQ(k.remote.str(), "203.0.113.10");
  EXPECT_EQ(k.tree_port, 40000);
  EXPECT_EQ(k.remote_port, 80);
}

TEST(ParseCt, ANewTcpConnection) {
  size_t bad = 0;
  auto ev = parse_ct(tcp_new(), &bad);
  EXPECT_EQ(bad, 0u);
  ASSERT_EQ(ev.size(), 1u);
  const CtEvent& e = ev[0];
  EXPECT_EQ(e.kind, CtEvent::Kind::New);
  EXPECT_EQ(e.id, 0xdeadbeefu);
  EXPECT_EQ(e.proto, IPPROTO_TCP);
  EXPECT_EQ(e.src.str(), "10.240.3.2") << "the original direction, not the reply's";
  EXPECT_EQ(e.dst.str(), "203.0.113.10");
  EXPECT_EQ(e.sport, 40000);
  EXPECT_EQ(e.dport, 80);
  EXPECT_EQ(e.status, uint32_t(IPS_CONFIRMED));
  EXPECT_EQ(e.tcp_state, TCP_CONNTRACK_SYN_SENT);
  EXPECT_FALSE(e.has_counters);
}

TEST(ParseCt, ADestroyedUdpFlowWithItsCountersAndAnUpdate) {
  Bytes update = msg(IPCTNL_MSG_CT_NEW, 0,
                     attr(CTA_TUPLE_ORIG, tuple4({10, 0, 0, 2}, {10, 0, 0, 3}, IPPROTO_UDP, 1, 2), true));
  size_t bad = 0;
  auto ev = parse_ct(cat({udp6_destroy(), update}), &bad);
  EXPECT_EQ(bad, 0u);
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].kind, CtEvent::Kind::Destroy);
  EXPECT_EQ(ev[0].src.str(), "fd42::2");
  EXPECT_EQ(ev[0].dst.str(), "2001:db8::7");
  EXPECT_EQ(ev[0].dport, 7);
  ASSERT_TRUE(ev[0].has_counters);
  EXPECT_EQ(ev[0].bytes_orig, 141u);
  EXPECT_EQ(ev[0].bytes_reply, 94u);
  EXPECT_EQ(ev[1].kind, CtEvent::Kind::Update);
  EXPECT_EQ(ev[1].proto, IPPROTO_UDP);
}

TEST(ParseCt, AnIcmpEchoCarriesItsType) {
  Bytes ip = cat({attr(CTA_IP_V4_SRC, {10, 240, 3, 2}), attr(CTA_IP_V4_DST, {203, 0, 113, 7})});
  Bytes pr = cat({attr(CTA_PROTO_NUM, {IPPROTO_ICMP}), attr(CTA_PROTO_ICMP_ID, be16(99)),
                  attr(CTA_PROTO_ICMP_TYPE, {8}), attr(CTA_PROTO_ICMP_CODE, {0})});
  Bytes m = msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE,
                attr(CTA_TUPLE_ORIG, cat({attr(CTA_TUPLE_IP, ip, true), attr(CTA_TUPLE_PROTO, pr, true)}),
                     true));
  size_t bad = 0;
  auto ev = parse_ct(m, &bad);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].proto, IPPROTO_ICMP);
  EXPECT_EQ(ev[0].icmp_type, 8);
}

TEST(ParseCt, MalformedMessagesAreSkippedAndCounted) {
  size_t bad = 0;
  // A tuple without its destination.
  Bytes half = msg(IPCTNL_MSG_CT_NEW, NLM_F_CREATE,
                   attr(CTA_TUPLE_ORIG,
                        cat({attr(CTA_TUPLE_IP, attr(CTA_IP_V4_SRC, {10, 0, 0, 2}), true),
                             attr(CTA_TUPLE_PROTO, attr(CTA_PROTO_NUM, {IPPROTO_TCP}), true)}),
                        true));
  EXPECT_TRUE(parse_ct(half, &bad).empty());
  EXPECT_EQ(bad, 1u);
  // An attribute longer than its message.
  Bytes m = tcp_new();
  m[sizeof(nlmsghdr) + 4] = 0xff;  // the first attribute's length, low byte
  m[sizeof(nlmsghdr) + 5] = 0x0f;
  bad = 0;
  EXPECT_TRUE(parse_ct(m, &bad).empty());
  EXPECT_EQ(bad, 1u);
  // A message longer than the datagram.
  m = tcp_new();
  bad = 0;
  EXPECT_TRUE(parse_ct(Bytes(m.begin(), m.end() - 8), &bad).empty());
  EXPECT_EQ(bad, 1u);
  // An address of the wrong size is no address.
  Bytes odd = msg(IPCTNL_MSG_CT_NEW, 0,
                  attr(CTA_TUPLE_ORIG,
                       cat({attr(CTA_TUPLE_IP, cat({attr(CTA_IP_V4_SRC, {10, 0, 0}),
                                                     attr(CTA_IP_V4_DST, {10, 0, 0, 3})}),
                                 true),
                            attr(CTA_TUPLE_PROTO, attr(CTA_PROTO_NUM, {IPPROTO_TCP}), true)}),
                       true));
  bad = 0;
  EXPECT_TRUE(parse_ct(odd, &bad).empty());
  EXPECT_EQ(bad, 1u);
}

TEST(ParseCt, OtherMessagesAreNotEvents) {
  nlmsghdr h{};
  h.nlmsg_len = sizeof h + 4;
  h.nlmsg_type = NLMSG_DONE;
  Bytes done(sizeof h + 4, 0);
  std::memcpy(done.data(), &h, sizeof h);
  size_t bad = 0;
  auto ev = parse_ct(cat({done, tcp_new()}), &bad);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(ev.size(), 1u) << "a DONE before an event does not hide it";
}

// Every prefix, and every single-byte corruption, of a datagram of two
// events: never a read out of bounds (ASan), never more events than there.
// The question CtQuery asks: one IPCTNL_MSG_CT_GET with the reply tuple,
// read back attribute by attribute.
TEST(CtQuery, TheRequestNamesTheReplyDirection) {
  auto nla = [](const std::vector<uint8_t>& b, size_t off, uint16_t* type) {
    uint16_t len;
    std::memcpy(&len, b.data() + off, 2);
    std::memcpy(type, b.data() + off + 2, 2);
    *type &= NLA_TYPE_MASK;
    return len;
  };
  const IpAddr www = *IpAddr::parse("203.0.113.10"), host = *IpAddr::parse("198.51.100.2");
  std::vector<uint8_t> b = ct_reply_request(IPPROTO_TCP, www, 80, host, 61600, 7);
  nlmsghdr h;
  std::memcpy(&h, b.data(), sizeof h);
  EXPECT_EQ(h.nlmsg_len, b.size());
  EXPECT_EQ(h.nlmsg_type, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET);
  EXPECT_EQ(h.nlmsg_flags, NLM_F_REQUEST) << "one entry, not a dump";
  EXPECT_EQ(h.nlmsg_seq, 7u);
  EXPECT_EQ(b[NLMSG_HDRLEN], AF_INET);
  size_t off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  uint16_t type;
  EXPECT_EQ(nla(b, off, &type), b.size() - off) << "one attribute: the tuple";
  EXPECT_EQ(type, CTA_TUPLE_REPLY);
  off += 4;
  uint16_t ip_len = nla(b, off, &type);
  EXPECT_EQ(type, CTA_TUPLE_IP);
  EXPECT_EQ(ip_len, 4 + 8 + 8);
  nla(b, off + 4, &type);
  EXPECT_EQ(type, CTA_IP_V4_SRC);
  EXPECT_EQ(0, std::memcmp(b.data() + off + 8, www.bytes.data(), 4)) << "the source: the remote";
  nla(b, off + 12, &type);
  EXPECT_EQ(type, CTA_IP_V4_DST);
  EXPECT_EQ(0, std::memcmp(b.data() + off + 16, host.bytes.data(), 4)) << "the destination: the host";
  off += ip_len;
  nla(b, off, &type);
  EXPECT_EQ(type, CTA_TUPLE_PROTO);
  EXPECT_EQ(b[off + 8], IPPROTO_TCP);
  EXPECT_EQ(b[off + 16] << 8 | b[off + 17], 80) << "source port: the remote's";
  EXPECT_EQ(b[off + 24] << 8 | b[off + 25], 61600) << "destination port: the host's";

  // ICMPv6 echo: the identifier and the reply's type (129).
  b = ct_reply_request(IPPROTO_ICMPV6, *IpAddr::parse("2001:db8:2::10"), 77,
                       *IpAddr::parse("2001:db8:1::2"), 77, 8);
  EXPECT_EQ(b[NLMSG_HDRLEN], AF_INET6);
  off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)) + 4;
  off += nla(b, off, &type);  // the addresses
  const size_t proto = off + 4;
  std::map<uint16_t, std::vector<uint8_t>> attrs;
  for (size_t o = proto; o < b.size();) {
    uint16_t len = nla(b, o, &type);
    attrs[type].assign(b.begin() + long(o) + 4, b.begin() + long(o) + len);
    o += NLA_ALIGN(len);
  }
  EXPECT_EQ(attrs[CTA_PROTO_NUM], std::vector<uint8_t>{IPPROTO_ICMPV6});
  EXPECT_EQ(attrs[CTA_PROTO_ICMPV6_ID], (std::vector<uint8_t>{0, 77}));
  EXPECT_EQ(attrs[CTA_PROTO_ICMPV6_TYPE], std::vector<uint8_t>{129});
  EXPECT_EQ(attrs[CTA_PROTO_ICMPV6_CODE], std::vector<uint8_t>{0});
}

TEST(ParseCt, PrefixesAndCorruptionsStayInBounds) {
  const Bytes d = cat({tcp_new(), udp6_destroy()});
  for (size_t n = 0; n <= d.size(); ++n) {
    Bytes p(d.begin(), d.begin() + long(n));
    size_t bad = 0;
    EXPECT_LE(parse_ct(p, &bad).size(), 2u);
  }
  std::mt19937 rng(11);
  for (int k = 0; k < 20000; ++k) {
    Bytes c = d;
    c[rng() % c.size()] = uint8_t(rng());
    if (k % 3 == 0) c[rng() % c.size()] = uint8_t(rng());
    size_t bad = 0;
    EXPECT_LE(parse_ct(c, &bad).size(), 2u);
  }
}

}  // namespace
}  // namespace cf::rootful
