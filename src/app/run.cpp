// PLACEHOLDER: replaced by the rootless run (issue 3).
#include "app/run.hpp"
#include <cstdio>
namespace cf::app {
int run_tree(const Config&) { std::fputs("childflow: error: running is not built yet\n", stderr); return 1; }
int run_cleanup(const Config&) { return 0; }
}  // namespace cf::app
