// The engine driven turn by turn over a fake tap, for the unit tests of
// tests/unit/engine/ (tcp_test.cpp, limits_test.cpp). A SOCK_SEQPACKET
// socketpair stands in for tap0 (one frame per message, as a tap device gives
// them): the test plays the child by writing frames to one end and reading
// the engine's frames from it, and a listening socket on 127.0.0.1 plays the
// remote host (reached through the gateway with --allow-host-loopback).
#pragma once
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/kernel.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine::test {

using packet::kAck;
using packet::kFin;
using packet::kPsh;
using packet::kRst;
using packet::kSyn;

constexpr uint32_t kMtu = 1500;
constexpr uint16_t kChildPort = 40000;

struct Frame {
  packet::Parsed p;
  packet::VnetHdr vh;  // with Options::vnet_hdr: the header it came with
  std::vector<uint8_t> bytes;
  std::string payload() const {
    return std::string(reinterpret_cast<const char*>(bytes.data()) + p.payload_off,
                       p.payload_len);
  }
};

// A run_until() predicate: some frame has `flag` set.
inline auto any_with(uint8_t flag) {
  return [flag](const std::vector<Frame>& v) {
    for (const auto& f : v)
      if (f.p.flags & flag) return true;
    return false;
  };
}

inline void connect_nb(int fd, const sockaddr_in& a) {
  ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

inline uint32_t g_isn = 1000;
inline uint32_t fixed_isn() { return g_isn; }

class FakeTap : public ::testing::Test {
 protected:
  // Builds the engine from opts_ (a test may change opts_ first, e.g. its
  // limits); `peek_off` picks the TCP path (SO_PEEK_OFF, or the copy path).
  void start(bool peek_off) {
    opts_.allow_host_loopback = true;
    opts_.plan.child4 = *IpAddr::parse("10.0.2.2");
    opts_.plan.gw4 = *IpAddr::parse("10.0.2.1");
    opts_.plan.ipv6 = false;
    opts_.plan.mtu = kMtu;
    opts_.plan.gw_mac = {2, 0, 0, 0, 0, 1};
    opts_.plan.child_mac = child_mac_;
    pol_ = std::make_unique<policy::Policy>(cfg_);
    rec_ = std::make_unique<observe::Recorder>(cfg_);
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    tap_.reset(sv[1]);
    e_ = std::make_unique<Engine>(opts_, UniqueFd(sv[0]), *pol_, *rec_, &st_);
    e_->now = monotonic_ms();
    ASSERT_TRUE(e_->init());
    bool want_peek = peek_off;
    if (want_peek && !kernel::probe(kernel::Feature::TcpPeekOff).available)
      GTEST_SKIP() << "this kernel has no SO_PEEK_OFF on TCP";
    e_->tcp_peek_off = want_peek;
    e_->isn_source = fixed_isn;
    g_isn = 1000;

    listener_.reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(listener_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(listener_.get(), 8), 0);
    socklen_t al = sizeof a;
    getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&a), &al);
    port_ = ntohs(a.sin_port);
  }

  // The child sends one segment.
  void child_send(uint8_t flags, uint32_t seq, uint32_t ack, const std::string& data = "",
                  uint16_t window = 65535, uint16_t mss = 1460, int8_t wscale = -1) {
    uint8_t buf[packet::kFrameMax];
    packet::TcpSeg s{opts_.plan.child4, opts_.plan.gw4, sport_, dport_ ? dport_ : port_,
                     seq, ack, flags, window, mss, wscale};
    size_t off = packet::payload_offset(Family::V4, packet::kProtoTcp, (flags & kSyn) != 0);
    std::memcpy(buf + off, data.data(), data.size());
    size_t n = packet::build_tcp(buf, child_mac_, opts_.plan.gw_mac, s, data.size());
    child_write(buf, n);
  }

  // The child's kernel hands tap0 one frame (with Options::vnet_hdr, after
  // the header `vh`).
  void child_write(const uint8_t* frame, size_t n, const packet::VnetHdr& vh = {}) {
    if (!opts_.vnet_hdr) {
      ASSERT_EQ(write(tap_.get(), frame, n), ssize_t(n));
      return;
    }
    iovec iov[2] = {{const_cast<packet::VnetHdr*>(&vh), sizeof vh},
                    {const_cast<uint8_t*>(frame), n}};
    ASSERT_EQ(writev(tap_.get(), iov, 2), ssize_t(sizeof vh + n));
  }

  // Runs the engine for about `ms` milliseconds, or until `until` holds for
  // the frames received so far; returns the frames it sent to the child.
  template <typename Pred>
  std::vector<Frame> run_until(int ms, Pred until) {
    std::vector<Frame> out;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (std::chrono::steady_clock::now() < end) {
      bool exited = false;
      EXPECT_TRUE(e_->turn(5, &exited));
      for (;;) {
        Frame f;
        f.bytes.resize(packet::kFrameMax);
        ssize_t n;
        if (opts_.vnet_hdr) {
          iovec iov[2] = {{&f.vh, sizeof f.vh}, {f.bytes.data(), f.bytes.size()}};
          n = readv(tap_.get(), iov, 2);
          if (n > 0) {
            EXPECT_GE(size_t(n), sizeof f.vh);
            n -= ssize_t(sizeof f.vh);
          }
        } else {
          n = read(tap_.get(), f.bytes.data(), f.bytes.size());
        }
        if (n <= 0) break;
        f.bytes.resize(size_t(n));
        EXPECT_TRUE(packet::parse(f.bytes, &f.p));
        out.push_back(std::move(f));
      }
      if (until(out)) break;
    }
    return out;
  }
  std::vector<Frame> run(int ms) {
    return run_until(ms, [](const std::vector<Frame>&) { return false; });
  }

  // Handshake: returns the engine's ISN; the server side is accepted.
  uint32_t connect(uint32_t child_isn, uint16_t window = 65535, uint16_t mss = 1460,
                   int8_t wscale = -1) {
    child_isn_ = child_isn;
    child_send(kSyn, child_isn, 0, "", window, mss, wscale);
    auto fr = run_until(2000, [](const std::vector<Frame>& v) {
      for (const auto& f : v)
        if (f.p.flags == (kSyn | kAck)) return true;
      return false;
    });
    const Frame* synack = nullptr;
    for (const auto& f : fr)
      if (f.p.flags == (kSyn | kAck)) synack = &f;
    EXPECT_NE(synack, nullptr) << "no SYN-ACK";
    if (!synack) return 0;
    synack_ = *synack;
    EXPECT_EQ(synack->p.ack, child_isn + 1);
    server_.reset(accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    EXPECT_TRUE(server_.valid());
    rcv_nxt_ = synack->p.seq + 1;  // what the child expects next from us
    snd_nxt_ = child_isn + 1;      // the child's next sequence number
    child_send(kAck, snd_nxt_, rcv_nxt_, "", window);
    run(20);
    return synack->p.seq;
  }

  void server_write(const std::string& s) {
    ASSERT_EQ(write(server_.get(), s.data(), s.size()), ssize_t(s.size()));
  }
  std::string server_read(size_t n, int ms = 1000) {
    std::string got;
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    while (got.size() < n && std::chrono::steady_clock::now() < end) {
      run(5);
      char buf[65536];
      ssize_t r = recv(server_.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) got.append(buf, size_t(r));
      if (r == 0) break;
    }
    return got;
  }

  static std::vector<Frame> data_frames(const std::vector<Frame>& v) {
    std::vector<Frame> d;
    for (const auto& f : v)
      if (f.p.payload_len > 0) d.push_back(f);
    return d;
  }

  Config cfg_;
  Options opts_;
  Mac child_mac_{2, 0, 0, 0, 0, 2};
  std::unique_ptr<policy::Policy> pol_;
  std::unique_ptr<observe::Recorder> rec_;
  Stats st_;
  UniqueFd tap_, listener_, server_;
  uint16_t port_ = 0;
  uint16_t sport_ = kChildPort, dport_ = 0;  // the child's segments (dport_ 0: port_)
  std::unique_ptr<Engine> e_;
  Frame synack_;
  uint32_t child_isn_ = 0, rcv_nxt_ = 0, snd_nxt_ = 0;
};

inline std::string pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = char(seed + int(i % 251));
  return s;
}

// The one slot in use by a TCP flow.
inline std::optional<uint32_t> busy_slot(Engine& e) {
  for (uint32_t s = 0; s < e.tcp.size(); ++s)
    if (e.tcp[s].state != TcpState::Free) return s;
  return std::nullopt;
}

// epoll_ctl(ADD) as the engine makes it, except that the g_fail_add-th call
// (counting from fail_add) fails with ENOSPC, as at fs.epoll.max_user_watches.
inline int g_adds = 0, g_fail_add = 0;
inline int failing_add(int ep, int fd, epoll_event* ev) {
  if (++g_adds == g_fail_add) {
    errno = ENOSPC;
    return -1;
  }
  return epoll_add_fd(ep, fd, ev);
}
inline void fail_add(Engine& e, int nth) {
  g_adds = 0;
  g_fail_add = nth;
  e.epoll_add = failing_add;
}

}  // namespace cf::engine::test
