#include "common/text.hpp"

#include <cerrno>
#include <cstring>

namespace cf {

std::string one_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::string s;
  s.reserve(text.size());
  for (char ch : text) s += (ch == '\n') ? ' ' : ch;
  return s;
}

const char* connect_error_text(int err) {
  switch (err) {
    case ECONNREFUSED: return "connection refused";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case ETIMEDOUT: return "timed out";
    default: return strerror(err);
  }
}

}  // namespace cf
