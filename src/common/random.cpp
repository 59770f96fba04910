#include "common/random.hpp"

#include <sys/random.h>
#include <sys/types.h>

#include "common/clock.hpp"

namespace cf {

uint32_t random_u32() {
  uint32_t v = 0;
  if (!random_bytes(&v, sizeof v)) v = uint32_t(monotonic_ms() * 2654435761u);
  return v;
}

bool random_bytes(void* buf, size_t len) {
  return getrandom(buf, len, GRND_NONBLOCK) == ssize_t(len);
}

}  // namespace cf
