// Parsing and validation of single setting values, shared by the command line
// (cli/) and TOML profiles (config/profile.cpp) so that a flag and its profile
// key accept exactly the same text and reject it with the same explanation.
//
// Every parser returns the value, or an Error whose message says what is wrong
// and how to fix it, without any prefix: the caller adds where the value came
// from (`--proxy: ...` or `profile F line N: key `proxy`: ...`). Nothing here
// touches the file system except check_readable_file, the hosts-file readers
// and read_password_file.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::config {

// Enumerations, spelt as docs/cli.md and docs/profile.md write them (exact,
// lowercase).
Result<Backend> parse_backend(std::string_view s);
Result<CapturePoint> parse_capture_point(std::string_view s);
Result<TextOrJson> parse_text_or_json(std::string_view s);
Result<ReportFormat> parse_report_format(std::string_view s);
Result<DefaultPolicy> parse_default_policy(std::string_view s);
Result<ProxyDns> parse_proxy_dns(std::string_view s);

// `-d/--dns`: an IPv4 or IPv6 address literal (no port, no brackets).
Result<IpAddr> parse_dns(std::string_view s);

// `-p/--proxy`: scheme://host:port with scheme http, https or socks5 (any
// case), host a DNS name, an IPv4 literal or a bracketed IPv6 literal, port
// 1..65535, and at most one trailing "/". Rejects userinfo (credentials go in
// -U/-P), paths, queries and fragments; socks5h:// is rejected with a hint to
// use socks5:// with --proxy-dns remote. Names are lowercased and address
// literals printed canonically, so str() parses back to an equal ProxyUri.
Result<ProxyUri> parse_proxy_uri(std::string_view s);

// Domain rules: trim ASCII white space, lowercase, drop one trailing dot, then
// require labels of 1..63 characters from [A-Za-z0-9-] that neither start nor
// end with '-', at most 253 characters in all. IP literals are rejected with a
// hint to use a CIDR rule.
Result<std::string> normalise_domain(std::string_view s);

// `--allow-cidr`/`--deny-cidr`: Cidr::parse (host bits set is an error that
// names the prefix and suggests the fix).
Result<Cidr> parse_cidr(std::string_view s);

// `--mtu`: an integer from kMinMtu to kMaxMtu.
inline constexpr int64_t kMinMtu = 576;
inline constexpr int64_t kMaxMtu = 65520;
Result<uint32_t> check_mtu(int64_t v);
Result<uint32_t> parse_mtu(std::string_view s);  // decimal digits only

// `-i/--iface`: a Linux interface name (1..15 bytes, not "." or "..", no '/',
// ':' or white space).
Result<std::string> parse_iface(std::string_view s);

// `-U`/`-P`: non-empty user, no control characters in either (they would end
// up in a header line or a SOCKS5 message).
Result<std::string> parse_proxy_user(std::string_view s);
Result<std::string> parse_proxy_password(std::string_view s);

// `--proxy-password-file`: the password is the whole content of `path`, a
// regular file (symlinks followed) of at most kMaxPasswordFile bytes, with
// one trailing newline (\n or \r\n) dropped; it must then be non-empty and
// pass parse_proxy_password. The file is read once, here; the messages name
// the path and say how to fix it, never the content.
inline constexpr size_t kMaxPasswordFile = 4096;
Result<std::string> read_password_file(const std::string& path);

// Paths: a non-empty string; relative ones are resolved against base_dir and
// the result is lexically normalised (no file system access, symlinks kept).
Result<std::string> resolve_path(std::string_view s, const std::string& base_dir);

// Opens `path` for reading and checks it is not a directory; the message
// names the path and the errno text.
Result<std::string> check_readable_file(const std::string& path);

// `--hosts-file`: /etc/hosts format. check_hosts_text: each line, once a `#`
// comment is cut off, is empty or an IPv4/IPv6 address followed by one or
// more names (printable, no `/`); the message names `path` and the first line
// that does not parse. read_hosts_file reads a file (blocking, at most 1 MiB)
// once: the run reads it with this and checks what it read, so a pipe
// (`--hosts-file <(...)`) works and the tree gets exactly what was checked.
// check_hosts_file, at parse time, reads and checks a regular file; anything
// else (a pipe) is only checked to be readable then, and its text when the
// run reads it.
Result<std::string> read_hosts_file(const std::string& path);
Status check_hosts_text(std::string_view text, const std::string& path);
Result<std::string> check_hosts_file(const std::string& path);

// The current working directory (absolute), used as the base for flag paths.
std::string current_dir();

}  // namespace cf::config
