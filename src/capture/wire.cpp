// --capture-point wire-egress.
//
// Theory of operation. The view holds the real frames of the tree's flows
// on the host's interfaces: every interface of the host's network
// namespace but loopback (a flow leaves by the interface of its route,
// which can differ per destination; one socket on all of them needs no
// routing knowledge and follows route changes). One AF_PACKET socket
// (LinkTap, ifindex 0) is opened before the tree starts, with a filter that
// drops everything attached *before* it is bound, so no frame of the host
// is ever queued on it. From then on its filter is exactly the tree's
// flows, and only the kernel decides what reaches the file.
//
// What a flow is. In the rootless backend every flow of the tree is a
// host socket of the engine. Before its connect(), the engine hands the
// socket to WireSet::track, which binds it to an ephemeral port (port 0:
// the kernel picks one, as connect would), reads the port back, adds
// {protocol, local port, remote address, remote port} and re-attaches the
// filter (SO_ATTACH_FILTER replaces the old program atomically). Only then
// does the engine connect, so the first SYN, and the first reply, are
// matched. A ping socket's port is its echo identifier. Flows end lazily:
// collect() (once a second) asks each socket its name; a socket that is
// gone, or whose fd now holds another port, is dropped kGraceMs later (a
// closed TCP socket still sends FIN and ACKs), and the filter re-attached.
//
// The filter (wire_filter, pure) is classic BPF: it needs no bpf(2), no
// CAP_BPF or CAP_SYS_ADMIN, no map or verifier, and the engine's seccomp
// allowlist already has setsockopt. A frame is parsed once (protocol,
// addresses, ports, into scratch memory) and then compared with each flow
// in turn, in both directions: local port -> remote, remote -> local port.
// The cost is linear in the flows, and a program is at most BPF_MAXINSNS
// (4096) instructions: kMaxWireFlows (128) flows at once. A flow beyond
// that is not captured at all (never something else instead): it is
// counted and the run warns at the end. eBPF with a hash map would lift
// the limit, at the price of CAP_BPF and a loader; the tree's live flows
// rarely reach 128.
//
// What the filter cannot see: IPv4 fragments after the first and IPv6
// packets with extension headers before the L4 header have no ports where
// it looks, and are left out; ICMP errors about a flow are left out (they
// quote the flow, but the filter matches outer headers only).
#include "capture/wire.hpp"

#include <linux/if_packet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "capture/pcapng.hpp"
#include "common/bytes.hpp"
#include "common/clock.hpp"

namespace cf::capture {

namespace {

// A tiny assembler: instructions whose jumps name labels, resolved at the end.
class Program {
 public:
  int new_label() {
    labels_.push_back(-1);
    return int(labels_.size()) - 1;
  }
  void place(int l) { labels_[size_t(l)] = int(code_.size()); }
  void stmt(uint16_t code, uint32_t k) { code_.push_back({{code, 0, 0, k}, -1, -1}); }
  // Conditional jump: to `jt` when true, `jf` when false (-1: next instruction).
  void jump(uint16_t code, uint32_t k, int jt, int jf) { code_.push_back({{code, 0, 0, k}, jt, jf}); }
  void ja(int target) { code_.push_back({{BPF_JMP | BPF_JA, 0, 0, 0}, target, -2}); }
  size_t size() const { return code_.size(); }
  std::vector<sock_filter> finish() const {
    std::vector<sock_filter> out;
    out.reserve(code_.size());
    for (size_t i = 0; i < code_.size(); ++i) {
      sock_filter f = code_[i].f;
      auto off = [&](int l) {
        if (l < 0) return 0u;
        CF_CHECK(labels_[size_t(l)] > int(i));  // placed, and ahead (BPF jumps only forward)
        return uint32_t(labels_[size_t(l)] - int(i) - 1);
      };
      if (code_[i].jf == -2) {
        f.k = off(code_[i].jt);
      } else {
        CF_CHECK(off(code_[i].jt) <= 255 && off(code_[i].jf) <= 255);
        f.jt = uint8_t(off(code_[i].jt));
        f.jf = uint8_t(off(code_[i].jf));
      }
      out.push_back(f);
    }
    return out;
  }

 private:
  struct Insn {
    sock_filter f;
    int jt, jf;  // labels; jf == -2: BPF_JA to jt
  };
  std::vector<Insn> code_;
  std::vector<int> labels_;
};

// Scratch memory: M[0] protocol, M[1] IPv4 source, M[2] IPv4 destination,
// M[3] source port, M[4] destination port, M[5..8] IPv6 source,
// M[9..12] IPv6 destination.
enum : uint32_t { kProto = 0, kSrc4 = 1, kDst4 = 2, kSport = 3, kDport = 4, kSrc6 = 5, kDst6 = 9 };

constexpr uint32_t kAccept = kSnapLen;
constexpr uint16_t kLdMem = BPF_LD | BPF_MEM, kSt = BPF_ST, kJeq = BPF_JMP | BPF_JEQ | BPF_K;

// Every scratch cell is written first. The kernel's checker
// (check_load_and_stores) walks the program in order and keeps what it
// knows across a `ret` into the next instruction, so code placed after a
// `ret` reached with nothing stored would be refused (EINVAL) although no
// path runs it that way.
void clear_scratch(Program& p) {
  p.stmt(BPF_LD | BPF_IMM, 0);
  for (uint32_t m = 0; m < BPF_MEMWORDS; ++m) p.stmt(kSt, m);
}

// One flow: the outbound test (sport, dst, dport) and the inbound one
// (dport, src, sport); either accepts.
void flow_block(Program& p, const WireFlow& f) {
  const bool v4 = f.raddr.is_v4();
  int in = p.new_label(), end = p.new_label(), accept = p.new_label();
  auto addr_is = [&](uint32_t mem, int fail) {
    for (size_t w = 0; w < (v4 ? 1u : 4u); ++w) {
      p.stmt(kLdMem, mem + uint32_t(w));
      p.jump(kJeq, load_be32(f.raddr.bytes.data() + 4 * w), -1, fail);
    }
  };
  p.stmt(kLdMem, kProto);
  p.jump(kJeq, f.proto, -1, end);
  p.stmt(kLdMem, kSport);
  p.jump(kJeq, f.lport, -1, in);
  addr_is(v4 ? kDst4 : kDst6, in);
  p.stmt(kLdMem, kDport);
  p.jump(kJeq, f.rport, accept, in);
  p.place(in);
  p.stmt(kLdMem, kDport);
  p.jump(kJeq, f.lport, -1, end);
  addr_is(v4 ? kSrc4 : kSrc6, end);
  p.stmt(kLdMem, kSport);
  p.jump(kJeq, f.rport, accept, end);
  p.place(accept);
  p.stmt(BPF_RET | BPF_K, kAccept);
  p.place(end);
}

}  // namespace

std::vector<sock_filter> wire_filter(std::span<const WireFlow> flows, int skip_ifindex) {
  if (flows.size() > kMaxWireFlows) flows = flows.first(kMaxWireFlows);
  Program p;
  int drop = p.new_label(), v4 = p.new_label(), v6 = p.new_label();
  int icmp4 = p.new_label(), echo4 = p.new_label(), flows4 = p.new_label();
  int icmp6 = p.new_label(), echo6 = p.new_label(), flows6 = p.new_label();
  clear_scratch(p);
  if (skip_ifindex > 0) {
    p.stmt(BPF_LD | BPF_W | BPF_ABS, uint32_t(SKF_AD_OFF + SKF_AD_IFINDEX));
    p.jump(kJeq, uint32_t(skip_ifindex), drop, -1);
  }
  p.stmt(BPF_LD | BPF_H | BPF_ABS, 12);
  p.jump(kJeq, 0x0800, v4, -1);
  p.jump(kJeq, 0x86dd, v6, drop);

  p.place(v4);
  p.stmt(BPF_LD | BPF_B | BPF_ABS, 14 + 9);
  p.stmt(kSt, kProto);
  p.stmt(BPF_LD | BPF_H | BPF_ABS, 14 + 6);
  p.jump(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, drop, -1);  // a later fragment: no ports
  p.stmt(BPF_LD | BPF_W | BPF_ABS, 14 + 12);
  p.stmt(kSt, kSrc4);
  p.stmt(BPF_LD | BPF_W | BPF_ABS, 14 + 16);
  p.stmt(kSt, kDst4);
  p.stmt(BPF_LDX | BPF_B | BPF_MSH, 14);  // X = IPv4 header length
  p.stmt(kLdMem, kProto);
  p.jump(kJeq, IPPROTO_ICMP, icmp4, -1);
  p.stmt(BPF_LD | BPF_H | BPF_IND, 14);
  p.stmt(kSt, kSport);
  p.stmt(BPF_LD | BPF_H | BPF_IND, 16);
  p.stmt(kSt, kDport);
  p.ja(flows4);
  p.place(icmp4);
  p.stmt(BPF_LD | BPF_B | BPF_IND, 14);
  p.jump(kJeq, 8, echo4, -1);  // echo request
  p.jump(kJeq, 0, echo4, drop);  // echo reply
  p.place(echo4);
  p.stmt(BPF_LD | BPF_H | BPF_IND, 14 + 4);  // identifier
  p.stmt(kSt, kSport);
  p.stmt(kSt, kDport);
  p.ja(flows4);

  p.place(v6);
  p.stmt(BPF_LD | BPF_B | BPF_ABS, 14 + 6);
  p.stmt(kSt, kProto);
  for (uint32_t w = 0; w < 4; ++w) {
    p.stmt(BPF_LD | BPF_W | BPF_ABS, 14 + 8 + 4 * w);
    p.stmt(kSt, kSrc6 + w);
    p.stmt(BPF_LD | BPF_W | BPF_ABS, 14 + 24 + 4 * w);
    p.stmt(kSt, kDst6 + w);
  }
  p.stmt(kLdMem, kProto);
  p.jump(kJeq, IPPROTO_ICMPV6, icmp6, -1);
  p.stmt(BPF_LD | BPF_H | BPF_ABS, 14 + 40);
  p.stmt(kSt, kSport);
  p.stmt(BPF_LD | BPF_H | BPF_ABS, 14 + 42);
  p.stmt(kSt, kDport);
  p.ja(flows6);
  p.place(icmp6);
  p.stmt(BPF_LD | BPF_B | BPF_ABS, 14 + 40);
  p.jump(kJeq, 128, echo6, -1);
  p.jump(kJeq, 129, echo6, drop);
  p.place(echo6);
  p.stmt(BPF_LD | BPF_H | BPF_ABS, 14 + 44);
  p.stmt(kSt, kSport);
  p.stmt(kSt, kDport);
  p.ja(flows6);

  // Conditional jumps reach 255 instructions ahead: the header's drop is
  // here, before the flows; each list of flows ends in its own.
  p.place(drop);
  p.stmt(BPF_RET | BPF_K, 0);
  p.place(flows4);
  for (const WireFlow& f : flows)
    if (f.raddr.is_v4()) flow_block(p, f);
  p.stmt(BPF_RET | BPF_K, 0);
  p.place(flows6);
  for (const WireFlow& f : flows)
    if (!f.raddr.is_v4()) flow_block(p, f);
  p.stmt(BPF_RET | BPF_K, 0);
  return p.finish();
}

std::vector<sock_filter> wire_range_filter(uint16_t lo, uint16_t hi, int skip_ifindex) {
  // Scratch: M[kSport], M[kDport] the ports; M[kProto] the TCP flags (0x10
  // for UDP: any datagram may be a reply).
  constexpr uint16_t kLdW = BPF_LD | BPF_W | BPF_ABS, kLdH = BPF_LD | BPF_H | BPF_ABS,
                     kLdB = BPF_LD | BPF_B | BPF_ABS, kAnd = BPF_ALU | BPF_AND | BPF_K,
                     kJge = BPF_JMP | BPF_JGE | BPF_K, kJgt = BPF_JMP | BPF_JGT | BPF_K,
                     kJset = BPF_JMP | BPF_JSET | BPF_K;
  constexpr uint32_t kFlags = kProto, kAck = 0x10;
  Program p;
  int drop = p.new_label(), accept = p.new_label();
  int v4 = p.new_label(), tcp4 = p.new_label(), udp4 = p.new_label(), ports4 = p.new_label();
  int v6 = p.new_label(), tcp6 = p.new_label(), udp6 = p.new_label(), ports6 = p.new_label();
  int direction = p.new_label(), in_tcp = p.new_label(), out_port = p.new_label(),
      in_port = p.new_label();
  int icmp4 = p.new_label(), icmp6 = p.new_label(), echo_out = p.new_label(),
      echo_in = p.new_label();

  clear_scratch(p);
  if (skip_ifindex > 0) {
    p.stmt(kLdW, uint32_t(SKF_AD_OFF + SKF_AD_IFINDEX));
    p.jump(kJeq, uint32_t(skip_ifindex), drop, -1);
  }
  p.stmt(kLdH, 12);
  p.jump(kJeq, 0x0800, v4, -1);
  p.jump(kJeq, 0x86dd, v6, drop);

  p.place(v4);
  for (uint32_t off : {14u + 12, 14u + 16}) {  // a tree's own address: a veth, not the wire
    p.stmt(kLdW, off);
    p.stmt(kAnd, 0xffff0000);
    p.jump(kJeq, 0x0af00000, drop, -1);  // 10.240.0.0/16
  }
  p.stmt(kLdH, 14 + 6);
  p.jump(kJset, 0x1fff, drop, -1);  // a later fragment: no ports
  p.stmt(BPF_LDX | BPF_B | BPF_MSH, 14);
  p.stmt(kLdB, 14 + 9);
  p.jump(kJeq, IPPROTO_TCP, tcp4, -1);
  p.jump(kJeq, IPPROTO_UDP, udp4, -1);
  p.jump(kJeq, IPPROTO_ICMP, icmp4, drop);
  p.place(icmp4);
  p.stmt(BPF_LD | BPF_B | BPF_IND, 14);  // the ICMP type
  p.jump(kJeq, 8, echo_out, -1);
  p.jump(kJeq, 0, echo_in, drop);
  p.place(tcp4);
  p.stmt(BPF_LD | BPF_B | BPF_IND, 14 + 13);
  p.stmt(kSt, kFlags);
  p.ja(ports4);
  p.place(udp4);
  p.stmt(BPF_LD | BPF_IMM, kAck);
  p.stmt(kSt, kFlags);
  p.place(ports4);
  p.stmt(BPF_LD | BPF_H | BPF_IND, 14);
  p.stmt(kSt, kSport);
  p.stmt(BPF_LD | BPF_H | BPF_IND, 16);
  p.stmt(kSt, kDport);
  p.ja(direction);

  p.place(v6);
  for (uint32_t off : {14u + 8, 14u + 24}) {
    p.stmt(kLdH, off);
    p.jump(kJeq, 0xfd42, drop, -1);  // fd42::/16
  }
  p.stmt(kLdB, 14 + 6);
  p.jump(kJeq, IPPROTO_TCP, tcp6, -1);
  p.jump(kJeq, IPPROTO_UDP, udp6, -1);
  p.jump(kJeq, IPPROTO_ICMPV6, icmp6, drop);
  p.place(icmp6);
  p.stmt(kLdB, 14 + 40);  // the ICMPv6 type
  p.jump(kJeq, 128, echo_out, -1);
  p.jump(kJeq, 129, echo_in, drop);
  p.place(tcp6);
  p.stmt(kLdB, 14 + 40 + 13);
  p.stmt(kSt, kFlags);
  p.ja(ports6);
  p.place(udp6);
  p.stmt(BPF_LD | BPF_IMM, kAck);
  p.stmt(kSt, kFlags);
  p.place(ports6);
  p.stmt(kLdH, 14 + 40);
  p.stmt(kSt, kSport);
  p.stmt(kLdH, 14 + 42);
  p.stmt(kSt, kDport);
  p.ja(direction);

  // ICMP echo: a request leaving, a reply arriving. Their identifier is
  // no port the run reserves, so the capture's hook keeps only the tree's
  // (conntrack says whose it is) and discards the host's own pings.
  p.place(echo_out);
  p.stmt(kLdW, uint32_t(SKF_AD_OFF + SKF_AD_PKTTYPE));
  p.jump(kJeq, PACKET_OUTGOING, accept, drop);
  p.place(echo_in);
  p.stmt(kLdW, uint32_t(SKF_AD_OFF + SKF_AD_PKTTYPE));
  p.jump(kJeq, PACKET_OUTGOING, drop, accept);

  p.place(direction);
  p.stmt(kLdW, uint32_t(SKF_AD_OFF + SKF_AD_PKTTYPE));
  p.jump(kJeq, PACKET_OUTGOING, out_port, in_tcp);
  p.place(in_tcp);
  p.stmt(kLdMem, kFlags);
  p.jump(kJset, kAck, in_port, drop);
  p.place(out_port);
  p.stmt(kLdMem, kSport);
  p.jump(kJge, lo, -1, drop);
  p.jump(kJgt, hi, drop, accept);
  p.place(in_port);
  p.stmt(kLdMem, kDport);
  p.jump(kJge, lo, -1, drop);
  p.jump(kJgt, hi, drop, accept);
  p.place(accept);
  p.stmt(BPF_RET | BPF_K, kAccept);
  p.place(drop);
  p.stmt(BPF_RET | BPF_K, 0);
  return p.finish();
}

bool WireSet::track(int fd, uint8_t proto, const IpAddr& raddr, uint16_t rport,
                    uint64_t flow_id) {
  if (flows_.size() >= kMaxWireFlows) {
    collect(0);  // make room if any flow is gone
    if (flows_.size() >= kMaxWireFlows) {
      ++untracked_;
      return false;
    }
  }
  static const uint8_t kUnspecified6[16] = {};
  sockaddr_storage any{};
  socklen_t len =
      to_sockaddr(raddr.is_v4() ? IpAddr::v4(0) : IpAddr::v6_bytes(kUnspecified6), 0, &any);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&any), len) != 0) {
    ++unbound_;
    return false;
  }
  sockaddr_storage local{};
  socklen_t llen = sizeof local;
  IpAddr ip;
  uint16_t port = 0;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &llen) != 0 ||
      !from_sockaddr(reinterpret_cast<sockaddr*>(&local), &ip, &port) || port == 0) {
    ++unbound_;
    return false;
  }
  const bool icmp = proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6;
  {
    std::lock_guard lock(mu_);
    flows_.push_back({{proto, port, raddr, icmp ? port : rport, flow_id}, fd, 0});
  }
  attach();
  return true;
}

void WireSet::collect(uint64_t now_ms) {
  if (now_ms && now_ms < last_collect_ + 1000) return;
  if (now_ms) last_collect_ = now_ms;
  const uint64_t now = now_ms ? now_ms : monotonic_ms();
  bool changed = false;
  std::vector<Entry> keep;
  keep.reserve(flows_.size());
  for (Entry e : flows_) {
    if (e.gone_since == 0) {
      sockaddr_storage local{};
      socklen_t llen = sizeof local;
      IpAddr ip;
      uint16_t port = 0;
      bool alive = getsockname(e.fd, reinterpret_cast<sockaddr*>(&local), &llen) == 0 &&
                   from_sockaddr(reinterpret_cast<sockaddr*>(&local), &ip, &port) &&
                   port == e.flow.lport;
      if (!alive) e.gone_since = now;
    }
    if (e.gone_since && now >= e.gone_since + kGraceMs) {
      changed = true;
      continue;
    }
    keep.push_back(e);
  }
  if (!changed) {
    std::lock_guard lock(mu_);
    flows_ = std::move(keep);  // gone_since marks
    return;
  }
  {
    std::lock_guard lock(mu_);
    flows_ = std::move(keep);
  }
  attach();
}

void WireSet::attach() {
  std::vector<WireFlow> fl;
  fl.reserve(flows_.size());
  for (const Entry& e : flows_) fl.push_back(e.flow);
  (void)tap_.set_filter(wire_filter(fl, skip_ifindex_));
}

FrameNote WireSet::note(const FiveTuple& t) const {
  std::lock_guard lock(mu_);
  for (const Entry& e : flows_) {
    const WireFlow& f = e.flow;
    if (f.proto != t.proto) continue;
    if ((t.sport == f.lport && t.dst == f.raddr && t.dport == f.rport) ||
        (t.dport == f.lport && t.src == f.raddr && t.sport == f.rport))
      return {f.flow_id, nullptr};
  }
  return {};
}

size_t WireSet::size() const {
  std::lock_guard lock(mu_);
  return flows_.size();
}

}  // namespace cf::capture
