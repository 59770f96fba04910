// Running a command tree: preflight, overlays, sandbox, engine, summary.
#pragma once
#include "config/config.hpp"

namespace cf::app {

// Runs c.command in the sandbox; returns childflow's exit code (docs/cli.md).
int run_tree(const Config& c);

// `--cleanup`: removes state a killed rootful run left behind.
int run_cleanup(const Config& c);

}  // namespace cf::app
