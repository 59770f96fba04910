#include "app/overlays.hpp"

#include <set>
#include <sstream>
#include <vector>

namespace cf::app {
namespace {

std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : line) {
    if (ch == '#') break;
    if (ch == ' ' || ch == '\t' || ch == '\r') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur.push_back(ch);
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}

template <typename F>
void each_line(std::string_view text, F f) {
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    f(text.substr(start, nl - start));
    start = nl + 1;
  }
}

std::string lower(std::string s) {
  for (auto& ch : s)
    if (ch >= 'A' && ch <= 'Z') ch = char(ch - 'A' + 'a');
  return s;
}

}  // namespace

std::string make_resolv_conf(std::string_view host_text, const IpAddr& gw4,
                             const std::optional<IpAddr>& gw6, bool keep_host_lines) {
  std::string out = "# written by childflow for this command tree\n";
  out += "nameserver " + gw4.str() + "\n";
  if (gw6) out += "nameserver " + gw6->str() + "\n";
  if (keep_host_lines) {
    each_line(host_text, [&](std::string_view line) {
      auto w = words(line);
      if (!w.empty() && (w[0] == "search" || w[0] == "domain" || w[0] == "options")) {
        out += std::string(line);
        out += "\n";
      }
    });
  }
  return out;
}

std::string make_hosts(std::string_view file_text, std::string_view host_text) {
  std::set<std::string> defined;
  std::string out;
  each_line(file_text, [&](std::string_view line) {
    auto w = words(line);
    for (size_t i = 1; i < w.size(); ++i) defined.insert(lower(w[i]));
    out += std::string(line);
    out += "\n";
  });
  each_line(host_text, [&](std::string_view line) {
    auto w = words(line);
    if (w.size() < 2) return;
    std::string kept = w[0];
    for (size_t i = 1; i < w.size(); ++i)
      if (!defined.count(lower(w[i]))) kept += " " + w[i];
    if (kept != w[0]) out += kept + "\n";
  });
  return out;
}

std::optional<IpAddr> first_nameserver(std::string_view resolv_text) {
  std::optional<IpAddr> found;
  each_line(resolv_text, [&](std::string_view line) {
    if (found) return;
    auto w = words(line);
    if (w.size() >= 2 && w[0] == "nameserver") {
      std::string a = w[1];
      auto pct = a.find('%');  // fe80::1%eth0: zone ids are not usable here
      if (pct != std::string::npos) return;
      found = IpAddr::parse(a);
    }
  });
  return found;
}

}  // namespace cf::app
