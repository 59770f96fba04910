// Cross-field checks on a merged Config: the rejected combinations of
// docs/cli.md ("Rejected combinations") that do not depend on where a value
// came from (flag or profile).
// Mode-specific checks (a command is needed, --report runs none, ...) live in
// cli.cpp because they depend on the command line itself.
#pragma once
#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::cli {

// The first problem, "<what is wrong and how to fix it>".
Status check_combinations(const Config& c);

// The settings the rootful backend refuses; checked when a rootful run
// starts (app::run_tree), so profiles and --dump-profile still take them.
Status check_rootful(const Config& c);

// Run mode only: the directories that will hold --capture, --flow-log and
// --learn exist (checked before anything is created; nothing is created
// here), and a --learn FILE that exists is a profile it can merge into.
Status check_output_dirs(const Config& c);

}  // namespace cf::cli
