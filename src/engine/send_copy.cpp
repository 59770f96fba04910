#include "engine/send_copy.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace cf::engine {

SendCopy& SendCopy::operator=(SendCopy&& o) noexcept {
  if (this == &o) return *this;
  free_buffer();
  buf_ = std::move(o.buf_);
  budget_ = std::exchange(o.budget_, nullptr);
  starved_ = std::exchange(o.starved_, false);
  cap_ = std::exchange(o.cap_, 0);
  head_ = std::exchange(o.head_, 0);
  size_ = std::exchange(o.size_, 0);
  return *this;
}

void SendCopy::free_buffer() {
  if (budget_) budget_->left += cap_;
  buf_.reset();
  cap_ = 0;
  head_ = 0;
}

size_t SendCopy::reserve(size_t need) {
  if (need <= cap_) return cap_;
  size_t cap = std::max(cap_, kMin);
  while (cap < need) cap *= 2;
  // Short of budget: the largest doubling it pays for, if any.
  while (budget_ && cap > std::max(cap_, kMin / 2) && cap - cap_ > budget_->left) cap /= 2;
  if (cap <= cap_ || cap < kMin) return cap_;
  auto buf = std::make_unique<uint8_t[]>(cap);
  if (size_) copy_out(0, buf.get(), size_);
  if (budget_) budget_->left -= cap - cap_;
  buf_ = std::move(buf);
  cap_ = cap;
  head_ = 0;
  return cap_;
}

ssize_t SendCopy::fill(int fd, size_t n) {
  n = std::min(n, room());
  starved_ = false;
  if (n == 0) {
    errno = EAGAIN;
    return -1;
  }
  if (cap_ == 0) {
    // Allocate only for bytes that are there: an empty ring holds no memory.
    uint8_t probe;
    ssize_t r = recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r <= 0) return r;
  }
  n = std::min(n, reserve(size_ + n) - size_);
  if (n == 0) {
    starved_ = true;
    errno = EAGAIN;
    return -1;
  }
  // Free space is [tail, cap) then [0, head) when it wraps.
  size_t tail = (head_ + size_) & (cap_ - 1);
  iovec iov[2];
  int cnt = 1;
  size_t first = std::min(n, cap_ - tail);
  iov[0] = {buf_.get() + tail, first};
  if (first < n) {
    iov[1] = {buf_.get(), n - first};
    cnt = 2;
  }
  msghdr mh{};
  mh.msg_iov = iov;
  mh.msg_iovlen = size_t(cnt);
  ssize_t r = recvmsg(fd, &mh, MSG_DONTWAIT);
  if (r > 0) size_ += size_t(r);
  return r;
}

void SendCopy::append(const uint8_t* src, size_t n) {
  assert(n <= room());
  [[maybe_unused]] size_t cap = reserve(size_ + n);
  assert(cap >= size_ + n);  // the tests' seam: no budget
  size_t tail = (head_ + size_) & (cap_ - 1);
  size_t first = std::min(n, cap_ - tail);
  std::memcpy(buf_.get() + tail, src, first);
  std::memcpy(buf_.get(), src + first, n - first);
  size_ += n;
}

void SendCopy::copy_out(size_t off, uint8_t* dst, size_t n) const {
  assert(off + n <= size_);
  if (n == 0) return;
  size_t start = (head_ + off) & (cap_ - 1);
  size_t first = std::min(n, cap_ - start);
  std::memcpy(dst, buf_.get() + start, first);
  std::memcpy(dst + first, buf_.get(), n - first);
}

void SendCopy::drop(size_t n) {
  assert(n <= size_);
  size_ -= n;
  head_ = size_ ? (head_ + n) & (cap_ - 1) : 0;
  if (size_ == 0 && cap_) free_buffer();
}

}  // namespace cf::engine
