// TOML profiles (SPEC section 2): load with `extends` chains, merge under the
// command line, and dump the effective Config back as TOML.
#pragma once
#include <string>
#include <variant>

#include "config/config.hpp"

namespace cf::config {

// Prints the effective configuration as TOML that loads back to an equal
// Config (absolute paths; lists and command in full).
std::string dump_profile(const Config& c);

}  // namespace cf::config
