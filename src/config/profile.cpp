// TOML profiles: load, extends and dump. See profile.hpp for the theory of
// operation.
#include "config/profile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <toml++/toml.h>

#include "common/unique_fd.hpp"
#include "config/values.hpp"

namespace cf::config {

namespace {

constexpr size_t kMaxProfileBytes = 1 << 20;
constexpr size_t kMaxDepth = 64;

long line_of(const toml::node& n) { return long(n.source().begin.line); }

// What is wrong with a key's value (no prefix) and the line it refers to (an
// array element may be on another line than its key).
struct KeyError {
  std::string text;
  long line = 0;  // 0: the key's own line
};

// Checks the node's TOML type against the setting's shape and parses it
// into the layer.
std::optional<KeyError> load_key(const Setting& s, const toml::node& n, Layer& l,
                                 const std::string& dir) {
  auto status = [](Status st) -> std::optional<KeyError> {
    if (st) return std::nullopt;
    return KeyError{st.error().message};
  };
  switch (s.shape) {
    case Shape::Switch: {
      auto* b = n.as_boolean();
      if (!b) return KeyError{"expected a boolean (true or false)"};
      return status(s.parse_bool(l, b->get()));
    }
    case Shape::Value: {
      if (s.parse_int) {
        auto* i = n.as_integer();
        if (!i) return KeyError{"expected an integer"};
        return status(s.parse_int(l, i->get()));
      }
      auto* str = n.as_string();
      if (!str) return KeyError{s.path ? "expected a string (a path)" : "expected a string"};
      return status(s.parse(l, str->get(), dir));
    }
    case Shape::List: {
      auto* a = n.as_array();
      if (!a) return KeyError{"expected an array of strings"};
      // An array replaces whatever came before (an empty one too).
      Layer items;
      size_t index = 0;
      for (const toml::node& el : *a) {
        ++index;
        auto* str = el.as_string();
        if (!str)
          return KeyError{fmt::format("element {}: expected a string", index), line_of(el)};
        Status st = s.parse(items, str->get(), dir);
        if (!st)
          return KeyError{fmt::format("element {}: {}", index, st.error().message), line_of(el)};
      }
      s.copy(items.values, l.values);
      l.mark(s.field);
      return std::nullopt;
    }
  }
  return KeyError{"unsupported key"};
}

std::string unknown_key_hint(const std::string& key) {
  if (key == "root")
    return "the backend is chosen with backend = \"rootful\" (`--root` is a flag only)";
  std::string s = key_suggestion(key);
  return s.empty() ? "see docs/profile.md for the keys" : s;
}

// Reads a whole file (at most kMaxProfileBytes).
Result<std::string> read_file(const std::string& path) {
  UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return Error{fmt::format("cannot read profile {}: {}", path, std::strerror(errno))};
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode))
    return Error{fmt::format("profile {} is a directory, not a file", path)};
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error{fmt::format("cannot read profile {}: {}", path, std::strerror(errno))};
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > kMaxProfileBytes)
      return Error{fmt::format("profile {} is larger than 1 MiB; is it really a profile?", path)};
  }
  return out;
}

// The error with control bytes as \xNN. Its keys, paths and the TOML
// parser's quotes come from the file, and it is printed as one line on a
// terminal: a profile from a checkout must not clear the screen or forge
// lines of output (values.hpp's parsers escape the values they quote).
Error printable(Error e) {
  auto escape = [](std::string& s) {
    if (std::none_of(s.begin(), s.end(),
                     [](unsigned char c) { return c < 0x20 || c == 0x7f; }))
      return;
    std::string out;
    for (unsigned char c : s) {
      if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", unsigned(c));
      else out += char(c);
    }
    s = std::move(out);
  };
  escape(e.message);
  escape(e.step);
  return e;
}

std::string identity_of(const std::string& path) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

// `own_extends`: when given, `extends` is not followed but its path is
// stored there (load_profile_own).
Result<Layer> load_text(const std::string& text, const std::string& path,
                        std::vector<std::string>& chain, std::vector<std::string>& ids,
                        std::optional<std::string>* own_extends = nullptr);

Result<Layer> load_file(const std::string& path, std::vector<std::string>& chain,
                        std::vector<std::string>& ids) {
  std::string id = identity_of(path);
  if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
    std::string shown;
    for (const auto& p : chain) shown += p + " -> ";
    shown += path;
    return Error{
        fmt::format("profile inheritance cycle: {}: remove one of these `extends`", shown)};
  }
  if (chain.size() >= kMaxDepth)
    return Error{
        fmt::format("profile {}: `extends` chain deeper than {} profiles", path, kMaxDepth)};
  auto content = read_file(path);
  if (!content) return content.error();
  return load_text(*content, path, chain, ids);
}

Result<Layer> load_text(const std::string& text, const std::string& path,
                        std::vector<std::string>& chain, std::vector<std::string>& ids,
                        std::optional<std::string>* own_extends) {
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::string desc(e.description());
    std::replace(desc.begin(), desc.end(), '\n', ' ');
    return Error{fmt::format("profile {} line {}: {}", path, e.source().begin.line, desc)};
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = "/";

  // Handle keys in file order so the first error reported is the first one
  // in the file (toml::table iterates sorted by key).
  struct Entry {
    std::string key;
    long line;
    const toml::node* node;
  };
  std::vector<Entry> entries;
  for (auto&& [k, v] : table)
    entries.push_back({std::string(k.str()), long(k.source().begin.line), &v});
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.line < b.line; });

  Layer layer;
  std::optional<std::string> extends;
  long extends_line = 0;
  for (const Entry& e : entries) {
    long line = e.line > 0 ? e.line : line_of(*e.node);
    if (e.key == "extends") {
      auto* s = e.node->as_string();
      if (!s)
        return Error{fmt::format("profile {} line {}: key `extends`: expected a string (a path)",
                                 path, line)};
      auto r = resolve_path(s->get(), dir);
      if (!r)
        return Error{fmt::format("profile {} line {}: key `extends`: {}", path, line,
                                 r.error().message)};
      extends = *r;
      extends_line = line;
      continue;
    }
    const Setting* s = find_key(e.key);
    if (!s)
      return Error{fmt::format("profile {} line {}: unknown key `{}`: {}", path, line, e.key,
                               unknown_key_hint(e.key))};
    // TOML has no duplicate keys, so a field already set here was set by
    // another key that fills it too (proxy_password, proxy_password_file).
    if (layer.has(*s))
      for (const Entry& other : entries) {
        const Setting* o = find_key(other.key);
        if (o && o != s && o->field == s->field)
          return Error{fmt::format(
              "profile {} line {}: keys `{}` and `{}` give the same setting: keep one of them",
              path, line, other.key, e.key)};
      }
    if (auto err = load_key(*s, *e.node, layer, dir))
      return Error{fmt::format("profile {} line {}: key `{}`: {}", path,
                               err->line > 0 ? err->line : line, e.key, err->text)};
  }
  if (own_extends) *own_extends = extends;
  if (!extends || own_extends) return layer;

  chain.push_back(path);
  ids.push_back(identity_of(path));
  std::string parent_path = *extends;
  std::error_code ec;
  if (!std::filesystem::exists(parent_path, ec)) {
    return Error{fmt::format("profile {} line {}: key `extends`: {} does not exist", path,
                             extends_line, parent_path)};
  }
  Result<Layer> parent = load_file(parent_path, chain, ids);
  chain.pop_back();
  ids.pop_back();
  if (!parent) return parent;
  parent->overlay(layer);
  return parent;
}

Result<Layer> find_and_load(const std::string& path);

}  // namespace

std::vector<std::string> profile_keys() {
  std::vector<std::string> keys{"extends"};
  for (const Setting& s : settings())
    if (!s.key.empty()) keys.emplace_back(s.key);
  return keys;
}

std::vector<std::string> profile_dirs() {
  std::vector<std::string> dirs{current_dir()};
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  const char* home = std::getenv("HOME");
  if (xdg && *xdg == '/') dirs.push_back(std::string(xdg) + "/childflow");
  else if (home && *home == '/') dirs.push_back(std::string(home) + "/.config/childflow");
  dirs.emplace_back("/etc/childflow");
  return dirs;
}

Result<Layer> load_profile(const std::string& path) {
  auto r = find_and_load(path);
  if (!r) return printable(r.error());
  return r;
}

namespace {

Result<Layer> find_and_load(const std::string& path) {
  std::string found;
  if (path.find('/') == std::string::npos && !path.empty()) {
    // A bare name: the current directory, then the user's and the system's
    // profile directories, each with the name as given and with `.toml`.
    // Only regular files count (a `ci/` directory is not the profile `ci`).
    // A name found both here and in a profile directory is ambiguous: an
    // untrusted checkout must not silently stand in for the user's profile.
    std::vector<std::string> tried, found_all;
    auto is_file = [](const std::string& p) {
      std::error_code ec;
      return std::filesystem::is_regular_file(p, ec);
    };
    for (const std::string& dir : profile_dirs()) {
      for (const std::string& name : {path, path + ".toml"}) {
        if (name != path && (path.ends_with(".toml") || dir == current_dir())) continue;
        std::string candidate = dir + "/" + name;
        tried.push_back(candidate);
        if (is_file(candidate)) {
          found_all.push_back(candidate);
          break;
        }
      }
    }
    if (found_all.empty()) {
      std::string list;
      for (const auto& t : tried) list += (list.empty() ? "" : ", ") + t;
      return Error{fmt::format("--profile {}: no such profile: looked for {}", path, list)};
    }
    if (found_all.size() > 1 && found_all[0] == current_dir() + "/" + path)
      return Error{fmt::format(
          "--profile {}: both {} and {} exist: name the one you mean, e.g. --profile ./{}",
          path, found_all[0], found_all[1], path)};
    found = found_all[0];
  } else {
    auto abs = resolve_path(path, current_dir());
    if (!abs) return Error{fmt::format("--profile: {}", abs.error().message)};
    found = *abs;
  }
  std::vector<std::string> chain, ids;
  return load_file(found, chain, ids);
}

}  // namespace

Result<Layer> load_profile_text(const std::string& text, const std::string& path) {
  auto abs = resolve_path(path, current_dir());
  if (!abs) return printable(Error{fmt::format("--profile: {}", abs.error().message)});
  std::vector<std::string> chain, ids;
  auto r = load_text(text, *abs, chain, ids);
  if (!r) return printable(r.error());
  return r;
}

Result<OwnKeys> load_profile_own(const std::string& text, const std::string& path) {
  std::vector<std::string> chain, ids;
  OwnKeys own;
  auto r = load_text(text, path, chain, ids, &own.extends);
  if (!r) return printable(r.error());
  own.layer = std::move(*r);
  return own;
}

std::string toml_quote(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", unsigned(c));
        else
          out += ch;
    }
  }
  out += '"';
  return out;
}

std::string dump_profile(const Config& c) {
  std::string out =
      "# Effective childflow profile (childflow --dump-profile).\n"
      "# Load it again with: childflow --profile FILE [-- COMMAND...]\n";
  for (const Setting& s : settings()) {
    if (!s.dump) continue;
    auto v = s.dump(c);
    if (!v) continue;
    if (s.secret && !c.show_secrets)
      out += fmt::format("# {} = (redacted: --dump-profile --show-secrets prints it)\n", s.key);
    else
      out += fmt::format("{} = {}\n", s.key, *v);
  }
  return out;
}

}  // namespace cf::config
