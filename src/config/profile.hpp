// TOML profiles: load with `extends` chains and dump the effective Config
// back as TOML. The format is docs/profile.md.
//
// Theory of operation
//   load_profile() reads a file into a Layer (config/settings.hpp): every key
//   is looked up in the settings table, its TOML type checked against the
//   setting's shape (a switch is a boolean, a value a string, the MTU an
//   integer, a list an array of strings) and its value parsed by the same
//   parser as the flag; paths are made absolute against the profile's own
//   directory. Unknown key, wrong type or bad value: one message naming the
//   file, the line and the key, with the control bytes it quotes from the
//   file (a key, a path, the TOML parser's excerpt) written as \xNN. It
//   then follows `extends` (relative to the naming profile's directory) and
//   returns the chain merged parent-first. The caller (cli::parse) overlays
//   the command line's Layer on top and applies the result to a default
//   Config: parent < child < flags, built-in defaults for what no layer set.
//   Lists and `command` replace, never append.
//
//   dump_profile() writes every key with its effective value, in the table's
//   order; optional values that are unset are left out. Strings are TOML basic
//   strings with every control character escaped, so any valid UTF-8 value
//   (quotes, backslashes, newlines, non-ASCII) loads back unchanged. A secret
//   key (proxy_password) is written as a comment saying it is redacted,
//   unless Config::show_secrets (--show-secrets); a password read from a file
//   is written as proxy_password_file, the file's path.
//
//   Two keys of one file that fill the same field (proxy_password and
//   proxy_password_file) are an error.
//
// Limits: inheritance depth 64; a profile file larger than 1 MiB is refused.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "config/config.hpp"
#include "config/settings.hpp"

namespace cf::config {

// Where a bare profile name is looked up: the current directory,
// $XDG_CONFIG_HOME/childflow (default ~/.config/childflow), /etc/childflow.
std::vector<std::string> profile_dirs();

// Every key a profile may hold, in table order (`extends` first).
std::vector<std::string> profile_keys();

// Loads `path` (relative to the current directory when not absolute) and its
// `extends` chain. A bare name (no `/`) is looked up in profile_dirs() in
// order, as given and, in the user's and system's directories, with `.toml`
// added: `--profile ci` finds ~/.config/childflow/ci.toml. The error's message is the whole line without the
// `childflow: error: ` prefix, e.g.
//   profile /x/a.toml line 3: key `mtu`: expected an integer
//   profile inheritance cycle: /x/a.toml -> /x/b.toml -> /x/a.toml
Result<Layer> load_profile(const std::string& path);

// Parses profile text as if it were the file `path` (which names the base
// directory for relative paths); `extends` is followed on disk.
Result<Layer> load_profile_text(const std::string& text, const std::string& path);

// What --learn keeps of a profile it merges into (learn/learn.hpp): the keys
// the file `path` (absolute) holding `text` sets itself, parsed and checked
// as load_profile does, without following its `extends`, whose path
// (absolute) is returned beside them.
struct OwnKeys {
  Layer layer;
  std::optional<std::string> extends;
};
Result<OwnKeys> load_profile_own(const std::string& text, const std::string& path);

// Prints the effective configuration as TOML that loads back to an equal
// Config (absolute paths; lists and command in full), except that a redacted
// password (no show_secrets) must then be given another way.
std::string dump_profile(const Config& c);

// A TOML basic string ("...") for any UTF-8 text, control characters escaped.
std::string toml_quote(std::string_view s);

}  // namespace cf::config
