// The host side of a rootful run. See host.hpp.
#include "rootful/host.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <net/if.h>
#include <netdb.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include <fmt/format.h>

#include "netlink/netlink.hpp"
#include "nft/nft.hpp"
#include "rootful/routing.hpp"
#include "rootful/uplink.hpp"
#include "sandbox/sandbox.hpp"

namespace cf::rootful {
namespace {

Status write_proc(const std::string& path, const char* value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno_error(fmt::format("rootful: sysctl {}", path));
  ssize_t n = ::write(fd, value, strlen(value));
  int err = errno;
  ::close(fd);
  if (n < 0) return errno_error(fmt::format("rootful: sysctl {}={}", path, value), err);
  return {};
}

std::optional<policy::Proto> proto_of(const std::string& s, bool v4) {
  if (s == "tcp" || s == "6") return policy::Proto::Tcp;
  if (s == "udp" || s == "17") return policy::Proto::Udp;
  if (v4 && (s == "icmp" || s == "1")) return policy::Proto::Icmp4;
  if (!v4 && (s == "ipv6-icmp" || s == "icmpv6" || s == "58")) return policy::Proto::Icmp6;
  return std::nullopt;
}

std::optional<uint16_t> port_of(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    unsigned long v = std::stoul(s);
    if (v <= 65535) return uint16_t(v);
    return std::nullopt;
  }
  if (const servent* se = ::getservbyname(s.c_str(), nullptr)) return ntohs(uint16_t(se->s_port));
  return std::nullopt;
}

std::string trim(std::string s) {
  size_t a = s.find_first_not_of(" \t\n");
  size_t b = s.find_last_not_of(" \t\n");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// Whether libnftables lists `table` (inet).
bool table_exists(const std::string& table) {
  auto out = nft_run("list tables inet\n");
  if (!out) return true;  // unknown: try to delete it anyway
  std::istringstream in(*out);
  std::string line;
  while (std::getline(in, line))
    if (trim(line) == "table inet " + table) return true;
  return false;
}

// Deletes what a record names, if it is still there: the link (a veth of
// that name only), the table, and the policy routing of --proxy and of
// --iface (routing.hpp). Errors are collected as text.
std::string undo(const state::Record& r) {
  std::string errors = remove_routing(r.mark, r.rule_priority, r.rule_priority);
  if (!errors.empty()) errors += "; ";
  if (auto nl = netlink::Socket::open()) {
    auto kind = nl->link_kind(r.link);
    if (!kind) errors += kind.error().str() + "; ";
    else if (*kind && **kind == "veth")
      if (auto s = nl->delete_link(r.link); !s) errors += s.error().str() + "; ";
  } else {
    errors += nl.error().str() + "; ";
  }
  if (table_exists(r.table))
    if (auto s = nft_run(delete_table(r.table)); !s) errors += s.error().str() + "; ";
  if (std::string e = remove_routing(r.pin_table, r.pin_pref4, r.pin_pref6); !e.empty())
    errors += e + "; ";
  if (errors.size() >= 2) errors.resize(errors.size() - 2);
  return errors;
}

}  // namespace

Result<std::string> nft_run(const std::string& commands) {
  auto api = nft::api();
  if (!api) return Error{api.error().message, "rootful: nftables"};
  const nft::Api& a = **api;
  nft_ctx* ctx = a.ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return Error{"nft_ctx_new failed", "rootful: nftables"};
  a.buffer_output(ctx);
  a.buffer_error(ctx);
  int rc = a.run_cmd_from_buffer(ctx, commands.c_str());
  // Each get_*_buffer call hands the text over once (the buffer is then
  // emptied): one call each.
  const char* o = a.get_output_buffer(ctx);
  const char* e = a.get_error_buffer(ctx);
  std::string out = o ? o : "", err = e ? e : "";
  a.ctx_free(ctx);
  if (rc != 0) {
    std::string first = err.substr(0, err.find('\n'));
    return Error{first.empty() ? "failed" : first, "rootful: nftables"};
  }
  return out;
}

std::vector<Denied> parse_denied(const std::string& listing) {
  std::vector<Denied> out;
  const bool v4 = listing.find("type ipv4_addr") != std::string::npos;
  size_t start = listing.find("elements = {");
  if (start == std::string::npos) return out;
  start += 12;
  size_t end = listing.find('}', start);
  if (end == std::string::npos) return out;
  std::istringstream in(listing.substr(start, end - start));
  std::string element;
  while (std::getline(in, element, ',')) {
    std::vector<std::string> parts;
    std::string rest = trim(element);
    for (size_t p; (p = rest.find(" . ")) != std::string::npos; rest = rest.substr(p + 3))
      parts.push_back(trim(rest.substr(0, p)));
    parts.push_back(trim(rest));
    if (parts.size() < 2 || parts.size() > 3) continue;
    auto ip = IpAddr::parse(parts[0]);
    auto proto = proto_of(parts[1], v4);
    if (!ip || !proto || ip->is_v4() != v4) continue;
    Denied d{*proto, *ip, std::nullopt};
    if (parts.size() == 3) {
      d.port = port_of(parts[2]);
      if (!d.port) continue;
    }
    out.push_back(d);
  }
  return out;
}

Result<std::unique_ptr<Host>> Host::setup(RulesetSpec spec, const std::optional<std::string>& iface,
                                          bool quiet) {
  if (auto api = nft::api(); !api) return Error{api.error().message, "rootful: nftables"};
  std::unique_ptr<Host> h(new Host());
  h->record_ = state::describe_self(state::new_run_id());
  spec.table = h->record_.table;
  spec.link = h->record_.link;
  h->spec_ = spec;
  {
    auto lock = state::Lock::take();
    if (!lock) return lock.error();
    for (const state::Record& r : state::records())
      if (!state::alive(r) && r.netns == h->record_.netns && !quiet)
        std::fputs(fmt::format("childflow: warning: run {} (pid {}) was killed and left its "
                               "state (nftables table {}, forwarding): run `childflow "
                               "--cleanup` as root to remove it\n",
                               r.run, r.pid, r.table)
                       .c_str(),
                   stderr);
    // Marks, tables and rule priorities: chosen under the lock, reserved by
    // the record before they exist, so two runs never take the same
    // (routing.hpp).
    if (iface) {
      auto pin = plan_routing(kIfaceRange, h->record_, fmt::format("rootful: --iface {}", *iface));
      if (!pin) return pin.error();
      h->record_.pin_iface = *iface;
      h->record_.pin_mark = h->record_.pin_table = pin->value;
      h->record_.pin_pref4 = pin->priority;
      h->record_.pin_pref6 = spec.plan.ipv6 ? pin->priority : 0;
      h->spec_.egress_mark = spec.egress_mark = pin->value;
    }
    if (spec.tproxy.port4) {
      auto chosen = plan_routing(kTproxyRange, h->record_, "rootful: TPROXY routing");
      if (!chosen) return chosen.error();
      spec.tproxy.mark = h->spec_.tproxy.mark = chosen->value;
      h->record_.mark = h->record_.route_table = chosen->value;
      h->record_.rule_priority = chosen->priority;
    }
    if (auto s = state::write_record(h->record_); !s) return s.error();
    h->recorded_ = true;
    h->forwarding_ = true;  // restored by teardown even if enabling fails half-way
    if (auto s = state::enable_forwarding(h->record_.netns); !s) return s.error();
    if (iface) {
      const state::Record& r = h->record_;
      auto routes = iface_routes(*iface, r.pin_table, r.pin_pref6 != 0);
      if (!routes) return routes.error();
      if (auto s = add_routing({r.pin_table, r.pin_pref4}, *routes, r.pin_pref6 != 0); !s)
        return s.error();
    }
  }
  if (auto s = nft_run(ruleset(spec)); !s)
    return Error{s.error().message, fmt::format("rootful: load nftables table {}", spec.table)};
  if (h->record_.mark) {
    const unsigned lo = ::if_nametoindex("lo");
    if (lo == 0) return Error{"no loopback link", "rootful: TPROXY routing"};
    const state::Record& r = h->record_;
    if (auto s = add_routing({r.mark, r.rule_priority},
                             local_delivery_routes(r.route_table, int(lo), spec.plan.ipv6),
                             spec.plan.ipv6);
        !s)
      return s.error();
  }
  return h;
}

Status Host::attach(pid_t init_pid) {
  const NetPlan& p = spec_.plan;
  auto nl = netlink::Socket::open();
  if (!nl) return nl.error();
  if (auto s = nl->add_veth(record_.link, p.gw_mac, sandbox::kLinkName, p.child_mac, init_pid,
                            p.mtu);
      !s)
    return s;
  const std::string conf = fmt::format("/proc/sys/net/ipv6/conf/{}/", record_.link);
  if (p.ipv6) {
    for (const char* key : {"disable_ipv6", "accept_ra", "accept_dad", "dad_transmits"})
      if (auto s = write_proc(conf + key, "0"); !s) return s;
  } else if (::access((conf + "disable_ipv6").c_str(), F_OK) == 0) {
    if (auto s = write_proc(conf + "disable_ipv6", "1"); !s) return s;
  }
  auto link = nl->find_link(record_.link);
  if (!link) return link.error();
  if (auto s = nl->add_address(*link, p.gw4, p.prefix4, false); !s) return s;
  if (p.ipv6)
    if (auto s = nl->add_address(*link, p.gw6, p.prefix6, true); !s) return s;
  return nl->set_up(*link);
}

std::vector<Denied> Host::denied() {
  std::vector<Denied> out;
  for (const char* set : kDeniedSets) {
    auto listing = nft_run(fmt::format("list set inet {} {}\n", record_.table, set));
    if (!listing) continue;
    auto d = parse_denied(*listing);
    out.insert(out.end(), d.begin(), d.end());
  }
  return out;
}

void Host::teardown() {
  if (!recorded_) return;
  std::string errors = undo(record_);
  auto lock = state::Lock::take();
  state::remove_record(record_.run);
  recorded_ = false;
  if (forwarding_)
    if (auto s = state::restore_forwarding_if_last(record_.netns); !s)
      errors += (errors.empty() ? "" : "; ") + s.error().str();
  if (!errors.empty())
    std::fputs(fmt::format("childflow: error: rootful: cleaning up run {}: {}\n", record_.run,
                           errors)
                   .c_str(),
               stderr);
}

Host::~Host() { teardown(); }

int cleanup() {
  if (::geteuid() != 0) {
    std::fputs("childflow: error: --cleanup changes host networking and needs root: run it "
               "as root (sudo childflow --cleanup)\n",
               stderr);
    return 1;
  }
  auto lock = state::Lock::take();
  if (!lock) {
    std::fputs(fmt::format("childflow: error: {}\n", lock.error().str()).c_str(), stderr);
    return 1;
  }
  const uint64_t netns = state::current_netns();
  int cleaned = 0, failed = 0, elsewhere = 0;
  for (const state::Record& r : state::records()) {
    if (state::alive(r)) continue;
    if (r.netns != netns) {
      ++elsewhere;
      continue;
    }
    std::string errors = undo(r);
    if (!errors.empty()) {
      ++failed;
      std::fputs(fmt::format("childflow: error: --cleanup: run {}: {}\n", r.run, errors).c_str(),
                 stderr);
      continue;
    }
    state::remove_record(r.run);
    ++cleaned;
    std::string pin = r.pin_table ? fmt::format(", --iface {} rules and routing table {:#x}",
                                                r.pin_iface, r.pin_table)
                                  : "";
    std::string routing =
        r.mark ? fmt::format(", ip rules (priority {}, fwmark {:#x}) and routes of table {}",
                             r.rule_priority, r.mark, r.route_table)
               : "";
    std::fputs(fmt::format("childflow: --cleanup: removed run {} (pid {}): nftables table {}, "
                           "link {}{}{}\n",
                           r.run, r.pid, r.table, r.link, routing, pin)
                   .c_str(),
               stderr);
  }
  if (auto s = state::restore_forwarding_if_last(netns); !s) {
    ++failed;
    std::fputs(fmt::format("childflow: error: --cleanup: {}\n", s.error().str()).c_str(), stderr);
  }
  if (cleaned == 0 && failed == 0)
    std::fputs("childflow: --cleanup: nothing to clean up in this network namespace\n", stderr);
  if (elsewhere)
    std::fputs(fmt::format("childflow: --cleanup: {} killed run(s) of other network namespaces "
                           "left alone: run --cleanup in the namespace they ran in\n",
                           elsewhere)
                   .c_str(),
               stderr);
  return failed ? 1 : 0;
}

}  // namespace cf::rootful
