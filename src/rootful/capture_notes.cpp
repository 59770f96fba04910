// Notes of a rootful capture's frames.
//
// Theory of operation. The kernel forwards the tree's packets, so the
// capture's reader (a thread of its own, capture/link_tap.cpp) is the only
// part of childflow that sees them, and it sees them where no verdict or
// address translation has happened yet (the veth's host end, before the
// table) or where they are translated already (the host's links, after
// masquerade). Each hook maps a frame to what the flow log knows about its
// flow, through the run's FlowIds (flow_ids.hpp), which the conntrack
// reader and the relay share:
//
// - veth: the frame's addresses are the tree's. A flow's first frame asks
//   the Policy for its verdict (policy_judge; flow_ids.hpp, "Verdicts",
//   says why that agrees with the table), and every frame of the flow
//   carries the flow's id and, when denied, the reason.
// - wire-egress: the frame carries the host's address and a port of the
//   run's range. The masquerade's part: conntrack knows the connection by
//   its reply direction (the remote towards the host port), and its
//   original direction is the tree's flow; one synchronous ctnetlink
//   question per new host side (never per frame: FlowIds remembers it
//   until conntrack forgets the flow). Race-free: a frame leaving the host
//   has passed conntrack's confirmation (postrouting) before any packet
//   socket sees it, and one arriving is a reply to a confirmed connection.
//   The host-port part: the relay's connections to the proxy (named in
//   FlowIds when bound) and the forwarder's lookups (no flow of the log).
//   ICMP echo has no port of ours, so the filter passes every echo and
//   the hook keeps the ones conntrack gives to the tree.
#include "rootful/capture_notes.hpp"

#include <netinet/in.h>

#include "common/bytes.hpp"
#include "common/clock.hpp"
#include "engine/synth.hpp"
#include "policy/policy.hpp"
#include "rootful/conntrack.hpp"

namespace cf::rootful {
namespace {

bool in(PortRange r, uint16_t port) { return port >= r.lo && port <= r.hi; }

}  // namespace

FlowIds::Judge policy_judge(const policy::Policy& pol, std::mutex& loop_lock, bool relayed_tcp,
                            const NetPlan& plan, const engine::SynthMap* synth) {
  static const IpAddr kBroadcast4 = IpAddr::v4(0xffffffff);
  // The tree's link's directed broadcast: the last address of its /30.
  const IpAddr directed = IpAddr::v4(load_be32(plan.child4.bytes.data()) | 3);
  return [&pol, &loop_lock, relayed_tcp, synth, directed](const FlowKey& k) -> FlowIds::Verdict {
    policy::Proto p;
    switch (k.proto) {
      case IPPROTO_TCP: p = policy::Proto::Tcp; break;
      case IPPROTO_UDP: p = policy::Proto::Udp; break;
      case IPPROTO_ICMP: p = policy::Proto::Icmp4; break;
      case IPPROTO_ICMPV6: p = policy::Proto::Icmp6; break;
      default: return {};
    }
    // TCP but DNS goes to the relay, which judges it as proxied
    // (ruleset.cpp, `divert`).
    const bool relayed = relayed_tcp && k.proto == IPPROTO_TCP && k.remote_port != 53;
    // What the table drops or rejects before its policy (ruleset.cpp,
    // to_host, and DNS under --proxy-dns remote): no flow of the log.
    if (k.remote.is_v4() ? (k.remote.bytes[0] & 0xf0) == 0xe0 || k.remote == kBroadcast4 ||
                               k.remote == directed
                         : k.remote.bytes[0] == 0xff ||
                               (k.remote.bytes[0] == 0xfe && (k.remote.bytes[1] & 0xc0) == 0x80))
      return {nullptr, true, true};
    if (synth && k.remote_port == 53 && (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP))
      return {nullptr, true, true};
    std::lock_guard lock(loop_lock);
    if (synth && engine::SynthMap::in_range(k.remote)) {
      // --proxy-dns remote: the relay judges TCP by the name; the table
      // rejects the rest (not a policy violation: no verdict).
      auto entry = synth->lookup(k.remote);
      if (!relayed || !entry) return {};
      policy::Verdict v = pol.judge_named(p, synth->name(*entry), true);
      return {v.allow ? nullptr : v.reason_code, false};
    }
    policy::Verdict v = pol.judge_addr(p, k.remote, relayed, monotonic_ms());
    return {v.allow ? nullptr : v.reason_code, !relayed};
  };
}

capture::FlowIdOf veth_notes(FlowIds& ids, const NetPlan& plan, FlowIds::Judge judge) {
  return [&ids, plan, judge = std::move(judge)](const capture::FiveTuple& t) -> capture::FrameNote {
    const bool out = plan.is_child(t.src);
    if (!out && !plan.is_child(t.dst)) return {};
    FlowKey k;
    k.proto = t.proto;
    k.tree = out ? t.src : t.dst;
    k.remote = out ? t.dst : t.src;
    // ARP, neighbour discovery, DNS to the forwarder: no flow of the log.
    if (plan.is_gateway(k.remote)) return {};
    if (t.proto == IPPROTO_TCP || t.proto == IPPROTO_UDP) {
      k.tree_port = out ? t.sport : t.dport;
      k.remote_port = out ? t.dport : t.sport;
    } else if ((t.proto == IPPROTO_ICMP || t.proto == IPPROTO_ICMPV6) && t.sport) {
      k.tree_port = t.sport;  // the echo identifier
    } else {
      return {};
    }
    FlowIds::Note n = ids.note(k, judge);
    return {n.id, n.denied};
  };
}

capture::FlowIdOf wire_notes(FlowIds& ids, const NetPlan& plan, PortRange range,
                             std::shared_ptr<CtQuery> ct) {
  return [&ids, plan, range, ct = std::move(ct)](const capture::FiveTuple& t) -> capture::FrameNote {
    // The tree's flow behind host side h, or nullopt.
    auto tree_flow = [&](const HostKey& h, const IpAddr& host) -> std::optional<FlowKey> {
      if (auto k = ids.of_host(h)) return k;
      if (in(host_part(range), h.host_port) && h.proto != IPPROTO_ICMP &&
          h.proto != IPPROTO_ICMPV6)
        return std::nullopt;  // our own socket: the relay named it when it bound
      auto e = ct->by_reply(h.proto, h.remote, h.remote_port, host, h.host_port);
      if (!e || !plan.is_child(e->src)) return std::nullopt;
      FlowKey k = flow_key(*e);
      ids.of(k, FlowIds::Reader::Confirmed);  // it left the host: allowed
      ids.host_side(h, k);
      return k;
    };
    if (t.proto == IPPROTO_TCP || t.proto == IPPROTO_UDP) {
      // The filter: a frame leaving has its source port in the range, one
      // arriving its destination port.
      const bool out = in(range, t.sport);
      const HostKey h{t.proto, out ? t.sport : t.dport, out ? t.dst : t.src,
                      out ? t.dport : t.sport};
      auto k = tree_flow(h, out ? t.src : t.dst);
      return {k ? ids.of(*k, FlowIds::Reader::Confirmed) : 0, nullptr};
    }
    if (t.proto == IPPROTO_ICMP || t.proto == IPPROTO_ICMPV6) {
      // The filter passed only a request leaving (the remote is the
      // destination) or a reply arriving (the remote is the source); the
      // identifier may be 0.
      const bool leaving = t.icmp_type == 8 || t.icmp_type == 128;
      const HostKey h{t.proto, t.sport, leaving ? t.dst : t.src, t.sport};
      if (auto k = tree_flow(h, leaving ? t.src : t.dst))
        return {ids.of(*k, FlowIds::Reader::Confirmed), nullptr};
    }
    capture::FrameNote none;
    none.discard = true;  // the host's own ping
    return none;
  };
}

}  // namespace cf::rootful
