// SendCopy: the bounded copy of unacknowledged bytes used when TCP sockets
// cannot be peeked at an offset. The bytes must come out exactly as they went
// in, across wrap-around and growth, and reading from a socket must consume.
#include "engine/send_copy.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <numeric>
#include <vector>

namespace cf::engine {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t start) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(SendCopy, StartsEmptyAndUnallocated) {
  SendCopy c;
  EXPECT_EQ(c.size(), 0u);
  EXPECT_EQ(c.capacity(), 0u);
  EXPECT_EQ(c.room(), SendCopy::kMax);
}

TEST(SendCopy, CopiesOutAtAnyOffsetAcrossWrap) {
  SendCopy c;
  // Fill the minimum capacity, drop most of it, then append past the end so
  // the data wraps around inside the same buffer.
  auto a = pattern(SendCopy::kMin, 0);
  c.append(a.data(), a.size());
  EXPECT_EQ(c.capacity(), SendCopy::kMin);
  c.drop(SendCopy::kMin - 100);
  auto b = pattern(5000, 7);
  c.append(b.data(), b.size());
  EXPECT_EQ(c.capacity(), SendCopy::kMin) << "wrap-around must not grow the buffer";
  ASSERT_EQ(c.size(), 5100u);
  std::vector<uint8_t> out(5100);
  c.copy_out(0, out.data(), out.size());
  EXPECT_TRUE(std::equal(a.end() - 100, a.end(), out.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), out.begin() + 100));
  // A slice that straddles the wrap point.
  std::vector<uint8_t> mid(300);
  c.copy_out(50, mid.data(), mid.size());
  EXPECT_TRUE(std::equal(a.end() - 50, a.end(), mid.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.begin() + 250, mid.begin() + 50));
}

TEST(SendCopy, GrowsWhileWrappedAndKeepsOrder) {
  SendCopy c;
  auto a = pattern(SendCopy::kMin, 0);
  c.append(a.data(), a.size());
  c.drop(1000);
  auto b = pattern(3 * SendCopy::kMin, 3);
  c.append(b.data(), b.size());
  EXPECT_EQ(c.capacity(), 4 * SendCopy::kMin);
  std::vector<uint8_t> out(c.size());
  c.copy_out(0, out.data(), out.size());
  EXPECT_TRUE(std::equal(a.begin() + 1000, a.end(), out.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), out.begin() + (SendCopy::kMin - 1000)));
}

TEST(SendCopy, IsBoundedByKMax) {
  SendCopy c;
  std::vector<uint8_t> big(SendCopy::kMax, 0xab);
  c.append(big.data(), big.size());
  EXPECT_EQ(c.room(), 0u);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  ASSERT_EQ(write(sv[1], "x", 1), 1);
  errno = 0;
  EXPECT_EQ(c.fill(sv[0], 100), -1);
  EXPECT_EQ(errno, EAGAIN) << "a full copy reads nothing";
  close(sv[0]);
  close(sv[1]);
}

TEST(SendCopy, FillConsumesFromTheSocketAndReportsEof) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto a = pattern(40000, 1);
  ASSERT_EQ(write(sv[1], a.data(), a.size()), ssize_t(a.size()));
  SendCopy c;
  // Read in pieces, dropping between reads so the ring wraps.
  size_t got = 0;
  std::vector<uint8_t> seen;
  while (got < a.size()) {
    ssize_t r = c.fill(sv[0], 7000);
    ASSERT_GT(r, 0);
    got += size_t(r);
    std::vector<uint8_t> part(c.size());
    c.copy_out(0, part.data(), part.size());
    seen.insert(seen.end(), part.begin(), part.end());
    c.drop(c.size());
  }
  EXPECT_EQ(seen, a);
  errno = 0;
  EXPECT_EQ(c.fill(sv[0], 100), -1);
  EXPECT_EQ(errno, EAGAIN);
  close(sv[1]);
  EXPECT_EQ(c.fill(sv[0], 100), 0) << "EOF once the peer closed";
  close(sv[0]);
}

// All rings together are bounded by their CopyBudget: a ring that cannot
// grow reads only what fits (starved() when that is nothing), and an empty
// ring holds no memory, so acknowledged bytes give the budget back.
TEST(SendCopy, ChargesItsBudgetAndGivesItBack) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto a = pattern(100'000, 3);
  ASSERT_EQ(write(sv[1], a.data(), a.size()), ssize_t(a.size()));
  CopyBudget budget(SendCopy::kMin + SendCopy::kMin / 2);
  SendCopy c;
  c.set_budget(&budget);
  EXPECT_EQ(c.fill(sv[0], 50'000), ssize_t(SendCopy::kMin)) << "only the first doubling fits";
  EXPECT_EQ(budget.left, SendCopy::kMin / 2);
  EXPECT_FALSE(c.starved());
  errno = 0;
  EXPECT_EQ(c.fill(sv[0], 50'000), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_TRUE(c.starved()) << "no room and no budget to grow";
  SendCopy other;
  other.set_budget(&budget);
  EXPECT_EQ(other.fill(sv[0], 100), -1) << "a new ring finds less than its minimum";
  EXPECT_TRUE(other.starved());
  c.drop(1000);
  EXPECT_EQ(c.fill(sv[0], 50'000), 1000) << "room freed in the ring itself";
  c.drop(c.size());
  EXPECT_EQ(c.capacity(), 0u) << "empty: freed";
  EXPECT_EQ(budget.left, SendCopy::kMin + SendCopy::kMin / 2);
  EXPECT_EQ(c.fill(sv[0], 100), 100);
  { SendCopy moved = std::move(c); }
  EXPECT_EQ(budget.left, SendCopy::kMin + SendCopy::kMin / 2) << "a destroyed ring gives back";
  close(sv[0]);
  close(sv[1]);
}

TEST(SendCopy, AnEmptyRingAllocatesNothingWithoutData) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  SendCopy c;
  errno = 0;
  EXPECT_EQ(c.fill(sv[0], 100), -1);
  EXPECT_EQ(errno, EAGAIN);
  EXPECT_EQ(c.capacity(), 0u);
  close(sv[1]);
  EXPECT_EQ(c.fill(sv[0], 100), 0) << "EOF";
  EXPECT_EQ(c.capacity(), 0u);
  close(sv[0]);
}

}  // namespace
}  // namespace cf::engine
