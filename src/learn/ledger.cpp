// What a command tree used, for --learn. See ledger.hpp.
#include "learn/ledger.hpp"

#include <charconv>
#include <fmt/format.h>

#include "config/values.hpp"

namespace cf::learn {
namespace {

constexpr std::string_view kMagic = "childflow-learn 1";

// A name as a profile would hold it, or nothing when it would not load.
std::optional<std::string> profile_name(std::string_view name) {
  auto n = config::normalise_domain(name);
  if (!n || *n != name) return std::nullopt;
  return *n;
}

std::optional<uint64_t> number(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

}  // namespace

Ledger::Ledger(std::optional<IpAddr> gw4, std::optional<IpAddr> gw6, size_t max_entries)
    : gw4_(gw4), gw6_(gw6), max_entries_(max_entries) {}

void Ledger::add(Counts& m, std::string_view key, uint64_t n) {
  if (auto it = m.find(key); it != m.end()) {
    it->second += n;
    return;
  }
  if (m.size() >= max_entries_) {
    dropped_ += n;
    return;
  }
  m.emplace(std::string(key), n);
}

void Ledger::flow(const IpAddr& ip, std::span<const std::string> names) {
  ++flows_;
  bool named = false;
  for (const std::string& n : names) {
    if (domains_.count(n) || profile_name(n)) {
      add(domains_, n, 1);
      named = true;
    } else {
      ++skipped_;
    }
  }
  if (named) return;
  IpAddr judged = ip;
  if ((gw4_ && ip == *gw4_) || (gw6_ && ip == *gw6_)) {
    judged = *IpAddr::parse(ip.is_v4() ? "127.0.0.1" : "::1");
    host_loopback_ = true;
  }
  add(cidrs_, Cidr{judged, uint8_t(judged.is_v4() ? 32 : 128)}.str(), 1);
}

void Ledger::name_sent(std::string_view name) {
  if (domains_.count(name)) add(domains_, name, 1);
  else if (exact_.count(name) || profile_name(name)) add(exact_, name, 1);
  else ++skipped_;
}

std::string Ledger::serialize() const {
  std::string out =
      fmt::format("{}\nflows {}\ndropped {}\nskipped {}\nunreadable {}\nloopback {}\n", kMagic,
                  flows_, dropped_, skipped_, unreadable_, host_loopback_ ? 1 : 0);
  for (const auto& [name, n] : domains_) out += fmt::format("d {} {}\n", n, name);
  for (const auto& [name, n] : exact_) out += fmt::format("e {} {}\n", n, name);
  for (const auto& [cidr, n] : cidrs_) out += fmt::format("a {} {}\n", n, cidr);
  return out + "end\n";
}

Result<Ledger> Ledger::parse(std::string_view text) {
  Ledger l;
  l.max_entries_ = SIZE_MAX;
  auto bad = [](std::string_view why) {
    return Error{fmt::format("the learnt entries are unreadable ({})", why)};
  };
  size_t pos = 0;
  auto next_line = [&]() -> std::optional<std::string_view> {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return std::nullopt;
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    return line;
  };
  auto line = next_line();
  if (!line || *line != kMagic) return bad("no header");
  for (std::string_view field : {"flows", "dropped", "skipped", "unreadable", "loopback"}) {
    line = next_line();
    if (!line || !line->starts_with(field) || line->size() <= field.size() + 1 ||
        (*line)[field.size()] != ' ')
      return bad(field);
    auto v = number(line->substr(field.size() + 1));
    if (!v) return bad(field);
    if (field == "flows") l.flows_ = *v;
    else if (field == "dropped") l.dropped_ = *v;
    else if (field == "skipped") l.skipped_ = *v;
    else if (field == "unreadable") l.unreadable_ = *v;
    else l.host_loopback_ = *v != 0;
  }
  while ((line = next_line())) {
    if (*line == "end") {
      if (pos != text.size()) return bad("bytes after the end");
      return l;
    }
    if (line->size() < 4 || (*line)[1] != ' ') return bad("an entry");
    char kind = (*line)[0];
    std::string_view rest = line->substr(2);
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos) return bad("an entry");
    auto n = number(rest.substr(0, sp));
    std::string_view key = rest.substr(sp + 1);
    if (!n) return bad("a count");
    if (kind == 'd' || kind == 'e') {
      if (!profile_name(key)) return bad("a name");
      (kind == 'd' ? l.domains_ : l.exact_)[std::string(key)] += *n;
    } else if (kind == 'a') {
      auto c = Cidr::parse(key);
      if (!c || c->str() != key) return bad("an address");
      l.cidrs_[std::string(key)] += *n;
    } else {
      return bad("an entry");
    }
  }
  return bad("no end");
}

}  // namespace cf::learn
