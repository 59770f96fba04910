#include "app/app.hpp"

#include <cstdio>

#include "app/run.hpp"
#include "cli/cli.hpp"
#include "config/profile.hpp"
#include "doctor/doctor.hpp"
#include "observe/report.hpp"

namespace cf::app {

int main(int argc, char** argv) {
  cli::Parsed parsed = cli::parse(argc, argv);
  if (!parsed.config) return parsed.exit_code;
  // Before anything else, and before the sandbox's init stub is cloned with
  // a copy of this memory (the tree could read its /proc/1/cmdline).
  cli::hide_secrets(argc, argv);
  const Config& c = *parsed.config;
  switch (c.mode) {
    case Mode::DumpProfile: {
      std::string toml = config::dump_profile(c);
      std::fwrite(toml.data(), 1, toml.size(), stdout);
      return 0;
    }
    case Mode::Doctor: return doctor::run(c);
    case Mode::Report: return observe::report(c);
    case Mode::Cleanup: return run_cleanup(c);
    case Mode::Run: return run_tree(c);
  }
  return 2;
}

}  // namespace cf::app
