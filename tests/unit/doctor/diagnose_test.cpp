// diagnose() (which checks run, in which order, in which scope) and the text
// and JSON renderings, driven through FakeHost.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <set>

#include "doctor/checks.hpp"
#include "doctor/render.hpp"
#include "fake_host.hpp"

namespace cf::doctor {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;
using testing::FakeHost;
using testing::healthy_root_host;
using testing::healthy_user_host;

std::vector<std::string> keys(const Report& r) {
  std::vector<std::string> k;
  for (const Check& c : r.checks) k.push_back(c.key);
  return k;
}

Config rootful() {
  Config c;
  c.backend = Backend::Rootful;
  return c;
}

TEST(DoctorDiagnose, RootlessRunsEveryCheckInOrder) {
  FakeHost h = healthy_user_host();
  Report r = diagnose(h, Config{});
  EXPECT_THAT(keys(r), ElementsAre("userns", "netns", "mntns", "pidns", "max_user_namespaces",
                                   "unprivileged_userns_clone", "apparmor_restrict_userns",
                                   "userns_trial", "newuidmap", "subuid", "subgid", "tun",
                                   "ping_group_range", "kernel_tcp_peek_off", "kernel_clone3",
                                   "kernel_mount_setattr", "kernel_tap_offload",
                                   "engine_confinement", "resolver",
                                   "ipv4_route", "ipv6_route"));
  EXPECT_EQ(r.overall(), Overall::Ready);
  EXPECT_EQ(r.uid, 1000u);
}

TEST(DoctorDiagnose, RootfulRunsEveryCheckInOrder) {
  FakeHost h = healthy_root_host();
  Report r = diagnose(h, rootful());
  EXPECT_THAT(keys(r), ElementsAre("root", "userns", "netns", "mntns", "pidns",
                                   "max_user_namespaces", "nftables", "tproxy",
                                   "conntrack_events", "policy_routing", "ipv4_forward",
                                   "ipv6_forward", "packet_socket", "leftover_state", "resolver",
                                   "ipv4_route", "ipv6_route"));
  EXPECT_EQ(r.overall(), Overall::Ready);
}

TEST(DoctorDiagnose, WarningsAndFatalsSetOverall) {
  FakeHost h = healthy_user_host();
  h.files["/etc/resolv.conf"] = "";
  EXPECT_EQ(diagnose(h, Config{}).overall(), Overall::ReadyWithWarnings);
  h.open_rw_errno["/dev/net/tun"] = EACCES;
  EXPECT_EQ(diagnose(h, Config{}).overall(), Overall::Blocked);
}

TEST(DoctorDiagnose, FatalOnlyScopeSkipsWarningOnlyChecks) {
  FakeHost h = healthy_user_host();
  Report r = diagnose(h, Config{}, Scope::FatalOnly);
  EXPECT_THAT(keys(r), ElementsAre("userns", "netns", "mntns", "pidns", "max_user_namespaces",
                                   "unprivileged_userns_clone", "apparmor_restrict_userns",
                                   "userns_trial", "tun"));
  FakeHost root = healthy_root_host();
  EXPECT_THAT(keys(diagnose(root, rootful(), Scope::FatalOnly)),
              ElementsAre("root", "userns", "netns", "mntns", "pidns", "max_user_namespaces",
                          "nftables", "ipv4_forward", "ipv6_forward"));
  Config proxied = rootful();
  proxied.proxy = ProxyUri{ProxyScheme::Socks5, "203.0.113.30", 1080};
  proxied.capture = "/tmp/c.pcapng";
  proxied.capture_point = CapturePoint::WireEgress;
  EXPECT_THAT(keys(diagnose(root, proxied, Scope::FatalOnly)),
              ElementsAre("root", "userns", "netns", "mntns", "pidns", "max_user_namespaces",
                          "nftables", "tproxy", "conntrack_events", "ipv4_forward",
                          "ipv6_forward", "packet_socket"));
  // What a run asks for brings the checks it needs.
  Config logged = rootful();
  logged.flow_log = "/tmp/f.jsonl";
  logged.iface = "eth0";
  EXPECT_THAT(keys(diagnose(root, logged, Scope::FatalOnly)),
              ElementsAre("root", "userns", "netns", "mntns", "pidns", "max_user_namespaces",
                          "nftables", "conntrack_events", "policy_routing", "ipv4_forward",
                          "ipv6_forward", "iface"));
  Config captured = rootful();
  captured.capture = "/tmp/c.pcapng";  // the child view: a packet socket too
  EXPECT_THAT(keys(diagnose(root, captured, Scope::FatalOnly)),
              ElementsAre("root", "userns", "netns", "mntns", "pidns", "max_user_namespaces",
                          "nftables", "conntrack_events", "ipv4_forward", "ipv6_forward",
                          "packet_socket"));
}

// Preflight leaves the user namespace trial to the launch, which makes the
// same namespaces; after a failed launch, FatalOnly (explain_launch) runs
// it and names the cause as preflight used to.
TEST(DoctorDiagnose, PreflightScopeLeavesTheTrialToTheLaunch) {
  FakeHost h = healthy_user_host();
  h.userns = Trial{false, "unshare(CLONE_NEWUSER)", EPERM, {}};
  Report pre = diagnose(h, Config{}, Scope::Preflight);
  EXPECT_THAT(keys(pre), ElementsAre("userns", "netns", "mntns", "pidns", "max_user_namespaces",
                                     "unprivileged_userns_clone", "apparmor_restrict_userns",
                                     "tun"));
  EXPECT_EQ(h.userns_trials, 0);
  EXPECT_EQ(h.confine_trials, 0);
  EXPECT_FALSE(first_fatal(pre));

  auto line = first_fatal(diagnose(h, Config{}, Scope::FatalOnly));
  EXPECT_EQ(h.userns_trials, 1);
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, StartsWith("user namespace trial: unshare(CLONE_NEWUSER) failed: EPERM"));
  EXPECT_THAT(*line, HasSubstr("(hint: unprivileged user namespaces are forbidden here"));

  // The checks that only read files still stop a run before anything exists.
  h.files["/proc/sys/user/max_user_namespaces"] = "0\n";
  auto quota = first_fatal(diagnose(h, Config{}, Scope::Preflight));
  ASSERT_TRUE(quota);
  EXPECT_THAT(*quota, StartsWith("user namespace quota: user.max_user_namespaces = 0"));
  EXPECT_EQ(h.userns_trials, 1);

  // Rootful: the same checks as FatalOnly (its trials stay in preflight).
  FakeHost root = healthy_root_host();
  EXPECT_EQ(keys(diagnose(root, rootful(), Scope::Preflight)),
            keys(diagnose(root, rootful(), Scope::FatalOnly)));
}

TEST(DoctorDiagnose, RootlessWireEgressChecksPacketSockets) {
  FakeHost h = healthy_user_host();
  h.packet_errno = EPERM;
  Config c;
  c.capture = "/tmp/c.pcapng";
  c.capture_point = CapturePoint::WireEgress;
  Report r = diagnose(h, c, Scope::FatalOnly);
  EXPECT_EQ(r.checks.back().key, "packet_socket");
  EXPECT_EQ(r.overall(), Overall::Blocked);
}

TEST(DoctorFirstFatal, QuotaComesBeforeTheTrial) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/user/max_user_namespaces"] = "0\n";
  h.userns = Trial{false, "unshare(CLONE_NEWUSER)", ENOSPC, {}};
  auto line = first_fatal(diagnose(h, Config{}, Scope::FatalOnly));
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, StartsWith("user namespace quota: user.max_user_namespaces = 0"));
  EXPECT_THAT(*line, HasSubstr("(hint: as root: sysctl -w user.max_user_namespaces=15000"));
  EXPECT_EQ(line->find('\n'), std::string::npos);
}

TEST(DoctorFirstFatal, NoneWhenReadyOrOnlyWarnings) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "1 0\n";
  h.ping_errno_v4 = EACCES;
  EXPECT_FALSE(first_fatal(diagnose(h, Config{})));
  EXPECT_FALSE(first_fatal(diagnose(h, Config{}, Scope::FatalOnly)));
}

TEST(DoctorFirstFatal, TunForUnprivilegedUser) {
  FakeHost h = healthy_user_host();
  h.stats["/dev/net/tun"] = FileInfo{true, S_IFCHR | 0600, 0, 0, false};
  h.open_rw_errno["/dev/net/tun"] = EACCES;
  auto line = first_fatal(diagnose(h, Config{}, Scope::FatalOnly));
  ASSERT_TRUE(line);
  EXPECT_THAT(*line, StartsWith("/dev/net/tun: cannot be opened: EACCES"));
  EXPECT_THAT(*line, HasSubstr("hint: as root: chmod 0666 /dev/net/tun"));
}

TEST(DoctorText, StatusLineTagsAndHints) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "1 0\n";
  h.ping_errno_v4 = EACCES;
  h.open_rw_errno["/dev/net/tun"] = EACCES;
  std::string text = render_text(diagnose(h, Config{}));
  EXPECT_THAT(text, StartsWith("childflow doctor: backend rootless-internal: blocked\n"));
  EXPECT_THAT(text, HasSubstr("\n[OK]   user namespaces: /proc/self/ns/user present\n"));
  EXPECT_THAT(text, HasSubstr("\n[WARN] ICMP echo: "));
  EXPECT_THAT(text, HasSubstr("\n[FATAL] /dev/net/tun: cannot be opened"));
  EXPECT_THAT(text, HasSubstr("\n    hint: as root: chmod 0666 /dev/net/tun"));
  // One line per check plus one hint line per non-ok check, after the status line.
  size_t n = std::count(text.begin(), text.end(), '\n');
  EXPECT_EQ(n, 1u + 21u + 2u);
}

TEST(DoctorText, ReadyAndReadyWithWarnings) {
  FakeHost h = healthy_user_host();
  EXPECT_THAT(render_text(diagnose(h, Config{})),
              StartsWith("childflow doctor: backend rootless-internal: ready\n"));
  h.files.erase("/proc/net/ipv6_route");
  EXPECT_THAT(render_text(diagnose(h, Config{})),
              StartsWith("childflow doctor: backend rootless-internal: ready with warnings\n"));
  FakeHost r = healthy_root_host();
  EXPECT_THAT(render_text(diagnose(r, rootful())),
              StartsWith("childflow doctor: backend rootful: ready\n"));
}

// The documented JSON contract (docs/doctor-schema.md).
TEST(DoctorJson, ShapeAndSections) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "1 0\n";
  h.ping_errno_v4 = EACCES;
  auto j = nlohmann::json::parse(render_json(diagnose(h, Config{})));
  std::set<std::string> top;
  for (auto& [k, v] : j.items()) top.insert(k);
  EXPECT_EQ(top, (std::set<std::string>{"backend", "uid", "euid", "status", "capabilities",
                                        "preflight"}));
  EXPECT_EQ(j["backend"], "rootless-internal");
  EXPECT_EQ(j["uid"], 1000);
  EXPECT_EQ(j["euid"], 1000);
  EXPECT_EQ(j["status"], "ready with warnings");
  std::vector<std::string> cap_keys, pre_keys;
  for (const char* section : {"capabilities", "preflight"}) {
    for (auto& e : j[section]) {
      std::set<std::string> fields;
      for (auto& [k, v] : e.items()) fields.insert(k);
      EXPECT_EQ(fields, (std::set<std::string>{"key", "label", "status", "detail", "hint"}));
      EXPECT_TRUE(e["status"] == "ok" || e["status"] == "warning" || e["status"] == "fatal");
      EXPECT_EQ(e["hint"].is_null(), e["status"] == "ok") << e["key"];
      (std::string(section) == "capabilities" ? cap_keys : pre_keys).push_back(e["key"]);
    }
  }
  EXPECT_THAT(cap_keys, ElementsAre("userns", "netns", "mntns", "pidns", "max_user_namespaces",
                                    "unprivileged_userns_clone", "apparmor_restrict_userns",
                                    "userns_trial", "newuidmap", "tun", "ping_group_range", "kernel_tcp_peek_off",
                                    "kernel_clone3", "kernel_mount_setattr",
                                    "kernel_tap_offload", "engine_confinement"));
  EXPECT_THAT(pre_keys, ElementsAre("subuid", "subgid", "resolver", "ipv4_route", "ipv6_route"));
}

TEST(DoctorJson, RootfulSectionsAndBlocked) {
  FakeHost h = healthy_user_host();
  auto j = nlohmann::json::parse(render_json(diagnose(h, rootful())));
  EXPECT_EQ(j["backend"], "rootful");
  EXPECT_EQ(j["status"], "blocked");
  std::vector<std::string> cap_keys, pre_keys;
  for (auto& e : j["capabilities"]) cap_keys.push_back(e["key"]);
  for (auto& e : j["preflight"]) pre_keys.push_back(e["key"]);
  EXPECT_THAT(cap_keys, ElementsAre("userns", "netns", "mntns", "pidns", "max_user_namespaces",
                                    "nftables", "tproxy", "conntrack_events", "policy_routing",
                                    "packet_socket"));
  EXPECT_THAT(pre_keys, ElementsAre("root", "ipv4_forward", "ipv6_forward", "leftover_state",
                                    "resolver", "ipv4_route", "ipv6_route"));
  EXPECT_EQ(j["preflight"][0]["status"], "fatal");
}

}  // namespace
}  // namespace cf::doctor
