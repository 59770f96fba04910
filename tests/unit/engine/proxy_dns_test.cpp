// --proxy-dns remote in the engine, driven turn by turn (as tcp_test.cpp
// does: a SOCK_SEQPACKET socketpair stands in for tap0). The gate answers A
// and AAAA queries with synthetic addresses and relays nothing; a TCP
// connection to one goes to the proxy as a connection to the name (a fake
// HTTP proxy and a fake SOCKS5 server on 127.0.0.1 check what they are asked);
// everything else to the range is refused at once (ICMP administratively
// prohibited, a hard error; a reset for TCP).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/dns_msg.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {
namespace {

using packet::kAck;
using packet::kRst;
using packet::kSyn;

struct Frame {
  packet::Parsed p;
  std::vector<uint8_t> bytes;
  std::span<const uint8_t> payload() const {
    return {bytes.data() + p.payload_off, p.payload_len};
  }
};

// A DNS query for `name` of type `qtype` (RD set, class IN).
std::vector<uint8_t> dns_query(uint16_t id, const std::string& name, uint16_t qtype) {
  std::vector<uint8_t> m = {uint8_t(id >> 8), uint8_t(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    m.push_back(uint8_t(dot - start));
    m.insert(m.end(), name.begin() + long(start), name.begin() + long(dot));
    start = dot + 1;
  }
  m.insert(m.end(), {0, uint8_t(qtype >> 8), uint8_t(qtype), 0, 1});
  return m;
}

class ProxyDnsRemote : public ::testing::TestWithParam<ProxyScheme> {
 protected:
  void SetUp() override {
    listener_.reset(socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listener_.get(), 8), 0);
    socklen_t al = sizeof a;
    getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &al);
    cfg_.proxy = ProxyUri{GetParam(), "127.0.0.1", ntohs(a.sin_port)};
    cfg_.proxy_dns = ProxyDns::Remote;
  }

  // The engine, once the test has set cfg_ (the policy reads it).
  void start() {
    auto up = proxy::Upstream::create(cfg_);
    ASSERT_TRUE(up);
    upstream_ = std::move(up).value();
    opts_.plan.child4 = *IpAddr::parse("10.0.2.2");
    opts_.plan.gw4 = *IpAddr::parse("10.0.2.1");
    opts_.plan.child6 = *IpAddr::parse("fd42::2");
    opts_.plan.gw6 = *IpAddr::parse("fd42::1");
    opts_.plan.ipv6 = true;
    opts_.plan.mtu = 1500;
    opts_.plan.gw_mac = {2, 0, 0, 0, 0, 1};
    opts_.plan.child_mac = child_mac_;
    // A resolver is set, and still never asked: the gate answers first.
    opts_.resolver = *IpAddr::parse("127.0.0.1");
    opts_.proxy_dns_remote = true;
    opts_.proxy_addr = *IpAddr::parse("127.0.0.1");
    opts_.proxy = upstream_.get();
    pol_ = std::make_unique<policy::Policy>(cfg_);
    rec_ = std::make_unique<observe::Recorder>(cfg_);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    tap_.reset(sv[1]);
    e_ = std::make_unique<Engine>(opts_, UniqueFd(sv[0]), *pol_, *rec_, &st_);
    e_->now = monotonic_ms();
    ASSERT_TRUE(e_->init());
  }

  const IpAddr& child(bool v6) const { return v6 ? opts_.plan.child6 : opts_.plan.child4; }
  const IpAddr& gw(bool v6) const { return v6 ? opts_.plan.gw6 : opts_.plan.gw4; }

  void child_udp(const IpAddr& dst, uint16_t dport, std::span<const uint8_t> data,
                 uint16_t sport = 5353) {
    uint8_t buf[packet::kFrameMax];
    bool v6 = !dst.is_v4();
    std::memcpy(buf + packet::payload_offset(dst.family, packet::kProtoUdp), data.data(),
                data.size());
    size_t n = packet::build_udp(buf, child_mac_, opts_.plan.gw_mac, child(v6), sport, dst, dport,
                                 data.size());
    ASSERT_EQ(write(tap_.get(), buf, n), ssize_t(n));
  }

  void child_syn(const IpAddr& dst, uint16_t dport, uint16_t sport = 40000) {
    uint8_t buf[packet::kFrameMax];
    packet::TcpSeg s{child(!dst.is_v4()), dst, sport, dport, 1000, 0, kSyn, 65535, 1460, 7};
    size_t n = packet::build_tcp(buf, child_mac_, opts_.plan.gw_mac, s, 0);
    ASSERT_EQ(write(tap_.get(), buf, n), ssize_t(n));
  }

  void child_rst(const IpAddr& dst, uint16_t dport, uint32_t seq, uint16_t sport = 40000) {
    uint8_t buf[packet::kFrameMax];
    packet::TcpSeg s{child(!dst.is_v4()), dst, sport, dport, seq, 0, kRst, 0};
    size_t n = packet::build_tcp(buf, child_mac_, opts_.plan.gw_mac, s, 0);
    ASSERT_EQ(write(tap_.get(), buf, n), ssize_t(n));
  }

  // One engine turn (waiting at most `ms`); the frames it sent to the child.
  std::vector<Frame> turn(int ms = 5) {
    std::vector<Frame> out;
    bool exited = false;
    EXPECT_TRUE(e_->turn(ms, &exited));
    for (;;) {
      Frame f;
      f.bytes.resize(packet::kFrameMax);
      ssize_t n = read(tap_.get(), f.bytes.data(), f.bytes.size());
      if (n <= 0) break;
      f.bytes.resize(size_t(n));
      EXPECT_TRUE(packet::parse(f.bytes, &f.p));
      out.push_back(std::move(f));
    }
    return out;
  }

  // Asks the gateway over UDP; the parsed answer (nullopt if none came).
  std::optional<dns::Answer> ask(const std::string& name, uint16_t qtype, bool v6 = false) {
    auto q = dns_query(0x1234, name, qtype);
    child_udp(gw(v6), 53, q);
    for (const Frame& f : turn()) {
      if (f.p.proto != packet::kProtoUdp || f.p.sport != 53) continue;
      EXPECT_EQ(f.p.src, gw(v6));
      return dns::parse_response(f.payload());
    }
    return std::nullopt;
  }

  // Plays the proxy: accepts the engine's connection, reads what it asks
  // for and says yes. Returns the request (HTTP: the request line; SOCKS5:
  // the CONNECT message's bytes).
  std::string serve_proxy() {
    std::string got;
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    bool greeted = false;
    while (std::chrono::steady_clock::now() < end) {
      turn();
      if (!peer_) {
        peer_.reset(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        continue;
      }
      char buf[1024];
      ssize_t n = recv(peer_.get(), buf, sizeof buf, 0);
      if (n > 0) got.append(buf, size_t(n));
      if (GetParam() != ProxyScheme::Socks5) {
        size_t eoh = got.find("\r\n\r\n");
        if (eoh == std::string::npos) continue;
        const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        EXPECT_EQ(send(peer_.get(), ok, sizeof ok - 1, 0), ssize_t(sizeof ok - 1));
        return got.substr(0, got.find("\r\n"));
      }
      if (!greeted) {
        if (got.size() < 3) continue;
        EXPECT_EQ(got.substr(0, 3), std::string("\x05\x01\x00", 3));
        EXPECT_EQ(send(peer_.get(), "\x05\x00", 2, 0), 2);
        got.erase(0, 3);
        greeted = true;
        continue;
      }
      if (got.size() < 5 || got.size() < 5 + size_t(uint8_t(got[4])) + 2) continue;
      const char reply[] = "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00";
      EXPECT_EQ(send(peer_.get(), reply, 10, 0), 10);
      return got;
    }
    ADD_FAILURE() << "the proxy was not asked in time: " << got;
    return got;
  }

  // The request the proxy should see for name:port.
  std::string expected_request(const std::string& name, uint16_t port) const {
    if (GetParam() != ProxyScheme::Socks5)
      return "CONNECT " + name + ":" + std::to_string(port) + " HTTP/1.1";
    std::string m("\x05\x01\x00\x03", 4);
    m += char(name.size());
    m += name;
    m += char(port >> 8);
    m += char(port & 0xff);
    return m;
  }

  bool proxy_was_asked() {
    UniqueFd c(accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    return c.valid();
  }

  Config cfg_;
  Options opts_;
  Mac child_mac_{2, 0, 0, 0, 0, 2};
  std::unique_ptr<proxy::Upstream> upstream_;
  std::unique_ptr<policy::Policy> pol_;
  std::unique_ptr<observe::Recorder> rec_;
  Stats st_;
  UniqueFd tap_, listener_, peer_;
  std::unique_ptr<Engine> e_;
};

TEST_P(ProxyDnsRemote, AnswersAAndAaaaFromTheSyntheticRangeAndRelaysNothing) {
  start();
  auto a = ask("www.example.test", dns::kTypeA);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->id, 0x1234);
  EXPECT_EQ(a->rcode, dns::kRcodeNoError);
  ASSERT_EQ(a->n_addrs, 1u);
  EXPECT_EQ(a->addrs[0].ip.str(), "198.18.0.1");
  EXPECT_EQ(a->addrs[0].ttl, kSynthTtlS);
  auto aaaa = ask("www.example.test", dns::kTypeAaaa, true);
  ASSERT_TRUE(aaaa);
  ASSERT_EQ(aaaa->n_addrs, 1u);
  EXPECT_EQ(aaaa->addrs[0].ip.str(), "fd63:666c:6f77::1") << "the same entry as the A answer";
  auto other = ask("echo.example.test", dns::kTypeA);
  ASSERT_TRUE(other);
  ASSERT_EQ(other->n_addrs, 1u);
  EXPECT_EQ(other->addrs[0].ip.str(), "198.18.0.2");
  for (uint16_t t : {dns::kTypeMx, dns::kTypeTxt, dns::kTypeHttps, dns::kTypePtr}) {
    auto empty = ask("www.example.test", t);
    ASSERT_TRUE(empty) << t;
    EXPECT_EQ(empty->rcode, dns::kRcodeNoError) << t;
    EXPECT_EQ(empty->n_addrs, 0u) << t;
  }
  EXPECT_EQ(e_->synth.size(), 2u);
  EXPECT_EQ(st_.dns_queries, 7u);
  EXPECT_EQ(st_.dns_mismatched, 0u);
  for (uint32_t s = 0; s < e_->dns.size(); ++s) EXPECT_FALSE(e_->dns[s].used) << "nothing pending";
}

TEST_P(ProxyDnsRemote, DeniedAndAddressLikeNamesGetNoAddress) {
  cfg_.deny_domains = {"bad.example.test"};
  start();
  for (const char* name : {"www.bad.example.test", "10.1.2.3", "167772161", "localhost"}) {
    auto a = ask(name, dns::kTypeA);
    ASSERT_TRUE(a) << name;
    EXPECT_EQ(a->rcode, dns::kRcodeNoError) << name;
    EXPECT_EQ(a->n_addrs, 0u) << name;
  }
  EXPECT_EQ(e_->synth.size(), 0u);
}

TEST_P(ProxyDnsRemote, HostileQueriesAreDroppedAndCounted) {
  start();
  std::vector<uint8_t> junk = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c};
  child_udp(gw(false), 53, junk);
  child_udp(gw(false), 53, std::span<const uint8_t>(junk).first(5));
  EXPECT_TRUE(turn().empty());
  EXPECT_EQ(st_.dropped_malformed, 2u);
  EXPECT_EQ(e_->synth.size(), 0u);
}

TEST_P(ProxyDnsRemote, TcpToASyntheticAddressAsksTheProxyForTheName) {
  start();
  auto a = ask("www.example.test", dns::kTypeA);
  ASSERT_TRUE(a && a->n_addrs == 1);
  IpAddr dst = a->addrs[0].ip;
  child_syn(dst, 80);
  EXPECT_EQ(serve_proxy(), expected_request("www.example.test", 80));
  bool synack = false;
  for (int i = 0; i < 100 && !synack; ++i)
    for (const Frame& f : turn())
      if (f.p.proto == packet::kProtoTcp && f.p.flags == (kSyn | kAck) && f.p.src == dst)
        synack = true;
  EXPECT_TRUE(synack) << "the connection opened once the proxy said yes";
  auto entry = e_->synth.lookup(dst);
  ASSERT_TRUE(entry);
  EXPECT_EQ(e_->synth.holders(*entry), 1u) << "the live flow holds its entry";
  child_rst(dst, 80, 1001);
  turn();
  EXPECT_EQ(e_->synth.holders(*entry), 0u) << "released with the flow";
  EXPECT_EQ(st_.synthetic_refused, 0u);
}

TEST_P(ProxyDnsRemote, IPv6SyntheticAddressesGoToTheProxyByNameToo) {
  start();
  auto a = ask("echo.example.test", dns::kTypeAaaa, true);
  ASSERT_TRUE(a && a->n_addrs == 1);
  child_syn(a->addrs[0].ip, 7);
  EXPECT_EQ(serve_proxy(), expected_request("echo.example.test", 7));
}

TEST_P(ProxyDnsRemote, AnAddressOfNoEntryIsResetAtOnce) {
  start();
  child_syn(*IpAddr::parse("198.18.0.99"), 80);
  bool rst = false;
  for (const Frame& f : turn())
    if (f.p.proto == packet::kProtoTcp && (f.p.flags & kRst)) rst = true;
  EXPECT_TRUE(rst) << "in the same turn";
  EXPECT_EQ(st_.synthetic_refused, 1u);
  EXPECT_FALSE(proxy_was_asked());
}

TEST_P(ProxyDnsRemote, UdpAndPingToASyntheticAddressAreProhibitedAtOnce) {
  start();
  auto a = ask("www.example.test", dns::kTypeA);
  ASSERT_TRUE(a && a->n_addrs == 1);
  const uint8_t data[] = {'h', 'i'};
  child_udp(a->addrs[0].ip, 443, data);  // QUIC, say
  auto fr = turn();
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].p.proto, packet::kProtoIcmp);
  EXPECT_EQ(fr[0].p.icmp_type, packet::icmp4::kUnreach);
  EXPECT_EQ(fr[0].p.icmp_code, packet::icmp4::kAdminProhibited) << "a hard error";
  EXPECT_EQ(fr[0].p.src, a->addrs[0].ip);
  child_udp(*IpAddr::parse("fd63:666c:6f77::1"), 443, data);
  fr = turn();
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].p.proto, packet::kProtoIcmp6);
  EXPECT_EQ(fr[0].p.icmp_type, packet::icmp6::kUnreach);
  EXPECT_EQ(fr[0].p.icmp_code, packet::icmp6::kAdminProhibited);
  uint8_t buf[packet::kFrameMax];
  const uint8_t ping[] = {1, 2, 3, 4};
  size_t n = packet::build_icmp_echo(buf, child_mac_, opts_.plan.gw_mac, opts_.plan.child4,
                                     a->addrs[0].ip, false, 7, 1, ping);
  ASSERT_EQ(write(tap_.get(), buf, n), ssize_t(n));
  fr = turn();
  ASSERT_EQ(fr.size(), 1u);
  EXPECT_EQ(fr[0].p.icmp_type, packet::icmp4::kUnreach);
  EXPECT_EQ(fr[0].p.icmp_code, packet::icmp4::kAdminProhibited);
  EXPECT_EQ(st_.synthetic_refused, 3u);
  EXPECT_EQ(st_.udp_flows + st_.icmp_flows, 0u) << "no socket was opened";
  EXPECT_FALSE(proxy_was_asked());
}

TEST_P(ProxyDnsRemote, NamedFlowsAreJudgedByTheirName) {
  // Default deny and no domain allow rule: names resolve (docs/policy.md,
  // "DNS"), but a connection to one has no address a CIDR rule could allow.
  cfg_.default_policy = DefaultPolicy::Deny;
  cfg_.allow_cidrs = {*Cidr::parse("198.18.0.0/15")};
  start();
  auto a = ask("www.example.test", dns::kTypeA);
  ASSERT_TRUE(a && a->n_addrs == 1);
  child_syn(a->addrs[0].ip, 80);
  bool rst = false;
  for (const Frame& f : turn())
    if (f.p.proto == packet::kProtoTcp && (f.p.flags & kRst)) rst = true;
  EXPECT_TRUE(rst) << "denied by name, before the proxy is asked";
  EXPECT_FALSE(proxy_was_asked());
}

TEST_P(ProxyDnsRemote, ADomainAllowRuleAllowsTheNamedFlow) {
  cfg_.default_policy = DefaultPolicy::Deny;
  cfg_.allow_domains = {"example.test"};
  start();
  auto a = ask("www.example.test", dns::kTypeA);
  ASSERT_TRUE(a && a->n_addrs == 1);
  child_syn(a->addrs[0].ip, 443);
  EXPECT_EQ(serve_proxy(), expected_request("www.example.test", 443));
}

INSTANTIATE_TEST_SUITE_P(Proxies, ProxyDnsRemote,
                         ::testing::Values(ProxyScheme::Http, ProxyScheme::Socks5),
                         [](const ::testing::TestParamInfo<ProxyScheme>& i) { return std::string(name(i.param)); });

}  // namespace
}  // namespace cf::engine
