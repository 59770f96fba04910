// Host diagnosis (docs/doctor-schema.md): `--doctor` prints every check; preflight
// runs the same checks silently before a run and stops at the first fatal one.
#pragma once
#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::doctor {

// `childflow --doctor`: prints the report, returns 1 when blocked, else 0.
int run(const Config& c);

// Ok when the backend can run; otherwise the first fatal check as the Error
// "preflight: label: detail (hint: ...)".
// (cf:: because doctor::Status is a check's outcome, checks.hpp.)
cf::Status preflight(const Config& c);

}  // namespace cf::doctor
