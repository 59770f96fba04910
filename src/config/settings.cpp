// The settings table (see settings.hpp). The rows are at the bottom, in
// table(); the row makers above them turn a field and a parser into the
// Setting's behaviour.
#include "config/settings.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "config/profile.hpp"
#include "config/values.hpp"

namespace cf::config {

namespace {

// A row's identity and documentation; the makers add the behaviour.
struct Row {
  std::string_view flag;
  char short_flag;
  std::string_view key;
  std::string_view value_name;
  Group group;
  std::string_view help;
  bool hidden = false;
};

Setting start(const Row& r, Shape shape, size_t field) {
  Setting s;
  s.flag = r.flag;
  s.short_flag = r.short_flag;
  s.key = r.key;
  s.shape = shape;
  s.value_name = r.value_name;
  s.group = r.group;
  s.help = r.help;
  s.hidden = r.hidden;
  s.field = field;
  return s;
}

template <class M>
void copy_field(Setting& s, M Config::*field) {
  s.copy = [field](const Config& from, Config& to) { to.*field = from.*field; };
}

template <class T> struct Unwrap { using type = T; };
template <class T> struct Unwrap<std::optional<T>> { using type = T; };

// A value checked by `parse` (a values.hpp parser), shown in the dump by
// `show`. M is T or std::optional<T>.
template <class M, class Parse, class Show>
Setting value(const Row& r, M Config::*field, Parse parse, Show show) {
  Setting s = start(r, Shape::Value, field_offset(field));
  s.parse = [field, parse](Layer& l, std::string_view text, const std::string&) -> Status {
    auto v = parse(text);
    if (!v) return v.error();
    l.set(field, std::move(*v));
    return {};
  };
  copy_field(s, field);
  if (!r.key.empty())
    s.dump = [field, show](const Config& c) -> std::optional<std::string> {
      const M& v = c.*field;
      if constexpr (std::is_same_v<M, typename Unwrap<M>::type>) {
        return toml_quote(show(v));
      } else {
        if (!v) return std::nullopt;
        return toml_quote(show(*v));
      }
    };
  return s;
}

// A path: made absolute against the flag's or profile's directory, and
// checked readable when the run will read it.
enum class Check : uint8_t { None, Readable, HostsFile };
Setting path(const Row& r, std::optional<std::string> Config::*field, Check check) {
  Setting s = start(r, Shape::Value, field_offset(field));
  s.path = true;
  s.parse = [field, check](Layer& l, std::string_view text, const std::string& dir) -> Status {
    auto p = resolve_path(text, dir);
    if (!p) return p.error();
    if (check == Check::Readable) {
      auto readable = check_readable_file(*p);
      if (!readable) return readable.error();
    }
    if (check == Check::HostsFile) {
      auto valid = check_hosts_file(*p);
      if (!valid) return valid.error();
    }
    l.set(field, std::move(*p));
    return {};
  };
  copy_field(s, field);
  if (!r.key.empty())
    s.dump = [field](const Config& c) -> std::optional<std::string> {
      if (!(c.*field)) return std::nullopt;
      return toml_quote(*(c.*field));
    };
  return s;
}

// A switch for a bool field: the flag sets it, the key says true or false.
Setting toggle(const Row& r, bool Config::*field) {
  Setting s = start(r, Shape::Switch, field_offset(field));
  s.parse_bool = [field](Layer& l, bool b) -> Status {
    l.set(field, b);
    return {};
  };
  copy_field(s, field);
  if (!r.key.empty())
    s.dump = [field](const Config& c) -> std::optional<std::string> {
      return std::string(c.*field ? "true" : "false");
    };
  return s;
}

// A flag that sets a field to one value (--root, --doctor): command line only.
template <class M>
Setting sets(const Row& r, M Config::*field, M to) {
  Setting s = start(r, Shape::Switch, field_offset(field));
  s.parse_bool = [field, to](Layer& l, bool b) -> Status {
    if (b) l.set(field, to);
    return {};
  };
  copy_field(s, field);
  return s;
}

// A list: each flag or array element is parsed and appended.
template <class T, class Parse, class Show>
Setting list(const Row& r, std::vector<T> Config::*field, Parse parse, Show show) {
  Setting s = start(r, Shape::List, field_offset(field));
  s.parse = [field, parse](Layer& l, std::string_view text, const std::string&) -> Status {
    auto v = parse(text);
    if (!v) return v.error();
    std::vector<T> items = l.values.*field;
    if (!l.has(field)) items.clear();
    items.push_back(std::move(*v));
    l.set(field, std::move(items));
    return {};
  };
  copy_field(s, field);
  if (!r.key.empty())
    s.dump = [field, show](const Config& c) -> std::optional<std::string> {
      const auto& v = c.*field;
      if (v.empty()) return std::string("[]");
      std::string out = "[\n";
      for (const T& item : v) out += fmt::format("  {},\n", toml_quote(show(item)));
      return out + "]";
    };
  return s;
}

Result<std::string> any_text(std::string_view s) { return std::string(s); }
Result<std::string> domain(std::string_view s) { return normalise_domain(s); }
auto same = [](const std::string& s) { return s; };
auto by_str = [](const auto& v) { return v.str(); };
auto by_name = [](auto v) { return std::string(name(v)); };

std::vector<Setting> table() {
  using C = Config;
  const Group kModes = Group::Modes, kSandbox = Group::Sandbox, kOutput = Group::Output,
              kProxy = Group::Proxy, kPolicy = Group::Policy;
  std::vector<Setting> t;

  // Modes (command line only).
  {
    Setting s = start({"profile", 0, "", "FILE", kModes,
                       "Load a TOML profile (keys mirror the long flags)"},
                      Shape::Value, kNoField);
    s.path = true;
    s.parse = [](Layer& l, std::string_view text, const std::string&) -> Status {
      l.profile = std::string(text);  // load_profile resolves it
      return {};
    };
    t.push_back(std::move(s));
  }
  t.push_back(sets({"dump-profile", 0, "", "", kModes,
                    "Print the effective merged profile as TOML on stdout, run nothing"},
                   &C::mode, Mode::DumpProfile));
  t.push_back(sets({"show-secrets", 0, "", "", kModes,
                    "With --dump-profile: print passwords instead of redacting them"},
                   &C::show_secrets, true));
  t.push_back(sets({"doctor", 0, "", "", kModes, "Diagnose the host for the selected backend"},
                   &C::mode, Mode::Doctor));
  t.push_back(value({"doctor-format", 0, "", "text|json", kModes,
                     "Doctor output format (default: text)"},
                    &C::doctor_format, parse_text_or_json, by_name));
  {
    Setting s = path({"report", 0, "", "FLOW.jsonl", kModes,
                      "Read a flow log (- for standard input) and print a report instead of "
                      "running anything; exit 1 if the file holds no flow-log event"},
                     &C::report, Check::Readable);
    auto read = s.parse;
    s.parse = [read](Layer& l, std::string_view text, const std::string& dir) -> Status {
      // `-` is standard input (zcat log.jsonl.gz | childflow --report -).
      Status st = text == "-" ? (l.set(&C::report, std::string("/dev/stdin")), Status{})
                              : read(l, text, dir);
      if (st) l.set(&C::mode, Mode::Report);
      return st;
    };
    t.push_back(std::move(s));
  }
  t.push_back(value({"report-format", 0, "", "text|markdown|json|html", kModes,
                     "Report output format (default: text); html is one self-contained page "
                     "with a timeline of the flows"},
                    &C::report_format, parse_report_format, by_name));
  t.push_back(sets({"cleanup", 0, "", "", kModes,
                    "Remove host state left by killed rootful runs in this network namespace "
                    "(as root)"},
                   &C::mode, Mode::Cleanup));

  // The profile keys, in the profile format's order.
  t.push_back(path({"capture", 'c', "capture", "FILE", kOutput,
                    "Write the tree's packets as pcapng"},
                   &C::capture, Check::None));
  t.push_back(value({"capture-point", 'C', "capture_point", "child|egress|wire-egress|both",
                     kOutput,
                     "Which view --capture writes (default: child; wire-egress needs root: "
                     "CAP_NET_RAW)"},
                    &C::capture_point, parse_capture_point, by_name));
  t.push_back(sets({"root", 0, "", "", kSandbox,
                    "Use the rootful backend (as root): a veth pair, kernel forwarding and an "
                    "nftables table instead of the userspace engine"},
                   &C::backend, Backend::Rootful));
  t.push_back(value({"", 0, "backend", "", kSandbox, ""}, &C::backend, parse_backend, by_name));
  // The Rust childflow's spelling, kept for its scripts: rootless-internal
  // (the default) or rootful (--root). Not in --help.
  t.push_back(value({"network-backend", 0, "", "BACKEND", kSandbox, "", true}, &C::backend,
                    parse_backend, by_name));
  t.push_back(value({"dns", 'd', "dns", "ADDRESS", kSandbox,
                     "Upstream resolver (IPv4 or IPv6) for the tree's DNS"},
                    &C::dns, parse_dns, by_str));
  t.push_back(path({"hosts-file", 0, "hosts_file", "FILE", kSandbox,
                    "/etc/hosts-format entries that take precedence inside the tree"},
                   &C::hosts_file, Check::HostsFile));
  t.push_back(toggle({"as-root", 0, "as_root", "", kSandbox,
                      "Run the command as root of the tree's user namespace, with every id "
                      "(for ip, raw sockets, package managers); default: as yourself, with no "
                      "capabilities"},
                     &C::as_root));
  t.push_back(value({"proxy", 'p', "proxy", "URI", kProxy,
                     "Upstream proxy: http://, https:// or socks5:// HOST:PORT (IPv6 host in "
                     "brackets)"},
                    &C::proxy, parse_proxy_uri, by_str));
  t.push_back(value({"proxy-user", 'U', "proxy_user", "USER", kProxy,
                     "Proxy user (needs a password: --proxy-password-file, "
                     "CHILDFLOW_PROXY_PASSWORD or -P)"},
                    &C::proxy_user, parse_proxy_user, same));
  {
    // -P, CHILDFLOW_PROXY_PASSWORD and --proxy-password-file are one setting:
    // both rows fill proxy_password (see settings.hpp), and the file's row
    // also records the file, which -P forgets.
    auto copy_password = [](const Config& from, Config& to) {
      to.proxy_password = from.proxy_password;
      to.proxy_password_file = from.proxy_password_file;
    };
    Setting s = value({"proxy-password", 'P', "proxy_password", "PASSWORD", kProxy,
                       "Proxy password (needs --proxy-user); other users see it in the "
                       "process list for a moment: prefer --proxy-password-file or "
                       "CHILDFLOW_PROXY_PASSWORD"},
                      &C::proxy_password, parse_proxy_password, same);
    auto set = s.parse;
    s.parse = [set](Layer& l, std::string_view text, const std::string& dir) -> Status {
      Status st = set(l, text, dir);
      if (st) l.values.proxy_password_file.reset();
      return st;
    };
    s.copy = copy_password;
    s.dump = [](const Config& c) -> std::optional<std::string> {
      if (!c.proxy_password || c.proxy_password_file) return std::nullopt;
      return toml_quote(*c.proxy_password);
    };
    s.secret = true;
    s.env = "CHILDFLOW_PROXY_PASSWORD";
    s.env_needs = field_offset(&C::proxy_user);  // an exported password alone changes nothing
    t.push_back(std::move(s));

    Setting f = start({"proxy-password-file", 0, "proxy_password_file", "FILE", kProxy,
                       "Read the proxy password from FILE: a regular file of at most 4 KiB "
                       "holding the password, one trailing newline dropped"},
                      Shape::Value, field_offset(&C::proxy_password));
    f.path = true;
    f.parse = [](Layer& l, std::string_view text, const std::string& dir) -> Status {
      auto p = resolve_path(text, dir);
      if (!p) return p.error();
      auto password = read_password_file(*p);
      if (!password) return password.error();
      l.set(&C::proxy_password, std::move(*password));
      l.values.proxy_password_file = std::move(*p);
      return {};
    };
    f.copy = copy_password;
    f.dump = [](const Config& c) -> std::optional<std::string> {
      if (!c.proxy_password_file) return std::nullopt;
      return toml_quote(*c.proxy_password_file);
    };
    t.push_back(std::move(f));
  }
  t.push_back(toggle({"proxy-insecure", 0, "proxy_insecure", "", kProxy,
                      "Accept an untrusted certificate from an https:// proxy (hostname still "
                      "checked)"},
                     &C::proxy_insecure));
  t.push_back(path({"proxy-ca", 0, "proxy_ca", "FILE", kProxy,
                    "PEM CA certificates trusted for an https:// proxy, besides the system "
                    "store"},
                   &C::proxy_ca, Check::Readable));
  t.push_back(value({"proxy-dns", 0, "proxy_dns", "local|remote", kProxy,
                     "Who resolves the tree's names: local (the resolver; the proxy gets "
                     "addresses) or remote (the proxy gets names) (default: local)"},
                    &C::proxy_dns, parse_proxy_dns, by_name));
  t.push_back(toggle({"summary", 0, "summary", "", kOutput, "Print a post-run summary on stderr"},
                     &C::summary));
  t.push_back(value({"summary-format", 0, "summary_format", "text|json", kOutput,
                     "Summary format (default: text)"},
                    &C::summary_format, parse_text_or_json, by_name));
  {
    Setting s = start({"verbose", 'v', "", "", kOutput,
                       "Print each denial, proxy failure and connect error on stderr as it "
                       "happens; -vv adds every flow"},
                      Shape::Switch, field_offset(&C::verbosity));
    s.repeatable = true;
    s.parse_bool = [](Layer& l, bool b) -> Status {
      // -v, -vv; more v's change nothing (3 is CHILDFLOW_DEBUG's).
      int next = l.has(&C::verbosity) ? l.values.verbosity + 1 : 1;
      if (b) l.set(&C::verbosity, int8_t(std::min(next, 2)));
      return {};
    };
    copy_field(s, &C::verbosity);
    t.push_back(std::move(s));
  }
  t.push_back(sets({"quiet", 'q', "", "", kOutput,
                    "Print nothing but errors (and what --summary asks for)"},
                   &C::verbosity, int8_t(-1)));
  t.push_back(path({"flow-log", 0, "flow_log", "FILE", kOutput,
                    "Write flow events as JSON Lines"},
                   &C::flow_log, Check::None));
  {
    Setting s = path({"learn", 0, "", "FILE", kOutput,
                      "After the run, write a profile to FILE that allows what the tree used "
                      "(names, addresses, the run's DNS and proxy) and denies the rest; an "
                      "existing profile is merged into"},
                     &C::learn, Check::None);
    s.dump = nullptr;  // the command line's alone: never in a profile
    t.push_back(std::move(s));
  }
  t.push_back(toggle({"offline", 0, "offline", "", kPolicy,
                      "Deny every outbound packet, DNS included"},
                     &C::offline));
  t.push_back(toggle({"block-private", 0, "block_private", "", kPolicy,
                      "Deny private, loopback, link-local, CGNAT and ULA destinations"},
                     &C::block_private));
  t.push_back(toggle({"block-metadata", 0, "block_metadata", "", kPolicy,
                      "Deny cloud metadata endpoints"},
                     &C::block_metadata));
  t.push_back(value({"default-policy", 0, "default_policy", "allow|deny", kPolicy,
                     "Verdict when no rule matches (default: allow)"},
                    &C::default_policy, parse_default_policy, by_name));
  t.push_back(list({"allow-cidr", 0, "allow_cidrs", "CIDR", kPolicy,
                    "Allow an IPv4/IPv6 prefix (repeatable)"},
                   &C::allow_cidrs, parse_cidr, by_str));
  t.push_back(list({"deny-cidr", 0, "deny_cidrs", "CIDR", kPolicy,
                    "Deny an IPv4/IPv6 prefix (repeatable)"},
                   &C::deny_cidrs, parse_cidr, by_str));
  t.push_back(list({"allow-domain", 0, "allow_domains", "NAME", kPolicy,
                    "Allow a name and its subdomains (repeatable)"},
                   &C::allow_domains, domain, same));
  t.push_back(list({"allow-domain-exact", 0, "allow_domains_exact", "NAME", kPolicy,
                    "Allow exactly that name (repeatable)"},
                   &C::allow_domains_exact, domain, same));
  t.push_back(list({"deny-domain", 0, "deny_domains", "NAME", kPolicy,
                    "Deny a name and its subdomains (repeatable)"},
                   &C::deny_domains, domain, same));
  t.push_back(list({"deny-domain-exact", 0, "deny_domains_exact", "NAME", kPolicy,
                    "Deny exactly that name (repeatable)"},
                   &C::deny_domains_exact, domain, same));
  t.push_back(toggle({"no-sniff-names", 0, "no_sniff_names", "", kPolicy,
                      "Do not judge TCP connections by the TLS server_name or HTTP Host "
                      "they send (domain rules then judge addresses only)"},
                     &C::no_sniff_names));
  t.push_back(toggle({"proxy-only", 0, "proxy_only", "", kProxy,
                      "Every outbound connection must go through --proxy"},
                     &C::proxy_only));
  t.push_back(toggle({"fail-on-leak", 0, "fail_on_leak", "", kPolicy,
                      "Exit 1 when policy blocked something but the command exited 0"},
                     &C::fail_on_leak));
  t.push_back(value({"iface", 'i', "iface", "IFACE", kSandbox,
                     "Pin the tree's direct egress to this host interface (rootful only)"},
                    &C::iface, parse_iface, same));
  t.push_back(toggle({"allow-host-loopback", 0, "allow_host_loopback", "", kSandbox,
                      "Let the tree reach the host's loopback services at the gateway address "
                      "(subject to policy; rootless only)"},
                     &C::allow_host_loopback));
  {
    Setting s = value({"mtu", 0, "mtu", "N", kSandbox,
                       "MTU of the tree's tap0, 576 to 65520 (default: 65520)"},
                      &C::mtu, parse_mtu, [](uint32_t) { return std::string(); });
    s.parse_int = [](Layer& l, int64_t v) -> Status {
      auto m = check_mtu(v);
      if (!m) return m.error();
      l.set(&C::mtu, *m);
      return {};
    };
    s.dump = [](const Config& c) -> std::optional<std::string> { return std::to_string(c.mtu); };
    t.push_back(std::move(s));
  }
  // The command: after the options on the command line, a key in profiles.
  t.push_back(list({"", 0, "command", "", kModes, ""}, &C::command, any_text, same));
  return t;
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

// The closest of `names` within 3 edits, or "".
template <class Names>
std::string closest(std::string_view word, const Names& names) {
  std::string best;
  size_t best_d = 4;
  for (std::string_view n : names) {
    if (n.empty()) continue;
    size_t d = edit_distance(word, n);
    if (d < best_d) best_d = d, best = std::string(n);
  }
  return best;
}

}  // namespace

const char* title(Group g) {
  switch (g) {
    case Group::Modes: return "Modes";
    case Group::Sandbox: return "Sandbox";
    case Group::Output: return "Capture and logs";
    case Group::Proxy: return "Proxy";
    case Group::Policy: return "Policy";
  }
  return "";
}

std::string Setting::flag_names() const {
  std::string n = long_flag();
  if (short_flag) n = fmt::format("-{},{}", short_flag, n);
  return n;
}

std::span<const Setting> settings() {
  static const std::vector<Setting> t = table();
  return t;
}

const Setting* find_flag(std::string_view long_name) {
  for (const Setting& s : settings())
    if (!s.flag.empty() && s.flag == long_name) return &s;
  return nullptr;
}

const Setting* find_short_flag(char c) {
  for (const Setting& s : settings())
    if (s.short_flag && s.short_flag == c) return &s;
  return nullptr;
}

const Setting* find_key(std::string_view key) {
  for (const Setting& s : settings())
    if (!s.key.empty() && s.key == key) return &s;
  return nullptr;
}

std::string flag_suggestion(std::string_view long_name) {
  std::vector<std::string_view> flags{"help", "version"};
  for (const Setting& s : settings())
    if (!s.hidden) flags.push_back(s.flag);
  std::string best = closest(long_name, flags);
  return best.empty() ? best : fmt::format("did you mean `--{}`?", best);
}

std::string key_suggestion(std::string_view key) {
  std::string underscored(key);
  std::replace(underscored.begin(), underscored.end(), '-', '_');
  std::vector<std::string_view> keys{"extends"};
  for (const Setting& s : settings()) keys.push_back(s.key);
  std::string best = closest(underscored, keys);
  return best.empty() ? best : fmt::format("did you mean `{}`?", best);
}

size_t Layer::slot(size_t field) {
  // Distinct fields in table order; --profile (kNoField) has none.
  static const std::vector<size_t> fields = [] {
    std::vector<size_t> f;
    for (const Setting& s : settings())
      if (s.field != kNoField && std::find(f.begin(), f.end(), s.field) == f.end())
        f.push_back(s.field);
    CF_CHECK(f.size() <= 64);  // the width of Layer::set_
    return f;
  }();
  auto it = std::find(fields.begin(), fields.end(), field);
  CF_CHECK(it != fields.end());  // a field no row describes
  return size_t(it - fields.begin());
}

void Layer::overlay(const Layer& top) {
  for (const Setting& s : settings())
    if (top.has(s)) {
      s.copy(top.values, values);
      mark(s.field);
    }
  if (top.profile) profile = top.profile;
}

Config apply(const Layer& merged) {
  Layer out;
  out.overlay(merged);
  return out.values;
}

}  // namespace cf::config
