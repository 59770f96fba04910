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
// Port 53 is DNS, wherever it goes: a datagram to an allowed address's port
// 53 is not a flow of its own but a query for the DNS gate (dns_relay.cpp),
// so the domain rules judge it as they judge a query to the gateway.
// At most Limits::udp_flows flows (4096); a new pair beyond that evicts the
// least recently used one (dgram.hpp). A pair that gets no socket at all
// (no file descriptor, no epoll resources) is refused with ICMP
// administratively prohibited. An ICMP error about an empty datagram is relayed like any
// other (nmap -sU sees a closed port as closed).
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/bytes.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {
constexpr uint64_t kUdpIdleMs = 60'000;
}  // namespace

void Engine::udp_input(const uint8_t* frame, const packet::Parsed& p) {
  FlowKey key{p.src, p.dst, p.sport, p.dport};
  std::span<const uint8_t> quoted{frame + p.l3_off,
                                  std::min<size_t>(p.l4_off - p.l3_off + p.l4_len, 576)};
  auto found = udp.find(key);
  uint32_t slot;
  if (!found) {
    IpAddr cip = p.dst;
    if (is_gateway(p.dst)) {
      if (!opts.allow_host_loopback) {
        ++st.dropped_other;
        return;
      }
      cip = p.dst.is_v4() ? *IpAddr::parse("127.0.0.1") : *IpAddr::parse("::1");
    }
    auto v = pol.judge_addr(policy::Proto::Udp, cip, false, now);
    if (v.allow && p.dport == 53 && cip == p.dst) {
      // DNS to an address the policy lets the tree reach: through the DNS
      // gate, relayed to that address (dns_relay.cpp). Nothing is kept
      // here, so each query's address is judged again (silently, as it is
      // allowed); a denied address is remembered below like any flow.
      dns_input(frame, p, &p.dst);
      return;
    }
    uint64_t id = rec.next_flow_id();
    int fd = -1;
    if (v.allow) {
      fd = dgram_socket(udp, cip, p.dport, 0, id);
      if (fd < 0) {
        int err = errno;
        if (err == ENETUNREACH || err == EHOSTUNREACH)
          icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach,
                              err == ENETUNREACH ? packet::icmp4::kNetUnreach
                                                 : packet::icmp4::kHostUnreach,
                              packet::icmp6::kUnreach, packet::icmp6::kNoRoute, quoted);
        else  // no socket for it (file descriptors, memory): refused
          refuse_dgram(p, quoted);
        return;
      }
    } else {
      deny(id, policy::Proto::Udp, p.dst, p.dport, v);
    }
    slot = dgram_open(udp, Tag::Udp, policy::Proto::Udp, key, id, fd, kUdpIdleMs);
    if (slot == kNoSlot) {  // no epoll resources (counted): refused
      refuse_dgram(p, quoted);
      return;
    }
    udp[slot].deny_reason = v.reason_code;
    if (v.allow) {
      ++st.udp_flows;
      rec.flow_start(id, policy::Proto::Udp, {p.dst, p.dport}, pol.names_for(p.dst, now));
    }
  } else {
    slot = *found;
  }
  DatagramFlow& f = udp[slot];
  f.last_ms = now;
  udp.touch(slot);
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
  DatagramFlow& f = udp[slot];
  if (!f.used) return;
  f.last_ms = now;
  udp.touch(slot);
  if (events & EPOLLERR) {
    uint8_t data[1500];
    while (auto err = read_icmp_error(f.sock.get(), data, sizeof data)) {
      // Rebuild the child's datagram as sent: its IP header, then its UDP
      // header (ports and length from the flow), then the payload (none for
      // an empty datagram, which is what nmap -sU sends to most ports).
      uint8_t l4[8 + 64];
      size_t plen = std::min<size_t>(err->len, 64);
      uint16_t ulen = uint16_t(8 + err->len);
      store_be16(l4, f.key.cport);
      store_be16(l4 + 2, f.key.rport);
      store_be16(l4 + 4, ulen);
      store_be16(l4 + 6, 0);
      std::memcpy(l4 + 8, data, plen);
      uint8_t quote[40 + sizeof l4];
      size_t q = build_quote(quote, sizeof quote, f.ip_hdr, f.ip_hdr_len, l4, 8 + plen);
      send_frame(packet::build_icmp_error(tx, opts.plan.gw_mac, child_mac, err->offender,
                                          f.key.caddr, err->type, err->code, {quote, q}));
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
  dgram_timer(udp, Tag::Udp, slot, when, kUdpIdleMs);
}

}  // namespace cf::engine
