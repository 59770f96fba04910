// A Host whose every answer the test sets: files, stats, directories, open
// results, PATH, ids and trial outcomes. Anything not set does not exist.
#pragma once
#include <sys/stat.h>

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "doctor/host.hpp"

namespace cf::doctor::testing {

class FakeHost final : public Host {
 public:
  std::map<std::string, std::string> files;
  std::map<std::string, FileInfo> stats;
  std::map<std::string, std::vector<std::string>> dirs;
  std::map<std::string, int> open_rw_errno;     // missing key: ENOENT
  std::map<std::string, int> open_write_errno;  // missing key: ENOENT
  std::map<std::string, std::string> path_executables;  // name -> full path
  Identity id;
  int the_pid = 4242;
  Trial userns{true, {}, 0, {}};
  Trial nft{true, {}, 0, {}};
  std::vector<std::string> nft_commands;  // what nft_trial was asked to run
  std::optional<std::vector<std::string>> tables = std::vector<std::string>{};
  std::string tables_why;
  int packet_errno = 0;
  int ctnetlink_errno = 0;
  Trial policy_routing{true, {}, 0, {}};
  int policy_routing_trials = 0;
  std::set<std::string> ifaces_ready{"eth0"};
  int ping_errno_v4 = 0;
  int ping_errno_v6 = 0;
  kernel::Probe peek_off{"tcp_peek_off", true, false};
  int userns_trials = 0;
  Trial confine{true, {}, 0, {}};
  int confine_trials = 0;

  std::optional<std::string> read_file(const std::string& p) override {
    auto it = files.find(p);
    if (it == files.end()) return std::nullopt;
    return it->second;
  }
  FileInfo stat_path(const std::string& p) override {
    auto it = stats.find(p);
    if (it != stats.end()) return it->second;
    if (files.count(p)) return FileInfo{true, S_IFREG | 0644, 0, 0, false};
    return FileInfo{};
  }
  std::vector<std::string> list_dir(const std::string& p) override {
    auto it = dirs.find(p);
    return it == dirs.end() ? std::vector<std::string>{} : it->second;
  }
  int try_open_rw(const std::string& p) override {
    auto it = open_rw_errno.find(p);
    return it == open_rw_errno.end() ? ENOENT : it->second;
  }
  int try_open_write(const std::string& p) override {
    auto it = open_write_errno.find(p);
    return it == open_write_errno.end() ? ENOENT : it->second;
  }
  std::optional<std::string> find_executable(const std::string& n) override {
    auto it = path_executables.find(n);
    if (it == path_executables.end()) return std::nullopt;
    return it->second;
  }
  Identity identity() override { return id; }
  int pid() override { return the_pid; }
  Trial userns_trial() override {
    ++userns_trials;
    return userns;
  }
  Trial confine_trial() override {
    ++confine_trials;
    return confine;
  }
  Trial nft_trial(const std::string& commands) override {
    nft_commands.push_back(commands);
    return nft;
  }
  Result<std::vector<std::string>> nft_tables() override {
    if (!tables) return Error{tables_why};
    return *tables;
  }
  int try_packet_socket() override { return packet_errno; }
  int try_ctnetlink() override { return ctnetlink_errno; }
  Trial policy_routing_trial() override {
    ++policy_routing_trials;
    return policy_routing;
  }
  cf::Status iface_ready(const std::string& name) override {
    if (ifaces_ready.contains(name)) return {};
    return Error{name + ": no such interface on this host"};
  }
  int try_ping_socket(bool ipv6) override { return ipv6 ? ping_errno_v6 : ping_errno_v4; }
  kernel::Probe kernel_probe(kernel::Feature f) override {
    switch (f) {
      case kernel::Feature::TcpPeekOff: return peek_off;
      case kernel::Feature::Clone3: return kernel::Probe{"clone3", true, false};
      case kernel::Feature::MountSetattr: return kernel::Probe{"mount_setattr", true, false};
      case kernel::Feature::TapOffload: return kernel::Probe{"tap_offload", true, false};
    }
    return {};
  }
};

// A host on which a rootless run works with nothing to warn about, for uid
// 1000 ("alice", gid 1000).
inline FakeHost healthy_user_host() {
  FakeHost h;
  h.id = Identity{1000, 1000, 1000, 1000, {1000, 27}, "alice"};
  for (const char* ns : {"user", "net", "mnt", "pid"})
    h.stats[std::string("/proc/self/ns/") + ns] = FileInfo{true, S_IFREG | 0444, 0, 0, false};
  h.files["/proc/sys/user/max_user_namespaces"] = "63422\n";
  h.files["/etc/passwd"] = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\n";
  h.files["/etc/group"] = "root:x:0:\nkvm:x:104:\nalice:x:1000:\n";
  h.path_executables["newuidmap"] = "/usr/bin/newuidmap";
  h.path_executables["newgidmap"] = "/usr/bin/newgidmap";
  h.stats["/usr/bin/newuidmap"] = FileInfo{true, S_IFREG | S_ISUID | 0755, 0, 0, false};
  h.stats["/usr/bin/newgidmap"] = FileInfo{true, S_IFREG | S_ISUID | 0755, 0, 0, false};
  h.files["/etc/subuid"] = "alice:100000:65536\n";
  h.files["/etc/subgid"] = "alice:100000:65536\n";
  h.stats["/dev/net/tun"] = FileInfo{true, S_IFCHR | 0666, 0, 0, false};
  h.open_rw_errno["/dev/net/tun"] = 0;
  h.files["/proc/sys/net/ipv4/ping_group_range"] = "0\t2147483647\n";
  h.files["/proc/self/status"] = "Name:\tchildflow\nCapEff:\t0000000000000000\n";
  h.files["/etc/resolv.conf"] = "# generated\nsearch example.test\nnameserver 192.0.2.53\n";
  h.files["/proc/net/route"] =
      "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
      "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
      "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
  h.files["/proc/net/ipv6_route"] =
      "20010db8000000000000000000000000 40 00000000000000000000000000000000 00 "
      "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
      "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
      "20010db8000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n";
  return h;
}

// The same host seen by root, with what the rootful backend needs.
inline FakeHost healthy_root_host() {
  FakeHost h = healthy_user_host();
  h.id = Identity{0, 0, 0, 0, {0}, "root"};
  h.files["/proc/self/status"] = "Name:\tchildflow\nCapEff:\t000001ffffffffff\n";
  h.files["/proc/sys/net/ipv4/ip_forward"] = "0\n";
  h.files["/proc/sys/net/ipv6/conf/all/forwarding"] = "0\n";
  h.open_write_errno["/proc/sys/net/ipv4/ip_forward"] = 0;
  h.open_write_errno["/proc/sys/net/ipv6/conf/all/forwarding"] = 0;
  h.dirs["/sys/class/net"] = {"lo", "eth0"};
  h.tables = std::vector<std::string>{"inet filter"};
  return h;
}

}  // namespace cf::doctor::testing
