// DNS on the gateway: queries to gateway:53/udp are answered by the engine.
//
// Theory of operation. A query is parsed (dns::parse_query), logged, and
// judged by name. Denied names, and AAAA queries when the host has no IPv6
// route, get an empty NOERROR answer at once (mode synthetic_empty). Others
// are relayed on one non-blocking UDP socket connected to the upstream
// resolver, reached from the host's namespace (so a resolver on host loopback
// works), under a fresh random transaction id that indexes the pending table
// (65536 slots, no search). The answer gets the child's id back, its A/AAAA
// records teach the policy the name<->address map (TTL + grace), and it goes
// to the child from the gateway address it asked. A TC answer is passed
// through unchanged; the child retries over TCP, which tcp.cpp relays to the
// same resolver. No answer within kDnsTimeoutMs is answered with SERVFAIL.
// Nothing here blocks: a slow resolver delays only its own queries.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "engine/dns_msg.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {
constexpr uint64_t kDnsTimeoutMs = 5'000;
}

std::optional<std::string> Engine::dns_init() {
  dns_by_id.assign(65536, 0);
  dns_rand = random_u32();
  if (!opts.resolver) return std::nullopt;
  int fd = open_dgram(*opts.resolver, 53, 0);
  if (fd < 0) return std::nullopt;  // queries get SERVFAIL; doctor explains
  dns_up.reset(fd);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(Tag::DnsUpstream, 0);
  epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
  return std::nullopt;
}

namespace {

// Sends `len` bytes already at the UDP payload offset of e.tx to the child.
void reply_to_child(Engine& e, const IpAddr& server, const IpAddr& child, uint16_t cport,
                    size_t len) {
  e.send_frame(packet::build_udp(e.tx, e.opts.plan.gw_mac, e.child_mac, server, 53, child, cport,
                                 len));
}

void release_dns(Engine& e, uint32_t slot) {
  e.dns_by_id[e.dns[slot].up_id] = 0;
  e.dns.release(slot);
}

}  // namespace

void Engine::dns_input(const uint8_t* frame, const packet::Parsed& p) {
  std::span<const uint8_t> msg{frame + p.payload_off, p.payload_len};
  auto q = dns::parse_query(msg);
  if (!q) {
    ++st.dropped_malformed;
    return;
  }
  ++st.dns_queries;
  const char* qtype = dns::qtype_name(q->qtype);
  rec.dns_query("udp", p.dst, 53, q->qname, qtype);
  size_t off = packet::payload_offset(p.dst.family, packet::kProtoUdp);
  std::span<uint8_t> out{tx + off, 4096};

  auto verdict = pol.judge_name(q->qname);
  bool empty = !verdict.allow || (q->qtype == dns::kTypeAaaa && !opts.host_has_ipv6);
  if (!verdict.allow)
    rec.policy_violation(0, policy::Proto::Dns, q->qname, std::nullopt, std::nullopt, verdict,
                         {});
  if (empty || !dns_up) {
    size_t n = empty ? dns::build_empty_answer(msg, *q, out)
                     : dns::build_error(msg, *q, dns::kRcodeServFail, out);
    rec.dns_answer("udp", p.dst, 53, q->qname, qtype, false, n, {},
                   empty ? dns::kRcodeNoError : dns::kRcodeServFail);
    reply_to_child(*this, p.dst, p.src, p.sport, n);
    return;
  }
  // A free slot and an unused upstream id (random probe, then linear).
  uint16_t up = uint16_t(dns_rand = dns_rand * 1664525u + 1013904223u);
  for (int i = 0; i < 65536 && dns_by_id[up]; ++i) ++up;
  std::optional<uint32_t> got = dns_by_id[up] ? std::nullopt : dns.alloc();
  if (!got) {
    size_t n = dns::build_error(msg, *q, dns::kRcodeServFail, out);
    rec.dns_answer("udp", p.dst, 53, q->qname, qtype, false, n, {}, dns::kRcodeServFail);
    reply_to_child(*this, p.dst, p.src, p.sport, n);
    return;
  }
  uint32_t slot = *got;
  dns_by_id[up] = uint16_t(slot + 1);
  DnsPending& d = dns[slot];
  d.used = true;
  d.up_id = up;
  d.child_id = q->id;
  d.caddr = p.src;
  d.cport = p.sport;
  d.server = p.dst;
  d.qtype = q->qtype;
  d.qname = q->qname;
  d.query_len = uint16_t(std::min(msg.size(), sizeof d.query));
  std::memcpy(d.query, msg.data(), d.query_len);
  d.deadline = now + kDnsTimeoutMs;
  // Send with the upstream id; the frame buffer is ours to modify.
  uint8_t* m = const_cast<uint8_t*>(msg.data());
  dns::set_id({m, msg.size()}, up);
  send(dns_up.get(), m, msg.size(), MSG_DONTWAIT);
  arm(Tag::DnsUpstream, slot, d.deadline);
}

void Engine::dns_event(uint32_t) {
  size_t off = packet::payload_offset(Family::V6, packet::kProtoUdp);
  size_t off4 = packet::payload_offset(Family::V4, packet::kProtoUdp);
  for (int i = 0; i < 64; ++i) {
    // Read at the IPv6 offset (the larger); move for IPv4 children below.
    ssize_t n = recv(dns_up.get(), tx + off, 65507, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ECONNREFUSED) continue;
      break;
    }
    std::span<uint8_t> msg{tx + off, size_t(n)};
    auto a = dns::parse_response(msg);
    uint16_t slot1 = dns_by_id[dns::get_id(msg)];
    if (!slot1 || !a) continue;  // late, unknown or malformed: dropped
    uint32_t slot = slot1 - 1u;
    DnsPending& d = dns[slot];
    std::vector<IpAddr> ips;
    ips.reserve(a->n_addrs);
    for (size_t k = 0; k < a->n_addrs; ++k) {
      ips.push_back(a->addrs[k].ip);
      for (const auto& name : a->names) pol.learn(name, a->addrs[k].ip, a->addrs[k].ttl, now);
    }
    dns::set_id(msg, d.child_id);
    rec.dns_answer("udp", d.server, 53, d.qname, dns::qtype_name(d.qtype), true, size_t(n), ips,
                   a->rcode);
    if (d.caddr.is_v4()) std::memmove(tx + off4, tx + off, size_t(n));
    reply_to_child(*this, d.server, d.caddr, d.cport, size_t(n));
    release_dns(*this, slot);
  }
}

void Engine::dns_timer(uint32_t slot, uint64_t when) {
  DnsPending& d = dns[slot];
  if (!d.used || d.deadline != when) return;
  if (auto q = dns::parse_query({d.query, d.query_len})) {
    size_t off = packet::payload_offset(d.caddr.family, packet::kProtoUdp);
    size_t n =
        dns::build_error({d.query, d.query_len}, *q, dns::kRcodeServFail, {tx + off, 4096});
    rec.dns_answer("udp", d.server, 53, d.qname, dns::qtype_name(d.qtype), false, n, {},
                   dns::kRcodeServFail);
    reply_to_child(*this, d.server, d.caddr, d.cport, n);
  }
  release_dns(*this, slot);
}

}  // namespace cf::engine
