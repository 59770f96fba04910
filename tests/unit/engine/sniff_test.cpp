// The TLS ClientHello and HTTP/1 name parsers (src/engine/sniff.hpp).
#include "engine/sniff.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace cf::engine::sniff {
namespace {

using Bytes = std::vector<uint8_t>;

void put16(Bytes& b, size_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}

Bytes ext_sni(const std::vector<std::string>& names) {
  Bytes list;
  for (const auto& n : names) {
    list.push_back(0);
    put16(list, n.size());
    list.insert(list.end(), n.begin(), n.end());
  }
  Bytes e;
  put16(e, 0);  // server_name
  put16(e, list.size() + 2);
  put16(e, list.size());
  e.insert(e.end(), list.begin(), list.end());
  return e;
}

Bytes ext(uint16_t type, size_t len) {
  Bytes e;
  put16(e, type);
  put16(e, len);
  e.insert(e.end(), len, 0x5a);
  return e;
}

// A ClientHello handshake message with these extensions (none: no
// extensions block at all).
Bytes hello_msg(const std::vector<Bytes>& exts, bool with_ext_block = true) {
  Bytes body;
  put16(body, 0x0303);
  body.insert(body.end(), 32, 0x11);  // random
  body.push_back(32);
  body.insert(body.end(), 32, 0x22);  // session id
  put16(body, 4);
  put16(body, 0x1301);
  put16(body, 0x1302);
  body.push_back(1);
  body.push_back(0);
  if (with_ext_block) {
    Bytes all;
    for (const auto& e : exts) all.insert(all.end(), e.begin(), e.end());
    put16(body, all.size());
    body.insert(body.end(), all.begin(), all.end());
  }
  Bytes msg{1, uint8_t(body.size() >> 16), uint8_t(body.size() >> 8), uint8_t(body.size())};
  msg.insert(msg.end(), body.begin(), body.end());
  return msg;
}

// The message in handshake records of at most `frag` bytes each.
Bytes records(const Bytes& msg, size_t frag = 16384) {
  Bytes out;
  for (size_t off = 0; off < msg.size(); off += frag) {
    size_t n = std::min(frag, msg.size() - off);
    out.push_back(22);
    put16(out, 0x0301);
    put16(out, n);
    out.insert(out.end(), msg.begin() + long(off), msg.begin() + long(off + n));
  }
  return out;
}

Bytes text(const std::string& s) { return Bytes(s.begin(), s.end()); }

struct Inspected {
  Result r;
  std::vector<std::string> names;  // normalized
  std::vector<Source> sources;
};

Inspected run(const Bytes& b) {
  static Bytes scratch(kMax);
  Inspected out;
  out.r = inspect(b, scratch);
  for (uint8_t i = 0; i < out.r.n_names; ++i) {
    out.names.push_back(normalize(out.r.names[i]));
    out.sources.push_back(out.r.names[i].source);
  }
  return out;
}

TEST(SniffTls, ServerNameOfAClientHelloInOneRecord) {
  auto in = run(records(hello_msg({ext(10, 8), ext_sni({"WWW.Example.TEST."}), ext(43, 3)})));
  EXPECT_EQ(in.r.verdict, Verdict::Names);
  EXPECT_EQ(in.r.proto, Proto::Tls);
  ASSERT_EQ(in.names.size(), 1u);
  EXPECT_EQ(in.names[0], "www.example.test");
  EXPECT_EQ(in.sources[0], Source::TlsSni);
  EXPECT_FALSE(in.r.ech);
}

TEST(SniffTls, EveryPrefixNeedsMoreAndTheWholeDecides) {
  Bytes b = records(hello_msg({ext_sni({"a.example.test"})}));
  for (size_t n = 1; n < b.size(); ++n) {
    auto in = run(Bytes(b.begin(), b.begin() + long(n)));
    ASSERT_EQ(in.r.verdict, Verdict::NeedMore) << n;
  }
  EXPECT_EQ(run(b).names, std::vector<std::string>{"a.example.test"});
}

TEST(SniffTls, AClientHelloCutOverManyRecordsIsPutBackTogether) {
  Bytes msg = hello_msg({ext(21, 3000), ext_sni({"split.example.test"})});
  for (size_t frag : {1u, 7u, 100u, 1000u}) {
    Bytes b = records(msg, frag);
    auto in = run(b);
    ASSERT_EQ(in.r.verdict, Verdict::Names) << frag;
    EXPECT_EQ(in.names, std::vector<std::string>{"split.example.test"}) << frag;
    // One byte short of the last record: not yet.
    EXPECT_EQ(run(Bytes(b.begin(), b.end() - 1)).r.verdict, Verdict::NeedMore) << frag;
  }
}

TEST(SniffTls, NoServerNameOrNoExtensionsHasNoName) {
  auto in = run(records(hello_msg({ext(10, 4)})));
  EXPECT_EQ(in.r.verdict, Verdict::Names);
  EXPECT_TRUE(in.names.empty());
  in = run(records(hello_msg({}, false)));
  EXPECT_EQ(in.r.verdict, Verdict::Names);
  EXPECT_TRUE(in.names.empty());
}

TEST(SniffTls, EchIsNotedAndTheOuterNameJudged) {
  auto in = run(records(hello_msg({ext_sni({"public.example.test"}), ext(0xfe0d, 200)})));
  EXPECT_TRUE(in.r.ech);
  EXPECT_EQ(in.names, std::vector<std::string>{"public.example.test"});
}

TEST(SniffTls, AmbiguousOrBrokenHellosAreMalformed) {
  // Two host_names, two server_name extensions.
  EXPECT_EQ(run(records(hello_msg({ext_sni({"a.test", "b.test"})}))).r.verdict,
            Verdict::Malformed);
  EXPECT_EQ(run(records(hello_msg({ext_sni({"a.test"}), ext_sni({"b.test"})}))).r.verdict,
            Verdict::Malformed);
  // Not a ClientHello first; a record of another type in the middle.
  Bytes m = hello_msg({ext_sni({"a.test"})});
  m[0] = 2;
  EXPECT_EQ(run(records(m)).r.verdict, Verdict::Malformed);
  Bytes two = records(hello_msg({ext(21, 100), ext_sni({"a.test"})}), 50);
  two[5 + 50] = 23;  // the second record's type
  EXPECT_EQ(run(two).r.verdict, Verdict::Malformed);
  // An extensions length that does not match.
  Bytes bad = hello_msg({ext_sni({"a.test"})});
  bad[4 + 2 + 32 + 1 + 32 + 2 + 4 + 2 + 1]++;  // extensions length, low byte
  EXPECT_EQ(run(records(bad)).r.verdict, Verdict::Malformed);
  // A record too long for TLS; a hello larger than we judge.
  EXPECT_EQ(run({22, 3, 1, 0x40, 0x01}).r.verdict, Verdict::Malformed);
  Bytes big = hello_msg({ext(21, kMax), ext_sni({"a.test"})});
  EXPECT_EQ(run(records(big)).r.verdict, Verdict::Malformed);
}

TEST(SniffTls, NotTls) {
  EXPECT_EQ(run({22, 2}).r.verdict, Verdict::Other);
  EXPECT_EQ(run({0x80, 0x2e, 1, 3, 1}).r.verdict, Verdict::Other);  // SSLv2-style hello
  EXPECT_EQ(run({22}).r.verdict, Verdict::NeedMore);
}

TEST(SniffTls, ARealClientHello) {
  // openssl s_client -servername www.example.test, as captured (the seed of
  // the fuzz target).
  std::ifstream f(std::string(CHILDFLOW_SOURCE_DIR) + "/tests/fuzz/corpus/sniff/tls-openssl-sni",
                  std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(f)), {});
  ASSERT_GT(b.size(), 100u);
  auto in = run(b);
  EXPECT_EQ(in.r.verdict, Verdict::Names);
  EXPECT_EQ(in.names, std::vector<std::string>{"www.example.test"});
}

TEST(SniffHttp, HostOfARequest) {
  auto in = run(text("GET / HTTP/1.1\r\nUser-Agent: x\r\nhOsT:  WWW.example.test:8080 \r\n\r\n"));
  EXPECT_EQ(in.r.verdict, Verdict::Names);
  EXPECT_EQ(in.r.proto, Proto::Http);
  EXPECT_EQ(in.names, std::vector<std::string>{"www.example.test"});
  EXPECT_EQ(in.sources, std::vector<Source>{Source::HttpHost});
}

TEST(SniffHttp, EveryPrefixNeedsMore) {
  std::string req = "\r\nPOST  /upload  HTTP/1.1\nHost: a.example.test\n\nbody";
  size_t end = req.find("\n\n") + 2;
  for (size_t n = 1; n < end; ++n)
    ASSERT_EQ(run(text(req.substr(0, n))).r.verdict, Verdict::NeedMore) << n;
  EXPECT_EQ(run(text(req)).names, std::vector<std::string>{"a.example.test"});
}

TEST(SniffHttp, AbsoluteAndConnectTargetsAreJudgedBesideHost) {
  auto in = run(text("GET http://user@Target.example.test:81/x?y HTTP/1.1\r\nHost: h.test\r\n\r\n"));
  EXPECT_EQ(in.names, (std::vector<std::string>{"target.example.test", "h.test"}));
  EXPECT_EQ(in.sources, (std::vector<Source>{Source::HttpTarget, Source::HttpHost}));
  in = run(text("CONNECT tunnel.example.test:443 HTTP/1.1\r\n\r\n"));
  EXPECT_EQ(in.names, std::vector<std::string>{"tunnel.example.test"});
}

TEST(SniffHttp, NoHostOrAnAddressHasNoName) {
  auto in = run(text("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_EQ(in.r.verdict, Verdict::Names);
  EXPECT_TRUE(in.names.empty());
  in = run(text("GET / HTTP/1.1\r\nHost: 203.0.113.10:80\r\n\r\n"));
  EXPECT_EQ(in.names, std::vector<std::string>{""});
  in = run(text("GET / HTTP/1.1\r\nHost: [2001:db8::10]:80\r\n\r\n"));
  EXPECT_EQ(in.names, std::vector<std::string>{""});
}

TEST(SniffHttp, AmbiguousHeadsAreMalformed) {
  EXPECT_EQ(run(text("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")).r.verdict,
            Verdict::Malformed);
  EXPECT_EQ(run(text("GET / HTTP/1.1\r\nHost : a\r\n\r\n")).r.verdict, Verdict::Malformed);
  EXPECT_EQ(run(text("GET / HTTP/1.1\r\nX: a\r\n Host: b\r\n\r\n")).r.verdict,
            Verdict::Malformed);
  EXPECT_EQ(run(text("GET / HTTP/1.1\r\nno colon\r\n\r\n")).r.verdict, Verdict::Malformed);
}

TEST(SniffHttp, OtherProtocolsAreNotHttp) {
  for (const char* s : {"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", "EHLO client.example.test\r\n",
                        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "GET /\r\n", "get / http/1.1\r\n",
                        "GET / HTTP/1.1x\r\n", "\x01\x02", "GET / HTTP/1.1 junk\r\n"}) {
    EXPECT_EQ(run(text(s)).r.verdict, Verdict::Other) << s;
  }
}

TEST(SniffNormalize, NamesHaveOneMeaning) {
  EXPECT_EQ(normalize({"A.Example.Test.", Source::TlsSni}), "a.example.test");
  EXPECT_EQ(normalize({std::string_view("evil\0.example.test", 18), Source::TlsSni}),
            "evil\\000.example.test");
  EXPECT_EQ(normalize({"a\\b.test", Source::HttpHost}), "a\\092b.test");
  EXPECT_EQ(normalize({"a.test:443", Source::TlsSni}), "a.test:443");  // SNI has no port
  EXPECT_EQ(normalize({"a.test:", Source::HttpHost}), "a.test");
  EXPECT_EQ(normalize({".", Source::HttpHost}), "");
  EXPECT_EQ(normalize({"198.51.100.7", Source::TlsSni}), "");
}

}  // namespace
}  // namespace cf::engine::sniff
