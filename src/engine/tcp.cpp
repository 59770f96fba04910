// TCP: a translator between the child's TCP and a host socket, not a stack.
//
// Theory of operation (docs/design.md, "The engine", has the overview).
//
// Handshake. The child's SYN starts a non-blocking connect() (after the policy
// allowed it); retransmitted SYNs are ignored while it is pending. Only when
// the host connect succeeds does the child get a SYN-ACK (random ISN, our MSS
// = MTU - 40/60, window scale 7 when the child offered scaling). Refused
// becomes RST+ACK, host/net unreachable an ICMP error quoting the SYN, a
// timeout silence (the child times out as it would natively).
//
// Names (--proxy-dns remote). A SYN to a synthetic address (synth.hpp) is
// judged by the name the address stands for and goes to the proxy as a
// connection to that name; the flow holds its map entry until it is
// released. An address of no entry, or no proxy, is reset at once: the
// synthetic range is never connected to.
//
// DNS. A connection to port 53 is served by a DnsStream (dns_tcp.cpp) over
// a socketpair, through the DNS gate. To the gateway it is accepted at once;
// to any other address it is first judged as a flow to that address, and
// the SYN-ACK waits until that address accepted the stream's own connection
// (a refusal is refused here as any failed connect).
//
// Child -> host. An in-order segment is written with send(MSG_DONTWAIT) and we
// ACK exactly what the socket accepted; the child retransmits the rest (a
// retransmission that overlaps what we took delivers only its new part). The
// window we advertise is 7/8 of the free space of the host send buffer
// (SO_SNDBUF minus the bytes queued, from SO_MEMINFO; our_window() says why).
// When a write is short, we owe a window update: on EPOLLOUT we
// send it followed by three duplicate ACKs so the child fast-retransmits the
// bytes we could not take instead of waiting for its RTO. Out-of-order
// segments are dropped, each answered at once with a duplicate ACK so the
// child's fast retransmit sees three. The child's FIN becomes
// shutdown(SHUT_WR) once everything before it was written.
//
// Host -> child. Data stays in the host socket's receive queue until the child
// ACKs it: we read with MSG_PEEK at SO_PEEK_OFF (the first byte not yet sent),
// cut segments of at most the child's MSS, never past snd_una + the child's
// window, and discard bytes with recv(MSG_TRUNC) as ACKs arrive.
//
// Loss. snd_max is one past the highest byte ever sent; snd_nxt is the next
// to send, below snd_max while resending. On RTO (200 ms, doubling to 10 s,
// 10 tries) or the third duplicate ACK (counted ACK by ACK, with an unchanged
// window, and not again while recovering) we enter recovery: snd_nxt goes
// back to snd_una (and the peek offset to 0), and we resend with at most
// cwnd bytes in flight, cwnd starting at one segment and growing by what each
// ACK acknowledges (slow start). ACKs may jump past snd_nxt (the child held
// those bytes): snd_nxt follows them, so only holes are resent. Recovery ends
// when snd_max as it was at its start is acknowledged. This replaces resending
// the whole window at once, which on a congested tap queue lost more than it
// repaired. A zero window is probed on the same timer. Host EOF becomes our
// FIN as soon as all data is sent, on the last data segment when the EOF is
// already known then (ends_data()); the FIN is resent like data.
//
// The child's MSS is clamped to [88, MTU - 40/60]. A SYN on an established
// flow gets a challenge ACK (RFC 5961 4.2) and changes nothing.
//
// Kernels before 6.9 reject SO_PEEK_OFF on TCP (EOPNOTSUPP), and a peek then
// always starts at the head of the queue. Such flows (kernel::Feature::
// TcpPeekOff probed off, or the setsockopt failing for this socket) read the
// bytes out of the socket into a per-flow SendCopy instead, send and resend
// from it, and drop from its front as ACKs arrive. The copy is bounded
// (SendCopy::kMax), which bounds that flow's data in flight. AF_UNIX pairs
// (TLS pump, DNS stream) always peek: unix sockets have had SO_PEEK_OFF since
// Linux 3.4.
//
// Resets. Host ECONNRESET becomes RST to the child; the child's RST becomes
// SO_LINGER{1,0} + close, which resets the host connection.
//
// Cleanup. When both directions are closed and our FIN is acknowledged, the
// socket is closed and the slot lingers 2 s in Closing to absorb the child's
// last retransmits (TIME_WAIT-like). An established flow with no segment
// either way for 24 h (5 min once either side sent its FIN) is reset both
// ways; once the child sends keepalive probes, the host socket probes its
// peer too (mirror_keepalive), so a dead peer becomes a RST to the child.
// Bounds (docs/security.md, "Limits"): a SYN beyond Limits::tcp_flows flows,
// or Limits::tcp_connecting connects in progress, or (to the gateway's port
// 53) Limits::dns_tcp_streams streams, gets a RST, counted and logged as
// limit_hit. A flow's bytes wait in its host socket in both directions (the
// window offered to the child is the send buffer's free space; nothing more
// is read than the child's window takes), so the engine holds none itself;
// the copy path holds at most SendCopy::kMax per flow and
// Limits::tcp_copy_bytes in all, and a flow that finds no memory reads no
// more until its child's ACKs (or its retransmission timer) let it retry.
//
// Sequence numbers wrap: compare only with seq_lt / seq_le (serial arithmetic).
#include <linux/sock_diag.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cerrno>
#include <fmt/format.h>

#include "capture/wire.hpp"
#include "common/text.hpp"
#include "engine/engine_impl.hpp"
#include "engine/tcp_seq.hpp"

namespace cf::engine {

namespace {

constexpr uint32_t kRtoInitialMs = 200, kRtoMaxMs = 10'000;
constexpr uint8_t kMaxRetries = 10;
constexpr uint64_t kLingerMs = 2'000;
constexpr uint8_t kOurWscale = 7;
constexpr uint64_t kProxyTimeoutMs = 15'000;
// How long the rest of a started ClientHello or request head may take to
// come, from its first byte (docs/policy.md, "Names the tree sends").
constexpr uint64_t kSniffWaitMs = 5'000;
// What a flow's host socket (or socketpair end) is watched for.
constexpr uint32_t kSockEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

// Every change of a flow's state: checked against the transition table
// (tcp_flow.hpp). An impossible transition is a bug in this file, not
// something the child can cause, so it aborts.
void tcp_enter(TcpFlow& f, TcpState to) {
  if (!tcp_transition_ok(f.state, to)) std::abort();
  f.state = to;
}

}  // namespace

struct TcpOps {
  Engine& e;

  observe::Target target(const TcpFlow& f) const { return {f.key.raddr, f.key.rport}; }

  // Free space of the host send buffer, as a window. The kernel charges
  // per-skb overhead against SO_SNDBUF, so only 7/8 of the nominal free
  // space is offered. When the kernel itself no longer calls the socket
  // writable we ask for EPOLLOUT: re-arming the fd makes the poll set
  // SOCK_NOSPACE, so the kernel wakes us (and grows the buffer) once space
  // returns, and we send the window update then. Asking only then, by the
  // kernel's own test (sock_writable), matters: re-arming a socket the kernel
  // calls writable queues EPOLLOUT at once, and a flow whose window is small
  // but whose child sends nothing would spin on it (a stalled upload kept the
  // reactor at 100% CPU that way).
  uint16_t our_window(TcpFlow& f, bool syn) const {
    uint32_t space = 0;
    if (f.sock) {
      // TCP charges queued skbs (payload plus overhead) against SO_SNDBUF:
      // SO_MEMINFO gives both sides of that comparison, so the window we
      // offer is what send() will really take and the child's in-flight
      // data is not cut short (a short write drops every segment behind it,
      // which the child, without SACK, recovers one segment per RTT). An
      // AF_UNIX pair (TLS pump, DNS stream) is charged by SIOCOUTQ.
      int sndbuf = 0, queued = 0;
      if (f.sock_is_unix) {
        socklen_t sl = sizeof sndbuf;
        getsockopt(f.sock.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl);
        ioctl(f.sock.get(), SIOCOUTQ, &queued);
      } else {
        uint32_t mem[SK_MEMINFO_VARS] = {};
        socklen_t ml = sizeof mem;
        getsockopt(f.sock.get(), SOL_SOCKET, SO_MEMINFO, mem, &ml);
        sndbuf = int(mem[SK_MEMINFO_SNDBUF]);
        queued = int(mem[SK_MEMINFO_WMEM_QUEUED]);
      }
      space = sndbuf > queued ? uint32_t(sndbuf - queued) / 8 * 7 : 0;
      bool writable = sock_writable(f.sock_is_unix, sndbuf, queued);
      // After a short write the window stays shut until the kernel calls the
      // socket writable again or a third of the buffer is free (normally
      // signalled by EPOLLOUT; checked here too so a probe from the child can
      // reopen it). For TCP the first comes first; an AF_UNIX pair is
      // writable only once three quarters are free, and reopens at a third.
      if (f.in_blocked) {
        if (writable || space >= uint32_t(sndbuf) / 3) f.in_blocked = false;
        else space = 0;
      }
      // Held first bytes will take their share of the buffer, and no more
      // than the hold can take is offered while the name is undecided.
      uint32_t held = f.hold_len - f.hold_sent;
      space = space > held ? space - held : 0;
      if (f.sniffing) space = std::min<uint32_t>(space, uint32_t(sniff::kMax - f.hold_len));
      if (!writable && !f.wnd_watch && f.state != TcpState::Connecting) {
        f.wnd_watch = true;
        e.rewatch(f.sock.get(), kSockEvents, tag(Tag::Tcp, f.slot, e.tcp.gen(f.slot)));
      }
    }
    uint32_t scaled = syn ? space : space >> f.our_wscale;
    return uint16_t(std::min<uint32_t>(scaled, 65535));
  }

  void send_seg(TcpFlow& f, uint8_t flags, uint32_t seq, size_t payload_len,
                bool syn_opts = false) {
    packet::TcpSeg s;
    s.src = f.key.raddr;
    s.dst = f.key.caddr;
    s.sport = f.key.rport;
    s.dport = f.key.cport;
    s.seq = seq;
    s.ack = f.rcv_nxt;
    s.flags = flags;
    s.window = our_window(f, syn_opts);
    f.last_wnd_zero = s.window == 0;
    if (syn_opts) {
      uint32_t mtu = e.opts.plan.mtu;
      s.mss = uint16_t(std::min<uint32_t>(mtu - (f.key.raddr.is_v4() ? 40 : 60), 65535));
      s.wscale = f.wscale_ok ? int8_t(f.our_wscale) : int8_t(-1);
    }
    if (!e.opts.vnet_hdr) {
      e.send_frame(packet::build_tcp(e.tx, e.opts.plan.gw_mac, e.child_mac, s, payload_len));
      return;
    }
    // Offloads: the tree's kernel takes the checksum as valid and a segment
    // over the child's MSS as one it would have put together itself (GRO).
    size_t len = packet::build_tcp(e.tx, e.opts.plan.gw_mac, e.child_mac, s, payload_len,
                                   packet::Csum::Partial);
    const bool v4 = s.src.is_v4();
    const size_t l4 = packet::l4_offset(s.src.family);
    packet::VnetHdr vh{};
    vh.flags = packet::kVnetNeedsCsum;
    vh.csum_start = uint16_t(l4);
    vh.csum_offset = 16;
    if (payload_len > f.child_mss) {
      vh.gso_type = v4 ? packet::kGsoTcp4 : packet::kGsoTcp6;
      vh.gso_size = f.child_mss;
      vh.hdr_len = uint16_t(l4 + 20);  // a data segment: no TCP options
    }
    e.send_frame(len, &vh);
  }

  void send_ack(TcpFlow& f) {
    send_seg(f, packet::kAck, f.snd_max, 0);
    f.ack_pending = false;
  }

  void rst_for(const packet::Parsed& p) {
    packet::TcpSeg s;
    s.src = p.dst;
    s.dst = p.src;
    s.sport = p.dport;
    s.dport = p.sport;
    if (p.flags & packet::kAck) {
      s.seq = p.ack;
      s.ack = 0;
      s.flags = packet::kRst;
    } else {
      s.seq = 0;
      uint32_t len = uint32_t(p.payload_len) + ((p.flags & packet::kSyn) ? 1 : 0) +
                     ((p.flags & packet::kFin) ? 1 : 0);
      s.ack = p.seq + len;
      s.flags = packet::kRst | packet::kAck;
    }
    s.window = 0;
    e.send_frame(packet::build_tcp(e.tx, e.opts.plan.gw_mac, p.src_mac, s, 0));
  }

  // Queues a timer entry for the flow unless an earlier one is queued (each
  // flow keeps at most one live entry; a later one is queued when it fires).
  void queue(TcpFlow& f, uint64_t when) {
    if (when && (f.rto_queued == 0 || when < f.rto_queued)) {
      f.rto_queued = when;
      e.arm(Tag::Tcp, f.slot, when);
    }
  }

  void arm(TcpFlow& f, uint64_t deadline) {
    f.rto_deadline = deadline;
    queue(f, deadline);
  }

  // When an established flow with no segment either way is reset: sooner once
  // either side has finished (a half-closed flow nobody finishes).
  uint64_t idle_deadline(const TcpFlow& f) const {
    if (f.state != TcpState::Established) return 0;
    bool half = f.child_fin || f.fin_sent;
    return f.last_ms + (half ? e.tcp_half_closed_idle_ms : e.tcp_idle_ms);
  }

  // The child probes (keepalive, or a zero-window probe): from now on the
  // host socket keeps the peer alive too, so a peer that died turns into
  // ETIMEDOUT there and into a RST to the child (event()), instead of the
  // engine answering the child's probes for a connection that is gone.
  void mirror_keepalive(TcpFlow& f) {
    if (f.host_keepalive || !f.sock || f.sock_is_unix) return;
    f.host_keepalive = true;
    int one = 1, idle = e.tcp_keep_idle_s, intvl = e.tcp_keep_intvl_s, cnt = e.tcp_keep_cnt;
    setsockopt(f.sock.get(), SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(f.sock.get(), IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(f.sock.get(), IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
    setsockopt(f.sock.get(), IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
  }

  // The flow's held first bytes are no longer needed (Limits::sniff_holds).
  void drop_hold(TcpFlow& f) {
    if (!f.hold) return;
    f.hold.reset();
    f.hold_len = f.hold_sent = 0;
    --e.sniff_holding;
  }

  void release(TcpFlow& f, bool log, observe::Close close) {
    if (f.state == TcpState::Connecting && e.tcp_connecting) --e.tcp_connecting;
    drop_hold(f);
    if (f.dns) dns_stream_close(e, *f.dns);
    if (log && !f.dns)
      e.rec.flow_end(f.flow_id, policy::Proto::Tcp, target(f), f.bytes_up, f.bytes_down,
                     e.now - f.started_ms, close);
    // A valid sock and a pump's two fds are always watched (see new_flow
    // and start_tls_pump, which drop what they could not watch).
    if (f.sock) e.unwatch(f.sock.get());
    if (f.pump) {
      e.unwatch(f.pump->net_fd());
      e.unwatch(f.pump->local_fd());
    }
    f.sock.reset();
    if (f.synth != kNoSlot) e.synth.release(f.synth);
    e.tcp_map.erase(f.key);
    e.tcp.release(f.slot);
  }

  void abort_host(TcpFlow& f) {
    if (!f.sock) return;
    linger l{1, 0};
    setsockopt(f.sock.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }

  // Resets both ends and frees the flow.
  void reset_both(TcpFlow& f, observe::Close close) {
    send_seg(f, packet::kRst | packet::kAck, f.snd_max, 0);
    abort_host(f);
    release(f, true, close);
  }

  void discard(TcpFlow& f, uint32_t n) {
    if (!f.peek_off) {
      f.copy.drop(n);
      return;
    }
    while (n > 0) {
      // TCP drops queued bytes with MSG_TRUNC and no buffer; AF_UNIX (the TLS
      // pump's socketpair) needs a real read.
      ssize_t r = f.sock_is_unix
                      ? recv(f.sock.get(), e.tx, std::min<size_t>(n, sizeof e.tx), MSG_DONTWAIT)
                      : recv(f.sock.get(), nullptr, n, MSG_TRUNC | MSG_DONTWAIT);
      if (r <= 0) break;
      n -= uint32_t(r);
    }
  }

  // What sniff_data did with the child's in-order bytes.
  enum class Sniffed : uint8_t {
    Pass,      // judged (allowed, or nothing to judge): send them as usual
    Taken,     // `taken` of them are in the hold (and maybe on their way)
    Refused,   // none taken (Limits::sniff_holds): the child sends them again
    Released,  // the flow was denied and released
  };

  // The name in the first bytes was denied, or none could be read although
  // the bytes started like TLS or HTTP/1: a policy_violation (with the name,
  // when there is one), then a reset both ways (flow_end close rst).
  void deny_sniffed(TcpFlow& f, const policy::Verdict& v, const std::string* name,
                    sniff::Source src) {
    ++e.st.sniff_denied;
    observe::Sniffed s{name ? std::string_view(*name) : std::string_view(), sniff::name(src)};
    e.deny(f.flow_id, policy::Proto::Tcp, f.key.raddr, f.key.rport, v, name ? &s : nullptr);
    reset_both(f, observe::Close::Rst);
  }

  // First bytes that cannot be read. Denied (deny_unreadable) when a rule
  // needs the name; when they were read only to learn it (--learn), the
  // flow goes on unjudged: true, and the caller sends what is held.
  bool unreadable(TcpFlow& f, sniff::Proto proto) {
    f.sniffing = false;
    if (e.pol.sniffs_names()) {
      deny_unreadable(f, proto);
      return false;
    }
    e.rec.unreadable_sent();
    return true;
  }

  void deny_unreadable(TcpFlow& f, sniff::Proto proto) {
    policy::Verdict v;
    v.allow = false;
    v.reason_code = "unreadable_name";
    v.control = "--no-sniff-names";
    v.reason = fmt::format(
        "blocked: no name could be read from the first bytes ({} broken, larger than {} bytes, "
        "or not complete within {} s); `--no-sniff-names` turns name checks off",
        proto == sniff::Proto::Tls ? "a TLS ClientHello" : "an HTTP/1 request head", sniff::kMax,
        kSniffWaitMs / 1000);
    deny_sniffed(f, v, nullptr, sniff::Source::TlsSni);
  }

  // Judges what inspect() decided; false when the flow was denied (and
  // released).
  bool judge_sniffed(TcpFlow& f, const sniff::Result& r) {
    f.sniffing = false;
    if (r.verdict == sniff::Verdict::Malformed) return unreadable(f, r.proto);
    for (uint8_t i = 0; i < r.n_names; ++i) {
      std::string name = sniff::normalize(r.names[i]);
      if (name.empty()) continue;  // an address literal: the address was judged
      policy::Verdict v = e.pol.judge_name(name);
      if (!v.allow) {
        deny_sniffed(f, v, &name, r.names[i].source);
        return false;
      }
    }
    if (e.opts.learn_names)
      for (uint8_t i = 0; i < r.n_names; ++i) {
        std::string name = sniff::normalize(r.names[i]);
        if (name.empty()) continue;
        auto known = e.names_for(f.key.raddr);
        if (std::find(known.begin(), known.end(), name) == known.end()) e.rec.name_sent(name);
      }
    return true;
  }

  // Writes the held bytes that have not gone out yet; the hold is freed once
  // they all have. False when the flow was released (the host socket failed).
  bool flush_hold(TcpFlow& f) {
    while (f.hold_sent < f.hold_len) {
      ssize_t n = send(f.sock.get(), f.hold.get() + f.hold_sent, f.hold_len - f.hold_sent,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EINTR) {
        reset_both(f, observe::Close::Rst);
        return false;
      }
      if (n <= 0) {
        f.in_blocked = true;  // the rest goes on EPOLLOUT
        return true;
      }
      f.hold_sent = uint16_t(f.hold_sent + n);
      f.bytes_up += uint64_t(n);
    }
    drop_hold(f);
    return true;
  }

  // The child's next in-order bytes while its name is undecided.
  Sniffed sniff_data(TcpFlow& f, const uint8_t* data, size_t len, size_t* taken) {
    *taken = 0;
    if (!f.hold) {
      // Most first segments decide alone: judged in place, nothing held.
      sniff::Result r = sniff::inspect({data, len}, e.sniff_scratch);
      if (r.verdict != sniff::Verdict::NeedMore)
        return judge_sniffed(f, r) ? Sniffed::Pass : Sniffed::Released;
      if (len >= sniff::kMax) return unreadable(f, r.proto) ? Sniffed::Pass : Sniffed::Released;
      if (e.sniff_holding >= e.opts.limits.sniff_holds) {
        e.limit_hit(observe::Limit::SniffHolds, e.opts.limits.sniff_holds);
        return Sniffed::Refused;
      }
      f.hold = std::make_unique<uint8_t[]>(sniff::kMax);
      ++e.sniff_holding;
      f.sniff_deadline = e.now + kSniffWaitMs;
      queue(f, f.sniff_deadline);
    }
    size_t n = std::min<size_t>(len, sniff::kMax - f.hold_len);
    std::memcpy(f.hold.get() + f.hold_len, data, n);
    f.hold_len = uint16_t(f.hold_len + n);
    *taken = n;
    sniff::Result r = sniff::inspect({f.hold.get(), f.hold_len}, e.sniff_scratch);
    if (r.verdict == sniff::Verdict::NeedMore) {
      if (f.hold_len < sniff::kMax) return Sniffed::Taken;
      if (!unreadable(f, r.proto)) return Sniffed::Released;
      return flush_hold(f) ? Sniffed::Taken : Sniffed::Released;
    }
    if (!judge_sniffed(f, r)) return Sniffed::Released;
    return flush_hold(f) ? Sniffed::Taken : Sniffed::Released;
  }

  // Loss: resend from snd_una, slow-starting from one segment, until the
  // child has acknowledged everything sent so far (snd_max). The child's
  // cumulative ACKs skip what it already holds, so only the holes are resent
  // more than once, and never a whole window in one burst.
  void start_recovery(TcpFlow& f) {
    f.in_recovery = true;
    f.recover = f.snd_max;
    f.cwnd = f.child_mss;
    f.snd_nxt = f.snd_una;
    if (f.peek_off) {
      int zero = 0;
      setsockopt(f.sock.get(), SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero);
    }
  }

  // Without SO_PEEK_OFF: up to `n` bytes that start `inflight` bytes after
  // snd_una, into `dst`, reading more from the host socket into the copy
  // when it holds fewer than `n` unsent bytes. Returns like recv: bytes, 0 at
  // host EOF with nothing unsent, -1 with errno.
  ssize_t copy_next(TcpFlow& f, uint32_t inflight, uint8_t* dst, size_t n) {
    if (inflight > f.copy.size()) return 0;  // only our FIN is in flight
    size_t unsent = f.copy.size() - inflight;
    if (unsent < n && !f.host_eof) {
      // Read ahead up to the child's whole open window in one call.
      size_t open = f.child_wnd > inflight ? f.child_wnd - inflight : 0;
      size_t want = std::max<size_t>(n, open) - unsent;
      ssize_t r = f.copy.fill(f.sock.get(), want);
      if (f.copy.starved() != f.copy_starved) {
        // Counted once each time the flow starts waiting for memory.
        f.copy_starved = f.copy.starved();
        if (f.copy_starved)
          e.limit_hit(observe::Limit::TcpCopyBytes, e.opts.limits.tcp_copy_bytes);
      }
      if (r == 0) {
        f.host_eof = true;
      } else if (r > 0 && size_t(r) < want && f.host_fin_seen &&
                 f.copy.fill(f.sock.get(), want - size_t(r)) == 0) {
        // The peer's FIN had arrived and the read stopped short: one more
        // read sees the EOF now, so our FIN can ride on the last data.
        f.host_eof = true;
      }
      if (r < 0 && errno != EAGAIN && errno != EINTR) return -1;
      unsent = f.copy.size() - inflight;
    }
    if (unsent == 0) {
      if (f.host_eof) return 0;
      errno = EAGAIN;
      return -1;
    }
    size_t m = std::min(n, unsent);
    f.copy.copy_out(inflight, dst, m);
    return ssize_t(m);
  }

  // Whether the `*r` new bytes just read for the segment at snd_nxt end the
  // host's data, so our FIN can go on that segment. With the copy, known once
  // the copy saw EOF. With SO_PEEK_OFF, a short peek reached the end of the
  // queue; if the peer's FIN had already arrived (EPOLLRDHUP), one more peek
  // into the rest of the segment's room either finds bytes that came
  // meanwhile (added to *r) or returns 0: the EOF, from the kernel itself.
  // Riding on the data, the FIN reaches the tree with the last bytes, as it
  // would from a local server: a client that reads them and closes then
  // closes second, and its TIME_WAIT stays at the server's end instead of
  // filling the tree's ports (a Connection: close client would otherwise
  // keep one per request for a minute).
  bool ends_data(TcpFlow& f, uint32_t inflight, size_t n, size_t off, ssize_t* r) {
    if (!f.peek_off) return f.host_eof && inflight + size_t(*r) == f.copy.size();
    if (size_t(*r) >= n || !f.host_fin_seen) return false;
    ssize_t more = recv(f.sock.get(), e.tx + off + *r, n - size_t(*r), MSG_PEEK | MSG_DONTWAIT);
    if (more > 0) *r += more;
    return more == 0;
  }

  // Sends what the child's window allows from the host socket's queue.
  // Returns false when the flow was freed.
  bool push(TcpFlow& f) {
    if (f.state != TcpState::Established || !f.sock) return true;
    Family fam = f.key.raddr.family;
    size_t off = packet::payload_offset(fam, packet::kProtoTcp);
    size_t cap = packet::kFrameMax - off;
    // Data ends where our FIN sits, once it was sent.
    uint32_t data_end = f.fin_sent ? f.snd_max - 1 : f.snd_max;
    for (;;) {
      uint32_t inflight = f.snd_nxt - f.snd_una;
      if (inflight >= f.child_wnd) break;
      if (f.in_recovery && inflight >= f.cwnd) break;
      bool resend = seq_lt(f.snd_nxt, data_end);
      if (!resend && f.fin_sent) {
        if (f.snd_nxt == data_end) {  // resend the FIN
          send_seg(f, packet::kFin | packet::kAck, data_end, 0);
          f.snd_nxt = f.snd_max;
          f.ack_pending = false;
        }
        break;
      }
      // One segment per child's MSS; with tap0's offloads one as large as
      // an IP packet, which the tree's kernel takes whole.
      size_t seg = e.opts.vnet_hdr ? packet::tcp_max_payload(fam) : f.child_mss;
      size_t n = std::min<size_t>({f.child_wnd - inflight, seg, cap});
      if (f.in_recovery) n = std::min<size_t>(n, f.cwnd - inflight);
      if (resend) n = std::min<size_t>(n, data_end - f.snd_nxt);
      ssize_t r = f.peek_off ? recv(f.sock.get(), e.tx + off, n, MSG_PEEK | MSG_DONTWAIT)
                             : copy_next(f, inflight, e.tx + off, n);
      if (r > 0) {
        // Our FIN rides on the segment that ends the data, new or resent.
        bool last = resend ? f.fin_sent && f.snd_nxt + uint32_t(r) == data_end
                           : ends_data(f, inflight, n, off, &r);
        uint8_t flags = packet::kAck | packet::kPsh | (last ? packet::kFin : 0);
        send_seg(f, flags, f.snd_nxt, size_t(r));
        f.snd_nxt += uint32_t(r);
        if (last) {
          f.snd_nxt += 1;  // the FIN's; snd_max follows below
          f.fin_sent = true;
          f.host_eof = true;
        }
        if (seq_gt(f.snd_nxt, f.snd_max)) f.snd_max = f.snd_nxt;
        f.ack_pending = false;
        if (size_t(r) < n || (last && !resend)) break;
        continue;
      }
      if (r == 0) {
        f.host_eof = true;
        break;
      }
      if (errno == EAGAIN || errno == EINTR) break;
      reset_both(f, observe::Close::Rst);
      return false;
    }
    // EOF seen after the last data went: the FIN follows it at once, without
    // waiting for the data's ACK. (Without SO_PEEK_OFF, host_eof can be seen
    // while the copy still holds unsent bytes: only when it holds just what
    // is in flight is everything sent.)
    if (f.host_eof && !f.fin_sent && f.snd_nxt == f.snd_max &&
        (f.peek_off || f.copy.size() == f.snd_max - f.snd_una)) {
      send_seg(f, packet::kFin | packet::kAck, f.snd_max, 0);
      f.snd_max += 1;
      f.snd_nxt = f.snd_max;
      f.fin_sent = true;
      f.ack_pending = false;
    }
    if (f.snd_max != f.snd_una || f.child_wnd == 0 || f.copy_starved) {
      if (!f.rto_deadline) arm(f, e.now + f.rto_ms);
    }
    return true;
  }

  // Both directions done: close the socket and linger.
  void maybe_finish(TcpFlow& f) {
    if (f.state != TcpState::Established) return;
    if (!(f.child_fin && f.fin_acked)) return;
    if (f.dns) dns_stream_close(e, *f.dns);
    if (!f.dns)
    e.rec.flow_end(f.flow_id, policy::Proto::Tcp, target(f), f.bytes_up, f.bytes_down,
                   e.now - f.started_ms, observe::Close::Fin);
    e.unwatch(f.sock.get());
    f.sock.reset();
    drop_hold(f);
    tcp_enter(f, TcpState::Closing);
    arm(f, e.now + kLingerMs);
  }

  void connected(TcpFlow& f) {
    if (e.tcp_connecting) --e.tcp_connecting;
    int one = 1, zero = 0;
    if (!f.sock_is_unix) setsockopt(f.sock.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Peek at an offset where the kernel allows it for this socket; a refusal
    // (TCP before 6.9, or a forced fallback) selects the copy path.
    f.peek_off = (f.sock_is_unix || e.tcp_peek_off) &&
                 setsockopt(f.sock.get(), SOL_SOCKET, SO_PEEK_OFF, &zero, sizeof zero) == 0;
    if (!f.peek_off) f.copy.set_budget(&e.copy_budget);
    tcp_enter(f, TcpState::SynAckSent);
    f.snd_una = f.isn;
    f.snd_nxt = f.snd_max = f.isn + 1;
    send_seg(f, packet::kSyn | packet::kAck, f.isn, 0, true);
    f.rto_ms = kRtoInitialMs;
    arm(f, e.now + f.rto_ms);
    if (!f.dns)
      e.rec.connect_result(f.flow_id, target(f), f.via_proxy,
                           e.names_for(f.key.raddr), nullptr);
  }

  // Puts a TlsPump between the proxy's socket (watched since new_flow) and
  // the translator, which from now on uses one end of a socketpair as its
  // host socket; the pump serves the other end. On failure (no socketpair,
  // or no epoll resources for its two new fds) the proxy's socket is
  // unwatched and everything the pump holds is closed, so release() finds
  // neither sock nor pump. The Error goes to the flow log.
  Status start_tls_pump(TcpFlow& f, SSL* tls) {
    const uint32_t slot = f.slot;
    const int net = f.sock.get();
    f.pump = std::make_unique<proxy::TlsPump>(tls, std::move(f.sock));
    f.sock = f.pump->take_translator_end();
    f.sock_is_unix = true;
    Status done;
    if (!f.sock) {
      done = Error{"socketpair for the TLS tunnel failed", "proxy"};
    } else {
      e.rewatch(net, kSockEvents, tag(Tag::Pump, slot, e.tcp.gen(slot)));
      if (!e.watch(f.pump->local_fd(), kSockEvents, tag(Tag::Pump, slot, e.tcp.gen(slot)))) {
        done = errno_error("proxy: TLS tunnel: epoll_ctl");
      } else if (!e.watch(f.sock.get(), kSockEvents, tag(Tag::Tcp, slot, e.tcp.gen(slot)))) {
        done = errno_error("proxy: TLS tunnel: epoll_ctl");
        e.unwatch(f.pump->local_fd());
      }
    }
    if (!done) {
      e.unwatch(net);
      f.pump.reset();
      f.sock.reset();
    }
    return done;
  }

  // The proxy failed this connection: the child gets a reset.
  void proxy_failed(TcpFlow& f, const std::string& why) {
    e.rec.connect_result(f.flow_id, target(f), true, e.names_for(f.key.raddr),
                         why.c_str());
    send_seg(f, packet::kRst | packet::kAck, 0, 0);
    release(f, false, observe::Close::Error);
  }

  void connect_failed(TcpFlow& f, int err) {
    if (f.via_proxy) {
      proxy_failed(f, fmt::format("proxy {}: {}", e.opts.proxy->uri().str(),
                                  connect_error_text(err)));
      return;
    }
    e.rec.connect_result(f.flow_id, target(f), false, e.names_for(f.key.raddr),
                         connect_error_text(err));
    refuse_failed(f, err);
  }

  // The child's SYN gets what a failed connect would have given it natively
  // (RST for a refusal, an ICMP error for an unreachable host or network,
  // silence for a time-out); the flow is released.
  void refuse_failed(TcpFlow& f, int err) {
    switch (err) {
      case ETIMEDOUT: break;  // silence: the child times out by itself
      case EHOSTUNREACH:
        e.icmp_error_to_child(f.key.raddr, f.key.caddr, packet::icmp4::kUnreach,
                              packet::icmp4::kHostUnreach, packet::icmp6::kUnreach,
                              packet::icmp6::kAddrUnreach, {f.syn_quote, f.syn_quote_len});
        break;
      case ENETUNREACH:
        e.icmp_error_to_child(f.key.raddr, f.key.caddr, packet::icmp4::kUnreach,
                              packet::icmp4::kNetUnreach, packet::icmp6::kUnreach,
                              packet::icmp6::kNoRoute, {f.syn_quote, f.syn_quote_len});
        break;
      default:
        send_seg(f, packet::kRst | packet::kAck, 0, 0);
        break;
    }
    release(f, false, observe::Close::Error);
  }

  void init_flow(TcpFlow& f, const uint8_t* frame, const packet::Parsed& p, uint64_t id) {
    f.key = FlowKey{p.src, p.dst, p.sport, p.dport};
    f.flow_id = id;
    f.started_ms = e.now;
    f.isn = e.isn_source();
    f.rcv_nxt = p.seq + 1;
    // The child's MSS, clamped to what tap0's MTU carries (a segment any
    // larger could not be written to tap0) and to no less than Linux's
    // TCP_MIN_MSS, so a hostile tiny MSS cannot make us cut 1-byte segments.
    uint32_t mtu_mss = e.opts.plan.mtu - (p.src.is_v4() ? 40 : 60);
    uint32_t mss = p.opts.mss ? p.opts.mss : (p.src.is_v4() ? 536 : 1220);
    f.child_mss = uint16_t(std::clamp<uint32_t>(mss, 88, mtu_mss));
    f.wscale_ok = p.opts.wscale >= 0;
    f.child_wscale = f.wscale_ok ? uint8_t(p.opts.wscale) : 0;
    f.our_wscale = f.wscale_ok ? kOurWscale : 0;
    f.child_wnd = p.window;
    f.last_child_win_raw = p.window;
    size_t qlen = std::min<size_t>(p.l4_off - p.l3_off + 8 + 20, sizeof f.syn_quote);
    qlen = std::min(qlen, p.l4_off + p.l4_len - p.l3_off);
    std::memcpy(f.syn_quote, frame + p.l3_off, qlen);
    f.syn_quote_len = uint8_t(qlen);
  }

  // The connect of a direct DNS stream to the address the child asked ended.
  void dns_stream_connected(TcpFlow& f, int err) {
    if (f.state != TcpState::Connecting || !f.dns) return;
    if (err == 0) connected(f);
    else refuse_failed(f, err);
  }

  void new_flow(const uint8_t* frame, const packet::Parsed& p) {
    const Limits& lim = e.opts.limits;
    if (e.tcp.full() || e.tcp_connecting >= lim.tcp_connecting) {
      ++e.st.tcp_refused_overload;
      if (e.tcp.full()) e.limit_hit(observe::Limit::TcpFlows, e.tcp.cap());
      else e.limit_hit(observe::Limit::TcpConnecting, lim.tcp_connecting);
      rst_for(p);
      return;
    }
    IpAddr cip = p.dst;
    uint16_t cport = p.dport;
    bool to_resolver = false, direct = false;
    const IpAddr* upstream = nullptr;
    if (e.opts.proxy_dns_remote && SynthMap::in_range(p.dst)) {
      new_named_flow(frame, p);
      return;
    }
    if (e.is_gateway(p.dst)) {
      if (p.dport == 53 && (e.opts.resolver || e.opts.proxy_dns_remote)) {
        // (Under --proxy-dns remote the stream answers every query itself.)
        to_resolver = true;
        if (e.opts.resolver) upstream = &*e.opts.resolver;
      } else if (e.opts.allow_host_loopback) {
        cip = p.dst.is_v4() ? *IpAddr::parse("127.0.0.1") : *IpAddr::parse("::1");
      } else {
        rst_for(p);
        return;
      }
    } else if (p.dport == 53) {
      // DNS over TCP to another address: judged as a flow to that address
      // (never carried by the proxy, like DNS over UDP); a denial looks like
      // any denied connection. Allowed, it goes through the DNS gate too.
      policy::Verdict v = e.pol.judge_addr(policy::Proto::Tcp, p.dst, false, e.now);
      if (!v.allow) {
        uint64_t id = e.rec.next_flow_id();
        auto names = e.names_for(p.dst);
        e.rec.connect_attempt(id, {p.dst, p.dport}, false, names);
        open_flow(frame, p, id, v, p.dst, p.dport, false, kNoSlot, names);
        return;
      }
      to_resolver = direct = true;
      upstream = &p.dst;
    }
    if (to_resolver) {
      // DNS over TCP: served by a DnsStream (dns_tcp.cpp), which judges and
      // logs every query; no connect_* events.
      if (e.dns_streams >= lim.dns_tcp_streams) {
        ++e.st.tcp_refused_overload;
        e.limit_hit(observe::Limit::DnsTcpStreams, lim.dns_tcp_streams);
        rst_for(p);
        return;
      }
      uint32_t slot = *e.tcp.alloc();
      TcpFlow& f = e.tcp[slot];
      f.slot = slot;
      init_flow(f, frame, p, 0);
      f.sock = dns_stream_open(e, f, slot, upstream);
      const uint64_t t = tag(Tag::Tcp, slot, e.tcp.gen(slot));
      if (!f.sock || !e.watch(f.sock.get(), kSockEvents, t)) {
        if (f.dns) dns_stream_close(e, *f.dns);
        rst_for(p);
        e.tcp.release(slot);  // closes the stream's sockets
        return;
      }
      f.sock_is_unix = true;
      e.tcp_map.emplace(f.key, slot);
      tcp_enter(f, TcpState::Connecting);
      ++e.tcp_connecting;
      if (!direct || e.opts.proxy_dns_remote)
        connected(f);  // the gateway, or --proxy-dns remote: answered here
      else if (f.dns->up_failed)
        dns_stream_connected(f, f.dns->up_error ? f.dns->up_error : ECONNREFUSED);
      else if (!f.dns->up_connecting)
        dns_stream_connected(f, 0);
      return;
    }
    bool via_proxy = e.opts.proxy != nullptr;
    uint64_t id = e.rec.next_flow_id();
    observe::Target t{p.dst, p.dport};
    auto names = e.names_for(p.dst);
    e.rec.connect_attempt(id, t, via_proxy, names);
    policy::Verdict v = e.pol.judge_addr(policy::Proto::Tcp, cip, via_proxy, e.now);
    open_flow(frame, p, id, v, cip, cport, via_proxy, kNoSlot, names);
  }

  // --proxy-dns remote: a connection to a synthetic address goes through the
  // proxy as a connection to the name the address stands for, judged by that
  // name. One the proxy cannot carry (an address of no entry, or no proxy:
  // --offline) is refused at once; the range is never connected to.
  void new_named_flow(const uint8_t* frame, const packet::Parsed& p) {
    bool via_proxy = e.opts.proxy != nullptr;
    uint64_t id = e.rec.next_flow_id();
    observe::Target t{p.dst, p.dport};
    auto entry = e.synth.lookup(p.dst);
    auto names = e.names_for(p.dst);
    e.rec.connect_attempt(id, t, via_proxy, names);
    if (!entry || !via_proxy) {
      ++e.st.synthetic_refused;
      e.rec.connect_result(id, t, via_proxy, names,
                           !entry ? "no name for this synthetic address (--proxy-dns remote)"
                                  : "a synthetic address is reached only through the proxy");
      rst_for(p);
      return;
    }
    policy::Verdict v = e.pol.judge_named(policy::Proto::Tcp, e.synth.name(*entry), via_proxy);
    open_flow(frame, p, id, v, p.dst, p.dport, via_proxy, *entry, names);
  }

  // The judged connection: refused when denied, else a host socket that
  // connects to `cip`:`cport` (or to the proxy when via_proxy).
  void open_flow(const uint8_t* frame, const packet::Parsed& p, uint64_t id,
                 const policy::Verdict& v, IpAddr cip, uint16_t cport, bool via_proxy,
                 uint32_t synth, const std::vector<std::string>& names) {
    observe::Target t{p.dst, p.dport};
    CF_CHECK(synth == kNoSlot || via_proxy);  // the synthetic range is never connected to
    if (!v.allow) {
      e.deny(id, policy::Proto::Tcp, p.dst, p.dport, v);
      e.rec.connect_result(id, t, via_proxy, names, "denied by policy");
      rst_for(p);
      return;
    }
    if (via_proxy) {
      // The proxy's own address is reached directly, outside the policy.
      cip = *e.opts.proxy_addr;
      cport = e.opts.proxy->uri().port;
    }
    int fd = socket(cip.is_v4() ? AF_INET : AF_INET6,
                    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      e.rec.connect_result(id, t, via_proxy, names, strerror(errno));
      rst_for(p);
      return;
    }
    uint32_t slot = *e.tcp.alloc();
    if (!e.watch(fd, kSockEvents, tag(Tag::Tcp, slot, e.tcp.gen(slot)))) {
      // No epoll resources (counted): refused like a full table.
      int err = errno;
      ::close(fd);
      e.tcp.release(slot);
      e.rec.connect_result(id, t, via_proxy, names, strerror(err));
      rst_for(p);
      return;
    }
    TcpFlow& f = e.tcp[slot];
    f.slot = slot;
    init_flow(f, frame, p, id);
    f.sock.reset(fd);
    f.connect_ip = cip;
    f.connect_port = cport;
    f.via_proxy = via_proxy;
    f.synth = synth;
    f.sniffing = e.pol.sniffs_names() || e.opts.learn_names;
    if (synth != kNoSlot) e.synth.hold(synth);
    e.tcp_map.emplace(f.key, slot);
    ++e.st.tcp_flows;

    if (e.opts.wire) e.opts.wire->track(fd, IPPROTO_TCP, cip, cport, id);
    sockaddr_storage ss;
    socklen_t sl = to_sockaddr(cip, cport, &ss);
    int r = connect(fd, reinterpret_cast<sockaddr*>(&ss), sl);
    tcp_enter(f, TcpState::Connecting);
    ++e.tcp_connecting;
    if (via_proxy) arm(f, e.now + kProxyTimeoutMs);
    if (r == 0) {
      host_connected(f);
    } else if (errno != EINPROGRESS) {
      connect_failed(f, errno);
    }
  }

  // The host TCP connection is up: direct flows are connected; proxied ones
  // start (or continue) the proxy handshake.
  void host_connected(TcpFlow& f) {
    if (!f.via_proxy) {
      connected(f);
      return;
    }
    if (!f.hs) {
      std::string_view name = f.synth != kNoSlot ? e.synth.name(f.synth) : std::string_view{};
      f.hs = std::make_unique<proxy::Handshake>(*e.opts.proxy, f.key.raddr, f.key.rport, name);
    }
    proxy::Step step = f.hs->advance(f.sock.get());
    switch (step) {
      case proxy::Step::WantRead:
      case proxy::Step::WantWrite: return;
      case proxy::Step::Failed: proxy_failed(f, f.hs->error()); return;
      case proxy::Step::Done: break;
    }
    if (SSL* tls = f.hs->take_tls()) {
      if (auto piped = start_tls_pump(f, tls); !piped) {
        proxy_failed(f, piped.error().str());
        return;
      }
    }
    f.hs.reset();
    f.rto_deadline = 0;
    connected(f);
    if (f.pump) f.pump->pump();
  }

  void input(const uint8_t* frame, const packet::Parsed& p) {
    FlowKey key{p.src, p.dst, p.sport, p.dport};
    auto it = e.tcp_map.find(key);
    if (it == e.tcp_map.end()) {
      if (p.flags & packet::kRst) return;
      if ((p.flags & packet::kSyn) && !(p.flags & packet::kAck)) new_flow(frame, p);
      else rst_for(p);
      return;
    }
    uint32_t slot = it->second;
    TcpFlow& f = e.tcp[slot];
    f.last_ms = e.now;
    if (p.flags & packet::kRst) {
      if (f.state == TcpState::Closing) {
        release(f, false, observe::Close::Rst);
        return;
      }
      abort_host(f);
      release(f, true, observe::Close::Rst);
      return;
    }
    switch (f.state) {
      case TcpState::Free:
      case TcpState::Connecting: return;  // SYN retransmits while connecting
      case TcpState::Closing:
        if ((p.flags & packet::kSyn) && !(p.flags & packet::kAck)) {
          release(f, false, observe::Close::Fin);  // port reuse after close
          new_flow(frame, p);
          return;
        }
        if (p.payload_len || (p.flags & packet::kFin)) send_ack(f);
        return;
      case TcpState::SynAckSent:
        if (p.flags & packet::kSyn) {
          if (!(p.flags & packet::kAck)) send_seg(f, packet::kSyn | packet::kAck, f.isn, 0, true);
          return;
        }
        if (!(p.flags & packet::kAck) || p.ack != f.isn + 1) return;
        tcp_enter(f, TcpState::Established);
        f.last_ms = e.now;
        queue(f, idle_deadline(f));
        f.snd_una = f.snd_nxt = f.snd_max = f.isn + 1;
        f.rto_deadline = 0;
        f.retries = 0;
        f.rto_ms = kRtoInitialMs;
        break;
      case TcpState::Established:
        if (p.flags & packet::kSyn) {
          // RFC 5961 4.2: a SYN on a synchronized connection gets a
          // challenge ACK and changes nothing; a child that really restarted
          // answers it with a RST.
          send_ack(f);
          return;
        }
        break;
    }

    // ACK processing.
    if (p.flags & packet::kAck) {
      uint32_t ack = p.ack;
      if (seq_lt(f.snd_una, ack) && seq_le(ack, f.snd_max)) {
        uint32_t acked = ack - f.snd_una;
        if (f.fin_sent && ack == f.snd_max) {
          f.fin_acked = true;
          acked -= 1;
        }
        discard(f, acked);
        f.bytes_down += acked;
        f.snd_una = ack;
        // The child already held what we were about to resend: skip it. (With
        // SO_PEEK_OFF the kernel moved the peek offset back by what was
        // discarded, to no less than 0: it is snd_nxt - snd_una again.)
        if (seq_lt(f.snd_nxt, f.snd_una)) f.snd_nxt = f.snd_una;
        if (f.in_recovery) {
          if (seq_lt(ack, f.recover)) f.cwnd += std::max<uint32_t>(acked, 1);  // slow start
          else f.in_recovery = false;
        }
        f.dupacks = 0;
        f.retries = 0;
        f.rto_ms = kRtoInitialMs;
        f.rto_deadline = 0;
        if (f.snd_una != f.snd_max) arm(f, e.now + f.rto_ms);
      } else if (ack == f.snd_una && p.payload_len == 0 && !(p.flags & packet::kFin) &&
                 f.snd_max != f.snd_una && p.window == f.last_child_win_raw) {
        // A duplicate ACK: counted one by one; the third starts fast
        // retransmit, and more during recovery change nothing.
        if (!f.in_recovery && ++f.dupacks == 3) start_recovery(f);
      }
      f.last_child_win_raw = p.window;
      f.child_wnd = uint32_t(p.window) << f.child_wscale;
    }

    // Data from the child. A retransmission that overlaps rcv_nxt delivers
    // its new part.
    size_t data_off = p.payload_off, data_len = p.payload_len;
    uint32_t seq = p.seq;
    if (data_len > 0 && seq_lt(seq, f.rcv_nxt) && seq_gt(seq + uint32_t(data_len), f.rcv_nxt)) {
      uint32_t skip = f.rcv_nxt - seq;
      data_off += skip;
      data_len -= skip;
      seq = f.rcv_nxt;
    }
    if (data_len > 0 && seq != f.rcv_nxt) {
      // Out of order (or a retransmission of what we have): a duplicate ACK
      // at once, one per segment, so the child's fast retransmit sees three.
      send_ack(f);
    } else if (data_len > 0) {
      if (!f.child_fin && f.sock) {
        const uint8_t* data = frame + data_off;
        size_t len = data_len;
        // Held first bytes, already judged, go out before anything new.
        if (f.hold && !f.sniffing) {
          if (!flush_hold(f)) return;
          if (f.hold) len = 0;  // still not all out: the child sends this again
        }
        if (f.sniffing && len) {
          size_t taken = 0;
          switch (sniff_data(f, data, len, &taken)) {
            case Sniffed::Released: return;
            case Sniffed::Refused: len = 0; break;
            case Sniffed::Taken:
              f.rcv_nxt += uint32_t(taken);
              len = 0;
              break;
            case Sniffed::Pass: break;
          }
        }
        if (len) {
          ssize_t n = send(f.sock.get(), data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
          if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
              reset_both(f, observe::Close::Rst);
              return;
            }
            n = 0;
          }
          if (size_t(n) < len) f.in_blocked = true;
          f.rcv_nxt += uint32_t(n);
          f.bytes_up += uint64_t(n);
        }
      }
      f.ack_pending = true;
    }
    // A segment without data that is not the next in sequence is a window
    // probe (seq = rcv_nxt - 1) or an old duplicate: answer with our current
    // window, as a TCP receiver must, so a shut window always reopens.
    if (p.payload_len == 0 && !(p.flags & packet::kFin) && p.seq != f.rcv_nxt)
      f.ack_pending = true;
    if (p.payload_len <= 1 && !(p.flags & packet::kFin) && p.seq == f.rcv_nxt - 1)
      mirror_keepalive(f);
    if (p.flags & packet::kFin) {
      const bool in_order = p.seq + uint32_t(p.payload_len) == f.rcv_nxt && !f.child_fin;
      // A FIN while first bytes are held undecided: the head can never be
      // completed now, so it is decided as unreadable at once (denied when a
      // rule needs the name, else let go) before the FIN is taken.
      if (in_order && f.sniffing && f.hold) {
        if (!unreadable(f, sniff::inspect({f.hold.get(), f.hold_len}, e.sniff_scratch).proto) ||
            !flush_hold(f))
          return;
      }
      // (Not while judged first bytes are still going out: the child sends
      // its FIN again, after them.)
      if (in_order && !(f.hold && !f.sniffing)) {
        if (f.sock) shutdown(f.sock.get(), SHUT_WR);
        f.child_fin = true;
        f.rcv_nxt += 1;
      }
      f.ack_pending = true;
    }
    if (!push(f)) return;
    if (f.ack_pending && !f.ack_queued) {
      f.ack_queued = true;
      e.tcp_ack_list.push_back(slot);
    }
    maybe_finish(f);
  }

  void event(uint32_t slot, uint32_t events) {
    TcpFlow& f = e.tcp[slot];
    if (!f.sock) return;
    f.last_ms = e.now;
    if (f.state == TcpState::Connecting) {
      // A direct DNS stream's socketpair is writable at once: its resolver's
      // connect is followed in dns_tcp.cpp instead.
      if (f.dns) return;
      if (f.hs) {
        host_connected(f);  // handshake progress
        return;
      }
      if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
      int err = 0;
      socklen_t sl = sizeof err;
      getsockopt(f.sock.get(), SOL_SOCKET, SO_ERROR, &err, &sl);
      if (err == 0) host_connected(f);
      else connect_failed(f, err);
      return;
    }
    if (events & EPOLLERR) {
      int err = 0;
      socklen_t sl = sizeof err;
      getsockopt(f.sock.get(), SOL_SOCKET, SO_ERROR, &err, &sl);
      if (err) {
        reset_both(f, observe::Close::Rst);
        return;
      }
    }
    if (f.state != TcpState::Established) return;
    if ((events & EPOLLOUT) && f.hold && !f.sniffing && !flush_hold(f)) return;
    if ((events & EPOLLOUT) && f.in_blocked) {
      f.in_blocked = false;
      f.wnd_watch = false;
      // Window update, then duplicate ACKs so the child resends what the
      // full buffer refused without waiting for its RTO.
      for (int i = 0; i < 4; ++i) send_ack(f);
    } else if ((events & EPOLLOUT) && f.wnd_watch) {
      f.wnd_watch = false;
      send_ack(f);  // window update
    }
    if ((events & EPOLLRDHUP) && !(events & EPOLLERR)) f.host_fin_seen = true;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
      if (!push(f)) return;
      maybe_finish(f);
    }
  }

  void timer(uint32_t slot, uint64_t when) {
    TcpFlow& f = e.tcp[slot];
    if (f.state == TcpState::Free || when != f.rto_queued) return;
    f.rto_queued = 0;
    if (f.sniffing && f.hold) {
      if (f.sniff_deadline <= e.now) {
        // The rest of the ClientHello or request head never came.
        if (!unreadable(f, sniff::inspect({f.hold.get(), f.hold_len}, e.sniff_scratch).proto) ||
            !flush_hold(f))
          return;
      } else {
        queue(f, f.sniff_deadline);
      }
    }
    uint64_t idle_at = idle_deadline(f);
    if (idle_at && idle_at <= e.now) {
      ++e.st.tcp_idle_reset;
      reset_both(f, observe::Close::Timeout);
      return;
    }
    if (f.rto_deadline == 0 || f.rto_deadline > e.now) {
      queue(f, f.rto_deadline);
      queue(f, idle_at);
      return;
    }
    f.rto_deadline = 0;
    switch (f.state) {
      case TcpState::Free: return;
      case TcpState::Connecting:
        if (f.via_proxy) proxy_failed(f, fmt::format("proxy {}: handshake timed out",
                                                     e.opts.proxy->uri().str()));
        return;
      case TcpState::Closing: release(f, false, observe::Close::Fin); return;
      case TcpState::SynAckSent:
        if (++f.retries > kMaxRetries) {
          abort_host(f);
          release(f, true, observe::Close::Timeout);
          return;
        }
        send_seg(f, packet::kSyn | packet::kAck, f.isn, 0, true);
        break;
      case TcpState::Established:
        if (f.snd_max != f.snd_una) {
          if (++f.retries > kMaxRetries) {
            reset_both(f, observe::Close::Timeout);
            return;
          }
          start_recovery(f);
          if (!push(f)) return;
        } else if (f.child_wnd == 0) {
          send_seg(f, packet::kAck, f.snd_una - 1, 0);  // zero-window probe
        } else if (f.copy_starved) {
          // The copy path had no memory for this flow: try again, backing off.
          if (!push(f)) return;
          if (!f.copy_starved) return;
        } else {
          return;
        }
        break;
    }
    f.rto_ms = std::min(f.rto_ms * 2, kRtoMaxMs);
    arm(f, e.now + f.rto_ms);
  }
};

void Engine::tcp_input(const uint8_t* frame, const packet::Parsed& p) { TcpOps{*this}.input(frame, p); }
void Engine::dns_stream_connected(uint32_t slot, int err) {
  TcpOps{*this}.dns_stream_connected(tcp[slot], err);
}
void Engine::tcp_event(uint32_t slot, uint32_t events) { TcpOps{*this}.event(slot, events); }
void Engine::tcp_timer(uint32_t slot, uint64_t when) { TcpOps{*this}.timer(slot, when); }

void Engine::tcp_pump_event(uint32_t slot) {
  TcpFlow& f = tcp[slot];
  if (!f.pump) return;
  if (!f.pump->pump()) {
    // Both directions of the tunnel are closed, or TLS failed: the
    // translator end already saw EOF; a failure resets the child.
    if (f.state == TcpState::Established && !(f.host_eof && f.child_fin)) {
      TcpOps ops{*this};
      ops.push(f);
    }
  }
}

void Engine::tcp_flush_acks() {
  TcpOps ops{*this};
  for (uint32_t slot : tcp_ack_list) {
    TcpFlow& f = tcp[slot];
    f.ack_queued = false;
    if (f.ack_pending && (f.state == TcpState::Established || f.state == TcpState::Closing))
      ops.send_ack(f);
  }
  tcp_ack_list.clear();
}

void Engine::tcp_close_all() {
  TcpOps ops{*this};
  for (uint32_t slot = 0; slot < tcp.size(); ++slot) {
    TcpFlow& f = tcp[slot];
    if (f.state == TcpState::Free) continue;
    bool live = f.state != TcpState::Closing;
    ops.abort_host(f);
    ops.release(f, live, observe::Close::Rst);
  }
}

}  // namespace cf::engine
