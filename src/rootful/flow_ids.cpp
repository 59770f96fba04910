// Flow ids shared by the conntrack and capture readers. See flow_ids.hpp.
#include "rootful/flow_ids.hpp"

#include "observe/recorder.hpp"

namespace cf::rootful {

uint64_t FlowIds::of(const FlowKey& k, Reader who) {
  std::lock_guard lock(mu_);
  const std::tuple<uint8_t, IpAddr, uint16_t> dst{k.proto, k.remote, k.remote_port};
  if (auto it = ids_.find(k); it != ids_.end()) {
    // Confirmed: not a denied destination's flow (an allowed flow's id
    // must never name a violation).
    if (who == Reader::Confirmed)
      if (auto l = last_.find(dst); l != last_.end() && l->second == it->second) last_.erase(l);
    return it->second;
  }
  if (ids_.size() >= kMaxFlows) return 0;
  uint64_t id = rec_.next_flow_id();
  ids_.emplace(k, id);
  if (who == Reader::Capture && last_.size() < kMaxFlows) last_.try_emplace(dst, id);
  return id;
}

uint64_t FlowIds::last_to(uint8_t proto, const IpAddr& remote, uint16_t remote_port) const {
  std::lock_guard lock(mu_);
  auto it = last_.find({proto, remote, remote_port});
  return it == last_.end() ? 0 : it->second;
}

void FlowIds::forget(const FlowKey& k) {
  std::lock_guard lock(mu_);
  ids_.erase(k);
}

}  // namespace cf::rootful
