// The addresses of one run: what the tree sees on tap0 and what the engine
// answers as. The app picks them (app/run.cpp), the sandbox configures tap0
// with them inside the tree, and the engine serves them from the parent, so
// the plan lives here, below all three.
#pragma once
#include <cstdint>

#include "common/addr.hpp"

namespace cf {

// Addresses of one run, chosen by the parent (docs/tree.md).
struct NetPlan {
  IpAddr child4, gw4;  // inside a /30
  uint8_t prefix4 = 30;
  IpAddr child6, gw6;  // inside a /64
  uint8_t prefix6 = 64;
  Mac child_mac{};  // tap0's address inside the tree
  Mac gw_mac{};     // the engine's address (static neighbour entry)
  uint32_t mtu = 65520;
  bool ipv6 = true;

  // One of the tree's own addresses.
  bool is_child(const IpAddr& a) const { return a == child4 || (ipv6 && a == child6); }
  // One of its gateway addresses (the engine's, or the rootful veth's host end).
  bool is_gateway(const IpAddr& a) const { return a == gw4 || (ipv6 && a == gw6); }
};

}  // namespace cf
