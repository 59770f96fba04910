// Profiles: every key, type and value errors naming file/line/key, extends
// chains and cycles, relative paths, overlay/apply precedence, the Rust
// fixtures, and the dump format.
#include "config/profile.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <toml++/toml.h>

namespace cf::config {
namespace {

namespace fs = std::filesystem;

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

class ProfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cf-profile-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << text;
    return path;
  }
  Layer load_ok(const std::string& path) {
    auto r = load_profile(path);
    if (!r) {
      ADD_FAILURE() << r.error().str();
      return {};
    }
    return *r;
  }
  std::string load_err(const std::string& path) {
    auto r = load_profile(path);
    EXPECT_FALSE(r) << path;
    return r ? "" : r.error().str();
  }

  std::string dir_;
};

TEST_F(ProfileTest, EveryKey) {
  std::string hosts = write("hosts", "198.51.100.1 a.example\n");
  std::string p = write("all.toml", R"(
capture = "cap/out.pcapng"
capture_point = "both"
backend = "rootful"
dns = "2001:db8::53"
hosts_file = "hosts"
proxy = "https://Proxy.Example:8443/"
proxy_user = "u"
proxy_password = "p w"
proxy_insecure = true
proxy_ca = "hosts"
proxy_dns = "remote"
summary = true
summary_format = "json"
flow_log = "/var/tmp/../tmp/flows.jsonl"
offline = true
block_private = true
block_metadata = true
default_policy = "deny"
allow_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
deny_cidrs = ["203.0.113.0/24"]
allow_domains = ["Example.COM."]
allow_domains_exact = ["www.example.org"]
deny_domains = ["bad.example"]
deny_domains_exact = ["x.bad.example"]
proxy_only = true
fail_on_leak = true
iface = "eth1"
allow_host_loopback = true
mtu = 1500
command = ["curl", "-fsS", "http://www.example.test/"]
)");
  Layer l = load_ok(p);
  EXPECT_EQ(l.get(&Config::capture), dir_ + "/cap/out.pcapng");
  EXPECT_EQ(l.get(&Config::capture_point), CapturePoint::Both);
  EXPECT_EQ(l.get(&Config::backend), Backend::Rootful);
  EXPECT_EQ(l.get(&Config::dns)->str(), "2001:db8::53");
  EXPECT_EQ(l.get(&Config::hosts_file), hosts);
  EXPECT_EQ(l.get(&Config::proxy)->str(), "https://proxy.example:8443");
  EXPECT_EQ(l.get(&Config::proxy_user), "u");
  EXPECT_EQ(l.get(&Config::proxy_password), "p w");
  EXPECT_EQ(l.get(&Config::proxy_insecure), true);
  EXPECT_EQ(l.get(&Config::proxy_ca), hosts);
  EXPECT_EQ(l.get(&Config::proxy_dns), ProxyDns::Remote);
  EXPECT_EQ(l.get(&Config::summary), true);
  EXPECT_EQ(l.get(&Config::summary_format), TextOrJson::Json);
  EXPECT_EQ(l.get(&Config::flow_log), "/var/tmp/flows.jsonl");  // lexically normalised
  EXPECT_EQ(l.get(&Config::offline), true);
  EXPECT_EQ(l.get(&Config::block_private), true);
  EXPECT_EQ(l.get(&Config::block_metadata), true);
  EXPECT_EQ(l.get(&Config::default_policy), DefaultPolicy::Deny);
  ASSERT_EQ(l.get(&Config::allow_cidrs)->size(), 2u);
  EXPECT_EQ((*l.get(&Config::allow_cidrs))[1].str(), "2001:db8::/32");
  EXPECT_EQ(l.get(&Config::deny_cidrs)->at(0).str(), "203.0.113.0/24");
  EXPECT_EQ(*l.get(&Config::allow_domains), std::vector<std::string>{"example.com"});
  EXPECT_EQ(*l.get(&Config::allow_domains_exact), std::vector<std::string>{"www.example.org"});
  EXPECT_EQ(*l.get(&Config::deny_domains), std::vector<std::string>{"bad.example"});
  EXPECT_EQ(*l.get(&Config::deny_domains_exact), std::vector<std::string>{"x.bad.example"});
  EXPECT_EQ(l.get(&Config::proxy_only), true);
  EXPECT_EQ(l.get(&Config::fail_on_leak), true);
  EXPECT_EQ(l.get(&Config::iface), "eth1");
  EXPECT_EQ(l.get(&Config::allow_host_loopback), true);
  EXPECT_EQ(l.get(&Config::mtu), 1500u);
  EXPECT_EQ(l.get(&Config::command)->size(), 3u);
}

TEST_F(ProfileTest, EmptyProfileSetsNothing) {
  EXPECT_EQ(load_ok(write("empty.toml", "# nothing\n")), Layer{});
}

TEST_F(ProfileTest, WrongTypesNameFileLineAndKey) {
  std::string p = write("a.toml", "offline = true\n\nmtu = \"1500\"\n");
  EXPECT_EQ(load_err(p), "profile " + p + " line 3: key `mtu`: expected an integer");
  p = write("b.toml", "summary = 1\n");
  EXPECT_EQ(load_err(p), "profile " + p + " line 1: key `summary`: expected a boolean (true or false)");
  p = write("c.toml", "allow_cidrs = \"10.0.0.0/8\"\n");
  EXPECT_EQ(load_err(p), "profile " + p + " line 1: key `allow_cidrs`: expected an array of strings");
  p = write("d.toml", "command = [\n  \"a\",\n  2,\n]\n");
  EXPECT_EQ(load_err(p), "profile " + p + " line 3: key `command`: element 2: expected a string");
  p = write("e.toml", "proxy = 3128\n");
  EXPECT_HAS(load_err(p), "line 1: key `proxy`: expected a string");
  p = write("f.toml", "mtu = 1500.0\n");
  EXPECT_HAS(load_err(p), "line 1: key `mtu`: expected an integer");
  p = write("g.toml", "capture = false\n");
  EXPECT_HAS(load_err(p), "key `capture`: expected a string (a path)");
  p = write("h.toml", "[proxy]\nhost = \"x\"\n");
  EXPECT_HAS(load_err(p), "line 1: key `proxy`: expected a string");
}

TEST_F(ProfileTest, BadValuesNameFileLineAndKey) {
  std::string p = write("a.toml", "mtu = 100\n");
  EXPECT_HAS(load_err(p), "profile " + p + " line 1: key `mtu`: MTU 100 is out of range");
  p = write("b.toml", "deny_cidrs = [\n  \"10.0.0.0/8\",\n  \"10.1.2.3/8\",\n]\n");
  std::string e = load_err(p);
  EXPECT_HAS(e, "line 3: key `deny_cidrs`: element 2: `10.1.2.3/8` has host bits set");
  EXPECT_HAS(e, "10.0.0.0/8?");
  p = write("c.toml", "proxy = \"http://proxy:3128/path\"\n");
  EXPECT_HAS(load_err(p), "line 1: key `proxy`: `http://proxy:3128/path` has a path");
  p = write("d.toml", "allow_domains = [\"bad_name.example\"]\n");
  EXPECT_HAS(load_err(p), "key `allow_domains`: element 1: `bad_name.example` is not a DNS name");
  p = write("e.toml", "backend = \"root\"\n");
  EXPECT_HAS(load_err(p), "key `backend`: `root` is not a backend");
  p = write("f.toml", "hosts_file = \"missing-hosts\"\n");
  EXPECT_HAS(load_err(p), "key `hosts_file`: cannot read " + dir_ + "/missing-hosts");
  p = write("g.toml", "dns = \"resolver.example\"\n");
  EXPECT_HAS(load_err(p), "key `dns`: `resolver.example` is not an IP address");
  p = write("h.toml", "iface = \"eth0:1\"\n");
  EXPECT_HAS(load_err(p), "key `iface`");
  p = write("i.toml", "capture_point = \"wire\"\n");
  EXPECT_HAS(load_err(p), "key `capture_point`");
  p = write("k.toml", "proxy_ca = \"no-ca.pem\"\n");
  EXPECT_HAS(load_err(p), "key `proxy_ca`: cannot read " + dir_ + "/no-ca.pem");
  p = write("j.toml", "capture = \"\"\n");
  EXPECT_HAS(load_err(p), "key `capture`: the path is empty");
}

TEST_F(ProfileTest, UnknownKeysNameFileLineAndSuggest) {
  std::string p = write("a.toml", "offline = true\nallow_cidr = [\"10.0.0.0/8\"]\n");
  EXPECT_EQ(load_err(p),
            "profile " + p + " line 2: unknown key `allow_cidr`: did you mean `allow_cidrs`?");
  p = write("b.toml", "root = true\n");
  EXPECT_HAS(load_err(p), "unknown key `root`: the backend is chosen with backend = \"rootful\"");
  p = write("c.toml", "block-private = true\n");
  EXPECT_HAS(load_err(p), "unknown key `block-private`: did you mean `block_private`?");
  p = write("d.toml", "[something]\nx = 1\n");
  EXPECT_HAS(load_err(p), "line 1: unknown key `something`");
  // The first problem in file order is reported, not the first in key order.
  p = write("e.toml", "zzz = 1\naaa = 2\n");
  EXPECT_HAS(load_err(p), "line 1: unknown key `zzz`");
}

TEST_F(ProfileTest, ControlBytesOfTheFileAreEscapedInErrors) {
  // Found by fuzz_profile (tests/fuzz/corpus/profile/crash-*): a key, a
  // value the TOML parser quotes or an `extends` path from the file reached
  // the one-line error as raw bytes, so a profile from a checkout could
  // clear the terminal or forge lines of output.
  auto no_control = [](const std::string& e) {
    return std::none_of(e.begin(), e.end(),
                        [](char c) { return (unsigned char)c < 0x20 || c == 0x7f; });
  };
  std::string p = write("a.toml", "\"dns\\n\\u001b[2J\" = \"x\"\n");
  std::string e = load_err(p);
  EXPECT_TRUE(no_control(e)) << e;
  EXPECT_EQ(e, "profile " + p + " line 1: unknown key `dns\\x0a\\x1b[2J`: see docs/profile.md for the keys");
  p = write("b.toml", "block_private = t\x1fue\n");  // the fuzzer's find, shortened
  e = load_err(p);
  EXPECT_TRUE(no_control(e)) << e;
  EXPECT_HAS(e, "profile " + p + " line 1: ");
  EXPECT_HAS(e, "t\\x1f");
  p = write("c.toml", "extends = \"x\\u007f\\r.toml\"\n");
  e = load_err(p);
  EXPECT_TRUE(no_control(e)) << e;
  EXPECT_HAS(e, dir_ + "/x\\x7f\\x0d.toml does not exist");
}

TEST_F(ProfileTest, SyntaxErrorsNameFileAndLine) {
  std::string p = write("a.toml", "offline = true\nmtu = = 3\n");
  EXPECT_HAS(load_err(p), "profile " + p + " line 2: ");
  p = write("b.toml", "offline = true\noffline = false\n");
  EXPECT_HAS(load_err(p), "profile " + p + " line 2: ");
  std::string e = load_err(dir_ + "/missing.toml");
  EXPECT_HAS(e, "cannot read profile " + dir_ + "/missing.toml: No such file");
  EXPECT_HAS(load_err(dir_), "is a directory");
}

TEST_F(ProfileTest, ExtendsChainChildWinsListsReplace) {
  write("base/grand.toml", "mtu = 1400\nallow_domains = [\"a.example\", \"b.example\"]\n"
                           "flow_log = \"logs/grand.jsonl\"\noffline = true\n");
  write("base/parent.toml", "extends = \"grand.toml\"\nmtu = 1300\n"
                            "capture = \"parent.pcapng\"\n");
  std::string child = write("child/child.toml",
                            "extends = \"../base/parent.toml\"\nallow_domains = [\"c.example\"]\n"
                            "offline = false\n");
  Layer l = load_ok(child);
  EXPECT_EQ(l.get(&Config::mtu), 1300u);                                        // parent over grandparent
  EXPECT_EQ(*l.get(&Config::allow_domains), std::vector<std::string>{"c.example"});  // replaced
  EXPECT_EQ(l.get(&Config::offline), false);                                    // child over grandparent
  EXPECT_EQ(l.get(&Config::flow_log), dir_ + "/base/logs/grand.jsonl");         // relative to grand.toml
  EXPECT_EQ(l.get(&Config::capture), dir_ + "/base/parent.pcapng");             // relative to parent.toml
}

TEST_F(ProfileTest, ExtendsAbsoluteAndMissing) {
  std::string base = write("b.toml", "mtu = 9000\n");
  std::string child = write("sub/c.toml", "extends = \"" + base + "\"\n");
  EXPECT_EQ(load_ok(child).get(&Config::mtu), 9000u);
  std::string bad = write("d.toml", "\nextends = \"nope.toml\"\n");
  EXPECT_EQ(load_err(bad), "profile " + bad + " line 2: key `extends`: " + dir_ +
                               "/nope.toml does not exist");
  std::string wrong = write("e.toml", "extends = [\"a.toml\"]\n");
  EXPECT_HAS(load_err(wrong), "line 1: key `extends`: expected a string");
  // An error in a parent names the parent's file.
  std::string parent = write("p.toml", "mtu = true\n");
  std::string c2 = write("c2.toml", "extends = \"p.toml\"\n");
  EXPECT_HAS(load_err(c2), "profile " + parent + " line 1: key `mtu`");
}

TEST_F(ProfileTest, CyclesPrintTheChain) {
  std::string a = write("a.toml", "extends = \"b.toml\"\n");
  std::string b = write("b.toml", "extends = \"./a.toml\"\n");
  std::string e = load_err(a);
  EXPECT_HAS(e, "profile inheritance cycle: " + a + " -> " + b + " -> " + a);
  std::string self = write("self.toml", "extends = \"self.toml\"\n");
  EXPECT_HAS(load_err(self), "cycle: " + self + " -> " + self);
  // A cycle through a symlink is found too.
  std::string x = write("x.toml", "extends = \"link.toml\"\n");
  fs::create_symlink(x, dir_ + "/link.toml");
  EXPECT_HAS(load_err(x), "profile inheritance cycle: " + x + " -> " + dir_ + "/link.toml");
}

TEST_F(ProfileTest, RelativeProfilePathUsesCwd) {
  write("rel/r.toml", "capture = \"c.pcapng\"\n");
  std::string old = fs::current_path().string();
  ASSERT_EQ(chdir(dir_.c_str()), 0);
  auto r = load_profile("rel/r.toml");
  ASSERT_EQ(chdir(old.c_str()), 0);
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->get(&Config::capture), dir_ + "/rel/c.pcapng");
}

// A bare name: the current directory, then $XDG_CONFIG_HOME/childflow (or
// ~/.config/childflow), then /etc/childflow; `.toml` may be left out there;
// only regular files count; the current directory and a profile directory
// both holding it is an error.
TEST_F(ProfileTest, BareNamesAreLookedUpInTheProfileDirectories) {
  std::string old = fs::current_path().string();
  const char* old_xdg = getenv("XDG_CONFIG_HOME");
  std::string saved_xdg = old_xdg ? old_xdg : "";
  write("xdg/childflow/ci.toml", "mtu = 1400\n");
  write("xdg/childflow/both.toml", "mtu = 1401\n");
  write("cwd/both.toml", "mtu = 1402\n");
  setenv("XDG_CONFIG_HOME", (dir_ + "/xdg").c_str(), 1);
  ASSERT_EQ(chdir((dir_ + "/cwd").c_str()), 0);
  auto dirs = profile_dirs();
  auto by_name = load_profile("ci");
  auto by_file = load_profile("ci.toml");
  auto ambiguous = load_profile("both.toml");
  fs::create_directories(dir_ + "/cwd/ci");  // a directory is not the profile `ci`
  auto past_dir = load_profile("ci");
  auto missing = load_profile("nope");
  ASSERT_EQ(chdir(old.c_str()), 0);
  if (old_xdg) setenv("XDG_CONFIG_HOME", saved_xdg.c_str(), 1);
  else unsetenv("XDG_CONFIG_HOME");

  ASSERT_EQ(dirs.size(), 3u);
  EXPECT_EQ(dirs[1], dir_ + "/xdg/childflow");
  EXPECT_EQ(dirs[2], "/etc/childflow");
  ASSERT_TRUE(by_name) << by_name.error().str();
  EXPECT_EQ(by_name->get(&Config::mtu), 1400u) << "`ci` finds ci.toml in the user's directory";
  ASSERT_TRUE(by_file) << by_file.error().str();
  EXPECT_EQ(by_file->get(&Config::mtu), 1400u);
  ASSERT_FALSE(ambiguous) << "a name in the current directory and in the user's";
  EXPECT_HAS(ambiguous.error().str(), "--profile both.toml: both " + dir_ + "/cwd/both.toml and " +
                                          dir_ + "/xdg/childflow/both.toml exist");
  ASSERT_TRUE(past_dir) << past_dir.error().str();
  EXPECT_EQ(past_dir->get(&Config::mtu), 1400u);
  ASSERT_FALSE(missing);
  EXPECT_HAS(missing.error().str(), "--profile nope: no such profile: looked for " + dir_ +
                                        "/cwd/nope, " + dir_ + "/xdg/childflow/nope, " + dir_ +
                                        "/xdg/childflow/nope.toml, /etc/childflow/nope");
}

TEST(Overlay, TopWinsAndUnsetKeepsBase) {
  Layer base, top;
  base.set(&Config::mtu, 1400u);
  base.set(&Config::offline, true);
  base.set(&Config::allow_domains, std::vector<std::string>{"a.example", "b.example"});
  base.set(&Config::command, std::vector<std::string>{"a"});
  top.set(&Config::mtu, 1300u);
  top.set(&Config::allow_domains, std::vector<std::string>{});
  top.set(&Config::offline, false);
  base.overlay(top);
  EXPECT_EQ(base.get(&Config::mtu), 1300u);
  EXPECT_EQ(base.get(&Config::offline), false);
  EXPECT_TRUE(base.get(&Config::allow_domains)->empty());
  EXPECT_EQ(*base.get(&Config::command), std::vector<std::string>{"a"});
  EXPECT_FALSE(base.has(&Config::capture)) << "set by neither";
}

TEST(Apply, DefaultsForUnset) {
  Config c = apply(Layer{});
  EXPECT_EQ(c, Config{});
  Layer l;
  l.set(&Config::backend, Backend::Rootful);
  l.set(&Config::mtu, 1280u);
  l.set(&Config::deny_cidrs, std::vector<Cidr>{*Cidr::parse("10.0.0.0/8")});
  c = apply(l);
  EXPECT_EQ(c.backend, Backend::Rootful);
  EXPECT_EQ(c.mtu, 1280u);
  EXPECT_EQ(c.deny_cidrs.size(), 1u);
  EXPECT_EQ(c.capture_point, CapturePoint::Child);
}

// The Rust project's demo profiles load unchanged.
const std::string kFixtures = std::string(CHILDFLOW_SOURCE_DIR) + "/tests/fixtures/profiles";

TEST(RustFixtures, HttpOriginExtendsBase) {
  auto r = load_profile(kFixtures + "/http-origin.toml");
  ASSERT_TRUE(r) << r.error().str();
  const Layer& l = *r;
  EXPECT_EQ(l.get(&Config::proxy)->str(), "http://proxy-http:3128");
  EXPECT_EQ(l.get(&Config::proxy_user), "demo");
  EXPECT_EQ(l.get(&Config::proxy_password), "demo");
  EXPECT_EQ(l.get(&Config::default_policy), DefaultPolicy::Deny);
  ASSERT_EQ(l.get(&Config::allow_cidrs)->size(), 2u);
  EXPECT_EQ(l.get(&Config::allow_cidrs)->at(0).str(), "10.243.0.10/32");
  EXPECT_EQ(l.get(&Config::capture), kFixtures + "/captures/http-origin.pcapng");
  EXPECT_EQ(l.get(&Config::flow_log), kFixtures + "/logs/http-origin.jsonl");
  ASSERT_EQ(l.get(&Config::command)->size(), 7u);
  EXPECT_EQ(l.get(&Config::command)->back(), "http://origin-http.demo:8080/");
}

TEST(RustFixtures, DomainProfiles) {
  struct Case {
    const char* file;
    DefaultPolicy policy;
    std::vector<std::string> Config::*list;
    const char* name;
  };
  const Case cases[] = {
      {"domain-allow-origin.toml", DefaultPolicy::Deny, &Config::allow_domains,
       "demo.invalid"},
      {"domain-allow-origin-exact.toml", DefaultPolicy::Deny,
       &Config::allow_domains_exact, "origin-http.exact.invalid"},
      {"domain-deny-origin.toml", DefaultPolicy::Allow, &Config::deny_domains,
       "demo.invalid"},
      {"domain-deny-origin-exact.toml", DefaultPolicy::Allow, &Config::deny_domains_exact,
       "origin-http.exact.invalid"},
  };
  for (const Case& c : cases) {
    auto r = load_profile(kFixtures + "/" + c.file);
    ASSERT_TRUE(r) << r.error().str();
    const Layer& l = *r;
    EXPECT_EQ(l.get(&Config::backend), Backend::RootlessInternal) << c.file;
    EXPECT_EQ(l.get(&Config::default_policy), c.policy) << c.file;
    EXPECT_EQ(*l.get(c.list), std::vector<std::string>{c.name}) << c.file;
    EXPECT_EQ(l.get(&Config::command)->front(), "curl") << c.file;
    EXPECT_EQ(l.get(&Config::flow_log)->rfind(kFixtures + "/logs/", 0), 0u) << *l.get(&Config::flow_log);
  }
}

TEST(Dump, QuotesEveryString) {
  EXPECT_EQ(toml_quote("plain"), "\"plain\"");
  EXPECT_EQ(toml_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(toml_quote("\n\t\r\b\f"), "\"\\n\\t\\r\\b\\f\"");
  EXPECT_EQ(toml_quote(std::string("\x01\x7f", 2)), "\"\\u0001\\u007F\"");
  EXPECT_EQ(toml_quote("é日本"), "\"é日本\"");
  for (std::string s : {std::string("'''\"\"\"#=[]{}"), std::string("\\u0041"),
                        std::string("x\x1b[31my"), std::string("😀 é \\\" ' ")}) {
    auto t = toml::parse("v = " + toml_quote(s));
    EXPECT_EQ(t["v"].value<std::string>(), s);
  }
}

TEST(Dump, DefaultConfigListsEveryKeyButUnsetOptionals) {
  std::string d = dump_profile(Config{});
  auto t = toml::parse(d);
  for (const auto& key : profile_keys()) {
    bool optional = key == "extends" || key == "capture" || key == "dns" ||
                    key == "hosts_file" || key == "proxy" || key == "proxy_user" ||
                    key == "proxy_password" || key == "proxy_password_file" ||
                    key == "flow_log" || key == "iface" || key == "proxy_ca";
    EXPECT_EQ(t.contains(key), !optional) << key;
  }
  EXPECT_EQ(t["mtu"].value<int64_t>(), 65520);
  EXPECT_EQ(t["backend"].value<std::string>(), "rootless-internal");
  EXPECT_EQ(t["proxy_dns"].value<std::string>(), "local");
}

TEST_F(ProfileTest, DumpLoadsBackAsTheSameLayer) {
  Config c;
  c.capture = dir_ + "/q\"uote\\d é.pcapng";
  c.capture_point = CapturePoint::Egress;
  c.proxy = ProxyUri{ProxyScheme::Socks5, "2001:db8::1", 1080};
  c.proxy_user = "ü";
  c.proxy_password = "p\"w\\";
  c.proxy_dns = ProxyDns::Remote;
  c.command = {"sh", "-c", "printf '%s\\n' \"$x\"\n", "\x1b", ""};
  c.mtu = 1280;
  c.show_secrets = true;  // else the password is redacted (below)
  std::string p = write("dump.toml", dump_profile(c));
  Config back = apply(load_ok(p));
  back.show_secrets = true;  // a command-line switch, not a key
  EXPECT_EQ(back, c);

  // Redacted: the comment line, and the dump loads without a password.
  c.show_secrets = false;
  std::string redacted = dump_profile(c);
  EXPECT_EQ(redacted.find("p\\\"w"), std::string::npos) << redacted;
  EXPECT_NE(redacted.find("\n# proxy_password = (redacted"), std::string::npos) << redacted;
  back = apply(load_ok(write("redacted.toml", redacted)));
  EXPECT_FALSE(back.proxy_password);
  back.proxy_password = c.proxy_password;
  EXPECT_EQ(back, c);
}

// proxy_password and proxy_password_file fill one setting: a child's key
// replaces its parent's other key; both in one file is an error.
TEST_F(ProfileTest, PasswordKeysAreOneSetting) {
  write("pw", "from-file\n");
  write("parent.toml", "proxy_password = \"parent\"\n");
  Config c = apply(load_ok(write("child.toml", "extends = \"parent.toml\"\n"
                                               "proxy_password_file = \"pw\"\n")));
  EXPECT_EQ(c.proxy_password, "from-file");
  EXPECT_EQ(c.proxy_password_file, dir_ + "/pw");
  std::string both = write("both.toml", "proxy_password_file = \"pw\"\nmtu = 1280\n"
                                        "proxy_password = \"x\"\n");
  auto r = load_profile(both);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message,
            "profile " + both + " line 3: keys `proxy_password_file` and `proxy_password` give "
            "the same setting: keep one of them");
}

}  // namespace
}  // namespace cf::config
