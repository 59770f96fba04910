// --help, the man page and the completions name every flag of the settings
// table, with the fixed choices of each value.
#include "cli/reference.hpp"

#include <gtest/gtest.h>

#include "config/settings.hpp"

namespace cf::cli {
namespace {

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (needle)

// How roff writes a flag: every '-' escaped.
std::string roffed(std::string s) {
  std::string out;
  for (char c : s) out += c == '-' ? std::string("\\-") : std::string(1, c);
  return out;
}

TEST(Reference, EveryFlagEverywhere) {
  std::string help = help_text(), man = man_page(), bash = completion(Shell::Bash),
              zsh = completion(Shell::Zsh), fish = completion(Shell::Fish);
  for (const config::Setting& s : config::settings()) {
    if (s.flag.empty() || s.hidden) continue;
    std::string f = s.long_flag();
    EXPECT_HAS(help, f + (s.shape == config::Shape::Switch ? "" : " "));
    EXPECT_HAS(man, "\\fB" + roffed(f) + "\\fR");
    EXPECT_HAS(bash, " " + f + " ");
    EXPECT_HAS(zsh, f);
    EXPECT_HAS(fish, "-l " + std::string(s.flag) + " ");
    if (s.short_flag) {
      EXPECT_HAS(fish, std::string("-s ") + s.short_flag + " -l " + std::string(s.flag));
      EXPECT_HAS(man, std::string("\\fB\\-") + s.short_flag + "\\fR");
    }
    if (!s.key.empty()) {
      EXPECT_HAS(man, "Profile key: \\fB" + roffed(std::string(s.key)));
    }
  }
  for (const config::Setting& s : config::settings())
    if (!s.env.empty()) {
      EXPECT_HAS(help, std::string(s.env));
      EXPECT_HAS(man, ".B " + roffed(std::string(s.env)) + "\nGives what\n.B " +
                          roffed(s.long_flag()));
    }
  EXPECT_HAS(man, "Used only when\n.B \\-\\-proxy\\-user\n");
  EXPECT_HAS(bash, "compgen -W 'child egress wire-egress both'");
  EXPECT_HAS(zsh, ":value:(child egress wire-egress both)");
  EXPECT_HAS(fish, "-l capture-point -x -a 'child egress wire-egress both'");
  EXPECT_HAS(fish, "-l hosts-file -r -F");
  for (const char* env : {"CHILDFLOW_FORCE_FALLBACK", "CHILDFLOW_DEBUG", "NO_COLOR"}) {
    EXPECT_HAS(help, env);
    EXPECT_HAS(man, std::string(".B ") + env);
  }
  EXPECT_HAS(man, "/etc/childflow/NAME.toml");
}

TEST(Reference, ManPageIsRoff) {
  std::string man = man_page();
  EXPECT_EQ(man.rfind(".TH CHILDFLOW 1 ", 0), 0u);
  for (const char* section : {".SH NAME", ".SH SYNOPSIS", ".SH OPTIONS", ".SH PROFILES",
                              ".SH EXIT STATUS", ".SH ENVIRONMENT"})
    EXPECT_HAS(man, section);
  size_t start = 0;
  while (start < man.size()) {
    size_t nl = man.find('\n', start);
    std::string line = man.substr(start, nl - start);
    EXPECT_FALSE(line.rfind("'", 0) == 0) << "a line starting with ' is a roff request: " << line;
    start = nl + 1;
  }
}

}  // namespace
}  // namespace cf::cli
