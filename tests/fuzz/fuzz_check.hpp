// What the fuzz targets check with. A broken invariant aborts, which
// libFuzzer reports as a crash with the input that caused it.
#pragma once
#include <cstdlib>
#include <string>

namespace cf::fuzz {

inline void check(bool ok) {
  if (!ok) std::abort();
}

// One line of printable ASCII (0x20 to 0x7e): what a parser's error text
// must be before it reaches a terminal.
inline bool printable_line(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace cf::fuzz
