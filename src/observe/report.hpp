// `--report FILE`: reads a flow log (ours, truncated, or the Rust tool's) and
// prints counts and rankings as text, markdown or JSON (docs/report.md).
#pragma once
#include "config/config.hpp"

namespace cf::observe {

int report(const Config& c);

}  // namespace cf::observe
