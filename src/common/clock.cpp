#include "common/clock.hpp"

#include <time.h>

namespace cf {
namespace {

uint64_t read_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

}  // namespace

uint64_t monotonic_ms() { return read_ns(CLOCK_MONOTONIC) / 1'000'000; }
uint64_t monotonic_us() { return read_ns(CLOCK_MONOTONIC) / 1'000; }
uint64_t epoch_ms() { return read_ns(CLOCK_REALTIME) / 1'000'000; }
uint64_t epoch_ns() { return read_ns(CLOCK_REALTIME); }

}  // namespace cf
