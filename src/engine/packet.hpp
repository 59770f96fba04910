// Packet codec: parse and build the frames that cross tap0.
//
// Theory of operation. Every frame the child sends is parsed once into a
// Parsed view (offsets into the caller's buffer, host-order fields); nothing is
// copied or allocated. Frames towards the child are built in place by the
// build_* functions into a caller buffer that has room for the largest frame
// (kFrameMax): Ethernet + IP + L4 headers first, payload after, checksums last.
//
// Limits: IPv4 options are skipped; IPv6 extension headers hop-by-hop, routing
// and destination options are walked; fragments (IPv4 MF/offset, IPv6
// fragment header) are reported as such and dropped by the caller, so a
// fragment can never smuggle a header past the policy. Any length field that
// points past the frame makes the parse fail.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/addr.hpp"

namespace cf::packet {

constexpr size_t kEthHdr = 14;
constexpr size_t kFrameMax = 65536 + 128;

constexpr uint16_t kEthIpv4 = 0x0800;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthIpv6 = 0x86dd;

constexpr uint8_t kProtoIcmp = 1;
constexpr uint8_t kProtoTcp = 6;
constexpr uint8_t kProtoUdp = 17;
constexpr uint8_t kProtoIcmp6 = 58;

// TCP flags.
constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck = 0x10;

struct TcpOptions {
  uint16_t mss = 0;          // 0: not given
  int8_t wscale = -1;        // -1: not given
  bool sack_permitted = false;
};

enum class Kind : uint8_t { Other, Arp, Ip, Fragment };

struct Parsed {
  Kind kind = Kind::Other;
  Mac src_mac{}, dst_mac{};
  // IP layer.
  IpAddr src, dst;
  uint8_t proto = 0;       // L4 protocol (after IPv6 extension headers)
  uint8_t ttl = 0;         // TTL / hop limit
  size_t l3_off = 0;       // offset of the IP header
  size_t l4_off = 0;       // offset of the L4 header
  size_t l4_len = 0;       // L4 header + payload length (from the IP header)
  // TCP / UDP.
  uint16_t sport = 0, dport = 0;
  // TCP.
  uint32_t seq = 0, ack = 0;
  uint8_t flags = 0;
  uint16_t window = 0;
  TcpOptions opts;
  // ICMP / ICMPv6.
  uint8_t icmp_type = 0, icmp_code = 0;
  uint16_t icmp_id = 0, icmp_seq = 0;
  // Payload (TCP/UDP/ICMP data after the L4 header).
  size_t payload_off = 0;
  size_t payload_len = 0;
  // ARP (IPv4 over Ethernet only).
  uint16_t arp_op = 0;
  IpAddr arp_sender_ip, arp_target_ip;
  Mac arp_sender_mac{};
};

// Parses one Ethernet frame. Returns false (and leaves kind Other) for
// anything malformed. Checksums are not verified: tap0 is memory, the
// tree's kernel wrote them (or, with the offloads, left them to us), and a
// wrong one gains a hostile tree nothing, since the engine carries payloads
// and never forwards a frame.
bool parse(std::span<const uint8_t> frame, Parsed* out);

// A frame whose L4 checksum field holds only the pseudo-header's sum
// (virtio-net's NEEDS_CSUM, the kernel's CHECKSUM_PARTIAL): completes it
// as the receiver would, summing from `start` to the end of the frame into
// the field at start + offset. False, and nothing written, when the field
// lies outside the frame.
bool finish_partial_csum(uint8_t* frame, size_t len, size_t start, size_t offset);

// Internet checksum helpers.
uint32_t csum_partial(const uint8_t* data, size_t len, uint32_t sum);
uint16_t csum_fold(uint32_t sum);
uint32_t pseudo_header_sum(const IpAddr& src, const IpAddr& dst, uint8_t proto, size_t len);

// Builders. Each writes a complete frame into buf (capacity kFrameMax) and
// returns its length (0 when the result would not fit). For TCP/UDP the
// payload must already sit at payload_offset(family, proto) in buf (so data
// read from a socket lands in place with no copy).
size_t payload_offset(Family f, uint8_t proto, bool tcp_opts = false);
// Where the L4 header of a frame built here starts (no IP options or
// extension headers).
constexpr size_t l4_offset(Family f) { return kEthHdr + (f == Family::V4 ? 20 : 40); }

struct TcpSeg {
  IpAddr src, dst;  // src is the remote end (as seen by the child)
  uint16_t sport, dport;
  uint32_t seq, ack;
  uint8_t flags;
  uint16_t window;
  // SYN options (only when flags has SYN): MSS and window scale.
  uint16_t mss = 0;
  int8_t wscale = -1;
};
// The header tap0 puts before every frame with IFF_VNET_HDR: struct
// virtio_net_hdr of <linux/virtio_net.h> (which C++ cannot include), in the
// host's byte order (tun's default).
struct VnetHdr {
  uint8_t flags = 0;
  uint8_t gso_type = 0;
  uint16_t hdr_len = 0;      // Ethernet + IP + TCP headers of a GSO frame
  uint16_t gso_size = 0;     // the payload of each segment it stands for
  uint16_t csum_start = 0;   // NEEDS_CSUM: sum from here to the end ...
  uint16_t csum_offset = 0;  // ... into the field this far after it
};
static_assert(sizeof(VnetHdr) == 10);
constexpr uint8_t kVnetNeedsCsum = 1;
constexpr uint8_t kGsoNone = 0, kGsoTcp4 = 1, kGsoTcp6 = 4;

// Csum::Partial leaves the pseudo-header's sum in the checksum field for
// the receiver to complete (finish_partial_csum): tap0's offloads. A segment
// larger than an IP packet can carry makes the result 0.
enum class Csum : uint8_t { Full, Partial };
size_t build_tcp(uint8_t* buf, const Mac& src_mac, const Mac& dst_mac, const TcpSeg& s,
                 size_t payload_len, Csum csum = Csum::Full);
// The TCP payload the largest IP packet carries after a 20-byte TCP header:
// the most a segment handed over whole (tap0's offloads) can hold.
constexpr size_t tcp_max_payload(Family f) { return f == Family::V4 ? 65535 - 40 : 65535 - 20; }

size_t build_udp(uint8_t* buf, const Mac& src_mac, const Mac& dst_mac, const IpAddr& src,
                 uint16_t sport, const IpAddr& dst, uint16_t dport, size_t payload_len);

// ICMP echo reply/request: id, seq, payload copied from `data`.
size_t build_icmp_echo(uint8_t* buf, const Mac& src_mac, const Mac& dst_mac,
                       const IpAddr& src, const IpAddr& dst, bool reply, uint16_t id,
                       uint16_t seq, std::span<const uint8_t> data, uint8_t ttl = 64);

// ICMP error (unreachable, time exceeded, ...) from `src` to `dst`, quoting
// `quoted` (the offending IP packet, truncated as the RFCs allow).
size_t build_icmp_error(uint8_t* buf, const Mac& src_mac, const Mac& dst_mac,
                        const IpAddr& src, const IpAddr& dst, uint8_t type, uint8_t code,
                        std::span<const uint8_t> quoted);

size_t build_arp_reply(uint8_t* buf, const Mac& our_mac, const IpAddr& our_ip,
                       const Mac& peer_mac, const IpAddr& peer_ip);

// Neighbour advertisement for `target` (solicited, override) to `dst`.
size_t build_neighbor_advert(uint8_t* buf, const Mac& our_mac, const IpAddr& target,
                             const Mac& dst_mac, const IpAddr& dst);

// ICMP type/code values used by the engine.
namespace icmp4 {
constexpr uint8_t kEchoReply = 0, kUnreach = 3, kEcho = 8, kTimeExceeded = 11;
constexpr uint8_t kNetUnreach = 0, kHostUnreach = 1, kPortUnreach = 3, kAdminProhibited = 13;
}  // namespace icmp4
namespace icmp6 {
constexpr uint8_t kUnreach = 1, kPacketTooBig = 2, kTimeExceeded = 3, kEcho = 128,
                  kEchoReply = 129, kRouterSolicit = 133, kNeighborSolicit = 135,
                  kNeighborAdvert = 136;
constexpr uint8_t kNoRoute = 0, kAdminProhibited = 1, kAddrUnreach = 3, kPortUnreach = 4;
}  // namespace icmp6

}  // namespace cf::packet
