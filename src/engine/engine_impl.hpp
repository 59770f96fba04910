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
#include <queue>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/addr.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"
#include "engine/engine.hpp"
#include "engine/dgram.hpp"
#include "engine/dns_gate.hpp"
#include "engine/flow.hpp"
#include "engine/packet.hpp"
#include "engine/send_copy.hpp"
#include "observe/recorder.hpp"
#include "policy/policy.hpp"
#include "proxy/proxy.hpp"

namespace cf::engine {

// TCP flow states. Per state, what may happen:
//  Free        slot unused.
//  Connecting  child SYN seen, host connect() in progress (and, with
//              --proxy, the proxy handshake); child SYN retransmits are
//              ignored; nothing is sent to the child.
//  SynAckSent  host connected, SYN-ACK sent; waiting for the child's ACK
//              (SYN-ACK is retransmitted on RTO).
//  Established data both ways; FINs tracked by the flags below (half close).
//  Closing     both directions finished; held briefly (TIME_WAIT-like) to
//              absorb the child's last retransmits, then freed.
// DNS over TCP to the gateway (dns_tcp.cpp): the far end of the socketpair
// that a gateway:53/tcp flow uses as its host socket.
struct DnsStream {
  struct Pending {
    uint16_t id;   // the child's id, used upstream unchanged
    GateQuery gq;  // checks the answer; builds SERVFAIL when the upstream fails
  };
  UniqueFd local;  // socketpair end facing the translator
  UniqueFd up;     // TCP to the upstream resolver
  bool up_connecting = false, up_failed = false;
  bool local_eof = false, up_eof = false, shut_up = false, shut_local = false;
  std::string from_child, to_up, from_up, to_child;
  std::vector<Pending> pending;
};

enum class TcpState : uint8_t { Free, Connecting, SynAckSent, Established, Closing };

struct TcpFlow {
  TcpState state = TcpState::Free;
  uint32_t slot = 0;  // own index in Engine::tcp
  FlowKey key;
  IpAddr connect_ip;  // what the host socket connected to (gateway remaps)
  uint16_t connect_port = 0;
  UniqueFd sock;  // host socket, or the socketpair end of a TLS pump
  std::unique_ptr<proxy::Handshake> hs;  // while the proxy handshake runs
  std::unique_ptr<proxy::TlsPump> pump;  // https:// proxies after the handshake
  std::unique_ptr<DnsStream> dns;        // gateway:53/tcp flows
  bool via_proxy = false;
  bool sock_is_unix = false;
  // Bytes towards the child stay in the host socket's queue and are read at
  // SO_PEEK_OFF (true), or are moved into `copy` (false; see send_copy.hpp).
  bool peek_off = true;
  SendCopy copy;
  uint64_t flow_id = 0;
  uint64_t started_ms = 0;
  // Sequence space towards the child (ours) and from the child.
  // snd_una: oldest unacknowledged; snd_nxt: next to send (below snd_max
  // while retransmitting); snd_max: one past the highest ever sent.
  uint32_t isn = 0, snd_una = 0, snd_nxt = 0, snd_max = 0;
  // Loss recovery (tcp.cpp): while in_recovery, segments from snd_una on are
  // resent, at most cwnd bytes in flight (growing with each ACK), until the
  // child acknowledges `recover` (snd_max when recovery began).
  bool in_recovery = false;
  uint32_t recover = 0, cwnd = 0;
  uint32_t rcv_nxt = 0;
  uint32_t child_wnd = 0;  // bytes, already scaled
  uint16_t child_mss = 536;
  uint8_t child_wscale = 0;
  uint8_t our_wscale = 0;
  bool wscale_ok = false;
  bool child_fin = false;     // child's FIN received and passed on (SHUT_WR)
  bool host_eof = false;      // host socket reached EOF
  bool fin_sent = false;      // our FIN was sent: it is the byte at snd_max - 1
  bool fin_acked = false;
  bool in_blocked = false;    // host send buffer was full; window update owed
  bool wnd_watch = false;     // window was small; update owed on EPOLLOUT
  bool ack_pending = false;   // an ACK is owed at the end of this batch
  bool ack_queued = false;    // slot is in tcp_ack_list
  bool last_wnd_zero = false;
  uint8_t dupacks = 0;
  uint8_t retries = 0;
  uint16_t last_child_win_raw = 0;
  uint32_t rto_ms = 200;
  uint64_t rto_deadline = 0;  // monotonic ms; 0 = not armed
  uint64_t rto_queued = 0;    // earliest heap entry for this flow; 0 = none
  uint64_t bytes_up = 0, bytes_down = 0;
  // The child's SYN (IP header + start of TCP), quoted by ICMP errors.
  uint8_t syn_quote[120];
  uint8_t syn_quote_len = 0;
};

// A query relayed over UDP: its own upstream socket (a fresh random source
// port) and a random transaction id.
struct DnsPending {
  bool used = false;
  uint16_t child_id = 0;
  IpAddr caddr, server;  // server: the gateway address the child asked
  uint16_t cport = 0;
  uint64_t deadline = 0;
  uint16_t up_id = 0;  // transaction id used towards the resolver
  UniqueFd sock;       // connected to the resolver
  GateQuery gq;
};

class Engine {
 public:
  Engine(const Config& cfg, const Options& opts, UniqueFd tap, policy::Policy& pol,
         observe::Recorder& rec, Stats* stats);
  std::optional<std::string> init();
  std::optional<std::string> loop(int pidfd, int sigfd, const std::function<void(int, int)>& on_sig);
  // One reactor turn: waits up to timeout_ms (-1: forever) for events and
  // handles them, then runs due timers and sends the ACKs owed. Sets
  // *tree_exited when the pidfd fired. loop() is turns until then; the unit
  // tests drive the engine turn by turn over a socketpair standing in for
  // tap0.
  std::optional<std::string> turn(int timeout_ms, bool* tree_exited);

  // Shared by the protocol files.
  const Config& cfg;
  Options opts;
  UniqueFd tap;
  policy::Policy& pol;
  observe::Recorder& rec;
  Stats& st;
  UniqueFd ep, timerfd;
  uint64_t now = 0;  // monotonic ms, updated once per reactor turn
  alignas(64) uint8_t tx[packet::kFrameMax];
  packet::Mac child_mac{};  // learnt from the child's frames

  void send_frame(size_t len);
  void arm(Tag k, uint32_t slot, uint64_t when);
  // The generation of a flow slot of the table behind `k` (Tcp, Pump and
  // DnsStream share the TCP table; DnsUpstream has no slots).
  uint32_t slot_gen(Tag k, uint32_t slot) const;
  bool is_gateway(const IpAddr& ip) const {
    return ip == opts.plan.gw4 || (opts.plan.ipv6 && ip == opts.plan.gw6);
  }
  const IpAddr& child_ip(Family f) const {
    return f == Family::V4 ? opts.plan.child4 : opts.plan.child6;
  }
  void icmp_error_to_child(const IpAddr& from, const IpAddr& child, uint8_t type4,
                           uint8_t code4, uint8_t type6, uint8_t code6,
                           std::span<const uint8_t> quoted);
  // Logs and counts a policy denial.
  void deny(uint64_t flow_id, policy::Proto p, const IpAddr& ip, std::optional<uint16_t> port,
            const policy::Verdict& v);

  // Per protocol (tcp.cpp, udp.cpp, icmp.cpp, dns_relay.cpp).
  void tcp_input(const uint8_t* frame, const packet::Parsed& p);
  void tcp_event(uint32_t slot, uint32_t events);
  void tcp_timer(uint32_t slot, uint64_t when);
  void tcp_flush_acks();
  void tcp_close_all();
  void udp_icmp_close_all();
  // Datagram flows (dgram.cpp): add a judged flow (fd < 0 when denied;
  // a full table first evicts its least recently used flow), end one
  // (flow_end unless denied), and the idle timer.
  uint32_t dgram_open(DgramTable& table, Tag kind, policy::Proto proto, const FlowKey& key,
                      uint64_t id, int fd, uint64_t idle_ms);
  // Sends one datagram of the flow with the child's TTL, keeping its IP
  // header for ICMP error quotes.
  void dgram_send(DatagramFlow& f, const uint8_t* frame, const packet::Parsed& p,
                  const uint8_t* data, size_t len);
  void dgram_release(DgramTable& table, uint32_t slot, observe::Close close);
  void dgram_timer(DgramTable& table, Tag kind, uint32_t slot, uint64_t when, uint64_t idle_ms);
  void tcp_pump_event(uint32_t slot);
  void dns_stream_event(uint32_t slot);
  void dns_stream_kick(TcpFlow& f);
  void udp_input(const uint8_t* frame, const packet::Parsed& p);
  void udp_event(uint32_t slot, uint32_t events);
  void udp_timer(uint32_t slot, uint64_t when);
  void icmp_input(const uint8_t* frame, const packet::Parsed& p);
  void icmp_event(uint32_t slot, uint32_t events);
  void icmp_timer(uint32_t slot, uint64_t when);
  void dns_input(const uint8_t* frame, const packet::Parsed& p);
  void dns_event(uint32_t slot);
  void dns_timer(uint32_t slot, uint64_t when);
  std::optional<std::string> dns_init();

  // TCP state (tcp.cpp).
  SlotTable<TcpFlow> tcp{16384};
  FlowMap tcp_map;
  std::vector<uint32_t> tcp_ack_list;
  uint32_t tcp_connecting = 0;
  bool tcp_peek_off = true;  // kernel::Feature::TcpPeekOff in use (probed in init)
  uint32_t (*isn_source)() = random_u32;  // our ISNs (the unit tests pick them)
  // UDP and ICMP echo flows.
  DgramTable udp{4096};
  DgramTable icmp{256};
  // DNS relay state: pending queries.
  SlotTable<DnsPending> dns{1024};

 private:
  void tap_readable();
  void handle_frame(const uint8_t* frame, size_t len);
  void run_timers();
  void program_timerfd(uint64_t when);
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  const std::function<void(int, int)>* on_signal_ = nullptr;
  int sigfd_ = -1;
  uint64_t timer_armed_at_ = 0;
  alignas(64) uint8_t rx_[packet::kFrameMax];
};

UniqueFd dns_stream_open(Engine& e, TcpFlow& f, uint32_t slot);
void dns_stream_close(Engine& e, DnsStream& s);

}  // namespace cf::engine
