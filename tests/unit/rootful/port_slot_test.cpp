// cf::rootful::PortSlot's ranges: above the kernel's default ephemeral
// range, disjoint, and refused when the ephemeral range reaches them.
#include "rootful/port_slot.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace cf::rootful
