// cf::one_line and the big-endian helpers.
#include <gtest/gtest.h>

#include "common/bytes.hpp"
#include "common/text.hpp"

namespace cf {
namespace {

TEST(OneLine, JoinsLinesAndDropsTheTrailingBreak) {
  EXPECT_EQ(one_line("newuidmap: write to uid_map failed\n"), "newuidmap: write to uid_map failed");
  EXPECT_EQ(one_line("first\nsecond \n\n"), "first second");
  EXPECT_EQ(one_line(" lead stays"), " lead stays");
  EXPECT_EQ(one_line("\n \n"), "");
  EXPECT_EQ(one_line(""), "");
}

TEST(Bytes, BigEndianLoadsAndStores) {
  uint8_t b[4] = {};
  store_be16(b, 0x1234);
  EXPECT_EQ(b[0], 0x12);
  EXPECT_EQ(b[1], 0x34);
  EXPECT_EQ(load_be16(b), 0x1234);
  store_be32(b, 0xa1b2c3d4);
  EXPECT_EQ(b[0], 0xa1);
  EXPECT_EQ(b[3], 0xd4);
  EXPECT_EQ(load_be32(b), 0xa1b2c3d4u);
}

}  // namespace
}  // namespace cf
