// libFuzzer target for the DNS message codec (src/engine/dns_msg.hpp).
//
// Every input is tried as a query and as a response. For a parsed query the
// synthetic answers are built and fed back through the parsers, and the
// invariants the engine relies on are checked: names within limits, built
// answers that parse as responses to the same question, addresses only when
// a chain exists. A broken invariant aborts, which libFuzzer reports.
//
// Run: build with the `fuzz` preset, then
//   build/fuzz/fuzz_dns -max_total_time=180 tests/fuzz/corpus/dns
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "fuzz_check.hpp"
#include "engine/dns_msg.hpp"

namespace {

using cf::fuzz::check;

// A presentation name of a wire name of at most 255 bytes: each content byte
// takes at most 4 characters, and labels are separated by single dots.
bool name_in_limits(const std::string& name) {
  if (name.empty() || name.size() > 4 * cf::dns::kMaxNameWire) return false;
  for (char c : name)
    if (c >= 'A' && c <= 'Z') return false;  // always lowercase
  return name == "." || (name.front() != '.' && name.back() != '.');
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> msg(data, size);
  using namespace cf::dns;

  if (auto q = parse_query(msg)) {
    check(name_in_limits(q->qname));
    check(q->question_end > kHeaderSize && q->question_end <= size);
    (void)qtype_name(q->qtype);

    uint8_t out[kHeaderSize + kMaxNameWire + 4 + 11];
    size_t n = build_empty_answer(msg, *q, out);
    check(n > 0);  // an accepted query always fits: header + one question + OPT
    auto a = parse_response(std::span<const uint8_t>(out, n));
    check(a.has_value());
    check(a->id == q->id && a->rcode == kRcodeNoError && !a->truncated);
    check(a->qname == q->qname && a->qtype == q->qtype && a->qclass == q->qclass);
    check(a->n_addrs == 0 && a->names.size() == 1);
    check(!parse_query(std::span<const uint8_t>(out, n)));  // QR is set

    n = build_error(msg, *q, kRcodeServFail, out);
    check(n > 0);
    a = parse_response(std::span<const uint8_t>(out, n));
    check(a.has_value() && a->rcode == kRcodeServFail && a->qname == q->qname);

    // Too small a buffer is refused, never overrun.
    check(build_empty_answer(msg, *q, std::span<uint8_t>(out, n - 1)) == 0);

    // --proxy-dns remote: an A or AAAA query gets one synthetic address.
    if (q->qclass == kClassIn && (q->qtype == kTypeA || q->qtype == kTypeAaaa)) {
      uint8_t big[sizeof out + 28];
      cf::IpAddr ip = q->qtype == kTypeA ? *cf::IpAddr::parse("198.18.0.1")
                                         : *cf::IpAddr::parse("fd63:666c:6f77::1");
      n = build_address_answer(msg, *q, ip, 30, big);
      check(n > 0);
      a = parse_response(std::span<const uint8_t>(big, n));
      check(a.has_value() && a->qname == q->qname && a->n_addrs == 1 && a->addrs[0].ip == ip);
    }
  }

  if (auto a = parse_response(msg)) {
    check(a->n_addrs <= kMaxAnswerAddrs);
    check(a->names.size() <= kMaxChainNames);
    if (a->qname.empty()) {
      check(a->names.empty() && a->n_addrs == 0);
    } else {
      check(!a->names.empty() && a->names.front() == a->qname);
      for (const std::string& n : a->names) check(name_in_limits(n));
    }
    for (size_t i = 0; i < a->n_addrs; ++i) check(a->addrs[i].ttl <= 0x7fffffffu);
    (void)rcode_name(a->rcode);
  }

  (void)get_id(msg);
  return 0;
}
