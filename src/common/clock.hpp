// Clocks. The engine's timers, flow durations and the run's duration use the
// monotonic clock (it never jumps); the flow log's ts_ms and the capture's
// packet timestamps use the wall clock, which is what people compare them with.
#pragma once
#include <cstdint>

namespace cf {

// CLOCK_MONOTONIC in milliseconds and microseconds.
uint64_t monotonic_ms();
uint64_t monotonic_us();
// CLOCK_REALTIME as Unix epoch milliseconds and nanoseconds.
uint64_t epoch_ms();
uint64_t epoch_ns();

}  // namespace cf
