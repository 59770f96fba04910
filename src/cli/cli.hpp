// Command-line parsing: argv -> one validated Config (profiles merged), or an
// exit code. Prints --help / --version on stdout and every error as one line
// `childflow: error: <what is wrong and how to fix it>` on stderr.
#pragma once
#include <optional>

#include "config/config.hpp"

namespace cf::cli {

struct Parsed {
  std::optional<Config> config;  // set when the caller should go on
  int exit_code = 0;             // meaningful when config is empty: 0 or 2
};

Parsed parse(int argc, const char* const* argv);

// Keeps passwords out of sight of other processes once parse() has copied
// them: overwrites with 'x', in place, the value of every secret option in
// argv (-P pw, -Ppw, -P=pw, --proxy-password pw, --proxy-password=pw), so
// /proc/PID/cmdline and ps show `-P xx`, and overwrites and unsets secret
// environment variables (CHILDFLOW_PROXY_PASSWORD), so that neither
// /proc/PID/environ nor the command tree, which inherits the environment,
// sees them. Words after the options (the command) are never touched.
void hide_secrets(int argc, char** argv);

}  // namespace cf::cli
