// TCP sequence-number arithmetic. Sequence numbers wrap at 2^32, so they are
// compared by the sign of their 32-bit difference (serial arithmetic,
// RFC 1982), valid while the two are less than 2^31 apart.
#pragma once
#include <cstdint>

namespace cf::engine {

constexpr bool seq_lt(uint32_t a, uint32_t b) { return int32_t(a - b) < 0; }
constexpr bool seq_le(uint32_t a, uint32_t b) { return int32_t(a - b) <= 0; }
constexpr bool seq_gt(uint32_t a, uint32_t b) { return int32_t(a - b) > 0; }

}  // namespace cf::engine
