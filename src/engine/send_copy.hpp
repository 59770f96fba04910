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
// is allocated at most log2(kMax / kMin) + 1 times per flow and never per
// segment.
#pragma once
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace cf::engine {

class SendCopy {
 public:
  static constexpr size_t kMin = 16 * 1024;
  static constexpr size_t kMax = 1024 * 1024;

  size_t size() const { return size_; }
  size_t room() const { return kMax - size_; }
  size_t capacity() const { return cap_; }

  // Reads at most `n` bytes from the socket `fd` (MSG_DONTWAIT) and appends
  // them. Returns what recvmsg returned: bytes read, 0 at EOF, -1 with errno
  // (EAGAIN when nothing is queued or when the ring is full).
  ssize_t fill(int fd, size_t n);
  // Appends `n` bytes from memory (the unit tests' seam; also what fill does
  // after reading).
  void append(const uint8_t* src, size_t n);
  // Copies `n` bytes starting `off` bytes after the front into `dst`.
  // Requires off + n <= size().
  void copy_out(size_t off, uint8_t* dst, size_t n) const;
  // Forgets the first `n` bytes (acknowledged). Requires n <= size().
  void drop(size_t n);

 private:
  void reserve(size_t need);
  std::unique_ptr<uint8_t[]> buf_;
  size_t cap_ = 0;   // 0 or a power of two in [kMin, kMax]
  size_t head_ = 0;  // index of the front byte
  size_t size_ = 0;
};

}  // namespace cf::engine
