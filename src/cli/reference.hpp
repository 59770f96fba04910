// What childflow says about itself: --help, --version, the man page and the
// shell completions, all generated from the settings table
// (config/settings.hpp), so none of them can drift from the flags the parser
// accepts. The build runs tools/gendoc.cpp to write the man page and the
// completions (installed by `cmake --install`).
#pragma once
#include <string>

namespace cf::cli {

std::string help_text();     // --help
std::string version_text();  // --version: version, build, features

std::string man_page();  // childflow(1), roff (man macros)

enum class Shell : unsigned char { Bash, Zsh, Fish };
std::string completion(Shell shell);

}  // namespace cf::cli
