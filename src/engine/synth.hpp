// Synthetic addresses for --proxy-dns remote (docs/proxy.md, "Names to the
// proxy"). Private to src/engine/.
//
// Theory of operation. Under --proxy-dns remote the tree's names never reach
// a resolver: the DNS gate answers an A or AAAA query itself with an address
// that stands for the name, and a TCP connection to that address is carried
// by the proxy as a connection to the name (CONNECT name:port, SOCKS5 address
// type 3), as curl does for socks5h://. The SynthMap is the two-way map
// between those names and addresses.
//
// One entry per name; entry i stands for 198.18.0.0 + 1 + i (IPv4) and
// fd63:666c:6f77::(1 + i) (IPv6), so an A and an AAAA query for one name get
// the same entry. 198.18.0.0/15 is reserved for benchmarking (RFC 2544, RFC
// 5735) and never routed on the Internet; fd63:666c:6f77::/48 is a unique
// local prefix (RFC 4193; its global ID spells "cflow"), and the map uses its
// first /96. Neither meets the tree's own addresses (10.240.0.0/16 and
// fd42::/16, app/run.cpp). The ranges exist only here: the engine never opens
// a host socket to them.
//
// Bounded: at most cap() entries (kSynthCap by default). A name already in
// the map gets its entry back; a new name takes a fresh entry while there are
// fewer than cap(), then the least recently used entry that no live flow
// holds (hold/release), which is renamed. Entries held by a flow are out of
// the recency list, so finding one to reuse is O(1). With the default cap,
// larger than the engine's TCP table, an entry that no flow holds always
// exists; assign() still says when there is none. "Used" means answered
// (assign) or let go by its last flow (release).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/addr.hpp"

namespace cf::engine {

// Entries in the map (names at once); more than the TCP table's 16384 flows.
inline constexpr uint32_t kSynthCap = 32768;
// TTL of the synthetic answers, in seconds: short, so that a cache in the
// tree does not outlive the entry for long.
inline constexpr uint32_t kSynthTtlS = 30;

class SynthMap {
 public:
  explicit SynthMap(uint32_t cap = kSynthCap);

  // 198.18.0.0/15 or fd63:666c:6f77::/96.
  static bool in_range(const IpAddr& ip);
  static Cidr range4();
  static Cidr range6();
  // Whether the proxy can be asked for `name` (presentation form from the
  // DNS codec): 1..253 bytes of letters, digits, '-', '_' and '.', not
  // "localhost" or under it, and not a number in its last label (which a
  // proxy's resolver would take as an IPv4 address: "10.1.2.3",
  // "167772161", "0x0a.0x01"), so a name cannot smuggle in an address that
  // the CIDR rules never saw.
  static bool nameable(std::string_view name);

  // The entry for `name`: its own when it has one, else a new or reused one.
  // nullopt when the map is full and every entry is held by a flow.
  std::optional<uint32_t> assign(std::string_view name);
  // The entry `ip` stands for; nullopt outside the ranges or for an address
  // of no entry.
  std::optional<uint32_t> lookup(const IpAddr& ip) const;
  const std::string& name(uint32_t i) const { return entries_[i].name; }
  static IpAddr v4(uint32_t i);
  static IpAddr v6(uint32_t i);

  // A live flow uses entry i (it cannot be reused until every holder let go).
  void hold(uint32_t i);
  void release(uint32_t i);
  uint32_t holders(uint32_t i) const { return entries_[i].refs; }

  uint32_t size() const { return uint32_t(entries_.size()); }
  uint32_t cap() const { return cap_; }
  uint64_t reused() const { return reused_; }  // entries renamed so far

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  struct Entry {
    std::string name;
    uint32_t refs = 0;
    uint32_t prev = kNone, next = kNone;  // recency list, while refs == 0
  };
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  void link_newest(uint32_t i);
  void unlink(uint32_t i);

  uint32_t cap_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, uint32_t, Hash, std::equal_to<>> by_name_;
  uint32_t oldest_ = kNone, newest_ = kNone;
  uint64_t reused_ = 0;
};

}  // namespace cf::engine
