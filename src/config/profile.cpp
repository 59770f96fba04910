// TOML profiles: load, extends, overlay, apply, dump. See profile.hpp for the
// theory of operation.
#include "config/profile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <functional>
#include <map>
#include <toml++/toml.h>

#include "common/unique_fd.hpp"
#include "config/values.hpp"

namespace cf::config {

namespace {

constexpr size_t kMaxProfileBytes = 1 << 20;
constexpr size_t kMaxDepth = 64;

// What a key handler needs: the node, the layer to fill, and the directory of
// the profile for relative paths. Returns an error text (no prefix) and the
// line it refers to (an array element may be on another line than its key).
struct KeyError {
  std::string text;
  long line = 0;  // 0: the key's own line
};
using Handler = std::function<std::optional<KeyError>(const toml::node&, ProfileLayer&,
                                                      const std::string& dir)>;

long line_of(const toml::node& n) { return long(n.source().begin.line); }

template <class T, class Parse>
Handler string_key(std::optional<T> ProfileLayer::*field, Parse parse) {
  return [field, parse](const toml::node& n, ProfileLayer& l,
                        const std::string&) -> std::optional<KeyError> {
    auto* s = n.as_string();
    if (!s) return KeyError{"expected a string"};
    auto r = parse(std::string_view(s->get()));
    if (failed(r)) return KeyError{error_of(r)};
    l.*field = value_of(r);
    return std::nullopt;
  };
}

Handler path_key(std::optional<std::string> ProfileLayer::*field, bool must_be_readable) {
  return [field, must_be_readable](const toml::node& n, ProfileLayer& l,
                                   const std::string& dir) -> std::optional<KeyError> {
    auto* s = n.as_string();
    if (!s) return KeyError{"expected a string (a path)"};
    auto r = resolve_path(s->get(), dir);
    if (failed(r)) return KeyError{error_of(r)};
    if (must_be_readable) {
      auto readable = check_readable_file(value_of(r));
      if (failed(readable)) return KeyError{error_of(readable)};
    }
    l.*field = value_of(r);
    return std::nullopt;
  };
}

Handler bool_key(std::optional<bool> ProfileLayer::*field) {
  return [field](const toml::node& n, ProfileLayer& l,
                 const std::string&) -> std::optional<KeyError> {
    auto* b = n.as_boolean();
    if (!b) return KeyError{"expected a boolean (true or false)"};
    l.*field = b->get();
    return std::nullopt;
  };
}

template <class T, class Parse>
Handler list_key(std::optional<std::vector<T>> ProfileLayer::*field, Parse parse) {
  return [field, parse](const toml::node& n, ProfileLayer& l,
                        const std::string&) -> std::optional<KeyError> {
    auto* a = n.as_array();
    if (!a) return KeyError{"expected an array of strings"};
    std::vector<T> out;
    size_t index = 0;
    for (const toml::node& el : *a) {
      ++index;
      auto* s = el.as_string();
      if (!s)
        return KeyError{fmt::format("element {}: expected a string", index), line_of(el)};
      auto r = parse(std::string_view(s->get()));
      if (failed(r))
        return KeyError{fmt::format("element {}: {}", index, error_of(r)), line_of(el)};
      out.push_back(value_of(r));
    }
    l.*field = std::move(out);
    return std::nullopt;
  };
}

const std::map<std::string, Handler>& handlers() {
  static const std::map<std::string, Handler> table = [] {
    std::map<std::string, Handler> h;
    using L = ProfileLayer;
    auto any_string = [](std::string_view s) -> Parsed<std::string> { return std::string(s); };
    h["capture"] = path_key(&L::capture, false);
    h["capture_point"] = string_key(&L::capture_point, parse_capture_point);
    h["backend"] = string_key(&L::backend, parse_backend);
    h["dns"] = string_key(&L::dns, parse_dns);
    h["hosts_file"] = path_key(&L::hosts_file, true);
    h["proxy"] = string_key(&L::proxy, parse_proxy_uri);
    h["proxy_user"] = string_key(&L::proxy_user, parse_proxy_user);
    h["proxy_password"] = string_key(&L::proxy_password, parse_proxy_password);
    h["proxy_insecure"] = bool_key(&L::proxy_insecure);
    h["proxy_ca"] = path_key(&L::proxy_ca, true);
    h["summary"] = bool_key(&L::summary);
    h["summary_format"] = string_key(&L::summary_format, parse_text_or_json);
    h["flow_log"] = path_key(&L::flow_log, false);
    h["offline"] = bool_key(&L::offline);
    h["block_private"] = bool_key(&L::block_private);
    h["block_metadata"] = bool_key(&L::block_metadata);
    h["default_policy"] = string_key(&L::default_policy, parse_default_policy);
    h["allow_cidrs"] = list_key(&L::allow_cidrs, parse_cidr);
    h["deny_cidrs"] = list_key(&L::deny_cidrs, parse_cidr);
    h["allow_domains"] = list_key(&L::allow_domains, normalise_domain);
    h["allow_domains_exact"] = list_key(&L::allow_domains_exact, normalise_domain);
    h["deny_domains"] = list_key(&L::deny_domains, normalise_domain);
    h["deny_domains_exact"] = list_key(&L::deny_domains_exact, normalise_domain);
    h["proxy_only"] = bool_key(&L::proxy_only);
    h["fail_on_leak"] = bool_key(&L::fail_on_leak);
    h["iface"] = string_key(&L::iface, parse_iface);
    h["allow_host_loopback"] = bool_key(&L::allow_host_loopback);
    h["mtu"] = [](const toml::node& n, ProfileLayer& l,
                  const std::string&) -> std::optional<KeyError> {
      auto* i = n.as_integer();
      if (!i) return KeyError{"expected an integer"};
      auto r = check_mtu(i->get());
      if (failed(r)) return KeyError{error_of(r)};
      l.mtu = value_of(r);
      return std::nullopt;
    };
    h["command"] = list_key(&L::command, any_string);
    return h;
  }();
  return table;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string unknown_key_hint(const std::string& key) {
  if (key == "root")
    return "the backend is chosen with backend = \"rootful\" (`--root` is a flag only)";
  std::string best;
  size_t best_d = 4;
  std::string dashed = key;
  std::replace(dashed.begin(), dashed.end(), '-', '_');
  for (const auto& k : profile_keys()) {
    size_t d = edit_distance(dashed, k);
    if (d < best_d) best_d = d, best = k;
  }
  if (!best.empty()) return fmt::format("did you mean `{}`?", best);
  return "see docs/profile.md for the keys";
}

// Reads a whole file (at most kMaxProfileBytes).
std::variant<std::string, std::string> read_file(const std::string& path) {
  UniqueFd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (!fd) return std::variant<std::string, std::string>(
                std::in_place_index<1>, fmt::format("cannot read profile {}: {}", path,
                                                    std::strerror(errno)));
  struct stat st {};
  if (::fstat(fd.get(), &st) == 0 && S_ISDIR(st.st_mode))
    return std::variant<std::string, std::string>(
        std::in_place_index<1>, fmt::format("profile {} is a directory, not a file", path));
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::variant<std::string, std::string>(
          std::in_place_index<1>,
          fmt::format("cannot read profile {}: {}", path, std::strerror(errno)));
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > kMaxProfileBytes)
      return std::variant<std::string, std::string>(
          std::in_place_index<1>,
          fmt::format("profile {} is larger than 1 MiB; is it really a profile?", path));
  }
  return std::variant<std::string, std::string>(std::in_place_index<0>, std::move(out));
}

std::string identity_of(const std::string& path) {
  std::error_code ec;
  auto c = std::filesystem::weakly_canonical(path, ec);
  return ec ? path : c.string();
}

using Loaded = std::variant<ProfileLayer, std::string>;

Loaded load_text(const std::string& text, const std::string& path,
                 std::vector<std::string>& chain, std::vector<std::string>& ids);

Loaded load_file(const std::string& path, std::vector<std::string>& chain,
                 std::vector<std::string>& ids) {
  std::string id = identity_of(path);
  if (std::find(ids.begin(), ids.end(), id) != ids.end()) {
    std::string shown;
    for (const auto& p : chain) shown += p + " -> ";
    shown += path;
    return fmt::format("profile inheritance cycle: {}: remove one of these `extends`", shown);
  }
  if (chain.size() >= kMaxDepth)
    return fmt::format("profile {}: `extends` chain deeper than {} profiles", path, kMaxDepth);
  auto content = read_file(path);
  if (content.index() == 1) return std::get<1>(content);
  return load_text(std::get<0>(content), path, chain, ids);
}

Loaded load_text(const std::string& text, const std::string& path,
                 std::vector<std::string>& chain, std::vector<std::string>& ids) {
  toml::table table;
  try {
    table = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    std::string desc(e.description());
    std::replace(desc.begin(), desc.end(), '\n', ' ');
    return fmt::format("profile {} line {}: {}", path, e.source().begin.line, desc);
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

  ProfileLayer layer;
  std::optional<std::string> extends;
  long extends_line = 0;
  for (const Entry& e : entries) {
    long line = e.line > 0 ? e.line : line_of(*e.node);
    if (e.key == "extends") {
      auto* s = e.node->as_string();
      if (!s)
        return fmt::format("profile {} line {}: key `extends`: expected a string (a path)", path,
                           line);
      auto r = resolve_path(s->get(), dir);
      if (failed(r))
        return fmt::format("profile {} line {}: key `extends`: {}", path, line, error_of(r));
      extends = value_of(r);
      extends_line = line;
      continue;
    }
    auto h = handlers().find(e.key);
    if (h == handlers().end())
      return fmt::format("profile {} line {}: unknown key `{}`: {}", path, line, e.key,
                         unknown_key_hint(e.key));
    if (auto err = h->second(*e.node, layer, dir))
      return fmt::format("profile {} line {}: key `{}`: {}", path,
                         err->line > 0 ? err->line : line, e.key, err->text);
  }
  if (!extends) return layer;

  chain.push_back(path);
  ids.push_back(identity_of(path));
  std::string parent_path = *extends;
  std::error_code ec;
  if (!std::filesystem::exists(parent_path, ec)) {
    return fmt::format("profile {} line {}: key `extends`: {} does not exist", path,
                       extends_line, parent_path);
  }
  Loaded parent = load_file(parent_path, chain, ids);
  chain.pop_back();
  ids.pop_back();
  if (parent.index() == 1) return parent;
  ProfileLayer merged = std::get<ProfileLayer>(std::move(parent));
  overlay(merged, layer);
  return merged;
}

void append_string(std::string& out, const char* key, const std::string& v) {
  out += fmt::format("{} = {}\n", key, toml_quote(v));
}

template <class T, class Show>
void append_list(std::string& out, const char* key, const std::vector<T>& v, Show show) {
  if (v.empty()) {
    out += fmt::format("{} = []\n", key);
    return;
  }
  out += fmt::format("{} = [\n", key);
  for (const T& item : v) out += fmt::format("  {},\n", toml_quote(show(item)));
  out += "]\n";
}

const char* toml_bool(bool b) { return b ? "true" : "false"; }

}  // namespace

const std::vector<std::string>& profile_keys() {
  static const std::vector<std::string> keys = {
      "extends",       "capture",          "capture_point",  "backend",
      "dns",           "hosts_file",       "proxy",          "proxy_user",
      "proxy_password", "proxy_insecure", "proxy_ca",  "summary",        "summary_format",
      "flow_log",      "offline",          "block_private",  "block_metadata",
      "default_policy", "allow_cidrs",     "deny_cidrs",     "allow_domains",
      "allow_domains_exact", "deny_domains", "deny_domains_exact", "proxy_only",
      "fail_on_leak",  "iface",            "allow_host_loopback", "mtu",
      "command"};
  return keys;
}

void overlay(ProfileLayer& base, const ProfileLayer& top) {
#define CF_OVERLAY(f) \
  if (top.f) base.f = top.f;
  CF_OVERLAY(backend)
  CF_OVERLAY(capture)
  CF_OVERLAY(capture_point)
  CF_OVERLAY(dns)
  CF_OVERLAY(hosts_file)
  CF_OVERLAY(iface)
  CF_OVERLAY(summary)
  CF_OVERLAY(summary_format)
  CF_OVERLAY(flow_log)
  CF_OVERLAY(proxy)
  CF_OVERLAY(proxy_user)
  CF_OVERLAY(proxy_password)
  CF_OVERLAY(proxy_insecure)
  CF_OVERLAY(proxy_ca)
  CF_OVERLAY(offline)
  CF_OVERLAY(block_private)
  CF_OVERLAY(block_metadata)
  CF_OVERLAY(default_policy)
  CF_OVERLAY(allow_cidrs)
  CF_OVERLAY(deny_cidrs)
  CF_OVERLAY(allow_domains)
  CF_OVERLAY(allow_domains_exact)
  CF_OVERLAY(deny_domains)
  CF_OVERLAY(deny_domains_exact)
  CF_OVERLAY(proxy_only)
  CF_OVERLAY(fail_on_leak)
  CF_OVERLAY(allow_host_loopback)
  CF_OVERLAY(mtu)
  CF_OVERLAY(command)
#undef CF_OVERLAY
}

void apply(const ProfileLayer& l, Config& c) {
  if (l.backend) c.backend = *l.backend;
  if (l.capture) c.capture = l.capture;
  if (l.capture_point) c.capture_point = *l.capture_point;
  if (l.dns) c.dns = l.dns;
  if (l.hosts_file) c.hosts_file = l.hosts_file;
  if (l.iface) c.iface = l.iface;
  if (l.summary) c.summary = *l.summary;
  if (l.summary_format) c.summary_format = *l.summary_format;
  if (l.flow_log) c.flow_log = l.flow_log;
  if (l.proxy) c.proxy = l.proxy;
  if (l.proxy_user) c.proxy_user = l.proxy_user;
  if (l.proxy_password) c.proxy_password = l.proxy_password;
  if (l.proxy_insecure) c.proxy_insecure = *l.proxy_insecure;
  if (l.proxy_ca) c.proxy_ca = l.proxy_ca;
  if (l.offline) c.offline = *l.offline;
  if (l.block_private) c.block_private = *l.block_private;
  if (l.block_metadata) c.block_metadata = *l.block_metadata;
  if (l.default_policy) c.default_policy = *l.default_policy;
  if (l.allow_cidrs) c.allow_cidrs = *l.allow_cidrs;
  if (l.deny_cidrs) c.deny_cidrs = *l.deny_cidrs;
  if (l.allow_domains) c.allow_domains = *l.allow_domains;
  if (l.allow_domains_exact) c.allow_domains_exact = *l.allow_domains_exact;
  if (l.deny_domains) c.deny_domains = *l.deny_domains;
  if (l.deny_domains_exact) c.deny_domains_exact = *l.deny_domains_exact;
  if (l.proxy_only) c.proxy_only = *l.proxy_only;
  if (l.fail_on_leak) c.fail_on_leak = *l.fail_on_leak;
  if (l.allow_host_loopback) c.allow_host_loopback = *l.allow_host_loopback;
  if (l.mtu) c.mtu = *l.mtu;
  if (l.command) c.command = *l.command;
}

std::variant<ProfileLayer, std::string> load_profile(const std::string& path) {
  auto abs = resolve_path(path, current_dir());
  if (failed(abs)) return fmt::format("--profile: {}", error_of(abs));
  std::vector<std::string> chain, ids;
  return load_file(value_of(abs), chain, ids);
}

std::variant<ProfileLayer, std::string> load_profile_text(const std::string& text,
                                                          const std::string& path) {
  auto abs = resolve_path(path, current_dir());
  if (failed(abs)) return fmt::format("--profile: {}", error_of(abs));
  std::vector<std::string> chain, ids;
  return load_text(text, value_of(abs), chain, ids);
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
  if (c.capture) append_string(out, "capture", *c.capture);
  append_string(out, "capture_point", name(c.capture_point));
  append_string(out, "backend", name(c.backend));
  if (c.dns) append_string(out, "dns", c.dns->str());
  if (c.hosts_file) append_string(out, "hosts_file", *c.hosts_file);
  if (c.proxy) append_string(out, "proxy", c.proxy->str());
  if (c.proxy_user) append_string(out, "proxy_user", *c.proxy_user);
  if (c.proxy_password) append_string(out, "proxy_password", *c.proxy_password);
  out += fmt::format("proxy_insecure = {}\n", toml_bool(c.proxy_insecure));
  if (c.proxy_ca) append_string(out, "proxy_ca", *c.proxy_ca);
  out += fmt::format("summary = {}\n", toml_bool(c.summary));
  append_string(out, "summary_format", name(c.summary_format));
  if (c.flow_log) append_string(out, "flow_log", *c.flow_log);
  out += fmt::format("offline = {}\n", toml_bool(c.offline));
  out += fmt::format("block_private = {}\n", toml_bool(c.block_private));
  out += fmt::format("block_metadata = {}\n", toml_bool(c.block_metadata));
  append_string(out, "default_policy", name(c.default_policy));
  auto cidr = [](const Cidr& x) { return x.str(); };
  auto same = [](const std::string& x) { return x; };
  append_list(out, "allow_cidrs", c.allow_cidrs, cidr);
  append_list(out, "deny_cidrs", c.deny_cidrs, cidr);
  append_list(out, "allow_domains", c.allow_domains, same);
  append_list(out, "allow_domains_exact", c.allow_domains_exact, same);
  append_list(out, "deny_domains", c.deny_domains, same);
  append_list(out, "deny_domains_exact", c.deny_domains_exact, same);
  out += fmt::format("proxy_only = {}\n", toml_bool(c.proxy_only));
  out += fmt::format("fail_on_leak = {}\n", toml_bool(c.fail_on_leak));
  if (c.iface) append_string(out, "iface", *c.iface);
  out += fmt::format("allow_host_loopback = {}\n", toml_bool(c.allow_host_loopback));
  out += fmt::format("mtu = {}\n", c.mtu);
  append_list(out, "command", c.command, same);
  return out;
}

}  // namespace cf::config
