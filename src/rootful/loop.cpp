// The rootful parent's event loop. See loop.hpp.
#include "rootful/loop.hpp"

#include <fcntl.h>

#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "common/clock.hpp"

namespace cf::rootful {
namespace {
uint64_t pack(uint32_t slot, uint32_t gen) { return (uint64_t(gen) << 32) | slot; }
}  // namespace

Result<Loop> Loop::create() {
  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  if (!ep) return errno_error("rootful: epoll_create1");
  return Loop(std::move(ep));
}

int Loop::find(int fd) const {
  return fd >= 0 && size_t(fd) < by_fd_.size() ? by_fd_[size_t(fd)] : -1;
}

Status Loop::add(int fd, uint32_t events, Handler h) {
  uint32_t i;
  if (!free_.empty()) {
    i = free_.back();
    free_.pop_back();
  } else {
    i = uint32_t(slots_.size());
    slots_.emplace_back();
  }
  Slot& s = slots_[i];
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(i, s.gen);
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    free_.push_back(i);
    return errno_error("rootful: epoll_ctl add");
  }
  s.fd = fd;
  s.handler = std::move(h);
  if (size_t(fd) >= by_fd_.size()) by_fd_.resize(size_t(fd) + 64, -1);
  by_fd_[size_t(fd)] = int32_t(i);
  return {};
}

Status Loop::modify(int fd, uint32_t events) {
  int i = find(fd);
  if (i < 0) return Error{"not watched", "rootful: epoll_ctl mod"};
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = pack(uint32_t(i), slots_[size_t(i)].gen);
  if (::epoll_ctl(ep_.get(), EPOLL_CTL_MOD, fd, &ev) != 0)
    return errno_error("rootful: epoll_ctl mod");
  return {};
}

void Loop::remove(int fd) {
  int i = find(fd);
  if (i < 0) return;
  Slot& s = slots_[size_t(i)];
  ::epoll_ctl(ep_.get(), EPOLL_CTL_DEL, fd, nullptr);
  by_fd_[size_t(fd)] = -1;
  s.fd = -1;
  ++s.gen;
  graveyard_.push_back(std::move(s.handler));  // it may be the one running
  s.handler = nullptr;
  free_.push_back(uint32_t(i));
}

Status Loop::turn(int max_ms) {
  uint64_t now = monotonic_ms();
  int wait = max_ms;
  if (next_deadline_) wait = next_deadline_ > now ? int(std::min<uint64_t>(next_deadline_ - now, uint64_t(max_ms))) : 0;
  epoll_event evs[64];
  int n = ::epoll_wait(ep_.get(), evs, 64, wait);
  if (n < 0 && errno != EINTR) return errno_error("rootful: epoll_wait");
  std::unique_lock<std::mutex> batch;
  if (lock_) batch = std::unique_lock(*lock_);
  for (int k = 0; k < n; ++k) {
    const uint32_t i = uint32_t(evs[k].data.u64), gen = uint32_t(evs[k].data.u64 >> 32);
    if (i >= slots_.size() || slots_[i].gen != gen || slots_[i].fd < 0) continue;  // stale
    // remove() keeps a running handler alive (graveyard), and add() never
    // moves one (deque).
    slots_[i].handler(evs[k].events);
  }
  now = monotonic_ms();
  next_deadline_ = 0;
  for (Ticker& t : tickers_)
    if (uint64_t d = t(now); d && (!next_deadline_ || d < next_deadline_)) next_deadline_ = d;
  graveyard_.clear();
  return {};
}

Status Loop::serve(int pidfd, int sigfd, const std::function<void(int, int)>& on_signal) {
  bool done = false;
  if (auto s = add(pidfd, EPOLLIN, [&done](uint32_t) { done = true; }); !s) return s;
  if (auto s = add(sigfd, EPOLLIN,
                   [sigfd, &on_signal](uint32_t) {
                     signalfd_siginfo si;
                     while (::read(sigfd, &si, sizeof si) == sizeof si)
                       on_signal(int(si.ssi_signo), si.ssi_code);
                   });
      !s)
    return s;
  Status st;
  while (!done && st) st = turn(1000);
  remove(sigfd);
  remove(pidfd);
  graveyard_.clear();
  return st;
}

UniqueFd spare_fd() { return UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC)); }

UniqueFd accept_shedding(int listener, sockaddr* peer, socklen_t* len, UniqueFd& reserve,
                         bool* shed) {
  *shed = false;
  const socklen_t want = len ? *len : 0;
  for (;;) {
    if (len) *len = want;
    UniqueFd fd(::accept4(listener, peer, len, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd) return fd;
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if ((errno != EMFILE && errno != ENFILE) || !reserve) return {};
    reserve.reset();
    UniqueFd dropped(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
    *shed = bool(dropped);
    dropped.reset();  // closed at once: the peer sees the connection end
    reserve = spare_fd();
    return {};
  }
}

}  // namespace cf::rootful
