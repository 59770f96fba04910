// --help, --version, the man page and the shell completions, from the
// settings table. See reference.hpp.
#include "cli/reference.hpp"

#include <fmt/format.h>

#include <string_view>
#include <vector>

#include "childflow_git.h"  // generated at build time: CHILDFLOW_GIT
#include "config/settings.hpp"

#ifndef CHILDFLOW_VERSION
#define CHILDFLOW_VERSION "0.0.0"
#endif
#ifndef CHILDFLOW_BUILD_TYPE
#define CHILDFLOW_BUILD_TYPE ""
#endif

namespace cf::cli {

namespace {

using config::Group;
using config::Setting;
using config::Shape;

constexpr Group kGroups[] = {Group::Modes, Group::Sandbox, Group::Output, Group::Proxy,
                             Group::Policy};

const char* kUsageLines[] = {
    "childflow [OPTIONS] [--] COMMAND [ARGS...]",
    "childflow --doctor [--root] [--doctor-format text|json]",
    "childflow --report FLOW.jsonl [--report-format text|markdown|json|html]",
    "childflow --profile FILE [--dump-profile]",
    "childflow --cleanup",
};

const char* kAbout =
    "Run COMMAND and all of its descendants in a network sandbox of their own and\n"
    "control that tree's DNS, /etc/hosts, upstream proxy, outbound policy, packet\n"
    "capture and flow log. Nothing outside the tree is affected.\n";

const char* kFooter =
    "Everything from the first word that is not an option (or after `--`) is the\n"
    "command and is passed through untouched.\n"
    "Profiles: TOML files whose keys mirror the long flags with `_` (see\n"
    "docs/profile.md); flags override the profile, lists and the command replace it.\n"
    "Exit codes: the command's own; 128+N if it was killed by signal N; 1 for\n"
    "--fail-on-leak or a runtime failure; 2 for a bad command line or profile;\n"
    "126/127 when the command cannot be executed / is not found.\n"
    "Environment: CHILDFLOW_FORCE_FALLBACK=FEATURE[,...] runs the path childflow\n"
    "takes on kernels without FEATURE (tcp_peek_off, clone3, mount_setattr,\n"
    "tap_offload, or all); --doctor shows the path in use (docs/kernel.md).\n"
    "CHILDFLOW_DEBUG=1 prints every event as it happens; NO_COLOR turns colour off.\n"
    "CHILDFLOW_PROXY_PASSWORD gives the proxy password when a proxy user is set and\n"
    "no flag gives one (it wins over profiles); childflow removes it from the\n"
    "command's environment.\n"
    "Profiles named without a path are also looked for in ~/.config/childflow/ and\n"
    "/etc/childflow/.\n"
    "Linux 5.10 or newer is supported.\n";

// The settings --help, the man page and the completions list.
std::vector<const Setting*> listed(Group g) {
  std::vector<const Setting*> v;
  for (const Setting& s : config::settings())
    if (s.group == g && !s.flag.empty() && !s.hidden) v.push_back(&s);
  return v;
}
std::vector<const Setting*> all_flags() {
  std::vector<const Setting*> v;
  for (const Setting& s : config::settings())
    if (!s.flag.empty()) v.push_back(&s);
  return v;
}

// The fixed choices of a value ("child|egress|..."), or none.
std::vector<std::string> choices(const Setting& s) {
  std::vector<std::string> out;
  std::string_view v = s.value_name;
  if (v.find('|') == std::string_view::npos) return out;
  size_t i = 0;
  while (i <= v.size()) {
    size_t bar = v.find('|', i);
    if (bar == std::string_view::npos) bar = v.size();
    out.emplace_back(v.substr(i, bar - i));
    i = bar + 1;
  }
  return out;
}

bool is_iface(const Setting& s) { return s.value_name == "IFACE"; }

// --- --help ------------------------------------------------------------------

// One entry: the names in a column of kNameWidth, then the help, wrapped at
// kWidth columns under itself.
constexpr size_t kNameWidth = 34, kWidth = 80;

std::string help_entry(const std::string& names, std::string_view help) {
  std::string out = "  " + names;
  if (out.size() + 2 > kNameWidth) out += "\n" + std::string(kNameWidth, ' ');
  else out.resize(kNameWidth, ' ');
  size_t col = kNameWidth;
  size_t i = 0;
  while (i < help.size()) {
    size_t end = help.find(' ', i);
    if (end == std::string_view::npos) end = help.size();
    std::string_view word = help.substr(i, end - i);
    if (col > kNameWidth && col + 1 + word.size() > kWidth) {
      out += "\n" + std::string(kNameWidth, ' ');
      col = kNameWidth;
    } else if (col > kNameWidth) {
      out += ' ';
      ++col;
    }
    out += word;
    col += word.size();
    i = end + 1;
  }
  return out + "\n";
}

// --- roff --------------------------------------------------------------------

// Text for a roff line: backslashes and minus signs escaped, and a line that
// would start with a control character made safe.
std::string roff(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  if (!out.empty() && (out[0] == '.' || out[0] == '\'')) out.insert(0, "\\&");
  return out;
}

// Every line of a block of text as roff lines, with .br between them.
std::string roff_lines(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t nl = text.find('\n', i);
    if (nl == std::string_view::npos) nl = text.size();
    out += roff(text.substr(i, nl - i)) + "\n";
    i = nl + 1;
  }
  return out;
}

// --- shells ------------------------------------------------------------------

// A word inside single quotes for sh, zsh and fish.
std::string single_quoted(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string join(const std::vector<std::string>& v, std::string_view sep) {
  std::string out;
  for (const auto& x : v) out += (out.empty() ? "" : std::string(sep)) + x;
  return out;
}

std::string bash_completion() {
  std::vector<std::string> flags{"-h", "--help", "-V", "--version"}, takes_value;
  for (const Setting* s : all_flags()) {
    if (!s->hidden) {
      flags.push_back(s->long_flag());
      if (s->short_flag) flags.push_back(std::string("-") + s->short_flag);
    }
    if (s->shape != Shape::Switch) {
      takes_value.push_back(s->long_flag());
      if (s->short_flag) takes_value.push_back(std::string("-") + s->short_flag);
    }
  }
  std::string cases;
  for (const Setting* s : all_flags()) {
    if (s->shape == Shape::Switch) continue;
    std::string pat = s->long_flag();
    if (s->short_flag) pat += fmt::format("|-{}", s->short_flag);
    std::string action;
    if (auto c = choices(*s); !c.empty())
      action = fmt::format("COMPREPLY=($(compgen -W {} -- \"$cur\"))", single_quoted(join(c, " ")));
    else if (s->path) action = "COMPREPLY=($(compgen -f -- \"$cur\"))";
    else if (is_iface(*s))
      action = "COMPREPLY=($(compgen -W \"$(ls /sys/class/net 2>/dev/null)\" -- \"$cur\"))";
    else action = "COMPREPLY=()";
    cases += fmt::format("    {}) {}; return ;;\n", pat, action);
  }
  return fmt::format(
      R"(# bash completion for childflow(1). Generated from childflow's settings table.
_childflow() {{
  local cur prev words cword split i w
  # bash splits --opt=value at the `=`: _init_completion -s (bash-completion)
  # puts it back together and splits it the way we mean.
  if declare -F _init_completion >/dev/null; then
    _init_completion -s || return
  else
    words=("${{COMP_WORDS[@]}}") cword=$COMP_CWORD
    cur=${{words[cword]}} prev=${{words[cword-1]}}
  fi
  local takes_value=" {} "
  # Once the command has started (the first word that is not an option, or
  # what follows --), complete the command's own words.
  for ((i = 1; i < cword; i++)); do
    w=${{words[i]}}
    if [[ $w == -- || $w != -* ]]; then
      [[ $w == -- ]] && ((i++))
      if ((i >= cword)); then
        COMPREPLY=($(compgen -c -- "$cur"))
      elif declare -F _command_offset >/dev/null; then
        _command_offset "$i"
      else
        COMPREPLY=($(compgen -f -- "$cur"))
      fi
      return
    fi
    [[ $w != *=* && $takes_value == *" $w "* ]] && ((i++))
  done
  [[ $split == true ]] || [[ $cur != -* ]] || {{ COMPREPLY=($(compgen -W {} -- "$cur")); return; }}
  case $prev in
{}  esac
  COMPREPLY=($(compgen -c -- "$cur"))
}}
complete -F _childflow childflow
)",
      join(takes_value, " "), single_quoted(join(flags, " ")), cases);
}

// A zsh _arguments description: brackets and colons escaped.
std::string zsh_text(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '[' || c == ']' || c == ':' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

std::string zsh_completion() {
  std::string specs;
  auto add = [&](const std::string& spec) { specs += "  " + spec + " \\\n"; };
  add("'(- *)'{-h,--help}'[Print this help and exit]'");
  add("'(- *)'{-V,--version}'[Print the version and exit]'");
  for (const Setting* s : all_flags()) {
    if (s->hidden) continue;
    std::string desc = zsh_text(s->help);
    std::string action;
    if (s->shape != Shape::Switch) {
      if (auto c = choices(*s); !c.empty()) action = fmt::format(":value:({})", join(c, " "));
      else if (s->path) action = fmt::format(":{}:_files", zsh_text(s->value_name));
      else if (is_iface(*s)) action = ":interface:_net_interfaces";
      else action = fmt::format(":{}: ", zsh_text(s->value_name));
    }
    std::string eq = s->shape == Shape::Switch ? "" : "=";
    std::string repeat = s->shape == Shape::List || s->repeatable ? "*" : "";
    std::string body = fmt::format("[{}]{}", desc, action);
    if (s->short_flag) {
      std::string excl = repeat.empty() ? fmt::format("(-{} {})", s->short_flag, s->long_flag()) : "";
      std::string sflag = fmt::format("-{}{}", s->short_flag, s->shape == Shape::Switch ? "" : "+");
      add(fmt::format("{}{}{{{},{}{}}}{}", excl.empty() ? "" : single_quoted(excl),
                      repeat.empty() ? "" : "'*'",
                      sflag, s->long_flag(), eq, single_quoted(body)));
    } else {
      add(single_quoted(fmt::format("{}{}{}{}", repeat, s->long_flag(), eq, body)));
    }
  }
  add("'(-):command:_command_names -e'");
  add("'*::arguments:_normal'");
  specs.resize(specs.size() - 3);  // the last " \\\n"
  return "#compdef childflow\n"
         "# zsh completion for childflow(1). Generated from childflow's settings table.\n"
         "_arguments -s -S \\\n" +
         specs + "\n";
}

std::string fish_completion() {
  std::vector<std::string> takes_value;
  for (const Setting* s : all_flags()) {
    if (s->shape == Shape::Switch) continue;
    takes_value.push_back(s->long_flag());
    if (s->short_flag) takes_value.push_back(std::string("-") + s->short_flag);
  }
  // childflow's own flags only until the command starts (the first word
  // that is not an option or an option's value, or what follows --).
  std::string out = fmt::format(
      "# fish completion for childflow(1). Generated from childflow's settings table.\n"
      "function __fish_childflow_options\n"
      "    set -l takes_value {}\n"
      "    set -l words (commandline -opc)\n"
      "    set -e words[1]\n"
      "    set -l skip 0\n"
      "    for w in $words\n"
      "        if test $skip = 1\n"
      "            set skip 0\n"
      "            continue\n"
      "        end\n"
      "        if test \"$w\" = --; or not string match -q -- '-*' $w\n"
      "            return 1\n"
      "        end\n"
      "        if contains -- $w $takes_value\n"
      "            set skip 1\n"
      "        end\n"
      "    end\n"
      "    return 0\n"
      "end\n"
      "complete -c childflow -n __fish_childflow_options -s h -l help -d 'Print this help and exit'\n"
      "complete -c childflow -n __fish_childflow_options -s V -l version -d 'Print the version and "
      "exit'\n",
      join(takes_value, " "));
  for (const Setting* s : all_flags()) {
    if (s->hidden) continue;
    std::string line = "complete -c childflow -n __fish_childflow_options";
    if (s->short_flag) line += fmt::format(" -s {}", s->short_flag);
    line += fmt::format(" -l {}", s->flag);
    if (s->shape != Shape::Switch) {
      if (auto c = choices(*s); !c.empty())
        line += fmt::format(" -x -a {}", single_quoted(join(c, " ")));
      else if (s->path) line += " -r -F";
      else if (is_iface(*s)) line += " -x -a '(__fish_print_interfaces)'";
      else line += " -x";
    }
    line += fmt::format(" -d {}", single_quoted(s->help));
    out += line + "\n";
  }
  return out;
}

}  // namespace

std::string help_text() {
  std::string out = "Usage:\n";
  for (const char* u : kUsageLines) out += fmt::format("  {}\n", u);
  out += "\n";
  out += kAbout;
  out += "\nOptions:\n";
  out += help_entry("-h,--help", "Print this help and exit");
  out += help_entry("-V,--version", "Print the version and exit");
  for (Group g : kGroups) {
    out += fmt::format("\n{}:\n", config::title(g));
    for (const Setting* s : listed(g)) {
      std::string names = s->flag_names();
      if (s->shape != Shape::Switch) names += " " + std::string(s->value_name);
      out += help_entry(names, s->help);
    }
  }
  return out + "\n" + kFooter;
}

std::string version_text() {
  std::string git = CHILDFLOW_GIT;
  std::string build = CHILDFLOW_BUILD_TYPE;
  if (build.empty()) build = "unspecified";
#if defined(__SANITIZE_ADDRESS__)
  build += ", ASan + UBSan";
#endif
#if defined(__clang__)
  build += fmt::format(", clang {}.{}", __clang_major__, __clang_minor__);
#elif defined(__GNUC__)
  build += fmt::format(", GCC {}.{}", __GNUC__, __GNUC_MINOR__);
#endif
  return fmt::format(
      "childflow {}{}\n"
      "build: {}\n"
      "backends: rootless (user, network, mount and PID namespaces; tap0 served by a\n"
      "  userspace engine); rootful (--root: a veth pair, kernel forwarding, nftables)\n"
      "features: policy (offline, private, metadata, CIDR, domain, default-deny,\n"
      "  proxy-only, fail-on-leak), proxies (http, https, socks5, with auth), DNS gate,\n"
      "  pcapng capture (child, egress, both), flow log, summary, report, profiles,\n"
      "  doctor; kernel fallbacks for tcp_peek_off, clone3, mount_setattr, tap_offload\n",
      CHILDFLOW_VERSION, git.empty() ? "" : " (git " + git + ")", build);
}

std::string man_page() {
  std::string out;
  out += fmt::format(".TH CHILDFLOW 1 \"\" \"childflow {}\" \"User Commands\"\n",
                     CHILDFLOW_VERSION);
  out += ".SH NAME\nchildflow \\- run a command tree in a network sandbox of its own\n";
  out += ".SH SYNOPSIS\n.nf\n";
  for (const char* u : kUsageLines) out += roff(u) + "\n";
  out += ".fi\n.SH DESCRIPTION\n" + roff_lines(kAbout);
  out += ".PP\n"
         "Everything from the first word that is not an option (or after\n"
         ".BR \\-\\- )\n"
         "is the command and is passed through untouched.\n"
         "The tree gets its own user, network, mount and PID namespaces with one\n"
         "interface, tap0, served by a userspace network engine in childflow, which\n"
         "opens real sockets on the host for every flow the tree is allowed to make.\n"
         "If childflow dies, the tree dies with it and has no network.\n";
  out += ".SH OPTIONS\n";
  out += ".TP\n.BR \\-h \", \" \\-\\-help\nPrint the help and exit.\n";
  out += ".TP\n.BR \\-V \", \" \\-\\-version\nPrint the version, the build and its features, "
         "and exit.\n";
  for (Group g : kGroups) {
    out += fmt::format(".SS {}\n", config::title(g));
    for (const Setting* s : listed(g)) {
      out += ".TP\n";
      std::string names;
      if (s->short_flag) names += fmt::format("\\fB\\-{}\\fR, ", s->short_flag);
      names += fmt::format("\\fB{}\\fR", roff(s->long_flag()));
      if (s->shape != Shape::Switch) names += fmt::format(" \\fI{}\\fR", roff(s->value_name));
      out += names + "\n" + roff(s->help) + ".";
      if (s->shape == Shape::List) out += " Repeatable.";
      if (!s->key.empty()) out += fmt::format(" Profile key: \\fB{}\\fR.", roff(s->key));
      out += "\n";
    }
  }
  out += ".SH PROFILES\n"
         "A profile is a TOML file loaded with\n.BR \\-\\-profile .\n"
         "Its keys mirror the long flags with _ instead of \\- (rule lists are plural);\n"
         ".B extends\nnames a parent profile, relative to the naming file. Flags override the\n"
         "profile; lists and the command replace, never append.\n"
         ".B \\-\\-dump\\-profile\nprints the effective settings as a profile. The keys:\n.PP\n"
         ".nf\nextends\n";
  for (const Setting& s : config::settings())
    if (!s.key.empty()) out += roff(s.key) + "\n";
  out += ".fi\n";
  out += ".SH EXIT STATUS\n"
         "The command's own exit status; 128+N when it was killed by signal N; 126 or 127\n"
         "when it cannot be executed or is not found; 2 for a bad command line or profile\n"
         "(one line on standard error, nothing created); 1 for a failure of childflow\n"
         "itself, or when\n.B \\-\\-fail\\-on\\-leak\nsaw a denial and the command exited 0.\n";
  out += ".SH ENVIRONMENT\n.TP\n.B CHILDFLOW_FORCE_FALLBACK\n"
         "A comma-separated list of kernel features (tcp_peek_off, clone3,\n"
         "mount_setattr, tap_offload, or all): childflow takes the path it takes on\n"
         "kernels without them.\n.B \\-\\-doctor\nshows the path in use.\n"
         ".TP\n.B CHILDFLOW_DEBUG\nAny value but empty or 0: every event as it happens on standard error\n"
         "(DNS queries and answers, connect attempts, flows, denials), like\n.BR \\-vv \" and more.\"\n"
         ".TP\n.B NO_COLOR\nSet and not empty: no colour in the live lines, even on a terminal.\n"
         ".TP\n.B XDG_CONFIG_HOME\nWhere profiles named without a path are looked for first\n"
         "(default ~/.config).\n";
  // The settings that a variable gives too (the table's `env`).
  for (const Setting& s : config::settings()) {
    if (s.env.empty()) continue;
    out += fmt::format(".TP\n.B {}\nGives what\n.B {}\ngives, when no flag does: it wins over "
                       "profiles, the command line wins over it; empty counts as unset.\n",
                       roff(s.env), roff(s.long_flag()));
    for (const Setting& n : config::settings())
      if (n.field == s.env_needs && !n.flag.empty()) {
        out += fmt::format("Used only when\n.B {}\n(or its profile key) is set.\n",
                           roff(n.long_flag()));
        break;
      }
    if (s.secret)
      out += "childflow overwrites and removes it once read, so the command tree does not "
             "inherit it.\n";
  }
  out += ".SH FILES\n.TP\n.I ~/.config/childflow/NAME.toml\n.TQ\n.I /etc/childflow/NAME.toml\n"
         "Where\n.BI \\-\\-profile \" NAME\"\nlooks after the current directory (the\n"
         ".B .toml\nmay be left out; a name found in both the current directory and one of\n"
         "these is an error).\n";
  out += ".SH NOTES\nLinux 5.10 or newer is supported. The documentation in the source tree's\n"
         "docs/ directory describes the flow log, the report, the doctor's checks, the\n"
         "policy and the sandbox in full.\n";
  out += ".SH SEE ALSO\n.BR unshare (1),\n.BR bwrap (1),\n.BR pasta (1),\n.BR tcpdump (8)\n";
  return out;
}

std::string completion(Shell shell) {
  switch (shell) {
    case Shell::Bash: return bash_completion();
    case Shell::Zsh: return zsh_completion();
    case Shell::Fish: return fish_completion();
  }
  return {};
}

}  // namespace cf::cli
