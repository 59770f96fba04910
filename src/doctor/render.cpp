// Text and JSON rendering of a doctor Report; see render.hpp for the shapes
// and docs/doctor-schema.md for the JSON contract.
#include "doctor/render.hpp"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace cf::doctor {

namespace {

const char* tag(Status s) {
  switch (s) {
    case Status::Ok: return "[OK]  ";
    case Status::Warning: return "[WARN]";
    case Status::Fatal: return "[FATAL]";
  }
  return "[?]   ";
}

}  // namespace

std::string render_text(const Report& r) {
  std::string out = fmt::format("childflow doctor: backend {}: {}\n", name(r.backend),
                                name(r.overall()));
  for (const Check& c : r.checks) {
    // "[OK]   label", "[WARN] label", "[FATAL] label".
    out += fmt::format("{} {}: {}\n", tag(c.status), c.label, c.detail);
    if (c.status != Status::Ok) out += fmt::format("    hint: {}\n", c.hint);
  }
  return out;
}

std::string render_json(const Report& r) {
  nlohmann::ordered_json capabilities = nlohmann::ordered_json::array();
  nlohmann::ordered_json preflight = nlohmann::ordered_json::array();
  for (const Check& c : r.checks) {
    nlohmann::ordered_json e;
    e["key"] = c.key;
    e["label"] = c.label;
    e["status"] = name(c.status);
    e["detail"] = c.detail;
    e["hint"] = c.status == Status::Ok ? nlohmann::ordered_json(nullptr)
                                       : nlohmann::ordered_json(c.hint);
    (c.section == Section::Capability ? capabilities : preflight).push_back(std::move(e));
  }
  nlohmann::ordered_json j;
  j["backend"] = name(r.backend);
  j["uid"] = r.uid;
  j["euid"] = r.euid;
  j["status"] = name(r.overall());
  j["capabilities"] = std::move(capabilities);
  j["preflight"] = std::move(preflight);
  return j.dump(2) + "\n";
}

std::optional<std::string> first_fatal(const Report& r) {
  for (const Check& c : r.checks)
    if (c.status == Status::Fatal)
      return fmt::format("{}: {} (hint: {})", c.label, c.detail, c.hint);
  return std::nullopt;
}

}  // namespace cf::doctor
