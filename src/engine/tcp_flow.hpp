// A TCP flow of the translator (tcp.cpp) and the rules of its states.
// Private to src/engine/.
#pragma once
#include <cstdint>
#include <memory>

#include "common/addr.hpp"
#include "common/unique_fd.hpp"
#include "engine/dns_tcp.hpp"
#include "engine/flow.hpp"
#include "engine/send_copy.hpp"
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
enum class TcpState : uint8_t { Free, Connecting, SynAckSent, Established, Closing };

// The transition table: which state may follow which. Every change of
// TcpFlow::state goes through tcp_enter() (tcp.cpp), which checks it here; a
// transition not in the table is a broken invariant and aborts. Any state
// may go to Free (the flow is released: RST, failure, timeout).
//   Free        -> Connecting    the child's SYN was allowed; connect() started
//   Connecting  -> SynAckSent    the host connect (and proxy handshake) succeeded
//   SynAckSent  -> Established   the child's ACK of our SYN-ACK
//   Established -> Closing       both FINs exchanged and ours acknowledged
constexpr bool tcp_transition_ok(TcpState from, TcpState to) {
  if (to == TcpState::Free) return true;
  switch (from) {
    case TcpState::Free: return to == TcpState::Connecting;
    case TcpState::Connecting: return to == TcpState::SynAckSent;
    case TcpState::SynAckSent: return to == TcpState::Established;
    case TcpState::Established: return to == TcpState::Closing;
    case TcpState::Closing: return false;
  }
  return false;
}

// Whether the kernel calls a host socket writable (EPOLLOUT), by its own
// test: TCP while the free send space is at least half of what is queued
// (sk_stream_is_writeable), AF_UNIX while at most a quarter of the send
// buffer is in use (unix_writable, which counts one more than SIOCOUTQ).
// `queued` is SK_MEMINFO_WMEM_QUEUED for TCP, SIOCOUTQ for AF_UNIX. The
// translator asks for EPOLLOUT only when this is false (our_window in
// tcp.cpp): asked while it is true, EPOLLOUT is queued at once.
constexpr bool sock_writable(bool unix_stream, int sndbuf, int queued) {
  if (unix_stream) return (int64_t(queued) + 1) * 4 <= sndbuf;
  return sndbuf - queued >= (queued >> 1);
}

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
  // --proxy-dns remote: the synthetic entry (synth.hpp) the child connected
  // to, held while the flow lives; the proxy is asked for its name.
  uint32_t synth = kNoSlot;
  bool sock_is_unix = false;
  // Bytes towards the child stay in the host socket's queue and are read at
  // SO_PEEK_OFF (true), or are moved into `copy` (false; see send_copy.hpp).
  bool peek_off = true;
  SendCopy copy;
  uint64_t flow_id = 0;
  uint64_t started_ms = 0;
  uint64_t last_ms = 0;        // last segment from the child or event on the socket
  bool host_keepalive = false; // SO_KEEPALIVE on the host socket (the child probes)
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
  bool host_fin_seen = false; // EPOLLRDHUP without error: the peer's FIN arrived
  bool fin_sent = false;      // our FIN was sent: it is the byte at snd_max - 1
  bool fin_acked = false;
  bool in_blocked = false;    // host send buffer was full; window update owed
  bool wnd_watch = false;     // socket not writable; window update owed on EPOLLOUT
  bool copy_starved = false;  // the copy path found no memory (Limits::tcp_copy_bytes)
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
  // The name in the child's first bytes (sniff.hpp, docs/policy.md "Names
  // the tree sends"): while `sniffing`, nothing the child sends reaches the
  // host socket until that name is judged. Bytes that did not decide are
  // held in `hold` (allocated once, sniff::kMax bytes, only for a flow whose
  // first segment was not enough; Limits::sniff_holds flows at once) until
  // sniff_deadline; once judged, hold_sent of hold_len have gone out and the
  // rest go before anything new.
  bool sniffing = false;
  std::unique_ptr<uint8_t[]> hold;
  uint16_t hold_len = 0, hold_sent = 0;
  uint64_t sniff_deadline = 0;
  // The child's SYN (IP header + start of TCP), quoted by ICMP errors.
  uint8_t syn_quote[120];
  uint8_t syn_quote_len = 0;
};

}  // namespace cf::engine
