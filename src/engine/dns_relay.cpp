// DNS over UDP: queries to port 53 are answered by the engine, at the
// gateway and at any other address.
//
// Theory of operation. A query to the gateway is relayed to the upstream
// resolver; a query to any other address (udp.cpp sends it here once that
// address was judged like any UDP flow's and allowed) is relayed to that
// address, the server the tree asked. Either way the answer comes back from
// the address the tree asked. Every query goes through the DNS gate (dns_gate.hpp),
// which logs and judges it and either answers it at once (denied names,
// AAAA without an IPv6 route, more than one question, no resolver) or lets
// it be forwarded. A forwarded query gets its own UDP socket connected to the
// upstream resolver, so it leaves from a fresh port that the kernel picks at
// random, under a fresh random transaction id; both must come back, and the
// gate checks that the answer's question is the query's, before the answer is
// accepted. An accepted answer gets the child's id back and goes to the child
// from the gateway address it asked; a TC answer is passed through unchanged
// and the child retries over TCP (dns_tcp.cpp). No answer within
// kDnsTimeoutMs, or the resolver's port unreachable, is answered with
// SERVFAIL. At most Limits::dns_in_flight queries are pending, direct and
// gateway queries together; one beyond
// that is still judged and logged, and answered SERVFAIL at once (counted,
// limit_hit dns_in_flight): a prompt failure the resolver retries, where a
// dropped query would cost it a time-out. Nothing here blocks: a slow
// resolver delays only its own queries.
#include <netinet/in.h>
#include <sys/socket.h>

#include <unistd.h>

#include <cerrno>

#include "capture/wire.hpp"
#include "engine/dns_msg.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {
constexpr uint64_t kDnsTimeoutMs = 5'000;
}

namespace {

// Sends `len` bytes already at the UDP payload offset of e.tx to the child.
void reply_to_child(Engine& e, const IpAddr& server, const IpAddr& child, uint16_t cport,
                    size_t len) {
  e.send_frame(packet::build_udp(e.tx, e.opts.plan.gw_mac, e.child_mac, server, 53, child, cport,
                                 len));
}

// The query's own upstream socket: a UDP socket connected to the resolver,
// so the kernel picks a random ephemeral port and drops datagrams from any
// other address; a port unreachable from the resolver shows as ECONNREFUSED
// on recv. Kept to the fewest syscalls (socket, connect; epoll_ctl by the
// caller; the close also removes it from epoll), since every relayed query
// pays for it.
int open_upstream(const IpAddr& resolver, capture::WireSet* wire) {
  int fd = socket(resolver.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  0);
  if (fd < 0) return -1;
  if (wire) wire->track(fd, IPPROTO_UDP, resolver, 53, 0);
  sockaddr_storage ss;
  socklen_t sl = to_sockaddr(resolver, 53, &ss);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void release_dns(Engine& e, uint32_t slot) {
  e.dns.release(slot);  // closes the socket, which leaves the epoll set with it
}

void servfail(Engine& e, uint32_t slot) {
  DnsPending& d = e.dns[slot];
  size_t off = packet::payload_offset(d.caddr.family, packet::kProtoUdp);
  // (The gate kept the query as the child sent it: the answer has its id.)
  size_t n = gate_servfail(e, "udp", d.server, d.gq, {e.tx + off, 4096});
  if (n) reply_to_child(e, d.server, d.caddr, d.cport, n);
  release_dns(e, slot);
}

}  // namespace

void Engine::dns_input(const uint8_t* frame, const packet::Parsed& p, const IpAddr* upstream) {
  std::span<const uint8_t> msg{frame + p.payload_off, p.payload_len};
  size_t off = packet::payload_offset(p.dst.family, packet::kProtoUdp);
  size_t n = 0;
  auto slot = dns.alloc();
  if (!slot) {
    // Too many pending (Limits::dns_in_flight): judge and log as usual, but
    // answer SERVFAIL at once, so the child's resolver moves on instead of
    // waiting for its own time-out; nothing is queued.
    limit_hit(observe::Limit::DnsInFlight, dns.cap());
    GateQuery gq;
    GateAction a =
        gate_query(*this, "udp", p.dst, upstream != nullptr, msg, {tx + off, 4096}, &n, &gq);
    if (a == GateAction::Forward) n = gate_servfail(*this, "udp", p.dst, gq, {tx + off, 4096});
    if (a != GateAction::Drop && n) reply_to_child(*this, p.dst, p.src, p.sport, n);
    return;
  }
  DnsPending& d = dns[*slot];
  GateAction a =
      gate_query(*this, "udp", p.dst, upstream != nullptr, msg, {tx + off, 4096}, &n, &d.gq);
  if (a != GateAction::Forward) {
    dns.release(*slot);
    if (a == GateAction::Answered && n) reply_to_child(*this, p.dst, p.src, p.sport, n);
    return;
  }
  d.used = true;
  d.child_id = d.gq.q.id;
  d.caddr = p.src;
  d.cport = p.sport;
  d.server = p.dst;
  d.deadline = now + kDnsTimeoutMs;
  d.up_id = random_id();
  d.sock.reset(open_upstream(*upstream, opts.wire));
  if (!d.sock) {
    servfail(*this, *slot);
    return;
  }
  if (!watch(d.sock.get(), EPOLLIN, tag(Tag::DnsUpstream, *slot, dns.gen(*slot)))) {
    servfail(*this, *slot);  // no epoll resources (counted)
    return;
  }
  // Send with the upstream id; the frame buffer is ours to modify.
  uint8_t* m = const_cast<uint8_t*>(msg.data());
  dns::set_id({m, msg.size()}, d.up_id);
  if (send(d.sock.get(), m, msg.size(), MSG_DONTWAIT) < 0) {
    servfail(*this, *slot);
    return;
  }
  arm(Tag::DnsUpstream, *slot, d.deadline);
}

void Engine::dns_event(uint32_t slot) {
  DnsPending& d = dns[slot];
  if (!d.used) return;
  size_t off = packet::payload_offset(Family::V6, packet::kProtoUdp);
  size_t off4 = packet::payload_offset(Family::V4, packet::kProtoUdp);
  for (int i = 0; i < 16; ++i) {
    // Read at the IPv6 offset (the larger); move for IPv4 children below.
    ssize_t n = recv(d.sock.get(), tx + off, 65507, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ECONNREFUSED) servfail(*this, slot);  // nothing listens on the resolver's port
      return;
    }
    std::span<uint8_t> msg{tx + off, size_t(n)};
    if (dns::get_id(msg) != d.up_id) {
      ++st.dns_mismatched;
      continue;
    }
    if (!gate_answer(*this, "udp", d.server, d.gq, msg)) continue;
    dns::set_id(msg, d.child_id);
    if (d.caddr.is_v4()) std::memmove(tx + off4, tx + off, size_t(n));
    reply_to_child(*this, d.server, d.caddr, d.cport, size_t(n));
    release_dns(*this, slot);
    return;
  }
}

void Engine::dns_timer(uint32_t slot, uint64_t when) {
  DnsPending& d = dns[slot];
  if (!d.used || d.deadline != when) return;
  servfail(*this, slot);
}

}  // namespace cf::engine
