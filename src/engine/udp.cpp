// UDP: one connected host socket per (child address:port, remote address:port).
//
// Theory of operation. The first datagram of a pair is judged by the policy,
// opens a socket connected to the remote (IP_RECVERR / IPV6_RECVERR on) and
// logs flow_start; every later datagram is sent on it with the child's TTL /
// hop limit (set only when it changes). Any number of replies flow back as
// frames from the remote to the child. ICMP errors that the kernel queues on
// the socket (port unreachable, TTL exceeded, ...) become ICMP errors to the
// child from the offending address, quoting a header rebuilt from the child's
// last IP header and the datagram the error queue returns, so traceroute sees
// every hop. A flow idle for kUdpIdleMs is closed (flow_end, close=timeout).
// A denied pair is remembered as a flow without a socket, so it is judged and
// logged once; its datagrams get ICMP administratively prohibited.
// At most udp.cap() flows; beyond that new pairs are dropped and counted.
#include <time.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {
constexpr uint64_t kUdpIdleMs = 60'000;

void set_ttl(int fd, const IpAddr& dst, uint8_t ttl) {
  int v = ttl;
  if (dst.is_v4()) setsockopt(fd, IPPROTO_IP, IP_TTL, &v, sizeof v);
  else setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v);
}
}  // namespace

// Opens a connected datagram socket with error reporting; -1 on failure.
int open_dgram(const IpAddr& dst, uint16_t port, int proto) {
  int fd = socket(dst.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  proto);
  if (fd < 0) return -1;
  int one = 1;
  if (dst.is_v4()) setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
  else setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
  sockaddr_storage ss;
  socklen_t sl = to_sockaddr(dst, port, &ss);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), sl) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Sends one datagram. A socket with IP_RECVERR keeps the last ICMP error in
// sk_err, and the next send fails with it (sock_alloc_send_skb reports
// pending errors) without sending: that error was already delivered through
// the error queue, so the send is retried once.
ssize_t send_datagram(int fd, const uint8_t* data, size_t len) {
  ssize_t n = send(fd, data, len, MSG_DONTWAIT);
  if (n < 0 && (errno == EHOSTUNREACH || errno == ENETUNREACH || errno == ECONNREFUSED ||
                errno == EHOSTDOWN || errno == ENOPROTOOPT || errno == EPROTO))
    n = send(fd, data, len, MSG_DONTWAIT);
  return n;
}

// Reads one queued ICMP error; fills type/code/offender and the original
// datagram payload. Returns the payload length, or -1 when nothing is queued.
ssize_t read_icmp_error(int fd, uint8_t* data, size_t cap, uint8_t* type, uint8_t* code,
                        IpAddr* offender) {
  char ctrl[512];
  iovec iov{data, cap};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctrl;
  mh.msg_controllen = sizeof ctrl;
  ssize_t n = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
  if (n < 0) return -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
    bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
    bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
    if (!v4 && !v6) continue;
    auto* ee = reinterpret_cast<sock_extended_err*>(CMSG_DATA(c));
    if (ee->ee_origin != SO_EE_ORIGIN_ICMP && ee->ee_origin != SO_EE_ORIGIN_ICMP6) return 0;
    *type = ee->ee_type;
    *code = ee->ee_code;
    uint16_t port;
    if (!from_sockaddr(SO_EE_OFFENDER(ee), offender, &port)) return 0;
    return n;
  }
  return 0;
}

// Builds the quote for an ICMP error: the child's IP header (length fixed up)
// followed by `l4` (the rebuilt L4 header and as much payload as given).
size_t build_quote(uint8_t* out, size_t cap, const uint8_t* ip_hdr, size_t ip_len,
                   const uint8_t* l4, size_t l4_len) {
  if (ip_len + l4_len > cap) l4_len = cap - ip_len;
  std::memcpy(out, ip_hdr, ip_len);
  std::memcpy(out + ip_len, l4, l4_len);
  return ip_len + l4_len;
}

void Engine::udp_input(const uint8_t* frame, const packet::Parsed& p) {
  FlowKey key{p.src, p.dst, p.sport, p.dport};
  std::span<const uint8_t> quoted{frame + p.l3_off,
                                  std::min<size_t>(p.l4_off - p.l3_off + p.l4_len, 576)};
  auto it = udp_map.find(key);
  uint32_t slot;
  if (it == udp_map.end()) {
    IpAddr cip = p.dst;
    if (is_gateway(p.dst)) {
      if (!cfg.allow_host_loopback) {
        ++st.dropped_other;
        return;
      }
      cip = p.dst.is_v4() ? *IpAddr::parse("127.0.0.1") : *IpAddr::parse("::1");
    }
    if (udp.full()) {
      ++st.dropped_other;
      return;
    }
    uint64_t id = rec.next_flow_id();
    auto v = pol.judge_addr(policy::Proto::Udp, cip, false, now);
    int fd = -1;
    if (v.allow) {
      fd = open_dgram(cip, p.dport, 0);
      if (fd < 0) {
        int err = errno;
        if (err == ENETUNREACH || err == EHOSTUNREACH)
          icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach,
                              err == ENETUNREACH ? packet::icmp4::kNetUnreach
                                                 : packet::icmp4::kHostUnreach,
                              packet::icmp6::kUnreach, packet::icmp6::kNoRoute, quoted);
        return;
      }
    } else {
      deny(id, policy::Proto::Udp, p.dst, p.dport, v);
    }
    slot = dgram_open(udp, udp_map, Tag::Udp, policy::Proto::Udp, key, id, fd, kUdpIdleMs);
    if (v.allow) {
      ++st.udp_flows;
      rec.flow_start(id, policy::Proto::Udp, {p.dst, p.dport}, pol.names_for(p.dst, now));
    }
  } else {
    slot = it->second;
  }
  UdpFlow& f = udp[slot];
  f.last_ms = now;
  if (f.denied) {
    // Denied datagrams never leave; the child learns at once, as from a
    // filtering router (ICMP administratively prohibited). The flow was
    // judged and logged once, on its first datagram.
    icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach, packet::icmp4::kAdminProhibited,
                        packet::icmp6::kUnreach, packet::icmp6::kAdminProhibited, quoted);
    return;
  }
  dgram_send(f, frame, p, frame + p.payload_off, p.payload_len);
}

void Engine::udp_event(uint32_t slot, uint32_t events) {
  UdpFlow& f = udp[slot];
  if (!f.used) return;
  f.last_ms = now;
  if (events & EPOLLERR) {
    uint8_t data[1500];
    uint8_t type, code;
    IpAddr offender;
    ssize_t n;
    while ((n = read_icmp_error(f.sock.get(), data, sizeof data, &type, &code, &offender)) >= 0) {
      if (n == 0) continue;
      // Rebuild the child's datagram as sent: its IP header, then its UDP
      // header (ports and length from the flow), then the payload.
      uint8_t l4[8 + 64];
      size_t plen = std::min<size_t>(size_t(n), 64);
      uint16_t ulen = uint16_t(8 + size_t(n));
      l4[0] = uint8_t(f.key.cport >> 8);
      l4[1] = uint8_t(f.key.cport);
      l4[2] = uint8_t(f.key.rport >> 8);
      l4[3] = uint8_t(f.key.rport);
      l4[4] = uint8_t(ulen >> 8);
      l4[5] = uint8_t(ulen);
      l4[6] = l4[7] = 0;
      std::memcpy(l4 + 8, data, plen);
      uint8_t quote[40 + sizeof l4];
      size_t q = build_quote(quote, sizeof quote, f.ip_hdr, f.ip_hdr_len, l4, 8 + plen);
      send_frame(packet::build_icmp_error(tx, opts.plan.gw_mac, child_mac, offender, f.key.caddr,
                                          type, code, {quote, q}));
    }
  }
  if (events & EPOLLIN) {
    size_t off = packet::payload_offset(f.key.raddr.family, packet::kProtoUdp);
    for (int i = 0; i < 64; ++i) {
      ssize_t n = recv(f.sock.get(), tx + off, 65507, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
        break;
      }
      f.bytes_down += uint64_t(n);
      send_frame(packet::build_udp(tx, opts.plan.gw_mac, child_mac, f.key.raddr, f.key.rport,
                                   f.key.caddr, f.key.cport, size_t(n)));
    }
  }
}

void Engine::udp_timer(uint32_t slot, uint64_t when) {
  dgram_timer(udp, udp_map, Tag::Udp, slot, when, kUdpIdleMs);
}

uint32_t Engine::dgram_open(SlotTable<DatagramFlow>& table, FlowMap& map, Tag kind,
                            policy::Proto proto, const FlowKey& key, uint64_t id, int fd,
                            uint64_t idle_ms) {
  uint32_t slot = *table.alloc();
  DatagramFlow& f = table[slot];
  f.used = true;
  f.denied = fd < 0;
  f.proto = proto;
  f.key = key;
  f.flow_id = id;
  f.started_ms = f.last_ms = now;
  map.emplace(key, slot);
  f.queued = now + idle_ms;
  arm(kind, slot, f.queued);
  if (fd >= 0) {
    f.sock.reset(fd);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLERR;
    ev.data.u64 = tag(kind, slot, table.gen(slot));
    epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd, &ev);
  }
  return slot;
}

void Engine::dgram_send(DatagramFlow& f, const uint8_t* frame, const packet::Parsed& p,
                        const uint8_t* data, size_t len) {
  if (p.ttl != f.ttl) {
    set_ttl(f.sock.get(), p.dst, p.ttl);
    f.ttl = p.ttl;
  }
  size_t hl = std::min<size_t>(p.l4_off - p.l3_off, sizeof f.ip_hdr);
  std::memcpy(f.ip_hdr, frame + p.l3_off, hl);
  f.ip_hdr_len = uint8_t(hl);
  ssize_t n = send_datagram(f.sock.get(), data, len);
  if (n > 0) f.bytes_up += uint64_t(n);
}

void Engine::dgram_release(SlotTable<DatagramFlow>& table, FlowMap& map, uint32_t slot,
                           observe::Close close) {
  DatagramFlow& f = table[slot];
  if (!f.denied)
    rec.flow_end(f.flow_id, f.proto, {f.key.raddr, f.key.rport}, f.bytes_up, f.bytes_down,
                 now - f.started_ms, close);
  if (f.sock) epoll_ctl(ep.get(), EPOLL_CTL_DEL, f.sock.get(), nullptr);
  map.erase(f.key);
  table.release(slot);
}

void Engine::dgram_timer(SlotTable<DatagramFlow>& table, FlowMap& map, Tag kind, uint32_t slot,
                         uint64_t when, uint64_t idle_ms) {
  DatagramFlow& f = table[slot];
  if (!f.used || when != f.queued) return;
  uint64_t idle_at = f.last_ms + idle_ms;
  if (idle_at > now) {
    f.queued = idle_at;
    arm(kind, slot, idle_at);
    return;
  }
  dgram_release(table, map, slot, observe::Close::Timeout);
}

// At the end of the run every open datagram flow ends too (close=fin: the
// tree finished; idle expiry is close=timeout).
void Engine::udp_icmp_close_all() {
  for (uint32_t slot = 0; slot < udp.size(); ++slot)
    if (udp[slot].used) dgram_release(udp, udp_map, slot, observe::Close::Fin);
  for (uint32_t slot = 0; slot < icmp.size(); ++slot)
    if (icmp[slot].used) dgram_release(icmp, icmp_map, slot, observe::Close::Fin);
}

}  // namespace cf::engine
