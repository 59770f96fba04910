// Single-value parsers shared by flags and profile keys: proxy URIs, domain
// rule normalisation, MTU, interface names, enums, DNS, paths, password files.
#include "config/values.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace cf::config {
namespace {

template <class T>
T must(const Result<T>& p) {
  EXPECT_TRUE(p) << (p ? "" : p.error().message);
  return p ? *p : T{};
}

template <class T>
std::string must_fail(const Result<T>& p) {
  EXPECT_FALSE(p);
  return p ? "" : p.error().message;
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

TEST(ProxyUri, AcceptsTheThreeSchemes) {
  auto p = must(parse_proxy_uri("http://proxy.example:3128"));
  EXPECT_EQ(p.scheme, ProxyScheme::Http);
  EXPECT_EQ(p.host, "proxy.example");
  EXPECT_EQ(p.port, 3128);
  EXPECT_EQ(must(parse_proxy_uri("https://p.example:443")).scheme, ProxyScheme::Https);
  EXPECT_EQ(must(parse_proxy_uri("socks5://198.51.100.1:1080")).scheme, ProxyScheme::Socks5);
  EXPECT_EQ(must(parse_proxy_uri("HTTP://Proxy.Example:8080")).str(),
            "http://proxy.example:8080");
  EXPECT_EQ(must(parse_proxy_uri("http://proxy-http:3128")).host, "proxy-http");
}

TEST(ProxyUri, Ipv6InBrackets) {
  auto p = must(parse_proxy_uri("socks5://[2001:DB8::1]:1080"));
  EXPECT_EQ(p.host, "2001:db8::1");
  EXPECT_EQ(p.str(), "socks5://[2001:db8::1]:1080");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://2001:db8::1:3128")), "without brackets");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://[2001:db8::1]")), "no port");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://[198.51.100.1]:80")), "not an IPv6");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://[2001:db8::1:80")), "unclosed");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://[2001:db8::1]80")), "expected `:PORT`");
}

TEST(ProxyUri, OneTrailingSlashIsAccepted) {
  EXPECT_EQ(must(parse_proxy_uri("http://proxy:3128/")).str(), "http://proxy:3128");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy:3128//")), "path");
}

TEST(ProxyUri, RejectsPathQueryFragment) {
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy:3128/x")), "has a path `/x`");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy:3128?a=b")), "has a query");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy:3128/?a=b")), "path");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy:3128#frag")), "has a fragment");
}

TEST(ProxyUri, RejectsBadPorts) {
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy")), "no port");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://proxy:")), "no port");
  EXPECT_HAS(must_fail(parse_proxy_uri("socks5://proxy")), ":1080");
  for (const char* bad : {"http://proxy:0", "http://proxy:65536", "http://proxy:99999999999",
                          "http://proxy:-1", "http://proxy:80a", "http://proxy:+80"})
    EXPECT_HAS(must_fail(parse_proxy_uri(bad)), "bad port");
  EXPECT_EQ(must(parse_proxy_uri("http://proxy:65535")).port, 65535);
  EXPECT_EQ(must(parse_proxy_uri("http://proxy:1")).port, 1);
}

TEST(ProxyUri, RejectsSchemesHostsAndUserinfo) {
  EXPECT_HAS(must_fail(parse_proxy_uri("ftp://proxy:21")), "unknown scheme `ftp`");
  EXPECT_HAS(must_fail(parse_proxy_uri("socks4://proxy:1080")), "unknown scheme");
  // socks5h: a hint to the mode that does what it means.
  EXPECT_HAS(must_fail(parse_proxy_uri("socks5h://proxy:1080")),
             "use socks5://proxy:1080 with --proxy-dns remote");
  EXPECT_HAS(must_fail(parse_proxy_uri("SOCKS5H://proxy:1080")), "--proxy-dns remote");
  std::string hint = must_fail(parse_proxy_uri("socks5h://u:secret@proxy:1080"));
  EXPECT_HAS(hint, "socks5://HOST:PORT with --proxy-dns remote");
  EXPECT_EQ(hint.find("secret"), std::string::npos) << "credentials are never echoed";
  EXPECT_HAS(must_fail(parse_proxy_uri("proxy:3128")), "no scheme");
  EXPECT_HAS(must_fail(parse_proxy_uri("")), "empty");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://:3128")), "no host");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://bad_host:3128")), "not a DNS name");
  EXPECT_HAS(must_fail(parse_proxy_uri("http://pro xy:3128")), "white space");
  std::string e = must_fail(parse_proxy_uri("http://user:secret@proxy:3128"));
  EXPECT_HAS(e, "-U/--proxy-user");
  EXPECT_EQ(e.find("secret"), std::string::npos) << "the password must not be echoed: " << e;
}

TEST(Domain, Normalises) {
  EXPECT_EQ(must(normalise_domain("Example.COM")), "example.com");
  EXPECT_EQ(must(normalise_domain("  example.com.\t")), "example.com");
  EXPECT_EQ(must(normalise_domain("localhost")), "localhost");
  EXPECT_EQ(must(normalise_domain("a-b.c0.example")), "a-b.c0.example");
  EXPECT_EQ(must(normalise_domain("123.example")), "123.example");
}

TEST(Domain, LabelAndLengthRules) {
  std::string l63(63, 'a'), l64(64, 'a');
  EXPECT_EQ(must(normalise_domain(l63 + ".example")), l63 + ".example");
  EXPECT_HAS(must_fail(normalise_domain(l64 + ".example")), "at most 63");
  std::string n253 = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  ASSERT_EQ(n253.size(), 253u);
  EXPECT_EQ(must(normalise_domain(n253)), n253);
  EXPECT_EQ(must(normalise_domain(n253 + ".")), n253);
  EXPECT_HAS(must_fail(normalise_domain(n253 + "b")), "at most 253");
  EXPECT_HAS(must_fail(normalise_domain("-a.example")), "starts or ends with `-`");
  EXPECT_HAS(must_fail(normalise_domain("a-.example")), "starts or ends with `-`");
  EXPECT_HAS(must_fail(normalise_domain("a..example")), "empty label");
  EXPECT_HAS(must_fail(normalise_domain(".example")), "empty label");
  EXPECT_HAS(must_fail(normalise_domain("example.com..")), "empty label");
  EXPECT_HAS(must_fail(normalise_domain("under_score.example")), "contains `_`");
  EXPECT_HAS(must_fail(normalise_domain("ex ample.com")), "contains ` `");
  EXPECT_HAS(must_fail(normalise_domain("")), "empty");
  EXPECT_HAS(must_fail(normalise_domain("   ")), "empty");
  EXPECT_HAS(must_fail(normalise_domain(".")), "empty");
  EXPECT_HAS(must_fail(normalise_domain("*.example.com")), "drop the `*.`");
  EXPECT_HAS(must_fail(normalise_domain("198.51.100.1")), "CIDR");
  EXPECT_HAS(must_fail(normalise_domain("2001:db8::1")), "CIDR");
  EXPECT_HAS(must_fail(normalise_domain("bad\nname")), "\\x0a");
}

TEST(Values, Mtu) {
  EXPECT_EQ(must(parse_mtu("576")), 576u);
  EXPECT_EQ(must(parse_mtu("65520")), 65520u);
  EXPECT_EQ(must(parse_mtu("1500")), 1500u);
  EXPECT_HAS(must_fail(parse_mtu("575")), "out of range");
  EXPECT_HAS(must_fail(parse_mtu("65521")), "out of range");
  EXPECT_HAS(must_fail(parse_mtu("99999999999999999999")), "not a number");
  for (const char* bad : {"", "-1500", "1500x", "0x500", " 1500"})
    EXPECT_HAS(must_fail(parse_mtu(bad)), "not a number");
  EXPECT_HAS(must_fail(check_mtu(-1)), "out of range");
}

TEST(Values, Iface) {
  EXPECT_EQ(must(parse_iface("eth0")), "eth0");
  EXPECT_EQ(must(parse_iface("enp0s31f6.100")), "enp0s31f6.100");
  EXPECT_HAS(must_fail(parse_iface("")), "empty");
  EXPECT_HAS(must_fail(parse_iface("averyveryverylong0")), "too long");
  EXPECT_HAS(must_fail(parse_iface("a/b")), "contains `/`");
  EXPECT_HAS(must_fail(parse_iface("a b")), "contains ` `");
  EXPECT_HAS(must_fail(parse_iface("eth0:1")), "contains `:`");
  EXPECT_FALSE(must_fail(parse_iface("..")).empty());
}

TEST(Values, Enums) {
  EXPECT_EQ(must(parse_backend("rootful")), Backend::Rootful);
  EXPECT_EQ(must(parse_backend("rootless-internal")), Backend::RootlessInternal);
  EXPECT_HAS(must_fail(parse_backend("rootless")), "rootless-internal or rootful");
  EXPECT_EQ(must(parse_capture_point("wire-egress")), CapturePoint::WireEgress);
  EXPECT_EQ(must(parse_capture_point("both")), CapturePoint::Both);
  EXPECT_HAS(must_fail(parse_capture_point("Child")), "child, egress, wire-egress or both");
  EXPECT_EQ(must(parse_text_or_json("json")), TextOrJson::Json);
  EXPECT_HAS(must_fail(parse_text_or_json("yaml")), "text or json");
  EXPECT_EQ(must(parse_report_format("markdown")), ReportFormat::Markdown);
  EXPECT_EQ(must(parse_report_format("html")), ReportFormat::Html);
  EXPECT_HAS(must_fail(parse_report_format("md")), "text, markdown, json or html");
  EXPECT_EQ(must(parse_default_policy("deny")), DefaultPolicy::Deny);
  EXPECT_HAS(must_fail(parse_default_policy("block")), "allow or deny");
  EXPECT_EQ(must(parse_proxy_dns("remote")), ProxyDns::Remote);
  EXPECT_EQ(must(parse_proxy_dns("local")), ProxyDns::Local);
  EXPECT_HAS(must_fail(parse_proxy_dns("Remote")), "local or remote");
  for (auto d : {ProxyDns::Local, ProxyDns::Remote}) EXPECT_EQ(must(parse_proxy_dns(name(d))), d);
  // Every name() spelling parses back to its value.
  for (auto b : {Backend::RootlessInternal, Backend::Rootful})
    EXPECT_EQ(must(parse_backend(name(b))), b);
  for (auto c : {CapturePoint::Child, CapturePoint::Egress, CapturePoint::WireEgress,
                 CapturePoint::Both})
    EXPECT_EQ(must(parse_capture_point(name(c))), c);
  for (auto f : {ReportFormat::Text, ReportFormat::Markdown, ReportFormat::Json, ReportFormat::Html})
    EXPECT_EQ(must(parse_report_format(name(f))), f);
}

TEST(Values, Dns) {
  EXPECT_EQ(must(parse_dns("198.51.100.53")).str(), "198.51.100.53");
  EXPECT_EQ(must(parse_dns("2001:db8::53")).str(), "2001:db8::53");
  EXPECT_HAS(must_fail(parse_dns("198.51.100.53:53")), "not an IP address");
  EXPECT_HAS(must_fail(parse_dns("dns.example")), "not an IP address");
  EXPECT_HAS(must_fail(parse_dns("[::1]")), "not an IP address");
}

TEST(Values, CredentialsAndPaths) {
  EXPECT_EQ(must(parse_proxy_user("alice")), "alice");
  EXPECT_HAS(must_fail(parse_proxy_user("")), "empty");
  EXPECT_HAS(must_fail(parse_proxy_user("a\nb")), "control");
  EXPECT_EQ(must(parse_proxy_password("-s3cret \"x\"")), "-s3cret \"x\"");
  EXPECT_HAS(must_fail(parse_proxy_password("a\r\nb")), "control");
  EXPECT_EQ(must(resolve_path("x/../y.pcap", "/base/dir")), "/base/dir/y.pcap");
  EXPECT_EQ(must(resolve_path("./logs/a.jsonl", "/p")), "/p/logs/a.jsonl");
  EXPECT_EQ(must(resolve_path("/abs//a", "/p")), "/abs/a");
  EXPECT_HAS(must_fail(resolve_path("", "/p")), "empty");
  EXPECT_HAS(must_fail(check_readable_file("/nonexistent/file")), "No such file");
  EXPECT_HAS(must_fail(check_readable_file("/")), "directory");
}

TEST(Values, HostsFilesAreCheckedLineByLine) {
  char tmpl[] = "/tmp/cf-hosts-XXXXXX";
  int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  close(fd);
  std::string path = tmpl;
  auto with = [&](const std::string& text) {
    std::ofstream(path, std::ios::trunc) << text;
    return check_hosts_file(path);
  };
  EXPECT_EQ(must(with("# comment\n\n198.51.100.1 a.example b # alias\n2001:db8::1\tc\n")), path);
  EXPECT_EQ(must(with("")), path) << "an empty file is a valid (empty) hosts file";
  EXPECT_HAS(must_fail(with("198.51.100.1 a\nnot-an-address b\n")),
             path + " line 2: `not-an-address` is not an IPv4 or IPv6 address");
  EXPECT_HAS(must_fail(with("\n\n203.0.113.9   # only a comment after\n")),
             "line 3: address 203.0.113.9 has no name");
  EXPECT_HAS(must_fail(with("198.51.100.1 a\x01" "b\n")), "line 1: `a\\x01b` is not a host name");
  unlink(tmpl);
}

// --proxy-password-file: what a password file may hold, and every way it can
// be wrong, each a message that names the file and never its content.
TEST(Values, PasswordFiles) {
  char tmpl[] = "/tmp/cf-pwfile-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = tmpl, path = dir + "/pw";
  auto with = [&](const std::string& text) {
    std::ofstream(path, std::ios::trunc | std::ios::binary) << text;
    return read_password_file(path);
  };
  EXPECT_EQ(must(with("s3cret")), "s3cret") << "no newline at all";
  EXPECT_EQ(must(with("s3cret\n")), "s3cret") << "one trailing newline dropped";
  EXPECT_EQ(must(with("s3cret\r\n")), "s3cret") << "a CRLF counts as one newline";
  EXPECT_EQ(must(with(" -p \"w\" \\ é ")), " -p \"w\" \\ é ") << "spaces and quotes kept";
  EXPECT_EQ(must(with(std::string(kMaxPasswordFile, 'a'))).size(), kMaxPasswordFile);
  EXPECT_HAS(must_fail(with(std::string(kMaxPasswordFile + 1, 'a'))),
             path + " is larger than 4 KiB");
  EXPECT_HAS(must_fail(with("")), path + " is empty: write the proxy password into it");
  EXPECT_HAS(must_fail(with("\n")), path + " is empty");
  std::string second = must_fail(with("s3cret\n\n"));
  EXPECT_HAS(second, "the password in " + path + " contains control characters");
  EXPECT_EQ(second.find("s3cret"), std::string::npos) << "the content is never shown";
  EXPECT_HAS(must_fail(with("user\nsecret\n")), "on one line");
  // Symlinks are followed (as a secrets mount provides them).
  std::string link = dir + "/link";
  ASSERT_EQ(symlink(path.c_str(), link.c_str()), 0);
  EXPECT_TRUE(with("viasymlink\n"));
  EXPECT_EQ(must(read_password_file(link)), "viasymlink");
  EXPECT_HAS(must_fail(read_password_file(dir + "/missing")),
             "cannot read " + dir + "/missing: No such file or directory: give a file");
  EXPECT_HAS(must_fail(read_password_file(dir)), dir + " is a directory");
  std::string fifo = dir + "/fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_HAS(must_fail(read_password_file(fifo)), fifo + " is not a regular file")
      << "a FIFO is refused without waiting for a writer";
  EXPECT_HAS(must_fail(read_password_file("/dev/null")), "is not a regular file");
  if (geteuid() != 0) {  // root reads a mode 000 file anyway
    EXPECT_TRUE(with("x"));
    ASSERT_EQ(chmod(path.c_str(), 0), 0);
    EXPECT_HAS(must_fail(read_password_file(path)), "Permission denied");
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cf::config
