// DNS message codec: the small part of RFC 1035 the engine needs to relay the
// child's queries and learn names from the upstream's answers.
//
// Theory of operation. The engine answers DNS on the gateway. For each query
// from the child it calls parse_query to learn the name and type (for the flow
// log and the policy), then either relays the raw bytes upstream (with a
// remapped id: get_id/set_id) or answers by itself with build_empty_answer
// (policy denial, AAAA without an IPv6 route: `synthetic_empty`),
// build_error (SERVFAIL on upstream timeout) or, under --proxy-dns remote,
// build_address_answer (a synthetic address that stands for the name). When
// the upstream answers, the engine relays the raw bytes back to the child
// unchanged (TC included) and calls parse_response to learn the name<->address
// map: the CNAME chain from the question name, and the A/AAAA records whose
// owner is on that chain.
//
// Everything works on byte spans that come from the child or the network, so
// every length is checked against the end of the message and the functions
// never throw or assert on input: a malformed message gives std::nullopt (or 0
// bytes built). Names are decoded with a loop guard: a compression pointer
// must point strictly backwards (before the label run it was found in, and
// not into the header), and at most kMaxPointerJumps pointers are followed.
// Labels are at most 63 bytes; a name at most 255 bytes in wire form.
//
// Names come back in presentation form, lowercase ASCII, without the trailing
// dot ("." for the root). Bytes that are not printable ASCII, and '.' and '\'
// inside a label, are written as \DDD (decimal), so a returned name can never
// look like a different name: "a\046example.com" is not a subdomain of
// "example.com".
//
// Limits: parse_response follows at most kMaxChainNames names (question name +
// CNAME targets), considers the first kMaxAnswerRecords answer records and
// keeps the first kMaxAnswerAddrs addresses (the rest are counted in
// addrs_dropped). The authority and additional sections of a response are not
// read. Only class IN records count. See docs/dns.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/addr.hpp"

namespace cf::dns {

constexpr size_t kHeaderSize = 12;
constexpr size_t kMaxLabel = 63;
constexpr size_t kMaxNameWire = 255;       // wire form, length bytes and root included
constexpr size_t kMaxPointerJumps = 128;   // a 255-byte name has at most 127 labels
constexpr size_t kMaxChainNames = 16;      // question name + up to 15 CNAME targets
constexpr size_t kMaxAnswerRecords = 256;  // answer records examined per response
constexpr size_t kMaxAnswerAddrs = 64;
constexpr uint16_t kEdnsUdpSize = 1232;    // advertised in OPT of built answers

// Header flag bits (host order of the 16-bit flags word).
constexpr uint16_t kFlagQr = 0x8000;
constexpr uint16_t kFlagAa = 0x0400;
constexpr uint16_t kFlagTc = 0x0200;
constexpr uint16_t kFlagRd = 0x0100;
constexpr uint16_t kFlagRa = 0x0080;
constexpr uint16_t kFlagAd = 0x0020;
constexpr uint16_t kFlagCd = 0x0010;
constexpr uint16_t kOpcodeMask = 0x7800;
constexpr uint16_t kRcodeMask = 0x000f;

// Record types and classes the codec knows by number.
constexpr uint16_t kTypeA = 1;
constexpr uint16_t kTypeNs = 2;
constexpr uint16_t kTypeCname = 5;
constexpr uint16_t kTypeSoa = 6;
constexpr uint16_t kTypePtr = 12;
constexpr uint16_t kTypeMx = 15;
constexpr uint16_t kTypeTxt = 16;
constexpr uint16_t kTypeAaaa = 28;
constexpr uint16_t kTypeSrv = 33;
constexpr uint16_t kTypeOpt = 41;
constexpr uint16_t kTypeDs = 43;
constexpr uint16_t kTypeDnskey = 48;
constexpr uint16_t kTypeSvcb = 64;
constexpr uint16_t kTypeHttps = 65;
constexpr uint16_t kTypeAny = 255;
constexpr uint16_t kTypeCaa = 257;
constexpr uint16_t kClassIn = 1;

constexpr uint8_t kRcodeNoError = 0;
constexpr uint8_t kRcodeFormErr = 1;
constexpr uint8_t kRcodeServFail = 2;
constexpr uint8_t kRcodeNxDomain = 3;
constexpr uint8_t kRcodeNotImp = 4;
constexpr uint8_t kRcodeRefused = 5;

// The first question of a query, plus what a built answer must echo.
struct Question {
  uint16_t id = 0;
  uint16_t flags = 0;
  std::string qname;        // lowercase, no trailing dot, "." for the root
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  size_t question_end = 0;  // offset just after the first question
  uint16_t qdcount = 0;     // questions in the query (>= 1; more is answered FORMERR)
  bool has_edns = false;    // the query carries an OPT record
  uint16_t edns_udp_size = 0;
  bool edns_do = false;     // DNSSEC OK bit of the query's OPT
};

// A query from the child: a well-formed header with QR=0, opcode QUERY,
// QDCOUNT >= 1 (the first question is returned), and every record of every
// section well formed (the additional section is read to find OPT).
std::optional<Question> parse_query(std::span<const uint8_t> msg);

// "A", "AAAA", "CNAME", ... for the types the flow log names, else "other".
const char* qtype_name(uint16_t qtype);
// "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", else "other".
const char* rcode_name(uint8_t rcode);

struct AnswerAddr {
  IpAddr ip;
  uint32_t ttl = 0;
};

// What an upstream response says about the question's name.
struct Answer {
  uint16_t id = 0;
  uint16_t flags = 0;
  uint8_t rcode = 0;
  bool truncated = false;           // TC set; the records read may be incomplete
  std::string qname;                // empty when the response has no question
  uint16_t qtype = 0;
  uint16_t qclass = 0;
  std::vector<std::string> names;   // qname, then each CNAME target, in chain order
  AnswerAddr addrs[kMaxAnswerAddrs];
  size_t n_addrs = 0;
  size_t addrs_dropped = 0;         // addresses on the chain beyond kMaxAnswerAddrs
  uint32_t min_ttl = 0;             // smallest TTL of the chain's CNAMEs and addresses; 0 if none
};

// A response from upstream: QR=1, sections well formed up to the end of the
// answer section. With TC set, a message cut short ends the parse with what
// was read so far instead of failing. Addresses count only when their owner
// is on the CNAME chain that starts at the question name.
std::optional<Answer> parse_response(std::span<const uint8_t> msg);

// NOERROR with no records: the query's id, opcode, RD and CD; QR and RA set;
// the first question copied byte for byte (case kept); an OPT record when the
// query had one (UDP size kEdnsUdpSize, DO echoed). Returns the bytes written,
// 0 when `out` is too small or `q` does not describe `query`.
size_t build_empty_answer(std::span<const uint8_t> query, const Question& q,
                          std::span<uint8_t> out);
// The same with rcode (0..15), e.g. kRcodeServFail, kRcodeRefused.
size_t build_error(std::span<const uint8_t> query, const Question& q, uint8_t rcode,
                   std::span<uint8_t> out);
// NOERROR with one answer record: `addr` as an A (IPv4) or AAAA (IPv6)
// record for the question's name (a compression pointer to it), class IN,
// with `ttl` (seconds, below 2^31); otherwise as build_empty_answer. 0 bytes
// when the question is not class IN of that type (the caller answers an A
// query with an IPv4 address, AAAA with IPv6), or as above.
size_t build_address_answer(std::span<const uint8_t> query, const Question& q,
                            const IpAddr& addr, uint32_t ttl, std::span<uint8_t> out);

// The transaction id (first two bytes); get_id gives 0 and set_id does
// nothing for a message shorter than 2 bytes.
uint16_t get_id(std::span<const uint8_t> msg);
void set_id(std::span<uint8_t> msg, uint16_t id);

}  // namespace cf::dns
