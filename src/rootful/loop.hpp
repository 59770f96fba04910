// The rootful parent's event loop: one epoll instance that every host-side
// service of a rootful run registers its descriptors on (the DNS forwarder,
// the TPROXY relay, and later the conntrack listener), plus the two
// descriptors every run waits on: the tree's pidfd (its end stops the loop)
// and the signalfd of the signals forwarded to the tree.
//
// Theory of operation. A registration is a slot: the fd, its handler (a
// std::function, built once when the fd is registered, never per event) and
// a generation. epoll's data word carries slot and generation, so an event
// that was already fetched for a descriptor that a handler of the same batch
// removed (and whose number a new registration may have taken since) is
// recognised as stale and dropped. remove() never destroys a handler while it
// may be running: the slot's handler moves to a graveyard that is emptied
// after the batch. Timers are tickers: after each batch every ticker runs
// once and returns its next deadline (monotonic ms, 0 for none); the loop
// sleeps until the earliest, at most one second. Nothing here allocates per
// event; the slot table grows only when more descriptors are registered at
// once than ever before. With set_lock(), each batch (handlers and tickers)
// runs under that mutex, so another thread (the capture's reader) may read
// what the handlers change (the Policy's names) while it holds it.
#pragma once
#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::rootful {

// accept4() for a listener on the loop (level-triggered): a connection
// taken, or none left (EAGAIN: an invalid fd, *shed false). When the
// process is out of descriptors (EMFILE, ENFILE) the pending connection
// would stay queued and wake the loop again at once, for ever; instead
// `reserve` (a spare descriptor the caller keeps open) is closed, the
// connection accepted and closed at once (*shed true: count it), and the
// reserve reopened. `reserve` may be invalid afterwards if that failed.
UniqueFd accept_shedding(int listener, sockaddr* peer, socklen_t* len, UniqueFd& reserve,
                         bool* shed);
// A spare descriptor for accept_shedding (/dev/null).
UniqueFd spare_fd();

class Loop {
 public:
  using Handler = std::function<void(uint32_t events)>;
  using Ticker = std::function<uint64_t(uint64_t now_ms)>;

  static Result<Loop> create();
  Loop(Loop&&) = default;
  Loop& operator=(Loop&&) = default;

  // Watches `fd` (not owned; remove it before closing it) for `events`
  // (EPOLLIN, EPOLLOUT, EPOLLET, ...). The Error names epoll_ctl's cause.
  Status add(int fd, uint32_t events, Handler h);
  // Changes the events of a watched fd.
  Status modify(int fd, uint32_t events);
  // Stops watching `fd`; pending events for it are dropped.
  void remove(int fd);
  // Runs after every batch of events; returns the next deadline wanted.
  void add_ticker(Ticker t) { tickers_.push_back(std::move(t)); }
  // Runs each batch under `m` (not owned; nullptr: none). Not while waiting.
  void set_lock(std::mutex* m) { lock_ = m; }

  // Serves until `pidfd` is readable; signals read from `sigfd` go to
  // on_signal(signo, si_code). The Error is epoll_wait's.
  Status serve(int pidfd, int sigfd, const std::function<void(int, int)>& on_signal);
  // One turn: waits at most `max_ms` (capped by the tickers' deadlines),
  // runs the handlers of what is ready, then the tickers.
  Status turn(int max_ms);

 private:
  struct Slot {
    int fd = -1;
    uint32_t gen = 0;
    Handler handler;
  };
  explicit Loop(UniqueFd ep) : ep_(std::move(ep)) {}
  int find(int fd) const;
  UniqueFd ep_;
  std::deque<Slot> slots_;  // a deque: adding never moves a running handler
  std::vector<int32_t> by_fd_;  // fd -> slot, -1 for none
  std::vector<uint32_t> free_;
  std::vector<Handler> graveyard_;
  std::vector<Ticker> tickers_;
  uint64_t next_deadline_ = 0;
  std::mutex* lock_ = nullptr;
};

}  // namespace cf::rootful
