// PLACEHOLDER: replaced by profiles (issue 2).
#include "config/profile.hpp"
namespace cf::config {
std::string dump_profile(const Config&) { return {}; }
}  // namespace cf::config
