// `childflow --doctor` and the silent preflight (docs/doctor-schema.md).
//
// Both run the same checks (checks.hpp) against the real host (SystemHost):
// --doctor runs all of them and prints the report on stdout; preflight runs
// only those that can be fatal for this configuration, prints nothing, and
// returns the first fatal one as a line for the run path to show.
//
// A trial in a short-lived child is what a check costs most: the user
// namespace trial forks, creates user, network, mount and PID namespaces
// and tears them down, a few ms of every rootless start-up
// (docs/performance.md, "Start-up"). The launch of the sandbox creates the
// same namespaces right after preflight and fails closed by itself, so a
// rootless preflight leaves the trial out, and explain_launch runs it only
// once a launch has failed, to say why in the words preflight would have
// used. The checks that only read files (the quota, the distribution and
// AppArmor switches) stay in preflight: they find the common causes before
// anything is created. A rootful preflight keeps its nftables trials.
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
  if (auto fatal = first_fatal(diagnose(*host, c, Scope::Preflight)))
    return Error{*fatal, "preflight"};
  return {};
}

std::optional<Error> explain_launch(const Config& c) {
  auto host = make_system_host();
  if (auto fatal = first_fatal(diagnose(*host, c, Scope::FatalOnly)))
    return Error{*fatal, "preflight"};
  return std::nullopt;
}

}  // namespace cf::doctor
