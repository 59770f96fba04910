// ICMP echo: relayed through the host's unprivileged ICMP ("ping") sockets.
//
// Theory of operation. Each (child, echo id, destination) gets a ping socket
// (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6) connected to the destination,
// judged by the policy once, when it is opened. The kernel rewrites the echo
// id to the socket's own, so replies are mapped back to the child's id; the
// sequence number and payload pass unchanged. The child's TTL / hop limit is
// applied per request, and with IP_RECVERR the kernel queues TTL-exceeded and
// unreachable errors, which become ICMP errors to the child from the
// offending router, quoting the child's request (traceroute -I, mtr).
//
// Ping sockets need the engine's gid in net.ipv4.ping_group_range (one knob
// for both families). When the host refuses them, the request is answered
// with ICMP administratively prohibited, so ping fails at once and says why;
// `--doctor` reports which path is in use. Echo requests to the gateway are
// answered by the engine itself. A denied echo flow is remembered (no socket)
// so it is judged and logged once. Flows idle for kIcmpIdleMs are closed; a
// full table evicts its least recently used flow (dgram.hpp).
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "common/bytes.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {
constexpr uint64_t kIcmpIdleMs = 30'000;
}

void Engine::icmp_input(const uint8_t* frame, const packet::Parsed& p) {
  bool v4 = p.src.is_v4();
  uint8_t echo = v4 ? packet::icmp4::kEcho : packet::icmp6::kEcho;
  if (p.icmp_type != echo || p.l4_len < 8) {
    ++st.dropped_other;  // only echo requests leave the tree
    return;
  }
  std::span<const uint8_t> data{frame + p.payload_off, p.payload_len};
  if (is_gateway(p.dst)) {
    send_frame(packet::build_icmp_echo(tx, opts.plan.gw_mac, p.src_mac, p.dst, p.src, true,
                                       p.icmp_id, p.icmp_seq, data));
    return;
  }
  policy::Proto proto = v4 ? policy::Proto::Icmp4 : policy::Proto::Icmp6;
  FlowKey key{p.src, p.dst, p.icmp_id, 0};
  auto found = icmp.find(key);
  uint32_t slot;
  std::span<const uint8_t> request{frame + p.l3_off,
                                   std::min<size_t>(p.l4_off - p.l3_off + p.l4_len, 576)};
  if (!found) {
    uint64_t id = rec.next_flow_id();
    auto v = pol.judge_addr(proto, p.dst, false, now);
    int fd = -1;
    if (v.allow) {
      fd = dgram_socket(icmp, p.dst, 0, v4 ? int(IPPROTO_ICMP) : int(IPPROTO_ICMPV6), id);
      if (fd < 0) {
        int err = errno;
        if (err == ENETUNREACH || err == EHOSTUNREACH) {
          icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach,
                              err == ENETUNREACH ? packet::icmp4::kNetUnreach
                                                 : packet::icmp4::kHostUnreach,
                              packet::icmp6::kUnreach, packet::icmp6::kNoRoute, request);
        } else {
          // No ping socket for us (net.ipv4.ping_group_range).
          icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach,
                              packet::icmp4::kAdminProhibited, packet::icmp6::kUnreach,
                              packet::icmp6::kAdminProhibited, request);
        }
        ++st.dropped_other;
        return;
      }
    } else {
      deny(id, proto, p.dst, std::nullopt, v);
    }
    slot = dgram_open(icmp, Tag::Icmp, proto, key, id, fd, kIcmpIdleMs);
    if (slot == kNoSlot) {  // no epoll resources (counted): refused
      refuse_dgram(p, request);
      return;
    }
    icmp[slot].deny_reason = v.reason_code;
    if (v.allow) {
      ++st.icmp_flows;
      rec.flow_start(id, proto, {p.dst, 0}, pol.names_for(p.dst, now));
    }
  } else {
    slot = *found;
  }
  DatagramFlow& f = icmp[slot];
  f.last_ms = now;
  icmp.touch(slot);
  if (f.denied) {
    // Judged and logged once, on the first request of this echo flow.
    icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach, packet::icmp4::kAdminProhibited,
                        packet::icmp6::kUnreach, packet::icmp6::kAdminProhibited, request);
    return;
  }
  dgram_send(f, frame, p, frame + p.l4_off, p.l4_len);  // the whole echo request
}

void Engine::icmp_event(uint32_t slot, uint32_t events) {
  DatagramFlow& f = icmp[slot];
  if (!f.used) return;
  f.last_ms = now;
  icmp.touch(slot);
  bool v4 = f.key.raddr.is_v4();
  if (events & EPOLLERR) {
    uint8_t data[1500];
    while (auto err = read_icmp_error(f.sock.get(), data, sizeof data)) {
      if (err->len < 8) continue;
      ssize_t n = ssize_t(err->len);
      // The error queue returns our request as sent; put the child's id back
      // and quote it behind the child's IP header.
      store_be16(data + 4, f.key.cport);
      store_be16(data + 2, 0);
      size_t l4len = std::min<size_t>(size_t(n), 64);
      if (v4) store_be16(data + 2, packet::csum_fold(packet::csum_partial(data, size_t(n), 0)));
      uint8_t quote[40 + 64];
      size_t q = build_quote(quote, sizeof quote, f.ip_hdr, f.ip_hdr_len, data, l4len);
      send_frame(packet::build_icmp_error(tx, opts.plan.gw_mac, child_mac, err->offender,
                                          f.key.caddr, err->type, err->code, {quote, q}));
    }
  }
  if (events & EPOLLIN) {
    uint8_t buf[65536];
    for (int i = 0; i < 64; ++i) {
      ssize_t n = recv(f.sock.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0) {
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH) continue;
        break;
      }
      if (n < 8) continue;
      uint8_t reply = v4 ? packet::icmp4::kEchoReply : packet::icmp6::kEchoReply;
      if (buf[0] != reply) continue;
      f.bytes_down += uint64_t(n);
      uint16_t seq = load_be16(buf + 6);
      send_frame(packet::build_icmp_echo(tx, opts.plan.gw_mac, child_mac, f.key.raddr,
                                         f.key.caddr, true, f.key.cport, seq,
                                         {buf + 8, size_t(n) - 8}));
    }
  }
}

void Engine::icmp_timer(uint32_t slot, uint64_t when) {
  dgram_timer(icmp, Tag::Icmp, slot, when, kIcmpIdleMs);
}

}  // namespace cf::engine
