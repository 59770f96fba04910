// The settings table: every setting childflow has, described once.
//
// Theory of operation
//   One Setting row (settings.cpp) says everything about a setting: its long
//   and short flag, its profile key, the Config field it fills, how a value
//   is parsed and checked (with the parsers of config/values.hpp, so that a
//   flag and its key accept the same text and reject it with the same words),
//   its --help text and group, and how --dump-profile writes it back. All
//   code that deals with settings walks the table instead of naming them:
//     cli::parse         finds flags by name and parses their values into the
//                        command line's Layer;
//     load_profile       finds keys, checks their TOML type and parses them
//                        into a Layer per file (config/profile.hpp);
//     Layer::overlay     the precedence rule: what the top layer set wins,
//                        field by field (profile chain < command line);
//     dump_profile       every key with its effective value, in table order;
//     cli's --help       the flags by group, in table order;
//     suggestion()       "did you mean" for unknown flags and keys.
//   Adding a setting is a Config field, one row, and its behaviour
//   (docs/design.md has a worked example).
//
//   Two rows may fill the same field: they are two spellings of one setting
//   (-P and --proxy-password-file both fill proxy_password). A layer holds
//   one of them, the top layer's wins, and giving both in one source is an
//   error (cli::parse for flags, load_profile for the keys of one file).
//
//   A row may name an environment variable (`env`) that gives the value too;
//   it ranks above the profiles and below the command line (cli::parse).
//   A `secret` row (a password) is scrubbed from argv once parsed
//   (cli::hide_secrets), its variable removed from the environment, and
//   --dump-profile redacts it unless --show-secrets is given.
//
//   A Layer is what one source said: a Config holding the values it set and
//   the set of fields it set. Defaults are simply a default Config: the
//   effective Config is a default Config with the merged layer on top.
#pragma once
#include <bitset>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::config {

// The groups of --help, in the order they are printed.
enum class Group : uint8_t { Modes, Sandbox, Output, Proxy, Policy };
const char* title(Group g);

// How a setting is written.
enum class Shape : uint8_t {
  Switch,  // flag without a value; profile: a boolean
  Value,   // flag with one value; profile: a string (or an integer, see parse_int)
  List,    // repeatable flag, one item each; profile: an array of strings
};

class Layer;

// Byte offset of a Config field: identifies the field whatever its type.
template <class M>
size_t field_offset(M Config::*field) {
  static const Config probe{};
  return size_t(reinterpret_cast<const char*>(&(probe.*field)) -
                reinterpret_cast<const char*>(&probe));
}
inline constexpr size_t kNoField = SIZE_MAX;

struct Setting {
  std::string_view flag;        // long flag without "--"; empty: profile only
  char short_flag = 0;          // 0: none
  std::string_view key;         // profile key; empty: command line only
  Shape shape = Shape::Switch;
  std::string_view value_name;  // in --help: FILE, URI, ...
  Group group = Group::Modes;
  std::string_view help;
  bool hidden = false;          // accepted but not listed in --help
  bool repeatable = false;      // a switch that counts (-vv); lists always repeat
  bool path = false;            // a file path (absolute once parsed; completions offer files)
  size_t field = kNoField;      // field_offset() of the Config field it fills
  bool secret = false;          // a password: scrubbed from argv, redacted in dumps
  std::string_view env;         // an environment variable that gives it too; empty: none
  size_t env_needs = kNoField;  // the variable counts only when this field is set

  // Behaviour, filled in by the row makers of settings.cpp. `parse` takes a
  // flag's value, a profile string or one element of a list (appended);
  // relative paths resolve against base_dir. A switch given on the command
  // line is parse_bool(true).
  std::function<Status(Layer&, std::string_view text, const std::string& base_dir)> parse;
  std::function<Status(Layer&, bool)> parse_bool;     // Switch
  std::function<Status(Layer&, int64_t)> parse_int;   // a Value whose key is an integer
  // Copies the field from one Config to another (Layer::overlay).
  std::function<void(const Config& from, Config& to)> copy;
  // The TOML text of the value for --dump-profile (nullopt: unset, left out).
  std::function<std::optional<std::string>(const Config&)> dump;

  std::string long_flag() const { return "--" + std::string(flag); }
  // "-p,--proxy", "--offline": how --help and messages name it.
  std::string flag_names() const;
};

// Every setting, in the order of --dump-profile (the profile format's own
// key order); --help groups them by Group, keeping this order within each.
std::span<const Setting> settings();
const Setting* find_flag(std::string_view long_name);  // without "--"
const Setting* find_short_flag(char c);
const Setting* find_key(std::string_view key);

// "did you mean `X`?" for a mistyped flag (`--prxy`) or key, or an empty
// string when nothing is close.
std::string flag_suggestion(std::string_view long_name);
std::string key_suggestion(std::string_view key);

// What one source said. See the theory of operation above.
class Layer {
 public:
  Config values;
  std::optional<std::string> profile;  // --profile FILE (command line only)

  bool has(const Setting& s) const { return has_field(s.field); }
  bool has_field(size_t field) const { return field != kNoField && set_[slot(field)]; }
  template <class M>
  bool has(M Config::*field) const { return set_[slot(field_offset(field))]; }
  void mark(size_t field) { set_[slot(field)] = true; }

  // The value of `field` if this layer set it (an optional field: its
  // optional, empty when unset).
  template <class M>
  auto get(M Config::*field) const {
    if constexpr (is_optional<M>::value) return has(field) ? values.*field : M{};
    else return has(field) ? std::optional<M>(values.*field) : std::nullopt;
  }
  template <class M, class V>
  void set(M Config::*field, V&& v) {
    values.*field = std::forward<V>(v);
    mark(field_offset(field));
  }

  // Every field `top` set replaces this layer's (lists replace, never append).
  void overlay(const Layer& top);

  friend bool operator==(const Layer&, const Layer&) = default;

 private:
  template <class T> struct is_optional : std::false_type {};
  template <class T> struct is_optional<std::optional<T>> : std::true_type {};
  static size_t slot(size_t field);  // a small index per distinct field
  std::bitset<64> set_;
};

// The effective Config: defaults with `merged` on top.
Config apply(const Layer& merged);

}  // namespace cf::config
