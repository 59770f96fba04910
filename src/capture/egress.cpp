// The egress view's rewrite.
//
// Theory of operation. The egress view shows the tree's flows as the host
// side carries them: the host's sockets use the host's source address, so
// the child's address (10.240.x.y / fd..) is replaced by the host's egress
// address of the same family, in place, in the frame already copied into the
// capture buffer. Only addresses change; ports, sequence numbers, windows and
// segment boundaries stay the child's (the engine translates TCP rather than
// forwarding it, so the host's segments differ: the view is "logical").
// DNS to the tree's gateway (UDP or TCP port 53) is relayed by the engine to
// the host's resolver, so there the gateway's address becomes the resolver's
// when the engine named one of the same family (the relay's own transaction
// id and source port are not shown). Other traffic to the gateway (ping) is
// answered by the engine itself and keeps the gateway's address.
//
// Checksums are updated with RFC 1624's incremental form
//   HC' = ~(~HC + ~m + m')
// summed over every 16-bit word that changed, so a checksum that was wrong
// stays exactly as wrong (the view does not hide a child's bad checksum):
//   IPv4 header checksum         the changed address words
//   TCP / UDP (v4 and v6)        the same words (pseudo header)
//   ICMPv6                       the same words (pseudo header)
//   ICMPv4 / ICMPv6 errors       additionally every word changed inside the
//                                quoted packet (its addresses, its IPv4 header
//                                checksum, its TCP/UDP/ICMPv6 checksum when the
//                                quote reaches it); the quote is rewritten one
//                                level deep only.
// A UDP checksum of 0 (IPv4: none) stays 0; a computed 0 is sent as 0xffff.
// IPv4 fragments other than the first carry no L4 header and only get the IP
// header update; the first fragment's L4 checksum covers the whole datagram,
// which the incremental update handles. IPv6 extension headers (hop-by-hop,
// routing, destination options, fragment, AH) are walked to the L4 header.
//
// Frames that never leave tap0 are dropped from the view: non-IP (ARP), IPv4
// multicast/broadcast or unspecified source, IPv6 link-local, multicast or
// unspecified addresses, and ICMPv6 router/neighbour discovery (133..137).
// Everything is bounds-checked against the frame; a frame that cannot be
// parsed far enough is kept as far as it was rewritten.
#include "capture/egress.hpp"

#include <cstring>

#include "common/bytes.hpp"

namespace cf::capture {

namespace {

constexpr size_t kEth = 14;

// The ones-complement sum of ~old + new over every changed word.
struct CsumDelta {
  uint32_t sum = 0;
  bool any = false;
  void replace16(uint16_t old_v, uint16_t new_v) {
    if (old_v == new_v) return;
    sum += uint16_t(~old_v);
    sum += new_v;
    any = true;
    fold();
  }
  void add(const CsumDelta& o) {
    if (!o.any) return;
    sum += o.sum;
    any = true;
    fold();
  }
  void fold() {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  }
};

// Stores v at p (big endian), recording the change in `track` (may be null).
void store_tracked(uint8_t* p, uint16_t v, CsumDelta* track) {
  if (track) track->replace16(load_be16(p), v);
  store_be16(p, v);
}

// RFC 1624 eqn. 3 applied to the checksum field at p.
uint16_t updated_checksum(uint16_t hc, const CsumDelta& d) {
  uint32_t s = uint16_t(~hc) + d.sum;
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return uint16_t(~s);
}

void apply_checksum(uint8_t* p, const CsumDelta& d, CsumDelta* track) {
  if (!d.any) return;
  store_tracked(p, updated_checksum(load_be16(p), d), track);
}

void apply_udp_checksum(uint8_t* p, const CsumDelta& d, CsumDelta* track) {
  uint16_t c = load_be16(p);
  if (!d.any || c == 0) return;  // 0: no checksum (IPv4)
  c = updated_checksum(c, d);
  store_tracked(p, c == 0 ? 0xffff : c, track);
}

// Replaces the address at p (n bytes) by `to` when it equals `from`; every
// changed word goes into `pseudo` (the checksums that cover the address)
// and into `track` (the enclosing ICMP message, when quoted).
void swap_address(uint8_t* p, size_t n, const IpAddr& from, const IpAddr& to, CsumDelta* pseudo,
                  CsumDelta* track) {
  if (memcmp(p, from.bytes.data(), n) != 0) return;
  for (size_t i = 0; i < n; i += 2) {
    uint16_t nv = load_be16(&to.bytes[i]);
    pseudo->replace16(load_be16(p + i), nv);
    store_tracked(p + i, nv, track);
  }
}

bool is_icmp4_error(uint8_t type) {
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

bool v6_local_only(const uint8_t* a) {
  static const uint8_t zero[16] = {};
  return a[0] == 0xff || (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || memcmp(a, zero, 16) == 0;
}

struct Rewriter {
  uint8_t* b;
  const EgressAddresses& a;

  // gateway:53 -> resolver:53 for TCP/UDP whose header starts at l4.
  void dns_gateway(uint8_t proto, size_t l4, size_t end, uint8_t* src, uint8_t* dst, size_t n,
                   const std::optional<IpAddr>& gw, const std::optional<IpAddr>& resolver,
                   CsumDelta* pseudo, CsumDelta* track) {
    if (!gw || !resolver || (proto != 6 && proto != 17) || l4 + 4 > end) return;
    if (load_be16(b + l4) == 53) swap_address(src, n, *gw, *resolver, pseudo, track);
    if (load_be16(b + l4 + 2) == 53) swap_address(dst, n, *gw, *resolver, pseudo, track);
  }

  EgressVerdict ip4(size_t l3, size_t end, bool quoted, CsumDelta* track);
  EgressVerdict ip6(size_t l3, size_t end, bool quoted, CsumDelta* track);
  // Rewrites the packet an ICMP error quotes at `off`; returns the changes.
  CsumDelta quote(size_t off, size_t end, bool v6);
};

CsumDelta Rewriter::quote(size_t off, size_t end, bool v6) {
  CsumDelta changes;
  if (off >= end) return changes;
  uint8_t version = b[off] >> 4;
  if (!v6 && version == 4) ip4(off, end, true, &changes);
  if (v6 && version == 6) ip6(off, end, true, &changes);
  return changes;
}

EgressVerdict Rewriter::ip4(size_t l3, size_t end, bool quoted, CsumDelta* track) {
  if (l3 + 20 > end || b[l3] >> 4 != 4) return EgressVerdict::Keep;
  size_t ihl = size_t(b[l3] & 0x0f) * 4;
  if (ihl < 20 || l3 + ihl > end) return EgressVerdict::Keep;
  size_t tot = load_be16(b + l3 + 2);
  if (tot >= ihl && l3 + tot < end) end = l3 + tot;
  uint8_t* src = b + l3 + 12;
  uint8_t* dst = b + l3 + 16;
  if (!quoted && ((dst[0] & 0xf0) == 0xe0 || memcmp(dst, "\xff\xff\xff\xff", 4) == 0 ||
                  memcmp(src, "\0\0\0\0", 4) == 0))
    return EgressVerdict::Drop;
  if (!a.child4 || !a.host4) return EgressVerdict::Keep;

  const bool first_fragment = (load_be16(b + l3 + 6) & 0x1fff) == 0;
  const size_t l4 = l3 + ihl;
  const uint8_t proto = b[l3 + 9];
  CsumDelta pseudo;
  swap_address(src, 4, *a.child4, *a.host4, &pseudo, track);
  swap_address(dst, 4, *a.child4, *a.host4, &pseudo, track);
  if (first_fragment) dns_gateway(proto, l4, end, src, dst, 4, a.gateway4, a.resolver4, &pseudo, track);
  apply_checksum(b + l3 + 10, pseudo, track);

  if (!first_fragment) return EgressVerdict::Keep;
  switch (proto) {
    case 6:  // TCP
      if (l4 + 18 <= end) apply_checksum(b + l4 + 16, pseudo, track);
      break;
    case 17:  // UDP
      if (l4 + 8 <= end) apply_udp_checksum(b + l4 + 6, pseudo, track);
      break;
    case 1:  // ICMP: no pseudo header; errors quote a packet
      if (!quoted && l4 + 8 <= end && is_icmp4_error(b[l4])) {
        CsumDelta inner = quote(l4 + 8, end, false);
        apply_checksum(b + l4 + 2, inner, track);
      }
      break;
    default:
      break;
  }
  return EgressVerdict::Keep;
}

EgressVerdict Rewriter::ip6(size_t l3, size_t end, bool quoted, CsumDelta* track) {
  if (l3 + 40 > end || b[l3] >> 4 != 6) return EgressVerdict::Keep;
  size_t plen = load_be16(b + l3 + 4);
  if (l3 + 40 + plen < end) end = l3 + 40 + plen;
  uint8_t* src = b + l3 + 8;
  uint8_t* dst = b + l3 + 24;
  if (!quoted && (v6_local_only(src) || v6_local_only(dst))) return EgressVerdict::Drop;

  // Walk the extension headers to the L4 header.
  uint8_t nh = b[l3 + 6];
  size_t off = l3 + 40;
  bool l4_present = true;
  for (int i = 0; i < 8 && l4_present; ++i) {
    if (nh == 0 || nh == 43 || nh == 60) {
      if (off + 2 > end) { l4_present = false; break; }
      nh = b[off];
      off += (size_t(b[off + 1]) + 1) * 8;
    } else if (nh == 44) {
      if (off + 8 > end) { l4_present = false; break; }
      if ((load_be16(b + off + 2) >> 3) != 0) l4_present = false;  // not the first fragment
      nh = b[off];
      off += 8;
    } else if (nh == 51) {
      if (off + 2 > end) { l4_present = false; break; }
      nh = b[off];
      off += (size_t(b[off + 1]) + 2) * 4;
    } else {
      break;
    }
  }
  if (off > end) l4_present = false;
  if (!quoted && l4_present && nh == 58 && off + 1 <= end && b[off] >= 133 && b[off] <= 137)
    return EgressVerdict::Drop;  // router / neighbour discovery, redirect
  if (!a.child6 || !a.host6) return EgressVerdict::Keep;

  CsumDelta pseudo;
  swap_address(src, 16, *a.child6, *a.host6, &pseudo, track);
  swap_address(dst, 16, *a.child6, *a.host6, &pseudo, track);
  if (!l4_present) return EgressVerdict::Keep;
  dns_gateway(nh, off, end, src, dst, 16, a.gateway6, a.resolver6, &pseudo, track);
  switch (nh) {
    case 6:
      if (off + 18 <= end) apply_checksum(b + off + 16, pseudo, track);
      break;
    case 17:
      if (off + 8 <= end) apply_udp_checksum(b + off + 6, pseudo, track);
      break;
    case 58:
      if (off + 4 <= end) {
        CsumDelta all = pseudo;
        if (!quoted && b[off] < 128 && off + 8 <= end) all.add(quote(off + 8, end, true));
        apply_checksum(b + off + 2, all, track);
      }
      break;
    default:
      break;
  }
  return EgressVerdict::Keep;
}

}  // namespace

EgressVerdict to_egress(std::span<uint8_t> frame, const EgressAddresses& a) {
  if (frame.size() < kEth) return EgressVerdict::Drop;
  Rewriter r{frame.data(), a};
  switch (load_be16(frame.data() + 12)) {
    case 0x0800:
      return r.ip4(kEth, frame.size(), false, nullptr);
    case 0x86dd:
      return r.ip6(kEth, frame.size(), false, nullptr);
    default:
      return EgressVerdict::Drop;
  }
}

}  // namespace cf::capture
