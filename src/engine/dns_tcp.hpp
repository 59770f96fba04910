// DNS over TCP (dns_tcp.cpp): the stream that serves the far end of the
// socketpair a TCP flow to port 53 (at the gateway or any other address)
// uses as its host socket.
// Private to src/engine/.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/unique_fd.hpp"
#include "engine/dns_gate.hpp"

namespace cf::engine {

class Engine;
struct TcpFlow;

struct DnsStream {
  struct Pending {
    uint16_t id;   // the child's id, used upstream unchanged
    GateQuery gq;  // checks the answer; builds SERVFAIL when the upstream fails
  };
  UniqueFd local;  // socketpair end facing the translator
  UniqueFd up;     // TCP to the upstream resolver
  bool has_upstream = false;  // a resolver to relay to (else the gate answers SERVFAIL)
  bool up_connecting = false, up_failed = false;
  int up_error = 0;  // why the connect to the resolver failed (errno)
  bool local_eof = false, up_eof = false, shut_up = false, shut_local = false;
  bool watched = false;  // local (and up, when open) are in the epoll set
  // Waiting on Limits::dns_tcp_in_flight / dns_tcp_buffer (counted once
  // each time it starts waiting).
  bool paused_in_flight = false, paused_buffer = false;
  std::string from_child, to_up, from_up, to_child;
  std::vector<Pending> pending;
};

// Sets up the stream for a new TCP flow to port 53, relaying to `upstream`
// (the resolver for the gateway, the address asked otherwise; null: none);
// returns the translator's end of the socketpair (invalid on failure;
// nothing is left watched then). A flow still Connecting (a direct query:
// tcp.cpp answers the child's SYN only once the resolver took the
// connection) is told when the connect to `upstream` ends
// (Engine::dns_stream_connected).
UniqueFd dns_stream_open(Engine& e, TcpFlow& f, uint32_t slot, const IpAddr* upstream);
// Takes the stream's sockets out of the reactor (the flow is ending) and
// frees its buffers; it no longer counts towards Limits::dns_tcp_streams. A
// second call does nothing.
void dns_stream_close(Engine& e, DnsStream& s);

}  // namespace cf::engine
