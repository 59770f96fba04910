// Theory of operation: see control.hpp. A packet is a 1-byte tag, 3 bytes of
// padding, a 4-byte host-order value, then optional text; both ends are this
// same binary, so no byte-order conversion is needed. At most one fd per
// packet; a packet with an unexpected fd or a bad tag is rejected (its fd is
// closed).
#include "sandbox/control.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace cf::sandbox::control {
namespace {

constexpr size_t kHeader = 8;
constexpr size_t kMaxPacket = 4096;

bool known(uint8_t tag) {
  switch (static_cast<Tag>(tag)) {
    case Tag::MapsDone:
    case Tag::Release:
    case Tag::Signal:
    case Tag::LinkReady:
    case Tag::TapReady:
    case Tag::NetnsReady:
    case Tag::SetupFailed:
      return true;
  }
  return false;
}

}  // namespace

bool send(int sock, Tag tag, int32_t value, std::string_view text, int fd, bool nonblocking) {
  char buf[kMaxPacket] = {};
  if (text.size() > kMaxPacket - kHeader) text = text.substr(0, kMaxPacket - kHeader);
  buf[0] = static_cast<char>(tag);
  std::memcpy(buf + 4, &value, sizeof value);
  if (!text.empty()) std::memcpy(buf + kHeader, text.data(), text.size());
  iovec iov{buf, kHeader + text.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  int flags = MSG_NOSIGNAL | (nonblocking ? MSG_DONTWAIT : 0);
  ssize_t n;
  do n = sendmsg(sock, &msg, flags);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(iov.iov_len);
}

std::optional<Message> receive(int sock) {
  char buf[kMaxPacket];
  iovec iov{buf, sizeof buf};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * 4)];
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof cbuf;
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n <= 0) return std::nullopt;

  Message m;
  int fds_seen = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      UniqueFd owned(fd);
      if (fds_seen++ == 0) m.fd = std::move(owned);  // extras close here
    }
  }
  if (static_cast<size_t>(n) < kHeader || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
      !known(static_cast<uint8_t>(buf[0])) || fds_seen > 1)
    return std::nullopt;
  m.tag = static_cast<Tag>(buf[0]);
  if (m.fd && m.tag != Tag::TapReady) return std::nullopt;
  std::memcpy(&m.value, buf + 4, sizeof m.value);
  m.text.assign(buf + kHeader, static_cast<size_t>(n) - kHeader);
  return m;
}

}  // namespace cf::sandbox::control
