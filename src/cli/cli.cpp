// The command line: argv -> one validated Config.
//
// Theory of operation
//   1. split_argv walks argv like getopt: options (and the values of options
//      that take one) up to the first non-option word or `--`; that word and
//      everything after it is the command, untouched (`childflow sh -c 'echo
//      -p'` runs `sh -c 'echo -p'`). An option that takes a value always
//      takes the next word (or what follows `=`), so a value that starts
//      with '-' (a password, say) or is empty stays a value. Unknown options
//      and missing values are reported here; -h / -V win as soon as seen.
//   2. The options CLI11 knows (it also renders --help) receive the values
//      as results and CLI11 stores them into plain strings and flags; its
//      exceptions are rewritten into our one-line form.
//   3. Every given value is parsed by config/values.hpp (the same parsers the
//      profile keys use) into the command-line ProfileLayer; paths are made
//      absolute against the current directory.
//   4. --profile is loaded (with its extends chain) and the command-line layer
//      is overlaid on it; the result is applied to a default Config.
//   5. Mode checks (exactly one of run/--doctor/--report/--dump-profile/
//      --cleanup, a command when running, none for --report ...) and the
//      cross-field checks of cli/validate.hpp.
//   Any failure prints exactly one line, `childflow: error: ...`, on stderr
//   and returns exit code 2. Nothing here creates a file or directory.
#include "cli/cli.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "cli/validate.hpp"
#include "config/profile.hpp"
#include "config/values.hpp"

#ifndef CHILDFLOW_VERSION
#define CHILDFLOW_VERSION "0.0.0"
#endif

namespace cf::cli {

namespace {

using config::ProfileLayer;

// Raw values as CLI11 hands them over; parsed afterwards by config/values.
struct RawFlags {
  std::string profile, capture, capture_point, doctor_format, report, report_format, dns,
      hosts_file, proxy, proxy_user, proxy_password, summary_format, flow_log, default_policy,
      iface, mtu, proxy_ca;
  std::vector<std::string> allow_cidr, deny_cidr, allow_domain, deny_domain,
      allow_domain_exact, deny_domain_exact;
  bool dump_profile = false, root = false, doctor = false, proxy_insecure = false,
       summary = false, offline = false, block_private = false, block_metadata = false,
       proxy_only = false, fail_on_leak = false, allow_host_loopback = false, cleanup = false;
};

class UsageFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App*, std::string) const override {
    return "Usage:\n"
           "  childflow [OPTIONS] [--] COMMAND [ARGS...]\n"
           "  childflow --doctor [--root] [--doctor-format text|json]\n"
           "  childflow --report FLOW.jsonl [--report-format text|markdown|json]\n"
           "  childflow --profile FILE [--dump-profile]\n"
           "  childflow --cleanup\n\n"
           "Run COMMAND and all of its descendants in a network sandbox of their own and\n"
           "control that tree's DNS, /etc/hosts, upstream proxy, outbound policy, packet\n"
           "capture and flow log. Nothing outside the tree is affected.\n";
  }
};

const char* kFooter =
    "Everything from the first word that is not an option (or after `--`) is the\n"
    "command and is passed through untouched.\n"
    "Profiles: TOML files whose keys mirror the long flags with `_` (see\n"
    "docs/profile.md); flags override the profile, lists and the command replace it.\n"
    "Exit codes: the command's own; 128+N if it was killed by signal N; 1 for\n"
    "--fail-on-leak or a runtime failure; 2 for a bad command line or profile;\n"
    "126/127 when the command cannot be executed / is not found.\n"
    "Environment: CHILDFLOW_FORCE_FALLBACK=FEATURE[,...] runs the path childflow\n"
    "takes on kernels without FEATURE (tcp_peek_off, clone3, mount_setattr, or\n"
    "all); --doctor shows the path in use (docs/kernel.md). Linux 5.10 or newer\n"
    "is supported.";

void build_app(CLI::App& app, RawFlags& f) {
  app.formatter(std::make_shared<UsageFormatter>());
  app.get_formatter()->column_width(34);
  app.footer(kFooter);
  app.set_help_flag("-h,--help", "Print this help and exit");
  app.set_version_flag("-V,--version", std::string("childflow ") + CHILDFLOW_VERSION,
                       "Print the version and exit");

  auto take_last = CLI::MultiOptionPolicy::TakeLast;
  auto opt = [&](const char* names, std::string& target, const char* type,
                 const char* help, const char* group) {
    app.add_option(names, target, help)->type_name(type)->multi_option_policy(take_last)
        ->group(group);
  };
  auto list = [&](const char* names, std::vector<std::string>& target, const char* type,
                  const char* help) {
    app.add_option(names, target, help)->type_name(type)->group("Policy")->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  };
  auto flag = [&](const char* names, bool& target, const char* help, const char* group) {
    app.add_flag(names, target, help)->group(group);
  };

  const char* kModes = "Modes";
  opt("--profile", f.profile, "FILE", "Load a TOML profile (keys mirror the long flags)", kModes);
  flag("--dump-profile", f.dump_profile,
       "Print the effective merged profile as TOML on stdout, run nothing", kModes);
  flag("--doctor", f.doctor, "Diagnose the host for the selected backend", kModes);
  opt("--doctor-format", f.doctor_format, "text|json", "Doctor output format (default: text)",
      kModes);
  opt("--report", f.report, "FLOW.jsonl",
      "Read a flow log and print a report instead of running anything", kModes);
  opt("--report-format", f.report_format, "text|markdown|json",
      "Report output format (default: text)", kModes);
  flag("--cleanup", f.cleanup,
       "Remove host state left by a killed rootful run (rootful runs are not built yet: nothing to remove)",
       kModes);

  const char* kSandbox = "Sandbox";
  flag("--root", f.root,
       "Use the rootful backend (not built yet: runs stop with an error; --doctor --root checks the host)",
       kSandbox);
  opt("-i,--iface", f.iface, "IFACE", "Host egress interface for direct traffic (rootful only)",
      kSandbox);
  opt("-d,--dns", f.dns, "ADDRESS", "Upstream resolver (IPv4 or IPv6) for the tree's DNS",
      kSandbox);
  opt("--hosts-file", f.hosts_file, "FILE",
      "/etc/hosts-format entries that take precedence inside the tree", kSandbox);
  opt("--mtu", f.mtu, "N", "MTU of the tree's tap0, 576 to 65520 (default: 65520)", kSandbox);
  flag("--allow-host-loopback", f.allow_host_loopback,
       "Let the tree reach the host's loopback services at the gateway address (subject to "
       "policy)",
       kSandbox);

  const char* kOutput = "Capture and logs";
  opt("-c,--capture", f.capture, "FILE", "Write the tree's packets as pcapng", kOutput);
  opt("-C,--capture-point", f.capture_point, "child|egress|wire-egress|both",
      "Which view --capture writes (default: child; wire-egress is not built yet)", kOutput);
  opt("--flow-log", f.flow_log, "FILE", "Write flow events as JSON Lines", kOutput);
  flag("--summary", f.summary, "Print a post-run summary on stderr", kOutput);
  opt("--summary-format", f.summary_format, "text|json", "Summary format (default: text)",
      kOutput);

  const char* kProxy = "Proxy";
  opt("-p,--proxy", f.proxy, "URI",
      "Upstream proxy: http://, https:// or socks5:// HOST:PORT (IPv6 host in brackets)",
      kProxy);
  opt("-U,--proxy-user", f.proxy_user, "USER", "Proxy user (needs --proxy-password)", kProxy);
  opt("-P,--proxy-password", f.proxy_password, "PASSWORD",
      "Proxy password (needs --proxy-user)", kProxy);
  flag("--proxy-insecure", f.proxy_insecure,
       "Accept an untrusted certificate from an https:// proxy (hostname still checked)",
       kProxy);
  opt("--proxy-ca", f.proxy_ca, "FILE",
      "PEM CA certificates trusted for an https:// proxy, besides the system store", kProxy);
  flag("--proxy-only", f.proxy_only, "Every outbound connection must go through --proxy",
       kProxy);

  const char* kPolicy = "Policy";
  flag("--offline", f.offline, "Deny every outbound packet, DNS included", kPolicy);
  flag("--block-private", f.block_private,
       "Deny private, loopback, link-local, CGNAT and ULA destinations", kPolicy);
  flag("--block-metadata", f.block_metadata, "Deny cloud metadata endpoints", kPolicy);
  opt("--default-policy", f.default_policy, "allow|deny",
      "Verdict when no rule matches (default: allow)", kPolicy);
  list("--allow-cidr", f.allow_cidr, "CIDR", "Allow an IPv4/IPv6 prefix (repeatable)");
  list("--deny-cidr", f.deny_cidr, "CIDR", "Deny an IPv4/IPv6 prefix (repeatable)");
  list("--allow-domain", f.allow_domain, "NAME", "Allow a name and its subdomains (repeatable)");
  list("--allow-domain-exact", f.allow_domain_exact, "NAME",
       "Allow exactly that name (repeatable)");
  list("--deny-domain", f.deny_domain, "NAME", "Deny a name and its subdomains (repeatable)");
  list("--deny-domain-exact", f.deny_domain_exact, "NAME", "Deny exactly that name (repeatable)");
  flag("--fail-on-leak", f.fail_on_leak,
       "Exit 1 when policy blocked something but the command exited 0", kPolicy);
}

struct Split {
  // Each option seen, in order, with its value ("true" for flags).
  std::vector<std::pair<CLI::Option*, std::string>> options;
  std::vector<std::string> command;
  bool help = false;
  bool version = false;
};

std::string long_name(const CLI::Option* o) { return "--" + o->get_lnames().front(); }

// Takes a value? (CLI11 flags expect zero items.)
bool takes_value(const CLI::Option* o) { return o->get_items_expected_max() > 0; }

std::variant<Split, std::string> split_argv(CLI::App& app, int argc,
                                            const char* const* argv) {
  Split s;
  int i = 1;
  for (; i < argc; ++i) {
    std::string w = argv[i] ? argv[i] : "";
    if (w == "--") {
      ++i;
      break;
    }
    if (w.size() < 2 || w[0] != '-') break;  // first positional: the command
    if (w[1] == '-') {
      size_t eq = w.find('=');
      std::string name = w.substr(0, eq);
      if (name == "--help") { s.help = true; return s; }
      if (name == "--version") { s.version = true; return s; }
      CLI::Option* o = app.get_option_no_throw(name);
      if (!o)
        return fmt::format("unknown option `{}`: run `childflow --help` for the list, or put "
                           "`--` before the command",
                           name);
      if (!takes_value(o)) {
        if (eq != std::string::npos)
          return fmt::format("{} takes no value: write just {}", name, name);
        s.options.emplace_back(o, "true");
        continue;
      }
      if (eq != std::string::npos) {
        s.options.emplace_back(o, w.substr(eq + 1));
        continue;
      }
      if (i + 1 >= argc)
        return fmt::format("{} needs a value (see `childflow --help`)", name);
      s.options.emplace_back(o, argv[++i] ? argv[i] : "");
      continue;
    }
    // Short options, possibly bundled: -hV, -cfile, -c file.
    for (size_t k = 1; k < w.size(); ++k) {
      std::string name = std::string("-") + w[k];
      if (name == "-h") { s.help = true; return s; }
      if (name == "-V") { s.version = true; return s; }
      CLI::Option* o = app.get_option_no_throw(name);
      if (!o)
        return fmt::format("unknown option `{}`: run `childflow --help` for the list, or put "
                           "`--` before the command",
                           name);
      if (!takes_value(o)) {
        s.options.emplace_back(o, "true");
        continue;
      }
      if (k + 1 < w.size()) {
        std::string v = w.substr(k + 1);
        if (v.front() == '=') v.erase(0, 1);
        s.options.emplace_back(o, v);
      } else if (i + 1 < argc) {
        s.options.emplace_back(o, argv[++i] ? argv[i] : "");
      } else {
        return fmt::format("{} ({}) needs a value (see `childflow --help`)", name,
                           long_name(o));
      }
      break;
    }
  }
  for (; i < argc; ++i) s.command.emplace_back(argv[i] ? argv[i] : "");
  return s;
}

// CLI11's messages can span lines; the user gets one.
std::string one_line(std::string m) {
  std::replace(m.begin(), m.end(), '\n', ' ');
  while (!m.empty() && m.back() == ' ') m.pop_back();
  return m;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "childflow: error: %s\n", one_line(message).c_str());
  return 2;
}

// Parses one flag value with a values.hpp parser; on error prefixes the flag.
template <class T, class Parse>
bool take(const char* flag, const std::string& raw, std::optional<T>& out, Parse parse,
          std::string& error) {
  auto r = parse(std::string_view(raw));
  if (config::failed(r)) {
    error = fmt::format("{}: {}", flag, config::error_of(r));
    return false;
  }
  out = config::value_of(r);
  return true;
}

template <class T, class Parse>
bool take_list(const char* flag, const std::vector<std::string>& raw,
               std::optional<std::vector<T>>& out, Parse parse, std::string& error) {
  std::vector<T> v;
  for (const auto& item : raw) {
    auto r = parse(std::string_view(item));
    if (config::failed(r)) {
      error = fmt::format("{}: {}", flag, config::error_of(r));
      return false;
    }
    v.push_back(config::value_of(r));
  }
  out = std::move(v);
  return true;
}

}  // namespace

Parsed parse(int argc, const char* const* argv) {
  RawFlags f;
  CLI::App app{"", "childflow"};
  build_app(app, f);

  auto split_or_error = split_argv(app, argc, argv);
  if (auto* e = std::get_if<std::string>(&split_or_error)) return {std::nullopt, fail(*e)};
  Split split = std::get<Split>(std::move(split_or_error));
  if (split.help) {
    std::string help = app.help();
    std::fwrite(help.data(), 1, help.size(), stdout);
    return {std::nullopt, 0};
  }
  if (split.version) {
    std::printf("childflow %s\n", CHILDFLOW_VERSION);
    return {std::nullopt, 0};
  }

  // The values go to CLI11 as results (no second tokenisation: an empty value
  // or one that starts with '-' stays what it is).
  try {
    for (auto& [opt, value] : split.options) opt->add_result(value);
    std::vector<std::string> none;
    app.parse(none);
  } catch (const CLI::ParseError& e) {
    return {std::nullopt, fail(fmt::format("{} (see `childflow --help`)", e.what()))};
  }

  // A single-valued option given twice is a mistake, not a silent override.
  for (const CLI::Option* o : app.get_options()) {
    bool repeatable = o->get_multi_option_policy() == CLI::MultiOptionPolicy::TakeAll;
    if (!repeatable && takes_value(o) && o->count() > 1)
      return {std::nullopt,
              fail(fmt::format("{} is given {} times: give it once", o->get_name(),
                               o->count()))};
  }
  auto given = [&](const char* name) { return app.get_option(name)->count() > 0; };

  // Mode.
  int modes = int(f.doctor) + int(given("--report")) + int(f.dump_profile) + int(f.cleanup);
  if (modes > 1)
    return {std::nullopt,
            fail("--doctor, --report, --dump-profile and --cleanup are separate modes: give "
                 "only one of them")};
  Config c;
  c.mode = f.doctor         ? Mode::Doctor
           : given("--report") ? Mode::Report
           : f.dump_profile ? Mode::DumpProfile
           : f.cleanup      ? Mode::Cleanup
                            : Mode::Run;
  bool command_given = !split.command.empty();
  if (command_given && c.mode == Mode::Report)
    return {std::nullopt,
            fail(fmt::format("--report reads a flow log and runs nothing, but a command (`{}`) "
                             "is given: drop the command or drop --report",
                             split.command.front()))};
  if (command_given && c.mode == Mode::Doctor)
    return {std::nullopt,
            fail(fmt::format("--doctor runs no command, but a command (`{}`) is given: drop "
                             "the command or drop --doctor",
                             split.command.front()))};
  if (command_given && c.mode == Mode::Cleanup)
    return {std::nullopt,
            fail(fmt::format("--cleanup runs no command, but a command (`{}`) is given: drop "
                             "the command or drop --cleanup",
                             split.command.front()))};
  if (given("--doctor-format") && c.mode != Mode::Doctor)
    return {std::nullopt, fail("--doctor-format is only used with --doctor: add --doctor or "
                               "drop --doctor-format")};
  if (given("--report-format") && c.mode != Mode::Report)
    return {std::nullopt, fail("--report-format is only used with --report FILE: add "
                               "--report or drop --report-format")};

  // The command-line layer.
  std::string cwd = config::current_dir();
  auto path_in_cwd = [&](std::string_view s) { return config::resolve_path(s, cwd); };
  auto readable_in_cwd = [&](std::string_view s) -> config::Parsed<std::string> {
    auto p = config::resolve_path(s, cwd);
    if (config::failed(p)) return p;
    return config::check_readable_file(config::value_of(p));
  };
  ProfileLayer flags;
  std::string err;
  bool ok = true;
  if (f.root) flags.backend = Backend::Rootful;
  if (ok && given("--capture")) ok = take("--capture", f.capture, flags.capture, path_in_cwd, err);
  if (ok && given("--capture-point"))
    ok = take("--capture-point", f.capture_point, flags.capture_point,
              config::parse_capture_point, err);
  if (ok && given("--dns")) ok = take("--dns", f.dns, flags.dns, config::parse_dns, err);
  if (ok && given("--hosts-file"))
    ok = take("--hosts-file", f.hosts_file, flags.hosts_file, readable_in_cwd, err);
  if (ok && given("--iface")) ok = take("--iface", f.iface, flags.iface, config::parse_iface, err);
  if (f.summary) flags.summary = true;
  if (ok && given("--summary-format"))
    ok = take("--summary-format", f.summary_format, flags.summary_format,
              config::parse_text_or_json, err);
  if (ok && given("--flow-log"))
    ok = take("--flow-log", f.flow_log, flags.flow_log, path_in_cwd, err);
  if (ok && given("--proxy"))
    ok = take("--proxy", f.proxy, flags.proxy, config::parse_proxy_uri, err);
  if (ok && given("--proxy-user"))
    ok = take("--proxy-user", f.proxy_user, flags.proxy_user, config::parse_proxy_user, err);
  if (ok && given("--proxy-password"))
    ok = take("--proxy-password", f.proxy_password, flags.proxy_password,
              config::parse_proxy_password, err);
  if (f.proxy_insecure) flags.proxy_insecure = true;
  if (ok && given("--proxy-ca"))
    ok = take("--proxy-ca", f.proxy_ca, flags.proxy_ca, readable_in_cwd, err);
  if (f.offline) flags.offline = true;
  if (f.block_private) flags.block_private = true;
  if (f.block_metadata) flags.block_metadata = true;
  if (ok && given("--default-policy"))
    ok = take("--default-policy", f.default_policy, flags.default_policy,
              config::parse_default_policy, err);
  if (ok && given("--allow-cidr"))
    ok = take_list("--allow-cidr", f.allow_cidr, flags.allow_cidrs, config::parse_cidr, err);
  if (ok && given("--deny-cidr"))
    ok = take_list("--deny-cidr", f.deny_cidr, flags.deny_cidrs, config::parse_cidr, err);
  if (ok && given("--allow-domain"))
    ok = take_list("--allow-domain", f.allow_domain, flags.allow_domains,
                   config::normalise_domain, err);
  if (ok && given("--allow-domain-exact"))
    ok = take_list("--allow-domain-exact", f.allow_domain_exact, flags.allow_domains_exact,
                   config::normalise_domain, err);
  if (ok && given("--deny-domain"))
    ok = take_list("--deny-domain", f.deny_domain, flags.deny_domains,
                   config::normalise_domain, err);
  if (ok && given("--deny-domain-exact"))
    ok = take_list("--deny-domain-exact", f.deny_domain_exact, flags.deny_domains_exact,
                   config::normalise_domain, err);
  if (f.proxy_only) flags.proxy_only = true;
  if (f.fail_on_leak) flags.fail_on_leak = true;
  if (f.allow_host_loopback) flags.allow_host_loopback = true;
  if (ok && given("--mtu")) ok = take("--mtu", f.mtu, flags.mtu, config::parse_mtu, err);
  if (command_given) flags.command = split.command;

  std::optional<std::string> report_path;
  if (ok && given("--report")) {
    ok = take("--report", f.report, report_path, readable_in_cwd, err);
    if (ok) c.report = report_path;
  }
  if (ok && given("--doctor-format")) {
    std::optional<TextOrJson> v;
    ok = take("--doctor-format", f.doctor_format, v, config::parse_text_or_json, err);
    if (ok) c.doctor_format = *v;
  }
  if (ok && given("--report-format")) {
    std::optional<ReportFormat> v;
    ok = take("--report-format", f.report_format, v, config::parse_report_format, err);
    if (ok) c.report_format = *v;
  }
  if (!ok) return {std::nullopt, fail(err)};

  // Profile, then flags on top, then defaults for whatever is still unset.
  ProfileLayer merged;
  if (given("--profile")) {
    auto loaded = config::load_profile(f.profile);
    if (auto* e = std::get_if<std::string>(&loaded)) return {std::nullopt, fail(*e)};
    merged = std::get<ProfileLayer>(std::move(loaded));
  }
  config::overlay(merged, flags);
  config::apply(merged, c);
  if (c.mode == Mode::Cleanup) c.backend = Backend::Rootful;

  if (c.mode == Mode::Run && c.command.empty())
    return {std::nullopt,
            fail("no command to run: give one (e.g. childflow -- curl http://example.com/), "
                 "set `command` in the profile, or use --doctor, --report FILE or "
                 "--dump-profile")};
  if (auto e = check_combinations(c)) return {std::nullopt, fail(*e)};
  if (c.mode == Mode::Run)
    if (auto e = check_output_dirs(c)) return {std::nullopt, fail(*e)};
  return {std::move(c), 0};
}

}  // namespace cf::cli
