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

}  // namespace cf::cli
