// The command line: argv -> one validated Config.
//
// Theory of operation
//   Every flag is a row of the settings table (config/settings.hpp): this
//   file knows no flag by name except the modes and -h/-V.
//   1. split_argv walks argv like getopt: options (and the values of options
//      that take one) up to the first non-option word or `--`; that word and
//      everything after it is the command, untouched (`childflow sh -c 'echo
//      -p'` runs `sh -c 'echo -p'`). An option that takes a value always
//      takes the next word (or what follows `=`), so a value that starts
//      with '-' (a password, say) or is empty stays a value. Unknown options
//      (with a "did you mean") and missing values are reported here; -h / -V
//      win as soon as seen.
//   2. check_modes: at most one of --doctor/--report/--dump-profile/--cleanup,
//      no command for the modes that run none, format flags only with their
//      mode, single-valued options given once, not two flags that fill one
//      field (-P and --proxy-password-file).
//   3. flag_layer: every given value is parsed by its setting (the same
//      parsers the profile keys use) into the command line's Layer; paths are
//      made absolute against the current directory.
//   4. --profile is loaded (with its extends chain); the environment's layer
//      (rows with an `env` variable, CHILDFLOW_PROXY_PASSWORD) and then the
//      command line's layer are overlaid on it; the result is applied to a
//      default Config.
//   5. A command when running, and the cross-field checks of
//      cli/validate.hpp.
//   hide_secrets, called by the app once parse() succeeded, walks argv the
//   same way and overwrites the values of secret options with 'x' in place.
//   Any failure prints exactly one line, `childflow: error: ...`, on stderr
//   and returns exit code 2. Nothing here creates a file or directory.
#include "cli/cli.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <string>
#include <vector>

#include "cli/reference.hpp"
#include "cli/validate.hpp"
#include "common/text.hpp"
#include "config/profile.hpp"
#include "config/settings.hpp"
#include "config/values.hpp"


namespace cf::cli {

namespace {

using config::Layer;
using config::Setting;
using config::Shape;

// What the command line said, before any value is parsed.
struct Split {
  struct Given {
    const Setting* setting;
    std::string value;  // empty for a switch
    int arg = 0;        // where the value is in argv: argv[arg] + at (hide_secrets)
    size_t at = 0;
  };
  std::vector<Given> options;  // in argv order
  std::vector<std::string> command;
  bool help = false;
  bool version = false;

  size_t count(const Setting& s) const {
    return size_t(std::count_if(options.begin(), options.end(),
                                [&](const Given& g) { return g.setting == &s; }));
  }
  bool given(std::string_view flag) const {
    const Setting* s = config::find_flag(flag);
    return s && count(*s) > 0;
  }
};

std::string unknown_option(const std::string& name, std::string_view long_name) {
  std::string hint = long_name.empty() ? "" : config::flag_suggestion(long_name);
  return fmt::format("unknown option `{}`{}: run `childflow --help` for the list, or put `--` "
                     "before the command",
                     name, hint.empty() ? "" : " (" + hint + ")");
}

// Walks argv like getopt (see the theory of operation above).
Result<Split> split_argv(int argc, const char* const* argv) {
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
      const Setting* o = config::find_flag(std::string_view(name).substr(2));
      if (!o) return Error{unknown_option(name, std::string_view(name).substr(2))};
      if (o->shape == Shape::Switch) {
        if (eq != std::string::npos)
          return Error{fmt::format("{} takes no value: write just {}", name, name)};
        s.options.push_back({o, "", i, 0});
        continue;
      }
      if (eq != std::string::npos) {
        s.options.push_back({o, w.substr(eq + 1), i, eq + 1});
        continue;
      }
      if (i + 1 >= argc)
        return Error{fmt::format("{} needs a value (see `childflow --help`)", name)};
      ++i;
      s.options.push_back({o, argv[i] ? argv[i] : "", i, 0});
      continue;
    }
    // Short options, possibly bundled: -hV, -cfile, -c file.
    for (size_t k = 1; k < w.size(); ++k) {
      std::string name = std::string("-") + w[k];
      if (name == "-h") { s.help = true; return s; }
      if (name == "-V") { s.version = true; return s; }
      const Setting* o = config::find_short_flag(w[k]);
      if (!o) return Error{unknown_option(name, "")};
      if (o->shape == Shape::Switch) {
        s.options.push_back({o, "", i, 0});
        continue;
      }
      if (k + 1 < w.size()) {
        size_t at = k + 1 + (w[k + 1] == '=');
        s.options.push_back({o, w.substr(at), i, at});
      } else if (i + 1 < argc) {
        ++i;
        s.options.push_back({o, argv[i] ? argv[i] : "", i, 0});
      } else {
        return Error{fmt::format("{} ({}) needs a value (see `childflow --help`)", name,
                                 o->long_flag())};
      }
      break;
    }
  }
  for (; i < argc; ++i) s.command.emplace_back(argv[i] ? argv[i] : "");
  return s;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "childflow: error: %s\n", one_line(message).c_str());
  return 2;
}
int fail(const Error& e) { return fail(e.str()); }

// The checks that depend on the command line itself rather than on the
// merged values: one mode at most, a command only where one runs, the format
// flags only with their mode, a single-valued option given once.
Status check_modes(const Split& split) {
  for (const Setting& s : config::settings()) {
    size_t n = split.count(s);
    if (s.shape == Shape::Value && n > 1)
      return Error{fmt::format("{} is given {} times: give it once", s.long_flag(), n)};
  }
  int modes = int(split.given("doctor")) + int(split.given("report")) +
              int(split.given("dump-profile")) + int(split.given("cleanup"));
  if (modes > 1)
    return Error{"--doctor, --report, --dump-profile and --cleanup are separate modes: give only "
                 "one of them"};
  if (!split.command.empty())
    for (const char* mode : {"report", "doctor", "cleanup"}) {
      if (!split.given(mode)) continue;
      std::string_view what = std::string_view(mode) == "report" ? "reads a flow log and runs nothing"
                                                                   : "runs no command";
      return Error{fmt::format("--{} {}, but a command (`{}`) is given: drop the command or "
                               "drop --{}",
                               mode, what, split.command.front(), mode)};
    }
  if (split.given("quiet") && split.given("verbose"))
    return Error{"-q/--quiet and -v/--verbose contradict each other: give one of them"};
  if (split.given("doctor-format") && !split.given("doctor"))
    return Error{"--doctor-format is only used with --doctor: add --doctor or drop "
                 "--doctor-format"};
  if (split.given("report-format") && !split.given("report"))
    return Error{"--report-format is only used with --report FILE: add --report or drop "
                 "--report-format"};
  if (split.given("learn"))
    for (const char* mode : {"doctor", "report", "dump-profile", "cleanup"})
      if (split.given(mode))
        return Error{fmt::format("--learn writes a profile after a command runs, and --{} runs "
                                 "none: drop --learn or --{}",
                                 mode, mode)};
  if (split.given("show-secrets") && !split.given("dump-profile"))
    return Error{"--show-secrets is only used with --dump-profile: add --dump-profile or drop "
                 "--show-secrets"};
  // Two flags that fill one field are two spellings of one setting
  // (-P/--proxy-password and --proxy-password-file): which one was meant?
  for (const Split::Given& a : split.options)
    for (const Split::Given& b : split.options)
      if (a.setting != b.setting && a.setting->field != config::kNoField &&
          a.setting->field == b.setting->field) {
        auto names = [](const Setting& s) {
          return s.short_flag ? fmt::format("-{}/{}", s.short_flag, s.long_flag()) : s.long_flag();
        };
        // Named after the field's first row with a key: "the proxy password".
        std::string what;
        for (const Setting& r : config::settings())
          if (r.field == a.setting->field && !r.key.empty()) {
            what = r.key;
            break;
          }
        std::replace(what.begin(), what.end(), '_', ' ');
        return Error{fmt::format("{} and {} both give {}: give only one of them",
                                 names(*a.setting), names(*b.setting),
                                 what.empty() ? "the same setting" : "the " + what)};
      }
  return {};
}

// The command line's Layer: every value parsed by its setting, in table
// order (so the first error reported does not depend on argv order).
Result<Layer> flag_layer(const Split& split) {
  std::string cwd = config::current_dir();
  Layer flags;
  for (const Setting& s : config::settings())
    for (const Split::Given& g : split.options) {
      if (g.setting != &s) continue;
      Status st = s.shape == Shape::Switch ? s.parse_bool(flags, true)
                                           : s.parse(flags, g.value, cwd);
      if (!st) return Error{fmt::format("{}: {}", s.long_flag(), st.error().message)};
    }
  if (!split.command.empty()) flags.set(&Config::command, split.command);
  return flags;
}

// The environment's Layer (rows with `env`, e.g. CHILDFLOW_PROXY_PASSWORD):
// a variable counts when it is set and not empty, the command line does not
// give the setting, and the field it needs (`env_needs`) is set in `below`
// (the profiles with the flags on top).
Result<Layer> env_layer(const Layer& flags, const Layer& below) {
  std::string cwd = config::current_dir();
  Layer env;
  for (const Setting& s : config::settings()) {
    if (s.env.empty() || flags.has(s)) continue;
    const char* v = std::getenv(std::string(s.env).c_str());
    if (!v || !*v) continue;
    if (s.env_needs != config::kNoField && !below.has_field(s.env_needs)) continue;
    Status st = s.parse(env, v, cwd);
    if (!st) return Error{fmt::format("{}: {}", s.env, st.error().message)};
  }
  return env;
}

}  // namespace

Parsed parse(int argc, const char* const* argv) {
  auto split = split_argv(argc, argv);
  if (!split) return {std::nullopt, fail(split.error())};
  if (split->help) {
    std::string help = help_text();
    std::fwrite(help.data(), 1, help.size(), stdout);
    return {std::nullopt, 0};
  }
  if (split->version) {
    std::string v = version_text();
    std::fwrite(v.data(), 1, v.size(), stdout);
    return {std::nullopt, 0};
  }
  if (Status st = check_modes(*split); !st) return {std::nullopt, fail(st.error())};
  auto flags = flag_layer(*split);
  if (!flags) return {std::nullopt, fail(flags.error())};

  // Profile, then the environment, then flags on top, then defaults for
  // whatever is still unset.
  Layer merged;
  if (flags->profile) {
    auto loaded = config::load_profile(*flags->profile);
    if (!loaded) return {std::nullopt, fail(loaded.error())};
    merged = std::move(*loaded);
  }
  Layer below = merged;
  below.overlay(*flags);
  auto env = env_layer(*flags, below);
  if (!env) return {std::nullopt, fail(env.error())};
  merged.overlay(*env);
  merged.overlay(*flags);
  Config c = config::apply(merged);
  if (c.mode == Mode::Cleanup) c.backend = Backend::Rootful;
  // CHILDFLOW_DEBUG=1 (anything but empty or 0): every event as it happens.
  if (const char* d = std::getenv("CHILDFLOW_DEBUG"); d && *d && std::string_view(d) != "0")
    c.verbosity = std::max<int8_t>(c.verbosity, 3);

  if (c.mode == Mode::Run && c.command.empty())
    return {std::nullopt,
            fail("no command to run: give one (e.g. childflow -- curl http://example.com/), "
                 "set `command` in the profile, or use --doctor, --report FILE or "
                 "--dump-profile")};
  if (Status st = check_combinations(c); !st) return {std::nullopt, fail(st.error())};
  if (c.mode == Mode::Run)
    if (Status st = check_output_dirs(c); !st) return {std::nullopt, fail(st.error())};
  return {std::move(c), 0};
}

void hide_secrets(int argc, char** argv) {
  if (auto split = split_argv(argc, argv))
    for (const Split::Given& g : split->options) {
      if (!g.setting->secret || g.arg <= 0 || g.arg >= argc || !argv[g.arg]) continue;
      char* value = argv[g.arg] + g.at;
      std::memset(value, 'x', std::strlen(value));
    }
  for (const Setting& s : config::settings()) {
    if (!s.secret || s.env.empty()) continue;
    std::string name(s.env);
    // The bytes first: /proc/PID/environ shows the original block, whatever
    // unsetenv does to the environ array.
    if (char* v = std::getenv(name.c_str())) std::memset(v, 'x', std::strlen(v));
    ::unsetenv(name.c_str());
  }
}

}  // namespace cf::cli
