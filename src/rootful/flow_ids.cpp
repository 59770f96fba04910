// Flow ids shared by the conntrack and capture readers. See flow_ids.hpp.
#include "rootful/flow_ids.hpp"

#include "observe/recorder.hpp"

namespace cf::rootful {

std::optional<FlowIds::Note> FlowIds::find_locked(const FlowKey& k, Reader who) {
  auto it = ids_.find(k);
  if (it == ids_.end()) return std::nullopt;
  // Confirmed: not a denied destination's flow (an allowed flow's id
  // must never name a violation).
  if (who == Reader::Confirmed) {
    it->second.denied = nullptr;
    if (auto l = last_.find({k.proto, k.remote, k.remote_port});
        l != last_.end() && l->second == it->second.id)
      last_.erase(l);
  }
  return Note{it->second.id, it->second.denied};
}

uint64_t FlowIds::of(const FlowKey& k, Reader who) {
  std::lock_guard lock(mu_);
  if (auto n = find_locked(k, who)) return n->id;
  if (ids_.size() >= kMaxFlows) return 0;
  uint64_t id = rec_.next_flow_id();
  ids_.emplace(k, Entry{id, nullptr, std::nullopt});
  if (who == Reader::Capture && last_.size() < kMaxFlows)
    last_.try_emplace({k.proto, k.remote, k.remote_port}, id);
  return id;
}

FlowIds::Note FlowIds::note(const FlowKey& k, const Judge& judge) {
  {
    std::lock_guard lock(mu_);
    if (auto n = find_locked(k, Reader::Capture)) return *n;
    if (ids_.size() >= kMaxFlows) return {};
  }
  // Outside the lock: the judge takes the loop's (order: loop, then ours).
  const Verdict v = judge ? judge(k) : Verdict{};
  const char* denied = v.denied;
  std::lock_guard lock(mu_);
  if (auto n = find_locked(k, Reader::Capture)) return *n;  // another reader was quicker
  if (ids_.size() >= kMaxFlows) return {};
  const std::tuple<uint8_t, IpAddr, uint16_t> dst{k.proto, k.remote, k.remote_port};
  uint64_t id = 0;
  // A denied destination's flows share its first id: the violation's.
  if (auto l = last_.find(dst); denied && v.per_destination && l != last_.end()) id = l->second;
  if (!id) id = rec_.next_flow_id();
  ids_.emplace(k, Entry{id, denied, std::nullopt});
  if (last_.size() < kMaxFlows) last_.try_emplace(dst, id);
  return {id, denied};
}

void FlowIds::deny(const FlowKey& k, const char* reason) {
  std::lock_guard lock(mu_);
  if (auto it = ids_.find(k); it != ids_.end()) it->second.denied = reason;
}

uint64_t FlowIds::last_to(uint8_t proto, const IpAddr& remote, uint16_t remote_port) const {
  std::lock_guard lock(mu_);
  auto it = last_.find({proto, remote, remote_port});
  return it == last_.end() ? 0 : it->second;
}

void FlowIds::forget(const FlowKey& k) {
  std::lock_guard lock(mu_);
  auto it = ids_.find(k);
  if (it == ids_.end()) return;
  if (it->second.host) hosts_.erase(*it->second.host);
  ids_.erase(it);
}

void FlowIds::host_side(const HostKey& h, const FlowKey& k) {
  std::lock_guard lock(mu_);
  auto it = ids_.find(k);
  if (it == ids_.end() || hosts_.size() >= kMaxFlows) return;
  if (it->second.host) hosts_.erase(*it->second.host);
  if (auto old = hosts_.find(h); old != hosts_.end())  // a stale flow's port, reused
    if (auto o = ids_.find(old->second); o != ids_.end()) o->second.host.reset();
  it->second.host = h;
  hosts_[h] = k;
}

std::optional<FlowKey> FlowIds::of_host(const HostKey& h) const {
  std::lock_guard lock(mu_);
  auto it = hosts_.find(h);
  if (it == hosts_.end()) return std::nullopt;
  return it->second;
}

}  // namespace cf::rootful
