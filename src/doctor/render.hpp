// Rendering a doctor Report (checks.hpp) for people and for programs.
//
// Text: a status line, then one line per check in the order they ran, with
// an indented hint under every warning and fatal:
//   childflow doctor: backend rootless-internal: ready with warnings
//   [OK]   user namespaces: /proc/self/ns/user present
//   [WARN] ICMP echo: ...
//       hint: ...
// JSON: one object; docs/doctor-schema.md is its contract.
#pragma once
#include <optional>
#include <string>

#include "doctor/checks.hpp"

namespace cf::doctor {

std::string render_text(const Report& r);
std::string render_json(const Report& r);  // one object, pretty-printed, ends in '\n'

// The first fatal check as one line, "label: detail (hint: ...)", or nullopt.
std::optional<std::string> first_fatal(const Report& r);

}  // namespace cf::doctor
