// cf::rootful::PortSlot's ranges: above the kernel's default ephemeral
// range, disjoint, and refused when the ephemeral range reaches them.
#include "rootful/port_slot.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <set>
#include <vector>

#include "common/unique_fd.hpp"

namespace cf::rootful {
namespace {

TEST(PortSlot, RangesLieAboveTheDefaultEphemeralRangeAndFitInPorts) {
  EXPECT_GT(kSlotBase, 60999);
  EXPECT_LE(uint32_t(kSlotBase) + uint32_t(kSlots) * kSlotSize - 1, 65535u);
  for (uint16_t s = 0; s < kSlots; ++s) {
    PortRange r{uint16_t(kSlotBase + s * kSlotSize), uint16_t(kSlotBase + (s + 1) * kSlotSize - 1)};
    EXPECT_FALSE(overlaps_ephemeral(r, "32768\t60999\n"));
  }
}

TEST(PortSlot, OverlapWithTheEphemeralRange) {
  const PortRange r{61000, 61511};
  EXPECT_TRUE(overlaps_ephemeral(r, "1024\t65535\n"));
  EXPECT_TRUE(overlaps_ephemeral(r, "61511 61600"));
  EXPECT_TRUE(overlaps_ephemeral(r, "60000 61000"));
  EXPECT_FALSE(overlaps_ephemeral(r, "61512 65535"));
  EXPECT_FALSE(overlaps_ephemeral(r, "32768 60999"));
  EXPECT_TRUE(overlaps_ephemeral(r, "")) << "unreadable: assume the worst";
}

TEST(PortSlot, TheRangeSplitsIntoTheMasqueradesAndTheRunsOwnPorts) {
  const PortRange r{61512, 62023};
  EXPECT_EQ(masquerade_part(r).lo, 61512);
  EXPECT_EQ(masquerade_part(r).hi, 62023 - kHostPorts);
  EXPECT_EQ(host_part(r).lo, 62023 - kHostPorts + 1);
  EXPECT_EQ(host_part(r).hi, 62023);
}

// Real sockets on loopback (no namespace needed: binding sends nothing).
TEST(PortSlot, BindInTakesAFreePortOfTheRangeAndSaysWhenNoneIs) {
  const PortRange r{64900, 64903};
  std::vector<UniqueFd> held;
  std::set<uint16_t> got;
  for (int i = 0; i < 4; ++i) {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd);
    uint16_t port = bind_in(fd.get(), true, r);
    ASSERT_NE(port, 0) << "port " << i << " of 4";
    EXPECT_GE(port, r.lo);
    EXPECT_LE(port, r.hi);
    sockaddr_in a{};
    socklen_t len = sizeof a;
    ASSERT_EQ(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    EXPECT_EQ(ntohs(a.sin_port), port) << "bound where it says";
    got.insert(port);
    held.push_back(std::move(fd));
  }
  EXPECT_EQ(got.size(), 4u) << "every port once";
  UniqueFd full(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(bind_in(full.get(), true, r), 0) << "every port taken";
  held.pop_back();
  UniqueFd v6(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(v6);
  int only = 1;
  ::setsockopt(v6.get(), IPPROTO_IPV6, IPV6_V6ONLY, &only, sizeof only);
  EXPECT_NE(bind_in(v6.get(), false, r), 0) << "IPv6 has its own ports (v6only)";
}

}  // namespace
}  // namespace cf::rootful
