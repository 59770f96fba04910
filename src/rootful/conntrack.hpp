// Flow events of a rootful run from conntrack: the kernel forwards the
// tree's direct TCP, UDP and ICMP echo flows itself, so the flow log's
// connect_attempt / connect_result / flow_start / flow_end (the same schema
// as rootless, docs/flow-log-schema.md) come from its connection tracking.
//
// Theory of operation. A raw NETLINK_NETFILTER socket subscribed to the
// ctnetlink NEW, UPDATE and DESTROY groups of the host's network namespace
// (no library: parse_ct reads the messages by hand, every length checked
// against what is left). Only this tree's flows count: the original
// direction's source is the tree's address (each run has its own /30 and
// /64) and the destination is not the gateway (DNS to the forwarder is
// logged by the DNS gate) nor link-local or multicast. A packet the table
// rejects never confirms its conntrack, so a denied flow has no event here
// (its policy_violation comes from the table, as before).
//   TCP   NEW: connect_attempt. An update past SYN_SENT (SYN_RECV, the
//         server's SYN-ACK, and on): connect_result ok. CLOSE before that:
//         connect_result "Connection refused" (a reset). DESTROY, or the
//         end of the run: flow_end, `fin` when a FIN was seen, else `rst`,
//         its duration up to TIME_WAIT or CLOSE (the kernel keeps a closed
//         connection for a while: the line comes when it forgets it, or at
//         the end of the run, whichever is first, with its byte counts); a
//         connection still unanswered then gets connect_result
//         "Connection timed out" and no flow_end.
//   UDP, ICMP echo   NEW: flow_start; DESTROY: flow_end `timeout` (the
//         kernel's idle timeout); still open at the end of the run:
//         flow_end `fin`, as rootless.
// Byte counts come from conntrack accounting (net.netfilter.
// nf_conntrack_acct, which the run enables with forwarding, state.hpp):
// DESTROY events carry them, and at the end of the run finish() dumps the
// conntrack table (read only) for the flows still open. They are the IP
// packets' bytes (headers included): the kernel counts no payload bytes.
// Flow ids come from the Recorder, as the engine's do.
//
// Bounds: one flow entry per tracked flow of the tree (at most 65536; more
// are not logged and counted as lost); a receive buffer of 4 MiB, events
// the kernel could not queue (ENOBUFS) are counted as lost and said once at
// the end of the run.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "common/addr.hpp"
#include "common/net_plan.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::policy {
class Policy;
}
namespace cf::observe {
class Recorder;
}

namespace cf::rootful {

class FlowIds;
struct FlowKey;

// One ctnetlink message, reduced to what the flow log needs.
struct CtEvent {
  enum class Kind : uint8_t { New, Update, Destroy };
  Kind kind = Kind::Update;
  uint32_t id = 0;            // CTA_ID
  uint8_t proto = 0;          // IPPROTO_TCP, _UDP, _ICMP, _ICMPV6
  IpAddr src, dst;            // the original direction
  uint16_t sport = 0, dport = 0;
  uint8_t icmp_type = 0;
  uint16_t icmp_id = 0;       // echo: the identifier
  uint32_t status = 0;        // IPS_* bits
  uint32_t mark = 0;          // CTA_MARK (the ct mark); 0 when not given
  uint8_t tcp_state = 0;      // TCP_CONNTRACK_*; 0 when not given
  bool has_counters = false;
  uint64_t bytes_orig = 0, bytes_reply = 0;
};

// The key of the event's flow in FlowIds (the original direction: the tree
// is the source).
FlowKey flow_key(const CtEvent& e);

// Parses the netlink messages of one datagram. Messages that are not
// ctnetlink conntrack messages (errors, DONE) are skipped; a ctnetlink
// message whose lengths do not fit, or without both addresses and a
// protocol, is skipped and counted in *malformed. Never reads past `dgram`.
std::vector<CtEvent> parse_ct(std::span<const uint8_t> dgram, size_t* malformed);

// The request (IPCTNL_MSG_CT_GET, one entry) for the connection whose reply
// direction is remote:rport -> host:hport (ICMP/ICMPv6 echo: rport and
// hport are both the identifier, type echo reply). Pure.
std::vector<uint8_t> ct_reply_request(uint8_t proto, const IpAddr& remote, uint16_t rport,
                                      const IpAddr& host, uint16_t hport, uint32_t seq);

// One synchronous question to conntrack on a socket of its own, for the
// wire-egress capture's reader thread (flow_ids.hpp, "Host sides"): the
// original direction of a masqueraded connection, from the reply direction
// a frame on the host's interface shows. Each question waits at most
// 100 ms; answers of an earlier question that timed out are skipped.
class CtQuery {
 public:
  static Result<CtQuery> open();
  // nullopt: no such connection (or no answer).
  std::optional<CtEvent> by_reply(uint8_t proto, const IpAddr& remote, uint16_t rport,
                                  const IpAddr& host, uint16_t hport);

 private:
  explicit CtQuery(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
  uint32_t seq_ = 0;
  std::vector<uint8_t> buf_ = std::vector<uint8_t>(8192);
};

class Conntrack {
 public:
  // Opens the event socket (as root, in the host's network namespace)
  // before the tree sends anything. Connections whose ct mark is
  // `relayed_mark` (--proxy: TPROXY hands them to the relay, which logs them
  // itself; ruleset.hpp) are not the reader's; 0 for none.
  // `ids`: the run's shared flow ids (flow_ids.hpp), or nullptr.
  static Result<std::unique_ptr<Conntrack>> open(const NetPlan& plan, observe::Recorder& rec,
                                                 const policy::Policy& pol,
                                                 uint32_t relayed_mark = 0,
                                                 FlowIds* ids = nullptr);
  virtual ~Conntrack() = default;
  virtual int fd() const = 0;
  // Reads the events queued on fd() and logs them.
  virtual void on_readable() = 0;
  // After the tree ended: the events left, then a dump for the flows still
  // open, which end here (see above). Returns the events lost, if any.
  virtual uint64_t finish() = 0;
};

}  // namespace cf::rootful
