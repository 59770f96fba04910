// The reactor of the userspace network engine.
//
// Theory of operation. The engine runs in the parent, in the host's network
// namespace, as the calling user. The command tree's only route out is tap0,
// whose fd the engine owns. One epoll set serves everything; each registered
// fd carries a {kind, generation, slot} tag and one switch dispatches it
// (an event whose generation is not its slot's current one was queued for a
// socket closed since, and is dropped; see flow.hpp):
//
//   tap fd ──frames──► packet::parse ──► ARP / NDP / ping-the-gateway (here)
//                                    ├─► TCP   (tcp.cpp: translator to host sockets)
//                                    ├─► UDP   (udp.cpp + dgram.cpp: socket per flow)
//                                    ├─► DNS   (dns_relay.cpp, dns_tcp.cpp, via dns_gate:
//                                    │          port 53 at any address)
//                                    └─► ICMP  (icmp.cpp + dgram.cpp: ping sockets)
//   host sockets ──► the protocol file that owns the slot ──► frames to tap
//
// Every new flow is judged once by policy::Policy and logged by the Recorder.
// Timers (TCP RTO, idle expiry, DNS timeouts) live in one min-heap driven by
// one timerfd; stale entries are skipped when they fire, and dropped in one
// pass when they have come to outnumber the current ones (a flow that
// re-queues an earlier deadline leaves its later entry behind). The tap is
// read in batches of at most kTapBudget frames per turn so a flooding child
// cannot starve host sockets; ACKs owed to the child are sent once per batch.
//
// Bounds. Whatever the tree does, what the engine holds is bounded by
// Options::limits (docs/security.md, "Limits"): flows per protocol, TCP
// connects in progress, DNS queries in flight, DNS-over-TCP streams and
// their bytes, the TCP copy path's memory, the policy's name map, the
// recorder's counters. A limit that is hit is counted and logged as
// limit_hit (observe::Limit), and the tree sees a refusal (RST, ICMP error,
// SERVFAIL), an eviction, or back-pressure (a TCP window that stays shut),
// never a crash or a hang. A flow that waits costs no CPU: nothing is
// re-armed while the kernel cannot make progress (tcp.cpp, our_window).
//
// Frames that are malformed, fragmented, spoofed (source not the child's
// address) or addressed to nothing we serve are counted in Stats and dropped.
// A new flow whose socket epoll cannot take (no memory, or
// fs.epoll.max_user_watches reached) is refused as when its table is full,
// and counted; registrations at start-up that fail stop the run; a failed
// EPOLL_CTL_MOD or _DEL is a bug and aborts (watch/rewatch/unwatch in
// engine_impl.hpp, docs/design.md "Errors").
//
// docs/design.md, "Life of a packet", follows one TCP connection and one DNS
// query through the functions of this module, step by step.
#include "engine/engine.hpp"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <memory>

#include "capture/wire.hpp"
#include "capture/capture.hpp"
#include "common/clock.hpp"
#include "common/kernel.hpp"
#include "common/random.hpp"
#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {

constexpr int kTapBudget = 256;
// The timer heap is compacted once it holds twice what it held after the
// last compaction, and never below this many entries.
constexpr size_t kTimerCompactMin = 4096;
// How long captured frames may wait for their file's busy writer thread
// when the engine has nothing else to do (capture::Capture::buffered).
constexpr int kCaptureLagMs = 10;

// Registers one of the engine's fixed fds (start-up: a failure stops the run).
Status watch_fixed(int ep, int fd, Tag k, const char* step) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(k, 0);
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) return errno_error(step);
  return {};
}

}  // namespace

Engine::Engine(const Options& o, UniqueFd t, policy::Policy& p, observe::Recorder& r,
               Stats* s)
    : opts(o), tap(std::move(t)), pol(p), rec(r), st(*s) {}

Status Engine::init() {
  ep.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return errno_error("engine: epoll_create1");
  timerfd.reset(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timerfd) return errno_error("engine: timerfd_create");
  int fl = fcntl(tap.get(), F_GETFL);
  if (fl < 0 || fcntl(tap.get(), F_SETFL, fl | O_NONBLOCK) < 0)
    return errno_error("engine: fcntl(tap, O_NONBLOCK)");
  if (auto r = watch_fixed(ep.get(), tap.get(), Tag::Tap, "engine: epoll_ctl(tap)"); !r) return r;
  if (auto r = watch_fixed(ep.get(), timerfd.get(), Tag::Timer, "engine: epoll_ctl(timerfd)"); !r)
    return r;

  tcp_ack_list.reserve(tcp.cap());
  timers_.reserve(kTimerCompactMin);
  timers_compact_at_ = kTimerCompactMin;
  tcp_peek_off = kernel::probe(kernel::Feature::TcpPeekOff).in_use();
  return {};
}

void Engine::send_frame(size_t len, const packet::VnetHdr* vh) {
  if (len == 0) return;
  static const packet::VnetHdr kPlain{};
  if (!vh) vh = &kPlain;
  ssize_t n;
  if (opts.vnet_hdr) {
    iovec iov[2] = {{const_cast<packet::VnetHdr*>(vh), sizeof *vh}, {tx, len}};
    n = ::writev(tap.get(), iov, 2) - ssize_t(sizeof *vh);
  } else {
    n = ::write(tap.get(), tx, len);
  }
  if (n == ssize_t(len)) ++st.frames_out;
  if (opts.capture) {
    capture_held();  // the frame this answers goes first
    // The file shows the checksum the tree's kernel took as valid.
    if (vh->flags & packet::kVnetNeedsCsum)
      packet::finish_partial_csum(tx, len, vh->csum_start, vh->csum_offset);
    opts.capture->frame(capture::Direction::ToChild, {tx, len}, capture_note({tx, len}, false));
  }
  // A full tap queue drops the frame, as a real link would; TCP retransmits.
}

void Engine::capture_held() {
  if (!held_rx) return;
  std::span<const uint8_t> f{held_rx, held_len};
  held_rx = nullptr;
  opts.capture->frame(capture::Direction::FromChild, f, capture_note(f, true));
}

capture::FrameNote Engine::capture_note(std::span<const uint8_t> frame, bool from_child) const {
  packet::Parsed p;
  if (!packet::parse(frame, &p) || p.kind == packet::Kind::Arp) return deny_note;
  FlowKey k;
  const bool is_icmp = p.proto == packet::kProtoIcmp || p.proto == packet::kProtoIcmp6;
  k.caddr = from_child ? p.src : p.dst;
  k.raddr = from_child ? p.dst : p.src;
  if (is_icmp) {
    k.cport = p.icmp_id;
  } else {
    k.cport = from_child ? p.sport : p.dport;
    k.rport = from_child ? p.dport : p.sport;
  }
  std::optional<uint32_t> slot;
  switch (p.proto) {
    case packet::kProtoTcp:
      if (auto it = tcp_map.find(k); it != tcp_map.end())
        return {tcp[it->second].flow_id, nullptr};
      break;
    case packet::kProtoUdp:
      if ((slot = udp.find(k)))
        return {udp[*slot].flow_id, udp[*slot].denied ? udp[*slot].deny_reason : nullptr};
      break;
    case packet::kProtoIcmp:
    case packet::kProtoIcmp6:
      if ((slot = icmp.find(k)))
        return {icmp[*slot].flow_id, icmp[*slot].denied ? icmp[*slot].deny_reason : nullptr};
      break;
    default:
      break;
  }
  return deny_note;
}

void Engine::program_timerfd(uint64_t when) {
  timer_armed_at_ = when;
  itimerspec its{};
  uint64_t delta = when > now ? when - now : 1;
  its.it_value.tv_sec = time_t(delta / 1000);
  its.it_value.tv_nsec = long(delta % 1000) * 1'000'000;
  // Hot path. timerfd_settime fails only for a bad fd or bad values (EBADF,
  // EINVAL, EFAULT), all of which this code rules out; it allocates nothing.
  // A failure would leave every timer unarmed, so it is a broken invariant.
  CF_CHECK(timerfd_settime(timerfd.get(), 0, &its, nullptr) == 0);
}

bool Engine::watch(int fd, uint32_t events, uint64_t t) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = t;
  if (epoll_add(ep.get(), fd, &ev) == 0) return true;
  CF_CHECK(errno == ENOMEM || errno == ENOSPC);
  ++st.epoll_refused;
  return false;
}

void Engine::rewatch(int fd, uint32_t events, uint64_t t) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = t;
  CF_CHECK(epoll_ctl(ep.get(), EPOLL_CTL_MOD, fd, &ev) == 0);
}

void Engine::unwatch(int fd) { CF_CHECK(epoll_ctl(ep.get(), EPOLL_CTL_DEL, fd, nullptr) == 0); }

uint16_t Engine::random_id() {
  if (rand_left_ == 0) {
    if (random_bytes(rand_ids_, sizeof rand_ids_)) {
      rand_left_ = std::size(rand_ids_);
    } else {
      return uint16_t(random_u32());
    }
  }
  return rand_ids_[--rand_left_];
}

uint32_t Engine::slot_gen(Tag k, uint32_t slot) const {
  switch (k) {
    case Tag::Tcp:
    case Tag::Pump:
    case Tag::DnsStream: return tcp.gen(slot);
    case Tag::Udp: return udp.gen(slot);
    case Tag::Icmp: return icmp.gen(slot);
    case Tag::DnsUpstream: return dns.gen(slot);
    case Tag::Tap:
    case Tag::Timer:
    case Tag::Pidfd:
    case Tag::Signal: return 0;
  }
  return 0;
}

void Engine::arm(Tag k, uint32_t slot, uint64_t when) {
  if (timers_.size() >= timers_compact_at_) compact_timers();
  timers_.push_back(Timer{when, k, slot, slot_gen(k, slot)});
  std::push_heap(timers_.begin(), timers_.end(), std::greater<Timer>{});
  if (timer_armed_at_ == 0 || when < timer_armed_at_) program_timerfd(when);
}

bool Engine::timer_current(const Timer& t) const {
  if (t.gen != slot_gen(t.kind, t.slot)) return false;
  switch (t.kind) {
    case Tag::Tcp: {
      const TcpFlow& f = tcp[t.slot];
      return f.state != TcpState::Free && f.rto_queued == t.when;
    }
    case Tag::Udp:
    case Tag::Icmp: {
      const DatagramFlow& f = (t.kind == Tag::Udp ? udp : icmp)[t.slot];
      return f.used && f.queued == t.when;
    }
    case Tag::DnsUpstream: {
      const DnsPending& d = dns[t.slot];
      return d.used && d.deadline == t.when;
    }
    case Tag::Tap:
    case Tag::Timer:
    case Tag::Pidfd:
    case Tag::Signal:
    case Tag::Pump:
    case Tag::DnsStream: return false;  // never armed
  }
  return false;
}

void Engine::compact_timers() {
  std::erase_if(timers_, [this](const Timer& t) { return !timer_current(t); });
  std::make_heap(timers_.begin(), timers_.end(), std::greater<Timer>{});
  timers_compact_at_ = std::max(kTimerCompactMin, 2 * timers_.size());
}

void Engine::run_timers() {
  uint64_t expirations;
  while (::read(timerfd.get(), &expirations, sizeof expirations) > 0) {
  }
  timer_armed_at_ = 0;
  while (!timers_.empty() && timers_.front().when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), std::greater<Timer>{});
    Timer t = timers_.back();
    timers_.pop_back();
    if (t.gen != slot_gen(t.kind, t.slot)) continue;  // armed for a freed flow
    switch (t.kind) {
      case Tag::Tcp: tcp_timer(t.slot, t.when); break;
      case Tag::Udp: udp_timer(t.slot, t.when); break;
      case Tag::Icmp: icmp_timer(t.slot, t.when); break;
      case Tag::DnsUpstream: dns_timer(t.slot, t.when); break;
      case Tag::Tap:
      case Tag::Timer:
      case Tag::Pidfd:
      case Tag::Signal:
      case Tag::Pump:
      case Tag::DnsStream: break;
    }
  }
  if (!timers_.empty() && (timer_armed_at_ == 0 || timers_.front().when < timer_armed_at_))
    program_timerfd(timers_.front().when);
}

void Engine::icmp_error_to_child(const IpAddr& from, const IpAddr& child, uint8_t type4,
                                 uint8_t code4, uint8_t type6, uint8_t code6,
                                 std::span<const uint8_t> quoted) {
  bool v4 = child.is_v4();
  send_frame(packet::build_icmp_error(tx, opts.plan.gw_mac, child_mac, from, child,
                                      v4 ? type4 : type6, v4 ? code4 : code6, quoted));
}

void Engine::deny(uint64_t flow_id, policy::Proto p, const IpAddr& ip,
                  std::optional<uint16_t> port, const policy::Verdict& v,
                  const observe::Sniffed* sniffed) {
  std::string remote = port ? format_endpoint(ip, *port) : ip.str();
  rec.policy_violation(flow_id, p, remote, ip, port, v, names_for(ip), sniffed);
  if (handling_rx) deny_note = {flow_id, v.reason_code};
}

void Engine::learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s) {
  if (pol.learn(name, ip, ttl_s, now)) limit_hit(observe::Limit::NameMap, pol.max_names());
}

std::vector<std::string> Engine::names_for(const IpAddr& ip) const {
  if (opts.proxy_dns_remote && SynthMap::in_range(ip)) {
    if (auto i = synth.lookup(ip)) return {synth.name(*i)};
    return {};
  }
  return pol.names_for(ip, now);
}

void Engine::synthetic_unreachable(const uint8_t* frame, const packet::Parsed& p) {
  ++st.synthetic_refused;
  bool answerable = p.proto == packet::kProtoUdp ||
                    (p.proto == packet::kProtoIcmp && p.icmp_type == packet::icmp4::kEcho) ||
                    (p.proto == packet::kProtoIcmp6 && p.icmp_type == packet::icmp6::kEcho);
  if (!answerable) return;  // never an ICMP error about an ICMP error
  std::span<const uint8_t> quoted{frame + p.l3_off,
                                  std::min<size_t>(p.l4_off - p.l3_off + p.l4_len, 576)};
  // Administratively prohibited, as for a policy denial: a hard error, so a
  // connected socket fails at once (host unreachable is a soft error that
  // Linux does not report to a UDP socket without IP_RECVERR).
  icmp_error_to_child(p.dst, p.src, packet::icmp4::kUnreach, packet::icmp4::kAdminProhibited,
                      packet::icmp6::kUnreach, packet::icmp6::kAdminProhibited, quoted);
}

// Destinations that would reach the host itself rather than the network.
bool is_host_local(const IpAddr& ip) {
  const auto& b = ip.bytes;
  if (ip.is_v4()) return b[0] == 127 || b[0] == 0;
  bool zero10 = true;
  for (int i = 0; i < 10; ++i) zero10 = zero10 && b[i] == 0;
  if (zero10 && ((b[10] == 0xff && b[11] == 0xff) || (b[10] == 0 && b[11] == 0)))
    return true;  // ::ffff:a.b.c.d (mapped), ::a.b.c.d (compatible), ::1 and ::
  return false;
}

void Engine::handle_frame(const uint8_t* frame, size_t len) {
  packet::Parsed p;
  if (!packet::parse({frame, len}, &p)) {
    ++st.dropped_malformed;
    return;
  }
  const auto& plan = opts.plan;
  switch (p.kind) {
    case packet::Kind::Arp:
      child_mac = p.src_mac;
      if (p.arp_op == 1 && p.arp_target_ip == plan.gw4)
        send_frame(packet::build_arp_reply(tx, plan.gw_mac, plan.gw4, p.arp_sender_mac,
                                           p.arp_sender_ip));
      return;
    case packet::Kind::Fragment: ++st.dropped_fragment; return;
    case packet::Kind::Other: ++st.dropped_other; return;
    case packet::Kind::Ip: break;
  }
  child_mac = p.src_mac;
  // Neighbour discovery for the gateway (source may be :: or link-local).
  if (p.proto == packet::kProtoIcmp6 && p.icmp_type == packet::icmp6::kNeighborSolicit) {
    if (p.l4_len >= 24) {
      IpAddr target = IpAddr::v6_bytes(frame + p.l4_off + 8);
      if (plan.ipv6 && target == plan.gw6) {
        IpAddr dst = p.src;
        IpAddr unspecified;
        unspecified.family = Family::V6;
        if (dst == unspecified) dst = *IpAddr::parse("ff02::1");
        send_frame(packet::build_neighbor_advert(tx, plan.gw_mac, plan.gw6, p.src_mac, dst));
      }
    }
    return;
  }
  if (p.src != child_ip(p.src.family)) {
    // Link-local chatter (router solicitations, MLD) and spoofed sources.
    ++st.dropped_spoofed;
    return;
  }
  if (p.dst.is_v4() ? (p.dst.bytes[0] >= 224) : (p.dst.bytes[0] == 0xff)) {
    ++st.dropped_other;  // multicast / broadcast: nothing to relay
    return;
  }
  if (is_host_local(p.dst)) {
    // The tree's own loopback never reaches tap0; a frame crafted on tap0
    // (packet socket) towards 127/8, ::1, 0/8, :: or an IPv4-mapped IPv6
    // address would otherwise make the engine connect to the host's own
    // loopback. That is only reachable with --allow-host-loopback, through
    // the gateway address.
    ++st.dropped_spoofed;
    return;
  }
  if (opts.proxy_dns_remote && p.proto != packet::kProtoTcp && SynthMap::in_range(p.dst)) {
    // Only TCP to a synthetic address can go anywhere: through the proxy, by
    // name (tcp.cpp). The range is never routed.
    synthetic_unreachable(frame, p);
    return;
  }
  switch (p.proto) {
    case packet::kProtoTcp: tcp_input(frame, p); return;
    case packet::kProtoUdp:
      // DNS to the gateway here; to any other address, udp.cpp judges the
      // address first and then hands the query to dns_input too.
      if (is_gateway(p.dst) && p.dport == 53)
        dns_input(frame, p, opts.resolver ? &*opts.resolver : nullptr);
      else
        udp_input(frame, p);
      return;
    case packet::kProtoIcmp:
    case packet::kProtoIcmp6: icmp_input(frame, p); return;
    default: ++st.dropped_other; return;
  }
}

ssize_t Engine::read_frame(packet::VnetHdr* vh) {
  ssize_t n;
  if (opts.vnet_hdr) {
    iovec iov[2] = {{vh, sizeof *vh}, {rx_, sizeof rx_}};
    n = ::readv(tap.get(), iov, 2);
    if (n <= 0) return -1;
    ++st.frames_in;
    if (size_t(n) < sizeof *vh + packet::kEthHdr) {
      ++st.dropped_malformed;
      return 0;
    }
    n -= ssize_t(sizeof *vh);
  } else {
    *vh = {};
    n = ::read(tap.get(), rx_, sizeof rx_);
    if (n <= 0) return -1;
    ++st.frames_in;
  }
  if (size_t(n) > sizeof rx_) {  // larger than any IP packet: cut short
    ++st.dropped_malformed;
    return 0;
  }
  return n;
}

void Engine::tap_readable() {
  for (int i = 0; i < kTapBudget; ++i) {
    packet::VnetHdr vh;
    ssize_t n = read_frame(&vh);
    if (n < 0) break;
    if (n == 0) continue;  // dropped; counts against the batch all the same
    if (opts.capture) {
      // A copy: handling may rewrite the frame in place (the DNS relay
      // puts its own transaction id into the query). With the offloads
      // its checksum may be the pseudo-header's alone: the file gets the
      // full one, as the frame would carry on a wire.
      memcpy(held_copy_, rx_, size_t(n));
      if (vh.flags & packet::kVnetNeedsCsum)
        packet::finish_partial_csum(held_copy_, size_t(n), vh.csum_start, vh.csum_offset);
      held_rx = held_copy_;
      held_len = size_t(n);
      handling_rx = true;
    }
    handle_frame(rx_, size_t(n));
    if (opts.capture) {
      capture_held();
      handling_rx = false;
      deny_note = {};
    }
  }
  tcp_flush_acks();
}

Status Engine::loop(int pidfd, int sigfd, const std::function<void(int, int)>& on_sig) {
  if (auto r = watch_fixed(ep.get(), pidfd, Tag::Pidfd, "engine: epoll_ctl(pidfd)"); !r) return r;
  if (sigfd >= 0) {
    if (auto r = watch_fixed(ep.get(), sigfd, Tag::Signal, "engine: epoll_ctl(signalfd)"); !r)
      return r;
  }
  on_signal_ = &on_sig;
  sigfd_ = sigfd;
  for (;;) {
    bool tree_exited = false;
    // Frames a busy capture writer could not take yet go to it within
    // kCaptureLagMs even if nothing else happens.
    const bool lagging = opts.capture && opts.capture->buffered();
    if (auto r = turn(lagging ? kCaptureLagMs : -1, &tree_exited); !r) return r;
    if (tree_exited) break;
  }
  tcp_close_all();
  udp_icmp_close_all();
  rec.flush();
  return {};
}

bool Engine::dispatch(uint64_t t, uint32_t events) {
  uint32_t slot = tag_slot(t);
  Tag kind = tag_kind(t);
  if (tag_gen(t) != slot_gen(kind, slot)) {
    ++st.stale_events;  // queued for a socket closed earlier in this batch
    return false;
  }
  switch (kind) {
    case Tag::Tap: tap_readable(); break;
    case Tag::Timer: run_timers(); break;
    case Tag::Pidfd: return true;
    case Tag::Signal: {
      signalfd_siginfo si;
      while (::read(sigfd_, &si, sizeof si) == sizeof si)
        if (on_signal_) (*on_signal_)(int(si.ssi_signo), si.ssi_code);
      break;
    }
    case Tag::Tcp: tcp_event(slot, events); break;
    case Tag::Udp: udp_event(slot, events); break;
    case Tag::Icmp: icmp_event(slot, events); break;
    case Tag::DnsUpstream: dns_event(slot); break;
    case Tag::Pump: tcp_pump_event(slot); break;
    case Tag::DnsStream: dns_stream_event(slot); break;
  }
  return false;
}

// Waiting. Most of a request-response round trip through the engine is
// wake-ups: the engine sleeps in epoll_wait, the tree's frame or the
// server's answer wakes it, and on a virtual machine waking an idle CPU costs
// several µs each time. So, like KVM's halt polling, a turn first polls
// (epoll_wait with no timeout) for up to poll_us_ before it sleeps. The
// budget adapts to what the waits show: a wait (polling and sleep
// together) that ended within kPollMaxUs (an answer that polling a little
// longer would have caught) doubles it, from kPollStartUs up to kPollMaxUs;
// a longer one (an idle tree, a slow server) ends polling until a wait is
// short again. With a single CPU (Options::poll off) it never polls: the
// process it waits for could not run meanwhile.
// Busy traffic finds events at the first poll and never spins; an idle
// engine sleeps. What it costs: at most kPollMaxUs of CPU per wait that
// polling did not shorten, while waits keep being short.
int Engine::wait_events(epoll_event* evs, int max, int timeout_ms) {
  constexpr uint32_t kPollStartUs = 8, kPollMaxUs = 64;
  if (timeout_ms == 0 || !opts.poll) return epoll_wait(ep.get(), evs, max, timeout_ms);
  if (poll_us_) {
    const uint64_t until = monotonic_us() + poll_us_;
    do {
      int n = epoll_wait(ep.get(), evs, max, 0);
      if (n != 0) return n;
    } while (monotonic_us() < until);
  }
  const uint64_t slept_at = monotonic_us();
  int n = epoll_wait(ep.get(), evs, max, timeout_ms);
  const uint64_t slept = monotonic_us() - slept_at;
  if (n > 0 && slept + poll_us_ <= kPollMaxUs)
    poll_us_ = std::min(kPollMaxUs, std::max(kPollStartUs, poll_us_ * 2));
  else
    poll_us_ = 0;
  return n;
}

Status Engine::turn(int timeout_ms, bool* tree_exited) {
  constexpr int kEvents = 256;
  epoll_event evs[kEvents];
  int n = wait_events(evs, kEvents, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return {};
    return errno_error("engine: epoll_wait");
  }
  now = monotonic_ms();
  for (int i = 0; i < n; ++i)
    if (dispatch(evs[i].data.u64, evs[i].events)) *tree_exited = true;
  tcp_flush_acks();
  rec.flush();
  if (opts.capture) opts.capture->flush();
  if (opts.wire) opts.wire->collect(now);
  return {};
}

// Closing the last fd of tap0 unregisters the device, which waits for RCU
// grace periods (about 30 ms, measured with strace -T); the tree is gone by
// then, so a short-lived child process does it while childflow goes on to
// exit. Without fork (it failed), the close simply happens here.
static void close_detached(UniqueFd fd) {
  pid_t pid = fork();
  if (pid == 0) {
    // Drop every other fd first: a caller reading our stdout/stderr until EOF
    // (a shell's $(...), a test harness) must not wait for this child.
    int keep = fd.get();
    if (keep > 0) close_range(0, unsigned(keep) - 1, 0);
    close_range(unsigned(keep) + 1, ~0U, 0);
    ::close(keep);
    _exit(0);
  }
  // Parent: our reference goes; the child still holds the file, so this
  // close is cheap. Nobody waits for the child: childflow exits first and the
  // child is reaped by init.
}

Status run(const Options& opts, UniqueFd tap, int pidfd, int sigfd,
           const std::function<void(int, int)>& on_signal, policy::Policy& policy,
           observe::Recorder& rec, Stats* stats) {
  auto eng = std::make_unique<Engine>(opts, std::move(tap), policy, rec, stats);
  eng->now = monotonic_ms();
  if (auto r = eng->init(); !r) return r;
  auto result = eng->loop(pidfd, sigfd, on_signal);
  close_detached(std::move(eng->tap));
  return result;
}

}  // namespace cf::engine
