// libFuzzer target for the TOML profile loader (load_profile_text,
// src/config/profile.hpp) and the dump that must load back (dump_profile).
//
// Every input is the text of a profile at a fixed path inside a scratch
// directory made at start-up, which holds what a profile there may name:
// base.toml (a copy of tests/fixtures/profiles/base.toml), mid.toml (extends
// base.toml), loop-a.toml and loop-b.toml (which extend each other) and a
// valid hosts file. The fuzzer reads no other file: an input that TOML-parses
// and holds a string starting with `/` or containing `..` anywhere (which
// `extends`, `hosts_file` or `proxy_ca` would open; a FIFO or /dev/stdin
// would block the fuzzer) is skipped; relative paths resolve inside the
// scratch directory.
//
// Invariants: loading is deterministic (the same Layer, or the same error,
// twice); an error is one line of printable text naming the profile (it is
// printed as `childflow: error: ...` on a terminal); and a profile that
// loads gives a Config whose dump loads back to the same Config and dumps to
// the same text (--dump-profile is a fixed point). A broken invariant aborts,
// which libFuzzer reports.
//
// Run: `make fuzz` (scripts/fuzz.sh), or build with the `fuzz` preset, then
//   build/fuzz/fuzz_profile -max_total_time=60 build/fuzz/corpus-profile tests/fuzz/corpus/profile
#include <stdlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <toml++/toml.h>

#include "fuzz_check.hpp"
#include "config/profile.hpp"
#include "config/settings.hpp"

namespace {

namespace fs = std::filesystem;

std::string g_dir;   // the scratch directory
std::string g_path;  // the profile every input is

using cf::fuzz::check;

void write(const std::string& name, const std::string& text) {
  std::ofstream(g_dir + "/" + name) << text;
}

void remove_scratch() {
  std::error_code ec;
  fs::remove_all(g_dir, ec);
}

// True when a string of the table could name a file outside the scratch
// directory.
bool leaves_scratch(const toml::node& n) {
  if (auto* s = n.as_string()) {
    const std::string& v = s->get();
    return v.starts_with('/') || v.find("..") != std::string::npos;
  }
  if (auto* a = n.as_array()) {
    for (const toml::node& el : *a)
      if (leaves_scratch(el)) return true;
  }
  if (auto* t = n.as_table()) {
    for (auto&& [k, v] : *t)
      if (leaves_scratch(v)) return true;
  }
  return false;
}

bool one_printable_line(const std::string& s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/cf-fuzz-profile-XXXXXX";
  if (!mkdtemp(tmpl.data())) std::abort();
  g_dir = tmpl;
  g_path = g_dir + "/profile.toml";
  std::atexit(remove_scratch);
  write("base.toml",
        "proxy = \"http://proxy-http:3128\"\n"
        "proxy_user = \"demo\"\n"
        "proxy_password = \"demo\"\n"
        "default_policy = \"deny\"\n"
        "allow_cidrs = [\"10.243.0.10/32\", \"10.243.0.20/32\"]\n");
  write("mid.toml", "extends = \"base.toml\"\nmtu = 1400\nallow_domains = [\"example.org\"]\n");
  write("loop-a.toml", "extends = \"loop-b.toml\"\n");
  write("loop-b.toml", "extends = \"loop-a.toml\"\n");
  write("hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost\n");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    toml::table t = toml::parse(text, g_path);
    if (leaves_scratch(t)) return -1;
  } catch (const toml::parse_error&) {
    // The loader reports it; nothing it could open.
  }

  using namespace cf::config;
  auto a = load_profile_text(text, g_path);
  auto b = load_profile_text(text, g_path);
  check(a.ok() == b.ok());
  if (!a) {
    const std::string& msg = a.error().message;
    check(msg == b.error().message);
    check(!msg.empty() && one_printable_line(msg));
    check(msg.find(g_dir) != std::string::npos);
    return 0;
  }
  check(*a == *b);

  // --dump-profile: loads back to the same Config, and is a fixed point.
  cf::Config c = apply(*a);
  std::string dump = dump_profile(c);
  auto again = load_profile_text(dump, g_path);
  check(again.ok());
  cf::Config c2 = apply(*again);
  check(c2 == c);
  check(dump_profile(c2) == dump);
  return 0;
}
