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
  // the cause, or say that wire-egress is not available yet.
  static Result<Capture> open(const Config& c, const Endpoints& e);

  Capture(Capture&&) noexcept = default;
  Capture& operator=(Capture&&) noexcept = default;

  // One frame crossing tap0, in either direction. Copied into the output
  // buffer(s) at once; no allocation.
  void frame(Direction dir, std::span<const uint8_t> eth_frame);
  // Writes what is buffered (once per reactor turn).
  void flush();
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
