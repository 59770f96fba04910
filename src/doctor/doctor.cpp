// PLACEHOLDER: replaced by the doctor module (issue 5).
#include "doctor/doctor.hpp"
#include <cstdio>
namespace cf::doctor {
int run(const Config&) { std::fputs("childflow: error: --doctor is not built yet\n", stderr); return 1; }
std::optional<std::string> preflight(const Config&) { return std::nullopt; }
}  // namespace cf::doctor
