// DNS message codec; the theory of operation is in dns_msg.hpp.
//
// Layout of the work: a name is read by read_name (one loop, pointers
// followed under the backwards-only rule, length limits checked as it goes);
// a question or resource record by read_question / read_record, which advance
// a cursor and say whether the message was cut short (Truncated) or is broken
// (Malformed). parse_response first walks the answer section once, keeping a
// small fixed array of record references (offsets), then follows the CNAME
// chain and collects addresses by decoding owner names again from those
// offsets: no per-record allocation, bounded work (records x chain length).
#include "engine/dns_msg.hpp"

#include <cstring>
#include <string_view>

#include "common/bytes.hpp"

namespace cf::dns {
namespace {

enum class Status : uint8_t { Ok, Truncated, Malformed };

// A decoded name in presentation form. Worst case every content byte is
// written as \DDD (4 chars): 4 * 254 < 1024.
struct NameText {
  char text[1024];
  size_t len = 0;
  std::string_view view() const { return {text, len}; }
};

// Appends one label byte: lowercase, and \DDD for anything that would be
// ambiguous or unprintable in presentation form.
void append_label_byte(NameText* out, uint8_t c) {
  if (c >= 'A' && c <= 'Z') c = uint8_t(c - 'A' + 'a');
  if (c > 0x20 && c < 0x7f && c != '.' && c != '\\') {
    out->text[out->len++] = char(c);
    return;
  }
  out->text[out->len++] = '\\';
  out->text[out->len++] = char('0' + c / 100);
  out->text[out->len++] = char('0' + c / 10 % 10);
  out->text[out->len++] = char('0' + c % 10);
}

// Reads the name at `off`. `*end` receives the offset just after the name's
// bytes in place (after the first pointer, if any). `out` may be null to only
// validate and skip.
Status read_name(std::span<const uint8_t> msg, size_t off, NameText* out, size_t* end) {
  size_t pos = off;
  size_t run_start = off;  // where the current run of labels began
  size_t wire_len = 0;
  size_t jumps = 0;
  bool jumped = false;
  if (out) out->len = 0;
  for (;;) {
    if (pos >= msg.size()) return Status::Truncated;
    uint8_t b = msg[pos];
    if ((b & 0xc0) == 0xc0) {
      if (pos + 1 >= msg.size()) return Status::Truncated;
      size_t target = size_t(b & 0x3f) << 8 | msg[pos + 1];
      // Backwards only, never into the header: run_start strictly decreases,
      // so no loop is possible; the jump cap bounds the work anyway.
      if (target >= run_start || target < kHeaderSize) return Status::Malformed;
      if (++jumps > kMaxPointerJumps) return Status::Malformed;
      if (!jumped) {
        *end = pos + 2;
        jumped = true;
      }
      pos = run_start = target;
      continue;
    }
    if (b & 0xc0) return Status::Malformed;  // 0x40/0x80: label > 63 or extended label type
    if (b == 0) {
      wire_len += 1;
      if (wire_len > kMaxNameWire) return Status::Malformed;
      if (!jumped) *end = pos + 1;
      break;
    }
    wire_len += size_t(b) + 1;
    if (wire_len + 1 > kMaxNameWire) return Status::Malformed;  // root byte must still fit
    if (pos + 1 + b > msg.size()) return Status::Truncated;
    if (out) {
      if (out->len) out->text[out->len++] = '.';
      for (size_t i = 0; i < b; ++i) append_label_byte(out, msg[pos + 1 + i]);
    }
    pos += 1 + size_t(b);
  }
  if (out && out->len == 0) out->text[out->len++] = '.';
  return Status::Ok;
}

Status read_question(std::span<const uint8_t> msg, size_t* pos, NameText* name,
                     uint16_t* qtype, uint16_t* qclass) {
  size_t after_name = 0;
  Status st = read_name(msg, *pos, name, &after_name);
  if (st != Status::Ok) return st;
  if (after_name + 4 > msg.size()) return Status::Truncated;
  if (qtype) *qtype = load_be16(msg.data() + after_name);
  if (qclass) *qclass = load_be16(msg.data() + after_name + 2);
  *pos = after_name + 4;
  return Status::Ok;
}

struct RecordRef {
  size_t owner_off = 0;
  uint16_t type = 0;
  uint16_t cls = 0;
  uint32_t ttl = 0;  // raw 32 bits (OPT keeps flags here)
  size_t rdata_off = 0;
  uint16_t rdlen = 0;
};

Status read_record(std::span<const uint8_t> msg, size_t* pos, RecordRef* rr) {
  size_t after_name = 0;
  Status st = read_name(msg, *pos, nullptr, &after_name);
  if (st != Status::Ok) return st;
  if (after_name + 10 > msg.size()) return Status::Truncated;
  rr->owner_off = *pos;
  rr->type = load_be16(msg.data() + after_name);
  rr->cls = load_be16(msg.data() + after_name + 2);
  rr->ttl = load_be32(msg.data() + after_name + 4);
  rr->rdlen = load_be16(msg.data() + after_name + 8);
  rr->rdata_off = after_name + 10;
  if (rr->rdata_off + rr->rdlen > msg.size()) return Status::Truncated;
  *pos = rr->rdata_off + rr->rdlen;
  return Status::Ok;
}

// RFC 2181 section 8: a TTL with the top bit set is treated as zero.
uint32_t effective_ttl(uint32_t raw) { return (raw & 0x80000000u) ? 0 : raw; }

// Checks the rdata of the record types parse_response interprets.
bool rdata_ok(std::span<const uint8_t> msg, const RecordRef& rr) {
  if (rr.cls != kClassIn) return true;
  switch (rr.type) {
    case kTypeA:
      return rr.rdlen == 4;
    case kTypeAaaa:
      return rr.rdlen == 16;
    case kTypeCname: {
      size_t after = 0;
      if (read_name(msg, rr.rdata_off, nullptr, &after) != Status::Ok) return false;
      return after <= rr.rdata_off + rr.rdlen;
    }
    default:
      return true;
  }
}

bool owner_is(std::span<const uint8_t> msg, const RecordRef& rr, std::string_view name,
              NameText* scratch) {
  size_t after = 0;
  if (read_name(msg, rr.owner_off, scratch, &after) != Status::Ok) return false;
  return scratch->view() == name;
}

bool on_chain(const std::vector<std::string>& names, std::string_view name) {
  for (const std::string& n : names)
    if (n == name) return true;
  return false;
}

// The reply to `q`: the header, the first question as sent, one address
// record when `addr` is given (owner: a pointer to that question), and OPT
// when the query had EDNS.
size_t build_reply(std::span<const uint8_t> query, const Question& q, uint8_t rcode,
                   const IpAddr* addr, uint32_t ttl, std::span<uint8_t> out) {
  if (rcode > kRcodeMask) return 0;
  // The first question of an accepted query starts at the header's end and
  // holds at least the root byte, a type and a class.
  if (q.question_end < kHeaderSize + 5 || q.question_end > query.size()) return 0;
  constexpr size_t kOptSize = 11;
  const size_t rr_size = addr ? 2 + 10 + addr->size() : 0;
  size_t need = q.question_end + rr_size + (q.has_edns ? kOptSize : 0);
  if (out.size() < need) return 0;
  uint8_t* p = out.data();
  uint16_t flags = uint16_t(kFlagQr | (q.flags & (kOpcodeMask | kFlagRd | kFlagCd)) | kFlagRa |
                            rcode);
  store_be16(p + 0, q.id);
  store_be16(p + 2, flags);
  store_be16(p + 4, 1);             // QDCOUNT
  store_be16(p + 6, addr ? 1 : 0);  // ANCOUNT
  store_be16(p + 8, 0);             // NSCOUNT
  store_be16(p + 10, q.has_edns ? 1 : 0);
  std::memcpy(p + kHeaderSize, query.data() + kHeaderSize, q.question_end - kHeaderSize);
  uint8_t* o = p + q.question_end;
  if (addr) {
    store_be16(o, 0xc000 | kHeaderSize);  // the question's name
    store_be16(o + 2, addr->is_v4() ? kTypeA : kTypeAaaa);
    store_be16(o + 4, kClassIn);
    store_be32(o + 6, ttl);
    store_be16(o + 10, uint16_t(addr->size()));
    std::memcpy(o + 12, addr->bytes.data(), addr->size());
    o += rr_size;
  }
  if (q.has_edns) {
    o[0] = 0;  // root owner
    store_be16(o + 1, kTypeOpt);
    store_be16(o + 3, kEdnsUdpSize);
    store_be32(o + 5, q.edns_do ? 0x8000u : 0u);  // ext rcode 0, version 0, DO
    store_be16(o + 9, 0);                         // no options
  }
  return need;
}

}  // namespace

std::optional<Question> parse_query(std::span<const uint8_t> msg) {
  if (msg.size() < kHeaderSize) return std::nullopt;
  Question q;
  q.id = load_be16(msg.data());
  q.flags = load_be16(msg.data() + 2);
  uint16_t qdcount = load_be16(msg.data() + 4);
  uint16_t ancount = load_be16(msg.data() + 6);
  uint16_t nscount = load_be16(msg.data() + 8);
  uint16_t arcount = load_be16(msg.data() + 10);
  if (q.flags & kFlagQr) return std::nullopt;
  if (q.flags & kOpcodeMask) return std::nullopt;  // only opcode QUERY
  if (qdcount == 0) return std::nullopt;

  size_t pos = kHeaderSize;
  NameText name;
  if (read_question(msg, &pos, &name, &q.qtype, &q.qclass) != Status::Ok) return std::nullopt;
  q.qname.assign(name.text, name.len);
  q.question_end = pos;
  q.qdcount = qdcount;
  for (uint16_t i = 1; i < qdcount; ++i)
    if (read_question(msg, &pos, nullptr, nullptr, nullptr) != Status::Ok) return std::nullopt;
  RecordRef rr;
  for (uint32_t i = 0; i < uint32_t(ancount) + nscount; ++i)
    if (read_record(msg, &pos, &rr) != Status::Ok) return std::nullopt;
  for (uint16_t i = 0; i < arcount; ++i) {
    if (read_record(msg, &pos, &rr) != Status::Ok) return std::nullopt;
    if (rr.type != kTypeOpt) continue;
    // RFC 6891 6.1.1: one OPT at most, owned by the root.
    if (q.has_edns || msg[rr.owner_off] != 0) return std::nullopt;
    q.has_edns = true;
    q.edns_udp_size = rr.cls;
    q.edns_do = (rr.ttl & 0x8000u) != 0;
  }
  return q;
}

const char* qtype_name(uint16_t qtype) {
  switch (qtype) {
    case kTypeA: return "A";
    case kTypeAaaa: return "AAAA";
    case kTypeCname: return "CNAME";
    case kTypeMx: return "MX";
    case kTypeTxt: return "TXT";
    case kTypeNs: return "NS";
    case kTypePtr: return "PTR";
    case kTypeSrv: return "SRV";
    case kTypeSoa: return "SOA";
    case kTypeHttps: return "HTTPS";
    case kTypeSvcb: return "SVCB";
    case kTypeAny: return "ANY";
    case kTypeCaa: return "CAA";
    case kTypeDs: return "DS";
    case kTypeDnskey: return "DNSKEY";
    default: return "other";
  }
}

const char* rcode_name(uint8_t rcode) {
  switch (rcode) {
    case kRcodeNoError: return "NOERROR";
    case kRcodeFormErr: return "FORMERR";
    case kRcodeServFail: return "SERVFAIL";
    case kRcodeNxDomain: return "NXDOMAIN";
    case kRcodeNotImp: return "NOTIMP";
    case kRcodeRefused: return "REFUSED";
    default: return "other";
  }
}

std::optional<Answer> parse_response(std::span<const uint8_t> msg) {
  if (msg.size() < kHeaderSize) return std::nullopt;
  Answer a;
  a.id = load_be16(msg.data());
  a.flags = load_be16(msg.data() + 2);
  if (!(a.flags & kFlagQr)) return std::nullopt;
  a.rcode = uint8_t(a.flags & kRcodeMask);
  a.truncated = (a.flags & kFlagTc) != 0;
  uint16_t qdcount = load_be16(msg.data() + 4);
  uint16_t ancount = load_be16(msg.data() + 6);

  // A message cut short is acceptable only when the server said so (TC).
  auto cut_short_ok = [&](Status st) { return st == Status::Truncated && a.truncated; };

  size_t pos = kHeaderSize;
  NameText name;
  bool complete = true;
  for (uint16_t i = 0; i < qdcount && complete; ++i) {
    Status st = i == 0 ? read_question(msg, &pos, &name, &a.qtype, &a.qclass)
                       : read_question(msg, &pos, nullptr, nullptr, nullptr);
    if (st == Status::Ok) {
      if (i == 0) a.qname.assign(name.text, name.len);
      continue;
    }
    if (!cut_short_ok(st)) return std::nullopt;
    complete = false;
  }

  RecordRef refs[kMaxAnswerRecords];
  size_t n_refs = 0;
  for (uint16_t i = 0; i < ancount && complete; ++i) {
    RecordRef rr;
    Status st = read_record(msg, &pos, &rr);
    if (st != Status::Ok) {
      if (!cut_short_ok(st)) return std::nullopt;
      complete = false;
      break;
    }
    if (!rdata_ok(msg, rr)) return std::nullopt;
    if (n_refs < kMaxAnswerRecords) refs[n_refs++] = rr;
  }
  if (a.qname.empty()) return a;  // no question: nothing to attribute addresses to

  // Follow the CNAME chain from the question name. A target already on the
  // chain (a CNAME loop) ends it, as does the length cap.
  uint32_t min_ttl = UINT32_MAX;
  a.names.push_back(a.qname);
  while (a.names.size() < kMaxChainNames) {
    const RecordRef* link = nullptr;
    for (size_t i = 0; i < n_refs && !link; ++i) {
      const RecordRef& rr = refs[i];
      if (rr.type == kTypeCname && rr.cls == kClassIn && owner_is(msg, rr, a.names.back(), &name))
        link = &rr;
    }
    if (!link) break;
    size_t after = 0;
    if (read_name(msg, link->rdata_off, &name, &after) != Status::Ok) break;  // checked by rdata_ok
    if (on_chain(a.names, name.view())) break;
    a.names.emplace_back(name.text, name.len);
    if (effective_ttl(link->ttl) < min_ttl) min_ttl = effective_ttl(link->ttl);
  }

  for (size_t i = 0; i < n_refs; ++i) {
    const RecordRef& rr = refs[i];
    if (rr.cls != kClassIn || (rr.type != kTypeA && rr.type != kTypeAaaa)) continue;
    size_t after = 0;
    if (read_name(msg, rr.owner_off, &name, &after) != Status::Ok) continue;
    if (!on_chain(a.names, name.view())) continue;
    if (a.n_addrs == kMaxAnswerAddrs) {
      ++a.addrs_dropped;
      continue;
    }
    AnswerAddr& out = a.addrs[a.n_addrs++];
    out.ip = rr.type == kTypeA ? IpAddr::v4_bytes(msg.data() + rr.rdata_off)
                               : IpAddr::v6_bytes(msg.data() + rr.rdata_off);
    out.ttl = effective_ttl(rr.ttl);
    if (out.ttl < min_ttl) min_ttl = out.ttl;
  }
  a.min_ttl = min_ttl == UINT32_MAX ? 0 : min_ttl;
  return a;
}

size_t build_empty_answer(std::span<const uint8_t> query, const Question& q,
                          std::span<uint8_t> out) {
  return build_reply(query, q, kRcodeNoError, nullptr, 0, out);
}

size_t build_address_answer(std::span<const uint8_t> query, const Question& q,
                            const IpAddr& addr, uint32_t ttl, std::span<uint8_t> out) {
  if (q.qclass != kClassIn || q.qtype != (addr.is_v4() ? kTypeA : kTypeAaaa)) return 0;
  if (ttl & 0x80000000u) return 0;  // RFC 2181 section 8
  return build_reply(query, q, kRcodeNoError, &addr, ttl, out);
}

size_t build_error(std::span<const uint8_t> query, const Question& q, uint8_t rcode,
                   std::span<uint8_t> out) {
  return build_reply(query, q, rcode, nullptr, 0, out);
}

uint16_t get_id(std::span<const uint8_t> msg) {
  if (msg.size() < 2) return 0;
  return load_be16(msg.data());
}

void set_id(std::span<uint8_t> msg, uint16_t id) {
  if (msg.size() < 2) return;
  store_be16(msg.data(), id);
}

}  // namespace cf::dns
