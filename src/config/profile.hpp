// TOML profiles (SPEC section 2): load with `extends` chains, merge under the
// command line, and dump the effective Config back as TOML.
//
// Theory of operation
//   A ProfileLayer holds one optional value per profile key: what one source
//   (a profile file, its parent chain, or the command line) said, already
//   parsed and validated, paths already absolute. load_profile() reads a file,
//   checks every key (unknown key, wrong type, bad value -> one message naming
//   the file, the line and the key), follows `extends` (relative to the naming
//   profile's directory) and returns the chain merged parent-first. The caller
//   (cli::parse) overlays the command-line layer on top and applies the result
//   to a default Config: parent < child < flags < built-in defaults for what
//   no layer set. Lists and `command` replace, never append.
//
//   dump_profile() writes every key with its effective value, in SPEC order;
//   optional values that are unset are left out. Strings are TOML basic
//   strings with every control character escaped, so any valid UTF-8 value
//   (quotes, backslashes, newlines, non-ASCII) loads back unchanged.
//
// Limits: inheritance depth 64; a profile file larger than 1 MiB is refused.
#pragma once
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "config/config.hpp"

namespace cf::config {

struct ProfileLayer {
  std::optional<Backend> backend;
  std::optional<std::string> capture;  // absolute
  std::optional<CapturePoint> capture_point;
  std::optional<IpAddr> dns;
  std::optional<std::string> hosts_file;  // absolute, readable when loaded
  std::optional<std::string> iface;
  std::optional<bool> summary;
  std::optional<TextOrJson> summary_format;
  std::optional<std::string> flow_log;  // absolute
  std::optional<ProxyUri> proxy;
  std::optional<std::string> proxy_user;
  std::optional<std::string> proxy_password;
  std::optional<bool> proxy_insecure;
  std::optional<std::string> proxy_ca;  // absolute, readable when loaded (beyond)
  std::optional<bool> offline;
  std::optional<bool> block_private;
  std::optional<bool> block_metadata;
  std::optional<DefaultPolicy> default_policy;
  std::optional<std::vector<Cidr>> allow_cidrs;
  std::optional<std::vector<Cidr>> deny_cidrs;
  std::optional<std::vector<std::string>> allow_domains;
  std::optional<std::vector<std::string>> allow_domains_exact;
  std::optional<std::vector<std::string>> deny_domains;
  std::optional<std::vector<std::string>> deny_domains_exact;
  std::optional<bool> proxy_only;
  std::optional<bool> fail_on_leak;
  std::optional<bool> allow_host_loopback;
  std::optional<uint32_t> mtu;
  std::optional<std::vector<std::string>> command;

  friend bool operator==(const ProfileLayer&, const ProfileLayer&) = default;
};

// Every key a profile may hold, in SPEC order (`extends` included).
const std::vector<std::string>& profile_keys();

// Sets in `base` every value that `top` sets (top wins; lists replaced).
void overlay(ProfileLayer& base, const ProfileLayer& top);

// Copies every value the layer sets into the Config.
void apply(const ProfileLayer& layer, Config& c);

// Loads `path` (relative to the current directory when not absolute) and its
// `extends` chain. The error is the whole message without the
// `childflow: error: ` prefix, e.g.
//   profile /x/a.toml line 3: key `mtu`: expected an integer
//   profile inheritance cycle: /x/a.toml -> /x/b.toml -> /x/a.toml
std::variant<ProfileLayer, std::string> load_profile(const std::string& path);

// Parses profile text as if it were the file `path` (which names the base
// directory for relative paths); `extends` is followed on disk.
std::variant<ProfileLayer, std::string> load_profile_text(const std::string& text,
                                                          const std::string& path);

// Prints the effective configuration as TOML that loads back to an equal
// Config (absolute paths; lists and command in full).
std::string dump_profile(const Config& c);

// A TOML basic string ("...") for any UTF-8 text, control characters escaped.
std::string toml_quote(std::string_view s);

}  // namespace cf::config
