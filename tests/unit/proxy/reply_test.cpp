// The parsers of the proxy's replies (proxy/reply.hpp): complete, incomplete,
// refused and malformed replies to HTTP CONNECT and SOCKS5 CONNECT, and how
// many bytes each takes (what follows belongs to the tunnel).
#include "proxy/reply.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cf::proxy {
namespace {

using Kind = Reply::Kind;

Reply http(const std::string& s) { return parse_http_reply(s); }
Reply socks(const std::vector<uint8_t>& b) { return parse_socks_reply(b); }

TEST(HttpReply, TwoHundredTakesExactlyTheHeaders) {
  std::string head = "HTTP/1.1 200 Connection established\r\nProxy-agent: x\r\n\r\n";
  Reply r = http(head + "SSH-2.0-OpenSSH_9.2\r\n");
  EXPECT_EQ(r.kind, Kind::Done);
  EXPECT_EQ(r.length, head.size());
  EXPECT_EQ(r.error, "");
  EXPECT_EQ(http("HTTP/1.0 200\r\n\r\n").kind, Kind::Done);
  EXPECT_EQ(http("HTTP/1.1 299 Whatever\r\n\r\n").kind, Kind::Done);
}

TEST(HttpReply, IncompleteUntilTheBlankLine) {
  EXPECT_EQ(http(""), Reply{});
  EXPECT_EQ(http("HTTP/1.1 200 Conn"), Reply{});
  EXPECT_EQ(http("HTTP/1.1 200 OK\r\nProxy-agent: x\r\n"), Reply{});
  EXPECT_EQ(http("HTTP/1.1 200 OK\r\n\r").kind, Kind::NeedMore);
}

TEST(HttpReply, AuthenticationAndRefusals) {
  std::string head = "HTTP/1.1 407 Proxy Authentication Required\r\nX: y\r\n\r\n";
  Reply r = http(head + "body");
  EXPECT_EQ(r.kind, Kind::Failed);
  EXPECT_EQ(r.length, head.size());
  EXPECT_EQ(r.error, "proxy: authentication failed: HTTP/1.1 407 Proxy Authentication Required");
  EXPECT_EQ(http("HTTP/1.1 401 Unauthorized\r\n\r\n").error,
            "proxy: authentication failed: HTTP/1.1 401 Unauthorized");
  EXPECT_EQ(http("HTTP/1.1 403 Forbidden\r\n\r\n").error,
            "proxy: CONNECT refused: HTTP/1.1 403 Forbidden");
  EXPECT_EQ(http("HTTP/1.1 100 Continue\r\n\r\n").error,
            "proxy: CONNECT refused: HTTP/1.1 100 Continue");
}

TEST(HttpReply, ControlBytesOfTheStatusAreShownAsQuestionMarks) {
  Reply r = http("HTTP/1.1 502 \x1b[31mbad\xff\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::Failed);
  EXPECT_EQ(r.error, "proxy: CONNECT refused: HTTP/1.1 502 ?[31mbad?");
}

TEST(HttpReply, NotHttp1) {
  Reply r = http("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::Failed);
  EXPECT_EQ(r.length, 23u);
  EXPECT_EQ(r.error, "proxy: not an HTTP reply to CONNECT: SSH-2.0-OpenSSH_9.2");
  EXPECT_EQ(http("HTTP/2 200\r\n\r\n").error, "proxy: not an HTTP reply to CONNECT: HTTP/2 200");
  // The status is cut at 80 characters in this message.
  std::string longer = "X" + std::string(100, 'y');
  EXPECT_EQ(http(longer + "\r\n\r\n").error,
            "proxy: not an HTTP reply to CONNECT: " + longer.substr(0, 80));
}

TEST(HttpReply, OnlyAWellFormedStatusLineAcceptsTheTunnel) {
  // Found by fuzz_http_connect (tests/fuzz/corpus/http_connect/crash-*): the
  // code was read with atoi from the 10th byte on, so anything that atoi
  // made 2xx passed, even a code that wraps to 200 in an int.
  using namespace std::string_literals;
  for (const std::string& status : {
           "HTTP/1.1 200\xd9 Connection es\xffion \0\x86ktablished"s,  // the fuzzer's input
           "HTTP/1.1 4294967496 OK"s,   // 2^32 + 200
           "HTTP/1.1 +200 OK"s,
           "HTTP/1.1  200 OK"s,
           "HTTP/1.1\t200 OK"s,
           "HTTP/1.1X200 OK"s,
           "HTTP/1.x 200 OK"s,
           "HTTP/1.1 20 OK"s,
           "HTTP/1.1 2000 OK"s,
       }) {
    Reply r = http(status + "\r\n\r\n");
    EXPECT_EQ(r.kind, Kind::Failed) << status;
    EXPECT_EQ(r.length, status.size() + 4) << status;
    EXPECT_TRUE(r.error.starts_with("proxy: not an HTTP reply to CONNECT: ")) << r.error;
  }
  // What RFC 9112 allows: any HTTP/1 minor version, no reason phrase.
  EXPECT_EQ(http("HTTP/1.0 200 Connection established\r\n\r\n").kind, Kind::Done);
  EXPECT_EQ(http("HTTP/1.9 201\r\n\r\n").kind, Kind::Done);
  EXPECT_EQ(http("HTTP/1.1 200 \r\n\r\n").kind, Kind::Done);
}

TEST(HttpReply, HeadersLongerThanTheLimitFailWithoutTakingAnything) {
  std::string big = "HTTP/1.1 200 OK\r\n" + std::string(kMaxHttpReply, 'a');
  Reply r = http(big);
  EXPECT_EQ(r.kind, Kind::Failed);
  EXPECT_EQ(r.length, 0u);
  EXPECT_EQ(r.error, "proxy: CONNECT reply headers too long");
  // A blank line past the limit is not looked for.
  EXPECT_EQ(http(big + "\r\n\r\n").error, "proxy: CONNECT reply headers too long");
  // One byte less than the limit may still grow into a reply.
  EXPECT_EQ(http(big.substr(0, kMaxHttpReply - 1)).kind, Kind::NeedMore);
}

TEST(SocksReply, LengthsOfTheThreeAddressTypes) {
  std::vector<uint8_t> v4{5, 0, 0, 1, 192, 0, 2, 1, 0x1f, 0x90};
  EXPECT_EQ(socks(v4), (Reply{Kind::Done, 10, ""}));
  std::vector<uint8_t> v6{5, 0, 0, 4};
  v6.resize(4 + 16 + 2);
  EXPECT_EQ(socks(v6), (Reply{Kind::Done, 22, ""}));
  std::vector<uint8_t> name{5, 0, 0, 3, 3, 'a', 'b', 'c', 0, 80};
  EXPECT_EQ(socks(name), (Reply{Kind::Done, 10, ""}));
  std::vector<uint8_t> empty_name{5, 0, 0, 3, 0, 0, 80};
  EXPECT_EQ(socks(empty_name), (Reply{Kind::Done, 7, ""}));
  // What follows belongs to the tunnel.
  v4.push_back('H');
  EXPECT_EQ(socks(v4), (Reply{Kind::Done, 10, ""}));
}

TEST(SocksReply, IncompleteSaysHowManyBytesItNeeds) {
  EXPECT_EQ(socks({}), (Reply{Kind::NeedMore, 5, ""}));
  EXPECT_EQ(socks({5, 0, 0, 4}), (Reply{Kind::NeedMore, 5, ""}));
  EXPECT_EQ(socks({5, 0, 0, 4, 0}), (Reply{Kind::NeedMore, 22, ""}));
  EXPECT_EQ(socks({5, 0, 0, 3, 255, 'a'}), (Reply{Kind::NeedMore, kMaxSocksReply, ""}));
  EXPECT_EQ(kMaxSocksReply, 262u);
}

TEST(SocksReply, RefusedWithTheReplyCodeText) {
  Reply r = socks({5, 5, 0, 1, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(r.kind, Kind::Failed);
  EXPECT_EQ(r.length, 10u);
  EXPECT_EQ(r.error, "proxy: SOCKS5 CONNECT failed: connection refused");
  EXPECT_EQ(socks({5, 2, 0, 1, 0, 0, 0, 0, 0, 0}).error,
            "proxy: SOCKS5 CONNECT failed: connection not allowed by ruleset");
  EXPECT_EQ(socks({5, 9, 0, 1, 0, 0, 0, 0, 0, 0}).error,
            "proxy: SOCKS5 CONNECT failed: unknown reply code");
}

TEST(SocksReply, MalformedOnItsFirstFiveBytes) {
  EXPECT_EQ(socks({0, 0x5a, 0, 80, 127}), (Reply{Kind::Failed, 0, "proxy: not a SOCKS5 reply"}));
  EXPECT_EQ(socks({5, 0, 0, 2, 0}),
            (Reply{Kind::Failed, 0, "proxy: SOCKS5 reply with an unknown address type"}));
}

}  // namespace
}  // namespace cf::proxy
