// Datagram flows (UDP and ICMP echo): see dgram.hpp for the theory of
// operation.
#include "engine/dgram.hpp"

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "capture/wire.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {

void set_ttl(int fd, const IpAddr& dst, uint8_t ttl) {
  int v = ttl;
  if (dst.is_v4()) setsockopt(fd, IPPROTO_IP, IP_TTL, &v, sizeof v);
  else setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &v, sizeof v);
}

}  // namespace

// --- DgramTable ---------------------------------------------------------------

uint32_t DgramTable::add(const FlowKey& key) {
  uint32_t s = *slots_.alloc();
  slots_[s].key = key;
  map_.emplace(key, s);
  push_front(s);
  return s;
}

void DgramTable::touch(uint32_t s) {
  if (head_ == s) return;
  unlink(s);
  push_front(s);
}

void DgramTable::remove(uint32_t s) {
  unlink(s);
  map_.erase(slots_[s].key);
  slots_.release(s);
}

void DgramTable::unlink(uint32_t s) {
  DatagramFlow& f = slots_[s];
  if (f.lru_prev != kNoSlot) slots_[f.lru_prev].lru_next = f.lru_next;
  else head_ = f.lru_next;
  if (f.lru_next != kNoSlot) slots_[f.lru_next].lru_prev = f.lru_prev;
  else tail_ = f.lru_prev;
  f.lru_prev = f.lru_next = kNoSlot;
}

void DgramTable::push_front(uint32_t s) {
  DatagramFlow& f = slots_[s];
  f.lru_prev = kNoSlot;
  f.lru_next = head_;
  if (head_ != kNoSlot) slots_[head_].lru_prev = s;
  head_ = s;
  if (tail_ == kNoSlot) tail_ = s;
}

// --- socket helpers ------------------------------------------------------------

int open_dgram(const IpAddr& dst, uint16_t port, int proto, capture::WireSet* wire,
               uint64_t flow_id) {
  int fd = socket(dst.is_v4() ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
                  proto);
  if (fd < 0) return -1;
  int one = 1;
  if (dst.is_v4()) setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one);
  else setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one);
  if (wire) wire->track(fd, uint8_t(proto ? proto : IPPROTO_UDP), dst, port, flow_id);
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

// A socket with IP_RECVERR keeps the last ICMP error in sk_err, and the next
// send fails with it (sock_alloc_send_skb reports pending errors) without
// sending: that error was already delivered through the error queue, so the
// send is retried once.
ssize_t send_datagram(int fd, const uint8_t* data, size_t len) {
  ssize_t n = send(fd, data, len, MSG_DONTWAIT);
  if (n < 0 && (errno == EHOSTUNREACH || errno == ENETUNREACH || errno == ECONNREFUSED ||
                errno == EHOSTDOWN || errno == ENOPROTOOPT || errno == EPROTO))
    n = send(fd, data, len, MSG_DONTWAIT);
  return n;
}

std::optional<IcmpError> read_icmp_error(int fd, uint8_t* data, size_t cap) {
  // Entries that are not ICMP errors (local errors) are skipped; the bound
  // keeps a socket whose queue refills as fast as we read from holding the
  // reactor.
  for (int tries = 0; tries < 64; ++tries) {
    char ctrl[512];
    iovec iov{data, cap};
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctrl;
    mh.msg_controllen = sizeof ctrl;
    ssize_t n = recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) return std::nullopt;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v4 && !v6) continue;
      sock_extended_err ee;
      std::memcpy(&ee, CMSG_DATA(c), sizeof ee);
      if (ee.ee_origin != SO_EE_ORIGIN_ICMP && ee.ee_origin != SO_EE_ORIGIN_ICMP6) break;
      IcmpError err;
      err.type = ee.ee_type;
      err.code = ee.ee_code;
      err.len = size_t(n);
      uint16_t port;
      auto* offender = SO_EE_OFFENDER(reinterpret_cast<sock_extended_err*>(CMSG_DATA(c)));
      if (!from_sockaddr(offender, &err.offender, &port)) break;
      return err;
    }
  }
  return std::nullopt;
}

size_t build_quote(uint8_t* out, size_t cap, const uint8_t* ip_hdr, size_t ip_len,
                   const uint8_t* l4, size_t l4_len) {
  if (ip_len + l4_len > cap) l4_len = cap - ip_len;
  std::memcpy(out, ip_hdr, ip_len);
  std::memcpy(out + ip_len, l4, l4_len);
  return ip_len + l4_len;
}

// --- flows in the engine ---------------------------------------------------------

uint32_t Engine::dgram_open(DgramTable& table, Tag kind, policy::Proto proto, const FlowKey& key,
                            uint64_t id, int fd, uint64_t idle_ms) {
  // Evict the least recently used flow rather than refuse the new one: a
  // tree that opens many short-lived pairs (DNS from random ports, a scan)
  // must not lock out the flows that follow.
  if (table.full()) {
    limit_hit(&table == &udp ? observe::Limit::UdpFlows : observe::Limit::IcmpFlows, table.cap());
    dgram_evict(table);
  }
  uint32_t slot = table.add(key);
  if (fd >= 0 && !watch(fd, EPOLLIN | EPOLLERR, tag(kind, slot, table.gen(slot)))) {
    ::close(fd);
    table.remove(slot);
    return kNoSlot;
  }
  DatagramFlow& f = table[slot];
  f.used = true;
  f.denied = fd < 0;
  f.proto = proto;
  f.flow_id = id;
  f.started_ms = f.last_ms = now;
  f.queued = now + idle_ms;
  arm(kind, slot, f.queued);
  if (fd >= 0) f.sock.reset(fd);  // watched above
  return slot;
}

int Engine::dgram_socket(DgramTable& table, const IpAddr& dst, uint16_t port, int proto,
                         uint64_t flow_id) {
  int fd = open_dgram(dst, port, proto, opts.wire, flow_id);
  // RLIMIT_NOFILE can be lower than the table (4096 is a common hard limit
  // without systemd): evicting is better than failing every new flow.
  for (int i = 0; i < 64 && fd < 0 && (errno == EMFILE || errno == ENFILE) && table.lru(); ++i) {
    if (dgram_evict(table)) fd = open_dgram(dst, port, proto, opts.wire, flow_id);
    else errno = EMFILE;
  }
  return fd;
}

bool Engine::dgram_evict(DgramTable& table) {
  uint32_t victim = *table.lru();
  bool had_socket = table[victim].sock.valid();
  dgram_release(table, victim, observe::Close::Timeout);
  ++st.dgram_evicted;
  return had_socket;
}

void Engine::dgram_send(DatagramFlow& f, const uint8_t* frame,
                        const packet::Parsed& p, const uint8_t* data, size_t len) {
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

void Engine::dgram_release(DgramTable& table, uint32_t slot, observe::Close close) {
  DatagramFlow& f = table[slot];
  if (!f.denied)
    rec.flow_end(f.flow_id, f.proto, {f.key.raddr, f.key.rport}, f.bytes_up, f.bytes_down,
                 now - f.started_ms, close);
  if (f.sock) unwatch(f.sock.get());
  table.remove(slot);
}

void Engine::dgram_timer(DgramTable& table, Tag kind, uint32_t slot, uint64_t when,
                         uint64_t idle_ms) {
  DatagramFlow& f = table[slot];
  if (!f.used || when != f.queued) return;
  uint64_t idle_at = f.last_ms + idle_ms;
  if (idle_at > now) {
    f.queued = idle_at;
    arm(kind, slot, idle_at);
    return;
  }
  dgram_release(table, slot, observe::Close::Timeout);
}

// At the end of the run every open datagram flow ends too (close=fin: the
// tree finished; idle expiry is close=timeout).
void Engine::udp_icmp_close_all() {
  for (DgramTable* t : {&udp, &icmp})
    for (uint32_t slot = 0; slot < t->size(); ++slot)
      if ((*t)[slot].used) dgram_release(*t, slot, observe::Close::Fin);
}

}  // namespace cf::engine
