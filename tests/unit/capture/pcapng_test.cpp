// The pcapng writer: the file is read back and every block is checked byte
// by byte against the pcapng layout.
#include "capture/pcapng.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>

#include "frames.hpp"

namespace cf::capture {
namespace {

using test_frames::Bytes;
using test_frames::TempDir;


Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

uint32_t le32(const Bytes& b, size_t off) {
  uint32_t v;
  memcpy(&v, &b[off], 4);
  return v;
}
uint16_t le16(const Bytes& b, size_t off) {
  uint16_t v;
  memcpy(&v, &b[off], 2);
  return v;
}

struct Option {
  uint16_t code;
  Bytes value;
};

// Reads an option list starting at off inside a block ending (before its
// trailing length) at end; checks padding and the end-of-options marker.
std::vector<Option> read_options(const Bytes& b, size_t off, size_t end) {
  std::vector<Option> out;
  while (true) {
    EXPECT_LE(off + 4, end);
    if (off + 4 > end) return out;
    uint16_t code = le16(b, off), len = le16(b, off + 2);
    if (code == kOptEndOfOpt) {
      EXPECT_EQ(len, 0);
      EXPECT_EQ(off + 4, end) << "data after opt_endofopt";
      return out;
    }
    size_t padded = (size_t(len) + 3) & ~size_t(3);
    EXPECT_LE(off + 4 + padded, end);
    if (off + 4 + padded > end) return out;
    for (size_t i = len; i < padded; ++i) EXPECT_EQ(b[off + 4 + i], 0) << "option padding";
    out.push_back({code, Bytes(b.begin() + long(off + 4), b.begin() + long(off + 4 + len))});
    off += 4 + padded;
  }
}

std::string text(const Bytes& v) { return std::string(v.begin(), v.end()); }

struct Block {
  uint32_t type;
  size_t off, len;
};

// Splits the file into blocks, checking both length fields of each.
std::vector<Block> blocks(const Bytes& b) {
  std::vector<Block> out;
  size_t off = 0;
  while (off < b.size()) {
    EXPECT_LE(off + 12, b.size());
    if (off + 12 > b.size()) break;
    uint32_t len = le32(b, off + 4);
    EXPECT_EQ(len % 4, 0u);
    EXPECT_GE(len, 12u);
    EXPECT_LE(off + len, b.size());
    if (len < 12 || len % 4 || off + len > b.size()) break;
    EXPECT_EQ(le32(b, off + len - 4), len) << "trailing block length";
    out.push_back({le32(b, off), off, len});
    off += len;
  }
  EXPECT_EQ(off, b.size()) << "file does not end on a block boundary";
  return out;
}

TEST(Pcapng, HeaderBlocksAndPacketsByteByByte) {
  TempDir dir;
  std::string path = dir.path + "/t.pcapng";
  auto r = PcapngWriter::create(path, "tap0", "childflow view=child backend=rootless-internal kind=isolated interface=tap0");
  ASSERT_TRUE(r) << r.error().str();
  auto& w = *r;
  // Lengths 1..4 cover every padding case; 60 is a minimal Ethernet frame.
  std::vector<Bytes> frames;
  for (size_t n : {1u, 2u, 3u, 4u, 60u, 1514u}) {
    Bytes f(n);
    for (size_t i = 0; i < n; ++i) f[i] = uint8_t(i * 7 + n);
    frames.push_back(f);
  }
  uint64_t ts0 = 1'700'000'000'123'456'789ull;
  for (size_t i = 0; i < frames.size(); ++i)
    w.packet(frames[i], ts0 + i, i % 2 ? PacketDirection::Inbound : PacketDirection::Outbound);
  EXPECT_EQ(w.packets(), frames.size());
  ASSERT_TRUE(w.close());

  Bytes b = read_all(path);
  auto bl = blocks(b);
  ASSERT_EQ(bl.size(), 2 + frames.size());

  // Section Header Block.
  ASSERT_EQ(bl[0].type, kBlockSectionHeader);
  EXPECT_EQ(bl[0].off, 0u);
  EXPECT_EQ(le32(b, 8), kByteOrderMagic);
  EXPECT_EQ(le16(b, 12), 1);
  EXPECT_EQ(le16(b, 14), 0);
  for (int i = 16; i < 24; ++i) EXPECT_EQ(b[size_t(i)], 0xff) << "section length -1";
  auto shb_opts = read_options(b, 24, bl[0].len - 4);
  ASSERT_EQ(shb_opts.size(), 1u);
  EXPECT_EQ(shb_opts[0].code, kOptShbUserAppl);
  EXPECT_EQ(text(shb_opts[0].value), "childflow " CHILDFLOW_VERSION);

  // Interface Description Block.
  const Block& idb = bl[1];
  ASSERT_EQ(idb.type, kBlockInterfaceDescription);
  EXPECT_EQ(le16(b, idb.off + 8), kLinkTypeEthernet);
  EXPECT_EQ(le16(b, idb.off + 10), 0);
  EXPECT_GE(le32(b, idb.off + 12), 65535u);
  auto idb_opts = read_options(b, idb.off + 16, idb.off + idb.len - 4);
  ASSERT_EQ(idb_opts.size(), 3u);
  EXPECT_EQ(idb_opts[0].code, kOptIfName);
  EXPECT_EQ(text(idb_opts[0].value), "tap0");
  EXPECT_EQ(idb_opts[1].code, kOptIfDescription);
  EXPECT_EQ(text(idb_opts[1].value),
            "childflow view=child backend=rootless-internal kind=isolated interface=tap0");
  EXPECT_EQ(idb_opts[2].code, kOptIfTsresol);
  EXPECT_EQ(idb_opts[2].value, Bytes{9});

  // Enhanced Packet Blocks.
  for (size_t i = 0; i < frames.size(); ++i) {
    const Block& e = bl[2 + i];
    ASSERT_EQ(e.type, kBlockEnhancedPacket);
    EXPECT_EQ(le32(b, e.off + 8), 0u);  // interface 0
    uint64_t ts = uint64_t(le32(b, e.off + 12)) << 32 | le32(b, e.off + 16);
    EXPECT_EQ(ts, ts0 + i);
    size_t n = frames[i].size();
    EXPECT_EQ(le32(b, e.off + 20), n);
    EXPECT_EQ(le32(b, e.off + 24), n);
    EXPECT_TRUE(std::equal(frames[i].begin(), frames[i].end(), b.begin() + long(e.off + 28)));
    size_t padded = (n + 3) & ~size_t(3);
    for (size_t k = n; k < padded; ++k) EXPECT_EQ(b[e.off + 28 + k], 0) << "packet padding";
    auto opts = read_options(b, e.off + 28 + padded, e.off + e.len - 4);
    ASSERT_EQ(opts.size(), 1u);
    EXPECT_EQ(opts[0].code, kOptEpbFlags);
    ASSERT_EQ(opts[0].value.size(), 4u);
    EXPECT_EQ(le32(opts[0].value, 0), i % 2 ? 1u : 2u);
  }
}

TEST(Pcapng, ManyLargeFramesCrossTheBufferIntact) {
  TempDir dir;
  std::string path = dir.path + "/big.pcapng";
  auto r = PcapngWriter::create(path, "tap0", "d");
  ASSERT_TRUE(r);
  auto& w = *r;
  const size_t n = 65534;  // > kBufferSize / 17: several buffer flushes
  Bytes f(n);
  for (int i = 0; i < 100; ++i) {
    f[0] = uint8_t(i);
    f[n - 1] = uint8_t(255 - i);
    w.packet(f, uint64_t(i), PacketDirection::Outbound);
    if (i == 50) w.flush();
  }
  ASSERT_TRUE(w.close());
  Bytes b = read_all(path);
  auto bl = blocks(b);
  ASSERT_EQ(bl.size(), 102u);
  for (int i = 0; i < 100; ++i) {
    const Block& e = bl[size_t(2 + i)];
    ASSERT_EQ(le32(b, e.off + 20), n);
    EXPECT_EQ(b[e.off + 28], uint8_t(i));
    EXPECT_EQ(b[e.off + 28 + n - 1], uint8_t(255 - i));
  }
}

TEST(Pcapng, CancelledReserveLeavesNoBlock) {
  TempDir dir;
  std::string path = dir.path + "/cancel.pcapng";
  auto r = PcapngWriter::create(path, "x", "d");
  auto& w = *r;
  auto s = w.reserve(10, 1, PacketDirection::Outbound);
  ASSERT_EQ(s.size(), 10u);
  w.cancel();
  w.packet(Bytes(20, 1), 2, PacketDirection::Inbound);
  ASSERT_TRUE(w.close());
  Bytes b = read_all(path);
  auto bl = blocks(b);
  ASSERT_EQ(bl.size(), 3u);
  EXPECT_EQ(le32(b, bl[2].off + 20), 20u);
}

TEST(Pcapng, CreateErrorNamesPathAndCause) {
  auto r = PcapngWriter::create("/nonexistent-cf-dir/x.pcapng", "tap0", "d");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(),
            "capture: cannot create /nonexistent-cf-dir/x.pcapng: No such file or directory");
}

TEST(Pcapng, WriteErrorIsReported) {
  int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  auto r = PcapngWriter::on_fd(UniqueFd(fd), "/dev/full", "tap0", "d");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(), "capture: writing /dev/full: No space left on device");
}

// start_writer: the same file, written by the writer's own thread. A
// writer on `path` with its thread running (moved out: the thread keeps
// working on the writer's buffers, which move with it).
std::optional<PcapngWriter> threaded_writer(const std::string& path) {
  auto r = PcapngWriter::create(path, "tap0", "d");
  if (!r || !r->start_writer()) return std::nullopt;
  return std::move(*r);
}

TEST(Pcapng, TheWriterThreadKeepsEveryFrameInOrder) {
  TempDir dir;
  std::string path = dir.path + "/threaded.pcapng";
  auto r = threaded_writer(path);
  ASSERT_TRUE(r);
  auto& w = *r;
  const int frames = 600;  // about 20 MB: every buffer of the ring, many times
  for (int i = 0; i < frames; ++i) {
    const size_t n = i % 7 == 0 ? 60 : 65534 - size_t(i);
    Bytes f(n, uint8_t(i));
    f[n - 1] = uint8_t(255 - i);
    w.packet(f, uint64_t(i), PacketDirection::Outbound);
    if (i % 3 == 0) w.flush();  // once per "turn"
  }
  ASSERT_TRUE(w.close());
  Bytes b = read_all(path);
  auto bl = blocks(b);
  ASSERT_EQ(bl.size(), size_t(2 + frames));
  for (int i = 0; i < frames; ++i) {
    const Block& e = bl[size_t(2 + i)];
    const size_t n = i % 7 == 0 ? 60 : 65534 - size_t(i);
    ASSERT_EQ(le32(b, e.off + 20), n) << i;
    EXPECT_EQ(b[e.off + 28], uint8_t(i)) << i;
    EXPECT_EQ(b[e.off + 28 + n - 1], uint8_t(255 - i)) << i;
  }
}

TEST(Pcapng, AnIdleWriterThreadTakesEachFlushAtOnce) {
  TempDir dir;
  std::string path = dir.path + "/live.pcapng";
  auto r = threaded_writer(path);
  ASSERT_TRUE(r);
  auto& w = *r;
  const size_t headers = read_all(path).size();
  w.packet(Bytes(100, 7), 1, PacketDirection::Inbound);
  w.flush();
  EXPECT_FALSE(w.buffered()) << "an idle thread takes even a small buffer";
  size_t size = headers;
  for (int i = 0; i < 200 && size == headers; ++i) {
    usleep(5000);
    size = read_all(path).size();
  }
  EXPECT_GT(size, headers) << "the frame reaches the file while the writer is open";
  ASSERT_TRUE(w.close());
}

TEST(Pcapng, AssigningOverAWriterWithAThreadClosesItsFileWhole) {
  TempDir dir;
  auto a = PcapngWriter::create(dir.path + "/a.pcapng", "tap0", "d");
  auto b = PcapngWriter::create(dir.path + "/b.pcapng", "tap0", "d");
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  ASSERT_TRUE(a->start_writer());
  for (int i = 0; i < 50; ++i) a->packet(Bytes(60000, uint8_t(i)), 1, PacketDirection::Inbound);
  *a = std::move(*b);  // a's 50 frames are written and its file closed first
  a->packet(Bytes(10, 1), 2, PacketDirection::Inbound);
  ASSERT_TRUE(a->close());
  EXPECT_EQ(blocks(read_all(dir.path + "/a.pcapng")).size(), 52u);
  EXPECT_EQ(blocks(read_all(dir.path + "/b.pcapng")).size(), 3u);
}

TEST(Pcapng, TheWriterThreadsWriteErrorShowsAtClose) {
  int p[2];
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0);
  UniqueFd reader(p[0]);
  auto r = PcapngWriter::on_fd(UniqueFd(p[1]), "the pipe", "tap0", "d");
  ASSERT_TRUE(r);
  auto& w = *r;
  ASSERT_TRUE(w.start_writer());
  auto old = signal(SIGPIPE, SIG_IGN);
  reader.reset();  // every later write fails with EPIPE
  for (int i = 0; i < 40; ++i) {
    w.packet(Bytes(60000, 1), uint64_t(i), PacketDirection::Outbound);
    w.flush();
  }
  auto closed = w.close();
  signal(SIGPIPE, old);
  ASSERT_FALSE(closed);
  EXPECT_EQ(closed.error().str(), "capture: writing the pipe: Broken pipe");
}

}  // namespace
}  // namespace cf::capture
