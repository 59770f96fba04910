// --capture (docs/capture.md): the tree's frames as pcapng, in the `child`
// view (as they cross tap0), the `egress` view (the same flows with the
// host's addresses) or both. See capture.cpp for the theory of operation and
// docs/capture.md for the user's view.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "capture/egress.hpp"
#include "capture/pcapng.hpp"
#include "common/addr.hpp"
#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::capture {

enum class Direction : uint8_t {
  FromChild,  // the tree sent it (read from tap0)
  ToChild,    // the engine sent it (written to tap0)
};

// What the run knows about the flow a frame belongs to; it becomes the
// frame's opt_comment (format_note). flow_id 0: not a logged flow (ARP,
// NDP, DNS to the gateway, a frame after its flow ended).
struct FrameNote {
  uint64_t flow_id = 0;
  // Set when the policy denied the flow: the flow log's reason_code
  // ("deny_cidr", "offline", ...; a static string).
  const char* denied = nullptr;
  // Not the tree's frame after all: not written (the rootful wire-egress
  // view's ICMP echo of the host's own pings, capture/wire.hpp).
  bool discard = false;
};

// The comment text for a note, written into `out` (no allocation; cut at
// out.size()); returns its length, 0 for an empty note:
//   "flow_id=12"
//   "flow_id=12 verdict=denied reason_code=deny_cidr"
size_t format_note(const FrameNote& n, std::span<char> out);

// What the engine knows about the addresses. host4/host6/host_ifname left
// empty are found by open() (host_egress()).
struct Endpoints {
  std::optional<IpAddr> child4, child6;  // the tree's addresses on tap0 (NetPlan)
  std::optional<IpAddr> host4, host6;    // the host's egress source addresses
  std::string host_ifname;               // the interface that holds host4 (or host6)
  // The tree's gateway addresses and the engine's upstream resolver: DNS to
  // the gateway shows as DNS to the resolver in the egress view (a resolver
  // on host loopback, or of the other family, is not substituted).
  std::optional<IpAddr> gateway4, gateway6;
  std::optional<IpAddr> resolver;
  // The link the child view is taken on, and what kind it is: tap0
  // (rootless, "isolated") or the host end of the rootful veth ("veth").
  std::string child_ifname = "tap0";
  std::string child_kind = "isolated";
};

// The host's egress source address for `family`: the address a UDP socket
// connect()ed to 203.0.113.1 (IPv4) or 2001:db8::1 (IPv6) gets from the
// kernel's route lookup (getsockname). A UDP connect sends no packet. nullopt
// when the host has no route for that family.
std::optional<IpAddr> host_egress(Family f);
// The name of the interface holding `addr` (getifaddrs), or "".
std::string interface_of(const IpAddr& addr);

// The files a config writes: [NAME] for child/egress, [STEM.child.pcapng,
// STEM.egress.pcapng] for both (STEM: NAME without a trailing ".pcapng").
// The summary lists the same (observe/summary.cpp calls this).
std::vector<std::string> output_paths(const Config& c);

// "childflow view=<view> backend=<backend> kind=<kind> interface=<name>".
std::string interface_description(std::string_view view, Backend backend, std::string_view kind,
                                  std::string_view interface);

class Capture {
 public:
  // Creates the file(s) for c.capture / c.capture_point (c.capture must be
  // set; call after validation, before the run). Errors name the path and
  // the cause.
  static Result<Capture> open(const Config& c, const Endpoints& e);

  Capture(Capture&&) noexcept = default;
  Capture& operator=(Capture&&) noexcept = default;

  // One frame crossing tap0 (or the rootful veth), in either direction.
  // Copied into the output buffer(s) at once; no allocation. `ts_ns` 0:
  // stamped now (CLOCK_REALTIME).
  void frame(Direction dir, std::span<const uint8_t> eth_frame, const FrameNote& note = {},
             uint64_t ts_ns = 0);
  // Writes what is buffered (once per reactor turn).
  void flush();
  // Each file gets a writer thread (PcapngWriter::start_writer): call after
  // the sandbox's launch and before the engine's lock-down.
  Status start_writers();
  // Frames wait in a buffer for a later flush(): their file's thread was
  // busy (the engine then turns again soon even when nothing happens).
  bool buffered() const;
  // Flushes and closes every file; returns the first write error, if any.
  Status close();

  const std::vector<std::string>& paths() const { return paths_; }
  const EgressAddresses& egress_addresses() const { return egress_; }
  uint64_t frames() const { return frames_; }

 private:
  Capture() = default;
  std::optional<PcapngWriter> child_;
  std::optional<PcapngWriter> egress_file_;
  EgressAddresses egress_;
  std::vector<std::string> paths_;
  uint64_t frames_ = 0;
};

}  // namespace cf::capture
