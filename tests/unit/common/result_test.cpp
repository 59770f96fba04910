// cf::Result: values, errors, the step and the errno helper.
#include "common/result.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace cf {
namespace {

Result<int> half(int x) {
  if (x % 2) return Error{"odd number: give an even one", "halving"};
  return x / 2;
}

TEST(Result, CarriesAValueOrAnError) {
  auto ok = half(4);
  ASSERT_TRUE(ok);
  EXPECT_EQ(*ok, 2);
  auto bad = half(3);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "halving: odd number: give an even one");
}

TEST(Result, MovesOnlyValues) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
}

TEST(Result, VoidIsOkOrAnError) {
  Status ok;
  EXPECT_TRUE(ok);
  Status bad = Error{"no"};
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().str(), "no") << "no step: the message alone";
}

TEST(Result, ErrnoErrorNamesTheStep) {
  EXPECT_EQ(errno_error("open /x", ENOENT).str(), "open /x: No such file or directory");
}

TEST(CfCheck, AbortsOnABrokenInvariant) {
  EXPECT_DEATH(CF_CHECK(1 + 1 == 3), "internal error: 1 \\+ 1 == 3");
}

}  // namespace
}  // namespace cf
