// --capture: views and files.
//
// Theory of operation. The engine hands every frame that crosses tap0 to
// Capture::frame() with its direction, right after reading it from the tap
// (FromChild) or right before writing it (ToChild). The frame is stamped
// with CLOCK_REALTIME in nanoseconds and copied into each open view's
// PcapngWriter buffer (pcapng.cpp):
//
//   child   the frame as is: Ethernet, tap0's addresses, both directions.
//   egress  the same frame rewritten in the buffer by to_egress() (egress.cpp):
//           the child's address becomes the host's egress address, checksums
//           fixed; DNS to the gateway becomes DNS to the resolver; ARP/NDP
//           and other link plumbing are left out.
//   both    two files, STEM.child.pcapng and STEM.egress.pcapng.
//   wire-egress  real frames on the host's links, as they are (one file;
//           fed by a filtered packet socket, wire.cpp, not by the engine).
//
// The host's egress addresses come from the engine when it knows them, else
// from host_egress(): a UDP socket connect()ed to a documentation address
// (203.0.113.1, 2001:db8::1) makes the kernel pick the route and source
// address, read back with getsockname; connect on a UDP socket sends nothing.
// A family without a route keeps the child's address in the egress view.
//
// Each file's one interface block describes the view:
//   childflow view=child backend=rootless-internal kind=isolated interface=tap0
//   childflow view=egress backend=rootless-internal kind=logical interface=<ifname|egress>
// pcapng direction flags are set (FromChild = outbound). Each frame whose
// flow the caller knows (FrameNote) carries an opt_comment with the flow
// log's flow_id, and the verdict when the policy denied it (format_note).
#include "capture/capture.hpp"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <fmt/format.h>

#include "common/clock.hpp"

namespace cf::capture {

std::optional<IpAddr> host_egress(Family f) {
  sockaddr_storage ss{};
  IpAddr probe = *IpAddr::parse(f == Family::V4 ? "203.0.113.1" : "2001:db8::1");
  unsigned len = to_sockaddr(probe, 9, &ss);
  UniqueFd s(::socket(f == Family::V4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) return std::nullopt;
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) return std::nullopt;
  sockaddr_storage local{};
  socklen_t llen = sizeof local;
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&local), &llen) != 0) return std::nullopt;
  IpAddr ip;
  uint16_t port = 0;
  if (!from_sockaddr(reinterpret_cast<sockaddr*>(&local), &ip, &port)) return std::nullopt;
  if (ip.family != f) return std::nullopt;
  return ip;
}

std::string interface_of(const IpAddr& addr) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return "";
  std::string found;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !i->ifa_name) continue;
    IpAddr ip;
    uint16_t port = 0;
    if (from_sockaddr(i->ifa_addr, &ip, &port) && ip == addr) {
      found = i->ifa_name;
      break;
    }
  }
  freeifaddrs(list);
  return found;
}

namespace {
bool is_loopback(const IpAddr& a) {
  if (a.is_v4()) return a.bytes[0] == 127;
  static const uint8_t one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  return memcmp(a.bytes.data(), one, 16) == 0;
}
}  // namespace

size_t format_note(const FrameNote& n, std::span<char> out) {
  if (n.flow_id == 0 && !n.denied) return 0;
  auto r = n.denied ? fmt::format_to_n(out.data(), out.size(),
                                       "flow_id={} verdict=denied reason_code={}", n.flow_id,
                                       n.denied)
                    : fmt::format_to_n(out.data(), out.size(), "flow_id={}", n.flow_id);
  return std::min(out.size(), size_t(r.size));
}

std::vector<std::string> output_paths(const Config& c) {
  if (!c.capture) return {};
  if (c.capture_point == CapturePoint::Both) {
    const std::string& base = *c.capture;
    std::string stem = base.ends_with(".pcapng") ? base.substr(0, base.size() - 7) : base;
    return {stem + ".child.pcapng", stem + ".egress.pcapng"};
  }
  return {*c.capture};
}

std::string interface_description(std::string_view view, Backend backend, std::string_view kind,
                                  std::string_view interface) {
  return fmt::format("childflow view={} backend={} kind={} interface={}", view, name(backend),
                     kind, interface);
}

Result<Capture> Capture::open(const Config& c, const Endpoints& e) {
  if (!c.capture) return Error{"no --capture file given", "capture"};
  bool want_child = false, want_egress = false;
  switch (c.capture_point) {
    case CapturePoint::Child:
      want_child = true;
      break;
    case CapturePoint::Egress:
      want_egress = true;
      break;
    case CapturePoint::Both:
      want_child = want_egress = true;
      break;
    case CapturePoint::WireEgress: {
      // Real frames, as they are: the caller feeds them from a filtered
      // packet socket on every non-loopback link (wire.hpp).
      Capture cap;
      cap.paths_ = output_paths(c);
      auto w = PcapngWriter::create(cap.paths_[0], "any",
                                    interface_description("wire-egress", c.backend, "wire", "any"));
      if (!w) return w.error();
      cap.child_.emplace(std::move(w).value());
      return cap;
    }
  }

  Capture cap;
  cap.paths_ = output_paths(c);
  cap.egress_.child4 = e.child4;
  cap.egress_.child6 = e.child6;
  size_t next_path = 0;
  if (want_child) {
    auto w = PcapngWriter::create(
        cap.paths_[next_path++], e.child_ifname,
        interface_description("child", c.backend, e.child_kind, e.child_ifname));
    if (!w) return w.error();
    cap.child_.emplace(std::move(w).value());
  }
  if (want_egress) {
    cap.egress_.host4 = e.host4 ? e.host4 : host_egress(Family::V4);
    cap.egress_.host6 = e.host6 ? e.host6 : host_egress(Family::V6);
    cap.egress_.gateway4 = e.gateway4;
    cap.egress_.gateway6 = e.gateway6;
    if (e.resolver && !is_loopback(*e.resolver))
      (e.resolver->is_v4() ? cap.egress_.resolver4 : cap.egress_.resolver6) = e.resolver;
    std::string ifname = e.host_ifname;
    if (ifname.empty() && cap.egress_.host4) ifname = interface_of(*cap.egress_.host4);
    if (ifname.empty() && cap.egress_.host6) ifname = interface_of(*cap.egress_.host6);
    if (ifname.empty()) ifname = "egress";
    auto w = PcapngWriter::create(cap.paths_[next_path++], ifname,
                                  interface_description("egress", c.backend, "logical", ifname));
    if (!w) return w.error();
    cap.egress_file_.emplace(std::move(w).value());
  }
  return cap;
}

void Capture::frame(Direction dir, std::span<const uint8_t> eth_frame, const FrameNote& note,
                    uint64_t ts_ns) {
  const uint64_t ns = ts_ns ? ts_ns : epoch_ns();
  const PacketDirection pd =
      dir == Direction::FromChild ? PacketDirection::Outbound : PacketDirection::Inbound;
  char text[kMaxComment];
  const std::string_view comment(text, format_note(note, text));
  ++frames_;
  if (child_) child_->packet(eth_frame, ns, pd, comment);
  if (egress_file_) {
    auto dst = egress_file_->reserve(eth_frame.size(), ns, pd, comment);
    if (!egress_file_->reserved()) return;
    if (!eth_frame.empty()) memcpy(dst.data(), eth_frame.data(), eth_frame.size());
    if (to_egress(dst, egress_) == EgressVerdict::Keep)
      egress_file_->commit();
    else
      egress_file_->cancel();
  }
}

void Capture::flush() {
  if (child_) child_->flush();
  if (egress_file_) egress_file_->flush();
}

Status Capture::start_writers() {
  if (child_)
    if (auto s = child_->start_writer(); !s) return s;
  if (egress_file_)
    if (auto s = egress_file_->start_writer(); !s) return s;
  return {};
}

bool Capture::buffered() const {
  return (child_ && child_->buffered()) || (egress_file_ && egress_file_->buffered());
}

Status Capture::close() {
  Status child = child_ ? child_->close() : Status{};
  Status egress = egress_file_ ? egress_file_->close() : Status{};
  return child ? egress : child;
}

}  // namespace cf::capture
