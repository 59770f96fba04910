// The per-frame notes (opt_comment: flow_id, and a denied flow's verdict)
// of a rootful run's capture: the hooks its packet-socket reader calls
// (capture/link_tap.hpp), on the reader's thread. See capture_notes.cpp.
#pragma once
#include <memory>
#include <mutex>

#include "capture/link_tap.hpp"
#include "common/net_plan.hpp"
#include "rootful/flow_ids.hpp"
#include "rootful/port_slot.hpp"

namespace cf::policy {
class Policy;
}
namespace cf::engine {
class SynthMap;
}

namespace cf::rootful {

class CtQuery;

// The verdict the run's table (or, for TCP handed to the relay with
// --proxy, the relay) gives a new flow of the tree: `pol` read under
// `loop_lock` (the lock the run's loop holds while it works, Loop::set_lock).
// The relay's refusals are one violation per connection, the table's one
// per destination (FlowIds::Verdict).
// With --proxy-dns remote, `synth` (read under the same lock): TCP to a
// synthetic address is judged by the name it stands for, as the relay does.
// Broadcast, multicast and link-local destinations (and, under --proxy-dns
// remote, port 53 elsewhere than the gateway) are no flow: the table drops
// or rejects them before its policy, and logs nothing.
FlowIds::Judge policy_judge(const policy::Policy& pol, std::mutex& loop_lock, bool relayed_tcp,
                            const NetPlan& plan, const engine::SynthMap* synth = nullptr);

// Frames on the tree's veth (child, egress, both): the flow's id, and for a
// flow the policy denies, its reason.
capture::FlowIdOf veth_notes(FlowIds& ids, const NetPlan& plan, FlowIds::Judge judge);

// Frames on the host's links (wire-egress): `range` is the run's port
// range (port_slot.hpp). A frame on a masquerade port is the tree's flow
// conntrack says it is (asked once per host side, `ct`); one on a host
// port is the run's own socket (the relay's, named in `ids`, or the
// forwarder's: no id); an ICMP echo conntrack does not give to the tree is
// the host's own and is discarded.
capture::FlowIdOf wire_notes(FlowIds& ids, const NetPlan& plan, PortRange range,
                             std::shared_ptr<CtQuery> ct);

}  // namespace cf::rootful
