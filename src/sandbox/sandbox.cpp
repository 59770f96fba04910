// Theory of operation (parent side of the sandbox; the stub's side is in
// init_stub.cpp, the whole sequence in docs/sandbox.md):
//
//   launch: SEQPACKET socketpair (close-on-exec) -> clone3(NEWUSER|NEWNS|
//     NEWPID, CLONE_PIDFD, exit signal SIGCHLD) -> the child runs
//     run_init_stub -> the parent writes the outer id maps (idmap.cpp) and
//     sends MapsDone -> waits (10 s at most) for TapReady with the tap fd, or
//     SetupFailed, or end of file -> returns the Tree. The stub makes the
//     overlays, the inner user namespace and the network namespace itself.
//     Any failure kills and reaps the stub before returning the message.
//   release: sends Release. forward_signal: sends Signal(N); the stub
//     kill()s the command with N. try_reap: waitpid(WNOHANG) on the stub,
//     whose exit code already is the command's code or 128 + N.
//
// The clone is a raw syscall (like bubblewrap's raw_clone): no new stack, the
// child continues on a copy of the parent's, exactly like fork. It must happen
// while the process is single-threaded (malloc locks of other threads would
// stay locked in the copy). A non-dumpable parent would make the stub's /proc
// files root-owned and its id maps unwritable, so launch makes the process
// dumpable for the clone and restores the previous setting right after it.
#include "sandbox/sandbox.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "common/kernel.hpp"
#include "sandbox/control.hpp"
#include "sandbox/idmap.hpp"
#include "sandbox/init_stub.hpp"

namespace cf::sandbox {
namespace {

constexpr int kSetupTimeoutMs = 10'000;

// struct clone_args, version 0 (64 bytes), as in linux/sched.h; declared here
// to avoid mixing that header with glibc's <sched.h>.
struct CloneArgs {
  uint64_t flags;
  uint64_t pidfd;
  uint64_t child_tid;
  uint64_t parent_tid;
  uint64_t exit_signal;
  uint64_t stack;
  uint64_t stack_size;
  uint64_t tls;
};

// fork-like clone into new namespaces; returns the pid (0 in the child) and
// the pidfd in *pidfd (parent only).
pid_t clone_into_namespaces(int* pidfd) {
  // The network namespace comes later, with the inner user namespace
  // (init_stub.cpp, step 5).
  const uint64_t ns = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID;
  CloneArgs args{};
  args.flags = ns | CLONE_PIDFD;
  args.pidfd = reinterpret_cast<uint64_t>(pidfd);
  args.exit_signal = SIGCHLD;
  // Probed here, in the parent, so the init stub (overlay.cpp) inherits the
  // answer instead of probing inside the new namespaces.
  (void)kernel::probe(kernel::Feature::MountSetattr);
  if (kernel::probe(kernel::Feature::Clone3).in_use()) {
    long r = ::syscall(SYS_clone3, &args, sizeof args);
    if (r >= 0 || errno != ENOSYS) return static_cast<pid_t>(r);
  }
#if defined(__x86_64__)
  // clone(flags, stack, parent_tid, child_tid, tls); CLONE_PIDFD stores the
  // pidfd through parent_tid.
  return static_cast<pid_t>(::syscall(SYS_clone, ns | CLONE_PIDFD | SIGCHLD, 0, pidfd, 0, 0));
#else
  return -1;
#endif
}

// Kills (whole PID namespace, via pid 1) and reaps a stub.
void kill_and_reap(pid_t pid, int pidfd) {
  if (pid <= 0) return;
  if (pidfd >= 0)
    ::syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, nullptr, 0);
  else
    ::kill(pid, SIGKILL);
  int status;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("killed by signal {}", WTERMSIG(status));
  return "stopped";
}

// The stub before it is handed over as a Tree: kills and reaps it on failure.
struct StubGuard {
  pid_t pid = -1;
  UniqueFd pidfd;
  ~StubGuard() { kill_and_reap(pid, pidfd.get()); }
};

}  // namespace

const char* name(IdMap m) {
  switch (m) {
    case IdMap::Identity: return "identity";
    case IdMap::SubIds: return "subids";
    case IdMap::Single: return "single";
    case IdMap::UidOnly: return "uid-only";
  }
  return "?";
}

Tree::Tree(Tree&& o) noexcept
    : init_pid(std::exchange(o.init_pid, -1)),
      pidfd(std::move(o.pidfd)),
      tap(std::move(o.tap)),
      tap_vnet_hdr(o.tap_vnet_hdr),
      control(std::move(o.control)),
      id_map(o.id_map),
      exit_code(std::exchange(o.exit_code, std::nullopt)) {}

Tree& Tree::operator=(Tree&& o) noexcept {
  if (this != &o) {
    if (!exit_code) kill_and_reap(init_pid, pidfd.get());
    init_pid = std::exchange(o.init_pid, -1);
    pidfd = std::move(o.pidfd);
    tap = std::move(o.tap);
    tap_vnet_hdr = o.tap_vnet_hdr;
    control = std::move(o.control);
    id_map = o.id_map;
    exit_code = std::exchange(o.exit_code, std::nullopt);
  }
  return *this;
}

Tree::~Tree() {
  if (!exit_code) kill_and_reap(init_pid, pidfd.get());
}

Result<Tree> launch(const Options& o) {
  if (o.command.empty()) return Error{"no command to run", "sandbox"};

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
    return errno_error("sandbox: socketpair");
  UniqueFd parent_end(sv[0]), stub_end(sv[1]);

  StubArgs args;
  args.control_fd = stub_end.get();
  for (const auto& word : o.command) args.argv.push_back(const_cast<char*>(word.c_str()));
  args.argv.push_back(nullptr);
  args.plan = o.plan;
  args.overlays = &o.overlays;
  args.as_root = o.as_root;
  args.link = static_cast<bool>(o.attach_link);
  args.tap_offload = !args.link && kernel::probe(kernel::Feature::TapOffload).in_use();
  args.caller_uid = ::geteuid();
  args.caller_gid = ::getegid();

  const int was_dumpable = ::prctl(PR_GET_DUMPABLE);
  if (was_dumpable != 1) ::prctl(PR_SET_DUMPABLE, 1);
  int raw_pidfd = -1;
  pid_t pid = clone_into_namespaces(&raw_pidfd);
  if (pid == 0) run_init_stub(args);  // never returns
  int clone_errno = errno;
  if (was_dumpable == 0) ::prctl(PR_SET_DUMPABLE, 0);
  if (pid < 0) {
    std::string hint;
    if (clone_errno == EPERM || clone_errno == ENOSPC || clone_errno == EACCES)
      hint = " (are unprivileged user namespaces disabled or exhausted? run childflow --doctor)";
    return Error{strerror(clone_errno) + hint,
                 "sandbox: clone(user, mount, pid namespaces)"};
  }
  StubGuard guard;
  guard.pid = pid;
  guard.pidfd.reset(raw_pidfd);
  stub_end.reset();

  auto mapped = idmap::map_ids(pid, o.as_root);
  if (!mapped) return mapped.error();
  if (!control::send(parent_end.get(), control::Tag::MapsDone))
    return errno_error("sandbox: init stub is gone before setup");

  // The stub's next message, within the setup time-out; SetupFailed and a
  // dead stub become the Error.
  auto await = [&](control::Tag want) -> Result<control::Message> {
    pollfd pfd{parent_end.get(), POLLIN, 0};
    int ready;
    do ready = ::poll(&pfd, 1, kSetupTimeoutMs);
    while (ready < 0 && errno == EINTR);
    if (ready == 0)
      return Error{
          fmt::format("init stub did not finish setup within {} s", kSetupTimeoutMs / 1000),
          "sandbox"};
    auto msg = control::receive(parent_end.get());
    if (!msg) {
      int status = 0;
      if (::waitpid(pid, &status, 0) == pid) {
        guard.pid = -1;
        return Error{fmt::format("init stub exited during setup ({})", describe_status(status)),
                     "sandbox"};
      }
      return Error{"init stub closed its control socket during setup", "sandbox"};
    }
    // The stub's text already names its step ("netlink: RTM_NEWADDR on tap0: ...").
    if (msg->tag == control::Tag::SetupFailed) return Error{msg->text};
    if (msg->tag != want)
      return Error{"init stub sent an unexpected message during setup", "sandbox"};
    return std::move(*msg);
  };

  if (o.attach_link) {
    auto netns = await(control::Tag::NetnsReady);
    if (!netns) return netns.error();
    if (auto s = o.attach_link(pid); !s) return s.error();
    if (!control::send(parent_end.get(), control::Tag::LinkReady))
      return errno_error("sandbox: init stub is gone before its link was attached");
  }
  auto msg = await(control::Tag::TapReady);
  if (!msg) return msg.error();
  if (!o.attach_link) {
    if (!msg->fd) return Error{"init stub sent tap0 without its fd", "sandbox"};
    int flags = ::fcntl(msg->fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(msg->fd.get(), F_SETFL, flags | O_NONBLOCK) != 0)
      return errno_error("sandbox: set tap0 non-blocking");
  }

  Tree t;
  t.init_pid = std::exchange(guard.pid, -1);
  t.pidfd = std::move(guard.pidfd);
  t.tap = std::move(msg->fd);
  t.tap_vnet_hdr = args.tap_offload;
  t.control = std::move(parent_end);
  t.id_map = *mapped;
  return t;
}

bool release(Tree& t) {
  return t.control && control::send(t.control.get(), control::Tag::Release);
}

void forward_signal(const Tree& t, int sig) {
  if (t.control && !t.exit_code)
    control::send(t.control.get(), control::Tag::Signal, sig, {}, -1, /*nonblocking=*/true);
}

std::optional<int> try_reap(Tree& t) {
  if (t.exit_code) return t.exit_code;
  if (t.init_pid <= 0) return std::nullopt;
  int status = 0;
  pid_t r;
  do r = ::waitpid(t.init_pid, &status, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == 0) return std::nullopt;
  if (r < 0) {
    t.exit_code = 1;  // not our child any more (reaped elsewhere): runtime failure
  } else {
    t.exit_code = exit_code_from_wait_status(status);
  }
  t.init_pid = -1;
  return t.exit_code;
}

}  // namespace cf::sandbox
