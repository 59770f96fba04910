// The control protocol between childflow (parent) and the init stub, over one
// AF_UNIX SOCK_SEQPACKET socketpair (close-on-exec on both ends, so the
// command never inherits it). One message per packet:
//
//   parent -> stub   MapsDone          id maps are written; start setup
//                    LinkReady         (rootful) the veth's end is in the
//                                      tree's network namespace as eth0
//                    Release           the engine is ready; run the command
//                    Signal(value)     send signal `value` to the command
//   stub -> parent   NetnsReady        (rootful) the tree's network
//                                      namespace exists, lo is up: move the
//                                      link in
//                    TapReady + fd     tap0 configured; its fd rides along
//                                      (SCM_RIGHTS); rootful: eth0
//                                      configured, no fd
//                    SetupFailed(text) "phase: cause"; the stub then exits
//
// End of file on either side means the other side is gone: the stub then
// exits (killing the tree); the parent reports the setup failure.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/unique_fd.hpp"

namespace cf::sandbox::control {

enum class Tag : uint8_t {
  MapsDone = 1,
  Release = 2,
  Signal = 3,
  LinkReady = 4,
  TapReady = 10,
  SetupFailed = 11,
  NetnsReady = 12,
};

struct Message {
  Tag tag = Tag::MapsDone;
  int32_t value = 0;
  std::string text;
  UniqueFd fd;  // TapReady only
};

// Sends one message (MSG_NOSIGNAL); fd >= 0 is passed with SCM_RIGHTS.
bool send(int sock, Tag tag, int32_t value = 0, std::string_view text = {}, int fd = -1,
          bool nonblocking = false);

// Receives one message; nullopt on end of file, error or a malformed packet.
// A received fd is close-on-exec.
std::optional<Message> receive(int sock);

}  // namespace cf::sandbox::control
