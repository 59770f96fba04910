// The doctor's only window on the host. Every check reads the machine through
// this interface and nothing else, so the unit tests can fake every input
// (files under /proc, /sys and /etc, PATH lookups, device opens, ids, and the
// trials that create throwaway namespaces) and drive each check's ok, warning
// and fatal branch without touching the real host.
//
// SystemHost (system_host.cpp) is the real implementation. Its trials run in
// a short-lived forked child that unshares its own namespaces, so nothing the
// doctor tries (a user namespace, an nftables table, a TPROXY rule) is ever
// visible on the host, and the child's exit tears it all down.
#pragma once
#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/kernel.hpp"
#include "common/result.hpp"

namespace cf::doctor {

struct FileInfo {
  bool exists = false;
  mode_t mode = 0;  // full st_mode (type and permission bits)
  uid_t uid = 0;
  gid_t gid = 0;
  bool has_file_caps = false;  // a security.capability xattr is set
};

struct Identity {
  uid_t uid = 0;
  uid_t euid = 0;
  gid_t gid = 0;
  gid_t egid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  std::string user_name;      // empty when the uid has no passwd entry
};

// The outcome of something the doctor tried. `step` names the call that
// failed ("unshare(CLONE_NEWUSER)", "write /proc/self/uid_map", "nft"), `err`
// is its errno (0 when the failure has no errno), `message` any text the
// failing library printed (nftables' error buffer).
struct Trial {
  bool ok = false;
  std::string step;
  int err = 0;
  std::string message;
};

class Host {
 public:
  virtual ~Host() = default;

  // Contents of an absolute path (e.g. "/proc/sys/user/max_user_namespaces"),
  // or nullopt when it does not exist or cannot be read.
  virtual std::optional<std::string> read_file(const std::string& path) = 0;
  virtual FileInfo stat_path(const std::string& path) = 0;
  // Names in a directory ("." and ".." left out); empty when unreadable.
  virtual std::vector<std::string> list_dir(const std::string& path) = 0;
  // Opens `path` read-write and closes it at once: 0 or the errno.
  virtual int try_open_rw(const std::string& path) = 0;
  // Opens `path` write-only and closes it without writing: 0 or the errno.
  virtual int try_open_write(const std::string& path) = 0;
  // Full path of an executable found on PATH, or nullopt.
  virtual std::optional<std::string> find_executable(const std::string& name) = 0;
  virtual Identity identity() = 0;
  virtual int pid() = 0;

  // In a short-lived child: unshare a user namespace, map the caller's own
  // uid and gid to 0, then unshare network, mount and PID namespaces (what a
  // rootless run does).
  virtual Trial userns_trial() = 0;
  // In a short-lived child: the engine's own confinement, for real
  // (confine::lock_down: capabilities, no-new-privs, the seccomp filter).
  virtual Trial confine_trial() = 0;
  // In a short-lived child inside a throwaway network namespace: run
  // `commands` through libnftables.
  virtual Trial nft_trial(const std::string& commands) = 0;
  // Names of the nftables tables in the current network namespace as
  // "family name" lines; the Error says why they cannot be listed.
  virtual Result<std::vector<std::string>> nft_tables() = 0;
  // socket(AF_PACKET, SOCK_RAW) and close: 0 or the errno.
  virtual int try_packet_socket() = 0;
  // A NETLINK_NETFILTER socket bound to the conntrack event groups (what a
  // rootful run with a flow log or summary reads), opened and closed: 0 or
  // the errno.
  virtual int try_ctnetlink() = 0;
  // In a short-lived child inside a throwaway network namespace: an fwmark
  // rule to a numbered table, IPv4 and IPv6 (what --iface adds).
  virtual Trial policy_routing_trial() = 0;
  // Whether interface `name` exists and has a default route in the main
  // table; the Error says which is missing and what to do.
  virtual cf::Status iface_ready(const std::string& name) = 0;
  // An unprivileged ICMP ("ping") socket, SOCK_DGRAM with IPPROTO_ICMP or
  // IPPROTO_ICMPV6, opened and closed: 0 or the errno.
  virtual int try_ping_socket(bool ipv6) = 0;
  // What the engine's start-up probe found for a kernel feature (and whether
  // CHILDFLOW_FORCE_FALLBACK turns it off), so the doctor shows the path a
  // run takes.
  virtual kernel::Probe kernel_probe(kernel::Feature f) = 0;
};

std::unique_ptr<Host> make_system_host();

}  // namespace cf::doctor
