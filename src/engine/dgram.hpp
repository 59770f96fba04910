// Datagram flows: UDP pairs and ICMP echo flows, and the socket helpers both
// use. Private to src/engine/.
//
// Theory of operation. A datagram flow is judged once, on its first datagram,
// and then owns one connected datagram socket with IP_RECVERR / IPV6_RECVERR
// (a UDP socket, or a ping socket for echo). Each datagram from the child is
// sent with the child's TTL / hop limit; replies come back as frames; ICMP
// errors the kernel queues on the socket become ICMP errors to the child,
// quoting the child's IP header and the datagram as sent. A flow idle for the
// protocol's idle time ends (close=timeout). The flows of one protocol live in
// a DgramTable, which also keeps them in order of last use: when the table is
// full, a new flow evicts the least recently used one (counted in
// Stats::dgram_evicted, close=timeout) instead of being dropped; so it does
// when the process has run out of file descriptors for the new flow's socket.
// A table-full eviction is a hit of the table's bound (Limits::udp_flows,
// icmp_flows; logged as limit_hit). A flow that cannot be opened at all (no
// file descriptor even after evicting, no epoll resources) is refused with
// ICMP administratively prohibited, so the child's socket fails at once.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/addr.hpp"
#include "common/unique_fd.hpp"
#include "engine/flow.hpp"
#include "policy/policy.hpp"

namespace cf::capture {
class WireSet;
}

namespace cf::engine {

// A UDP pair or an ICMP echo flow (same life cycle: judged once, a connected
// datagram socket, idle expiry). For ICMP, key.cport is the child's echo id
// and key.rport is 0.
struct DatagramFlow {
  bool used = false;
  bool denied = false;  // judged and denied: no socket, refused, not logged again
  const char* deny_reason = nullptr;  // the verdict's reason_code when denied (capture notes)
  policy::Proto proto = policy::Proto::Udp;
  FlowKey key;
  UniqueFd sock;
  uint64_t flow_id = 0;
  uint64_t started_ms = 0, last_ms = 0, queued = 0;
  uint8_t ttl = 64;
  uint64_t bytes_up = 0, bytes_down = 0;
  uint8_t ip_hdr[40];  // the child's last IP header (quoted by ICMP errors)
  uint8_t ip_hdr_len = 0;
  uint32_t lru_prev = kNoSlot, lru_next = kNoSlot;  // DgramTable's recency list
};

// The flows of one protocol: their slots, the key -> slot map, and a list in
// order of last use (head: most recent), threaded through the flows.
class DgramTable {
 public:
  explicit DgramTable(uint32_t cap) : slots_(cap) {}
  DatagramFlow& operator[](uint32_t s) { return slots_[s]; }
  const DatagramFlow& operator[](uint32_t s) const { return slots_[s]; }
  std::optional<uint32_t> find(const FlowKey& k) const {
    auto it = map_.find(k);
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  uint32_t size() const { return slots_.size(); }
  uint32_t cap() const { return slots_.cap(); }
  bool full() const { return slots_.full(); }
  uint32_t gen(uint32_t s) const { return slots_.gen(s); }
  // The least recently used flow (nullopt when there is none).
  std::optional<uint32_t> lru() const {
    if (tail_ == kNoSlot) return std::nullopt;
    return tail_;
  }
  // A new flow for `key` in a free slot (the table must not be full).
  uint32_t add(const FlowKey& key);
  // Marks the flow as just used.
  void touch(uint32_t s);
  // Frees the slot (the flow's socket closes with it).
  void remove(uint32_t s);

 private:
  void unlink(uint32_t s);
  void push_front(uint32_t s);
  SlotTable<DatagramFlow> slots_;
  FlowMap map_;
  uint32_t head_ = kNoSlot, tail_ = kNoSlot;
};

// Opens a non-blocking datagram socket connected to dst:port with ICMP error
// reporting on (proto: 0 for UDP, IPPROTO_ICMP / IPPROTO_ICMPV6 for a ping
// socket). -1 with errno on failure.
// `wire` (--capture-point wire-egress): the socket is tracked before its connect.
int open_dgram(const IpAddr& dst, uint16_t port, int proto, capture::WireSet* wire = nullptr,
               uint64_t flow_id = 0);

// Sends one datagram, retrying once when the send only reported an ICMP
// error that the error queue already delivered.
ssize_t send_datagram(int fd, const uint8_t* data, size_t len);

// One ICMP error from a socket's error queue: what the kernel reported and
// the start of the datagram it was about (`len` bytes copied to the caller's
// buffer; 0 for an empty datagram).
struct IcmpError {
  uint8_t type = 0, code = 0;
  IpAddr offender;
  size_t len = 0;
};
// Reads the next queued ICMP error, skipping entries of other origins;
// nullopt when the queue is empty.
std::optional<IcmpError> read_icmp_error(int fd, uint8_t* data, size_t cap);

// The quote of an ICMP error: the child's IP header followed by `l4` (the
// rebuilt L4 header and payload), cut to `cap`.
size_t build_quote(uint8_t* out, size_t cap, const uint8_t* ip_hdr, size_t ip_len,
                   const uint8_t* l4, size_t l4_len);

}  // namespace cf::engine
