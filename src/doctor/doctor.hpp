// Host diagnosis (docs/doctor-schema.md): `--doctor` prints every check; preflight
// runs the same checks silently before a run and stops at the first fatal one.
#pragma once
#include <optional>
#include <string>

#include "config/config.hpp"

namespace cf::doctor {

// `childflow --doctor`: prints the report, returns 1 when blocked, else 0.
int run(const Config& c);

// The first fatal check as "label: detail (hint: ...)", or nullopt when the
// backend can run.
std::optional<std::string> preflight(const Config& c);

}  // namespace cf::doctor
