// What a rootful run changed on the host, written down before it changes
// it, so that a run killed with SIGKILL can be undone later
// (`childflow --cleanup`), and the forwarding sysctls that runs share.
//
// Theory of operation. Everything lives under /run/childflow (a tmpfs: a
// reboot forgets it, and forgets the state it describes too):
//
//   lock                         flock(2)ed around every change below
//   <run>/record                 one run: its pid and the pid's start time
//                                (so a reused pid is not taken for it), the
//                                network namespace it changed (its cookie,
//                                never reused during a boot; the inode of
//                                /proc/self/ns/net before Linux 5.14), its
//                                nftables table
//                                and its veth's host end; with --proxy
//                                and with --iface, the fwmark, routing
//                                table and rule priorities each chose
//                                (routing.hpp), and the pin's interface
//   forwarding-<netns>.saved     (<netns>: the cookie) the forwarding sysctls of that network
//                                namespace as they were before the first
//                                run there enabled forwarding
//
// Forwarding is shared by reference count: the records of one network
// namespace are the count. Under the lock, a run that finds no saved file
// saves every forwarding sysctl (net.ipv4.ip_forward, and conf/*/forwarding
// of IPv4 and IPv6, all, default and each interface), then every run sets
// net.ipv4.ip_forward and net.ipv6.conf.all.forwarding to 1. When a run
// ends it removes its record, and if no record of its namespace is left,
// writes the saved values back (all first, then default, then each
// interface still there, since writing `all` overwrites the others) and
// removes the saved file. A killed run's record keeps forwarding on until
// `--cleanup` removes it.
//
// Only the records are trusted to say what childflow created: cleanup
// deletes the table and link a record names, nothing found by pattern.
#pragma once
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::rootful::state {

inline constexpr const char* kDir = "/run/childflow";

struct Record {
  std::string run;  // 8 hex digits
  pid_t pid = 0;
  uint64_t start_time = 0;  // field 22 of /proc/<pid>/stat
  uint64_t netns = 0;       // cookie (or inode) of the network namespace
  std::string table;        // nftables: inet <table>
  std::string link;         // the veth's host end
  // --proxy: TPROXY's firewall mark, routing table and rule priority
  // (routing.hpp); 0 when the run has none. Optional keys in the file.
  uint32_t mark = 0, route_table = 0, rule_priority = 0;
  // --iface (uplink.hpp, routing.hpp): the fwmark, routing table and rule
  // priorities of the pin (one priority since both families share it;
  // records of earlier runs may have two); all zero without one.
  std::string pin_iface{};
  uint32_t pin_mark = 0, pin_table = 0, pin_pref4 = 0, pin_pref6 = 0;
};

// The record file's text and back (pure; nullopt for anything else).
std::string render(const Record& r);
std::optional<Record> parse(const std::string& text);

// A fresh run id, and the record of the calling process for it.
std::string new_run_id();
Record describe_self(const std::string& run);

// The lock, held while the object lives.
class Lock {
 public:
  static Result<Lock> take();

 private:
  explicit Lock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Under the lock: write (atomically) or remove a run's record.
Status write_record(const Record& r);
void remove_record(const std::string& run);
// Every record that reads back, in run order.
std::vector<Record> records();
// Whether the record's process still runs (same pid, same start time).
bool alive(const Record& r);
// The inode of the caller's network namespace.
uint64_t current_netns();

// Under the lock: save the forwarding sysctls of this namespace unless
// saved already, then enable forwarding (IPv4; IPv6 when the kernel has it).
Status enable_forwarding(uint64_t netns);
// Under the lock, once no record of `netns` is left: put the saved values
// back and forget them. Does nothing while records remain.
Status restore_forwarding_if_last(uint64_t netns);

}  // namespace cf::rootful::state
