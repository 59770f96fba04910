// The post-run summary (docs/summary.md), as text or one JSON object.
#pragma once
#include <cstdint>
#include <string>

#include "config/config.hpp"
#include "observe/recorder.hpp"

namespace cf::observe {

struct RunFacts {
  int exit_code = 0;
  uint64_t duration_ms = 0;
  bool leak_failure = false;     // --fail-on-leak turned 0 into 1
  uint64_t dropped_frames = 0;   // malformed, fragments, spoofed, other
  uint64_t evicted_flows = 0;    // UDP / echo flows evicted from a full table
};

std::string render_summary(const Config& c, const Recorder::Counts& counts,
                           const RunFacts& facts);

// The one line printed at exit without -v when the policy denied something
// ("childflow: policy denied 1 connection and 2 DNS lookups (use -v or
// --summary to see which)"),
// or "" when nothing was denied, or -q, -v, --summary or the --fail-on-leak
// warning (`leak_warned`) already tell.
std::string exit_notice(const Config& c, const Recorder::Counts& counts, bool leak_warned);

// The controls in force, as flags (e.g. "--offline", "--deny-cidr 10.0.0.0/8").
std::vector<std::string> active_controls(const Config& c);

}  // namespace cf::observe
