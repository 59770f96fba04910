// Single-value parsers shared by flags and profile keys; see values.hpp.
#include "config/values.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>

#include "common/unique_fd.hpp"

namespace cf::config {

namespace {

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

bool has_control_char(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

// Printable form of untrusted text inside an error message: control bytes
// escaped so the message stays on one line.
std::string shown(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", unsigned(c));
    else
      out += char(c);
  }
  return out;
}

template <class... A>
Error bad(fmt::format_string<A...> f, A&&... a) {
  return Error{fmt::format(f, std::forward<A>(a)...)};
}

// Checks a DNS name that is already trimmed, lowercased and without the
// trailing dot. Returns an empty string when it is valid.
std::string dns_name_problem(std::string_view name) {
  if (name.empty()) return "the name is empty";
  if (name.size() > 253)
    return fmt::format("the name is {} characters long; a DNS name has at most 253",
                       name.size());
  size_t start = 0;
  while (true) {
    size_t dot = name.find('.', start);
    std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return "it has an empty label (two dots in a row, or a leading dot)";
    if (label.size() > 63)
      return fmt::format("label `{}` is {} characters long; a label has at most 63",
                         label, label.size());
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-';
      if (!ok)
        return fmt::format("label `{}` contains `{}`; labels use only letters, digits and `-`",
                           shown(label), shown(std::string_view(&c, 1)));
    }
    if (label.front() == '-' || label.back() == '-')
      return fmt::format("label `{}` starts or ends with `-`", label);
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return {};
}

}  // namespace

Result<Backend> parse_backend(std::string_view s) {
  if (s == "rootless-internal") return Backend::RootlessInternal;
  if (s == "rootful") return Backend::Rootful;
  return bad("`{}` is not a backend: use rootless-internal or rootful", shown(s));
}

Result<CapturePoint> parse_capture_point(std::string_view s) {
  if (s == "child") return CapturePoint::Child;
  if (s == "egress") return CapturePoint::Egress;
  if (s == "wire-egress") return CapturePoint::WireEgress;
  if (s == "both") return CapturePoint::Both;
  return bad("`{}` is not a capture point: use child, egress, wire-egress or both",
                     shown(s));
}

Result<TextOrJson> parse_text_or_json(std::string_view s) {
  if (s == "text") return TextOrJson::Text;
  if (s == "json") return TextOrJson::Json;
  return bad("`{}` is not a format: use text or json", shown(s));
}

Result<ReportFormat> parse_report_format(std::string_view s) {
  if (s == "text") return ReportFormat::Text;
  if (s == "markdown") return ReportFormat::Markdown;
  if (s == "json") return ReportFormat::Json;
  if (s == "html") return ReportFormat::Html;
  return bad("`{}` is not a report format: use text, markdown, json or html", shown(s));
}

Result<DefaultPolicy> parse_default_policy(std::string_view s) {
  if (s == "allow") return DefaultPolicy::Allow;
  if (s == "deny") return DefaultPolicy::Deny;
  return bad("`{}` is not a policy: use allow or deny", shown(s));
}

Result<ProxyDns> parse_proxy_dns(std::string_view s) {
  if (s == "local") return ProxyDns::Local;
  if (s == "remote") return ProxyDns::Remote;
  return bad("`{}` is not a mode: use local or remote", shown(s));
}

Result<IpAddr> parse_dns(std::string_view s) {
  if (auto ip = IpAddr::parse(s)) return *ip;
  return bad(
      "`{}` is not an IP address: give the resolver's IPv4 or IPv6 address (no port), "
      "e.g. 192.0.2.53 or 2001:db8::53",
      shown(s));
}

Result<ProxyUri> parse_proxy_uri(std::string_view s) {
  const std::string hint = "write scheme://host:port, e.g. http://proxy.example:3128";
  if (s.empty()) return bad("the proxy URI is empty: {}", hint);
  for (char c : s)
    if (is_ascii_space(c) || (unsigned char)c < 0x20 || c == 0x7f)
      return bad("`{}` contains white space or control characters: {}", shown(s), hint);
  ProxyUri uri;
  size_t sep = s.find("://");
  if (sep == std::string_view::npos)
    return bad("`{}` has no scheme: {} (schemes: http, https, socks5)", s, hint);
  std::string scheme = lower(s.substr(0, sep));
  if (scheme == "http") {
    uri.scheme = ProxyScheme::Http;
  } else if (scheme == "https") {
    uri.scheme = ProxyScheme::Https;
  } else if (scheme == "socks5") {
    uri.scheme = ProxyScheme::Socks5;
  } else if (scheme == "socks5h") {
    // (The rest is echoed only when it carries no credentials.)
    std::string_view rest = s.substr(sep + 3);
    return bad(
        "socks5h:// is not a scheme childflow takes: use socks5://{} with --proxy-dns "
        "remote, which has the proxy resolve the tree's names",
        rest.find('@') == std::string_view::npos && !rest.empty() ? rest : "HOST:PORT");
  } else {
    return bad("`{}` has an unknown scheme `{}`: use http://, https:// or socks5://", s,
                       s.substr(0, sep));
  }
  std::string_view rest = s.substr(sep + 3);
  size_t auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view tail = auth_end == std::string_view::npos ? "" : rest.substr(auth_end);
  if (authority.find('@') != std::string_view::npos)
    return bad(
        "`{}` has credentials in it: remove `user:password@` and pass them with "
        "-U/--proxy-user and -P/--proxy-password",
        scheme + "://...@" + std::string(authority.substr(authority.rfind('@') + 1)));
  if (!tail.empty() && tail != "/") {
    if (tail.front() == '?')
      return bad("`{}` has a query `{}`: a proxy URI is scheme://host:port only", s,
                         tail);
    if (tail.front() == '#')
      return bad("`{}` has a fragment `{}`: a proxy URI is scheme://host:port only", s,
                         tail);
    return bad("`{}` has a path `{}`: a proxy URI is scheme://host:port only", s, tail);
  }
  std::string_view host, port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return bad("`{}` has an unclosed `[`: write IPv6 hosts as [2001:db8::1]", s);
    host = authority.substr(1, close - 1);
    auto ip = IpAddr::parse(host);
    if (!ip || ip->is_v4())
      return bad("`{}`: `[{}]` is not an IPv6 address", s, host);
    uri.host = ip->str();
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':')
        return bad("`{}`: expected `:PORT` after `]`, found `{}`", s, after);
      has_port = true;
      port_text = after.substr(1);
    }
  } else {
    size_t colons = 0;
    for (char c : authority) colons += c == ':';
    if (colons > 1)
      return bad(
          "`{}` has an IPv6 host without brackets: write it as {}://[ADDRESS]:PORT, "
          "e.g. {}://[2001:db8::1]:3128",
          s, scheme, scheme);
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    if (host.empty()) return bad("`{}` has no host: {}", s, hint);
    if (auto ip = IpAddr::parse(host)) {
      uri.host = ip->str();
    } else {
      std::string name = lower(host);
      if (!name.empty() && name.back() == '.') name.pop_back();
      std::string problem = dns_name_problem(name);
      if (!problem.empty())
        return bad("`{}`: host `{}` is not a DNS name or IP address: {}", s, host,
                           problem);
      uri.host = name;
    }
  }
  std::string host_shown = uri.host.find(':') != std::string::npos ? "[" + uri.host + "]" : uri.host;
  std::string example = fmt::format("{}://{}:{}", scheme, host_shown,
                                    uri.scheme == ProxyScheme::Socks5 ? 1080 : 3128);
  if (!has_port || port_text.empty())
    return bad("`{}` has no port: add one, e.g. {}", s, example);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc{} || p != port_text.data() + port_text.size() || port < 1 ||
      port > 65535)
    return bad("`{}` has a bad port `{}`: the port must be a number from 1 to 65535",
                       s, port_text);
  uri.port = uint16_t(port);
  return uri;
}

Result<std::string> normalise_domain(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && is_ascii_space(s[b])) ++b;
  while (e > b && is_ascii_space(s[e - 1])) --e;
  std::string name = lower(s.substr(b, e - b));
  if (!name.empty() && name.back() == '.') name.pop_back();
  if (name.rfind("*.", 0) == 0)
    return bad(
        "`{}` is not a DNS name: drop the `*.`; a rule without `exact` already covers every "
        "subdomain",
        shown(s));
  if (IpAddr::parse(name) || (name.size() > 2 && name.front() == '[' && name.back() == ']'))
    return bad(
        "`{}` is an IP address, not a DNS name: use a CIDR rule instead "
        "(e.g. --allow-cidr {}/32 or /128)",
        shown(s), name);
  std::string problem = dns_name_problem(name);
  if (!problem.empty()) return bad("`{}` is not a DNS name: {}", shown(s), problem);
  return name;
}

Result<Cidr> parse_cidr(std::string_view s) {
  return Cidr::parse(s);
}

Result<uint32_t> check_mtu(int64_t v) {
  if (v < kMinMtu || v > kMaxMtu)
    return bad("MTU {} is out of range: use a value from {} to {} (default 65520)", v,
                       kMinMtu, kMaxMtu);
  return uint32_t(v);
}

Result<uint32_t> parse_mtu(std::string_view s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || s.front() == '-' || ec != std::errc{} || p != s.data() + s.size())
    return bad("`{}` is not a number: give the MTU in bytes, {} to {}", shown(s),
                       kMinMtu, kMaxMtu);
  return check_mtu(v);
}

Result<std::string> parse_iface(std::string_view s) {
  if (s.empty()) return Error{"the interface name is empty: give e.g. eth0"};
  if (s.size() > 15)
    return bad("`{}` is too long for an interface name (at most 15 bytes)", shown(s));
  if (s == "." || s == "..") return bad("`{}` is not an interface name", s);
  for (char c : s)
    if (c == '/' || c == ':' || is_ascii_space(c) || (unsigned char)c < 0x20 || c == 0x7f)
      return bad("`{}` is not an interface name: it contains `{}`", shown(s),
                         shown(std::string_view(&c, 1)));
  return std::string(s);
}

Result<std::string> parse_proxy_user(std::string_view s) {
  if (s.empty()) return Error{"the proxy user is empty: give the user name"};
  if (has_control_char(s))
    return Error{"the proxy user contains control characters (e.g. a newline)"};
  return std::string(s);
}

Result<std::string> parse_proxy_password(std::string_view s) {
  if (has_control_char(s))
    return Error{"the proxy password contains control characters (e.g. a newline)"};
  return std::string(s);
}

Result<std::string> read_password_file(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
  UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)};
  if (!fd)
    return bad("cannot read {}: {}: give a file that holds the proxy password", path,
               std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return bad("cannot read {}: {}", path, std::strerror(errno));
  if (S_ISDIR(st.st_mode))
    return bad("{} is a directory: give the file that holds the proxy password", path);
  if (!S_ISREG(st.st_mode))
    return bad("{} is not a regular file (a pipe, socket or device): write the proxy password "
               "into a regular file and give that",
               path);
  std::string text(kMaxPasswordFile + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return bad("cannot read {}: {}", path, std::strerror(errno));
    if (n == 0) break;
    got += size_t(n);
  }
  if (got > kMaxPasswordFile)
    return bad("{} is larger than 4 KiB: it must hold the proxy password alone", path);
  text.resize(got);
  if (!text.empty() && text.back() == '\n') {
    text.pop_back();
    if (!text.empty() && text.back() == '\r') text.pop_back();
  }
  if (text.empty())
    return bad("{} is empty: write the proxy password into it (one line)", path);
  if (has_control_char(text))
    return bad("the password in {} contains control characters (a second line?): the file "
               "must hold the password alone, on one line",
               path);
  return text;
}

Result<std::string> resolve_path(std::string_view s, const std::string& base_dir) {
  if (s.empty()) return Error{"the path is empty"};
  if (s.find('\0') != std::string_view::npos)
    return Error{"the path contains a NUL character"};
  std::filesystem::path p{std::string(s)};
  if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
  return p.lexically_normal().string();
}

Result<std::string> check_readable_file(const std::string& path) {
  UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (!fd) return bad("cannot read {}: {}", path, std::strerror(errno));
  struct stat st {};
  bool dir = ::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode);
  if (dir) return bad("{} is a directory, not a file", path);
  return path;
}

Result<std::string> read_hosts_file(const std::string& path) {
  UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return bad("cannot read {}: {}", path, std::strerror(errno));
  constexpr size_t kMax = 1 << 20;
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return bad("cannot read {}: {}", path, std::strerror(errno));
    if (n == 0) break;
    text.append(buf, size_t(n));
    if (text.size() > kMax) return bad("{} is larger than 1 MiB; is it really a hosts file?", path);
  }
  return text;
}

Status check_hosts_text(std::string_view text, const std::string& path) {
  size_t line_no = 0, start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    ++line_no;
    if (size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && is_ascii_space(line[i])) ++i;
      size_t j = i;
      while (j < line.size() && !is_ascii_space(line[j])) ++j;
      if (j > i) words.push_back(line.substr(i, j - i));
      i = j;
    }
    if (words.empty()) continue;
    if (!IpAddr::parse(words[0]))
      return bad("{} line {}: `{}` is not an IPv4 or IPv6 address: each line is ADDRESS NAME...",
                 path, line_no, shown(words[0]));
    if (words.size() < 2)
      return bad("{} line {}: address {} has no name: each line is ADDRESS NAME...", path,
                 line_no, shown(words[0]));
    for (size_t w = 1; w < words.size(); ++w)
      for (char c : words[w])
        if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e || c == '/')
          return bad("{} line {}: `{}` is not a host name", path, line_no, shown(words[w]));
  }
  return {};
}

Result<std::string> check_hosts_file(const std::string& path) {
  auto readable = check_readable_file(path);
  if (!readable) return readable;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return path;  // checked when read
  auto text = read_hosts_file(path);
  if (!text) return text.error();
  if (Status ok = check_hosts_text(*text, path); !ok) return ok.error();
  return path;
}

std::string current_dir() {
  std::error_code ec;
  auto p = std::filesystem::current_path(ec);
  if (ec) return "/";
  return p.string();
}

}  // namespace cf::config
