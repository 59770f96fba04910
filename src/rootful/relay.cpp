// The TPROXY relay of a rootful run. See relay.hpp.
#include "rootful/relay.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <list>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "common/clock.hpp"
#include "common/text.hpp"
#include "common/unique_fd.hpp"
#include "observe/recorder.hpp"
#include "policy/policy.hpp"
#include "proxy/proxy.hpp"
#include "engine/synth.hpp"
#include "rootful/flow_ids.hpp"

namespace cf::rootful {
namespace {

constexpr uint64_t kProxyTimeoutMs = 15'000;  // as the engine's
constexpr size_t kMaxFlows = 4096;
constexpr size_t kBuf = 16384;
constexpr uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

// Makes the close of a TCP socket a reset (SO_LINGER 0).
void arm_reset(int fd) {
  if (fd < 0) return;
  linger l{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// Closes a TCP socket with a reset.
void reset(UniqueFd& fd) {
  if (!fd) return;
  arm_reset(fd.get());
  fd.reset();
}

// One direction's bytes in flight.
struct Pipe {
  uint8_t data[kBuf];
  size_t off = 0, len = 0;
  bool eof = false;   // the source said EOF
  bool shut = false;  // and it was passed on (SHUT_WR)
  uint64_t bytes = 0;
};

struct Flow {
  uint64_t id = 0;
  FlowKey key;  // in FlowIds, forgotten at the end
  observe::Target target{};
  std::vector<std::string> names;
  uint64_t started_ms = 0, deadline = 0;  // deadline: the handshake's
  UniqueFd tree, up;  // up: the proxy socket, or the TLS pump's socketpair end
  std::unique_ptr<proxy::Handshake> hs;
  std::unique_ptr<proxy::TlsPump> pump;
  bool up_connected = false, relaying = false, dead = false;
  std::optional<uint32_t> synth;  // --proxy-dns remote: the name's entry, held
  uint64_t last_ms = 0;  // relaying: when bytes last moved (or a side ended)
  Pipe to_up, to_tree;
};

Result<UniqueFd> listener(const IpAddr& addr, uint16_t* port) {
  const bool v4 = addr.is_v4();
  const std::string where = fmt::format("rootful: TPROXY relay on {}", addr.str());
  UniqueFd fd(::socket(v4 ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errno_error(where);
  int one = 1;
  // Transparent: takes TPROXY's connections, and binds before the address
  // exists (the veth comes later).
  if (v4 ? ::setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof one)
         : ::setsockopt(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one))
    return errno_error(where + ": IP_TRANSPARENT");
  if (!v4) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  sockaddr_storage ss{};
  socklen_t len = to_sockaddr(addr, 0, &ss);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return errno_error(where);
  if (::listen(fd.get(), 1024) != 0) return errno_error(where);
  len = sizeof ss;
  IpAddr got;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0 ||
      !from_sockaddr(reinterpret_cast<sockaddr*>(&ss), &got, port))
    return errno_error(where + ": getsockname");
  return fd;
}

// Descriptors the relay may use: the soft RLIMIT_NOFILE less 64 for the
// rest of the run (the forwarder, the capture, files).
size_t fd_room() {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  return r.rlim_cur > 64 ? size_t(r.rlim_cur - 64) : 0;
}

class RelayImpl final : public Relay {
 public:
  RelayImpl(const RelayOptions& o, policy::Policy& pol, observe::Recorder& rec, Loop& loop)
      : o_(o), pol_(pol), rec_(rec), loop_(loop) {}

  ~RelayImpl() override {
    close_all();
    for (auto& l : listeners_) loop_.remove(l.get());
  }

  Status open() {
    std::vector<IpAddr> gws{o_.plan.gw4};
    if (o_.plan.ipv6) gws.push_back(o_.plan.gw6);
    for (const IpAddr& g : gws) {
      uint16_t port = 0;
      auto fd = listener(g, &port);
      if (!fd) return fd.error();
      (g.is_v4() ? port4_ : port6_) = port;
      int f = fd->get();
      if (auto s = loop_.add(f, EPOLLIN, [this, f](uint32_t) { accept_all(f); }); !s) return s;
      listeners_.push_back(std::move(fd).value());
    }
    loop_.add_ticker([this](uint64_t now) { return tick(now); });
    return {};
  }

  uint16_t port4() const override { return port4_; }
  uint16_t port6() const override { return port6_; }
  void set_mark(uint32_t mark) override { mark_ = mark; }
  void set_flow_ids(FlowIds* ids) override { ids_ = ids; }
  void set_host_ports(PortRange r) override { host_ports_ = r; }
  void set_synth(engine::SynthMap* synth) override { synth_ = synth; }
  uint64_t uncaptured() const override { return uncaptured_; }

  void close_all() override {
    for (auto it = flows_.begin(); it != flows_.end(); ++it)
      if (!it->dead) end(it, observe::Close::Rst, true);
    flows_.clear();
  }

 private:
  bool from_tree(const IpAddr& ip) const {
    return o_.plan.is_child(ip);
  }

  void accept_all(int lfd) {
    for (;;) {
      sockaddr_storage peer{}, local{};
      socklen_t plen = sizeof peer, llen = sizeof local;
      bool shed = false;
      UniqueFd fd = accept_shedding(lfd, reinterpret_cast<sockaddr*>(&peer), &plen, spare_, &shed);
      if (shed) rec_.limit_hit(observe::Limit::TcpFlows, max_live_);
      if (!fd) return;  // EAGAIN (or out of descriptors: one shed)
      IpAddr pip, dst;
      uint16_t pport = 0, dport = 0;
      if (!from_sockaddr(reinterpret_cast<sockaddr*>(&peer), &pip, &pport) || !from_tree(pip) ||
          ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &llen) != 0 ||
          !from_sockaddr(reinterpret_cast<sockaddr*>(&local), &dst, &dport)) {
        reset(fd);  // not the tree's: TPROXY hands us nothing else
        continue;
      }
      if (live_ >= max_live_) {
        rec_.limit_hit(observe::Limit::TcpFlows, max_live_);
        reset(fd);
        continue;
      }
      start(std::move(fd), pip, pport, dst, dport);
    }
  }

  // Steps 1-3 of relay.hpp for one accepted connection.
  void start(UniqueFd tree, const IpAddr& src, uint16_t sport, const IpAddr& dst, uint16_t dport) {
    const uint64_t now = monotonic_ms();
    // The id the capture gave the tree's frames of this connection, if any
    // (asked as the capture: the relay's verdict is yet to come).
    const FlowKey key{IPPROTO_TCP, src, dst, sport, dport};
    uint64_t id = ids_ ? ids_->of(key, FlowIds::Reader::Capture) : 0;
    if (!id) id = rec_.next_flow_id();
    const observe::Target t{dst, dport};
    // --proxy-dns remote: a synthetic address stands for the name the
    // forwarder answered it for; the proxy is asked for that name.
    std::optional<uint32_t> entry;
    const bool synthetic = synth_ && engine::SynthMap::in_range(dst);
    if (synthetic) entry = synth_->lookup(dst);
    std::vector<std::string> names =
        synthetic ? (entry ? std::vector<std::string>{synth_->name(*entry)} : std::vector<std::string>{})
                  : pol_.names_for(dst, now);
    rec_.connect_attempt(id, t, true, names);
    if (synthetic && !entry) {
      rec_.connect_result(id, t, true, names, "no name for this synthetic address (--proxy-dns remote)");
      if (ids_) ids_->ended(key);
      reset(tree);
      return;
    }
    policy::Verdict v = synthetic ? pol_.judge_named(policy::Proto::Tcp, names.front(), true)
                                  : pol_.judge_addr(policy::Proto::Tcp, dst, true, now);
    if (!v.allow) {
      rec_.policy_violation(id, policy::Proto::Tcp, format_endpoint(dst, dport), dst, dport, v,
                            names);
      rec_.connect_result(id, t, true, names, "denied by policy");
      // Kept in the flow ids: the reset's frames carry the same id.
      if (ids_) {
        ids_->deny(key, v.reason_code);
        ids_->ended(key);
      }
      reset(tree);
      return;
    }
    if (ids_) ids_->of(key, FlowIds::Reader::Confirmed);  // allowed: no violation's id
    const IpAddr& pa = o_.proxy_addr;
    UniqueFd up(::socket(pa.is_v4() ? AF_INET : AF_INET6,
                         SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!up) {
      rec_.connect_result(id, t, true, names, strerror(errno));
      reset(tree);
      return;
    }
    if (mark_ && ::setsockopt(up.get(), SOL_SOCKET, SO_MARK, &mark_, sizeof mark_) != 0) {
      rec_.connect_result(id, t, true, names, strerror(errno));
      reset(tree);
      return;
    }
    if (host_ports_) {
      // wire-egress: a port the capture's filter lets through, named.
      if (uint16_t port = bind_in(up.get(), pa.is_v4(), *host_ports_); port && ids_)
        ids_->host_side({IPPROTO_TCP, port, pa, o_.upstream->uri().port}, key);
      else
        ++uncaptured_;
    }
    int one = 1;
    ::setsockopt(up.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(tree.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    flows_.emplace_back();
    auto it = std::prev(flows_.end());
    ++live_;
    Flow& f = *it;
    f.id = id;
    f.key = key;
    f.target = t;
    f.names = std::move(names);
    f.started_ms = now;
    f.deadline = now + kProxyTimeoutMs;
    f.tree = std::move(tree);
    f.up = std::move(up);
    f.hs = std::make_unique<proxy::Handshake>(*o_.upstream, dst, dport,
                                              entry ? std::string_view(synth_->name(*entry))
                                                    : std::string_view());
    if (entry) {
      synth_->hold(*entry);
      f.synth = entry;
    }
    if (!watch(it, f.tree.get()) || !watch(it, f.up.get())) {
      int err = errno;
      unwatch(f);
      return failed(it, strerror(err));
    }
    sockaddr_storage ss{};
    socklen_t sl = to_sockaddr(pa, o_.upstream->uri().port, &ss);
    if (::connect(f.up.get(), reinterpret_cast<sockaddr*>(&ss), sl) == 0) {
      f.up_connected = true;
      service(it, f.up.get(), EPOLLOUT);
    } else if (errno != EINPROGRESS) {
      proxy_failed(it, errno);
    }
  }

  bool watch(std::list<Flow>::iterator it, int fd) {
    return bool(loop_.add(fd, kEvents, [this, it, fd](uint32_t ev) { service(it, fd, ev); }));
  }

  void unwatch(Flow& f) {
    if (f.tree) loop_.remove(f.tree.get());
    if (f.up) loop_.remove(f.up.get());
    if (f.pump) {
      loop_.remove(f.pump->net_fd());
      loop_.remove(f.pump->local_fd());
    }
  }

  // The proxy failed this connection: logged as the engine does, the tree's
  // connection reset.
  void failed(std::list<Flow>::iterator it, const std::string& why) {
    Flow& f = *it;
    rec_.connect_result(f.id, f.target, true, f.names, why.c_str());
    unwatch(f);
    reset(f.tree);
    f.up.reset();
    f.pump.reset();
    f.hs.reset();
    bury(f);
  }
  void proxy_failed(std::list<Flow>::iterator it, int err) {
    failed(it, fmt::format("proxy {}: {}", o_.upstream->uri().str(), connect_error_text(err)));
  }

  // Every way a flow ends (end(), failed()): its flow id is let go (the
  // same ports later are a new flow, after the FIN's or the reset's
  // frames), its synthetic name released.
  void bury(Flow& f) {
    if (f.dead) return;
    f.dead = true;
    --live_;
    if (ids_) ids_->ended(f.key);
    if (f.synth) synth_->release(*std::exchange(f.synth, std::nullopt));
  }

  // Every readiness event of any of a flow's sockets.
  void service(std::list<Flow>::iterator it, int fd, uint32_t ev) {
    Flow& f = *it;
    if (f.dead) return;
    if (!f.relaying) {
      if (fd != f.up.get()) return;  // the tree's bytes wait in its socket
      if (!f.up_connected) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t l = sizeof err;
        ::getsockopt(f.up.get(), SOL_SOCKET, SO_ERROR, &err, &l);
        if (err) return proxy_failed(it, err);
        f.up_connected = true;
      }
      switch (f.hs->advance(f.up.get())) {
        case proxy::Step::WantRead:
        case proxy::Step::WantWrite: return;
        case proxy::Step::Failed: return failed(it, f.hs->error());
        case proxy::Step::Done: break;
      }
      if (SSL* tls = f.hs->take_tls()) {
        const int net = f.up.get();
        f.pump = std::make_unique<proxy::TlsPump>(tls, std::move(f.up));
        f.up = f.pump->take_translator_end();
        // The proxy socket stays watched (same fd, same handler); the two
        // socketpair ends join it.
        if (!f.up || !watch(it, f.pump->local_fd()) || !watch(it, f.up.get())) {
          loop_.remove(net);
          if (f.pump->local_fd() >= 0) loop_.remove(f.pump->local_fd());
          f.pump.reset();
          f.up.reset();
          return failed(it, "proxy: TLS tunnel: no socketpair or epoll resources");
        }
      }
      f.hs.reset();
      f.relaying = true;
      f.last_ms = monotonic_ms();
      rec_.connect_result(f.id, f.target, true, f.names, nullptr);
    }
    if (f.pump) f.pump->pump();
    relay(it);
  }

  // Moves bytes from `from` into p, and from p to `to`; false on an error.
  static bool move(int from, int to, Pipe& p, bool* progress) {
    if (p.off == p.len && !p.eof) {
      ssize_t n = ::recv(from, p.data, kBuf, MSG_DONTWAIT);
      if (n > 0) {
        p.off = 0;
        p.len = size_t(n);
        *progress = true;
      } else if (n == 0) {
        p.eof = true;
        *progress = true;
      } else if (errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (p.off < p.len) {
      ssize_t n = ::send(to, p.data + p.off, p.len - p.off, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        p.off += size_t(n);
        p.bytes += uint64_t(n);
        *progress = true;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return false;
      }
    }
    if (p.eof && p.off == p.len && !p.shut) {
      ::shutdown(to, SHUT_WR);
      p.shut = true;
      *progress = true;
    }
    return true;
  }

  void relay(std::list<Flow>::iterator it) {
    Flow& f = *it;
    bool moved = false;
    for (bool progress = true; progress;) {
      progress = false;
      if (!move(f.tree.get(), f.up.get(), f.to_up, &progress) ||
          !move(f.up.get(), f.tree.get(), f.to_tree, &progress))
        return end(it, observe::Close::Rst, true);
      if (f.pump && progress) f.pump->pump();
      moved |= progress;
    }
    if (moved) f.last_ms = monotonic_ms();
    if (f.to_up.shut && f.to_tree.shut) end(it, observe::Close::Fin, false);
  }

  // The flow is over: flow_end, sockets closed (the tree's with a reset
  // when `rst`).
  void end(std::list<Flow>::iterator it, observe::Close close, bool rst) {
    Flow& f = *it;
    if (f.dead) return;
    if (f.relaying)  // (one still in its handshake has no flow yet, as in the engine)
      rec_.flow_end(f.id, policy::Proto::Tcp, f.target, f.to_up.bytes, f.to_tree.bytes,
                    monotonic_ms() - f.started_ms, close);
    unwatch(f);
    if (rst) reset(f.tree);
    f.tree.reset();
    f.up.reset();
    f.pump.reset();
    f.hs.reset();
    bury(f);
  }

  // After each batch: handshakes past their time, dead flows freed.
  uint64_t tick(uint64_t now) {
    uint64_t next = 0;
    for (auto it = flows_.begin(); it != flows_.end();) {
      if (!it->dead && !it->relaying && it->deadline <= now)
        failed(it, fmt::format("proxy {}: handshake timed out", o_.upstream->uri().str()));
      if (it->dead) {
        it = flows_.erase(it);
        continue;
      }
      if (it->relaying) {
        // Idle, as the engine's TCP flows: no byte either way for a day,
        // or for five minutes once one side has finished (a half-closed
        // connection nobody finishes); both sides are reset.
        const bool half = it->to_up.eof || it->to_tree.eof;
        const uint64_t idle_at = it->last_ms + (half ? o_.half_closed_idle_ms : o_.idle_ms);
        if (idle_at <= now) {
          arm_reset(it->up.get());  // closed by end(), after unwatch: with a reset
          end(it, observe::Close::Timeout, true);
          it = flows_.erase(it);
          continue;
        }
        if (!next || idle_at < next) next = idle_at;
      } else if (!next || it->deadline < next) {
        next = it->deadline;
      }
      ++it;
    }
    return next;
  }

  RelayOptions o_;
  uint32_t mark_ = 0;
  FlowIds* ids_ = nullptr;
  // Each connection holds two descriptors (four through an https:// proxy:
  // the TLS pump's socketpair): at most kMaxFlows, and never more than the
  // descriptor limit leaves room for (64 kept for the rest of the run);
  // beyond, connections are reset (limit_hit).
  size_t max_live_ = std::min<size_t>(
      kMaxFlows, fd_room() / (o_.upstream->uri().scheme == ProxyScheme::Https ? 4 : 2));
  UniqueFd spare_ = spare_fd();
  std::optional<PortRange> host_ports_;
  uint64_t uncaptured_ = 0;
  engine::SynthMap* synth_ = nullptr;
  policy::Policy& pol_;
  observe::Recorder& rec_;
  Loop& loop_;
  std::vector<UniqueFd> listeners_;
  uint16_t port4_ = 0, port6_ = 0;
  std::list<Flow> flows_;
  size_t live_ = 0;
};

}  // namespace

Result<std::unique_ptr<Relay>> Relay::open(const RelayOptions& o, policy::Policy& pol,
                                           observe::Recorder& rec, Loop& loop) {
  auto r = std::make_unique<RelayImpl>(o, pol, rec, loop);
  if (auto s = r->open(); !s) return s.error();
  return std::unique_ptr<Relay>(std::move(r));
}

}  // namespace cf::rootful
