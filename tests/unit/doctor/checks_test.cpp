// Every doctor check's ok, warning and fatal branch, driven through FakeHost.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cerrno>

#include "doctor/checks.hpp"
#include "fake_host.hpp"

namespace cf::doctor {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::FakeHost;
using testing::healthy_root_host;
using testing::healthy_user_host;

void expect_ok(const Check& c) {
  EXPECT_EQ(c.status, Status::Ok) << c.key << ": " << c.detail;
  EXPECT_TRUE(c.hint.empty()) << c.key;
}
void expect_status(const Check& c, Status s) {
  EXPECT_EQ(c.status, s) << c.key << ": " << c.detail;
  EXPECT_FALSE(c.hint.empty()) << c.key << " needs a hint when not ok";
}

// --- namespaces --------------------------------------------------------------

TEST(DoctorNamespace, PresentHandleIsOk) {
  FakeHost h = healthy_user_host();
  for (const char* ns : {"user", "net", "mnt", "pid"}) {
    Check c = check_namespace(h, ns);
    expect_ok(c);
    EXPECT_EQ(c.key, std::string(ns) + "ns");
    EXPECT_EQ(c.section, Section::Capability);
  }
}

TEST(DoctorNamespace, MissingHandleIsFatal) {
  FakeHost h = healthy_user_host();
  h.stats.erase("/proc/self/ns/net");
  Check c = check_namespace(h, "net");
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("/proc/self/ns/net missing"));
  EXPECT_THAT(c.hint, HasSubstr("CONFIG_NET_NS"));
}

// --- quota -------------------------------------------------------------------

TEST(DoctorQuota, PositiveIsOk) {
  FakeHost h = healthy_user_host();
  Check c = check_max_user_namespaces(h);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("63422"));
}

TEST(DoctorQuota, ZeroIsFatalWithSysctlHint) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/user/max_user_namespaces"] = "0\n";
  Check c = check_max_user_namespaces(h);
  expect_status(c, Status::Fatal);
  EXPECT_EQ(c.key, "max_user_namespaces");
  EXPECT_THAT(c.detail, HasSubstr("user.max_user_namespaces = 0"));
  EXPECT_THAT(c.hint, HasSubstr("sysctl -w user.max_user_namespaces="));
}

TEST(DoctorQuota, UnreadableOrGarbageIsWarning) {
  FakeHost h = healthy_user_host();
  h.files.erase("/proc/sys/user/max_user_namespaces");
  expect_status(check_max_user_namespaces(h), Status::Warning);
  h.files["/proc/sys/user/max_user_namespaces"] = "lots\n";
  expect_status(check_max_user_namespaces(h), Status::Warning);
}

// --- distribution switches ---------------------------------------------------

TEST(DoctorUnprivClone, AbsentOrOneIsOk) {
  FakeHost h = healthy_user_host();
  Check c = check_unprivileged_userns_clone(h, h.id);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("not present"));
  h.files["/proc/sys/kernel/unprivileged_userns_clone"] = "1\n";
  expect_ok(check_unprivileged_userns_clone(h, h.id));
}

TEST(DoctorUnprivClone, ZeroIsFatalForUserButNotRoot) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/kernel/unprivileged_userns_clone"] = "0\n";
  Check c = check_unprivileged_userns_clone(h, h.id);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.hint, HasSubstr("sysctl -w kernel.unprivileged_userns_clone=1"));
  FakeHost r = healthy_root_host();
  r.files["/proc/sys/kernel/unprivileged_userns_clone"] = "0\n";
  Check rc = check_unprivileged_userns_clone(r, r.id);
  expect_ok(rc);
  EXPECT_THAT(rc.detail, HasSubstr("root is not restricted"));
}

TEST(DoctorAppArmor, AbsentOrZeroIsOk) {
  FakeHost h = healthy_user_host();
  expect_ok(check_apparmor_restrict_userns(h, h.id));
  h.files["/proc/sys/kernel/apparmor_restrict_unprivileged_userns"] = "0\n";
  expect_ok(check_apparmor_restrict_userns(h, h.id));
}

TEST(DoctorAppArmor, OneIsFatalWithSysctlHintForUser) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/kernel/apparmor_restrict_unprivileged_userns"] = "1\n";
  Check c = check_apparmor_restrict_userns(h, h.id);
  expect_status(c, Status::Fatal);
  EXPECT_EQ(c.key, "apparmor_restrict_userns");
  EXPECT_THAT(c.hint, HasSubstr("sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"));
  FakeHost r = healthy_root_host();
  r.files["/proc/sys/kernel/apparmor_restrict_unprivileged_userns"] = "1\n";
  expect_ok(check_apparmor_restrict_userns(r, r.id));
}

// --- the trial ---------------------------------------------------------------

TEST(DoctorTrial, SuccessIsOk) {
  FakeHost h = healthy_user_host();
  expect_ok(check_userns_trial(h));
  EXPECT_EQ(h.userns_trials, 1);
}

TEST(DoctorTrial, FailureNamesStepAndErrno) {
  FakeHost h = healthy_user_host();
  h.userns = Trial{false, "unshare(CLONE_NEWUSER)", EPERM, {}};
  Check c = check_userns_trial(h);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("unshare(CLONE_NEWUSER) failed: EPERM (Operation not permitted)"));
  EXPECT_THAT(c.hint, HasSubstr("forbidden"));
}

TEST(DoctorTrial, ConfinementTrialOkOrFatalWithItsReason) {
  FakeHost h = healthy_user_host();
  expect_ok(check_confine_trial(h));
  EXPECT_EQ(h.confine_trials, 1);
  h.confine = Trial{false, "confine", 0,
                    "engine: seccomp: cannot load the filter: Invalid argument"};
  Check c = check_confine_trial(h);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("cannot load the filter"));
  EXPECT_THAT(c.hint, HasSubstr("CONFIG_SECCOMP_FILTER"));
}

TEST(DoctorTrial, HintsFollowTheErrno) {
  FakeHost h = healthy_user_host();
  h.userns = Trial{false, "unshare(CLONE_NEWUSER)", ENOSPC, {}};
  EXPECT_THAT(check_userns_trial(h).hint, HasSubstr("user.max_user_namespaces"));
  h.userns = Trial{false, "unshare(CLONE_NEWNET|CLONE_NEWNS|CLONE_NEWPID)", EPERM, {}};
  EXPECT_THAT(check_userns_trial(h).hint, HasSubstr("apparmor_restrict_unprivileged_userns=0"));
  h.userns = Trial{false, "write /proc/self/uid_map", EPERM, {}};
  EXPECT_THAT(check_userns_trial(h).hint, HasSubstr("uid_map"));
  h.userns = Trial{false, "unshare(CLONE_NEWUSER)", EINVAL, {}};
  EXPECT_THAT(check_userns_trial(h).hint, HasSubstr("CONFIG_USER_NS"));
  h.userns = Trial{false, "unshare(CLONE_NEWUSER)", EUSERS, {}};
  EXPECT_THAT(check_userns_trial(h).hint, HasSubstr("nested"));
}

// --- id mapping tools and ranges ---------------------------------------------

TEST(DoctorNewuidmap, SetuidToolsAreOk) {
  FakeHost h = healthy_user_host();
  Check c = check_newuidmap(h, h.id);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("/usr/bin/newuidmap (setuid root)"));
  h.stats["/usr/bin/newgidmap"] = FileInfo{true, S_IFREG | 0755, 0, 0, true};
  EXPECT_THAT(check_newuidmap(h, h.id).detail, HasSubstr("newgidmap (file capabilities)"));
}

TEST(DoctorNewuidmap, MissingIsWarning) {
  FakeHost h = healthy_user_host();
  h.path_executables.erase("newgidmap");
  Check c = check_newuidmap(h, h.id);
  expect_status(c, Status::Warning);
  EXPECT_THAT(c.detail, HasSubstr("newgidmap not found on PATH"));
  EXPECT_THAT(c.hint, HasSubstr("uidmap"));
}

TEST(DoctorNewuidmap, NotSetuidIsWarning) {
  FakeHost h = healthy_user_host();
  h.stats["/usr/bin/newuidmap"] = FileInfo{true, S_IFREG | 0755, 0, 0, false};
  Check c = check_newuidmap(h, h.id);
  expect_status(c, Status::Warning);
  EXPECT_THAT(c.detail, HasSubstr("neither setuid root"));
}

TEST(DoctorNewuidmap, RootDoesNotNeedThem) {
  FakeHost h = healthy_root_host();
  h.path_executables.clear();
  Check c = check_newuidmap(h, h.id);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("not needed as root"));
}

TEST(DoctorSubid, RangeByNameOrUidIsOk) {
  FakeHost h = healthy_user_host();
  Check c = check_subid(h, h.id, false);
  expect_ok(c);
  EXPECT_EQ(c.key, "subuid");
  EXPECT_EQ(c.section, Section::Preflight);
  EXPECT_THAT(c.detail, HasSubstr("100000-165535 (65536 ids)"));
  h.files["/etc/subgid"] = "bob:100000:65536\n1000:200000:1000\n";
  Check g = check_subid(h, h.id, true);
  expect_ok(g);
  EXPECT_EQ(g.key, "subgid");
  EXPECT_THAT(g.detail, HasSubstr("200000-200999 (1000 ids)"));
}

TEST(DoctorSubid, OtherUsersRangeOnlyIsWarning) {
  FakeHost h = healthy_user_host();
  h.files["/etc/subuid"] = "bob:100000:65536\n# alice:1:2\n";
  Check c = check_subid(h, h.id, false);
  expect_status(c, Status::Warning);
  EXPECT_THAT(c.detail, HasSubstr("no range for alice (uid 1000) in /etc/subuid"));
  EXPECT_THAT(c.hint, HasSubstr("usermod --add-subuids 100000-165535 alice"));
  h.files.erase("/etc/subgid");
  Check g = check_subid(h, h.id, true);
  expect_status(g, Status::Warning);
  EXPECT_THAT(g.hint, HasSubstr("--add-subgids"));
}

TEST(DoctorSubid, RootDoesNotNeedThem) {
  FakeHost h = healthy_root_host();
  h.files.erase("/etc/subuid");
  expect_ok(check_subid(h, h.id, false));
}

// --- /dev/net/tun ------------------------------------------------------------

TEST(DoctorTun, OpenableIsOk) {
  FakeHost h = healthy_user_host();
  Check c = check_tun(h);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("mode 0666, owner root:root"));
}

TEST(DoctorTun, PermissionDeniedIsFatalWithModeOwnerAndChmodHint) {
  FakeHost h = healthy_user_host();
  h.stats["/dev/net/tun"] = FileInfo{true, S_IFCHR | 0600, 0, 0, false};
  h.open_rw_errno["/dev/net/tun"] = EACCES;
  Check c = check_tun(h);
  expect_status(c, Status::Fatal);
  EXPECT_EQ(c.key, "tun");
  EXPECT_THAT(c.detail, HasSubstr("EACCES (Permission denied)"));
  EXPECT_THAT(c.detail, HasSubstr("mode 0600, owner root:root"));
  EXPECT_THAT(c.hint, HasSubstr("chmod 0666 /dev/net/tun"));
  EXPECT_THAT(c.hint, HasSubstr("udev"));
}

TEST(DoctorTun, OwnerWithoutNameShowsNumbers) {
  FakeHost h = healthy_user_host();
  h.stats["/dev/net/tun"] = FileInfo{true, S_IFCHR | 0660, 0, 104, false};
  h.open_rw_errno["/dev/net/tun"] = EACCES;
  EXPECT_THAT(check_tun(h).detail, HasSubstr("owner root:kvm"));
  h.stats["/dev/net/tun"] = FileInfo{true, S_IFCHR | 0660, 7777, 8888, false};
  EXPECT_THAT(check_tun(h).detail, HasSubstr("owner 7777:8888"));
}

TEST(DoctorTun, MissingOrNoDriverIsFatal) {
  FakeHost h = healthy_user_host();
  h.stats.erase("/dev/net/tun");
  Check c = check_tun(h);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("does not exist"));
  EXPECT_THAT(c.hint, HasSubstr("mknod /dev/net/tun c 10 200"));
  h = healthy_user_host();
  h.open_rw_errno["/dev/net/tun"] = ENODEV;
  EXPECT_THAT(check_tun(h).hint, HasSubstr("modprobe tun"));
  h = healthy_user_host();
  h.stats["/dev/net/tun"] = FileInfo{true, S_IFREG | 0666, 0, 0, false};
  c = check_tun(h);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("not a character device"));
}

// --- ICMP --------------------------------------------------------------------

TEST(DoctorIcmp, WorkingPingSocketIsOk) {
  FakeHost h = healthy_user_host();
  Check c = check_ping_group_range(h, h.id);
  expect_ok(c);
  EXPECT_EQ(icmp_path(h, h.id), IcmpPath::PingSocket);
  EXPECT_THAT(c.detail, HasSubstr("net.ipv4.ping_group_range = 0 2147483647 covers gid 1000"));
  EXPECT_THAT(c.detail, HasSubstr("ICMP echo uses unprivileged ping sockets (IPv4 and IPv6)"));
  h.ping_errno_v6 = EAFNOSUPPORT;
  EXPECT_THAT(check_ping_group_range(h, h.id).detail, HasSubstr("IPv6 ping socket: EAFNOSUPPORT"));
}

TEST(DoctorIcmp, SupplementaryGroupCounts) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "27 27\n";
  Check c = check_ping_group_range(h, h.id);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("covers gid 27"));
}

TEST(DoctorIcmp, RefusedPingSocketIsWarningAdminProhibited) {
  FakeHost h = healthy_user_host();
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "1\t0\n";
  h.ping_errno_v4 = h.ping_errno_v6 = EACCES;
  Check c = check_ping_group_range(h, h.id);
  expect_status(c, Status::Warning);
  EXPECT_EQ(icmp_path(h, h.id), IcmpPath::AdminProhibited);
  EXPECT_THAT(c.detail, HasSubstr("= 1 0 does not cover gid 1000 and a ping socket fails with EACCES"));
  EXPECT_THAT(c.detail, HasSubstr("administratively prohibited"));
  EXPECT_THAT(c.detail, Not(HasSubstr("CAP_NET_RAW")));
  EXPECT_THAT(c.hint, HasSubstr("sysctl -w net.ipv4.ping_group_range=\"1000 1000\""));
  h.files.erase("/proc/sys/net/ipv4/ping_group_range");
  expect_status(check_ping_group_range(h, h.id), Status::Warning);
}

TEST(DoctorIcmp, RootWithoutPingSocketsSaysCapNetRawDoesNotHelp) {
  // ping_group_range applies to root too, and the engine has no raw path.
  FakeHost h = healthy_root_host();
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "1\t0\n";
  h.ping_errno_v4 = EACCES;
  Check c = check_ping_group_range(h, h.id);
  expect_status(c, Status::Warning);
  EXPECT_THAT(c.detail, HasSubstr("does not cover gid 0"));
  EXPECT_THAT(c.detail, HasSubstr("CAP_NET_RAW does not help"));
}

// --- resolver and routes -----------------------------------------------------

TEST(DoctorResolver, DnsFlagWins) {
  FakeHost h = healthy_user_host();
  Config c;
  c.dns = IpAddr::parse("2001:db8::53");
  Check r = check_resolver(h, c);
  expect_ok(r);
  EXPECT_THAT(r.detail, HasSubstr("2001:db8::53 (from --dns)"));
}

TEST(DoctorResolver, FirstNameserverOfResolvConf) {
  FakeHost h = healthy_user_host();
  h.files["/etc/resolv.conf"] = "nameserver fe80::1%eth0\nnameserver 192.0.2.9\n";
  Check r = check_resolver(h, Config{});
  expect_ok(r);
  EXPECT_THAT(r.detail, HasSubstr("fe80::1 (first nameserver in /etc/resolv.conf)"));
}

TEST(DoctorResolver, NoneIsWarning) {
  FakeHost h = healthy_user_host();
  h.files["/etc/resolv.conf"] = "search example.test\n";
  Check r = check_resolver(h, Config{});
  expect_status(r, Status::Warning);
  EXPECT_THAT(r.hint, HasSubstr("--dns"));
  h.files["/etc/resolv.conf"] = "nameserver not-an-ip\n";
  expect_status(check_resolver(h, Config{}), Status::Warning);
  h.files.erase("/etc/resolv.conf");
  expect_status(check_resolver(h, Config{}), Status::Warning);
}

TEST(DoctorResolver, NotUsedWithProxyDnsRemote) {
  FakeHost h = healthy_user_host();
  h.files.erase("/etc/resolv.conf");
  Config c;
  c.proxy = ProxyUri{ProxyScheme::Socks5, "127.0.0.1", 9050};
  c.proxy_dns = ProxyDns::Remote;
  Check r = check_resolver(h, c);
  expect_ok(r);
  EXPECT_THAT(r.detail, HasSubstr("not used"));
}

TEST(DoctorRoutes, DefaultRoutesAreOk) {
  FakeHost h = healthy_user_host();
  Check v4 = check_ipv4_route(h);
  expect_ok(v4);
  EXPECT_EQ(v4.detail, "via 192.0.2.1 dev eth0");
  Check v6 = check_ipv6_route(h);
  expect_ok(v6);
  EXPECT_EQ(v6.detail, "via 2001:db8::1 dev eth0");
}

TEST(DoctorRoutes, MissingIsWarning) {
  FakeHost h = healthy_user_host();
  h.files["/proc/net/route"] =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  expect_status(check_ipv4_route(h), Status::Warning);
  // The kernel's reject route for ::/0 on lo is not a default route.
  h.files["/proc/net/ipv6_route"] =
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
  Check v6 = check_ipv6_route(h);
  expect_status(v6, Status::Warning);
  EXPECT_THAT(v6.detail, HasSubstr("AAAA queries from the tree get empty answers"));
  h.files.erase("/proc/net/ipv6_route");
  expect_status(check_ipv6_route(h), Status::Warning);
}

// --- packet sockets ----------------------------------------------------------

TEST(DoctorPacketSocket, WorksOrWarnsOrIsFatalWhenWireEgressRequested) {
  FakeHost h = healthy_root_host();
  Config c;
  expect_ok(check_packet_socket(h, h.id, c));
  h.packet_errno = EPERM;
  expect_status(check_packet_socket(h, h.id, c), Status::Warning);
  c.capture = "/tmp/x.pcapng";
  c.capture_point = CapturePoint::WireEgress;
  Check f = check_packet_socket(h, h.id, c);
  expect_status(f, Status::Fatal);
  EXPECT_THAT(f.detail, HasSubstr("(requested)"));
  // Rootful: every view reads the veth with a packet socket.
  c.backend = Backend::Rootful;
  c.capture_point = CapturePoint::Child;
  f = check_packet_socket(h, h.id, c);
  expect_status(f, Status::Fatal);
  EXPECT_THAT(f.detail, HasSubstr("the rootful backend reads the tree's veth"));
}

// --- rootful -----------------------------------------------------------------

TEST(DoctorRoot, RootIsOkOthersFatal) {
  expect_ok(check_root(healthy_root_host().id));
  Check c = check_root(healthy_user_host().id);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.hint, HasSubstr("drop --root"));
}

TEST(DoctorNftables, TrialCreatesAndDeletesThrowawayTable) {
  FakeHost h = healthy_root_host();
  Check c = check_nftables(h, h.id);
  expect_ok(c);
  ASSERT_EQ(h.nft_commands.size(), 1u);
  EXPECT_THAT(h.nft_commands[0], HasSubstr("add table inet childflow_doctor_4242"));
  EXPECT_THAT(h.nft_commands[0], HasSubstr("delete table inet childflow_doctor_4242"));
  // What a run's table needs, not just an empty table.
  EXPECT_THAT(h.nft_commands[0], HasSubstr("reject with tcp reset"));
  EXPECT_THAT(h.nft_commands[0], HasSubstr("masquerade"));
  EXPECT_THAT(h.nft_commands[0], HasSubstr("flags dynamic"));
}

TEST(DoctorNftables, FailureIsFatalAndNonRootIsNotChecked) {
  FakeHost h = healthy_root_host();
  h.nft = Trial{false, "nft", EOPNOTSUPP, "Error: Could not process rule: Not supported"};
  Check c = check_nftables(h, h.id);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("Could not process rule"));
  FakeHost u = healthy_user_host();
  Check n = check_nftables(u, u.id);
  expect_status(n, Status::Warning);
  EXPECT_THAT(n.detail, HasSubstr("needs root"));
  EXPECT_TRUE(u.nft_commands.empty());
}

TEST(DoctorForwarding, WritableIsOk) {
  FakeHost h = healthy_root_host();
  Check v4 = check_forwarding(h, h.id, false);
  expect_ok(v4);
  EXPECT_EQ(v4.key, "ipv4_forward");
  EXPECT_THAT(v4.detail, HasSubstr("net.ipv4.ip_forward = 0, writable"));
  Check v6 = check_forwarding(h, h.id, true);
  expect_ok(v6);
  EXPECT_EQ(v6.key, "ipv6_forward");
}

TEST(DoctorForwarding, ReadOnlyIsFatalUnlessAlreadyOn) {
  FakeHost h = healthy_root_host();
  h.open_write_errno["/proc/sys/net/ipv4/ip_forward"] = EROFS;
  Check c = check_forwarding(h, h.id, false);
  expect_status(c, Status::Fatal);
  EXPECT_THAT(c.detail, HasSubstr("EROFS"));
  EXPECT_THAT(c.hint, HasSubstr("read-only"));
  h.files["/proc/sys/net/ipv4/ip_forward"] = "1\n";
  expect_status(check_forwarding(h, h.id, false), Status::Warning);
}

TEST(DoctorForwarding, NoIpv6IsWarningNoIpv4IsFatal) {
  FakeHost h = healthy_root_host();
  h.files.erase("/proc/sys/net/ipv6/conf/all/forwarding");
  expect_status(check_forwarding(h, h.id, true), Status::Warning);
  h.files.erase("/proc/sys/net/ipv4/ip_forward");
  expect_status(check_forwarding(h, h.id, false), Status::Fatal);
  FakeHost u = healthy_user_host();
  EXPECT_THAT(check_forwarding(u, u.id, false).detail, HasSubstr("needs root"));
}

TEST(DoctorTproxy, TrialLoadsTproxyRules) {
  FakeHost h = healthy_root_host();
  expect_ok(check_tproxy(h, h.id, Config{}));
  ASSERT_EQ(h.nft_commands.size(), 1u);
  EXPECT_THAT(h.nft_commands[0], HasSubstr("tproxy ip to"));
  EXPECT_THAT(h.nft_commands[0], HasSubstr("tproxy ip6 to"));
  EXPECT_THAT(h.nft_commands[0], HasSubstr("delete table"));
}

TEST(DoctorTproxy, FailureIsFatalOnlyWithProxy) {
  FakeHost h = healthy_root_host();
  h.nft = Trial{false, "nft", ENOENT, "Error: Could not process rule: No such file or directory"};
  Config c;
  expect_status(check_tproxy(h, h.id, c), Status::Warning);
  c.proxy = ProxyUri{ProxyScheme::Http, "203.0.113.30", 3128};
  Check f = check_tproxy(h, h.id, c);
  expect_status(f, Status::Fatal);
  EXPECT_THAT(f.hint, HasSubstr("nft_tproxy"));
}

TEST(DoctorConntrack, FatalOnlyWhenTheRunLogsFlows) {
  FakeHost h = healthy_root_host();
  Config c;
  expect_ok(check_conntrack_events(h, h.id, c));
  h.ctnetlink_errno = ENOENT;
  Check w = check_conntrack_events(h, h.id, c);
  expect_status(w, Status::Warning);
  EXPECT_THAT(w.hint, HasSubstr("nf_conntrack_netlink"));
  c.summary = true;
  expect_status(check_conntrack_events(h, h.id, c), Status::Fatal);
  for (auto set : {+[](Config& x) { x.learn = "/tmp/p.toml"; }, +[](Config& x) { x.capture = "/tmp/c.pcapng"; }}) {
    Config d;
    set(d);
    expect_status(check_conntrack_events(h, h.id, d), Status::Fatal);
  }
  FakeHost u = healthy_user_host();
  EXPECT_THAT(check_conntrack_events(u, u.id, c).detail, HasSubstr("needs root"));
}

TEST(DoctorPolicyRouting, TrialAndIface) {
  FakeHost h = healthy_root_host();
  Config c;
  expect_ok(check_policy_routing(h, h.id, c));
  EXPECT_EQ(h.policy_routing_trials, 1);
  h.policy_routing = Trial{false, "RTM_NEWRULE (IPv4)", 0, "Operation not supported"};
  Check w = check_policy_routing(h, h.id, c);
  expect_status(w, Status::Warning);
  EXPECT_THAT(w.detail, HasSubstr("Operation not supported"));
  c.iface = "eth0";
  expect_status(check_policy_routing(h, h.id, c), Status::Fatal);
  expect_ok(check_iface(h, "eth0"));
  Check missing = check_iface(h, "eth9");
  expect_status(missing, Status::Fatal);
  EXPECT_THAT(missing.detail, HasSubstr("eth9: no such interface"));
}

TEST(DoctorLeftovers, CleanHostIsOk) {
  FakeHost h = healthy_root_host();
  expect_ok(check_leftover_state(h, h.id));
}

TEST(DoctorLeftovers, TablesLinksAndStateDirAreWarningsWithCleanupHint) {
  FakeHost h = healthy_root_host();
  h.tables = std::vector<std::string>{"inet filter", "inet childflow_1234"};
  h.dirs["/sys/class/net"] = {"lo", "eth0", "cf1234h"};
  h.dirs["/run/childflow"] = {"1234.json", "lock"};
  Check c = check_leftover_state(h, h.id);
  expect_status(c, Status::Warning);
  EXPECT_THAT(c.detail, HasSubstr("nftables table inet childflow_1234"));
  EXPECT_THAT(c.detail, HasSubstr("link cf1234h"));
  EXPECT_THAT(c.detail, HasSubstr("/run/childflow (1 entries)"));
  EXPECT_THAT(c.detail, Not(HasSubstr("inet filter")));
  EXPECT_THAT(c.hint, HasSubstr("childflow --cleanup"));
}

TEST(DoctorLeftovers, TheLockAloneIsNoLeftover) {
  FakeHost h = healthy_root_host();
  h.dirs["/run/childflow"] = {"lock"};
  expect_ok(check_leftover_state(h, h.id));
}

TEST(DoctorLeftovers, UnlistableTablesAreSaid) {
  FakeHost h = healthy_root_host();
  h.tables = std::nullopt;
  h.tables_why = "Operation not permitted";
  Check c = check_leftover_state(h, h.id);
  expect_ok(c);
  EXPECT_THAT(c.detail, HasSubstr("not listed: Operation not permitted"));
}

}  // namespace
}  // namespace cf::doctor

// --- kernel features with a fallback -----------------------------------------

namespace cf::doctor {
namespace {

TEST(KernelFeature, SaysWhichTcpPathRuns) {
  FakeHost h = testing::healthy_user_host();
  Check c = check_kernel_feature(h, kernel::Feature::TcpPeekOff);
  EXPECT_EQ(c.key, "kernel_tcp_peek_off");
  EXPECT_EQ(c.status, Status::Ok);
  EXPECT_THAT(c.detail, ::testing::HasSubstr("the kernel has it"));
  EXPECT_THAT(c.detail, ::testing::HasSubstr("in place (SO_PEEK_OFF)"));
  h.peek_off.available = false;
  c = check_kernel_feature(h, kernel::Feature::TcpPeekOff);
  EXPECT_THAT(c.detail, ::testing::HasSubstr("the kernel lacks it"));
  EXPECT_THAT(c.detail, ::testing::HasSubstr("bounded copy"));
  h.peek_off.available = true;
  h.peek_off.forced_off = true;
  c = check_kernel_feature(h, kernel::Feature::TcpPeekOff);
  EXPECT_THAT(c.detail, ::testing::HasSubstr("CHILDFLOW_FORCE_FALLBACK turns it off"));
  EXPECT_THAT(c.detail, ::testing::HasSubstr("bounded copy"));
}

}  // namespace
}  // namespace cf::doctor
