// Flow ids shared by the conntrack and capture readers. See flow_ids.hpp.
#include "rootful/flow_ids.hpp"

#include "common/clock.hpp"
#include "observe/recorder.hpp"

namespace cf::rootful {

std::optional<FlowIds::Note> FlowIds::find_locked(const FlowKey& k, Reader who, uint64_t now) {
  auto it = ids_.find(k);
  if (it == ids_.end()) return std::nullopt;
  Entry& e = it->second;
  e.seen_ms = now;
  // Confirmed: not a denied destination's flow (an allowed flow's id
  // must never name a violation).
  if (who == Reader::Confirmed) {
    e.denied = nullptr;
    e.confirmed = true;
    if (auto l = last_.find({k.proto, k.remote, k.remote_port}); l != last_.end() && l->second == e.id)
      last_.erase(l);
  }
  return Note{e.id, e.denied};
}

uint64_t FlowIds::clock_now() const { return clock_ ? clock_() : monotonic_ms(); }

void FlowIds::insert_locked(const FlowKey& k, Entry e) { ids_.emplace(k, std::move(e)); }

void FlowIds::erase_locked(std::map<FlowKey, Entry>::iterator it) {
  if (it->second.host) hosts_.erase(*it->second.host);
  ids_.erase(it);
}

// At most once a second: the relay's ended flows after their grace, and
// flows nobody confirmed once no frame of them was seen for a while.
void FlowIds::sweep_locked(uint64_t now) {
  if (now < last_sweep_ + 1000) return;
  last_sweep_ = now;
  for (auto it = ids_.begin(); it != ids_.end();) {
    const Entry& e = it->second;
    const bool gone = e.ended_ms ? now >= e.ended_ms + kGraceMs
                                 : !e.confirmed && now >= e.seen_ms + kUnconfirmedIdleMs;
    if (gone)
      erase_locked(it++);
    else
      ++it;
  }
}

uint64_t FlowIds::of(const FlowKey& k, Reader who) {
  const uint64_t now = clock_now();
  std::lock_guard lock(mu_);
  sweep_locked(now);
  if (auto n = find_locked(k, who, now)) return n->id;
  if (ids_.size() >= kMaxFlows) return 0;
  uint64_t id = rec_.next_flow_id();
  insert_locked(k, Entry{id, nullptr, std::nullopt, who == Reader::Confirmed, now, 0});
  if (who == Reader::Capture && last_.size() < kMaxFlows)
    last_.try_emplace({k.proto, k.remote, k.remote_port}, id);
  return id;
}

FlowIds::Note FlowIds::note(const FlowKey& k, const Judge& judge) {
  const uint64_t now = clock_now();
  {
    std::lock_guard lock(mu_);
    sweep_locked(now);
    if (auto n = find_locked(k, Reader::Capture, now)) return *n;
    if (ids_.size() >= kMaxFlows) return {};
  }
  // Outside the lock: the judge takes the loop's (order: loop, then ours).
  const Verdict v = judge ? judge(k) : Verdict{};
  if (v.no_flow) return {};
  const char* denied = v.denied;
  std::lock_guard lock(mu_);
  if (auto n = find_locked(k, Reader::Capture, now)) return *n;  // another reader was quicker
  if (ids_.size() >= kMaxFlows) return {};
  const std::tuple<uint8_t, IpAddr, uint16_t> dst{k.proto, k.remote, k.remote_port};
  uint64_t id = 0;
  // A denied destination's flows share its first id: the violation's.
  if (auto l = last_.find(dst); denied && v.per_destination && l != last_.end()) id = l->second;
  if (!id) id = rec_.next_flow_id();
  insert_locked(k, Entry{id, denied, std::nullopt, false, now, 0});
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
  if (auto it = ids_.find(k); it != ids_.end()) erase_locked(it);
}

void FlowIds::ended(const FlowKey& k) {
  const uint64_t now = clock_now();
  std::lock_guard lock(mu_);
  if (auto it = ids_.find(k); it != ids_.end()) it->second.ended_ms = now;
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
