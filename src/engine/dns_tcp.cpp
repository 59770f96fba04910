// DNS over TCP to port 53 (RFC 7766 framing: a 2-byte length per message).
//
// Theory of operation. A child connection to port 53, at the gateway or at
// any address the policy lets the tree reach, is accepted by the TCP
// translator like any other, but its "host socket" is one end of a
// socketpair; the other end belongs to a DnsStream here. A stream to the
// gateway relays to the upstream resolver and is accepted at once; a stream
// to another address (a *direct* one) relays to that address, and the
// translator answers the child's SYN only once that address accepted the
// connection (dns_stream_connected), so a closed port 53 stays closed. The stream reads the
// child's framed queries, logs and judges each by name exactly like the UDP
// relay (denied names and AAAA without an IPv6 route get an empty answer
// written straight back), and forwards the rest over one TCP connection to the
// upstream resolver, made from the host's namespace. Answers are parsed to
// teach the policy the name<->address map, logged, and framed back to the
// child. Answers may come back out of order, which RFC 7766 allows. Queries
// and answers go through the same DNS gate as UDP (dns_gate.hpp), so a name
// denied over UDP is denied over TCP too: the TC-then-TCP retry cannot be
// used to learn a denied name. Under --proxy-dns remote there is no upstream
// connection: the gate answers every query itself.
//
// Memory is bounded by back-pressure, never by buffering (docs/security.md,
// "Limits"). Each direction of a stream holds at most Limits::dns_tcp_buffer
// bytes (at least one largest message): towards the upstream what was read
// from the child and what waits for the upstream socket, towards the child
// what was read from the upstream and what waits for the child. The child's
// queries are read only while that leaves room for an answer made here and
// fewer than Limits::dns_tcp_in_flight queries are pending, the upstream's
// answers only while the child's direction has room. A tree that streams
// queries and never reads the answers stops being read: the translator's
// window to it shuts and its writes block, as with a real resolver, and the
// stream costs no CPU while it waits. Each time a stream starts waiting that
// way is a limit_hit (dns_tcp_buffer or dns_tcp_in_flight). At most
// Limits::dns_tcp_streams streams are open at once (tcp.cpp refuses more with
// a RST), and a stream's buffers are freed when it closes.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "capture/wire.hpp"
#include "engine/dns_msg.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {

// The largest framed DNS message: a 2-byte length and 65535 bytes.
constexpr size_t kMaxFramed = 2 + 65535;
// The most an answer made here (FORMERR, empty NOERROR, SERVFAIL, a
// synthetic address) can take, framed.
constexpr size_t kMaxLocalAnswer = 2 + 4096;

// Makes room for `need` bytes in a stream buffer. A buffer doubles as it
// fills but never past `bound` (what its direction may hold, plus one answer
// made here), so a stream's memory is what its bounds say, not twice that.
void grow(std::string& buf, size_t need, size_t bound) {
  if (need > buf.capacity())
    buf.reserve(std::max(need, std::min(bound, 2 * buf.capacity())));
}

void frame_msg(std::string& out, const uint8_t* msg, size_t len, size_t bound) {
  grow(out, out.size() + 2 + len, bound);
  out.push_back(char(len >> 8));
  out.push_back(char(len & 0xff));
  out.append(reinterpret_cast<const char*>(msg), len);
}

// Reads what is available into buf while it holds fewer than `limit` bytes.
// Returns false on EOF.
bool read_into(int fd, std::string& buf, size_t limit, size_t bound, bool* progress,
               bool* error) {
  char tmp[16384];
  while (buf.size() < limit) {
    ssize_t n = recv(fd, tmp, std::min(sizeof tmp, limit - buf.size()), MSG_DONTWAIT);
    if (n > 0) {
      grow(buf, buf.size() + size_t(n), bound);
      buf.append(tmp, size_t(n));
      *progress = true;
      continue;
    }
    if (n == 0) return false;
    if (errno != EAGAIN && errno != EINTR) *error = true;
    return true;
  }
  return true;
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
  using Pending = DnsStream::Pending;
  Engine& e;
  TcpFlow& f;
  DnsStream& s;

  void query(const std::span<const uint8_t> msg) {
    uint8_t out[4096];
    size_t n = 0;
    Pending p;
    GateAction a = gate_query(e, "tcp", f.key.raddr, s.has_upstream, msg, out, &n, &p.gq);
    if (a == GateAction::Drop) return;
    if (a == GateAction::Forward && (s.up_failed || !s.up)) {
      n = gate_servfail(e, "tcp", f.key.raddr, p.gq, out);
      a = GateAction::Answered;
    }
    if (a == GateAction::Answered) {
      if (n) frame_msg(s.to_child, out, n, bound());
      return;
    }
    p.id = p.gq.q.id;
    frame_msg(s.to_up, msg.data(), msg.size(), bound());
    s.pending.push_back(std::move(p));
  }

  // The child picks the ids and may reuse one while it is pending: the
  // answer goes to the pending query with that id whose question it answers.
  void answer(const std::span<const uint8_t> msg) {
    uint16_t id = dns::get_id(msg);
    bool seen = false;
    for (auto it = s.pending.begin(); it != s.pending.end(); ++it) {
      if (it->id != id) continue;
      seen = true;
      if (!gate_answer(e, "tcp", f.key.raddr, it->gq, msg)) continue;
      s.pending.erase(it);
      frame_msg(s.to_child, msg.data(), msg.size(), bound());
      return;
    }
    if (!seen) ++e.st.dns_mismatched;
  }

  // Bytes each direction may hold (Limits::dns_tcp_buffer, at least one
  // largest message).
  size_t cap() const { return std::max<size_t>(e.opts.limits.dns_tcp_buffer, kMaxFramed); }
  // What a buffer may grow to (see grow()).
  size_t bound() const { return cap() + kMaxLocalAnswer; }
  // What a direction has left for its read buffer beside `other` (the
  // direction's other buffer, which answers made here can push past cap()).
  size_t room_beside(const std::string& other) const {
    return other.size() < cap() ? cap() - other.size() : 0;
  }
  size_t up_bytes() const { return s.from_child.size() + s.to_up.size(); }
  size_t down_bytes() const { return s.from_up.size() + s.to_child.size(); }
  bool in_flight_room() const { return s.pending.size() < e.opts.limits.dns_tcp_in_flight; }
  bool buffer_room() const { return down_bytes() + kMaxLocalAnswer <= cap(); }
  // Room to take another query from the child: a slot for it upstream, and
  // room for the answer this stream may have to make for it.
  bool child_room() const { return in_flight_room() && buffer_room(); }

  // Splits complete framed messages off the front of buf while room() holds
  // (moving a query upstream or an answer to the child keeps a direction's
  // bytes as they were; an answer made here is what buffer_room saves room for).
  template <typename Room, typename F>
  void each_message(std::string& buf, Room room, F fn) {
    size_t off = 0;
    while (buf.size() - off >= 2 && room()) {
      size_t len = size_t(uint8_t(buf[off])) << 8 | uint8_t(buf[off + 1]);
      if (buf.size() - off - 2 < len) break;
      fn(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(buf.data()) + off + 2, len));
      off += 2 + len;
    }
    buf.erase(0, off);
  }

  void fail_pending() {
    uint8_t out[4096];
    for (auto& p : s.pending) {
      size_t n = gate_servfail(e, "tcp", f.key.raddr, p.gq, out);
      if (n) frame_msg(s.to_child, out, n, bound());
    }
    s.pending.clear();
  }

  // Moves what can move. Returns false when the stream must be torn down.
  bool pump() {
    bool progress = true, error = false;
    while (progress && !error) {
      progress = false;
      if (!s.local_eof && child_room() &&
          !read_into(s.local.get(), s.from_child, room_beside(s.to_up), bound(), &progress,
                     &error)) {
        s.local_eof = true;
        progress = true;
      }
      each_message(s.from_child, [&] { return child_room(); }, [&](auto m) { query(m); });
      if (s.up && !s.up_connecting && !s.up_failed) {
        bool up_err = false;
        write_from(s.up.get(), s.to_up, &progress, &up_err);
        if (!s.up_eof &&
            !read_into(s.up.get(), s.from_up, room_beside(s.to_child), bound(), &progress,
                       &up_err)) {
          s.up_eof = true;
          progress = true;
        }
        each_message(s.from_up, [] { return true; }, [&](auto m) { answer(m); });
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
    }
    bool upstream_done = !s.up || s.up_failed || s.up_eof || s.shut_up;
    if (s.local_eof && s.pending.empty() && s.to_child.empty() && upstream_done &&
        !s.shut_local) {
      shutdown(s.local.get(), SHUT_WR);
      s.shut_local = true;
    }
    count_pauses();
    return !error;
  }

  // Each time the stream stops reading the child because of one of its
  // bounds is one limit_hit.
  void count_pauses() {
    const Limits& lim = e.opts.limits;
    bool in_flight = !s.local_eof && !in_flight_room();
    bool buffer = !s.local_eof && !in_flight && (!buffer_room() || up_bytes() >= cap());
    if (in_flight && !s.paused_in_flight)
      e.limit_hit(observe::Limit::DnsTcpInFlight, lim.dns_tcp_in_flight);
    if (buffer && !s.paused_buffer) e.limit_hit(observe::Limit::DnsTcpBuffer, cap());
    s.paused_in_flight = in_flight;
    s.paused_buffer = buffer;
  }
};

// Sets up the stream for a new gateway:53/tcp flow; returns the translator's
// end of the socketpair (invalid on failure: no socketpair, or no epoll
// resources, in which case nothing stays watched and f.dns is gone).
UniqueFd dns_stream_open(Engine& e, TcpFlow& f, uint32_t slot, const IpAddr* upstream) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) return {};
  UniqueFd translator_end(sv[1]);
  f.dns = std::make_unique<DnsStream>();
  DnsStream& s = *f.dns;
  s.local.reset(sv[0]);
  const uint32_t events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  const uint64_t t = tag(Tag::DnsStream, slot, e.tcp.gen(slot));
  if (!e.watch(s.local.get(), events, t)) {
    f.dns.reset();
    return {};
  }
  s.has_upstream = upstream != nullptr;
  if (upstream && !e.opts.proxy_dns_remote) {
    const IpAddr& r = *upstream;
    int fd = socket(r.is_v4() ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    0);
    if (fd >= 0) {
      s.up.reset(fd);
      if (!e.watch(fd, events, t)) {
        e.unwatch(s.local.get());
        f.dns.reset();
        return {};
      }
      if (e.opts.wire) e.opts.wire->track(fd, IPPROTO_TCP, r, 53, 0);
      sockaddr_storage ss;
      socklen_t sl = to_sockaddr(r, 53, &ss);
      if (connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) == 0) {
        s.up_connecting = false;
      } else if (errno == EINPROGRESS) {
        s.up_connecting = true;
      } else {
        s.up_failed = true;
        s.up_error = errno;
      }
    } else {
      s.up_failed = true;
      s.up_error = errno;
    }
  }
  s.watched = true;
  ++e.dns_streams;
  return translator_end;
}

// Called when the flow finishes (maybe_finish) and again when its slot is
// released: only the first call unwatches.
void dns_stream_close(Engine& e, DnsStream& s) {
  if (!s.watched) return;
  e.unwatch(s.local.get());
  if (s.up) e.unwatch(s.up.get());
  s.watched = false;
  --e.dns_streams;
  // The slot may linger (Closing) for a while: give its memory back now.
  std::string().swap(s.from_child);
  std::string().swap(s.to_up);
  std::string().swap(s.from_up);
  std::string().swap(s.to_child);
  std::vector<DnsStream::Pending>().swap(s.pending);
}

void Engine::dns_stream_event(uint32_t slot) {
  TcpFlow& f = tcp[slot];
  if (!f.dns || !f.dns->watched) return;  // (an event queued before it closed)
  DnsStream& s = *f.dns;
  if (s.up && s.up_connecting) {
    int err = 0;
    socklen_t sl = sizeof err;
    if (getsockopt(s.up.get(), SOL_SOCKET, SO_ERROR, &err, &sl) == 0 && err != 0) {
      s.up_connecting = false;
      s.up_failed = true;
      s.up_error = err;
    } else {
      // Writable once connected; a connect still in progress reports nothing.
      sockaddr_storage peer;
      socklen_t pl = sizeof peer;
      if (getpeername(s.up.get(), reinterpret_cast<sockaddr*>(&peer), &pl) == 0)
        s.up_connecting = false;
    }
  }
  if (f.state == TcpState::Connecting) {
    // A direct stream waits for its resolver before the child's SYN is
    // answered; the flow may be released here (the connect failed).
    if (!s.up_connecting) dns_stream_connected(slot, s.up_failed ? s.up_error : 0);
    return;
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
