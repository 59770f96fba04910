// --learn FILE: the profile a run writes from what its tree used
// (docs/policy.md, "Learning a profile").
//
// Theory of operation
//   The Recorder keeps a Ledger (learn/ledger.hpp) of the flows the tree
//   made. At the end of the run it has to become a file, but by then the
//   engine is confined (src/confine/): it can open no file at all. So the
//   run starts a Writer first, while childflow may still open files: a
//   forked process that waits on a socketpair and does nothing else. When
//   the engine has served the tree to its end, finish() sends it the Ledger
//   and reads its one-line answer. The writer then
//     1. reads FILE as it is now, when it exists (the run checked at start
//        that it is a profile: cli/validate.cpp);
//     2. merges (render(), below) and checks that the text loads back as a
//        profile;
//     3. replaces FILE atomically: a temporary file in the same directory
//        (with the old file's mode), fsync, rename.
//   A run that stops before the end sends nothing: the writer sees the
//   socket close without a complete Ledger and writes nothing. So FILE is
//   always either what it was or the complete new profile. The writer dies
//   with childflow (PR_SET_PDEATHSIG) and ignores the signals a terminal
//   sends the whole process group (childflow forwards them to the tree and
//   still finishes the run). It is not seccomp-confined (it must open and
//   rename files), so it is made as unreachable as the engine: non-dumpable,
//   no-new-privs, every fd but its socket closed, outside the tree's PID
//   namespace and in a process group of its own (the tree can neither name
//   it nor reach it with kill(0, ...)), and it reads nothing from the tree
//   but the Ledger the engine built (names checked to load as profile names,
//   addresses as CIDRs: Ledger::parse). The engine waits at most 30 s for
//   its answer; a profile not written makes a run that exited 0 exit 1.
//
//   render() is the merge, pure for tests. The profile it writes:
//     - default_policy = "deny";
//     - allow_domains, allow_domains_exact (names only sent in first bytes)
//       and allow_cidrs: the file's own entries and the Ledger's, sorted (names by their labels from the right, so a
//       domain's names stay together; addresses IPv4 first, in numeric
//       order), each with a comment `# N flows`. N adds up over the runs:
//       the counts already in the file are read back from those comments
//       (an entry without one counts 0);
//     - the run's DNS and proxy settings (dns, hosts_file, proxy,
//       proxy_user, proxy_password_file, proxy_insecure, proxy_ca,
//       proxy_dns, proxy_only) and the settings a replay needs to judge
//       as the run did (no_sniff_names, and allow_host_loopback when the
//       run had it or the tree reached the host's loopback). A password
//       given any other way than a file is never written: a comment says
//       how to give it;
//     - every other key the file set itself, and its `extends`, unchanged
//       (paths as the file wrote them, relative ones relative);
//     - a comment when first bytes could not be read for a name
//       (Ledger::unreadable): a replay under domain rules denies those.
//   Comments in the file other than the counts are not kept.
#pragma once
#include <sys/types.h>

#include <optional>
#include <string>

#include "common/result.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"
#include "learn/ledger.hpp"

namespace cf::learn {

// The profile text for `ledger` learnt by a run of `run`, merged into
// `existing` (the text of the file at `path`, absolute), if any.
Result<std::string> render(const Config& run, const Ledger& ledger,
                           const std::optional<std::string>& existing, const std::string& path);

class Writer {
 public:
  // Forks the writer for run.learn.
  static Result<Writer> start(const Config& run);
  Writer(Writer&& o) noexcept;
  Writer& operator=(Writer&&) = delete;
  Writer(const Writer&) = delete;
  ~Writer();  // without finish(): the writer writes nothing

  // Sends the Ledger and waits for the writer: what it wrote (a line for
  // the user), or why it wrote nothing.
  Result<std::string> finish(const Ledger& ledger);

 private:
  Writer(UniqueFd sock, pid_t pid) : sock_(std::move(sock)), pid_(pid) {}
  void reap();
  UniqueFd sock_;
  pid_t pid_ = -1;
};

}  // namespace cf::learn
