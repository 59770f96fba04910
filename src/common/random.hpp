// Random numbers from the kernel (getrandom, never blocking). They pick the
// run's addresses, TCP initial sequence numbers and DNS transaction ids:
// values the tree or the network must not be able to guess.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cf {

// A random 32-bit value. Should getrandom fail (it cannot once the kernel's
// pool is initialised, which happens during boot), a value derived from the
// monotonic clock stands in.
uint32_t random_u32();

// Fills buf[0..len) with random bytes; false when getrandom gave fewer.
bool random_bytes(void* buf, size_t len);

}  // namespace cf
