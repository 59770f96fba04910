// A packet socket on one real link, read by a thread into a Capture.
//
// Theory of operation. The rootful backend's tree has a real link, the veth
// pair `cf<run>` (host end) / `eth0` (tree end), and every frame the tree
// sends or gets crosses the host end. The run opens one AF_PACKET socket
// for it before the tree's command starts (open()), so the first frame of
// the first flow is in the file:
//
//   socket(AF_PACKET, SOCK_RAW, 0)     protocol 0: no frame is queued yet
//   bind(ETH_P_ALL, ifindex)           from now on, every frame of the link
//   SO_TIMESTAMPNS                     the kernel's receive/transmit time
//   SO_RCVBUF 4 MiB                    room for bursts while we write
//
// A thread of its own reads it (start()): epoll on the socket and an
// eventfd that says stop; each frame is handed to Capture::frame(), so the
// files, views, rewrites and limits are exactly rootless's (capture.cpp).
// The direction comes from the packet type: PACKET_OUTGOING on the host
// end is the host sending to the tree (Inbound in the file), anything else
// came from the tree (Outbound). The capture is flushed after each batch,
// so a file is readable while the run goes on; a batch is at most kBatch
// frames, so a flood on the link never keeps the thread from seeing the
// stop. stop() drains what the kernel still holds, then joins;
// PACKET_STATISTICS says how many frames the kernel dropped because the
// queue was full (a warning at the end). The drain is bounded: a link
// still flooded after the tree ended (another run's tree, the network)
// would otherwise hold the run's end forever. After kStopDrainMs the
// socket gets a drop-all filter, so nothing more is queued, and what is
// still queued (at most the receive buffer's worth) is read and thrown
// away without being written, counted (unread(), a warning at the end).
//
// The Capture belongs to the thread between start() and stop(); nothing
// else touches it then. Frames are read into one buffer of kSnapLen bytes
// allocated at open (a GSO frame larger than that is cut to it, and the
// original length is lost: veth frames are at most 64 KiB).
//
// Per-packet notes: five_tuple() reads the frame's addresses and ports and
// the FlowIdOf hook maps them to a flow (the rootful backend's: the flow ids
// it shares with its conntrack reader, rootful/flow_ids.hpp). The hook runs
// on this reader's thread.
#include "capture/link_tap.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "capture/pcapng.hpp"
#include "common/bytes.hpp"
#include "common/clock.hpp"

namespace cf::capture {
namespace {
constexpr size_t kBatch = 256;            // frames per read, as the engine's turn
constexpr uint64_t kStopDrainMs = 1000;   // stop(): what is queued, for this long at most
const sock_filter kDropAll[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
}  // namespace

std::optional<FiveTuple> five_tuple(std::span<const uint8_t> f) {
  if (f.size() < 14) return std::nullopt;
  const uint8_t* b = f.data();
  const size_t n = f.size();
  FiveTuple t;
  size_t l4 = 0;
  switch (load_be16(b + 12)) {
    case 0x0800: {
      if (n < 14 + 20 || b[14] >> 4 != 4) return std::nullopt;
      size_t ihl = size_t(b[14] & 0x0f) * 4;
      if (ihl < 20 || 14 + ihl > n) return std::nullopt;
      t.proto = b[14 + 9];
      t.src = IpAddr::v4(load_be32(b + 14 + 12));
      t.dst = IpAddr::v4(load_be32(b + 14 + 16));
      if ((load_be16(b + 14 + 6) & 0x1fff) != 0) return t;  // a later fragment: no ports
      l4 = 14 + ihl;
      break;
    }
    case 0x86dd:
      if (n < 14 + 40 || b[14] >> 4 != 6) return std::nullopt;
      t.proto = b[14 + 6];  // extension headers are not walked: no ports then
      t.src = IpAddr::v6_bytes(b + 14 + 8);
      t.dst = IpAddr::v6_bytes(b + 14 + 24);
      l4 = 14 + 40;
      break;
    default:
      return std::nullopt;
  }
  if ((t.proto == 6 || t.proto == 17) && l4 + 4 <= n) {
    t.sport = load_be16(b + l4);
    t.dport = load_be16(b + l4 + 2);
  } else if ((t.proto == 1 || t.proto == 58) && l4 + 8 <= n) {
    const uint8_t type = b[l4];
    t.icmp_type = type;
    if (type == 0 || type == 8 || type == 128 || type == 129) t.sport = t.dport = load_be16(b + l4 + 4);
  }
  return t;
}

Status LinkTap::set_filter(std::span<const sock_filter> prog) {
  sock_fprog fp{uint16_t(prog.size()), const_cast<sock_filter*>(prog.data())};
  if (setsockopt(sock_.get(), SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) != 0)
    return errno_error("capture: SO_ATTACH_FILTER");
  return {};
}

Result<std::unique_ptr<LinkTap>> LinkTap::open(int ifindex, bool filtered) {
  std::unique_ptr<LinkTap> t(new LinkTap());
  t->sock_.reset(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
  if (!t->sock_) return errno_error("capture: packet socket (needs CAP_NET_RAW)");
  if (filtered)
    if (auto s = t->set_filter(kDropAll); !s) return s.error();
  int on = 1;
  if (setsockopt(t->sock_.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) != 0)
    return errno_error("capture: SO_TIMESTAMPNS");
  int rcvbuf = 4 << 20;
  // SO_RCVBUFFORCE as root; SO_RCVBUF (capped by rmem_max) otherwise.
  if (setsockopt(t->sock_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
    (void)setsockopt(t->sock_.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ETH_P_ALL);
  sll.sll_ifindex = ifindex;
  if (bind(t->sock_.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0)
    return errno_error("capture: binding the packet socket");
  t->stop_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!t->stop_) return errno_error("capture: eventfd");
  // epoll, not poll: the rootless engine's seccomp allowlist has epoll_wait
  // (the thread runs under it), and the fds are added now, before it.
  t->ep_.reset(epoll_create1(EPOLL_CLOEXEC));
  if (!t->ep_) return errno_error("capture: epoll_create1");
  for (int fd : {t->sock_.get(), t->stop_.get()}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(t->ep_.get(), EPOLL_CTL_ADD, fd, &ev) != 0)
      return errno_error("capture: epoll_ctl");
  }
  t->buf_ = std::make_unique<uint8_t[]>(kSnapLen);
  return t;
}

LinkTap::~LinkTap() { stop(); }

Status LinkTap::start(Capture& cap, FlowIdOf flow_of, bool outgoing_to_child) {
  cap_ = &cap;
  outgoing_to_child_ = outgoing_to_child;
  flow_of_ = std::move(flow_of);
  int fl = fcntl(sock_.get(), F_GETFL);
  if (fl < 0 || fcntl(sock_.get(), F_SETFL, fl | O_NONBLOCK) != 0)
    return errno_error("capture: O_NONBLOCK");
  // Returns once the thread runs: glibc's thread start (rseq and robust
  // list registration) must be over before the rootless engine's seccomp
  // filter, installed right after with TSYNC, covers the thread; it does
  // not allow rseq, so a thread still starting would be killed.
  std::promise<void> up;
  std::future<void> running = up.get_future();
  thread_ = std::thread([this, up = std::move(up)]() mutable {
    up.set_value();
    run();
  });
  running.wait();
  return {};
}

LinkTap::Drain LinkTap::drain(size_t max) {
  int link_gone = 0;
  for (size_t got = 0;;) {
    if (got == max) return Drain::More;
    sockaddr_ll from{};
    iovec iov{buf_.get(), kSnapLen};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(timespec))];
    msghdr m{};
    m.msg_name = &from;
    m.msg_namelen = sizeof from;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    ssize_t n = recvmsg(sock_.get(), &m, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return Drain::Empty;
      // The link went away (the tree's namespace ended and took the veth):
      // the kernel says so once (sock_error clears it); what is still
      // queued is read on, then EAGAIN. Not a lost capture.
      if ((errno == ENETDOWN || errno == ENXIO) && link_gone++ < 4) continue;
      read_error_ = errno;
      return Drain::Error;
    }
    ++got;
    uint64_t ts = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
        timespec tv;
        memcpy(&tv, CMSG_DATA(c), sizeof tv);
        ts = uint64_t(tv.tv_sec) * 1'000'000'000ull + uint64_t(tv.tv_nsec);
      }
    std::span<const uint8_t> frame{buf_.get(), size_t(n)};
    FrameNote note;
    if (flow_of_)
      if (auto t = five_tuple(frame)) note = flow_of_(*t);
    if (note.discard) continue;
    const bool outgoing = from.sll_pkttype == PACKET_OUTGOING;
    cap_->frame(outgoing == outgoing_to_child_ ? Direction::ToChild : Direction::FromChild, frame,
                note, ts);
  }
}

void LinkTap::run() {
  for (bool stop = false; !stop;) {
    epoll_event evs[2];
    int r = epoll_wait(ep_.get(), evs, 2, -1);
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < r; ++i) {
      if (evs[i].data.fd == stop_.get()) stop = true;
      else if (drain(kBatch) == Drain::Error) stop = true;
    }
    cap_->flush();
  }
  // What the kernel queued before the stop, for kStopDrainMs at most.
  const uint64_t deadline = monotonic_ms() + kStopDrainMs;
  Drain d = read_error_ ? Drain::Error : Drain::More;
  while (d == Drain::More && monotonic_ms() < deadline) d = drain(kBatch);
  cap_->flush();
  if (d == Drain::More) unread_ = discard();
}

uint64_t LinkTap::discard() {
  // Nothing more is queued; what is, is bounded by the receive buffer.
  (void)set_filter(kDropAll);
  uint64_t n = 0;
  for (int link_gone = 0;;) {
    char byte;
    ssize_t r = recv(sock_.get(), &byte, 1, MSG_TRUNC | MSG_DONTWAIT);
    if (r >= 0) ++n;
    else if (errno != EINTR && !((errno == ENETDOWN || errno == ENXIO) && link_gone++ < 4))
      return n;
  }
}

void LinkTap::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)::write(stop_.get(), &one, sizeof one);
  thread_.join();
  tpacket_stats st{};
  socklen_t len = sizeof st;
  if (getsockopt(sock_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0) drops_ += st.tp_drops;
}

}  // namespace cf::capture
