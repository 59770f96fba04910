// Big-endian (network byte order) loads and stores on byte buffers: the one
// copy that the frame codec, the DNS codec and the capture's egress rewrite
// share. The caller has checked that the bytes are there; these never look
// past p[1] (16 bits) or p[3] (32 bits) and need no alignment.
#pragma once
#include <cstdint>

namespace cf {

inline uint16_t load_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

inline uint32_t load_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}

inline void store_be32(uint8_t* p, uint32_t v) {
  p[0] = uint8_t(v >> 24);
  p[1] = uint8_t(v >> 16);
  p[2] = uint8_t(v >> 8);
  p[3] = uint8_t(v);
}

}  // namespace cf
