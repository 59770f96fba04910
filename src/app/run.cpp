// Running a command tree on the rootless-internal backend.
//
// Order of work (each step names itself in the error that stops it):
//   1. preflight   the doctor's checks, silently; the first fatal one stops us
//   2. plan        per-run addresses: a /30 in 10.240.0.0/16, a /64 in fd42::/16
//   3. overlays    resolv.conf (gateways as nameservers) and hosts (--hosts-file)
//   4. flow log    opened (created) only now, after all validation passed
//   5. sandbox     namespaces + init stub; tap0 comes back over SCM_RIGHTS
//   6. engine      the reactor serves tap0 until the stub exits; signals
//                  SIGINT/SIGTERM/SIGHUP/SIGQUIT are forwarded to the tree
//   7. report      exit code mapping, --fail-on-leak, summary
// The parent turns non-dumpable before the tree runs any command, so nothing
// in the tree can ptrace or read the engine's memory.
#include "app/run.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <netdb.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <sstream>

#include "app/overlays.hpp"
#include "capture/capture.hpp"
#include "common/clock.hpp"
#include "common/net_plan.hpp"
#include "common/random.hpp"
#include "doctor/doctor.hpp"
#include "engine/engine.hpp"
#include "observe/recorder.hpp"
#include "observe/summary.hpp"
#include "policy/policy.hpp"
#include "proxy/proxy.hpp"
#include "sandbox/sandbox.hpp"

namespace cf::app {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The one way a step reports its failure: `childflow: error: <step>: <message>`.
void fail(const Error& e) {
  std::fputs(fmt::format("childflow: error: {}\n", e.str()).c_str(), stderr);
}

bool host_has_default_route6() {
  std::ifstream in("/proc/net/ipv6_route");
  std::string dst, plen;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    ls >> dst >> plen;
    if (dst == std::string(32, '0') && plen == "00" && line.find(" lo") == std::string::npos &&
        line.find("ffffffff") == std::string::npos)
      return true;
  }
  return false;
}

NetPlan make_plan(const Config& c) {
  NetPlan p;
  uint32_t r = random_u32();
  uint32_t base = (10u << 24) | (240u << 16) | ((r & 0x3fff) << 2);
  p.gw4 = IpAddr::v4(base + 1);
  p.child4 = IpAddr::v4(base + 2);
  p.prefix4 = 30;
  uint32_t r6 = random_u32();
  std::array<uint8_t, 16> b{};
  b[0] = 0xfd;
  b[1] = 0x42;
  b[2] = uint8_t(r6 >> 24);
  b[3] = uint8_t(r6 >> 16);
  b[4] = uint8_t(r6 >> 8);
  b[5] = uint8_t(r6);
  b[15] = 1;
  p.gw6 = IpAddr::v6_bytes(b.data());
  b[15] = 2;
  p.child6 = IpAddr::v6_bytes(b.data());
  p.prefix6 = 64;
  p.gw_mac = {0x02, 0x63, 0x66, uint8_t(r >> 16), uint8_t(r >> 8), 0x01};
  p.child_mac = {0x02, 0x63, 0x66, uint8_t(r >> 16), uint8_t(r >> 8), 0x02};
  p.mtu = c.mtu;
  p.ipv6 = true;
  return p;
}

// The proxy's address, resolved once before the tree starts (the engine
// never blocks on name resolution). IPv4 first, as curl does.
Result<IpAddr> resolve_proxy(const ProxyUri& uri) {
  if (auto ip = IpAddr::parse(uri.host)) return *ip;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(uri.host.c_str(), nullptr, &hints, &res);
  if (rc != 0)
    return Error{fmt::format("cannot resolve proxy host `{}`: {}", uri.host, gai_strerror(rc)),
                 "proxy"};
  std::optional<IpAddr> v4, v6;
  for (addrinfo* a = res; a; a = a->ai_next) {
    IpAddr ip;
    uint16_t port;
    if (!from_sockaddr(a->ai_addr, &ip, &port)) continue;
    if (ip.is_v4() && !v4) v4 = ip;
    if (!ip.is_v4() && !v6) v6 = ip;
  }
  freeaddrinfo(res);
  if (v4) return *v4;
  if (v6) return *v6;
  return Error{fmt::format("cannot resolve proxy host `{}`: no address", uri.host), "proxy"};
}

}  // namespace

int run_tree(const Config& c) {
  uint64_t started = monotonic_ms();
  if (c.backend == Backend::Rootful) {
    fail(Error{"the rootful backend (--root) is not available in this build; "
               "drop --root or `backend = \"rootful\"` to use rootless-internal",
               "backend"});
    return 1;
  }
  if (auto ready = doctor::preflight(c); !ready) {
    fail(ready.error());
    return 1;
  }
  NetPlan plan = make_plan(c);

  std::string host_resolv = read_file("/etc/resolv.conf");
  engine::Options eo;
  eo.plan = plan;
  eo.resolver = c.dns ? c.dns : first_nameserver(host_resolv);
  eo.host_has_ipv6 = host_has_default_route6();
  eo.allow_host_loopback = c.allow_host_loopback;

  std::unique_ptr<proxy::Upstream> upstream;
  if (c.proxy && !c.offline) {
    auto addr = resolve_proxy(*c.proxy);
    if (!addr) {
      fail(addr.error());
      return 1;
    }
    auto up = proxy::Upstream::create(c);
    if (!up) {
      fail(up.error());
      return 1;
    }
    upstream = std::move(up).value();
    eo.proxy_addr = *addr;
    eo.proxy = upstream.get();
  }

  sandbox::Options so;
  so.command = c.command;
  so.plan = plan;
  sandbox::Overlays& ov = so.overlays;
  ov.resolv_conf = make_resolv_conf(host_resolv, plan.gw4,
                                    plan.ipv6 ? std::optional<IpAddr>(plan.gw6) : std::nullopt,
                                    !c.dns.has_value());
  if (c.hosts_file) ov.hosts = make_hosts(read_file(*c.hosts_file), read_file("/etc/hosts"));

  // Every flow of the tree holds a host socket in the engine: lift the soft
  // fd limit to the hard one. The tree inherits it; raising a soft limit
  // grants nothing the hard limit did not already allow.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    rlimit raised = nofile;
    raised.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &raised);
  }

  observe::Recorder rec(c);
  if (auto opened = rec.open(); !opened) {
    fail(opened.error());
    return 1;
  }
  policy::Policy pol(c);

  std::optional<capture::Capture> cap;
  if (c.capture) {
    capture::Endpoints ends;
    ends.child4 = plan.child4;
    if (plan.ipv6) ends.child6 = plan.child6;
    ends.host4 = capture::host_egress(Family::V4);
    ends.host6 = capture::host_egress(Family::V6);
    if (ends.host4) ends.host_ifname = capture::interface_of(*ends.host4);
    else if (ends.host6) ends.host_ifname = capture::interface_of(*ends.host6);
    ends.gateway4 = plan.gw4;
    if (plan.ipv6) ends.gateway6 = plan.gw6;
    ends.resolver = eo.resolver;
    auto opened = capture::Capture::open(c, ends);
    if (!opened) {
      fail(opened.error());
      return 1;
    }
    cap.emplace(std::move(opened).value());
    eo.capture = &*cap;
  }

  // Signals for the tree arrive through a signalfd in the reactor.
  sigset_t fwd;
  sigemptyset(&fwd);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&fwd, s);
  sigset_t old;
  sigprocmask(SIG_BLOCK, &fwd, &old);
  signal(SIGPIPE, SIG_IGN);
  sigset_t only_fwd = fwd;
  sigdelset(&only_fwd, SIGCHLD);
  UniqueFd sigfd(signalfd(-1, &only_fwd, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!sigfd) {
    fail(errno_error("signals: signalfd"));
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return 1;
  }

  auto launched = sandbox::launch(so);
  if (!launched) {
    fail(launched.error());
    rec.runtime_failure("sandbox", "launch_failed", launched.error().str());
    sigprocmask(SIG_SETMASK, &old, nullptr);
    return 1;
  }
  sandbox::Tree tree = std::move(launched).value();
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (!sandbox::release(tree)) {
    fail(Error{"the init stub did not take the release message", "sandbox"});
    return 1;
  }
  engine::Stats stats;
  auto on_signal = [&](int sig, int code) {
    if (code == SI_KERNEL) return;  // the terminal already signalled the group
    sandbox::forward_signal(tree, sig);
  };
  auto served = engine::run(eo, std::move(tree.tap), tree.pidfd.get(), sigfd.get(), on_signal,
                            pol, rec, &stats);
  std::optional<int> code;
  if (!served) {
    fail(served.error());
    rec.runtime_failure("engine", "engine_failed", served.error().str());
    tree = sandbox::Tree{};  // kills and reaps the tree: fail closed
    code = 1;
  } else {
    code = sandbox::try_reap(tree);
    if (!code) code = 1;
  }
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (cap) {
    if (auto closed = cap->close(); !closed) fail(closed.error());
  }

  int exit_code = *code;
  bool leak = false;
  if (c.fail_on_leak && exit_code == 0 && rec.counts().violations_total > 0) {
    leak = true;
    exit_code = 1;
    std::fputs(fmt::format("childflow: warning: --fail-on-leak: policy blocked {} "
                           "connection(s); exiting 1\n",
                           rec.counts().violations_total)
                   .c_str(),
               stderr);
  }
  rec.flush();
  if (c.summary) {
    observe::RunFacts facts;
    facts.exit_code = exit_code;
    facts.duration_ms = monotonic_ms() - started;
    facts.leak_failure = leak;
    facts.dropped_frames = stats.dropped_malformed + stats.dropped_fragment +
                           stats.dropped_spoofed;
    facts.evicted_flows = stats.dgram_evicted;
    std::string s = observe::render_summary(c, rec.counts(), facts);
    std::fwrite(s.data(), 1, s.size(), stderr);
  }
  return exit_code;
}

int run_cleanup(const Config&) {
  std::fputs("childflow: nothing to clean up: the rootful backend is not available in this "
             "build, and rootless runs leave no host state\n",
             stderr);
  return 0;
}

}  // namespace cf::app
