// Flow events from conntrack. See conntrack.hpp.
#include "rootful/conntrack.hpp"

#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "common/clock.hpp"
#include "common/unique_fd.hpp"
#include "observe/recorder.hpp"
#include "policy/policy.hpp"
#include "rootful/flow_ids.hpp"

namespace cf::rootful {
namespace {

constexpr size_t kMaxFlows = 65536;
constexpr int kRcvBuf = 4 << 20;

uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}
uint64_t be64(const uint8_t* p) { return uint64_t(be32(p)) << 32 | be32(p + 4); }

// The attributes of one nest, each (type without flags, payload); false
// when a length does not fit.
struct Attr {
  uint16_t type;
  std::span<const uint8_t> data;
};
bool attrs(std::span<const uint8_t> b, std::vector<Attr>* out) {
  while (b.size() >= 4) {
    uint16_t len, type;
    std::memcpy(&len, b.data(), 2);
    std::memcpy(&type, b.data() + 2, 2);
    if (len < 4 || len > b.size()) return false;
    out->push_back({uint16_t(type & NLA_TYPE_MASK), b.subspan(4, len - 4u)});
    size_t step = (size_t(len) + 3) & ~size_t(3);
    if (step >= b.size()) return true;
    b = b.subspan(step);
  }
  return b.empty();
}

// CTA_TUPLE_ORIG: addresses, protocol, ports or ICMP type; false when it
// does not parse or lacks addresses or protocol.
bool tuple(std::span<const uint8_t> b, CtEvent* ev) {
  std::vector<Attr> top;
  if (!attrs(b, &top)) return false;
  bool have_src = false, have_dst = false, have_proto = false;
  for (const Attr& a : top) {
    std::vector<Attr> in;
    if (a.type != CTA_TUPLE_IP && a.type != CTA_TUPLE_PROTO) continue;
    if (!attrs(a.data, &in)) return false;
    for (const Attr& x : in) {
      if (a.type == CTA_TUPLE_IP) {
        const size_t n = x.data.size();
        if ((x.type == CTA_IP_V4_SRC || x.type == CTA_IP_V4_DST) && n == 4) {
          (x.type == CTA_IP_V4_SRC ? ev->src : ev->dst) = IpAddr::v4_bytes(x.data.data());
          (x.type == CTA_IP_V4_SRC ? have_src : have_dst) = true;
        } else if ((x.type == CTA_IP_V6_SRC || x.type == CTA_IP_V6_DST) && n == 16) {
          (x.type == CTA_IP_V6_SRC ? ev->src : ev->dst) = IpAddr::v6_bytes(x.data.data());
          (x.type == CTA_IP_V6_SRC ? have_src : have_dst) = true;
        }
      } else if (x.type == CTA_PROTO_NUM && x.data.size() >= 1) {
        ev->proto = x.data[0];
        have_proto = true;
      } else if (x.type == CTA_PROTO_SRC_PORT && x.data.size() >= 2) {
        ev->sport = be16(x.data.data());
      } else if (x.type == CTA_PROTO_DST_PORT && x.data.size() >= 2) {
        ev->dport = be16(x.data.data());
      } else if ((x.type == CTA_PROTO_ICMP_TYPE || x.type == CTA_PROTO_ICMPV6_TYPE) &&
                 x.data.size() >= 1) {
        ev->icmp_type = x.data[0];
      } else if ((x.type == CTA_PROTO_ICMP_ID || x.type == CTA_PROTO_ICMPV6_ID) &&
                 x.data.size() >= 2) {
        ev->icmp_id = be16(x.data.data());
      }
    }
  }
  return have_src && have_dst && have_proto;
}

bool counters(std::span<const uint8_t> b, uint64_t* bytes) {
  std::vector<Attr> in;
  if (!attrs(b, &in)) return false;
  for (const Attr& x : in) {
    if (x.type == CTA_COUNTERS_BYTES && x.data.size() >= 8) *bytes = be64(x.data.data());
    if (x.type == CTA_COUNTERS32_BYTES && x.data.size() >= 4) *bytes = be32(x.data.data());
  }
  return true;
}

// One ctnetlink conntrack message (after its nlmsghdr); false: malformed.
bool message(const nlmsghdr& h, std::span<const uint8_t> body, CtEvent* ev) {
  if (body.size() < sizeof(nfgenmsg)) return false;
  const uint8_t t = NFNL_MSG_TYPE(h.nlmsg_type);
  ev->kind = t == IPCTNL_MSG_CT_DELETE                                     ? CtEvent::Kind::Destroy
             : (h.nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) != 0 ? CtEvent::Kind::New
                                                                       : CtEvent::Kind::Update;
  std::vector<Attr> top;
  if (!attrs(body.subspan(NLMSG_ALIGN(sizeof(nfgenmsg))), &top)) return false;
  bool have_tuple = false;
  for (const Attr& a : top) {
    switch (a.type) {
      case CTA_TUPLE_ORIG:
        if (!tuple(a.data, ev)) return false;
        have_tuple = true;
        break;
      case CTA_ID:
        if (a.data.size() >= 4) ev->id = be32(a.data.data());
        break;
      case CTA_STATUS:
        if (a.data.size() >= 4) ev->status = be32(a.data.data());
        break;
      case CTA_MARK:
        if (a.data.size() >= 4) ev->mark = be32(a.data.data());
        break;
      case CTA_PROTOINFO: {
        std::vector<Attr> pi, tcp;
        if (!attrs(a.data, &pi)) return false;
        for (const Attr& p : pi) {
          if (p.type != CTA_PROTOINFO_TCP) continue;
          if (!attrs(p.data, &tcp)) return false;
          for (const Attr& x : tcp)
            if (x.type == CTA_PROTOINFO_TCP_STATE && x.data.size() >= 1) ev->tcp_state = x.data[0];
        }
        break;
      }
      case CTA_COUNTERS_ORIG:
      case CTA_COUNTERS_REPLY:
        if (!counters(a.data, a.type == CTA_COUNTERS_ORIG ? &ev->bytes_orig : &ev->bytes_reply))
          return false;
        ev->has_counters = true;
        break;
      default:
        break;
    }
  }
  return have_tuple;
}

}  // namespace

std::vector<CtEvent> parse_ct(std::span<const uint8_t> dgram, size_t* malformed) {
  std::vector<CtEvent> out;
  while (dgram.size() >= sizeof(nlmsghdr)) {
    nlmsghdr h;
    std::memcpy(&h, dgram.data(), sizeof h);
    if (h.nlmsg_len < sizeof h || h.nlmsg_len > dgram.size()) {
      ++*malformed;  // the rest cannot be framed
      break;
    }
    std::span<const uint8_t> body = dgram.subspan(sizeof h, h.nlmsg_len - sizeof h);
    const uint8_t t = NFNL_MSG_TYPE(h.nlmsg_type);
    if (NFNL_SUBSYS_ID(h.nlmsg_type) == NFNL_SUBSYS_CTNETLINK &&
        (t == IPCTNL_MSG_CT_NEW || t == IPCTNL_MSG_CT_DELETE)) {
      CtEvent ev;
      if (message(h, body, &ev))
        out.push_back(ev);
      else
        ++*malformed;
    }
    size_t step = NLMSG_ALIGN(h.nlmsg_len);
    if (step >= dgram.size()) break;
    dgram = dgram.subspan(step);
  }
  return out;
}

FlowKey flow_key(const CtEvent& e) {
  FlowKey k;
  k.proto = e.proto;
  k.tree = e.src;
  k.remote = e.dst;
  if (e.proto == IPPROTO_TCP || e.proto == IPPROTO_UDP) {
    k.tree_port = e.sport;
    k.remote_port = e.dport;
  } else {
    k.tree_port = e.icmp_id;
  }
  return k;
}

namespace {

class ConntrackImpl final : public Conntrack {
 public:
  ConntrackImpl(const NetPlan& plan, observe::Recorder& rec, const policy::Policy& pol,
                uint32_t relayed_mark, FlowIds* ids, UniqueFd fd)
      : plan_(plan), rec_(rec), pol_(pol), relayed_mark_(relayed_mark), ids_(ids),
        fd_(std::move(fd)) {}

  int fd() const override { return fd_.get(); }

  void on_readable() override {
    for (int k = 0; k < 64; ++k) {  // a burst per turn at most
      ssize_t n = ::recv(fd_.get(), buf_.data(), buf_.size(), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == ENOBUFS) {
          ++lost_;  // the kernel dropped events: keep reading
          continue;
        }
        return;
      }
      handle({buf_.data(), size_t(n)});
    }
  }

  uint64_t finish() override {
    on_readable();
    dump();
    const uint64_t now = monotonic_ms();
    for (auto& [id, f] : flows_) end(f, now, /*at_exit=*/true);
    flows_.clear();
    rec_.flush();
    return lost_ + malformed_;
  }

 private:
  struct Flow {
    uint64_t flow_id = 0;
    policy::Proto proto = policy::Proto::Tcp;
    observe::Target target;
    uint64_t start_ms = 0, closed_ms = 0;  // closed: TIME_WAIT or CLOSE seen
    bool connected = false, result = false, fin = false;
    uint8_t tcp_state = 0;
    uint64_t sent = 0, received = 0;
  };

  bool ours(const CtEvent& e) const {
    const bool from_tree = plan_.is_child(e.src);
    if (!from_tree) return false;
    if (relayed_mark_ && e.mark == relayed_mark_) return false;  // the relay logs it
    if (plan_.is_gateway(e.dst)) return false;
    if (!e.dst.is_v4() && (e.dst.bytes[0] == 0xff || (e.dst.bytes[0] == 0xfe &&
                                                       (e.dst.bytes[1] & 0xc0) == 0x80)))
      return false;
    return e.proto == IPPROTO_TCP || e.proto == IPPROTO_UDP ||
           (e.proto == IPPROTO_ICMP && e.icmp_type == 8) ||
           (e.proto == IPPROTO_ICMPV6 && e.icmp_type == 128);
  }

  void handle(std::span<const uint8_t> dgram) {
    for (const CtEvent& e : parse_ct(dgram, &malformed_)) {
      if (!ours(e)) continue;
      const uint64_t now = monotonic_ms();
      auto it = flows_.find(e.id);
      if (it == flows_.end()) {
        // A flow whose NEW we missed (lost events) still starts here.
        it = start(e, now);
        if (it == flows_.end()) continue;
      }
      Flow& f = it->second;
      if (e.has_counters) f.sent = e.bytes_orig, f.received = e.bytes_reply;
      if (f.proto == policy::Proto::Tcp && e.tcp_state) track_tcp(f, e.tcp_state);
      if (e.kind == CtEvent::Kind::Destroy) {
        end(f, now, false);
        flows_.erase(it);
        if (ids_) ids_->forget(flow_key(e));
      }
    }
    rec_.flush();
  }

  std::map<uint32_t, Flow>::iterator start(const CtEvent& e, uint64_t now) {
    if (flows_.size() >= kMaxFlows) {
      ++lost_;
      return flows_.end();
    }
    Flow f;
    f.flow_id = ids_ ? ids_->of(flow_key(e), FlowIds::Reader::Confirmed) : 0;
    if (!f.flow_id) f.flow_id = rec_.next_flow_id();
    f.start_ms = now;
    f.target = {e.dst, e.proto == IPPROTO_TCP || e.proto == IPPROTO_UDP ? e.dport : uint16_t(0)};
    f.proto = e.proto == IPPROTO_TCP    ? policy::Proto::Tcp
              : e.proto == IPPROTO_UDP  ? policy::Proto::Udp
              : e.proto == IPPROTO_ICMP ? policy::Proto::Icmp4
                                        : policy::Proto::Icmp6;
    auto names = pol_.names_for(e.dst, now);
    if (f.proto == policy::Proto::Tcp)
      rec_.connect_attempt(f.flow_id, f.target, false, names);
    else
      rec_.flow_start(f.flow_id, f.proto, f.target, names);
    return flows_.emplace(e.id, f).first;
  }

  void track_tcp(Flow& f, uint8_t state) {
    f.tcp_state = state;
    if (!f.closed_ms && (state == TCP_CONNTRACK_TIME_WAIT || state == TCP_CONNTRACK_CLOSE))
      f.closed_ms = monotonic_ms();
    if (state >= TCP_CONNTRACK_FIN_WAIT && state <= TCP_CONNTRACK_TIME_WAIT) f.fin = true;
    if (f.result) return;
    const bool answered = state != TCP_CONNTRACK_SYN_SENT && state != TCP_CONNTRACK_CLOSE &&
                          state != TCP_CONNTRACK_SYN_SENT2 && state != TCP_CONNTRACK_NONE;
    if (answered) {
      f.connected = f.result = true;
      rec_.connect_result(f.flow_id, f.target, false, pol_.names_for(f.target.ip, monotonic_ms()),
                          nullptr);
    } else if (state == TCP_CONNTRACK_CLOSE) {
      f.result = true;
      rec_.connect_result(f.flow_id, f.target, false, pol_.names_for(f.target.ip, monotonic_ms()),
                          std::strerror(ECONNREFUSED));
    }
  }

  void end(Flow& f, uint64_t now, bool at_exit) {
    if (f.proto == policy::Proto::Tcp) {
      if (!f.result) {
        f.result = true;
        rec_.connect_result(f.flow_id, f.target, false, pol_.names_for(f.target.ip, now),
                            std::strerror(ETIMEDOUT));
      }
      if (!f.connected) return;  // a connection that never connected has no flow_end
      const uint64_t until = f.closed_ms ? f.closed_ms : now;
      rec_.flow_end(f.flow_id, f.proto, f.target, f.sent, f.received, until - f.start_ms,
                    f.fin ? observe::Close::Fin : observe::Close::Rst);
      return;
    }
    rec_.flow_end(f.flow_id, f.proto, f.target, f.sent, f.received, now - f.start_ms,
                  at_exit ? observe::Close::Fin : observe::Close::Timeout);
  }

  // The conntrack table, read once (IPCTNL_MSG_CT_GET, dump): the counters
  // and states of the flows still open. A socket of its own, so that the
  // dump is not mixed with events.
  void dump() {
    if (flows_.empty()) return;
    UniqueFd s(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
    if (!s) return;
    timeval tv{2, 0};
    ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct {
      nlmsghdr h;
      nfgenmsg g;
    } req{};
    req.h.nlmsg_len = sizeof req;
    req.h.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    req.h.nlmsg_seq = 1;
    req.g.nfgen_family = AF_UNSPEC;
    req.g.version = NFNETLINK_V0;
    sockaddr_nl k{};
    k.nl_family = AF_NETLINK;
    if (::sendto(s.get(), &req, sizeof req, 0, reinterpret_cast<sockaddr*>(&k), sizeof k) < 0)
      return;
    for (;;) {
      ssize_t n = ::recv(s.get(), buf_.data(), buf_.size(), 0);
      if (n <= 0) return;
      std::span<const uint8_t> d{buf_.data(), size_t(n)};
      // Only the flows already known: a dump is no start.
      bool done = false;
      for (std::span<const uint8_t> r = d; r.size() >= sizeof(nlmsghdr);) {
        nlmsghdr h;
        std::memcpy(&h, r.data(), sizeof h);
        if (h.nlmsg_len < sizeof h || h.nlmsg_len > r.size()) break;
        if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) done = true;
        size_t step = NLMSG_ALIGN(h.nlmsg_len);
        if (step >= r.size()) break;
        r = r.subspan(step);
      }
      size_t ignored = 0;
      for (const CtEvent& e : parse_ct(d, &ignored)) {
        auto it = flows_.find(e.id);
        if (it == flows_.end() || !ours(e)) continue;
        if (e.has_counters) it->second.sent = e.bytes_orig, it->second.received = e.bytes_reply;
        if (it->second.proto == policy::Proto::Tcp && e.tcp_state) track_tcp(it->second, e.tcp_state);
      }
      if (done) return;
    }
  }

  NetPlan plan_;
  observe::Recorder& rec_;
  const policy::Policy& pol_;
  uint32_t relayed_mark_ = 0;
  FlowIds* ids_ = nullptr;
  UniqueFd fd_;
  std::map<uint32_t, Flow> flows_;  // by conntrack id
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(1 << 16);
  size_t malformed_ = 0;
  uint64_t lost_ = 0;
};

}  // namespace

Result<std::unique_ptr<Conntrack>> Conntrack::open(const NetPlan& plan, observe::Recorder& rec,
                                                   const policy::Policy& pol,
                                                   uint32_t relayed_mark, FlowIds* ids) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd) return errno_error("rootful: conntrack events (NETLINK_NETFILTER)");
  int size = kRcvBuf;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  sockaddr_nl a{};
  a.nl_family = AF_NETLINK;
  a.nl_groups = NF_NETLINK_CONNTRACK_NEW | NF_NETLINK_CONNTRACK_UPDATE |
                NF_NETLINK_CONNTRACK_DESTROY;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return errno_error("rootful: conntrack events (bind to the ctnetlink groups)");
  return std::unique_ptr<Conntrack>(new ConntrackImpl(plan, rec, pol, relayed_mark, ids, std::move(fd)));
}

namespace {

// Appends attribute `type` with `data`, padded to 4 bytes; returns its offset.
size_t put_attr(std::vector<uint8_t>& b, uint16_t type, const void* data, size_t len) {
  const size_t at = b.size();
  const uint16_t alen = uint16_t(4 + len);
  b.resize(at + NLA_ALIGN(alen));
  std::memcpy(b.data() + at, &alen, 2);
  std::memcpy(b.data() + at + 2, &type, 2);
  if (len) std::memcpy(b.data() + at + 4, data, len);
  return at;
}
// Closes a nested attribute opened at `at`: its length covers what follows.
void end_nest(std::vector<uint8_t>& b, size_t at) {
  const uint16_t len = uint16_t(b.size() - at);
  std::memcpy(b.data() + at, &len, 2);
}

}  // namespace

std::vector<uint8_t> ct_reply_request(uint8_t proto, const IpAddr& remote, uint16_t rport,
                                      const IpAddr& host, uint16_t hport, uint32_t seq) {
  const bool v4 = remote.is_v4();
  std::vector<uint8_t> b(NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg)));
  const size_t tuple = put_attr(b, CTA_TUPLE_REPLY | NLA_F_NESTED, nullptr, 0);
  const size_t ip = put_attr(b, CTA_TUPLE_IP | NLA_F_NESTED, nullptr, 0);
  put_attr(b, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, remote.bytes.data(), v4 ? 4 : 16);
  put_attr(b, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, host.bytes.data(), v4 ? 4 : 16);
  end_nest(b, ip);
  const size_t pr = put_attr(b, CTA_TUPLE_PROTO | NLA_F_NESTED, nullptr, 0);
  put_attr(b, CTA_PROTO_NUM, &proto, 1);
  if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
    const bool i4 = proto == IPPROTO_ICMP;
    const uint16_t id = htons(hport);
    const uint8_t type = i4 ? 0 : 129, code = 0;  // the reply of an echo
    put_attr(b, i4 ? CTA_PROTO_ICMP_ID : CTA_PROTO_ICMPV6_ID, &id, 2);
    put_attr(b, i4 ? CTA_PROTO_ICMP_TYPE : CTA_PROTO_ICMPV6_TYPE, &type, 1);
    put_attr(b, i4 ? CTA_PROTO_ICMP_CODE : CTA_PROTO_ICMPV6_CODE, &code, 1);
  } else {
    const uint16_t sp = htons(rport), dp = htons(hport);
    put_attr(b, CTA_PROTO_SRC_PORT, &sp, 2);
    put_attr(b, CTA_PROTO_DST_PORT, &dp, 2);
  }
  end_nest(b, pr);
  end_nest(b, tuple);
  nlmsghdr h{};
  h.nlmsg_len = uint32_t(b.size());
  h.nlmsg_type = (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET;
  h.nlmsg_flags = NLM_F_REQUEST;
  h.nlmsg_seq = seq;
  std::memcpy(b.data(), &h, sizeof h);
  nfgenmsg g{};
  g.nfgen_family = uint8_t(v4 ? AF_INET : AF_INET6);
  g.version = NFNETLINK_V0;
  std::memcpy(b.data() + NLMSG_HDRLEN, &g, sizeof g);
  return b;
}

Result<CtQuery> CtQuery::open() {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER));
  if (!fd) return errno_error("rootful: conntrack queries (NETLINK_NETFILTER)");
  timeval tv{0, 100'000};
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0)
    return errno_error("rootful: conntrack queries (SO_RCVTIMEO)");
  return CtQuery(std::move(fd));
}

std::optional<CtEvent> CtQuery::by_reply(uint8_t proto, const IpAddr& remote, uint16_t rport,
                                         const IpAddr& host, uint16_t hport) {
  if (remote.is_v4() != host.is_v4()) return std::nullopt;
  const uint32_t seq = ++seq_;
  std::vector<uint8_t> req = ct_reply_request(proto, remote, rport, host, hport, seq);
  sockaddr_nl k{};
  k.nl_family = AF_NETLINK;
  if (::sendto(fd_.get(), req.data(), req.size(), 0, reinterpret_cast<sockaddr*>(&k), sizeof k) < 0)
    return std::nullopt;
  for (;;) {
    ssize_t n = ::recv(fd_.get(), buf_.data(), buf_.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < ssize_t(sizeof(nlmsghdr))) return std::nullopt;  // time-out, error
    nlmsghdr h;
    std::memcpy(&h, buf_.data(), sizeof h);
    if (h.nlmsg_seq != seq) continue;  // an earlier question's late answer
    if (h.nlmsg_type == NLMSG_ERROR) return std::nullopt;  // ENOENT: no such connection
    size_t malformed = 0;
    std::vector<CtEvent> got = parse_ct({buf_.data(), size_t(n)}, &malformed);
    if (got.empty()) return std::nullopt;
    return got.front();
  }
}

}  // namespace cf::rootful
