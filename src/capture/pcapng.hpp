// pcapng file writer: one section, one Ethernet interface, Enhanced Packet
// Blocks with nanosecond timestamps. See pcapng.cpp for the theory of
// operation and the block layout.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::capture {

// pcapng block types and option codes used here (draft-ietf-opsawg-pcapng).
constexpr uint32_t kBlockSectionHeader = 0x0A0D0D0A;
constexpr uint32_t kBlockInterfaceDescription = 0x00000001;
constexpr uint32_t kBlockEnhancedPacket = 0x00000006;
constexpr uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr uint16_t kOptEndOfOpt = 0;
constexpr uint16_t kOptComment = 1;  // opt_comment, any block
constexpr uint16_t kOptShbUserAppl = 4;
constexpr uint16_t kOptIfName = 2;
constexpr uint16_t kOptIfDescription = 3;
constexpr uint16_t kOptIfTsresol = 9;
constexpr uint16_t kOptEpbFlags = 2;
constexpr uint16_t kLinkTypeEthernet = 1;
constexpr uint32_t kSnapLen = 262144;  // larger than any tap0 frame (MTU <= 65520)

// epb_flags direction bits (bits 0-1): 01 inbound, 10 outbound.
enum class PacketDirection : uint8_t { Inbound = 1, Outbound = 2 };

// Output buffer size: a frame is at most ~64 KiB, so a full buffer is
// flushed before a block that would not fit is started.
constexpr size_t kBufferSize = 1 << 20;
// start_writer: the buffers in the ring, and what a buffer must hold for
// flush() to hand it to a busy thread.
constexpr size_t kWriterBuffers = 4;
constexpr size_t kHandOverBytes = kBufferSize / 4;
// A packet comment longer than this is cut.
constexpr size_t kMaxComment = 256;

class PcapngWriter {
 public:
  // Creates (truncates) `path` and writes the Section Header Block and one
  // Interface Description Block. Errors name the path and the cause:
  // "capture: cannot create /x/y.pcapng: Permission denied".
  static Result<PcapngWriter> create(const std::string& path, std::string_view if_name,
                                     std::string_view if_description);
  // Same, onto an fd the caller already opened (tests; the path is only used
  // in error messages).
  static Result<PcapngWriter> on_fd(UniqueFd fd, const std::string& path,
                                    std::string_view if_name, std::string_view if_description);

  PcapngWriter(PcapngWriter&&) noexcept = default;
  // Closes this writer first (its thread writes what is queued and ends),
  // then takes `o`'s file.
  PcapngWriter& operator=(PcapngWriter&& o) noexcept;
  ~PcapngWriter();

  // Reserves an Enhanced Packet Block for a frame of `len` bytes and returns
  // where its bytes go (the caller copies or rewrites them there), or an
  // empty span when the writer has failed or len exceeds kSnapLen. The block
  // is complete once commit() is called; a reserve without commit is dropped
  // by the next reserve. A non-empty `comment` becomes the block's
  // opt_comment (cut at kMaxComment bytes).
  std::span<uint8_t> reserve(size_t len, uint64_t ts_ns, PacketDirection dir,
                             std::string_view comment = {});
  bool reserved() const { return pending_ != 0; }
  void commit();
  // Drops the reserved block (the frame does not belong in this file).
  void cancel() { pending_ = 0; }
  // Convenience: reserve + copy + commit.
  void packet(std::span<const uint8_t> frame, uint64_t ts_ns, PacketDirection dir,
              std::string_view comment = {});

  // Writes the buffered blocks. After a write error the writer stops
  // (further packets are dropped) and error() says why. With the writer's
  // thread (start_writer) the buffer goes to the thread when it is idle or
  // the buffer holds at least kHandOverBytes; otherwise it waits for a
  // later flush() (buffered() says so).
  void flush();
  // From now on the file is written by a thread of its own: full buffers
  // go to it, and the caller goes on filling the next (kWriterBuffers in
  // all); the caller waits only while every buffer is queued or being
  // written, as its own write(2) to a slow disk would have. Returns once
  // the thread runs: it must run before the engine's seccomp filter, which
  // then covers it, and after any fork (call it after the sandbox's
  // launch). A write error shows at a later flush() or at close().
  Status start_writer();
  // Blocks wait in the buffer for a later flush() (start_writer's thread
  // was busy).
  bool buffered() const { return used_ != 0; }
  // Flushes and closes; returns the first write error, if any.
  Status close();

  const std::optional<Error>& error() const { return error_; }
  uint64_t packets() const { return packets_; }
  const std::string& path() const { return path_; }

 private:
  PcapngWriter() = default;
  void put_header_blocks(std::string_view if_name, std::string_view if_description);
  void fail(int err);

  // start_writer's thread and the buffers it shares with us (pcapng.cpp).
  struct Background;
  struct StopBackground {
    void operator()(Background* b) const;
  };
  void write_all(const uint8_t* data, size_t len);
  // Queues the filled buffer to the thread and takes the next, once free;
  // with `only_if_idle`, only when the thread has nothing queued.
  void hand_over(bool only_if_idle);
  // Stops the thread once it has written what is queued; its error, if any.
  int stop_writer();

  UniqueFd fd_;
  std::string path_;
  std::unique_ptr<uint8_t[]> store_;  // the buffer, until start_writer
  uint8_t* buf_ = nullptr;            // the buffer being filled
  std::unique_ptr<Background, StopBackground> bg_;
  size_t used_ = 0;
  size_t pending_ = 0;  // size of the reserved, uncommitted block (0: none)
  uint64_t packets_ = 0;
  std::optional<Error> error_;
};

}  // namespace cf::capture
