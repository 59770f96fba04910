// The userspace network engine: serves tap0 for the command tree from the
// parent's (host) network namespace. See engine.cpp for the theory of
// operation.
#pragma once
#include <functional>
#include <optional>

#include "common/addr.hpp"
#include "common/net_plan.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"

namespace cf::observe {
class Recorder;
}
namespace cf::policy {
class Policy;
}
namespace cf::proxy {
class Upstream;
}
namespace cf::capture {
class Capture;
class WireSet;
}

namespace cf::engine {

// What the tree can make the engine hold (docs/security.md, "Limits"). Each
// bound has a name in observe::Limit: hitting it is counted in the summary
// and logged as limit_hit. The defaults keep a release build under 64 MiB
// of RSS whatever the tree does; the unit tests lower them.
struct Limits {
  uint32_t tcp_flows = 16384;       // TCP flows, DNS-over-TCP streams included (RST beyond)
  uint32_t tcp_connecting = 1024;   // TCP connects in progress (RST beyond)
  uint32_t udp_flows = 4096;        // UDP flows (the least recently used one ends)
  uint32_t icmp_flows = 256;        // ICMP echo flows (likewise)
  uint32_t dns_in_flight = 1024;    // UDP queries awaiting the resolver (SERVFAIL beyond)
  uint32_t dns_tcp_streams = 32;    // DNS-over-TCP connections to the gateway (RST beyond)
  uint32_t dns_tcp_in_flight = 64;  // queries pending upstream, per stream (paused)
  // Bytes a DNS-over-TCP stream holds in each direction (paused beyond); at
  // least one largest message (2 + 65535 bytes) plus one read, whatever is set.
  uint32_t dns_tcp_buffer = 128 * 1024;
  // Memory of the TCP copy path (kernels without SO_PEEK_OFF on TCP), all
  // flows together (paused beyond: a flow reads no more from its host socket).
  uint64_t tcp_copy_bytes = 8 * 1024 * 1024;
  // TCP flows holding their first bytes (at most sniff::kMax, 16 KiB, each)
  // until the name they send is judged (paused beyond: the child's segment
  // is not taken, and it sends it again).
  uint32_t sniff_holds = 256;
};

// Everything the engine needs to know about the run; the app builds it from
// the Config, and the engine sees no other setting.
struct Options {
  NetPlan plan;
  std::optional<IpAddr> resolver;  // upstream DNS; none: SERVFAIL
  bool host_has_ipv6 = true;       // false: AAAA queries get empty answers
  // --allow-host-loopback: flows to the gateway's address (other than DNS)
  // go to the host's loopback; without it they are refused.
  bool allow_host_loopback = false;
  // --proxy: the proxy's address (resolved before the run) and its settings.
  std::optional<IpAddr> proxy_addr;
  const proxy::Upstream* proxy = nullptr;
  // --proxy-dns remote: the engine answers A and AAAA queries itself with
  // synthetic addresses (engine/synth.hpp) and asks the proxy for the names;
  // no query is relayed to a resolver.
  bool proxy_dns_remote = false;
  // --learn without --no-sniff-names: every TCP connection's first bytes
  // are read for the name they send, even when no rule could deny one, and
  // the names the address's DNS names lack go to Recorder::name_sent (the
  // learnt profile allows them: learn/ledger.hpp). What cannot be read is
  // then let through, not denied, unless a rule needs it judged.
  bool learn_names = false;
  // --capture: every frame crossing tap0 is handed to it.
  capture::Capture* capture = nullptr;
  // --capture-point wire-egress: every host socket of the tree's flows is
  // handed to it before its connect (capture/wire.hpp).
  capture::WireSet* wire = nullptr;
  // tap0 carries a struct virtio_net_hdr before every frame, with the
  // checksum and TCP segmentation offloads on (sandbox::Tree::tap_vnet_hdr):
  // TCP segments either way may be as large as an IP packet, and their
  // checksums are left to the receiver (docs/design.md, "Offloads").
  bool vnet_hdr = false;
  // Poll briefly before sleeping (docs/design.md, "Waiting"); off where the
  // run has a single CPU, on which polling only delays what it waits for.
  bool poll = true;
  Limits limits;
};

struct Stats {
  uint64_t frames_in = 0, frames_out = 0;
  uint64_t dropped_malformed = 0, dropped_fragment = 0, dropped_spoofed = 0,
           dropped_other = 0;
  uint64_t tcp_flows = 0, udp_flows = 0, icmp_flows = 0, dns_queries = 0;
  uint64_t tcp_refused_overload = 0;
  uint64_t stale_events = 0;    // epoll events for a slot freed since they were queued
  uint64_t dgram_evicted = 0;   // UDP / echo flows evicted from a full table (least recently used)
  uint64_t dns_mismatched = 0;  // upstream DNS answers whose id or question did not match
  uint64_t tcp_idle_reset = 0;  // TCP flows reset after their idle time-out
  // New flows (or DNS queries) refused because epoll_ctl(ADD) found no
  // resources (ENOMEM, or ENOSPC at fs.epoll.max_user_watches).
  uint64_t epoll_refused = 0;
  // --proxy-dns remote: UDP datagrams, echo requests and TCP connections to a
  // synthetic address that cannot go through the proxy (refused at once), and
  // A/AAAA queries answered SERVFAIL because every synthetic entry was held.
  uint64_t synthetic_refused = 0;
  uint64_t synthetic_full = 0;
  // TCP connections reset for the name in their first bytes (TLS
  // server_name, HTTP Host): denied by a domain rule, or unreadable.
  uint64_t sniff_denied = 0;
};

// Runs the reactor on `tap` until `pidfd` becomes readable (the tree's init
// exited). Signals read from `sigfd` (a signalfd) are passed to on_signal(signo, si_code).
// An Error when the engine itself fails (its step starts with "engine: ").
Status run(const Options& opts, UniqueFd tap, int pidfd, int sigfd,
           const std::function<void(int, int)>& on_signal, policy::Policy& policy,
           observe::Recorder& rec, Stats* stats);

}  // namespace cf::engine
