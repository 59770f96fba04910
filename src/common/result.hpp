// Result<T>: the one way an expected failure travels in childflow.
//
// Error policy (docs/design.md, "Errors")
//   - Expected failures return Result<T>: bad flags and profiles, files that
//     cannot be read, a host without a feature, a system call refused for a
//     reason the user can fix (EPERM, ENOMEM, EMFILE, ...). The Error says what
//     is wrong and how to fix it, and `step` names what was being done when it
//     failed ("write /proc/PID/uid_map", "engine: epoll_ctl"), so that a
//     caller several layers up still prints one useful line.
//   - Untrusted input (the tree's packets, proxy replies, DNS answers, flow
//     logs given to --report) is handled where it is read: counted and
//     dropped, or reported, never an Error that ends the run by itself.
//   - A broken invariant (a state the code itself makes impossible: an
//     epoll_ctl(DEL) on an fd we registered failing, a transition the TCP
//     table forbids) aborts via CF_CHECK: carrying on would corrupt data.
//
// Result<void> is "ok or an Error". Both are [[nodiscard]].
#pragma once
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cf {

struct Error {
  std::string message;  // what is wrong (and, where we know, how to fix it)
  std::string step{};   // what was being done; empty when message says it all

  // "step: message", or the message alone.
  std::string str() const { return step.empty() ? message : step + ": " + message; }
};

// An Error for `step` from the current errno ("step: <strerror(errno)>").
inline Error errno_error(std::string_view step, int err = errno) {
  return Error{std::strerror(err), std::string(step)};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}   // NOLINT: implicit
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !e_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

[[noreturn]] inline void check_failed(const char* what, const char* file, int line) {
  std::fprintf(stderr, "childflow: internal error: %s (%s:%d, errno %d: %s)\n", what, file,
               line, errno, std::strerror(errno));
  std::abort();
}

}  // namespace cf

// Aborts with the condition's text when it does not hold: for invariants only
// (see the error policy above), never for input or the host's state.
#define CF_CHECK(cond) \
  ((cond) ? (void)0 : ::cf::check_failed(#cond, __FILE__, __LINE__))
