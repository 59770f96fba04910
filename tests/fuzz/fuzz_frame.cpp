// Fuzzes the frame parser with arbitrary bytes, as a hostile child would send
// them on tap0, and feeds what parses back through the builders that quote
// child packets (ICMP errors), checking every reported offset stays in bounds.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "engine/packet.hpp"

using namespace cf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  packet::Parsed p;
  if (!packet::parse({data, size}, &p)) return 0;
  if (p.kind != packet::Kind::Ip) return 0;
  if (p.l4_off > size || p.l4_off + p.l4_len > size) std::abort();
  if (p.payload_off > size || p.payload_off + p.payload_len > size) std::abort();
  static std::vector<uint8_t> buf(packet::kFrameMax);
  size_t qlen = p.l4_off - p.l3_off + p.l4_len;
  if (qlen > 576) qlen = 576;
  Mac mac{};
  if (p.src.family == p.dst.family)
    packet::build_icmp_error(buf.data(), mac, mac, p.dst, p.src, 3, 1,
                             {data + p.l3_off, qlen});
  return 0;
}
