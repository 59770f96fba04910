// Flow ids shared by the conntrack and capture readers. See flow_ids.hpp.
#include "rootful/flow_ids.hpp"

#include "observe/recorder.hpp"

namespace cf::rootful {

uint64_t FlowIds::of(const FlowKey& k) {
  std::lock_guard lock(mu_);
  if (auto it = ids_.find(k); it != ids_.end()) return it->second;
  if (ids_.size() >= kMaxFlows || last_.size() >= kMaxFlows) return 0;
  uint64_t id = rec_.next_flow_id();
  ids_.emplace(k, id);
  last_[{k.proto, k.remote, k.remote_port}] = id;
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
