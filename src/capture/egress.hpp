// The egress view's rewrite: a frame from tap0 as the host side shows the
// same flow. See egress.cpp for the theory of operation.
#pragma once
#include <cstdint>
#include <optional>
#include <span>

#include "common/addr.hpp"

namespace cf::capture {

struct EgressAddresses {
  std::optional<IpAddr> child4, child6;  // the tree's addresses on tap0
  std::optional<IpAddr> host4, host6;    // the host's egress source addresses
  // DNS on the gateway (port 53, UDP and TCP) is relayed by the engine to the
  // host's resolver: with both set (same family), gateway:53 appears as
  // resolver:53 in the egress view.
  std::optional<IpAddr> gateway4, gateway6;
  std::optional<IpAddr> resolver4, resolver6;
};

enum class EgressVerdict : uint8_t {
  Keep,  // written to the egress view (rewritten when it carried a child address)
  Drop,  // link plumbing that never leaves tap0: ARP, NDP, multicast, ...
};

// Rewrites `frame` (an Ethernet frame) in place: every IPv4/IPv6 address
// equal to the child's (outer header, and the header quoted by an ICMP
// error) becomes the host's address of that family, the gateway's address on
// DNS (port 53) packets becomes the resolver's, and the IP, TCP, UDP,
// ICMP and ICMPv6 checksums that cover it are updated incrementally
// (RFC 1624). Never reads or writes outside `frame`; malformed frames are
// kept unchanged where they cannot be parsed.
EgressVerdict to_egress(std::span<uint8_t> frame, const EgressAddresses& a);

}  // namespace cf::capture
