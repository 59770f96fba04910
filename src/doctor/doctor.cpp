// `childflow --doctor` and the silent preflight (docs/doctor-schema.md).
//
// Both run the same checks (checks.hpp) against the real host (SystemHost):
// --doctor runs all of them and prints the report on stdout; preflight runs
// only those that can be fatal for this configuration, prints nothing, and
// returns the first fatal one as a line for the run path to show. Preflight's
// cost is dominated by its trials in short-lived children: about 1 ms for
// rootless (the user namespace trial), a few ms for rootful (nftables).
#include "doctor/doctor.hpp"

#include <cstdio>

#include "doctor/checks.hpp"
#include "doctor/host.hpp"
#include "doctor/render.hpp"

namespace cf::doctor {

int run(const Config& c) {
  auto host = make_system_host();
  Report r = diagnose(*host, c, Scope::All);
  std::string out = c.doctor_format == TextOrJson::Json ? render_json(r) : render_text(r);
  std::fwrite(out.data(), 1, out.size(), stdout);
  std::fflush(stdout);
  return r.overall() == Overall::Blocked ? 1 : 0;
}

cf::Status preflight(const Config& c) {
  auto host = make_system_host();
  if (auto fatal = first_fatal(diagnose(*host, c, Scope::FatalOnly)))
    return Error{*fatal, "preflight"};
  return {};
}

}  // namespace cf::doctor
