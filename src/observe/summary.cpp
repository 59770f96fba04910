#include "observe/summary.hpp"

#include <algorithm>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "capture/capture.hpp"

namespace cf::observe {
namespace {

using Ranked = std::vector<std::pair<std::string, uint64_t>>;

// Ranked by count (descending), then key; at most n entries.
Ranked top(const std::map<std::string, uint64_t>& m, size_t n) {
  Ranked v(m.begin(), m.end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  if (v.size() > n) v.resize(n);
  return v;
}

std::string shell_join(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    bool plain = !a.empty() && a.find_first_not_of(
                                   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789-_./:=@%+,") == std::string::npos;
    if (plain) {
      out += a;
    } else {
      out += '\'';
      for (char ch : a) {
        if (ch == '\'') out += "'\\''";
        else out += ch;
      }
      out += '\'';
    }
  }
  return out;
}

std::vector<std::string> capture_outputs(const Config& c) { return capture::output_paths(c); }

}  // namespace

std::vector<std::string> active_controls(const Config& c) {
  std::vector<std::string> v;
  if (c.offline) v.push_back(c.proxy ? "--offline (wins over --proxy)" : "--offline");
  if (c.block_metadata) v.push_back("--block-metadata");
  if (c.block_private) v.push_back("--block-private");
  for (const auto& x : c.deny_cidrs) v.push_back("--deny-cidr " + x.str());
  for (const auto& x : c.deny_domains_exact) v.push_back("--deny-domain-exact " + x);
  for (const auto& x : c.deny_domains) v.push_back("--deny-domain " + x);
  for (const auto& x : c.allow_cidrs) v.push_back("--allow-cidr " + x.str());
  for (const auto& x : c.allow_domains_exact) v.push_back("--allow-domain-exact " + x);
  for (const auto& x : c.allow_domains) v.push_back("--allow-domain " + x);
  if (c.default_policy == DefaultPolicy::Deny) v.push_back("--default-policy deny");
  if (c.proxy) v.push_back("--proxy " + c.proxy->str());
  if (c.proxy_dns == ProxyDns::Remote) v.push_back("--proxy-dns remote");
  if (c.proxy_only) v.push_back("--proxy-only");
  if (c.fail_on_leak) v.push_back("--fail-on-leak");
  if (c.allow_host_loopback) v.push_back("--allow-host-loopback");
  return v;
}

std::string render_summary(const Config& c, const Recorder::Counts& k, const RunFacts& f) {
  auto controls = active_controls(c);
  auto captures = capture_outputs(c);
  auto targets = top(k.targets.keys, 10);
  auto violations = top(k.violations.keys, 10);
  auto errors = top(k.connect_errors.keys, 10);
  auto names = top(k.dns_names.keys, 10);
  if (c.summary_format == TextOrJson::Json) {
    nlohmann::ordered_json j;
    j["backend"] = name(c.backend);
    j["command"] = c.command;
    j["controls"] = controls;
    j["capture_outputs"] = captures;
    j["flow_log"] = c.flow_log ? nlohmann::ordered_json(*c.flow_log) : nlohmann::ordered_json();
    j["event_counts"] = k.events;
    auto ranked = [](const Ranked& r) {
      auto a = nlohmann::ordered_json::array();
      for (const auto& [key, n] : r) a.push_back({{"key", key}, {"count", n}});
      return a;
    };
    j["top_targets"] = ranked(targets);
    j["top_dns_names"] = ranked(names);
    j["policy_violations"] = k.violations_total;
    j["top_policy_violations"] = ranked(violations);
    j["connect_errors"] = ranked(errors);
    j["dropped_frames"] = f.dropped_frames;
    j["evicted_flows"] = f.evicted_flows;
    nlohmann::ordered_json limits = nlohmann::ordered_json::object();
    for (size_t i = 0; i < kLimitCount; ++i) limits[name(Limit(i))] = k.limits[i];
    j["limits_hit"] = std::move(limits);
    j["other_keys"] = {{"top_targets", k.targets.other},
                       {"top_dns_names", k.dns_names.other},
                       {"top_policy_violations", k.violations.other},
                       {"connect_errors", k.connect_errors.other}};
    j["duration_ms"] = f.duration_ms;
    j["leak_failure"] = f.leak_failure;
    j["exit_code"] = f.exit_code;
    return j.dump() + "\n";
  }
  std::string o = "childflow summary\n";
  o += fmt::format("  backend:    {}\n", name(c.backend));
  o += fmt::format("  command:    {}\n", shell_join(c.command));
  o += controls.empty() ? "  controls:   none\n" : "  controls:\n";
  for (const auto& x : controls) o += fmt::format("    {}\n", x);
  if (!captures.empty()) {
    o += "  capture:\n";
    for (const auto& x : captures) o += fmt::format("    {}\n", x);
  }
  o += fmt::format("  flow log:   {}\n", c.flow_log ? *c.flow_log : "none");
  std::string counts;
  for (const auto& [ev, n] : k.events) counts += fmt::format("{}{}={}", counts.empty() ? "" : " ", ev, n);
  o += fmt::format("  events:     {}\n", counts.empty() ? "none" : counts);
  auto section = [&](const char* title, const Ranked& r, const Recorder::Tally& t) {
    if (r.empty()) return;
    o += fmt::format("  {}:\n", title);
    for (const auto& [key, n] : r) o += fmt::format("    {:>5}  {}\n", n, key);
    if (t.other) o += fmt::format("    {:>5}  (other: keys beyond the first {})\n", t.other, t.keys.size());
  };
  section("top targets", targets, k.targets);
  section("top DNS names", names, k.dns_names);
  o += fmt::format("  policy violations: {}\n", k.violations_total);
  section("top policy violations", violations, k.violations);
  section("connect errors", errors, k.connect_errors);
  if (f.dropped_frames) o += fmt::format("  dropped frames: {}\n", f.dropped_frames);
  if (f.evicted_flows)
    o += fmt::format("  evicted flows: {} (the UDP or ICMP flow table was full)\n", f.evicted_flows);
  std::string hits;
  for (size_t i = 0; i < kLimitCount; ++i)
    if (k.limits[i]) hits += fmt::format("{}{}={}", hits.empty() ? "" : " ", name(Limit(i)), k.limits[i]);
  if (!hits.empty()) o += fmt::format("  limits hit: {}\n", hits);
  o += fmt::format("  duration:   {} ms\n", f.duration_ms);
  o += fmt::format("  exit code:  {}{}\n", f.exit_code,
                   f.leak_failure ? " (--fail-on-leak: the command exited 0)" : "");
  return o;
}

std::string exit_notice(const Config& c, const Recorder::Counts& counts, bool leak_warned) {
  uint64_t n = counts.violations_total;
  if (n == 0 || c.verbosity != 0 || c.summary || leak_warned) return {};
  uint64_t lookups = counts.violations_dns, others = n - lookups;
  std::string what;
  if (others) what = fmt::format("{} connection{}", others, others == 1 ? "" : "s");
  if (others && lookups) what += " and ";
  if (lookups) what += fmt::format("{} DNS lookup{}", lookups, lookups == 1 ? "" : "s");
  return fmt::format("childflow: policy denied {} (use -v or --summary to see which)\n", what);
}

}  // namespace cf::observe
