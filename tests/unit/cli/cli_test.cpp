// cli::parse: the command passes through untouched, every rejected
// combination of docs/cli.md is one line and exit 2, precedence between
// profiles and flags (docs/profile.md), modes, --help/--version.
#include "cli/cli.hpp"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/profile.hpp"
#include "test_support.hpp"

namespace cf::cli {
namespace {

namespace fs = std::filesystem;
using test::Outcome;
using test::run;

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cf-cli-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    hosts_ = write("hosts", "198.51.100.1 a.example\n");
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path) << text;
    return path;
  }
  // Expects exit 2, exactly one line `childflow: error: ...` containing needle.
  void rejects(const std::vector<std::string>& args, const std::string& needle) {
    Outcome o = run(args);
    std::string shown;
    for (const auto& a : args) shown += a + " ";
    EXPECT_FALSE(o.config) << shown;
    EXPECT_EQ(o.exit_code, 2) << shown;
    EXPECT_EQ(o.err.rfind("childflow: error: ", 0), 0u) << shown << "\n" << o.err;
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << shown << "\n" << o.err;
    EXPECT_HAS(o.err, needle);
    EXPECT_TRUE(o.out.empty()) << o.out;
  }
  Config accepts(const std::vector<std::string>& args) {
    Outcome o = run(args);
    EXPECT_TRUE(o.config) << o.err;
    EXPECT_TRUE(o.err.empty()) << o.err;
    return o.config ? *o.config : Config{};
  }
  std::string dir_, hosts_;
};

TEST_F(CliTest, CommandAfterFirstPositionalIsUntouched) {
  Config c = accepts({"sh", "-c", "echo -p", "--offline", "--"});
  EXPECT_EQ(c.mode, Mode::Run);
  EXPECT_EQ(c.command, (std::vector<std::string>{"sh", "-c", "echo -p", "--offline", "--"}));
  EXPECT_FALSE(c.offline);
  c = accepts({"--offline", "--", "sh", "-c", "echo -p"});
  EXPECT_TRUE(c.offline);
  EXPECT_EQ(c.command, (std::vector<std::string>{"sh", "-c", "echo -p"}));
  c = accepts({"--", "--offline"});
  EXPECT_EQ(c.command, std::vector<std::string>{"--offline"});
  EXPECT_FALSE(c.offline);
  c = accepts({"-p", "http://proxy:3128", "curl", "-p", "x"});
  EXPECT_EQ(c.proxy->str(), "http://proxy:3128");
  EXPECT_EQ(c.command, (std::vector<std::string>{"curl", "-p", "x"}));
  c = accepts({"-", "x"});  // a lone "-" is a word, not an option
  EXPECT_EQ(c.command, (std::vector<std::string>{"-", "x"}));
}

TEST_F(CliTest, OptionValuesMayStartWithDash) {
  Config c = accepts({"-p", "socks5://p:1080", "-U", "-me", "-P", "--", "true"});
  EXPECT_EQ(c.proxy_user, "-me");
  EXPECT_EQ(c.proxy_password, "--");
  EXPECT_EQ(c.command, std::vector<std::string>{"true"});
  c = accepts({"--proxy=http://p:1", "--proxy-user=u", "--proxy-password=-x=y", "true"});
  EXPECT_EQ(c.proxy_password, "-x=y");
}

TEST_F(CliTest, ShortFormsAndBundles) {
  std::string cap = dir_ + "/c.pcapng";
  Config c = accepts({"-c" + cap, "-Cegress", "-d", "198.51.100.53", "-i", "eth0", "--root",
                      "-pHTTP://P:1", "-Uu", "-P=pw", "true"});
  EXPECT_EQ(c.capture, cap);
  EXPECT_EQ(c.capture_point, CapturePoint::Egress);
  EXPECT_EQ(c.dns->str(), "198.51.100.53");
  EXPECT_EQ(c.iface, "eth0");
  EXPECT_EQ(c.backend, Backend::Rootful);
  EXPECT_EQ(c.proxy->str(), "http://p:1");
  EXPECT_EQ(c.proxy_password, "pw");
}

TEST_F(CliTest, Defaults) {
  Config c = accepts({"true"});
  Config d;
  d.command = {"true"};
  EXPECT_EQ(c, d);
  EXPECT_EQ(c.backend, Backend::RootlessInternal);
  EXPECT_EQ(c.capture_point, CapturePoint::Child);
  EXPECT_EQ(c.default_policy, DefaultPolicy::Allow);
  EXPECT_EQ(c.mtu, 65520u);
}

TEST_F(CliTest, EveryFlagSetsItsField) {
  std::string cap = dir_ + "/c.pcapng", log = dir_ + "/f.jsonl";
  Config c = accepts({"--capture", cap, "--capture-point", "both", "--dns", "2001:db8::53",
                      "--hosts-file", hosts_, "--proxy", "https://[2001:db8::2]:443",
                      "--proxy-user", "u", "--proxy-password", "p", "--proxy-insecure",
                      "--summary", "--summary-format", "json", "--flow-log", log, "--offline",
                      "--block-private", "--block-metadata", "--default-policy", "deny",
                      "--allow-cidr", "198.51.100.0/24", "--allow-cidr", "2001:db8::/32",
                      "--deny-cidr", "203.0.113.0/24", "--allow-domain", "A.example.",
                      "--allow-domain-exact", "b.example", "--deny-domain", "c.example",
                      "--deny-domain-exact", "d.example", "--proxy-only", "--fail-on-leak",
                      "--root", "--iface", "eth0", "--allow-host-loopback", "--mtu", "9000",
                      "cmd"});
  EXPECT_EQ(c.capture, cap);
  EXPECT_EQ(c.capture_point, CapturePoint::Both);
  EXPECT_EQ(c.dns->str(), "2001:db8::53");
  EXPECT_EQ(c.hosts_file, hosts_);
  EXPECT_EQ(c.proxy->str(), "https://[2001:db8::2]:443");
  EXPECT_EQ(c.proxy_user, "u");
  EXPECT_EQ(c.proxy_password, "p");
  EXPECT_TRUE(c.proxy_insecure);
  EXPECT_TRUE(c.summary);
  EXPECT_EQ(c.summary_format, TextOrJson::Json);
  EXPECT_EQ(c.flow_log, log);
  EXPECT_TRUE(c.offline && c.block_private && c.block_metadata && c.proxy_only &&
              c.fail_on_leak && c.allow_host_loopback);
  EXPECT_EQ(c.default_policy, DefaultPolicy::Deny);
  ASSERT_EQ(c.allow_cidrs.size(), 2u);
  EXPECT_EQ(c.allow_cidrs[0].str(), "198.51.100.0/24");
  EXPECT_EQ(c.allow_cidrs[1].str(), "2001:db8::/32");
  EXPECT_EQ(c.deny_cidrs.size(), 1u);
  EXPECT_EQ(c.allow_domains, std::vector<std::string>{"a.example"});
  EXPECT_EQ(c.allow_domains_exact, std::vector<std::string>{"b.example"});
  EXPECT_EQ(c.deny_domains, std::vector<std::string>{"c.example"});
  EXPECT_EQ(c.deny_domains_exact, std::vector<std::string>{"d.example"});
  EXPECT_EQ(c.backend, Backend::Rootful);
  EXPECT_EQ(c.iface, "eth0");
  EXPECT_EQ(c.mtu, 9000u);
}

TEST_F(CliTest, RelativeFlagPathsUseCwd) {
  std::string old = fs::current_path().string();
  ASSERT_EQ(chdir(dir_.c_str()), 0);
  Outcome o = run({"-c", "sub/../x.pcapng", "--flow-log", "f.jsonl", "--hosts-file", "hosts",
                   "true"});
  ASSERT_EQ(chdir(old.c_str()), 0);
  ASSERT_TRUE(o.config) << o.err;
  EXPECT_EQ(o.config->capture, dir_ + "/x.pcapng");
  EXPECT_EQ(o.config->flow_log, dir_ + "/f.jsonl");
  EXPECT_EQ(o.config->hosts_file, dir_ + "/hosts");
}

TEST_F(CliTest, HelpAndVersion) {
  Outcome o = run({"--help"});
  EXPECT_FALSE(o.config);
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_TRUE(o.err.empty());
  for (const char* flag :
       {"--profile", "--dump-profile", "-c,--capture", "-C,--capture-point", "--root",
        "--doctor", "--doctor-format", "--report", "--report-format", "-d,--dns",
        "--hosts-file", "-p,--proxy", "-U,--proxy-user", "-P,--proxy-password",
        "--proxy-insecure", "--proxy-ca", "--proxy-dns", "--summary", "--summary-format",
        "--flow-log", "--offline", "--block-private", "--block-metadata", "--default-policy",
        "--allow-cidr", "--deny-cidr", "--allow-domain", "--deny-domain",
        "--allow-domain-exact", "--deny-domain-exact", "--proxy-only", "--fail-on-leak",
        "-i,--iface", "-h,--help", "-V,--version", "--allow-host-loopback", "--mtu", "--cleanup", "COMMAND"})
    EXPECT_HAS(o.out, flag);
  EXPECT_EQ(run({"-h"}).out, o.out);
  std::istringstream lines(o.out);
  for (std::string line; std::getline(lines, line);)
    EXPECT_LE(line.size(), 80u) << "--help fits 80 columns: " << line;
  EXPECT_EQ(run({"--offline", "-h", "--bogus"}).exit_code, 0);
  o = run({"-V"});
  EXPECT_EQ(o.exit_code, 0);
  EXPECT_EQ(o.out.rfind(std::string("childflow ") + CHILDFLOW_VERSION, 0), 0u) << o.out;
  EXPECT_HAS(o.out, "\nbuild: ");
  EXPECT_HAS(o.out, "\nfeatures: ");
  EXPECT_EQ(run({"--version"}).out, o.out);
  // After the command, -h belongs to the command.
  EXPECT_EQ(accepts({"ls", "-h"}).command, (std::vector<std::string>{"ls", "-h"}));
}

TEST_F(CliTest, VerbosityCountsAndQuietExcludesIt) {
  EXPECT_EQ(accepts({"true"}).verbosity, 0);
  EXPECT_EQ(accepts({"-v", "true"}).verbosity, 1);
  EXPECT_EQ(accepts({"-vv", "true"}).verbosity, 2);
  EXPECT_EQ(accepts({"--verbose", "-v", "true"}).verbosity, 2);
  EXPECT_EQ(accepts({"-q", "true"}).verbosity, -1);
  rejects({"-q", "-v", "true"}, "contradict");
  setenv("CHILDFLOW_DEBUG", "1", 1);
  EXPECT_EQ(accepts({"true"}).verbosity, 3);
  setenv("CHILDFLOW_DEBUG", "0", 1);
  EXPECT_EQ(accepts({"true"}).verbosity, 0);
  unsetenv("CHILDFLOW_DEBUG");
}

TEST_F(CliTest, Modes) {
  Config c = accepts({"--doctor"});
  EXPECT_EQ(c.mode, Mode::Doctor);
  c = accepts({"--doctor", "--root", "--doctor-format", "json"});
  EXPECT_EQ(c.backend, Backend::Rootful);
  EXPECT_EQ(c.doctor_format, TextOrJson::Json);
  std::string log = write("flows.jsonl", "{}\n");
  c = accepts({"--report", log, "--report-format", "markdown"});
  EXPECT_EQ(c.mode, Mode::Report);
  EXPECT_EQ(c.report, log);
  EXPECT_EQ(c.report_format, ReportFormat::Markdown);
  c = accepts({"--report", log, "--report-format", "html"});
  EXPECT_EQ(c.report_format, ReportFormat::Html);
  c = accepts({"--dump-profile"});
  EXPECT_EQ(c.mode, Mode::DumpProfile);
  EXPECT_TRUE(c.command.empty());
  c = accepts({"--dump-profile", "--", "a", "b"});
  EXPECT_EQ(c.command, (std::vector<std::string>{"a", "b"}));
  c = accepts({"--cleanup"});
  EXPECT_EQ(c.mode, Mode::Cleanup);
  EXPECT_EQ(c.backend, Backend::Rootful);
}

TEST_F(CliTest, RejectedCombinationsOfSpecSection1) {
  std::string cap = dir_ + "/c.pcapng";
  rejects({}, "no command to run");
  rejects({"--offline"}, "no command to run");
  std::string log = write("flows.jsonl", "{}\n");
  rejects({"--report", log, "--", "true"}, "--report reads a flow log and runs nothing");
  rejects({"--report", log, "ls"}, "drop the command or drop --report");
  rejects({"--iface", "eth0", "true"}, "--iface eth0 needs the rootful backend");
  rejects({"--hosts-file", dir_ + "/missing", "true"}, "--hosts-file: cannot read " + dir_ +
                                                           "/missing: No such file");
  rejects({"--hosts-file", dir_, "true"}, "is a directory");
  rejects({"--capture-point", "egress", "true"}, "--capture-point egress needs --capture");
  rejects({"-C", "both", "true"}, "--capture-point both needs --capture");
  rejects({"-p", "http://p:1", "-U", "u", "true"}, "--proxy-user is given without --proxy-password");
  rejects({"-p", "http://p:1", "-P", "pw", "true"}, "--proxy-password is given without --proxy-user");
  rejects({"-U", "u", "-P", "pw", "true"}, "--proxy-user needs a proxy");
  rejects({"--proxy-insecure", "true"}, "--proxy-insecure needs a proxy");
  rejects({"--proxy-only", "true"}, "--proxy-only needs a proxy");
  rejects({"--proxy-dns", "remote", "true"}, "--proxy-dns remote needs a proxy");
  rejects({"--proxy-dns", "both", "true"}, "local or remote");
  rejects({"-p", "socks5h://p:1080", "true"}, "use socks5://p:1080 with --proxy-dns remote");
  EXPECT_EQ(accepts({"--proxy-dns", "local", "true"}).proxy_dns, ProxyDns::Local);
  EXPECT_EQ(accepts({"-p", "socks5://p:1080", "--proxy-dns", "remote", "true"}).proxy_dns,
            ProxyDns::Remote);
  rejects({"-p", "http://p:1", "--proxy-insecure", "true"},
          "--proxy-insecure only applies to https:// proxies");
  rejects({"-p", "socks5://p:1", "--proxy-insecure", "true"}, "only applies to https://");
  rejects({"--proxy-ca", hosts_, "true"}, "--proxy-ca needs a proxy");
  rejects({"-p", "http://p:1", "--proxy-ca", hosts_, "true"},
          "--proxy-ca only applies to https:// proxies");
  rejects({"-p", "https://p:1", "--proxy-ca", dir_ + "/none.pem", "true"},
          "--proxy-ca: cannot read " + dir_ + "/none.pem");
  EXPECT_EQ(accepts({"-p", "https://p:1", "--proxy-ca", hosts_, "true"}).proxy_ca, hosts_);
  rejects({"-p", "http://p:1/x", "true"}, "--proxy: `http://p:1/x` has a path");
  rejects({"-p", "http://p:1?q", "true"}, "has a query");
  rejects({"-p", "http://p:1#f", "true"}, "has a fragment");
  rejects({"-p", "http://p", "true"}, "has no port");
  rejects({"-p", "http://p:70000", "true"}, "bad port");
  rejects({"-p", "gopher://p:70", "true"}, "unknown scheme");
  rejects({"-p", "http://2001:db8::1:3128", "true"}, "IPv6 host without brackets");
  rejects({"--allow-cidr", "10.0.0.0/8", "--allow-cidr", "10.1.0.0/8", "true"},
          "--allow-cidr: `10.1.0.0/8` has host bits set: did you mean 10.0.0.0/8?");
  rejects({"--deny-cidr", "nonsense", "true"}, "--deny-cidr: `nonsense` is not a CIDR prefix");
  rejects({"--deny-cidr", "2001:db8::1/32", "true"}, "did you mean 2001:db8::/32?");
  rejects({"--allow-domain", "bad..example", "true"}, "--allow-domain: `bad..example` is not a DNS name");
  rejects({"--deny-domain", "-x.example", "true"}, "--deny-domain:");
  rejects({"--allow-domain-exact", std::string(64, 'a') + ".example", "true"}, "at most 63");
  rejects({"--deny-domain-exact", "a_b.example", "true"}, "--deny-domain-exact:");
}

TEST_F(CliTest, OfflineWithProxyIsAllowed) {
  Config c = accepts({"--offline", "-p", "http://p:3128", "true"});
  EXPECT_TRUE(c.offline);
  EXPECT_TRUE(c.proxy);
}

TEST_F(CliTest, BadValuesAndUsage) {
  rejects({"--capture-point", "wire", "-c", dir_ + "/x", "true"}, "--capture-point: `wire` is not a capture point");
  rejects({"--summary-format", "xml", "true"}, "--summary-format: `xml` is not a format");
  rejects({"--default-policy", "block", "true"}, "--default-policy: `block` is not a policy");
  rejects({"--doctor", "--doctor-format", "yaml"}, "--doctor-format: `yaml`");
  std::string log = write("flows.jsonl", "{}\n");
  rejects({"--report", log, "--report-format", "pdf"},
          "--report-format: `pdf` is not a report format: use text, markdown, json or html");
  rejects({"-d", "resolver.example", "true"}, "--dns: `resolver.example` is not an IP address");
  rejects({"--mtu", "100", "true"}, "--mtu: MTU 100 is out of range");
  rejects({"--mtu", "70000", "true"}, "out of range");
  rejects({"--mtu", "15OO", "true"}, "--mtu: `15OO` is not a number");
  rejects({"-i", "a/b", "--root", "true"}, "--iface:");
  rejects({"-U", "", "-P", "x", "-p", "http://p:1", "true"}, "--proxy-user: the proxy user is empty");
  rejects({"-c", "", "true"}, "--capture: the path is empty");
  rejects({"--bogus", "true"}, "unknown option `--bogus`: run `childflow --help`");
  rejects({"--prxy", "http://p:1", "true"},
          "unknown option `--prxy` (did you mean `--proxy`?): run `childflow --help`");
  rejects({"--allow-domian=a.example", "true"}, "(did you mean `--allow-domain`?)");
  rejects({"-x", "true"}, "unknown option `-x`");
  rejects({"--capture"}, "--capture needs a value");
  rejects({"-c"}, "-c (--capture) needs a value");
  rejects({"--offline=yes", "true"}, "--offline takes no value");
  rejects({"-c", dir_ + "/a", "-c", dir_ + "/b", "true"}, "--capture is given 2 times");
  rejects({"--doctor", "--report", log}, "separate modes");
  rejects({"--doctor", "--dump-profile"}, "separate modes");
  rejects({"--doctor", "true"}, "--doctor runs no command");
  rejects({"--cleanup", "true"}, "--cleanup runs no command");
  rejects({"--doctor-format", "json", "true"}, "--doctor-format is only used with --doctor");
  rejects({"--report-format", "json", "true"}, "--report-format is only used with --report");
  rejects({"--report", dir_ + "/missing.jsonl"}, "--report: cannot read " + dir_ + "/missing.jsonl");
  rejects({"--profile", dir_ + "/missing.toml", "true"}, "cannot read profile " + dir_ + "/missing.toml");
  rejects({"-p", "http://u:pw@p:1", "true"}, "-U/--proxy-user");
  rejects({"-p", "socks5://p:1", "-U", std::string(256, 'u'), "-P", "x", "true"}, "255");
  rejects({"-p", "http://p:1", "-U", "a:b", "-P", "x", "true"}, "contains `:`");
  rejects({"-c", dir_ + "/x", "--flow-log", dir_ + "/x", "true"}, "give them different files");
}

TEST_F(CliTest, OutputDirectoriesMustExistForARunOnly) {
  std::string cap = dir_ + "/nodir/c.pcapng";
  rejects({"-c", cap, "true"}, "the directory " + dir_ + "/nodir does not exist");
  rejects({"--flow-log", dir_ + "/nodir/f.jsonl", "true"}, "--flow-log");
  rejects({"--flow-log", dir_, "true"}, "that is a directory");
  Config c = accepts({"-c", cap, "--dump-profile"});
  EXPECT_EQ(c.capture, cap);
  EXPECT_FALSE(fs::exists(dir_ + "/nodir"));
}

TEST_F(CliTest, LearnNeedsARunAndAFileItCanMergeInto) {
  std::string p = dir_ + "/learnt.toml";
  Config c = accepts({"--learn", p, "true"});
  EXPECT_EQ(c.learn, p);
  EXPECT_FALSE(fs::exists(p));  // written after the run, never by parsing
  rejects({"--learn", p, "--doctor"}, "--learn writes a profile after a command runs, and --doctor "
                                      "runs none: drop --learn or --doctor");
  rejects({"--learn", p, "--dump-profile"}, "drop --learn or --dump-profile");
  rejects({"--learn", dir_ + "/nodir/p.toml", "true"}, "the directory " + dir_ + "/nodir does not exist");
  rejects({"--learn", dir_, "true"}, "that is a directory");
  rejects({"--learn", p, "--flow-log", p, "true"}, "--learn and --flow-log both name");
  rejects({"--learn", p, "-c", p, "true"}, "--learn and --capture both name");
  {
    std::ofstream(p) << "mtu = \"big\"\n";
  }
  rejects({"--learn", p, "true"}, "--learn " + p + ": exists but is not a profile to merge into");
  {
    std::ofstream(p) << "mtu = 1500\n";
  }
  accepts({"--learn", p, "true"});
  // Never a profile key: --dump-profile does not write it.
  Config d = accepts({"--dump-profile", "--offline"});
  EXPECT_EQ(config::dump_profile(d).find("learn"), std::string::npos);
}

TEST_F(CliTest, ParseCreatesNothing) {
  std::string cap = dir_ + "/c.pcapng", log = dir_ + "/f.jsonl";
  accepts({"-c", cap, "--flow-log", log, "true"});
  rejects({"-c", cap, "--flow-log", log, "--iface", "eth0", "true"}, "rootful");
  EXPECT_FALSE(fs::exists(cap));
  EXPECT_FALSE(fs::exists(log));
}

TEST_F(CliTest, ProfilePrecedence) {
  write("parent.toml", "mtu = 1400\ndefault_policy = \"deny\"\nallow_domains = [\"p.example\"]\n"
                       "command = [\"from\", \"parent\"]\nsummary = true\n");
  std::string child = write("child.toml", "extends = \"parent.toml\"\nmtu = 1300\n"
                                          "allow_cidrs = [\"198.51.100.0/24\"]\n");
  Config c = accepts({"--profile", child});
  EXPECT_EQ(c.mode, Mode::Run);  // the profile's command counts
  EXPECT_EQ(c.command, (std::vector<std::string>{"from", "parent"}));
  EXPECT_EQ(c.mtu, 1300u);
  EXPECT_EQ(c.default_policy, DefaultPolicy::Deny);
  EXPECT_TRUE(c.summary);
  c = accepts({"--profile", child, "--mtu", "1280", "--allow-domain", "f.example",
               "--default-policy", "allow", "--", "cli", "cmd"});
  EXPECT_EQ(c.mtu, 1280u);                                             // flag over profile
  EXPECT_EQ(c.allow_domains, std::vector<std::string>{"f.example"});   // replaced, not appended
  EXPECT_EQ(c.allow_cidrs.size(), 1u);                                 // untouched
  EXPECT_EQ(c.default_policy, DefaultPolicy::Allow);
  EXPECT_EQ(c.command, (std::vector<std::string>{"cli", "cmd"}));      // replaced
  // Flag order does not matter: --profile after the flags still loses to them.
  c = accepts({"--mtu", "1280", "--profile", child});
  EXPECT_EQ(c.mtu, 1280u);
}

TEST_F(CliTest, ProfileErrorsAreOneLine) {
  std::string bad = write("bad.toml", "offline = true\nmtu = \"big\"\n");
  rejects({"--profile", bad, "true"}, "profile " + bad + " line 2: key `mtu`: expected an integer");
  std::string a = write("a.toml", "extends = \"b.toml\"\n");
  std::string b = write("b.toml", "extends = \"a.toml\"\n");
  rejects({"--profile", a, "true"}, "profile inheritance cycle: " + a + " -> " + b + " -> " + a);
  std::string multi = write("multi.toml", "command = [\"x\"\nmtu = 5\n");
  rejects({"--profile", multi}, "profile " + multi + " line ");
  // Cross-field checks apply to profile values too.
  std::string iface = write("iface.toml", "iface = \"eth0\"\ncommand = [\"true\"]\n");
  rejects({"--profile", iface}, "needs the rootful backend");
  Config c = accepts({"--profile", iface, "--root"});
  EXPECT_EQ(c.iface, "eth0");
  std::string rootful = write("rootful.toml", "backend = \"rootful\"\niface = \"eth0\"\n");
  EXPECT_EQ(accepts({"--profile", rootful, "true"}).backend, Backend::Rootful);
  std::string onlyuser = write("u.toml", "proxy = \"http://p:1\"\nproxy_user = \"u\"\n");
  rejects({"--profile", onlyuser, "true"}, "--proxy-user is given without --proxy-password");
  EXPECT_TRUE(accepts({"--profile", onlyuser, "-P", "pw", "true"}).proxy_password);
}

// CHILDFLOW_PROXY_PASSWORD for the length of a test.
class EnvPassword {
 public:
  explicit EnvPassword(const char* value) { setenv(kName, value, 1); }
  ~EnvPassword() { unsetenv(kName); }
  static constexpr const char* kName = "CHILDFLOW_PROXY_PASSWORD";
};

// docs/proxy.md, "Credentials": -P > --proxy-password-file >
// CHILDFLOW_PROXY_PASSWORD > profiles (a child profile over its parent), and
// -P with --proxy-password-file is an error.
TEST_F(CliTest, PasswordSourcesAndTheirPrecedence) {
  const std::vector<std::string> proxy{"-p", "http://p:3128", "-U", "u"};
  auto with = [&](std::vector<std::string> args) {
    args.insert(args.begin(), proxy.begin(), proxy.end());
    args.push_back("true");
    return args;
  };
  std::string file = write("pw", "from-file\n");
  Config c = accepts(with({"--proxy-password-file", file}));
  EXPECT_EQ(c.proxy_password, "from-file");
  EXPECT_EQ(c.proxy_password_file, file);
  std::string old = fs::current_path().string();
  ASSERT_EQ(chdir(dir_.c_str()), 0);
  Outcome o = run(with({"--proxy-password-file=sub/../pw"}));  // relative: the current directory
  ASSERT_EQ(chdir(old.c_str()), 0);
  ASSERT_TRUE(o.config) << o.err;
  EXPECT_EQ(o.config->proxy_password_file, file);
  rejects(with({"-P", "x", "--proxy-password-file", file}),
          "-P/--proxy-password and --proxy-password-file both give the proxy password: give "
          "only one of them");
  rejects(with({"--proxy-password-file", file, "--proxy-password=x"}),
          "--proxy-password-file and -P/--proxy-password both give the proxy password");

  std::string parent = write("parent.toml", "proxy_password_file = \"pw\"\n");
  std::string child = write("child.toml", "extends = \"parent.toml\"\nproxy_password = \"child\"\n");
  std::string plain = write("plain.toml", "proxy_password = \"profile\"\n");
  EXPECT_EQ(accepts(with({"--profile", parent})).proxy_password, "from-file")
      << "a profile's file is relative to the profile";
  c = accepts(with({"--profile", child}));
  EXPECT_EQ(c.proxy_password, "child") << "the child's proxy_password replaces the parent's file";
  EXPECT_FALSE(c.proxy_password_file);
  c = accepts(with({"--profile", parent, "-P", "flag"}));
  EXPECT_EQ(c.proxy_password, "flag");
  EXPECT_FALSE(c.proxy_password_file) << "-P replaces the profile's file";
  std::string other = write("other-pw", "other\n");
  c = accepts(with({"--profile", plain, "--proxy-password-file", other}));
  EXPECT_EQ(c.proxy_password, "other");
  EXPECT_EQ(c.proxy_password_file, other);

  {
    EnvPassword env("from-env");
    EXPECT_EQ(accepts(with({})).proxy_password, "from-env");
    EXPECT_EQ(accepts(with({"-P", "flag"})).proxy_password, "flag") << "-P > environment";
    EXPECT_EQ(accepts(with({"--proxy-password-file", file})).proxy_password, "from-file")
        << "--proxy-password-file > environment";
    c = accepts(with({"--profile", parent}));
    EXPECT_EQ(c.proxy_password, "from-env") << "environment > profile";
    EXPECT_FALSE(c.proxy_password_file);
    EXPECT_EQ(accepts(with({"--profile", plain})).proxy_password, "from-env");
    // Without a proxy user the variable changes nothing: an exported password
    // must not break runs that use no proxy, or one without authentication.
    c = accepts({"true"});
    EXPECT_FALSE(c.proxy_password);
    c = accepts({"-p", "http://p:3128", "true"});
    EXPECT_FALSE(c.proxy_password);
    std::string user = write("user.toml", "proxy = \"http://p:1\"\nproxy_user = \"u\"\n");
    EXPECT_EQ(accepts({"--profile", user, "true"}).proxy_password, "from-env")
        << "a profile's proxy_user counts";
  }
  {
    EnvPassword empty("");
    rejects(with({}), "--proxy-user is given without --proxy-password: give the password too "
                      "(--proxy-password-file FILE, CHILDFLOW_PROXY_PASSWORD or -P PASSWORD)");
  }
  {
    EnvPassword bad("a\nb");
    rejects(with({}), "CHILDFLOW_PROXY_PASSWORD: the proxy password contains control characters");
    EXPECT_EQ(accepts(with({"-P", "flag"})).proxy_password, "flag")
        << "a variable the flags override is not even parsed";
  }
}

TEST_F(CliTest, PasswordFileErrors) {
  const std::vector<std::string> proxy{"-p", "http://p:3128", "-U", "u"};
  auto with = [&](const std::string& file) {
    std::vector<std::string> args = proxy;
    args.insert(args.end(), {"--proxy-password-file", file, "true"});
    return args;
  };
  rejects(with(dir_ + "/missing"),
          "--proxy-password-file: cannot read " + dir_ + "/missing: No such file or directory");
  rejects(with(dir_), "--proxy-password-file: " + dir_ + " is a directory");
  rejects(with(write("empty", "")), "--proxy-password-file: " + dir_ + "/empty is empty");
  rejects(with(write("nl", "\n")), "is empty");
  rejects(with(write("big", std::string(5000, 'x'))), "is larger than 4 KiB");
  rejects(with(write("two", "a\nb\n")), "contains control characters");
  rejects(with("/dev/null"), "/dev/null is not a regular file");
  rejects({"--proxy-password-file", write("ok", "pw"), "true"},
          "--proxy-password-file is given without --proxy-user");
  rejects({"-U", "u", "--proxy-password-file", dir_ + "/ok", "true"}, "--proxy-user needs a proxy");
  rejects({"-p", "socks5://p:1080", "-U", "u", "--proxy-password-file",
           write("long", std::string(256, 'x')), "true"},
          "--proxy-password-file: the password must be 1 to 255 bytes for a SOCKS5 proxy");
  std::string missing = write("missing.toml", "proxy_password_file = \"nope\"\n");
  rejects({"--profile", missing, "true"}, "profile " + missing +
                                              " line 1: key `proxy_password_file`: cannot read " +
                                              dir_ + "/nope: No such file");
  std::string both = write("both.toml", "proxy_password = \"a\"\nproxy_password_file = \"ok\"\n");
  rejects({"--profile", both, "true"},
          "profile " + both + " line 2: keys `proxy_password` and `proxy_password_file` give the "
          "same setting: keep one of them");
}

// --dump-profile writes no password unless --show-secrets; a password read
// from a file is written as the file.
TEST_F(CliTest, DumpProfileRedactsPasswords) {
  rejects({"--show-secrets", "true"}, "--show-secrets is only used with --dump-profile");
  Outcome o = run({"--dump-profile", "-p", "http://p:1", "-U", "u", "-P", "hunter2"});
  ASSERT_TRUE(o.config) << o.err;
  std::string dump = config::dump_profile(*o.config);
  EXPECT_EQ(dump.find("hunter2"), std::string::npos) << dump;
  EXPECT_HAS(dump, "\n# proxy_password = (redacted: --dump-profile --show-secrets prints it)\n");
  EXPECT_HAS(dump, "proxy_user = \"u\"\n");
  Config shown = accepts({"--dump-profile", "--show-secrets", "-p", "http://p:1", "-U", "u",
                          "-P", "hunter2"});
  EXPECT_TRUE(shown.show_secrets);
  EXPECT_HAS(config::dump_profile(shown), "\nproxy_password = \"hunter2\"\n");
  {
    EnvPassword env("from-env");
    Config c = accepts({"--dump-profile", "-p", "http://p:1", "-U", "u"});
    EXPECT_EQ(config::dump_profile(c).find("from-env"), std::string::npos);
  }
  std::string file = write("pw", "in-a-file\n");
  for (bool show : {false, true}) {
    std::vector<std::string> args{"--dump-profile", "-p", "http://p:1", "-U", "u",
                                  "--proxy-password-file", file};
    if (show) args.push_back("--show-secrets");
    dump = config::dump_profile(accepts(args));
    EXPECT_HAS(dump, "\nproxy_password_file = \"" + file + "\"\n");
    EXPECT_EQ(dump.find("proxy_password ="), std::string::npos) << dump;
    EXPECT_EQ(dump.find("in-a-file"), std::string::npos) << dump;
  }
  // The redacted dump loads back once the password is given another way.
  std::string saved = write("dumped.toml", config::dump_profile(*o.config));
  rejects({"--profile", saved, "--dump-profile"}, "--proxy-user is given without --proxy-password");
  EnvPassword env("hunter2");
  EXPECT_EQ(accepts({"--profile", saved, "--dump-profile"}), *o.config);
}

// cli::hide_secrets on an argv of its own: every spelling of -P, and nothing
// else, turns into x's of the same length.
TEST_F(CliTest, HideSecretsScrubsArgvInPlace) {
  std::vector<std::string> words{"childflow", "-P",           "one",
                                 "-Ptwo",     "-P=three",     "--proxy-password",
                                 "four",      "--proxy-password=five", "-vPsix",
                                 "-U",        "user",         "-p",
                                 "http://p:1", "--proxy-password-file", "/some/file",
                                 "--",        "echo",         "-P",
                                 "keep",      "--proxy-password=keep"};
  std::vector<std::vector<char>> storage;
  for (const auto& w : words) storage.emplace_back(w.c_str(), w.c_str() + w.size() + 1);
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  EnvPassword env("env-secret");
  char* env_bytes = getenv(EnvPassword::kName);
  ASSERT_NE(env_bytes, nullptr);
  std::string env_before = env_bytes;

  hide_secrets(int(argv.size() - 1), argv.data());
  std::vector<std::string> after;
  for (size_t i = 0; i + 1 < argv.size(); ++i) after.emplace_back(argv[i]);
  EXPECT_EQ(after, (std::vector<std::string>{
                       "childflow", "-P", "xxx", "-Pxxx", "-P=xxxxx", "--proxy-password", "xxxx",
                       "--proxy-password=xxxx", "-vPxxx", "-U", "user", "-p", "http://p:1",
                       "--proxy-password-file", "/some/file", "--", "echo", "-P", "keep",
                       "--proxy-password=keep"}));
  for (size_t i = 0; i < words.size(); ++i)
    EXPECT_EQ(storage[i].size(), words[i].size() + 1) << "lengths and NULs stay where they were";
  EXPECT_EQ(getenv(EnvPassword::kName), nullptr) << "removed: the tree must not inherit it";
  EXPECT_EQ(std::string(env_bytes, env_before.size()), std::string(env_before.size(), 'x'))
      << "and its bytes overwritten";
}

TEST_F(CliTest, RustFixturesThroughTheCommandLine) {
  std::string fix = std::string(CHILDFLOW_SOURCE_DIR) + "/tests/fixtures/profiles";
  for (const char* f : {"http-origin.toml", "domain-allow-origin.toml",
                        "domain-allow-origin-exact.toml", "domain-deny-origin.toml",
                        "domain-deny-origin-exact.toml", "base.toml"}) {
    Outcome o = run({"--profile", fix + "/" + f, "--dump-profile"});
    EXPECT_TRUE(o.config) << f << ": " << o.err;
  }
  Config c = accepts({"--profile", fix + "/http-origin.toml", "--dump-profile"});
  EXPECT_EQ(c.proxy->str(), "http://proxy-http:3128");
  EXPECT_EQ(c.capture, fix + "/captures/http-origin.pcapng");
  EXPECT_EQ(c.command.size(), 7u);
}

}  // namespace
}  // namespace cf::cli
