// Running a command tree, on either backend.
//
// The backend seam (docs/design.md, "Backends"): both backends share the
// preflight, the plan, the overlays, the policy, the recorder (flow log,
// summary) and the report; they differ in what gives the tree its network
// and who serves it. rootless-internal: tap0 and the userspace engine
// (steps below). rootful: a veth pair, kernel forwarding and an nftables
// table on the host (rootful/host.hpp), with the DNS gate served by a
// forwarder on the host end (rootful/dns_forwarder.hpp); run_rootful.
//
// Order of work. Each step is one function below; the Error that stops a
// step names the step (its text starts with it), and fail() prints it as
// the one line `childflow: error: <step>: <message>`, exit code 1.
//    1. backend     rootful runs go to run_rootful after the preflight
//    2. preflight   the doctor's checks, silently; the first fatal one stops us
//                   (all but the user namespace trial: the launch in step 9
//                   is that trial, and when it fails the doctor runs the
//                   trial to say why, as preflight would have)
//    3. plan        per-run addresses: a /30 in 10.240.0.0/16, a /64 in fd42::/16
//    4. proxy       --proxy: its address, resolved once (the engine never
//                   blocks on a name), and its TLS context
//    5. overlays    resolv.conf (gateways as nameservers) and hosts (--hosts-file)
//    6. flow log    opened (created) only now, after all validation passed;
//                   --learn: its writer process is forked (learn/learn.hpp)
//    7. capture     --capture: the pcapng file(s)
//    8. signals     SIGINT/SIGTERM/SIGHUP/SIGQUIT blocked, read through a signalfd
//    9. sandbox     namespaces + init stub; tap0 comes back over SCM_RIGHTS;
//                   the parent turns non-dumpable and confines itself
//                   (src/confine/), then releases the command
//   10. engine      the reactor serves tap0 until the stub exits; the signals
//                   are forwarded to the tree
//   11. report      exit code mapping, --fail-on-leak, summary; --learn
//                   writes its profile when the engine served to the end
//                   (exit 1 instead of 0 when it could not)
// Steps 1-9 stop the run when they fail (from 9 on, the flow log records
// it). An engine failure kills the tree (fail closed) and the run still
// reports, with exit code 1; so does a capture file that fails to close.
// The parent turns non-dumpable before the tree runs any command, so nothing
// in the tree can ptrace or read the engine's memory.
#include "app/run.hpp"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>

#include "app/overlays.hpp"
#include "cli/validate.hpp"
#include "config/values.hpp"
#include "capture/capture.hpp"
#include "capture/link_tap.hpp"
#include "capture/wire.hpp"
#include "common/clock.hpp"
#include "confine/confine.hpp"
#include "common/net_plan.hpp"
#include "common/random.hpp"
#include "common/result.hpp"
#include "doctor/doctor.hpp"
#include "engine/engine.hpp"
#include "learn/learn.hpp"
#include "observe/recorder.hpp"
#include "observe/summary.hpp"
#include "policy/policy.hpp"
#include "engine/synth.hpp"
#include "proxy/proxy.hpp"
#include "rootful/conntrack.hpp"
#include "rootful/dns_forwarder.hpp"
#include "rootful/capture_notes.hpp"
#include "rootful/flow_ids.hpp"
#include "rootful/domain_sets.hpp"
#include "rootful/host.hpp"
#include "rootful/uplink.hpp"
#include "rootful/loop.hpp"
#include "rootful/relay.hpp"
#include "rootful/port_slot.hpp"
#include "sandbox/sandbox.hpp"

namespace cf::app {
namespace {

// The one way a step fails: `childflow: error: <step>: <message>` on
// stderr. Returns the exit code of a run that stops there.
int fail(const Error& e) {
  std::fputs(fmt::format("childflow: error: {}\n", e.str()).c_str(), stderr);
  return 1;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// 3. plan (2. preflight is doctor::preflight).
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

// Whether the host has an IPv6 default route: without one, the engine
// answers AAAA queries with no addresses.
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

// What the engine needs to know, from the Config and the host.
engine::Options engine_options(const Config& c, const NetPlan& plan,
                               const std::string& host_resolv) {
  engine::Options eo;
  eo.plan = plan;
  eo.resolver = c.dns ? c.dns : first_nameserver(host_resolv);
  eo.host_has_ipv6 = host_has_default_route6();
  eo.allow_host_loopback = c.allow_host_loopback;
  if (c.proxy_dns == ProxyDns::Remote) {
    // The engine answers every query itself: it is given no resolver at all,
    // so no name of the tree can reach one (docs/proxy.md).
    eo.proxy_dns_remote = true;
    eo.resolver.reset();
  }
  return eo;
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

// 4. proxy: where the engine connects for every TCP flow, and how.
struct ProxyRoute {
  IpAddr addr;
  std::unique_ptr<proxy::Upstream> upstream;
};

Result<ProxyRoute> prepare_proxy(const Config& c) {
  auto addr = resolve_proxy(*c.proxy);
  if (!addr) return addr.error();
  auto upstream = proxy::Upstream::create(c);
  if (!upstream) return upstream.error();
  return ProxyRoute{*addr, std::move(upstream).value()};
}

// 5. overlays, with everything else the tree is launched with. The hosts
// file is read once, here, and what was read is checked and used (a pipe
// gives its text only once; a file could change after the flags were read).
Result<sandbox::Options> tree_options(const Config& c, const NetPlan& plan,
                                      const std::string& host_resolv) {
  sandbox::Options so;
  so.command = c.command;
  so.plan = plan;
  so.as_root = c.as_root;
  // The host's search domains stay out with --dns, and with --proxy-dns
  // remote, where a short name would reach the proxy with the host's
  // domain appended.
  so.overlays.resolv_conf =
      make_resolv_conf(host_resolv, plan.gw4,
                       plan.ipv6 ? std::optional<IpAddr>(plan.gw6) : std::nullopt,
                       !c.dns.has_value() && c.proxy_dns == ProxyDns::Local);
  if (c.hosts_file) {
    auto text = config::read_hosts_file(*c.hosts_file);
    if (!text) return Error{text.error().message, "--hosts-file"};
    if (Status ok = config::check_hosts_text(*text, *c.hosts_file); !ok)
      return Error{ok.error().message, "--hosts-file"};
    so.overlays.hosts = make_hosts(*text, read_file("/etc/hosts"));
  }
  return so;
}

// Every flow of the tree holds a host socket in the engine: lift the soft
// fd limit to the hard one. The tree inherits it; raising a soft limit
// grants nothing the hard limit did not already allow. Best effort: a run
// under the old limit still works, with fewer flows at once.
void raise_fd_limit() {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    rlimit raised = nofile;
    raised.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &raised);
  }
}

// 7. capture: the engine hands it every frame; its endpoints say what the
// egress view rewrites.
Result<capture::Capture> open_capture(const Config& c, const NetPlan& plan,
                                      const std::optional<IpAddr>& resolver) {
  capture::Endpoints ends;
  ends.child4 = plan.child4;
  if (plan.ipv6) ends.child6 = plan.child6;
  ends.host4 = capture::host_egress(Family::V4);
  ends.host6 = capture::host_egress(Family::V6);
  if (ends.host4) ends.host_ifname = capture::interface_of(*ends.host4);
  else if (ends.host6) ends.host_ifname = capture::interface_of(*ends.host6);
  ends.gateway4 = plan.gw4;
  if (plan.ipv6) ends.gateway6 = plan.gw6;
  ends.resolver = resolver;
  return capture::Capture::open(c, ends);
}

// The rootful capture: the same views and files as rootless, fed by a
// packet socket on the veth's host end instead of the engine.
// wire-egress instead reads every link but loopback, filtered to the run's
// masquerade ports (capture/wire.hpp, rootful/port_slot.hpp).
Result<std::pair<capture::Capture, std::unique_ptr<capture::LinkTap>>> open_rootful_capture(
    const Config& c, const NetPlan& plan, const std::optional<IpAddr>& resolver,
    const std::string& link, const std::optional<rootful::PortSlot>& slot) {
  if (slot) {
    auto tap = capture::LinkTap::open(0, true);
    if (!tap) return tap.error();
    const rootful::PortRange r = slot->range();
    if (auto s = (*tap)->set_filter(
            capture::wire_range_filter(r.lo, r.hi, int(if_nametoindex("lo"))));
        !s)
      return s.error();
    auto cap = capture::Capture::open(c, {});
    if (!cap) return cap.error();
    return std::pair{std::move(cap).value(), std::move(tap).value()};
  }
  const unsigned ifindex = if_nametoindex(link.c_str());
  if (ifindex == 0) return errno_error("capture: the veth " + link);
  auto tap = capture::LinkTap::open(int(ifindex));  // before the files: a privilege error creates none
  if (!tap) return tap.error();
  capture::Endpoints ends;
  ends.child4 = plan.child4;
  if (plan.ipv6) ends.child6 = plan.child6;
  ends.host4 = capture::host_egress(Family::V4);
  ends.host6 = capture::host_egress(Family::V6);
  if (ends.host4) ends.host_ifname = capture::interface_of(*ends.host4);
  else if (ends.host6) ends.host_ifname = capture::interface_of(*ends.host6);
  ends.gateway4 = plan.gw4;
  if (plan.ipv6) ends.gateway6 = plan.gw6;
  ends.resolver = resolver;
  ends.child_ifname = link;
  ends.child_kind = "veth";
  auto cap = capture::Capture::open(c, ends);
  if (!cap) return cap.error();
  return std::pair{std::move(cap).value(), std::move(tap).value()};
}

// 8. signals: the ones the tree should get arrive through a signalfd in the
// reactor. stop() puts the caller's mask back; the destructor does too, for
// a run that stops early.
class ForwardedSignals {
 public:
  ForwardedSignals() = default;
  ForwardedSignals(const ForwardedSignals&) = delete;
  ForwardedSignals& operator=(const ForwardedSignals&) = delete;
  ~ForwardedSignals() { stop(); }

  Status start() {
    sigset_t fwd;
    sigemptyset(&fwd);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD}) sigaddset(&fwd, s);
    sigprocmask(SIG_BLOCK, &fwd, &old_);
    blocked_ = true;
    signal(SIGPIPE, SIG_IGN);
    sigset_t only_fwd = fwd;
    sigdelset(&only_fwd, SIGCHLD);
    fd_.reset(signalfd(-1, &only_fwd, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!fd_) return errno_error("signals: signalfd");
    return {};
  }
  int fd() const { return fd_.get(); }
  void stop() {
    if (blocked_) sigprocmask(SIG_SETMASK, &old_, nullptr);
    blocked_ = false;
  }

 private:
  sigset_t old_{};
  bool blocked_ = false;
  UniqueFd fd_;
};

// 9. sandbox, after launch: nothing in the tree may ptrace the engine, so
// the parent turns non-dumpable, and then confines itself (no capabilities,
// no-new-privs, the seccomp allowlist; src/confine/), before the command is
// released: the tree's code never meets an engine that could do more than
// serve it.
Status hand_over(sandbox::Tree& tree, bool wire) {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    return errno_error("sandbox: prctl(PR_SET_DUMPABLE)");
  if (auto s = confine::lock_down(wire); !s) return s;
  if (!sandbox::release(tree))
    return Error{"the init stub did not take the release message", "sandbox"};
  return {};
}

// 10. engine: serves tap0 until the tree's init exits; then the tree's exit
// code (the command's, or 128 + N).
Result<int> serve(const engine::Options& eo, sandbox::Tree& tree, int sigfd,
                  policy::Policy& pol, observe::Recorder& rec, engine::Stats* stats) {
  auto on_signal = [&](int sig, int code) {
    if (code == SI_KERNEL) return;  // the terminal already signalled the group
    sandbox::forward_signal(tree, sig);
  };
  auto served = engine::run(eo, std::move(tree.tap), tree.pidfd.get(), sigfd, on_signal, pol,
                            rec, stats);
  if (!served) return served.error();
  return sandbox::try_reap(tree).value_or(1);
}

// --learn: the writer, started before any thread (it forks), and the
// Recorder's Ledger. Nothing without --learn.
Status start_learning(const Config& c, observe::Recorder& rec, learn::Ledger& ledger,
                      std::optional<learn::Writer>& learner) {
  if (!c.learn) return {};
  auto started = learn::Writer::start(c);
  if (!started) return started.error();
  learner.emplace(std::move(started).value());
  rec.set_ledger(&ledger);
  return {};
}

// 11. report, --learn: the writer gets the Ledger; what it did, as a line
// for the user (printed after the live lines).
std::string finish_learning(const Config& c, learn::Writer& writer, const learn::Ledger& ledger) {
  auto wrote = writer.finish(ledger);
  if (!wrote)
    return fmt::format("childflow: error: --learn {}: nothing written: {}\n", *c.learn,
                       wrote.error().message);
  std::string line = fmt::format("childflow: --learn: {} into {}", *wrote, *c.learn);
  if (ledger.dropped() || ledger.skipped())
    line += fmt::format(" ({} flow(s) past the {} entries kept, {} name(s) that are not DNS "
                        "names, left out)",
                        ledger.dropped(), learn::Ledger::kMaxEntries, ledger.skipped());
  line += "\n";
  if (ledger.unreadable())
    line += fmt::format(
        "childflow: warning: --learn: {} connection(s) sent first bytes that started like TLS "
        "or HTTP/1 but named no readable host; replayed under the learnt domain rules they "
        "are denied (unreadable_name): add no_sniff_names = true to the profile if they must "
        "work\n",
        ledger.unreadable());
  return line;
}

// 11. report: --fail-on-leak and the summary; returns childflow's exit code.
int report(const Config& c, int exit_code, uint64_t started, observe::Recorder& rec,
           const engine::Stats& stats, const std::string& learnt) {
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
  rec.finish();
  std::fputs(observe::exit_notice(c, rec.counts(), leak).c_str(), stderr);
  // --learn that wrote nothing fails a run that otherwise succeeded, so that
  // a script (CI) notices.
  const bool learn_failed = learnt.starts_with("childflow: error");
  if (learn_failed && exit_code == 0) exit_code = 1;
  if (!learnt.empty() && (c.verbosity >= 0 || learn_failed)) std::fputs(learnt.c_str(), stderr);
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

// The rootful backend's policy settings, for its nftables table.
rootful::RulesetSpec ruleset_spec(const Config& c, const NetPlan& plan) {
  rootful::RulesetSpec s;
  s.plan = plan;
  s.offline = c.offline;
  s.block_metadata = c.block_metadata;
  s.block_private = c.block_private;
  s.default_deny = c.default_policy == DefaultPolicy::Deny;
  s.deny_cidrs = c.deny_cidrs;
  s.allow_cidrs = c.allow_cidrs;
  s.domains = !c.allow_domains.empty() || !c.allow_domains_exact.empty() ||
              !c.deny_domains.empty() || !c.deny_domains_exact.empty();
  s.proxy_only = c.proxy_only;
  return s;
}

// Why the table rejected `d`, for its policy_violation: the Policy judges it
// again (the table follows its order). A name may have lifted the denial
// since (an allow rule's name learnt later) or lapsed (a deny rule's name
// expired): then the domain rule that denied it when its element was added,
// else the verdict the address gets with no name at all (default-deny).
policy::Verdict rootful_verdict(const Config& c, const policy::Policy& pol,
                                const rootful::DomainSets* domains, const rootful::Denied& d) {
  policy::Verdict v = pol.judge_addr(d.proto, d.ip, false, monotonic_ms());
  if (!v.allow) return v;
  if (domains)
    if (auto by_name = domains->denial(d.ip)) return *by_name;
  return policy::Policy(c).judge_addr(d.proto, d.ip, false, monotonic_ms());
}

uint8_t ip_proto(policy::Proto p) {
  switch (p) {
    case policy::Proto::Tcp: return IPPROTO_TCP;
    case policy::Proto::Udp: return IPPROTO_UDP;
    case policy::Proto::Icmp4: return IPPROTO_ICMP;
    case policy::Proto::Icmp6: return IPPROTO_ICMPV6;
    case policy::Proto::Dns: return IPPROTO_UDP;
  }
  return 0;
}

// Stops a capture's packet-socket reader (what the kernel still queued is
// written first) and says what the file misses: both backends' taps.
void stop_tap(capture::LinkTap& tap) {
  tap.stop();
  auto warn = [](const std::string& what) {
    std::fputs(fmt::format("childflow: warning: capture: {}\n", what).c_str(), stderr);
  };
  if (int e = tap.read_error())
    warn(fmt::format("reading the packet socket: {}; the frames after that are not in the file",
                     strerror(e)));
  if (tap.drops())
    warn(fmt::format("the kernel dropped {} frame(s) the capture could not read in time",
                     tap.drops()));
  if (tap.unread())
    warn(fmt::format("{} frame(s) were still queued 1 s after the run's end (the link kept "
                     "busy) and are not in the file",
                     tap.unread()));
}

// For the tests of the undo path (rootful_net.sh): CHILDFLOW_TEST_FAIL_STEP
// names a step of run_rootful after which the run fails as if the next step
// had (docs/rootful.md, "Cleanup"). Real runs never set it.
Status forced_failure(std::string_view step) {
  const char* env = std::getenv("CHILDFLOW_TEST_FAIL_STEP");
  if (env && step == env)
    return Error{fmt::format("forced failure after step {} (CHILDFLOW_TEST_FAIL_STEP)", step),
                 "rootful"};
  return {};
}

// The rootful backend (docs/rootful.md): the same plan, overlays, policy and
// recorder; the host side (rootful/host.hpp) is set up before the tree and
// undone when `host` goes, whatever happens (errors, signals forwarded to
// the tree, which then ends). The parent keeps root to undo it, so it does
// not confine itself as the engine does.
int run_rootful(const Config& c, uint64_t started) {
  NetPlan plan = make_plan(c);
  // A veth is a real link: the conventional 1500 unless --mtu says otherwise.
  if (c.mtu == Config{}.mtu) plan.mtu = 1500;
  const std::string host_resolv = read_file("/etc/resolv.conf");
  auto tree_opts = tree_options(c, plan, host_resolv);
  if (!tree_opts) return fail(tree_opts.error());
  sandbox::Options so = std::move(tree_opts).value();
  // 4. proxy, before anything is created (as rootless).
  std::optional<ProxyRoute> proxy_route;
  if (c.proxy && !c.offline) {
    auto route = prepare_proxy(c);
    if (!route) return fail(route.error());
    proxy_route.emplace(std::move(route).value());
  }

  observe::Recorder rec(c);
  if (auto s = rec.open(); !s) return fail(s.error());
  policy::Policy pol(c);
  // --learn: the Recorder's flow events (conntrack's and the relay's) fill
  // the Ledger.
  std::optional<learn::Writer> learner;
  learn::Ledger ledger(plan.gw4, plan.ipv6 ? std::optional<IpAddr>(plan.gw6) : std::nullopt);
  if (auto s = start_learning(c, rec, ledger, learner); !s) return fail(s.error());
  // The flow ids the conntrack reader, the relay and the capture share
  // (rootful/flow_ids.hpp); it outlives all three.
  rootful::FlowIds flow_ids(rec);

  // One epoll loop serves the forwarder and the relay (rootful/loop.hpp).
  auto loop = rootful::Loop::create();
  if (!loop) return fail(loop.error());
  // The capture's reader reads the Policy the loop's handlers teach names
  // (rootful/capture_notes.hpp): the loop works under this lock.
  std::mutex loop_lock;
  loop->set_lock(&loop_lock);
  rootful::RulesetSpec spec = ruleset_spec(c, plan);
  // --proxy (offline wins over it): the relay's listeners exist before the
  // table whose TPROXY rules name their ports (rootful/relay.hpp).
  std::unique_ptr<rootful::Relay> relay;
  if (proxy_route) {
    raise_fd_limit();
    rootful::RelayOptions ro{plan, proxy_route->addr, proxy_route->upstream.get()};
    // For rootful_proxy.sh: the idle time-outs in ms (docs/rootful.md, a
    // documented test hook; real runs never set it).
    if (const char* t = std::getenv("CHILDFLOW_TEST_RELAY_IDLE_MS"))
      ro.idle_ms = ro.half_closed_idle_ms = std::strtoull(t, nullptr, 10);
    auto opened = rootful::Relay::open(ro, pol, rec, *loop);
    if (!opened) return fail(opened.error());
    relay = std::move(opened).value();
    spec.tproxy.port4 = relay->port4();
    spec.tproxy.port6 = relay->port6();
  }
  // --proxy-dns remote: the forwarder answers names with synthetic
  // addresses, the relay asks the proxy for the names (docs/rootful.md).
  std::optional<engine::SynthMap> synth;
  if (c.proxy_dns == ProxyDns::Remote) {
    synth.emplace();
    if (relay) relay->set_synth(&*synth);
    spec.synthetic = true;
  }

  ForwardedSignals signals;
  if (auto s = signals.start(); !s) return fail(s.error());

  // wire-egress: the run's own masquerade ports, taken before the table
  // that uses them is loaded (rootful/port_slot.hpp).
  std::optional<rootful::PortSlot> slot;
  if (c.capture && c.capture_point == CapturePoint::WireEgress) {
    auto taken = rootful::PortSlot::take();
    if (!taken) return fail(taken.error());
    slot.emplace(std::move(taken).value());
    const rootful::PortRange masq = rootful::masquerade_part(slot->range());
    spec.masquerade_ports = {{masq.lo, masq.hi}};
  }
  auto host = rootful::Host::setup(spec, c.iface, c.verbosity < 0);
  if (!host) {
    rec.runtime_failure("rootful", "setup_failed", host.error().str());
    return fail(host.error());
  }
  if (Status f = forced_failure("host"); !f) return fail(f.error());  // ~Host undoes
  // The tree's direct flows, for the flow log and the summary: conntrack
  // events, from before the tree sends anything (rootful/conntrack.hpp).
  std::unique_ptr<rootful::Conntrack> ct;
  // (--capture: its ids are forgotten on DESTROY; --learn: the Ledger.)
  if (c.flow_log || c.summary || c.capture || c.learn) {
    auto opened = rootful::Conntrack::open(plan, rec, pol, (*host)->tproxy_mark(), &flow_ids);
    if (!opened) {
      rec.runtime_failure("rootful", "setup_failed", opened.error().str());
      return fail(opened.error());
    }
    ct = std::move(opened).value();
  }
  so.attach_link = [&host](pid_t pid) -> Status {
    if (Status s = (*host)->attach(pid); !s) return s;
    return forced_failure("attach");
  };
  auto launched = sandbox::launch(so);
  if (!launched) {
    rec.runtime_failure("sandbox", "launch_failed", launched.error().str());
    return fail(launched.error());
  }
  sandbox::Tree tree = std::move(launched).value();

  rootful::ForwarderOptions fo;
  fo.plan = plan;
  fo.resolver = c.dns ? c.dns : first_nameserver(host_resolv);
  fo.host_has_ipv6 = host_has_default_route6();
  fo.mark = (*host)->egress_mark();
  if (relay) {
    relay->set_mark((*host)->egress_mark());
    relay->set_flow_ids(&flow_ids);
    if (slot) relay->set_host_ports(rootful::host_part(slot->range()));
  }
  if (slot) fo.host_ports = rootful::host_part(slot->range());
  if (synth) {
    fo.synth = &*synth;
    fo.resolver.reset();  // as rootless: no name of the tree reaches a resolver
  }
  if (ct)
    if (auto s = loop->add(ct->fd(), EPOLLIN, [&ct](uint32_t) { ct->on_readable(); }); !s)
      return fail(s.error());
  // Domain rules: the forwarder's answers feed the table's sets, before
  // the tree gets them (rootful/domain_sets.hpp).
  std::optional<rootful::DomainSets> domains;
  if (spec.domains) {
    domains.emplace(c, pol, (*host)->table(), [](const std::string& cmds) -> Status {
      if (auto r = rootful::nft_run(cmds); !r) return r.error();
      return {};
    });
    fo.on_learn = [&domains](const std::string& name, const IpAddr& ip, uint32_t ttl,
                             uint64_t now) { domains->learn(name, ip, ttl, now); };
    fo.answer_ready = [&domains, &rec] {
      if (auto s = domains->flush(); !s) {
        rec.runtime_failure("rootful", "domain_set_failed", s.error().str());
        return false;
      }
      return true;
    };
  }
  auto forwarder = rootful::Forwarder::open(fo, pol, rec, *loop);
  if (!forwarder) {
    rec.runtime_failure("rootful", "setup_failed", forwarder.error().str());
    return fail(forwarder.error());  // ~Tree kills the tree, ~Host undoes the host side
  }
  if (Status f = forced_failure("forwarder"); !f) return fail(f.error());
  // --capture: the veth's host end exists now and the command has not
  // started: every frame of the tree is in the file (capture/link_tap.hpp).
  std::optional<capture::Capture> cap;
  std::unique_ptr<capture::LinkTap> tap;
  if (c.capture) {
    auto opened = open_rootful_capture(c, plan, fo.resolver, (*host)->link(), slot);
    if (!opened) {
      rec.runtime_failure("capture", "setup_failed", opened.error().str());
      return fail(opened.error());
    }
    cap.emplace(std::move(opened->first));
    tap = std::move(opened->second);
    capture::FlowIdOf notes;
    if (slot) {
      auto q = rootful::CtQuery::open();
      if (!q) return fail(q.error());
      notes = rootful::wire_notes(flow_ids, plan, slot->range(),
                                  std::make_shared<rootful::CtQuery>(std::move(q).value()));
    } else {
      notes = rootful::veth_notes(
          flow_ids, plan,
          rootful::policy_judge(pol, loop_lock, relay != nullptr, plan, synth ? &*synth : nullptr));
    }
    if (auto s = tap->start(*cap, std::move(notes), !slot); !s) return fail(s.error());
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return fail(errno_error("sandbox: prctl(PR_SET_DUMPABLE)"));
  if (!sandbox::release(tree))
    return fail(Error{"the init stub did not take the release message", "sandbox"});

  auto on_signal = [&](int sig, int code) {
    if (code == SI_KERNEL) return;  // the terminal already signalled the group
    sandbox::forward_signal(tree, sig);
  };
  int code = 1;
  bool served_ok = false;
  if (auto served = loop->serve(tree.pidfd.get(), signals.fd(), on_signal); served) {
    code = sandbox::try_reap(tree).value_or(1);
    served_ok = true;
  } else {
    fail(served.error());
    rec.runtime_failure("rootful", "forwarder_failed", served.error().str());
    tree = sandbox::Tree{};  // kills and reaps the tree
  }
  if (relay) relay->close_all();  // connections still open: flow_end
  if (ct) loop->remove(ct->fd());
  if (ct)
    if (uint64_t lost = ct->finish(); lost && c.verbosity >= 0)
      std::fputs(fmt::format("childflow: warning: {} conntrack event(s) were lost or unreadable: "
                             "the flow log may miss flows\n",
                             lost)
                     .c_str(),
                 stderr);
  // What the table rejected: one policy_violation per destination, judged
  // again by the same Policy for its reason (the table follows its order).
  for (const rootful::Denied& d : (*host)->denied()) {
    policy::Verdict v = rootful_verdict(c, pol, domains ? &*domains : nullptr, d);
    if (v.allow) continue;
    std::string remote = d.port ? format_endpoint(d.ip, *d.port) : d.ip.str();
    // The id its frames got in the capture, if they were captured.
    uint64_t id = flow_ids.last_to(ip_proto(d.proto), d.ip, d.port.value_or(0));
    rec.policy_violation(id ? id : rec.next_flow_id(), d.proto, remote, d.ip, d.port, v,
                         pol.names_for(d.ip, monotonic_ms()));  // a flow of its own (schema)
  }
  if (tap) stop_tap(*tap);
  if (cap) {
    if (auto s = cap->close(); !s) fail(s.error());  // said; the run still reports
  }
  if (slot && c.verbosity >= 0)
    if (uint64_t n = (relay ? relay->uncaptured() : 0) + (*forwarder)->uncaptured())
      std::fputs(fmt::format("childflow: warning: capture: {} connection(s) of childflow's own "
                             "(DNS lookups, proxy connections) found no free port of the run's "
                             "range and are not in the wire-egress file\n",
                             n)
                     .c_str(),
                 stderr);
  host->reset();  // the host side is undone before the report is printed
  signals.stop();
  engine::Stats stats;
  stats.dns_queries = (*forwarder)->queries();
  std::string learnt;
  if (learner) {
    if (served_ok) learnt = finish_learning(c, *learner, ledger);
    if (learnt.empty())
      learnt = fmt::format("childflow: error: --learn {}: nothing written: the run failed\n", *c.learn);
  }
  return report(c, code, started, rec, stats, learnt);
}

}  // namespace

int run_tree(const Config& c) {
  const uint64_t started = monotonic_ms();
  if (c.backend == Backend::Rootful) {
    Status s = cli::check_rootful(c);
    if (s && c.iface) s = rootful::check_iface(*c.iface);
    if (!s) {
      std::fputs(fmt::format("childflow: error: {}\n", s.error().message).c_str(), stderr);
      return 2;  // a bad command line: nothing was created
    }
  }
  if (auto s = doctor::preflight(c); !s) return fail(s.error());
  if (c.backend == Backend::Rootful) return run_rootful(c, started);
  const NetPlan plan = make_plan(c);

  const std::string host_resolv = read_file("/etc/resolv.conf");
  engine::Options eo = engine_options(c, plan, host_resolv);
  std::unique_ptr<proxy::Upstream> upstream;
  if (c.proxy && !c.offline) {
    auto route = prepare_proxy(c);
    if (!route) return fail(route.error());
    eo.proxy_addr = route->addr;
    upstream = std::move(route->upstream);
    eo.proxy = upstream.get();
  }

  auto tree_opts = tree_options(c, plan, host_resolv);
  if (!tree_opts) return fail(tree_opts.error());
  const sandbox::Options so = std::move(tree_opts).value();
  raise_fd_limit();

  observe::Recorder rec(c);
  if (auto s = rec.open(); !s) return fail(s.error());
  policy::Policy pol(c);
  std::optional<learn::Writer> learner;
  learn::Ledger ledger(plan.gw4, plan.ipv6 ? std::optional<IpAddr>(plan.gw6) : std::nullopt);
  if (auto s = start_learning(c, rec, ledger, learner); !s) return fail(s.error());
  eo.learn_names = c.learn && !c.no_sniff_names;

  std::optional<capture::Capture> cap;
  // wire-egress: a packet socket on the host's links that lets through
  // nothing until the engine tracks a flow's socket (capture/wire.hpp);
  // opened now, while we may (CAP_NET_RAW), and read by a thread from the
  // hand-over on. The engine feeds the other views itself.
  std::unique_ptr<capture::LinkTap> wire_tap;
  std::optional<capture::WireSet> wire;
  if (c.capture) {
    if (c.capture_point == CapturePoint::WireEgress) {
      auto t = capture::LinkTap::open(0, true);
      if (!t) return fail(t.error());
      wire_tap = std::move(t).value();
      wire.emplace(*wire_tap, int(if_nametoindex("lo")));
      eo.wire = &*wire;
    }
    auto opened = open_capture(c, plan, eo.resolver);
    if (!opened) return fail(opened.error());
    cap.emplace(std::move(opened).value());
    if (!wire) eo.capture = &*cap;
  }

  ForwardedSignals signals;
  if (auto s = signals.start(); !s) return fail(s.error());

  auto launched = sandbox::launch(so);
  if (!launched) {
    const Error why = doctor::explain_launch(c).value_or(launched.error());
    rec.runtime_failure("sandbox", "launch_failed", why.str());
    return fail(why);
  }
  sandbox::Tree tree = std::move(launched).value();
  eo.vnet_hdr = tree.tap_vnet_hdr;
  cpu_set_t cpus;
  eo.poll = sched_getaffinity(0, sizeof cpus, &cpus) == 0 && CPU_COUNT(&cpus) > 1;
  // The engine's capture files are written by threads of their own, started
  // now for the same reasons as the wire tap's below.
  if (eo.capture)
    if (auto s = eo.capture->start_writers(); !s) return fail(s.error());
  if (wire_tap) {
    // Started after the launch (no fork of a threaded process) and before
    // the lock-down, whose filter then covers the thread too.
    auto note = [&wire](const capture::FiveTuple& t) { return wire->note(t); };
    if (auto s = wire_tap->start(*cap, note, false); !s) return fail(s.error());
  }
  if (auto s = hand_over(tree, wire.has_value()); !s) {
    rec.runtime_failure("sandbox", "launch_failed", s.error().str());
    return fail(s.error());  // ~Tree kills the tree: fail closed
  }

  engine::Stats stats;
  int code = 1;
  std::string learnt;
  if (auto served = serve(eo, tree, signals.fd(), pol, rec, &stats)) {
    code = *served;
    if (learner) learnt = finish_learning(c, *learner, ledger);
  } else {
    fail(served.error());
    rec.runtime_failure("engine", "engine_failed", served.error().str());
    tree = sandbox::Tree{};  // kills and reaps the tree: fail closed
  }
  signals.stop();
  if (wire_tap) {
    stop_tap(*wire_tap);
    if (wire->untracked())
      std::fputs(fmt::format("childflow: warning: capture: {} flow(s) are not in {}: more than "
                             "{} at once (the wire-egress filter's limit)\n",
                             wire->untracked(), *c.capture, capture::kMaxWireFlows)
                     .c_str(),
                 stderr);
    if (wire->unbound())
      std::fputs(fmt::format("childflow: warning: capture: {} flow(s) are not in {}: their "
                             "socket could not be bound to an ephemeral port first\n",
                             wire->unbound(), *c.capture)
                     .c_str(),
                 stderr);
  }
  if (cap) {
    if (auto s = cap->close(); !s) fail(s.error());  // said; the run still reports
  }
  if (learner && learnt.empty())
    learnt = fmt::format("childflow: error: --learn {}: nothing written: the run failed\n", *c.learn);
  return report(c, code, started, rec, stats, learnt);
}

int run_cleanup(const Config&) { return rootful::cleanup(); }

}  // namespace cf::app
