// Engine internals shared by engine.cpp, tcp.cpp, udp.cpp, icmp.cpp and
// dns_relay.cpp. Not part of the module's interface.
#pragma once
#include <sys/epoll.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <optional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "capture/capture.hpp"
#include "common/addr.hpp"
#include "common/clock.hpp"
#include "common/random.hpp"
#include "common/unique_fd.hpp"
#include "engine/engine.hpp"
#include "engine/dgram.hpp"
#include "engine/dns_gate.hpp"
#include "engine/dns_tcp.hpp"
#include "engine/flow.hpp"
#include "engine/packet.hpp"
#include "engine/send_copy.hpp"
#include "engine/sniff.hpp"
#include "engine/synth.hpp"
#include "engine/tcp_flow.hpp"
#include "observe/recorder.hpp"
#include "policy/policy.hpp"
#include "proxy/proxy.hpp"

namespace cf::engine {

inline int epoll_add_fd(int ep, int fd, epoll_event* ev) {
  return epoll_ctl(ep, EPOLL_CTL_ADD, fd, ev);
}

// A query relayed over UDP: its own upstream socket (a fresh random source
// port) and a random transaction id.
struct DnsPending {
  bool used = false;
  uint16_t child_id = 0;
  IpAddr caddr, server;  // server: the address the child asked (gateway or not)
  uint16_t cport = 0;
  uint64_t deadline = 0;
  uint16_t up_id = 0;  // transaction id used towards the resolver
  UniqueFd sock;       // connected to the resolver
  GateQuery gq;
};

class Engine {
 public:
  Engine(const Options& opts, UniqueFd tap, policy::Policy& pol, observe::Recorder& rec,
         Stats* stats);
  Status init();
  Status loop(int pidfd, int sigfd, const std::function<void(int, int)>& on_sig);
  // One reactor turn: waits up to timeout_ms (-1: forever) for events and
  // handles them, then runs due timers and sends the ACKs owed. Sets
  // *tree_exited when the pidfd fired. loop() is turns until then; the unit
  // tests drive the engine turn by turn over a socketpair standing in for
  // tap0.
  Status turn(int timeout_ms, bool* tree_exited);
  // Handles one epoll event by its tag (turn() calls it for each): an event
  // whose generation is not its slot's current one is counted and dropped.
  // True when it was the tree's pidfd.
  bool dispatch(uint64_t tag, uint32_t events);
  // Entries in the timer heap, current or not (the unit tests check that it
  // stays bounded).
  size_t timer_entries() const { return timers_.size(); }
  // How long the next turn polls before it sleeps, in µs (wait_events()).
  uint32_t poll_budget_us() const { return poll_us_; }

  // Shared by the protocol files.
  Options opts;
  UniqueFd tap;
  policy::Policy& pol;
  observe::Recorder& rec;
  Stats& st;
  UniqueFd ep, timerfd;
  uint64_t now = 0;  // monotonic ms, updated once per reactor turn
  alignas(64) uint8_t tx[packet::kFrameMax];
  Mac child_mac{};  // learnt from the child's frames

  // Writes the frame built in tx to tap0 (and the capture). With
  // Options::vnet_hdr, `vh` is its virtio-net header (none: all zero, a
  // frame with a full checksum).
  void send_frame(size_t len, const packet::VnetHdr* vh = nullptr);
  // --capture: the flow a frame belongs to (its flow_id, and the verdict of
  // a denied one), looked up by the frame's addresses and ports in the flow
  // tables; a frame of no flow gets the denial being handled, if any.
  capture::FrameNote capture_note(std::span<const uint8_t> frame, bool from_child) const;
  // The frame read from tap0 that is being handled (a copy, as read): it
  // goes into the capture before anything sent in answer to it
  // (capture_held), with the flow it made or found.
  const uint8_t* held_rx = nullptr;
  size_t held_len = 0;
  // Set by deny() while a frame is handled (TCP denials keep no flow).
  capture::FrameNote deny_note;
  bool handling_rx = false;
  void capture_held();
  void arm(Tag k, uint32_t slot, uint64_t when);

  // epoll registrations of flows (docs/design.md, "Errors"):
  //  - watch (EPOLL_CTL_ADD of a new flow's fd) can fail for want of
  //    resources: ENOMEM, or ENOSPC once fs.epoll.max_user_watches is
  //    reached. It then counts st.epoll_refused and returns false with errno
  //    set, and the caller refuses the flow as it does when a table is full
  //    (RST for TCP, drop for UDP and ICMP, SERVFAIL for DNS). Any other
  //    errno means the fd or the epoll set is not what we think: CF_CHECK.
  //  - rewatch / unwatch (EPOLL_CTL_MOD / DEL) act on an fd this engine
  //    registered, and failing is a broken invariant: CF_CHECK. So a flow
  //    unwatches exactly the fds it watched, once.
  // The fixed fds (tap, timer, pidfd, signalfd) are registered at start-up,
  // where a failure is an Error (init, loop).
  [[nodiscard]] bool watch(int fd, uint32_t events, uint64_t tag);
  void rewatch(int fd, uint32_t events, uint64_t tag);
  void unwatch(int fd);
  // The generation of a flow slot of the table behind `k` (Tcp, Pump and
  // DnsStream share the TCP table; DnsUpstream has no slots).
  uint32_t slot_gen(Tag k, uint32_t slot) const;
  bool is_gateway(const IpAddr& ip) const {
    return opts.plan.is_gateway(ip);
  }
  const IpAddr& child_ip(Family f) const {
    return f == Family::V4 ? opts.plan.child4 : opts.plan.child6;
  }
  void icmp_error_to_child(const IpAddr& from, const IpAddr& child, uint8_t type4,
                           uint8_t code4, uint8_t type6, uint8_t code6,
                           std::span<const uint8_t> quoted);
  // The names a destination is known by, for logs: the name a synthetic
  // address stands for (--proxy-dns remote), else those the policy learnt.
  std::vector<std::string> names_for(const IpAddr& ip) const;
  // --proxy-dns remote: a datagram or echo request to a synthetic address
  // gets ICMP administratively prohibited at once (it cannot go through the
  // proxy); counted in Stats::synthetic_refused.
  void synthetic_unreachable(const uint8_t* frame, const packet::Parsed& p);
  // A datagram or echo flow the engine cannot open (no socket, no epoll
  // resources): ICMP administratively prohibited quoting `quoted`, so the
  // child's socket fails at once instead of waiting.
  void refuse_dgram(const packet::Parsed& p, std::span<const uint8_t> quoted) {
    icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach, packet::icmp4::kAdminProhibited,
                        packet::icmp6::kUnreach, packet::icmp6::kAdminProhibited, quoted);
  }
  // Logs and counts a policy denial (`sniffed`: of a name a TCP connection
  // sent in its first bytes).
  void deny(uint64_t flow_id, policy::Proto p, const IpAddr& ip, std::optional<uint16_t> port,
            const policy::Verdict& v, const observe::Sniffed* sniffed = nullptr);
  // Counts and logs one hit of a bound (docs/security.md, "Limits").
  void limit_hit(observe::Limit l, uint64_t max) { rec.limit_hit(l, max); }
  // Teaches the policy a name<->address pair from a DNS answer; counts the
  // older pair dropped when the policy's map was full.
  void learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s);

  // Per protocol (tcp.cpp, udp.cpp, icmp.cpp, dns_relay.cpp).
  void tcp_input(const uint8_t* frame, const packet::Parsed& p);
  void tcp_event(uint32_t slot, uint32_t events);
  void tcp_timer(uint32_t slot, uint64_t when);
  void tcp_flush_acks();
  void tcp_close_all();
  void udp_icmp_close_all();
  // Datagram flows (dgram.cpp): add a judged flow (fd < 0 when denied;
  // a full table first evicts its least recently used flow; kNoSlot, with the
  // fd closed, when the fd could not be watched), end one (flow_end unless
  // denied), and the idle timer.
  uint32_t dgram_open(DgramTable& table, Tag kind, policy::Proto proto, const FlowKey& key,
                      uint64_t id, int fd, uint64_t idle_ms);
  // open_dgram for a new flow of `table`; when the process is out of file
  // descriptors, the table's least recently used flows give theirs up first.
  int dgram_socket(DgramTable& table, const IpAddr& dst, uint16_t port, int proto,
                   uint64_t flow_id);
  // Ends the table's least recently used flow (there must be one), counted
  // as an eviction; true when that freed a socket.
  bool dgram_evict(DgramTable& table);
  // Sends one datagram of the flow with the child's TTL, keeping its IP
  // header for ICMP error quotes.
  void dgram_send(DatagramFlow& f, const uint8_t* frame, const packet::Parsed& p,
                  const uint8_t* data, size_t len);
  void dgram_release(DgramTable& table, uint32_t slot, observe::Close close);
  void dgram_timer(DgramTable& table, Tag kind, uint32_t slot, uint64_t when, uint64_t idle_ms);
  void tcp_pump_event(uint32_t slot);
  void dns_stream_event(uint32_t slot);
  void dns_stream_kick(TcpFlow& f);
  // The connect of a direct DNS stream (TCP to port 53 of an address other
  // than the gateway) to its resolver ended: 0 answers the child's SYN, an
  // errno refuses it as a failed connect would (RST, ICMP, or silence for a
  // time-out) and releases the flow.
  void dns_stream_connected(uint32_t slot, int err);
  void udp_input(const uint8_t* frame, const packet::Parsed& p);
  void udp_event(uint32_t slot, uint32_t events);
  void udp_timer(uint32_t slot, uint64_t when);
  void icmp_input(const uint8_t* frame, const packet::Parsed& p);
  void icmp_event(uint32_t slot, uint32_t events);
  void icmp_timer(uint32_t slot, uint64_t when);
  // A query over UDP to port 53, relayed (when the gate lets it) to
  // `upstream`: the resolver for the gateway, the address asked otherwise;
  // null when there is none (the gate answers SERVFAIL).
  void dns_input(const uint8_t* frame, const packet::Parsed& p, const IpAddr* upstream);
  void dns_event(uint32_t slot);
  void dns_timer(uint32_t slot, uint64_t when);

  // TCP state (tcp.cpp). The tables are sized by opts.limits.
  SlotTable<TcpFlow> tcp{opts.limits.tcp_flows};
  FlowMap tcp_map;
  std::vector<uint32_t> tcp_ack_list;
  uint32_t tcp_connecting = 0;
  bool tcp_peek_off = true;  // kernel::Feature::TcpPeekOff in use (probed in init)
  uint32_t (*isn_source)() = random_u32;  // our ISNs (the unit tests pick them)
  // The EPOLL_CTL_ADD behind watch() (the unit tests make it fail).
  int (*epoll_add)(int ep, int fd, epoll_event* ev) = epoll_add_fd;
  // An established flow with no segment either way for this long is reset
  // (docs/design.md); half closed: once either side sent its FIN.
  uint64_t tcp_idle_ms = 24 * 3600 * 1000ull;
  uint64_t tcp_half_closed_idle_ms = 300 * 1000ull;
  // Host-side keepalive once the child probes: idle, interval (seconds) and
  // count, so a dead peer is found within about 60 + 6 * 10 s.
  int tcp_keep_idle_s = 60, tcp_keep_intvl_s = 10, tcp_keep_cnt = 6;
  // The TCP copy path's memory, all flows together (Limits::tcp_copy_bytes).
  CopyBudget copy_budget{opts.limits.tcp_copy_bytes};
  // UDP and ICMP echo flows.
  DgramTable udp{opts.limits.udp_flows};
  DgramTable icmp{opts.limits.icmp_flows};
  // --proxy-dns remote: the names behind the synthetic addresses.
  SynthMap synth;
  // DNS relay state: pending queries.
  SlotTable<DnsPending> dns{opts.limits.dns_in_flight};
  // DNS-over-TCP streams open (Limits::dns_tcp_streams).
  uint32_t dns_streams = 0;
  // TCP flows holding first bytes until their name is judged
  // (Limits::sniff_holds), and where sniff::inspect puts a ClientHello back
  // together.
  uint32_t sniff_holding = 0;
  alignas(64) uint8_t sniff_scratch[sniff::kMax];
  // Random 16-bit transaction ids, drawn from the kernel 128 at a time.
  uint16_t random_id();

 private:
  void tap_readable();
  // One read from tap0 into rx_ (after its virtio-net header, into *vh, with
  // Options::vnet_hdr): the frame's length; 0 for a frame counted and
  // dropped as malformed; -1 when there is none.
  ssize_t read_frame(packet::VnetHdr* vh);
  void handle_frame(const uint8_t* frame, size_t len);
  void run_timers();
  void program_timerfd(uint64_t when);
  // True while the entry is the one its flow keeps queued (a flow re-queues
  // an earlier deadline without taking the later entry out of the heap).
  bool timer_current(const Timer& t) const;
  // Drops the entries that are no longer current once the heap has grown to
  // twice what it held after the last compaction (at least kTimerCompactMin).
  void compact_timers();
  std::vector<Timer> timers_;  // a min-heap on `when` (std::push_heap, greater)
  size_t timers_compact_at_ = 0;
  const std::function<void(int, int)>* on_signal_ = nullptr;
  int sigfd_ = -1;
  uint64_t timer_armed_at_ = 0;
  // Adaptive polling before sleeping (turn()): how long the next turn polls,
  // in µs; 0 sleeps at once.
  uint32_t poll_us_ = 0;
  int wait_events(epoll_event* evs, int max, int timeout_ms);
  alignas(64) uint8_t rx_[packet::kFrameMax];
  // --capture: the frame being handled, as read (capture_held).
  alignas(64) uint8_t held_copy_[packet::kFrameMax];
  uint16_t rand_ids_[128];
  size_t rand_left_ = 0;
};


}  // namespace cf::engine
