// Property: for any valid Config, `--dump-profile` output written to a file
// and loaded with `childflow --profile FILE --dump-profile` gives an equal
// Config, and dumping that again gives the same text (with --show-secrets;
// without it the password is redacted, see cli_test). The generator covers
// every key, every enum value, IPv4/IPv6, strings with quotes, backslashes,
// control characters and non-ASCII text, and passwords read from files.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "config/profile.hpp"
#include "test_support.hpp"

namespace cf::cli {
namespace {

namespace fs = std::filesystem;

class Gen {
 public:
  explicit Gen(uint32_t seed) : rng_(seed) {}

  bool coin(int percent = 50) { return int(rng_() % 100) < percent; }
  size_t below(size_t n) { return rng_() % n; }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }

  // Arbitrary valid UTF-8 text without NUL (argv cannot carry NUL).
  std::string text(size_t max_pieces, bool allow_control) {
    static const std::vector<std::string> pieces = {
        "a", "Z", "0", " ", "-", "_", "/", ".", "\"", "\\", "'", "'''", "\"\"\"", "#", "=",
        "[", "]", "{", "}", ",", "$x", "%s", "é", "日本", "😀", "\u00a0", "\\u0041", "\\n"};
    static const std::vector<std::string> controls = {"\n", "\t", "\r", "\x01", "\x1b",
                                                      "\x7f", "\b", "\f"};
    std::string s;
    size_t n = below(max_pieces + 1);
    for (size_t i = 0; i < n; ++i)
      s += allow_control && coin(15) ? pick(controls) : pick(pieces);
    return s;
  }

  std::string label() {
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    std::string l(1, alnum[below(26)]);  // starts with a letter: never an IP literal
    size_t n = below(12);
    for (size_t i = 0; i < n; ++i) l += coin(10) ? '-' : alnum[below(36)];
    if (l.back() == '-') l.back() = 'x';
    return l;
  }
  std::string domain() {
    std::string d = label();
    size_t n = below(4);
    for (size_t i = 0; i < n; ++i) d += "." + label();
    return d;
  }

  IpAddr ip(bool v6) {
    IpAddr a;
    a.family = v6 ? Family::V6 : Family::V4;
    for (size_t i = 0; i < a.size(); ++i) a.bytes[i] = uint8_t(rng_());
    return a;
  }
  Cidr cidr() {
    bool v6 = coin();
    Cidr c{ip(v6), uint8_t(below(v6 ? 129 : 33))};
    for (unsigned i = c.prefix; i < (v6 ? 128u : 32u); ++i)
      c.addr.bytes[i / 8] &= uint8_t(~(0x80 >> (i % 8)));
    return c;
  }
  std::string abs_path(const std::string& base) {
    std::string p = base;
    size_t n = 1 + below(3);
    for (size_t i = 0; i < n; ++i) {
      std::string part = text(4, true);
      std::erase(part, '/');
      if (part.empty() || part == "." || part == "..") part = "p";
      p += "/" + part;
    }
    return p;
  }

 private:
  std::mt19937 rng_;
};

class RoundTrip : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cf-roundtrip-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* name : {"hosts", "hosts \"q\" é", "h\\b 日本", "tab\tname"}) {
      std::string p = dir_ + "/" + name;
      std::ofstream(p) << "198.51.100.1 a.example\n";
      hosts_files_.push_back(p);
    }
    // Password files: what a dump writes instead of the password they hold.
    for (const char* pw : {"s3cret\n", "with \"quotes\" \\ and é\r\n", "-dash"}) {
      std::string p = dir_ + "/pw" + std::to_string(password_files_.size());
      std::ofstream(p, std::ios::binary) << pw;
      std::string held = pw;
      while (held.back() == '\n' || held.back() == '\r') held.pop_back();
      password_files_.push_back({p, held});
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  Config random_config(Gen& g) {
    Config c;
    c.mode = Mode::DumpProfile;
    c.backend = g.coin() ? Backend::Rootful : Backend::RootlessInternal;
    if (g.coin()) c.capture = g.abs_path(dir_ + "/cap");
    if (c.capture)
      c.capture_point = g.pick(std::vector<CapturePoint>{
          CapturePoint::Child, CapturePoint::Egress, CapturePoint::WireEgress,
          CapturePoint::Both});
    if (g.coin()) {
      c.flow_log = g.abs_path(dir_ + "/log");
    }
    if (g.coin()) c.dns = g.ip(g.coin());
    if (g.coin()) c.hosts_file = g.pick(hosts_files_);
    if (c.backend == Backend::Rootful && g.coin()) {
      std::string name = g.label().substr(0, 15);
      c.iface = name;
    }
    c.summary = g.coin();
    c.summary_format = g.coin() ? TextOrJson::Json : TextOrJson::Text;
    if (g.coin(60)) {
      ProxyUri p;
      p.scheme = g.pick(std::vector<ProxyScheme>{ProxyScheme::Http, ProxyScheme::Https,
                                                 ProxyScheme::Socks5});
      int kind = int(g.below(3));
      p.host = kind == 0 ? g.domain() : g.ip(kind == 2).str();
      p.port = uint16_t(1 + g.below(65535));
      c.proxy = p;
      if (g.coin()) {
        std::string user = g.text(6, false);
        if (p.scheme != ProxyScheme::Socks5) std::erase(user, ':');
        if (user.empty()) user = "u";
        std::string pw = g.text(6, false);
        if (pw.empty() && p.scheme == ProxyScheme::Socks5) pw = "p";
        c.proxy_user = user;
        c.proxy_password = pw;
        if (g.coin(30)) {
          const auto& [file, held] = g.pick(password_files_);
          c.proxy_password_file = file;
          c.proxy_password = held;
        }
      }
      c.proxy_insecure = p.scheme == ProxyScheme::Https && g.coin();
      if (p.scheme == ProxyScheme::Https && g.coin()) c.proxy_ca = g.pick(hosts_files_);
      c.proxy_only = g.coin();
      c.proxy_dns = g.coin() ? ProxyDns::Remote : ProxyDns::Local;
    }
    c.offline = g.coin();
    c.block_private = g.coin();
    c.block_metadata = g.coin();
    c.default_policy = g.coin() ? DefaultPolicy::Deny : DefaultPolicy::Allow;
    auto cidrs = [&] {
      std::vector<Cidr> v(g.below(4));
      for (auto& x : v) x = g.cidr();
      return v;
    };
    auto domains = [&] {
      std::vector<std::string> v(g.below(4));
      for (auto& x : v) x = g.domain();
      return v;
    };
    c.allow_cidrs = cidrs();
    c.deny_cidrs = cidrs();
    c.allow_domains = domains();
    c.allow_domains_exact = domains();
    c.deny_domains = domains();
    c.deny_domains_exact = domains();
    c.fail_on_leak = g.coin();
    c.allow_host_loopback = g.coin();
    c.mtu = uint32_t(576 + g.below(65520 - 576 + 1));
    size_t n = g.below(5);
    for (size_t i = 0; i < n; ++i) c.command.push_back(g.text(8, true));
    return c;
  }

  std::string dir_;
  std::vector<std::string> hosts_files_;
  std::vector<std::pair<std::string, std::string>> password_files_;  // path, password
};

TEST_F(RoundTrip, DumpLoadsBackEqualForManyRandomConfigs) {
  Gen g(20261128);
  std::string file = dir_ + "/profile.toml";
  for (int i = 0; i < 600; ++i) {
    Config c = random_config(g);
    c.show_secrets = true;  // a redacted dump loads back without its password
    std::string dumped = config::dump_profile(c);
    std::ofstream(file, std::ios::trunc) << dumped;
    test::Outcome o = test::run({"--profile", file, "--dump-profile", "--show-secrets"});
    ASSERT_TRUE(o.config) << "case " << i << ": " << o.err << "\n" << dumped;
    ASSERT_EQ(*o.config, c) << "case " << i << "\n" << dumped << "\nloaded back as\n"
                            << config::dump_profile(*o.config);
    ASSERT_EQ(config::dump_profile(*o.config), dumped) << "case " << i;
  }
}

TEST_F(RoundTrip, DumpOfFlagsLoadsBackEqual) {
  // The same through the command line: flags -> dump -> profile -> Config.
  std::string cap = dir_ + "/c \"x\".pcapng";
  test::Outcome first =
      test::run({"--dump-profile", "--show-secrets", "-c", cap, "-C", "both", "-p", "socks5://[2001:db8::1]:1080",
                 "-U", "ü\\\"", "-P", "pa ss", "--deny-domain", "Example.COM.", "--mtu", "1280",
                 "--root", "-i", "eth0", "--", "sh", "-c", "echo \"$1\"\n", "x"});
  ASSERT_TRUE(first.config) << first.err;
  std::string file = dir_ + "/p.toml";
  std::ofstream(file) << config::dump_profile(*first.config);
  test::Outcome second = test::run({"--profile", file, "--dump-profile", "--show-secrets"});
  ASSERT_TRUE(second.config) << second.err;
  EXPECT_EQ(*second.config, *first.config);
}

}  // namespace
}  // namespace cf::cli
