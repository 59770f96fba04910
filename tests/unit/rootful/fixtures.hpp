// What the rootful backend's unit tests share: literal addresses, the
// table's spec and a run's record for one made-up run (0badcafe), a finder
// that fails the test when text is missing, and a throwaway network
// namespace for the tests that need root.
#pragma once
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "common/addr.hpp"
#include "rootful/ruleset.hpp"
#include "rootful/state.hpp"

namespace cf::rootful::fixtures {

inline IpAddr ip(const char* t) { return *IpAddr::parse(t); }
inline Cidr cidr(const char* t) { return *Cidr::parse(t); }

// The table of run 0badcafe: its names and the tree's addresses, no policy.
inline RulesetSpec spec() {
  RulesetSpec s;
  s.table = "childflow_0badcafe";
  s.link = "cf0badcafe";
  s.plan.gw4 = ip("10.240.3.1");
  s.plan.child4 = ip("10.240.3.2");
  s.plan.gw6 = ip("fd42:1:2:3::1");
  s.plan.child6 = ip("fd42:1:2:3::2");
  return s;
}

// The record of run 0badcafe, with neither --proxy nor --iface.
inline state::Record record() {
  return state::Record{"0badcafe", 4242, 1, 2, "childflow_0badcafe", "cf0badcafe"};
}

// The position of `needle` in `hay`; fails the test when it is absent.
inline size_t at(const std::string& hay, const std::string& needle) {
  size_t p = hay.find(needle);
  EXPECT_NE(p, std::string::npos) << "missing: " << needle << "\nin:\n" << hay;
  return p;
}

// As root: `fn` runs in a child that unshared a network namespace; its exit
// code is the verdict (0 passes; 100: unshare failed; 101: no exit).
inline int in_throwaway_netns(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) _exit(100);
    _exit(fn());
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return 101;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

}  // namespace cf::rootful::fixtures
