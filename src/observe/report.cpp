// PLACEHOLDER: replaced by the report (issue 4).
#include "observe/report.hpp"
#include <cstdio>
namespace cf::observe {
int report(const Config&) { std::fputs("childflow: error: --report is not built yet\n", stderr); return 1; }
}  // namespace cf::observe
