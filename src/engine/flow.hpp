// Engine internals shared by every protocol: the epoll tag, the flow key, and
// the slot tables that hold flows. Private to src/engine/.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/addr.hpp"

namespace cf::engine {

constexpr uint32_t kNoSlot = UINT32_MAX;

// epoll tag: {kind, generation, slot} packed in epoll_event.data.u64 (8, 24
// and 32 bits). A slot's generation changes each time it is freed, so an event
// that was queued for a socket that is closed by now (earlier in the same
// epoll batch, say) cannot be taken for an event of the slot's next flow: the
// reactor drops it when the generations differ. Timers carry it too.
enum class Tag : uint8_t { Tap, Timer, Pidfd, Signal, Tcp, Udp, Icmp, DnsUpstream, Pump, DnsStream };
constexpr uint32_t kGenMask = 0xffffff;
inline uint64_t tag(Tag k, uint32_t slot, uint32_t gen = 0) {
  return uint64_t(k) << 56 | uint64_t(gen & kGenMask) << 32 | slot;
}
inline Tag tag_kind(uint64_t t) { return Tag(t >> 56); }
inline uint32_t tag_gen(uint64_t t) { return uint32_t(t >> 32) & kGenMask; }
inline uint32_t tag_slot(uint64_t t) { return uint32_t(t); }

// Key of a flow: child end and remote end (as the child addressed it).
struct FlowKey {
  IpAddr caddr, raddr;
  uint16_t cport = 0, rport = 0;  // for ICMP: cport = echo id, rport = 0
  friend bool operator==(const FlowKey&, const FlowKey&) = default;
};
struct FlowKeyHash {
  size_t operator()(const FlowKey& k) const noexcept {
    uint64_t h = 1469598103934665603ull;
    auto mix = [&](const uint8_t* p, size_t n) {
      for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    };
    mix(k.caddr.bytes.data(), k.caddr.size());
    mix(k.raddr.bytes.data(), k.raddr.size());
    uint32_t ports = uint32_t(k.cport) << 16 | k.rport;
    mix(reinterpret_cast<const uint8_t*>(&ports), 4);
    return size_t(h);
  }
};

using FlowMap = std::unordered_map<FlowKey, uint32_t, FlowKeyHash>;

// Flow slots: allocated on first use up to a fixed cap, then recycled through
// a free list. A deque keeps references stable while it grows, and start-up
// costs nothing for slots a run never uses.
template <typename T>
class SlotTable {
 public:
  explicit SlotTable(uint32_t cap) : cap_(cap) {}
  // A free slot index, or nullopt when the table is full.
  std::optional<uint32_t> alloc() {
    if (!free_.empty()) {
      uint32_t s = free_.back();
      free_.pop_back();
      return s;
    }
    if (items_.size() >= cap_) return std::nullopt;
    items_.emplace_back();
    gens_.push_back(0);
    return uint32_t(items_.size() - 1);
  }
  bool full() const { return free_.empty() && items_.size() >= cap_; }
  void release(uint32_t s) {
    items_[s] = T{};
    gens_[s] = (gens_[s] + 1) & kGenMask;
    free_.push_back(s);
  }
  T& operator[](uint32_t s) { return items_[s]; }
  const T& operator[](uint32_t s) const { return items_[s]; }
  // The slot's generation: changes on every release (see Tag).
  uint32_t gen(uint32_t s) const { return s < gens_.size() ? gens_[s] : 0; }
  uint32_t size() const { return uint32_t(items_.size()); }
  uint32_t cap() const { return cap_; }

 private:
  std::deque<T> items_;
  std::vector<uint32_t> gens_;
  std::vector<uint32_t> free_;
  uint32_t cap_;
};

struct Timer {
  uint64_t when;
  Tag kind;
  uint32_t slot;
  uint32_t gen;  // the slot's generation when armed
  bool operator>(const Timer& o) const { return when > o.when; }
};

}  // namespace cf::engine
