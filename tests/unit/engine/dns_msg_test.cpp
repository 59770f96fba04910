// Unit tests for the DNS message codec (src/engine/dns_msg.hpp). Messages are
// built byte by byte in the shape real resolvers send them (compression
// pointers to the question name, OPT in the additional section), then broken
// on purpose to check every rejection path.
#include "engine/dns_msg.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cf::dns {
namespace {

// A little wire-format writer for the tests.
struct Wire {
  std::vector<uint8_t> b;

  Wire& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Wire& u16(uint16_t v) {
    b.push_back(uint8_t(v >> 8));
    b.push_back(uint8_t(v));
    return *this;
  }
  Wire& u32(uint32_t v) {
    u16(uint16_t(v >> 16));
    return u16(uint16_t(v));
  }
  Wire& header(uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
               uint16_t ar) {
    return u16(id).u16(flags).u16(qd).u16(an).u16(ns).u16(ar);
  }
  // Labels of `dotted` without the terminating root byte.
  Wire& labels(const std::string& dotted) {
    size_t start = 0;
    while (start < dotted.size()) {
      size_t dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      u8(uint8_t(dot - start));
      for (size_t i = start; i < dot; ++i) u8(uint8_t(dotted[i]));
      start = dot + 1;
    }
    return *this;
  }
  Wire& name(const std::string& dotted) { return labels(dotted).u8(0); }
  Wire& ptr(uint16_t off) { return u16(uint16_t(0xc000 | off)); }
  Wire& question(const std::string& dotted, uint16_t type, uint16_t cls = kClassIn) {
    return name(dotted).u16(type).u16(cls);
  }
  // The fixed part of a record after its owner name, then rdata of `rdlen`.
  Wire& rr_fixed(uint16_t type, uint16_t cls, uint32_t ttl, uint16_t rdlen) {
    return u16(type).u16(cls).u32(ttl).u16(rdlen);
  }
  Wire& a_rdata(uint8_t a, uint8_t b1, uint8_t c, uint8_t d) {
    return rr_fixed(kTypeA, kClassIn, ttl_next, 4).u8(a).u8(b1).u8(c).u8(d);
  }
  Wire& opt(uint16_t udp_size, bool dnssec_ok) {
    return u8(0).rr_fixed(kTypeOpt, udp_size, dnssec_ok ? 0x8000u : 0u, 0);
  }
  size_t size() const { return b.size(); }
  std::span<const uint8_t> span() const { return b; }

  uint32_t ttl_next = 300;
};

constexpr uint16_t kRd = kFlagRd;
constexpr uint16_t kResp = kFlagQr | kFlagRd | kFlagRa;

Wire simple_query(const std::string& qname, uint16_t qtype) {
  Wire w;
  w.header(0xbeef, kRd, 1, 0, 0, 0).question(qname, qtype);
  return w;
}

// ---------------------------------------------------------------- queries

TEST(DnsParseQuery, ReadsFirstQuestionLowercased) {
  Wire w;
  w.header(0x1234, kRd, 1, 0, 0, 0).question("WWW.Example.COM", kTypeAaaa);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->id, 0x1234);
  EXPECT_EQ(q->flags, kRd);
  EXPECT_EQ(q->qname, "www.example.com");
  EXPECT_EQ(q->qtype, kTypeAaaa);
  EXPECT_EQ(q->qclass, kClassIn);
  EXPECT_EQ(q->question_end, w.size());
  EXPECT_FALSE(q->has_edns);
}

TEST(DnsParseQuery, ReadsEdnsOpt) {
  Wire w;
  w.header(1, kRd, 1, 0, 0, 1).question("example.test", kTypeA);
  size_t qend = w.size();
  w.opt(4096, true);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->question_end, qend);
  EXPECT_TRUE(q->has_edns);
  EXPECT_EQ(q->edns_udp_size, 4096);
  EXPECT_TRUE(q->edns_do);
}

TEST(DnsParseQuery, RootNameIsDot) {
  auto q = parse_query(simple_query("", kTypeNs).span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->qname, ".");
  EXPECT_EQ(q->question_end, kHeaderSize + 5);
}

TEST(DnsParseQuery, TakesFirstOfSeveralQuestions) {
  Wire w;
  w.header(1, 0, 2, 0, 0, 0).question("one.test", kTypeA);
  size_t qend = w.size();
  w.question("two.test", kTypeMx);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->qname, "one.test");
  EXPECT_EQ(q->question_end, qend);
}

TEST(DnsParseQuery, EscapesAmbiguousAndUnprintableBytes) {
  Wire w;
  w.header(1, 0, 1, 0, 0, 0);
  // One label "a.B c\" (dot, space, backslash inside), then "test".
  w.u8(6).u8('a').u8('.').u8('B').u8(' ').u8('c').u8('\\');
  w.name("test").u16(kTypeA).u16(kClassIn);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->qname, "a\\046b\\032c\\092.test");
}

TEST(DnsParseQuery, AcceptsNameOfExactly255Bytes) {
  std::string l63(63, 'x'), l61(61, 'y');
  // 3 * (1 + 63) + (1 + 61) + 1 = 255
  auto q = parse_query(simple_query(l63 + "." + l63 + "." + l63 + "." + l61, kTypeA).span());
  ASSERT_TRUE(q);
  EXPECT_EQ(q->qname.size(), 3 * 64 + 61u);
}

TEST(DnsParseQuery, RejectsNameOf256Bytes) {
  std::string l63(63, 'x'), l62(62, 'y');
  EXPECT_FALSE(parse_query(simple_query(l63 + "." + l63 + "." + l63 + "." + l62, kTypeA).span()));
}

TEST(DnsParseQuery, RejectsLongNameOfManyShortLabels) {
  std::string n;
  for (int i = 0; i < 130; ++i) n += "a.";  // 130 * 2 + 1 wire bytes
  n += "b";
  EXPECT_FALSE(parse_query(simple_query(n, kTypeA).span()));
}

TEST(DnsParseQuery, RejectsLabelOf64) {
  EXPECT_FALSE(parse_query(simple_query(std::string(64, 'a') + ".test", kTypeA).span()));
  EXPECT_TRUE(parse_query(simple_query(std::string(63, 'a') + ".test", kTypeA).span()));
}

TEST(DnsParseQuery, RejectsReservedLabelTypes) {
  for (uint8_t lead : {uint8_t(0x41), uint8_t(0x80)}) {
    Wire w;
    w.header(1, 0, 1, 0, 0, 0).u8(lead).u8('a').u8(0).u16(kTypeA).u16(kClassIn);
    EXPECT_FALSE(parse_query(w.span())) << int(lead);
  }
}

TEST(DnsParseQuery, RejectsEmptyAndShortMessages) {
  EXPECT_FALSE(parse_query({}));
  Wire w = simple_query("a.test", kTypeA);
  for (size_t n = 0; n < w.size(); ++n)
    EXPECT_FALSE(parse_query(w.span().first(n))) << "prefix of " << n << " bytes";
  EXPECT_TRUE(parse_query(w.span()));
}

TEST(DnsParseQuery, RejectsLabelLengthPastEnd) {
  Wire w;
  w.header(1, 0, 1, 0, 0, 0).u8(10).u8('a').u8('b').u8('c');
  EXPECT_FALSE(parse_query(w.span()));
}

TEST(DnsParseQuery, RejectsNoQuestion) {
  Wire w;
  w.header(1, kRd, 0, 0, 0, 0);
  EXPECT_FALSE(parse_query(w.span()));
}

TEST(DnsParseQuery, RejectsResponseAndOtherOpcodes) {
  Wire resp;
  resp.header(1, kFlagQr, 1, 0, 0, 0).question("a.test", kTypeA);
  EXPECT_FALSE(parse_query(resp.span()));
  Wire update;
  update.header(1, 5 << 11, 1, 0, 0, 0).question("a.test", kTypeSoa);
  EXPECT_FALSE(parse_query(update.span()));
}

TEST(DnsParseQuery, RejectsPointerInFirstQuestion) {
  // The first name starts right after the header: any pointer there points
  // into the header or forwards.
  Wire self;
  self.header(1, 0, 1, 0, 0, 0).ptr(12).u16(kTypeA).u16(kClassIn);
  EXPECT_FALSE(parse_query(self.span()));
  Wire header;
  header.header(1, 0, 1, 0, 0, 0).ptr(4).u16(kTypeA).u16(kClassIn);
  EXPECT_FALSE(parse_query(header.span()));
}

TEST(DnsParseQuery, RejectsBrokenAdditionalSection) {
  Wire w;
  w.header(1, 0, 1, 0, 0, 1).question("a.test", kTypeA).u8(0).u16(kTypeOpt).u16(512);
  EXPECT_FALSE(parse_query(w.span()));  // OPT cut after its class
}

TEST(DnsParseQuery, RejectsTwoOptsOrNonRootOpt) {
  Wire two;
  two.header(1, 0, 1, 0, 0, 2).question("a.test", kTypeA).opt(1232, false).opt(1232, false);
  EXPECT_FALSE(parse_query(two.span()));
  Wire named;
  named.header(1, 0, 1, 0, 0, 1).question("a.test", kTypeA);
  named.name("x").rr_fixed(kTypeOpt, 1232, 0, 0);
  EXPECT_FALSE(parse_query(named.span()));
}

TEST(DnsParseQuery, AcceptsCompressedNamesInLaterQuestions) {
  Wire w;
  w.header(1, 0, 2, 0, 0, 0).question("a.example.test", kTypeA);
  w.labels("b").ptr(14).u16(kTypeA).u16(kClassIn);  // "b" + "example.test"
  EXPECT_TRUE(parse_query(w.span()));
}

TEST(DnsQtypeName, NamesKnownTypes) {
  EXPECT_STREQ(qtype_name(1), "A");
  EXPECT_STREQ(qtype_name(28), "AAAA");
  EXPECT_STREQ(qtype_name(5), "CNAME");
  EXPECT_STREQ(qtype_name(15), "MX");
  EXPECT_STREQ(qtype_name(16), "TXT");
  EXPECT_STREQ(qtype_name(2), "NS");
  EXPECT_STREQ(qtype_name(12), "PTR");
  EXPECT_STREQ(qtype_name(33), "SRV");
  EXPECT_STREQ(qtype_name(6), "SOA");
  EXPECT_STREQ(qtype_name(65), "HTTPS");
  EXPECT_STREQ(qtype_name(64), "SVCB");
  EXPECT_STREQ(qtype_name(255), "ANY");
  EXPECT_STREQ(qtype_name(257), "CAA");
  EXPECT_STREQ(qtype_name(43), "DS");
  EXPECT_STREQ(qtype_name(48), "DNSKEY");
  EXPECT_STREQ(qtype_name(41), "other");
  EXPECT_STREQ(qtype_name(0), "other");
  EXPECT_STREQ(qtype_name(65535), "other");
  EXPECT_STREQ(rcode_name(3), "NXDOMAIN");
  EXPECT_STREQ(rcode_name(2), "SERVFAIL");
  EXPECT_STREQ(rcode_name(9), "other");
}

// -------------------------------------------------------------- responses

TEST(DnsParseResponse, ARecordsWithCompressedOwners) {
  Wire w;
  w.header(0x4242, kResp, 1, 2, 0, 0).question("www.example.test", kTypeA);
  w.ptr(12);
  w.ttl_next = 300;
  w.a_rdata(198, 51, 100, 10);
  w.ptr(12);
  w.ttl_next = 60;
  w.a_rdata(198, 51, 100, 11);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, 0x4242);
  EXPECT_EQ(a->rcode, 0);
  EXPECT_FALSE(a->truncated);
  EXPECT_EQ(a->qname, "www.example.test");
  EXPECT_EQ(a->qtype, kTypeA);
  ASSERT_EQ(a->names, std::vector<std::string>{"www.example.test"});
  ASSERT_EQ(a->n_addrs, 2u);
  EXPECT_EQ(a->addrs[0].ip, *IpAddr::parse("198.51.100.10"));
  EXPECT_EQ(a->addrs[0].ttl, 300u);
  EXPECT_EQ(a->addrs[1].ip, *IpAddr::parse("198.51.100.11"));
  EXPECT_EQ(a->addrs[1].ttl, 60u);
  EXPECT_EQ(a->min_ttl, 60u);
}

TEST(DnsParseResponse, AaaaRecord) {
  Wire w;
  w.header(7, kResp, 1, 1, 0, 1).question("v6.example.test", kTypeAaaa);
  w.ptr(12).rr_fixed(kTypeAaaa, kClassIn, 120, 16);
  const uint8_t addr[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53};
  for (uint8_t x : addr) w.u8(x);
  w.opt(1232, false);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->n_addrs, 1u);
  EXPECT_EQ(a->addrs[0].ip, *IpAddr::parse("2001:db8::53"));
  EXPECT_EQ(a->min_ttl, 120u);
}

TEST(DnsParseResponse, FollowsCnameChainInAnyOrderAndIgnoresStrangers) {
  Wire w;
  w.header(9, kResp, 1, 5, 0, 0).question("www.example.test", kTypeA);  // name at 12
  // An address first, for the end of the chain: owner "edge.cdn.example.net".
  size_t edge_off = w.size();
  w.labels("edge");
  size_t cdn_off = w.size();
  w.name("cdn.example.net");
  w.ttl_next = 30;
  w.a_rdata(203, 0, 113, 7);
  // A stranger's address that must not be attributed.
  w.name("evil.test");
  w.a_rdata(203, 0, 113, 66);
  // www.example.test CNAME cdn.example.net (target compressed).
  w.ptr(12).rr_fixed(kTypeCname, kClassIn, 3600, 2).ptr(uint16_t(cdn_off));
  // cdn.example.net CNAME edge.cdn.example.net.
  w.ptr(uint16_t(cdn_off)).rr_fixed(kTypeCname, kClassIn, 20, 2).ptr(uint16_t(edge_off));
  // A second address for the end of the chain, mixed-case owner.
  w.name("EDGE.cdn.Example.NET");
  w.ttl_next = 45;
  w.a_rdata(203, 0, 113, 8);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->names, (std::vector<std::string>{"www.example.test", "cdn.example.net",
                                                 "edge.cdn.example.net"}));
  ASSERT_EQ(a->n_addrs, 2u);
  EXPECT_EQ(a->addrs[0].ip, *IpAddr::parse("203.0.113.7"));
  EXPECT_EQ(a->addrs[1].ip, *IpAddr::parse("203.0.113.8"));
  EXPECT_EQ(a->min_ttl, 20u);
}

TEST(DnsParseResponse, CnameLoopEndsChain) {
  Wire w;
  w.header(1, kResp, 1, 2, 0, 0).question("a.test", kTypeA);
  size_t b_off = w.size();
  w.name("b.test").rr_fixed(kTypeCname, kClassIn, 5, 2).ptr(12);
  w.ptr(12).rr_fixed(kTypeCname, kClassIn, 5, 2).ptr(uint16_t(b_off));
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->names, (std::vector<std::string>{"a.test", "b.test"}));
  EXPECT_EQ(a->n_addrs, 0u);
}

TEST(DnsParseResponse, ChainIsCapped) {
  Wire w;
  w.header(1, kResp, 1, 30, 0, 0).question("n0.test", kTypeA);
  for (int i = 0; i < 30; ++i) {
    w.name("n" + std::to_string(i) + ".test").rr_fixed(kTypeCname, kClassIn, 5,
                                                       uint16_t(std::to_string(i + 1).size() + 8));
    w.name("n" + std::to_string(i + 1) + ".test");
  }
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->names.size(), kMaxChainNames);
  EXPECT_EQ(a->names.back(), "n" + std::to_string(kMaxChainNames - 1) + ".test");
}

TEST(DnsParseResponse, NxDomainWithSoa) {
  Wire w;
  w.header(3, kResp | kRcodeNxDomain, 1, 0, 1, 0).question("nope.example.test", kTypeA);
  // Authority: example.test SOA (rdata not interpreted).
  w.ptr(17).rr_fixed(kTypeSoa, kClassIn, 900, 24).ptr(17).ptr(17);
  for (int i = 0; i < 5; ++i) w.u32(uint32_t(i));
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->rcode, kRcodeNxDomain);
  EXPECT_EQ(a->n_addrs, 0u);
  EXPECT_EQ(a->min_ttl, 0u);
  EXPECT_EQ(a->qname, "nope.example.test");
}

TEST(DnsParseResponse, TruncatedFlagAllowsCutMessage) {
  Wire w;
  w.header(5, kResp | kFlagTc, 1, 3, 0, 0).question("big.example.test", kTypeA);
  w.ptr(12).a_rdata(198, 51, 100, 1);
  w.ptr(12).a_rdata(198, 51, 100, 2);
  w.ptr(12).rr_fixed(kTypeA, kClassIn, 300, 4).u8(198);  // cut mid-rdata
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->truncated);
  EXPECT_EQ(a->n_addrs, 2u);

  // The same bytes without TC are malformed.
  w.b[2] = uint8_t(kResp >> 8);
  w.b[3] = uint8_t(kResp);
  EXPECT_FALSE(parse_response(w.span()));
}

TEST(DnsParseResponse, TruncatedEmptyAnswerWithTc) {
  // Some servers send only the header and question with TC set.
  Wire w;
  w.header(5, kResp | kFlagTc, 1, 0, 0, 0).question("big.example.test", kTypeA);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_TRUE(a->truncated);
  EXPECT_EQ(a->n_addrs, 0u);
}

TEST(DnsParseResponse, NoQuestionMeansNoAddresses) {
  Wire w;
  w.header(5, kResp | kRcodeFormErr, 0, 1, 0, 0).name("x.test").a_rdata(198, 51, 100, 9);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->rcode, kRcodeFormErr);
  EXPECT_TRUE(a->qname.empty());
  EXPECT_TRUE(a->names.empty());
  EXPECT_EQ(a->n_addrs, 0u);
}

TEST(DnsParseResponse, KeepsAtMost64AddressesAndCountsTheRest) {
  Wire w;
  w.header(1, kResp, 1, 70, 0, 0).question("many.test", kTypeA);
  for (int i = 0; i < 70; ++i) w.ptr(12).a_rdata(198, 51, 100, uint8_t(i));
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->n_addrs, kMaxAnswerAddrs);
  EXPECT_EQ(a->addrs_dropped, 6u);
  EXPECT_EQ(a->addrs[63].ip, *IpAddr::parse("198.51.100.63"));
}

TEST(DnsParseResponse, TtlWithTopBitIsZeroAndOtherClassesIgnored) {
  Wire w;
  w.header(1, kResp, 1, 2, 0, 0).question("t.test", kTypeA);
  w.ptr(12).rr_fixed(kTypeA, kClassIn, 0x80000001u, 4).u32(0xc6336401);
  w.ptr(12).rr_fixed(kTypeA, 3 /* CH */, 100, 4).u32(0xc6336402);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  ASSERT_EQ(a->n_addrs, 1u);
  EXPECT_EQ(a->addrs[0].ip, *IpAddr::parse("198.51.100.1"));
  EXPECT_EQ(a->addrs[0].ttl, 0u);
}

TEST(DnsParseResponse, FollowsBackwardPointerChains) {
  // Owner is a pointer to a pointer to the question name.
  Wire w;
  w.header(1, kResp, 1, 2, 0, 0).question("p.test", kTypeA);
  size_t first_owner = w.size();
  w.ptr(12).a_rdata(198, 51, 100, 1);
  w.ptr(uint16_t(first_owner)).a_rdata(198, 51, 100, 2);
  auto a = parse_response(w.span());
  ASSERT_TRUE(a);
  EXPECT_EQ(a->n_addrs, 2u);
}

TEST(DnsParseResponse, RejectsQuery) {
  EXPECT_FALSE(parse_response(simple_query("a.test", kTypeA).span()));
  EXPECT_FALSE(parse_response({}));
}

TEST(DnsParseResponse, RejectsPointerLoop) {
  Wire w;
  w.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  size_t self = w.size();
  w.ptr(uint16_t(self)).a_rdata(198, 51, 100, 1);
  EXPECT_FALSE(parse_response(w.span()));
  // Two labels then a pointer back to their own start.
  Wire w2;
  w2.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  size_t start = w2.size();
  w2.labels("x.y").ptr(uint16_t(start)).a_rdata(198, 51, 100, 1);
  EXPECT_FALSE(parse_response(w2.span()));
}

TEST(DnsParseResponse, RejectsForwardPointer) {
  Wire w;
  w.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  size_t owner = w.size();
  // Owner pointer (2) + fixed part (10) + rdata (4): "later.test" starts at owner + 16.
  w.ptr(uint16_t(owner + 16)).a_rdata(198, 51, 100, 1);
  w.name("later.test");  // a valid name where the pointer lands (trailing bytes are ignored)
  EXPECT_FALSE(parse_response(w.span()));
  // The same name reached backwards is fine.
  Wire ok;
  ok.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  ok.ptr(12).a_rdata(198, 51, 100, 1).name("later.test");
  EXPECT_TRUE(parse_response(ok.span()));
}

TEST(DnsParseResponse, CapsPointerJumps) {
  // A backwards chain of pointers, each to the one before it, parked in the
  // rdata of a TXT record; the second record's owner points at the last link,
  // so reading it takes chain + 1 jumps. That terminates, but more than
  // kMaxPointerJumps jumps are refused.
  for (size_t chain : {kMaxPointerJumps - 1, kMaxPointerJumps + 1}) {
    Wire w;
    w.header(1, kResp, 1, 2, 0, 0).question("a.test", kTypeA);
    w.ptr(12).rr_fixed(kTypeTxt, kClassIn, 1, uint16_t(2 * chain));
    size_t base = w.size();
    w.ptr(12);
    for (size_t i = 1; i < chain; ++i) w.ptr(uint16_t(base + 2 * (i - 1)));
    w.ptr(uint16_t(base + 2 * (chain - 1))).a_rdata(198, 51, 100, 1);
    auto a = parse_response(w.span());
    if (chain + 1 <= kMaxPointerJumps) {
      ASSERT_TRUE(a) << chain;
      EXPECT_EQ(a->n_addrs, 1u);
    } else {
      EXPECT_FALSE(a) << chain;
    }
  }
}

TEST(DnsParseQuery, RejectsVeryLongNameWithoutOverrun) {
  // 20 labels of 63: far past 255; must stop early (the text buffer is finite).
  std::string n;
  for (int i = 0; i < 20; ++i) n += std::string(63, 'k') + ".";
  n += "test";
  EXPECT_FALSE(parse_query(simple_query(n, kTypeA).span()));
}

TEST(DnsParseResponse, RejectsPointerIntoHeaderOrPastEnd) {
  Wire w;
  w.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  w.ptr(2).a_rdata(198, 51, 100, 1);
  EXPECT_FALSE(parse_response(w.span()));
  Wire cut;
  cut.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA).u8(0xc0);
  EXPECT_FALSE(parse_response(cut.span()));
}

TEST(DnsParseResponse, RejectsBadAddressLengthsAndCnameOverrun) {
  Wire a5;
  a5.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  a5.ptr(12).rr_fixed(kTypeA, kClassIn, 1, 5).u32(1).u8(2);
  EXPECT_FALSE(parse_response(a5.span()));
  Wire aaaa4;
  aaaa4.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeAaaa);
  aaaa4.ptr(12).rr_fixed(kTypeAaaa, kClassIn, 1, 4).u32(1);
  EXPECT_FALSE(parse_response(aaaa4.span()));
  // CNAME whose rdata length (3) is shorter than the name in it.
  Wire cn;
  cn.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  cn.ptr(12).rr_fixed(kTypeCname, kClassIn, 1, 3).name("bb.test");
  EXPECT_FALSE(parse_response(cn.span()));
  // rdata length past the end of the message.
  Wire past;
  past.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  past.ptr(12).rr_fixed(kTypeTxt, kClassIn, 1, 200).u8(3);
  EXPECT_FALSE(parse_response(past.span()));
}

TEST(DnsParseResponse, RejectsLabel64AndLongNameViaPointers) {
  Wire w;
  w.header(1, kResp, 1, 1, 0, 0).question("a.test", kTypeA);
  w.labels(std::string(64, 'z')).ptr(12).a_rdata(1, 2, 3, 4);
  EXPECT_FALSE(parse_response(w.span()));
  // Each piece is short, but the name assembled through pointers is > 255.
  Wire p;
  std::string l60(60, 'q');
  p.header(1, kResp, 1, 1, 0, 0).question(l60 + "." + l60, kTypeA);  // 123 bytes at 12
  p.labels(l60 + "." + l60 + "." + l60).ptr(12).rr_fixed(kTypeTxt, kClassIn, 1, 0);  // 183 + 123
  EXPECT_FALSE(parse_response(p.span()));
}

// ----------------------------------------------------------------- builds

TEST(DnsBuild, EmptyAnswerRoundTrips) {
  Wire w;
  w.header(0xcafe, kRd | kFlagCd, 1, 0, 0, 0).question("Denied.Example.TEST", kTypeA);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  uint8_t buf[512];
  size_t n = build_empty_answer(w.span(), *q, buf);
  ASSERT_EQ(n, w.size());  // no OPT in the query, none in the answer
  std::span<const uint8_t> out(buf, n);
  // The question is copied byte for byte, case kept (0x20 randomisation).
  EXPECT_TRUE(std::equal(w.b.begin() + 12, w.b.end(), buf + 12));
  auto a = parse_response(out);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, 0xcafe);
  EXPECT_EQ(a->rcode, kRcodeNoError);
  EXPECT_FALSE(a->truncated);
  EXPECT_EQ(a->flags & (kFlagQr | kFlagRa | kFlagRd | kFlagCd | kFlagAa),
            kFlagQr | kFlagRa | kFlagRd | kFlagCd);
  EXPECT_EQ(a->qname, "denied.example.test");
  EXPECT_EQ(a->qtype, kTypeA);
  EXPECT_EQ(a->n_addrs, 0u);
  EXPECT_FALSE(parse_query(out));  // it is a response
}

TEST(DnsBuild, RdNotSetStaysClear) {
  Wire w;
  w.header(1, 0, 1, 0, 0, 0).question("x.test", kTypeA);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  uint8_t buf[512];
  size_t n = build_empty_answer(w.span(), *q, buf);
  ASSERT_GT(n, 0u);
  auto a = parse_response(std::span<const uint8_t>(buf, n));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->flags & kFlagRd, 0);
  EXPECT_NE(a->flags & kFlagRa, 0);
}

TEST(DnsBuild, EmptyAnswerEchoesEdns) {
  Wire w;
  w.header(2, kRd, 1, 0, 0, 1).question("x.test", kTypeAaaa).opt(4096, true);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  uint8_t buf[512];
  size_t n = build_empty_answer(w.span(), *q, buf);
  ASSERT_EQ(n, q->question_end + 11);
  EXPECT_EQ(buf[10], 0);
  EXPECT_EQ(buf[11], 1);  // ARCOUNT
  const uint8_t* o = buf + q->question_end;
  EXPECT_EQ(o[0], 0);
  EXPECT_EQ((o[1] << 8) | o[2], kTypeOpt);
  EXPECT_EQ((o[3] << 8) | o[4], kEdnsUdpSize);
  EXPECT_EQ((o[7] << 8) | o[8], 0x8000);  // DO echoed
  auto a = parse_response(std::span<const uint8_t>(buf, n));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->qtype, kTypeAaaa);
}

TEST(DnsBuild, ErrorCarriesRcode) {
  Wire w = simple_query("slow.test", kTypeA);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  uint8_t buf[512];
  for (uint8_t rc : {kRcodeServFail, kRcodeRefused}) {
    size_t n = build_error(w.span(), *q, rc, buf);
    ASSERT_EQ(n, w.size());
    auto a = parse_response(std::span<const uint8_t>(buf, n));
    ASSERT_TRUE(a);
    EXPECT_EQ(a->rcode, rc);
    EXPECT_EQ(a->id, 0xbeef);
    EXPECT_EQ(a->qname, "slow.test");
  }
  EXPECT_EQ(build_error(w.span(), *q, 16, buf), 0u);
}

TEST(DnsBuild, RefusesSmallBufferOrMismatchedQuestion) {
  Wire w = simple_query("x.test", kTypeA);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  std::vector<uint8_t> small(w.size() - 1);
  EXPECT_EQ(build_empty_answer(w.span(), *q, small), 0u);
  std::vector<uint8_t> exact(w.size());
  EXPECT_EQ(build_empty_answer(w.span(), *q, exact), w.size());
  Question bogus = *q;
  bogus.question_end = w.size() + 10;
  EXPECT_EQ(build_empty_answer(w.span(), bogus, exact), 0u);
  bogus.question_end = 3;
  EXPECT_EQ(build_empty_answer(w.span(), bogus, exact), 0u);
  EXPECT_EQ(build_empty_answer(w.span().first(5), *q, exact), 0u);
}

TEST(DnsBuild, AddressAnswerRoundTrips) {
  Wire w;
  w.header(0x4242, kRd, 1, 0, 0, 0).question("WWW.Example.test", kTypeA);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  uint8_t buf[512];
  IpAddr ip = *IpAddr::parse("198.18.0.7");
  size_t n = build_address_answer(w.span(), *q, ip, 30, buf);
  ASSERT_EQ(n, w.size() + 2 + 10 + 4);
  EXPECT_TRUE(std::equal(w.b.begin() + 12, w.b.end(), buf + 12)) << "question copied, case kept";
  EXPECT_EQ(buf[7], 1) << "ANCOUNT 1";
  EXPECT_EQ(buf[w.size()], 0xc0);
  EXPECT_EQ(buf[w.size() + 1], 12) << "owner: a pointer to the question's name";
  auto a = parse_response(std::span<const uint8_t>(buf, n));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, 0x4242);
  EXPECT_EQ(a->rcode, kRcodeNoError);
  EXPECT_EQ(a->qname, "www.example.test");
  ASSERT_EQ(a->n_addrs, 1u);
  EXPECT_EQ(a->addrs[0].ip, ip);
  EXPECT_EQ(a->addrs[0].ttl, 30u);
  EXPECT_EQ(a->min_ttl, 30u);
}

TEST(DnsBuild, AddressAnswerAaaaWithEdns) {
  Wire w;
  w.header(7, kRd, 1, 0, 0, 1).question("www.example.test", kTypeAaaa).opt(1232, true);
  auto q = parse_query(w.span());
  ASSERT_TRUE(q);
  uint8_t buf[512];
  IpAddr ip = *IpAddr::parse("fd63:666c:6f77::7");
  size_t n = build_address_answer(w.span(), *q, ip, 30, buf);
  ASSERT_EQ(n, q->question_end + 2 + 10 + 16 + 11);
  EXPECT_EQ(buf[11], 1) << "ARCOUNT: the OPT record";
  const uint8_t* o = buf + q->question_end + 28;
  EXPECT_EQ((o[1] << 8) | o[2], kTypeOpt);
  EXPECT_EQ((o[7] << 8) | o[8], 0x8000) << "DO echoed";
  auto a = parse_response(std::span<const uint8_t>(buf, n));
  ASSERT_TRUE(a);
  ASSERT_EQ(a->n_addrs, 1u);
  EXPECT_EQ(a->addrs[0].ip, ip);
}

TEST(DnsBuild, AddressAnswerRefusesAMismatch) {
  uint8_t buf[512];
  IpAddr v4 = *IpAddr::parse("198.18.0.1"), v6 = *IpAddr::parse("fd63:666c:6f77::1");
  Wire a = simple_query("x.test", kTypeA), aaaa = simple_query("x.test", kTypeAaaa),
       mx = simple_query("x.test", kTypeMx);
  Wire chaos;
  chaos.header(1, kRd, 1, 0, 0, 0).question("x.test", kTypeA, 3);
  auto qa = parse_query(a.span()), q6 = parse_query(aaaa.span()), qmx = parse_query(mx.span()),
       qch = parse_query(chaos.span());
  ASSERT_TRUE(qa && q6 && qmx && qch);
  EXPECT_EQ(build_address_answer(a.span(), *qa, v6, 30, buf), 0u) << "A gets IPv4 only";
  EXPECT_EQ(build_address_answer(aaaa.span(), *q6, v4, 30, buf), 0u) << "AAAA gets IPv6 only";
  EXPECT_EQ(build_address_answer(mx.span(), *qmx, v4, 30, buf), 0u);
  EXPECT_EQ(build_address_answer(chaos.span(), *qch, v4, 30, buf), 0u) << "class IN only";
  EXPECT_EQ(build_address_answer(a.span(), *qa, v4, 0x80000000u, buf), 0u);
  std::vector<uint8_t> small(a.size() + 15);
  EXPECT_EQ(build_address_answer(a.span(), *qa, v4, 30, small), 0u);
  small.resize(a.size() + 16);
  EXPECT_EQ(build_address_answer(a.span(), *qa, v4, 30, small), a.size() + 16);
}

TEST(DnsId, GetAndSet) {
  Wire w = simple_query("x.test", kTypeA);
  EXPECT_EQ(get_id(w.span()), 0xbeef);
  set_id(w.b, 0x0102);
  EXPECT_EQ(w.b[0], 1);
  EXPECT_EQ(w.b[1], 2);
  EXPECT_EQ(get_id(w.span()), 0x0102);
  std::vector<uint8_t> one{7};
  EXPECT_EQ(get_id(one), 0);
  set_id(one, 0xffff);
  EXPECT_EQ(one[0], 7);
}

}  // namespace
}  // namespace cf::dns

namespace cf::dns {
namespace {

TEST(DnsQdcount, ParseQueryReportsHowManyQuestions) {
  // Header: id 0x1234, RD, QDCOUNT 2; then "a.test" A IN twice.
  const uint8_t q1[] = {1, 'a', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  std::vector<uint8_t> msg = {0x12, 0x34, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0};
  msg.insert(msg.end(), std::begin(q1), std::end(q1));
  msg.insert(msg.end(), std::begin(q1), std::end(q1));
  auto q = parse_query(msg);
  ASSERT_TRUE(q);
  EXPECT_EQ(q->qdcount, 2);
  EXPECT_EQ(q->qname, "a.test");
  EXPECT_EQ(q->question_end, 12u + sizeof q1);
  uint8_t out[512];
  size_t n = build_error(msg, *q, kRcodeFormErr, out);
  ASSERT_GT(n, 12u);
  EXPECT_EQ(out[3] & 0x0f, kRcodeFormErr);
  EXPECT_EQ(out[5], 1) << "the FORMERR answer carries the first question only";
}

}  // namespace
}  // namespace cf::dns
