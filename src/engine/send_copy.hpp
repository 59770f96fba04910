// SendCopy: the bytes the TCP translator sent to the child but the child has
// not yet acknowledged, for kernels whose TCP sockets cannot be peeked at an
// offset (no SO_PEEK_OFF on TCP before Linux 6.9).
//
// With SO_PEEK_OFF those bytes simply stay in the host socket's receive queue
// until the child acknowledges them (tcp.cpp). Without it, every MSG_PEEK
// starts at the head of the queue, so a translator that assumed an offset
// would send the same head bytes again where new ones belong: silent
// corruption. Instead the translator reads (consumes) from the host socket
// into this ring and sends and resends from here; an ACK from the child drops
// bytes from the front.
//
// The ring holds [snd_una, snd_una + size()). It starts small and doubles up
// to kMax on demand, so the in-flight data of one flow is bounded by kMax; it
// is allocated at most log2(kMax / kMin) + 1 times per burst (what the child
// has not acknowledged yet) and never per segment. Once the child has
// acknowledged everything the buffer is freed, so an idle flow holds none.
//
// All flows' rings together are bounded too (Limits::tcp_copy_bytes): each
// ring charges its capacity to a shared CopyBudget, and a ring that cannot
// grow reads no more than fits (starved(): the flow waits for its child's
// ACKs, or for another flow to give memory back, as if its window were
// shut). A ring without a budget (the unit tests) grows up to kMax.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>

namespace cf::engine {

// Bytes every SendCopy may still allocate, together.
struct CopyBudget {
  explicit CopyBudget(uint64_t bytes) : left(bytes) {}
  uint64_t left;
};

class SendCopy {
 public:
  static constexpr size_t kMin = 16 * 1024;
  static constexpr size_t kMax = 1024 * 1024;

  SendCopy() = default;
  ~SendCopy() { free_buffer(); }
  SendCopy(const SendCopy&) = delete;
  SendCopy& operator=(const SendCopy&) = delete;
  SendCopy(SendCopy&& o) noexcept { *this = std::move(o); }
  SendCopy& operator=(SendCopy&& o) noexcept;

  // Charges this ring's memory to `b` from now on (set while it is empty).
  void set_budget(CopyBudget* b) { budget_ = b; }
  // The last fill() read nothing because the budget had no room for the
  // ring to grow.
  bool starved() const { return starved_; }

  size_t size() const { return size_; }
  size_t room() const { return kMax - size_; }
  size_t capacity() const { return cap_; }

  // Reads at most `n` bytes from the socket `fd` (MSG_DONTWAIT) and appends
  // them; fewer when the ring cannot grow that far (kMax, or the budget).
  // Returns what recvmsg returned: bytes read, 0 at EOF, -1 with errno
  // (EAGAIN when nothing is queued or when the ring is full).
  ssize_t fill(int fd, size_t n);
  // Appends `n` bytes from memory (the unit tests' seam; also what fill does
  // after reading).
  void append(const uint8_t* src, size_t n);
  // Copies `n` bytes starting `off` bytes after the front into `dst`.
  // Requires off + n <= size().
  void copy_out(size_t off, uint8_t* dst, size_t n) const;
  // Forgets the first `n` bytes (acknowledged). Requires n <= size(). The
  // buffer is freed (and its budget given back) when nothing is left.
  void drop(size_t n);

 private:
  // Grows the buffer to hold `need` bytes, or as close to it as the budget
  // allows; the capacity it ends with.
  size_t reserve(size_t need);
  void free_buffer();
  std::unique_ptr<uint8_t[]> buf_;
  CopyBudget* budget_ = nullptr;
  bool starved_ = false;
  size_t cap_ = 0;   // 0 or a power of two in [kMin, kMax]
  size_t head_ = 0;  // index of the front byte
  size_t size_ = 0;
};

}  // namespace cf::engine
