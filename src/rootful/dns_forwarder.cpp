// The host-side DNS forwarder of a rootful run. See dns_forwarder.hpp.
#include "rootful/dns_forwarder.hpp"

#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <iterator>
#include <list>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/clock.hpp"
#include "common/random.hpp"
#include "common/unique_fd.hpp"
#include "engine/dns_gate.hpp"
#include "engine/engine.hpp"
#include "engine/synth.hpp"
#include "observe/recorder.hpp"
#include "policy/policy.hpp"

namespace cf::rootful {
namespace {

constexpr uint64_t kQueryTimeoutMs = 5000;
constexpr uint64_t kTcpIdleMs = 10000;
constexpr size_t kMaxUdpPending = 256;
constexpr size_t kMaxTcpConns = 32;
constexpr size_t kMaxMsg = 65535;

// A UDP query relayed to the resolver.
struct UdpPending {
  int listener = -1;  // where the answer goes back from
  IpAddr server;      // the gateway address the tree asked
  sockaddr_storage client{};
  socklen_t client_len = 0;
  uint16_t client_id = 0, up_id = 0;
  engine::GateQuery gq;
  UniqueFd up;
  uint64_t deadline = 0;
};

// A TCP connection from the tree, with at most one query relayed at a time.
struct TcpConn {
  UniqueFd fd;
  IpAddr server;
  std::string in, out;
  uint64_t idle_deadline = 0;
  bool client_done = false;
  // The relayed query, while there is one.
  UniqueFd up;
  bool up_connected = false;
  std::string up_out, up_in;
  uint16_t client_id = 0, up_id = 0;
  engine::GateQuery gq;
  uint64_t up_deadline = 0;
  bool fd_watched = false, up_watched = false;  // on the loop
};

std::string framed(std::span<const uint8_t> msg) {
  std::string s;
  s.push_back(char(msg.size() >> 8));
  s.push_back(char(msg.size() & 0xff));
  s.append(reinterpret_cast<const char*>(msg.data()), msg.size());
  return s;
}

Result<UniqueFd> bound(int type, const IpAddr& addr) {
  const int fam = addr.is_v4() ? AF_INET : AF_INET6;
  UniqueFd fd(::socket(fam, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  const std::string where = fmt::format("rootful: DNS forwarder on {} ({})",
                                        format_endpoint(addr, 53),
                                        type == SOCK_DGRAM ? "udp" : "tcp");
  if (!fd) return errno_error(where);
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (fam == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = to_sockaddr(addr, 53, &ss);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return errno_error(where);
  if (type == SOCK_STREAM && ::listen(fd.get(), 64) != 0) return errno_error(where);
  return fd;
}

class ForwarderImpl final : public Forwarder, public engine::GateEnv {
 public:
  ForwarderImpl(const ForwarderOptions& o, policy::Policy& pol, observe::Recorder& rec)
      : o_(o), pol_(pol), rec_(rec) {}

  Status bind_all() {
    std::vector<IpAddr> gws{o_.plan.gw4};
    if (o_.plan.ipv6) gws.push_back(o_.plan.gw6);
    for (const IpAddr& g : gws) {
      auto u = bound(SOCK_DGRAM, g);
      if (!u) return u.error();
      auto t = bound(SOCK_STREAM, g);
      if (!t) return t.error();
      udp_.push_back({std::move(u).value(), g});
      tcp_.push_back({std::move(t).value(), g});
    }
    return {};
  }

  // GateEnv
  policy::Policy& policy() override { return pol_; }
  observe::Recorder& recorder() override { return rec_; }
  engine::Stats& stats() override { return st_; }
  bool host_has_ipv6() const override { return o_.host_has_ipv6; }
  bool is_gateway(const IpAddr& ip) const override {
    return o_.plan.is_gateway(ip);
  }
  void learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s) override {
    const uint64_t now = monotonic_ms();
    if (pol_.learn(name, ip, ttl_s, now)) rec_.limit_hit(observe::Limit::NameMap, pol_.max_names());
    if (o_.on_learn) o_.on_learn(name, ip, ttl_s, now);
  }
  // --proxy-dns remote: answered with the synthetic addresses the relay
  // maps back to names; nothing is relayed to the resolver.
  std::optional<size_t> answer_remote(const char* transport, const IpAddr& server,
                                      std::span<const uint8_t> query, const dns::Question& q,
                                      std::span<uint8_t> out) override {
    if (!o_.synth) return std::nullopt;
    return engine::answer_synthetic(*this, *o_.synth, o_.plan.ipv6, transport, server, query, q,
                                    out);
  }
  // An accepted answer may go to the tree (see ForwarderOptions).
  bool answer_ready() { return !o_.answer_ready || o_.answer_ready(); }

  uint64_t queries() const override { return st_.dns_queries; }
  uint64_t uncaptured() const override { return uncaptured_; }

  // Registers the listeners on the loop, and sweep() as its ticker.
  Status attach(Loop& loop) {
    loop_ = &loop;
    for (auto& [fd, addr] : udp_) {
      int f = fd.get();
      IpAddr a = addr;
      if (auto s = loop.add(f, EPOLLIN, [this, f, a](uint32_t) { udp_query(f, a); }); !s) return s;
    }
    for (auto& [fd, addr] : tcp_) {
      int f = fd.get();
      IpAddr a = addr;
      if (auto s = loop.add(f, EPOLLIN, [this, f, a](uint32_t) { tcp_accept(f, a); }); !s) return s;
    }
    loop.add_ticker([this](uint64_t) {
      sweep();  // time-outs, finished connections (after every handler ran)
      return next_deadline();
    });
    return {};
  }

  ~ForwarderImpl() override {
    if (!loop_) return;
    for (auto& [fd, addr] : udp_) loop_->remove(fd.get());
    for (auto& [fd, addr] : tcp_) loop_->remove(fd.get());
    for (auto& p : pending_) loop_->remove(p.up.get());
    for (auto& c : conns_) {
      loop_->remove(c.fd.get());
      if (c.up) loop_->remove(c.up.get());
    }
  }

 private:
  uint64_t next_deadline() const {
    uint64_t next = 0;
    auto earliest = [&next](uint64_t d) { next = next ? std::min(next, d) : d; };
    for (const auto& p : pending_) earliest(p.deadline);
    for (const auto& c : conns_) {
      earliest(c.idle_deadline);
      if (c.up) earliest(c.up_deadline);
    }
    return next;
  }

  // The events a connection's two sockets are watched for, from its state:
  // the tree's socket for reading until it is done and for writing while
  // answers wait; the resolver's for its connect, then for the answer.
  void rearm(std::list<TcpConn>::iterator it) {
    TcpConn& c = *it;
    uint32_t ev = c.client_done ? 0u : uint32_t(EPOLLIN);
    if (!c.out.empty()) ev |= EPOLLOUT;
    if (ev == 0 && c.fd_watched) {
      loop_->remove(c.fd.get());  // level-triggered EPOLLHUP would repeat
      c.fd_watched = false;
    } else if (ev && c.fd_watched) {
      (void)loop_->modify(c.fd.get(), ev);  // watched: fails only without memory
    } else if (ev && !c.fd_watched) {
      c.fd_watched = bool(loop_->add(c.fd.get(), ev, [this, it](uint32_t re) { tcp_client(it, re); }));
    }
    if (c.up) {
      uint32_t uev = c.up_connected ? uint32_t(EPOLLIN) : uint32_t(EPOLLOUT);
      if (c.up_connected && !c.up_out.empty()) uev |= EPOLLOUT;
      if (c.up_watched) (void)loop_->modify(c.up.get(), uev);
      else c.up_watched = bool(loop_->add(c.up.get(), uev, [this, it](uint32_t re) { tcp_upstream(it, re); }));
    }
  }

  // Closes the connection to the resolver (no longer watched first).
  void drop_up(TcpConn& c) {
    if (c.up && c.up_watched) loop_->remove(c.up.get());
    c.up_watched = false;
    c.up.reset();
  }

  void udp_query(int listener, const IpAddr& server) {
    for (int k = 0; k < 64; ++k) {  // a burst at most per turn
      uint8_t buf[kMaxMsg];
      sockaddr_storage from{};
      socklen_t flen = sizeof from;
      ssize_t n = ::recvfrom(listener, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from),
                             &flen);
      if (n < 0) return;
      uint8_t out[4096];
      size_t outn = 0;
      UdpPending p;
      engine::GateAction a = engine::gate_query(*this, "udp", server, o_.resolver.has_value(),
                                                {buf, size_t(n)}, out, &outn, &p.gq);
      if (a == engine::GateAction::Forward && pending_.size() >= kMaxUdpPending) {
        outn = engine::gate_servfail(*this, "udp", server, p.gq, out);
        a = engine::GateAction::Answered;
      }
      if (a == engine::GateAction::Answered) {
        ::sendto(listener, out, outn, 0, reinterpret_cast<sockaddr*>(&from), flen);
        continue;
      }
      if (a == engine::GateAction::Drop) continue;
      p.listener = listener;
      p.server = server;
      p.client = from;
      p.client_len = flen;
      p.client_id = dns::get_id({buf, size_t(n)});
      p.up_id = uint16_t(random_u32());
      dns::set_id({buf, size_t(n)}, p.up_id);
      p.deadline = monotonic_ms() + kQueryTimeoutMs;
      p.up = upstream(SOCK_DGRAM);
      if (!p.up || ::send(p.up.get(), buf, size_t(n), 0) < 0) {
        outn = engine::gate_servfail(*this, "udp", server, p.gq, out);
        ::sendto(listener, out, outn, 0, reinterpret_cast<sockaddr*>(&from), flen);
        continue;
      }
      pending_.push_back(std::move(p));
      auto it = std::prev(pending_.end());
      if (!loop_->add(it->up.get(), EPOLLIN, [this, it](uint32_t) { udp_answer(it); }))
        it->deadline = 0;  // cannot wait for it: SERVFAIL now (sweep)
    }
  }

  void udp_answer(std::list<UdpPending>::iterator it) {
    uint8_t buf[kMaxMsg];
    ssize_t n = ::recv(it->up.get(), buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      it->deadline = 0;  // refused: SERVFAIL now (sweep)
      return;
    }
    std::span<uint8_t> msg{buf, size_t(n)};
    if (dns::get_id(msg) != it->up_id ||
        !engine::gate_answer(*this, "udp", it->server, it->gq, msg)) {
      if (dns::get_id(msg) != it->up_id) ++st_.dns_mismatched;
      return;  // keep waiting for the real answer
    }
    if (!answer_ready()) {
      it->deadline = 0;  // SERVFAIL now (sweep)
      loop_->remove(it->up.get());  // before the fd closes: its slot goes too
      it->up.reset();
      return;
    }
    dns::set_id(msg, it->client_id);
    ::sendto(it->listener, buf, size_t(n), 0, reinterpret_cast<sockaddr*>(&it->client),
             it->client_len);
    loop_->remove(it->up.get());
    pending_.erase(it);
  }

  // A socket connected (or connecting) to the resolver.
  UniqueFd upstream(int type) {
    if (!o_.resolver) return {};
    const IpAddr& r = *o_.resolver;
    UniqueFd fd(::socket(r.is_v4() ? AF_INET : AF_INET6, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return {};
    // --iface: the tree's lookups leave through the pinned interface too.
    if (o_.mark && ::setsockopt(fd.get(), SOL_SOCKET, SO_MARK, &o_.mark, sizeof o_.mark) != 0)
      return {};
    if (o_.host_ports && !bind_in(fd.get(), r.is_v4(), *o_.host_ports)) ++uncaptured_;
    sockaddr_storage ss{};
    socklen_t len = to_sockaddr(r, 53, &ss);
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno != EINPROGRESS)
      return {};
    return fd;
  }

  void tcp_accept(int listener, const IpAddr& server) {
    for (;;) {
      bool shed = false;
      UniqueFd fd = accept_shedding(listener, nullptr, nullptr, spare_, &shed);
      if (!fd) return;  // EAGAIN (or out of descriptors: one shed)
      if (conns_.size() >= kMaxTcpConns) continue;  // closed at once
      TcpConn c;
      c.fd = std::move(fd);
      c.server = server;
      c.idle_deadline = monotonic_ms() + kTcpIdleMs;
      conns_.push_back(std::move(c));
      rearm(std::prev(conns_.end()));
    }
  }

  void tcp_client(std::list<TcpConn>::iterator it, uint32_t re) {
    TcpConn& c = *it;
    if (re & EPOLLOUT) flush(c);
    if (re & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      char buf[16384];
      ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
      if (n > 0) {
        c.in.append(buf, size_t(n));
        c.idle_deadline = monotonic_ms() + kTcpIdleMs;
        if (c.in.size() > 2 * (kMaxMsg + 2)) c.client_done = true, c.in.clear(), c.out.clear();
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        c.client_done = true;
      }
    }
    next_tcp_query(c);
    rearm(it);
  }

  // Takes the next whole query off `c.in` when none is being relayed.
  void next_tcp_query(TcpConn& c) {
    while (!c.up && c.in.size() >= 2) {
      size_t len = (uint8_t(c.in[0]) << 8) | uint8_t(c.in[1]);
      if (c.in.size() < 2 + len) return;
      std::vector<uint8_t> msg(c.in.begin() + 2, c.in.begin() + 2 + long(len));
      c.in.erase(0, 2 + len);
      uint8_t out[4096];
      size_t outn = 0;
      engine::GateAction a = engine::gate_query(*this, "tcp", c.server, o_.resolver.has_value(),
                                                msg, out, &outn, &c.gq);
      if (a == engine::GateAction::Drop) {
        c.client_done = true;  // not DNS: end the stream
        c.in.clear();
        return;
      }
      if (a == engine::GateAction::Answered) {
        c.out += framed({out, outn});
        flush(c);
        continue;
      }
      c.client_id = dns::get_id(msg);
      c.up_id = uint16_t(random_u32());
      dns::set_id(msg, c.up_id);
      c.up = upstream(SOCK_STREAM);
      c.up_connected = false;
      c.up_out = framed(msg);
      c.up_in.clear();
      c.up_deadline = monotonic_ms() + kQueryTimeoutMs;
      if (!c.up) tcp_servfail(c);
    }
  }

  void tcp_servfail(TcpConn& c) {
    uint8_t out[4096];
    size_t outn = engine::gate_servfail(*this, "tcp", c.server, c.gq, out);
    c.out += framed({out, outn});
    drop_up(c);
    flush(c);
  }

  void tcp_upstream(std::list<TcpConn>::iterator it, uint32_t re) {
    tcp_upstream_io(*it, re);
    rearm(it);
  }

  void tcp_upstream_io(TcpConn& c, uint32_t re) {
    if (!c.up_connected && (re & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
      int err = 0;
      socklen_t l = sizeof err;
      ::getsockopt(c.up.get(), SOL_SOCKET, SO_ERROR, &err, &l);
      if (err) return tcp_servfail(c);
      c.up_connected = true;
    }
    if (!c.up_out.empty() && (re & EPOLLOUT)) {
      ssize_t n = ::send(c.up.get(), c.up_out.data(), c.up_out.size(), MSG_NOSIGNAL);
      if (n > 0) c.up_out.erase(0, size_t(n));
      else if (errno != EAGAIN && errno != EINTR) return tcp_servfail(c);
    }
    if (re & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
      char buf[16384];
      ssize_t n = ::recv(c.up.get(), buf, sizeof buf, 0);
      if (n > 0) c.up_in.append(buf, size_t(n));
      else if (n == 0 || (errno != EAGAIN && errno != EINTR)) return tcp_servfail(c);
      if (c.up_in.size() >= 2) {
        size_t len = (uint8_t(c.up_in[0]) << 8) | uint8_t(c.up_in[1]);
        if (c.up_in.size() >= 2 + len) {
          std::vector<uint8_t> msg(c.up_in.begin() + 2, c.up_in.begin() + 2 + long(len));
          if (dns::get_id(msg) != c.up_id ||
              !engine::gate_answer(*this, "tcp", c.server, c.gq, msg) || !answer_ready())
            return tcp_servfail(c);
          dns::set_id(msg, c.client_id);
          c.out += framed(msg);
          drop_up(c);
          flush(c);
          next_tcp_query(c);
        }
      }
    }
  }

  void flush(TcpConn& c) {
    while (!c.out.empty()) {
      ssize_t n = ::send(c.fd.get(), c.out.data(), c.out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        c.out.erase(0, size_t(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      c.out.clear();
      c.client_done = true;
      c.in.clear();
      return;
    }
  }

  void sweep() {
    const uint64_t now = monotonic_ms();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->deadline > now) {
        ++it;
        continue;
      }
      uint8_t out[4096];
      size_t outn = engine::gate_servfail(*this, "udp", it->server, it->gq, out);
      ::sendto(it->listener, out, outn, 0, reinterpret_cast<sockaddr*>(&it->client),
               it->client_len);
      loop_->remove(it->up.get());
      it = pending_.erase(it);
    }
    for (auto it = conns_.begin(); it != conns_.end();) {
      if (it->up && it->up_deadline <= now) {
        tcp_servfail(*it);
        rearm(it);
      }
      bool finished = it->client_done && !it->up && it->out.empty();
      if (finished || it->idle_deadline <= now) {
        drop_up(*it);
        if (it->fd_watched) loop_->remove(it->fd.get());
        it = conns_.erase(it);
      } else {
        ++it;
      }
    }
  }

  ForwarderOptions o_;
  Loop* loop_ = nullptr;
  policy::Policy& pol_;
  observe::Recorder& rec_;
  engine::Stats st_;
  std::vector<std::pair<UniqueFd, IpAddr>> udp_, tcp_;
  std::list<UdpPending> pending_;
  std::list<TcpConn> conns_;
  uint64_t uncaptured_ = 0;
  UniqueFd spare_ = spare_fd();
};

}  // namespace

Result<std::unique_ptr<Forwarder>> Forwarder::open(const ForwarderOptions& o,
                                                   policy::Policy& pol, observe::Recorder& rec,
                                                   Loop& loop) {
  auto f = std::make_unique<ForwarderImpl>(o, pol, rec);
  if (auto s = f->bind_all(); !s) return s.error();
  if (auto s = f->attach(loop); !s) return s.error();
  return std::unique_ptr<Forwarder>(std::move(f));
}

}  // namespace cf::rootful
