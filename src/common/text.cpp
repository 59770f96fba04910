#include "common/text.hpp"

namespace cf {

std::string one_line(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::string s;
  s.reserve(text.size());
  for (char ch : text) s += (ch == '\n') ? ' ' : ch;
  return s;
}

}  // namespace cf
