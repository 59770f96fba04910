// pcapng file writer.
//
// Theory of operation. A capture file is one pcapng section (host byte order,
// the reader learns it from the byte-order magic) holding:
//
//   Section Header Block      shb_userappl "childflow X.Y.Z", section length -1
//   Interface Description     LINKTYPE_ETHERNET, snaplen 262144,
//                             if_name, if_description, if_tsresol = 9 (ns)
//   Enhanced Packet Block*    interface 0, 64-bit ns timestamp, the frame
//                             padded to 32 bits, opt_comment when the
//                             caller gives one ("flow_id=N ..."),
//                             epb_flags (direction)
//
// Every block and option is padded to 32 bits and every option list ends with
// opt_endofopt. Blocks are built in one buffer of kBufferSize bytes that is
// allocated once when the file is opened: frame() copies the frame straight
// into its block (reserve/commit, so a rewrite can work in place there), and
// the buffer goes to the file with one write(2) when the next block would not
// fit, on flush() (once per reactor turn) and on close(). Nothing is
// allocated per packet.
//
// The writer's thread (start_writer, the engine's captures): the kernel's
// copy of the blocks into the file is the largest single cost of a capture,
// and it then runs beside the engine instead of on its thread. The writer
// owns kWriterBuffers buffers in a ring. The caller fills one; flush() (once
// per reactor turn) queues it to the thread when the thread is idle, so a
// quiet capture reaches the file as soon as before, or when it holds at
// least kHandOverBytes, so a busy thread gets large writes rather than one
// per turn; a full buffer is always queued. The caller waits only when no
// buffer is free. The thread writes the queue in order. What it has not
// written yet is lost if childflow is SIGKILLed (before, what the last turn
// had flushed was on file): at most the ring, and only while frames come
// faster than the file takes them.
//
// Errors: opening names the path and errno. A failed write (ENOSPC, EIO)
// stops this writer for the rest of the run (the frames after it are not
// captured; a truncated last block is what a reader sees) and close()
// reports it; the run itself goes on. The thread's error shows at the next
// hand-over or at close().
#include "capture/pcapng.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <future>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <fmt/format.h>

namespace cf::capture {

namespace {

size_t pad4(size_t n) { return (n + 3) & ~size_t(3); }

void put32(uint8_t* p, uint32_t v) { memcpy(p, &v, 4); }
void put16(uint8_t* p, uint16_t v) { memcpy(p, &v, 2); }

// Writes one option (code, length, value padded to 32 bits); returns its size.
size_t put_option(uint8_t* p, uint16_t code, const void* value, size_t len) {
  put16(p, code);
  put16(p + 2, uint16_t(len));
  memcpy(p + 4, value, len);
  memset(p + 4 + len, 0, pad4(len) - len);
  return 4 + pad4(len);
}

size_t put_end_of_options(uint8_t* p) {
  put16(p, kOptEndOfOpt);
  put16(p + 2, 0);
  return 4;
}

// Options longer than this are cut (an interface description is short).
constexpr size_t kMaxOptionText = 1024;

// Writes all of [data, data + len) to fd, retrying after EINTR; the errno
// that stopped it (a write of 0 bytes is EIO), 0 when all of it went.
int write_fully(int fd, const uint8_t* data, size_t len) {
  for (size_t off = 0; off < len;) {
    ssize_t w = ::write(fd, data + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    off += size_t(w);
  }
  return 0;
}

}  // namespace

Result<PcapngWriter> PcapngWriter::create(const std::string& path, std::string_view if_name,
                                          std::string_view if_description) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return Error{fmt::format("cannot create {}: {}", path, strerror(errno)), "capture"};
  return on_fd(UniqueFd(fd), path, if_name, if_description);
}

Result<PcapngWriter> PcapngWriter::on_fd(UniqueFd fd, const std::string& path,
                                         std::string_view if_name,
                                         std::string_view if_description) {
  PcapngWriter w;
  w.fd_ = std::move(fd);
  w.path_ = path;
  w.store_ = std::make_unique<uint8_t[]>(kBufferSize);
  w.buf_ = w.store_.get();
  w.put_header_blocks(if_name, if_description);
  // Write the headers at once: a run that captures nothing still leaves a
  // valid, empty capture file, and a write error shows before the run.
  w.flush();
  if (w.error_) return *w.error_;
  return w;
}

struct PcapngWriter::Background {
  std::array<std::unique_ptr<uint8_t[]>, kWriterBuffers> bufs;
  std::array<size_t, kWriterBuffers> lens{};
  size_t filling = 0;  // the caller's: the buffer being filled
  // Under mu: how many buffers are queued or being written (from `writing`
  // on, in ring order), the thread's first write error, and stop.
  std::mutex mu;
  std::condition_variable cv;
  size_t queued = 0;
  size_t writing = 0;
  int err = 0;
  bool stop = false;
  std::thread thread;

  // Stops the thread once it has written what is queued (if it runs).
  void halt() {
    if (!thread.joinable()) return;
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }

  // The thread: writes what is queued, in order, until stopped with
  // nothing left. After an error it only empties the queue.
  void run(int fd) {
    std::unique_lock lock(mu);
    for (;;) {
      cv.wait(lock, [this] { return queued > 0 || stop; });
      if (queued == 0) return;
      const size_t i = writing;
      const bool failed = err != 0;
      lock.unlock();
      const int e = failed ? 0 : write_fully(fd, bufs[i].get(), lens[i]);
      lock.lock();
      if (e && !err) err = e;
      writing = (i + 1) % kWriterBuffers;
      --queued;
      cv.notify_all();
    }
  }
};

void PcapngWriter::StopBackground::operator()(Background* b) const {
  b->halt();
  delete b;
}

PcapngWriter::~PcapngWriter() {
  if (fd_) (void)close();
}

PcapngWriter& PcapngWriter::operator=(PcapngWriter&& o) noexcept {
  if (this == &o) return *this;
  if (fd_) (void)close();
  fd_ = std::move(o.fd_);
  path_ = std::move(o.path_);
  store_ = std::move(o.store_);
  buf_ = std::exchange(o.buf_, nullptr);
  bg_ = std::move(o.bg_);
  used_ = std::exchange(o.used_, 0);
  pending_ = std::exchange(o.pending_, 0);
  packets_ = o.packets_;
  error_ = std::move(o.error_);
  return *this;
}

Status PcapngWriter::start_writer() {
  if (bg_ || !fd_ || error_) return {};
  flush();  // what is buffered goes first, from here
  if (error_) return *error_;
  std::unique_ptr<Background, StopBackground> bg(new Background);
  for (auto& b : bg->bufs) b = std::make_unique<uint8_t[]>(kBufferSize);
  // Returns once the thread runs: glibc's thread start (rseq) must be over
  // before the engine's seccomp filter, which does not allow it, covers it.
  std::promise<void> up;
  std::future<void> running = up.get_future();
  Background* shared = bg.get();
  const int fd = fd_.get();
  try {
    bg->thread = std::thread([shared, fd, up = std::move(up)]() mutable {
      up.set_value();
      shared->run(fd);
    });
  } catch (const std::system_error& e) {
    return Error{fmt::format("cannot start the writer of {}: {}", path_, e.what()), "capture"};
  }
  running.wait();
  bg_ = std::move(bg);
  store_.reset();
  buf_ = bg_->bufs[0].get();
  return {};
}

int PcapngWriter::stop_writer() {
  bg_->halt();  // after the thread wrote what was queued
  const int err = bg_->err;
  bg_.reset();
  buf_ = nullptr;
  used_ = 0;
  return err;
}

void PcapngWriter::hand_over(bool only_if_idle) {
  Background& b = *bg_;
  std::unique_lock lock(b.mu);
  if (b.err) {
    const int err = b.err;
    lock.unlock();
    fail(err);
    return;
  }
  if (only_if_idle && b.queued > 0) return;
  b.lens[b.filling] = used_;
  ++b.queued;
  b.cv.notify_all();
  b.filling = (b.filling + 1) % kWriterBuffers;
  b.cv.wait(lock, [&b] { return b.queued < kWriterBuffers; });
  buf_ = b.bufs[b.filling].get();
  used_ = 0;
}

void PcapngWriter::put_header_blocks(std::string_view if_name, std::string_view if_description) {
  if (if_name.size() > kMaxOptionText) if_name = if_name.substr(0, kMaxOptionText);
  if (if_description.size() > kMaxOptionText)
    if_description = if_description.substr(0, kMaxOptionText);
  uint8_t* b = buf_;

  // Section Header Block.
  const std::string_view appl = "childflow " CHILDFLOW_VERSION;
  size_t start = used_;
  uint8_t* p = b + used_;
  put32(p, kBlockSectionHeader);
  put32(p + 8, kByteOrderMagic);
  put16(p + 12, 1);  // major version
  put16(p + 14, 0);  // minor version
  uint64_t section_len = ~uint64_t(0);  // not given
  memcpy(p + 16, &section_len, 8);
  size_t n = 24;
  n += put_option(p + n, kOptShbUserAppl, appl.data(), appl.size());
  n += put_end_of_options(p + n);
  put32(p + n, uint32_t(n + 4));
  n += 4;
  put32(p + 4, uint32_t(n));
  used_ = start + n;

  // Interface Description Block.
  p = b + used_;
  put32(p, kBlockInterfaceDescription);
  put16(p + 8, kLinkTypeEthernet);
  put16(p + 10, 0);  // reserved
  put32(p + 12, kSnapLen);
  n = 16;
  n += put_option(p + n, kOptIfName, if_name.data(), if_name.size());
  n += put_option(p + n, kOptIfDescription, if_description.data(), if_description.size());
  const uint8_t tsresol = 9;  // 10^-9 s
  n += put_option(p + n, kOptIfTsresol, &tsresol, 1);
  n += put_end_of_options(p + n);
  put32(p + n, uint32_t(n + 4));
  n += 4;
  put32(p + 4, uint32_t(n));
  used_ += n;
}

std::span<uint8_t> PcapngWriter::reserve(size_t len, uint64_t ts_ns, PacketDirection dir,
                                         std::string_view comment) {
  pending_ = 0;
  if (error_ || !fd_ || len > kSnapLen) return {};
  if (comment.size() > kMaxComment) comment = comment.substr(0, kMaxComment);
  // Header 28 + data + [opt_comment] + epb_flags option 8 + end of options 4
  // + trailer 4.
  const size_t comment_opt = comment.empty() ? 0 : 4 + pad4(comment.size());
  const size_t total = 28 + pad4(len) + comment_opt + 8 + 4 + 4;
  if (used_ + total > kBufferSize) {
    if (bg_)
      hand_over(false);
    else
      flush();
    if (error_) return {};
  }
  uint8_t* p = buf_ + used_;
  put32(p, kBlockEnhancedPacket);
  put32(p + 4, uint32_t(total));
  put32(p + 8, 0);  // interface id
  put32(p + 12, uint32_t(ts_ns >> 32));
  put32(p + 16, uint32_t(ts_ns));
  put32(p + 20, uint32_t(len));  // captured length
  put32(p + 24, uint32_t(len));  // original length
  memset(p + 28 + len, 0, pad4(len) - len);
  size_t n = 28 + pad4(len);
  if (!comment.empty()) n += put_option(p + n, kOptComment, comment.data(), comment.size());
  const uint32_t flags = uint32_t(dir);
  n += put_option(p + n, kOptEpbFlags, &flags, 4);
  n += put_end_of_options(p + n);
  put32(p + n, uint32_t(total));
  pending_ = total;
  return {p + 28, len};
}

void PcapngWriter::commit() {
  used_ += pending_;
  if (pending_) ++packets_;
  pending_ = 0;
}

void PcapngWriter::packet(std::span<const uint8_t> frame, uint64_t ts_ns, PacketDirection dir,
                          std::string_view comment) {
  auto dst = reserve(frame.size(), ts_ns, dir, comment);
  if (pending_ == 0) return;
  if (!frame.empty()) memcpy(dst.data(), frame.data(), frame.size());
  commit();
}

void PcapngWriter::fail(int err) {
  if (!error_) error_ = errno_error("capture: writing " + path_, err);
  used_ = 0;
  pending_ = 0;
}

void PcapngWriter::flush() {
  if (!fd_ || error_) {
    used_ = 0;
    return;
  }
  if (used_ == 0) return;
  if (bg_) {
    hand_over(used_ < kHandOverBytes);
    return;
  }
  write_all(buf_, used_);
  used_ = 0;
}

void PcapngWriter::write_all(const uint8_t* data, size_t len) {
  if (int err = write_fully(fd_.get(), data, len)) fail(err);
}

Status PcapngWriter::close() {
  if (fd_) {
    pending_ = 0;
    if (bg_) {
      if (used_ && !error_) hand_over(false);
      const int err = stop_writer();
      if (err && !error_) fail(err);
    }
    flush();
    if (::close(fd_.release()) != 0 && !error_) error_ = errno_error("capture: closing " + path_);
  }
  if (error_) return *error_;
  return {};
}

}  // namespace cf::capture
