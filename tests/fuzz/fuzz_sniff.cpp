// libFuzzer target for the parsers of a TCP connection's first bytes: the
// TLS ClientHello's server_name and the HTTP/1 request's Host
// (engine/sniff.hpp), which read what the command tree sends.
//
// Invariants checked on every input (a broken one aborts):
//   - inspect() never reads past its input (ASan) and is deterministic;
//   - a name points into the input or into the scratch buffer, and has a
//     length of at most the input's;
//   - Names and Malformed stay the same when more bytes follow (tcp.cpp
//     judges as soon as the bytes decide, so bytes appended later must not
//     change what was decided);
//   - every strict prefix of an input that gave Names or Malformed gives
//     NeedMore or the same verdict (never Other: a grammar that is still
//     possible is not refused early);
//   - normalize() returns only bytes '!'..'~', no upper-case letter, and
//     a name it returned without escapes normalizes to itself.
//
// Run: `make fuzz` (scripts/fuzz.sh), or build with the `fuzz` preset, then
//   build/fuzz/fuzz_sniff -max_total_time=60 build/fuzz/corpus-sniff tests/fuzz/corpus/sniff
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/sniff.hpp"
#include "fuzz_check.hpp"

namespace {

using namespace cf::engine::sniff;

using cf::fuzz::check;

bool inside(std::string_view v, const uint8_t* base, size_t n) {
  auto p = reinterpret_cast<const uint8_t*>(v.data());
  return v.empty() || (p >= base && p + v.size() <= base + n);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 2 * kMax) return 0;
  static std::vector<uint8_t> scratch(kMax), scratch2(kMax);
  std::vector<uint8_t> in(data, data + size);
  Result r = inspect(in, scratch);
  Result again = inspect(in, scratch2);
  check(r.verdict == again.verdict && r.proto == again.proto && r.n_names == again.n_names &&
        r.ech == again.ech);
  check(r.n_names <= 2);
  for (uint8_t i = 0; i < r.n_names; ++i) {
    check(r.names[i].raw == again.names[i].raw);
    check(inside(r.names[i].raw, in.data(), in.size()) ||
          inside(r.names[i].raw, scratch.data(), scratch.size()));
    check(r.names[i].raw.size() <= size);
    std::string n = normalize(r.names[i]);
    for (char c : n) check(c >= '!' && c <= '~' && !(c >= 'A' && c <= 'Z'));
    // A name with nothing to escape (no '\\') and no trailing dot is its
    // own normal form. (An escaped one is not: its '\\' would be escaped
    // again, which the first run of this target found in the invariant.)
    if (!n.empty() && n.back() != '.' && n.find('\\') == std::string::npos)
      check(normalize({n, Source::TlsSni}) == n);
  }
  if (r.verdict == Verdict::Names || r.verdict == Verdict::Malformed) {
    // Decided: more bytes after these change nothing.
    std::vector<uint8_t> more = in;
    more.insert(more.end(), {'\r', '\n', 0x16, 0x03, 'X'});
    Result m = inspect(more, scratch2);
    check(m.verdict == r.verdict && m.n_names == r.n_names);
    // A prefix is never refused as Other.
    for (size_t cut : {size / 2, size - 1}) {
      if (cut == 0 || cut >= size) continue;
      Result p = inspect({in.data(), cut}, scratch2);
      check(p.verdict != Verdict::Other);
    }
  }
  return 0;
}
