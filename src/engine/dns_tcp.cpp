// DNS over TCP on the gateway (RFC 7766 framing: a 2-byte length per message).
//
// Theory of operation. A child connection to gateway:53/tcp is accepted by the
// TCP translator like any other, but its "host socket" is one end of a
// socketpair; the other end belongs to a DnsStream here. The stream reads the
// child's framed queries, logs and judges each by name exactly like the UDP
// relay (denied names and AAAA without an IPv6 route get an empty answer
// written straight back), and forwards the rest over one TCP connection to the
// upstream resolver, made from the host's namespace. Answers are parsed to
// teach the policy the name<->address map, logged, and framed back to the
// child. Answers may come back out of order, which RFC 7766 allows. So a
// name denied over UDP is denied over TCP too: the TC-then-TCP retry cannot
// be used to learn a denied name. Buffers are bounded (kMaxBuffered); a
// stream that exceeds them is closed.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "engine/dns_msg.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {

constexpr size_t kMaxBuffered = 256 * 1024;

void frame_msg(std::string& out, const uint8_t* msg, size_t len) {
  out.push_back(char(len >> 8));
  out.push_back(char(len & 0xff));
  out.append(reinterpret_cast<const char*>(msg), len);
}

// Reads what is available into buf (bounded). Returns false on EOF.
bool read_into(int fd, std::string& buf, bool* progress, bool* error) {
  char tmp[16384];
  for (;;) {
    if (buf.size() >= kMaxBuffered) return true;
    ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
    if (n > 0) {
      buf.append(tmp, size_t(n));
      *progress = true;
      continue;
    }
    if (n == 0) return false;
    if (errno != EAGAIN && errno != EINTR) *error = true;
    return true;
  }
}

void write_from(int fd, std::string& buf, bool* progress, bool* error) {
  while (!buf.empty()) {
    ssize_t n = send(fd, buf.data(), buf.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      buf.erase(0, size_t(n));
      *progress = true;
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) *error = true;
    return;
  }
}

}  // namespace

struct DnsStreamOps {
  Engine& e;
  TcpFlow& f;
  DnsStream& s;

  void answer_locally(const std::span<const uint8_t> msg, const dns::Question& q, bool empty) {
    uint8_t out[4096];
    size_t n = empty ? dns::build_empty_answer(msg, q, out)
                     : dns::build_error(msg, q, dns::kRcodeServFail, out);
    e.rec.dns_answer("tcp", f.key.raddr, 53, q.qname, dns::qtype_name(q.qtype), false, n, {},
                     empty ? dns::kRcodeNoError : dns::kRcodeServFail);
    frame_msg(s.to_child, out, n);
  }

  void query(const std::span<const uint8_t> msg) {
    auto q = dns::parse_query(msg);
    if (!q) {
      ++e.st.dropped_malformed;
      return;
    }
    ++e.st.dns_queries;
    e.rec.dns_query("tcp", f.key.raddr, 53, q->qname, dns::qtype_name(q->qtype));
    auto v = e.pol.judge_name(q->qname);
    if (!v.allow) {
      e.rec.policy_violation(0, policy::Proto::Dns, q->qname, std::nullopt, std::nullopt, v, {});
      answer_locally(msg, *q, true);
      return;
    }
    if (q->qtype == dns::kTypeAaaa && !e.opts.host_has_ipv6) {
      answer_locally(msg, *q, true);
      return;
    }
    if (s.up_failed || !s.up) {
      answer_locally(msg, *q, false);
      return;
    }
    frame_msg(s.to_up, msg.data(), msg.size());
    s.pending.push_back({q->id, q->qtype, q->qname, std::vector<uint8_t>(msg.begin(), msg.end())});
  }

  void answer(const std::span<const uint8_t> msg) {
    auto a = dns::parse_response(msg);
    if (!a) {
      ++e.st.dropped_malformed;
      return;
    }
    auto it = std::find_if(s.pending.begin(), s.pending.end(),
                           [&](const DnsStream::Pending& p) { return p.id == a->id; });
    if (it == s.pending.end()) return;
    std::vector<IpAddr> ips;
    for (size_t k = 0; k < a->n_addrs; ++k) {
      ips.push_back(a->addrs[k].ip);
      for (const auto& name : a->names) e.pol.learn(name, a->addrs[k].ip, a->addrs[k].ttl, e.now);
    }
    e.rec.dns_answer("tcp", f.key.raddr, 53, it->qname, dns::qtype_name(it->qtype), true,
                     msg.size(), ips, a->rcode);
    s.pending.erase(it);
    frame_msg(s.to_child, msg.data(), msg.size());
  }

  // Splits complete framed messages off the front of buf.
  template <typename F>
  void each_message(std::string& buf, F fn) {
    size_t off = 0;
    while (buf.size() - off >= 2) {
      size_t len = size_t(uint8_t(buf[off])) << 8 | uint8_t(buf[off + 1]);
      if (buf.size() - off - 2 < len) break;
      fn(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()) + off + 2, len));
      off += 2 + len;
    }
    buf.erase(0, off);
  }

  void fail_pending() {
    for (auto& p : s.pending) {
      if (auto q = dns::parse_query(p.query)) answer_locally(p.query, *q, false);
    }
    s.pending.clear();
  }

  // Moves what can move. Returns false when the stream must be torn down.
  bool pump() {
    bool progress = true, error = false;
    while (progress && !error) {
      progress = false;
      if (!s.local_eof && !read_into(s.local.get(), s.from_child, &progress, &error)) {
        s.local_eof = true;
        progress = true;
      }
      each_message(s.from_child, [&](auto m) { query(m); });
      if (s.up && !s.up_connecting && !s.up_failed) {
        bool up_err = false;
        write_from(s.up.get(), s.to_up, &progress, &up_err);
        if (!s.up_eof && !read_into(s.up.get(), s.from_up, &progress, &up_err)) {
          s.up_eof = true;
          progress = true;
        }
        each_message(s.from_up, [&](auto m) { answer(m); });
        if (up_err || (s.up_eof && !s.pending.empty())) {
          s.up_failed = true;
          fail_pending();
          progress = true;
        }
        if (s.local_eof && s.to_up.empty() && !s.shut_up) {
          shutdown(s.up.get(), SHUT_WR);
          s.shut_up = true;
        }
      }
      write_from(s.local.get(), s.to_child, &progress, &error);
      if (s.from_child.size() >= kMaxBuffered || s.from_up.size() >= kMaxBuffered) error = true;
    }
    bool upstream_done = !s.up || s.up_failed || s.up_eof || s.shut_up;
    if (s.local_eof && s.pending.empty() && s.to_child.empty() && upstream_done &&
        !s.shut_local) {
      shutdown(s.local.get(), SHUT_WR);
      s.shut_local = true;
    }
    return !error;
  }
};

// Sets up the stream for a new gateway:53/tcp flow; returns the translator's
// end of the socketpair (invalid on failure).
UniqueFd dns_stream_open(Engine& e, TcpFlow& f, uint32_t slot) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return {};
  f.dns = std::make_unique<DnsStream>();
  DnsStream& s = *f.dns;
  s.local.reset(sv[0]);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = tag(Tag::DnsStream, slot, e.tcp.gen(slot));
  epoll_ctl(e.ep.get(), EPOLL_CTL_ADD, s.local.get(), &ev);
  if (e.opts.resolver) {
    const IpAddr& r = *e.opts.resolver;
    int fd = socket(r.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd >= 0) {
      s.up.reset(fd);
      epoll_ctl(e.ep.get(), EPOLL_CTL_ADD, fd, &ev);
      sockaddr_storage ss;
      socklen_t sl = to_sockaddr(r, 53, &ss);
      if (connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) == 0) s.up_connecting = false;
      else if (errno == EINPROGRESS) s.up_connecting = true;
      else s.up_failed = true;
    }
  }
  return UniqueFd(sv[1]);
}

void dns_stream_close(Engine& e, DnsStream& s) {
  if (s.local) epoll_ctl(e.ep.get(), EPOLL_CTL_DEL, s.local.get(), nullptr);
  if (s.up) epoll_ctl(e.ep.get(), EPOLL_CTL_DEL, s.up.get(), nullptr);
}

void Engine::dns_stream_event(uint32_t slot) {
  TcpFlow& f = tcp[slot];
  if (!f.dns) return;
  DnsStream& s = *f.dns;
  if (s.up && s.up_connecting) {
    int err = 0;
    socklen_t sl = sizeof err;
    if (getsockopt(s.up.get(), SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err != 0) {
      s.up_connecting = false;
      s.up_failed = true;
    } else {
      // Writable once connected; a connect still in progress reports nothing.
      sockaddr_storage peer;
      socklen_t pl = sizeof peer;
      if (getpeername(s.up.get(), reinterpret_cast<sockaddr*>(&peer), &pl) == 0)
        s.up_connecting = false;
    }
  }
  DnsStreamOps ops{*this, f, s};
  if (s.up_failed) ops.fail_pending();
  if (!ops.pump()) {
    // Oversized or broken stream: the translator end sees EOF.
    shutdown(s.local.get(), SHUT_RDWR);
  }
}

void Engine::dns_stream_kick(TcpFlow& f) {
  if (!f.dns) return;
  DnsStreamOps ops{*this, f, *f.dns};
  if (!ops.pump()) shutdown(f.dns->local.get(), SHUT_RDWR);
}

}  // namespace cf::engine
