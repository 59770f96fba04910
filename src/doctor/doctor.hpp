// Host diagnosis (docs/doctor-schema.md): `--doctor` prints every check; preflight
// runs the same checks silently before a run and stops at the first fatal one.
#pragma once
#include <optional>

#include "common/result.hpp"
#include "config/config.hpp"

namespace cf::doctor {

// `childflow --doctor`: prints the report, returns 1 when blocked, else 0.
int run(const Config& c);

// Ok when the backend can run; otherwise the first fatal check as the Error
// "preflight: label: detail (hint: ...)". Runs every check that can be
// fatal but the user namespace trial: the sandbox's launch makes the same
// namespaces a moment later, so the trial would only double its cost.
// (cf:: because doctor::Status is a check's outcome, checks.hpp.)
cf::Status preflight(const Config& c);

// After a launch that failed: the checks of preflight and the user namespace
// trial, for the first fatal one as the same Error preflight would have
// given ("preflight: user namespace trial: unshare(CLONE_NEWUSER) failed:
// EPERM ... (hint: ...)"); nullopt when every check passes, and the launch's
// own error is the explanation.
std::optional<Error> explain_launch(const Config& c);

}  // namespace cf::doctor
