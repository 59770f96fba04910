// The DNS gate: the one place where a DNS query from the tree is judged and
// an upstream answer is checked and learnt, for the UDP relay (dns_relay.cpp)
// and the TCP stream (dns_tcp.cpp) alike, so their rules cannot drift apart,
// and for the rootful backend's DNS forwarder (src/rootful/), which runs the
// same gate behind a GateEnv of its own.
//
// Every query the tree sends to port 53, at the gateway or at any other
// address, comes here (docs/policy.md, "DNS"): a query to the gateway is
// relayed to the upstream resolver, one to another address (a *direct*
// query, after its address was judged like any flow's) to that address, so
// a tool that asks one particular server still gets that server's answers,
// and a name denied at the gateway is denied everywhere. The flow log says
// which server the tree asked (`server`, `direct`).
//
// on_query (gate_query) parses the query and logs it, then answers it itself
// or lets the caller forward it:
//   - malformed                      dropped, counted in Stats::dropped_malformed;
//   - more than one question         FORMERR (no resolver answers those alike);
//   - name denied by the policy      empty NOERROR (synthetic_empty) and a
//                                    policy_violation;
//   - --proxy-dns remote             answered here, never forwarded: A or
//                                    AAAA for a name the proxy can be asked
//                                    for gets its synthetic address
//                                    (synth.hpp, synthetic_remote); any
//                                    other query an empty NOERROR; SERVFAIL
//                                    when the synthetic map is full;
//   - AAAA without an IPv6 route     empty NOERROR;
//   - no resolver (gateway only)     SERVFAIL;
//   - otherwise                      forwarded; the caller keeps a GateQuery.
// on_answer (gate_answer) accepts an upstream answer only when it is a
// well-formed response to the same question (name, type and class) as the
// query it claims to answer: anything else is dropped and counted in
// Stats::dns_mismatched, so an off-path guess of the id alone cannot plant
// an address. An accepted answer teaches the policy its name<->address map
// and is logged; the caller relays its bytes unchanged.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "common/addr.hpp"
#include "engine/dns_msg.hpp"

namespace cf::policy {
class Policy;
}
namespace cf::observe {
class Recorder;
}

namespace cf::engine {

class Engine;
class SynthMap;
struct Stats;

// What the gate needs from the server that runs it: the engine (for tap0),
// or the rootful backend's forwarder (on the host end of the veth).
class GateEnv {
 public:
  virtual policy::Policy& policy() = 0;
  virtual observe::Recorder& recorder() = 0;
  virtual Stats& stats() = 0;
  // Whether the host has an IPv6 route (else AAAA gets an empty answer).
  virtual bool host_has_ipv6() const = 0;
  // Whether `ip` is one of the tree's gateway addresses.
  virtual bool is_gateway(const IpAddr& ip) const = 0;
  // Teaches the policy a name<->address pair of an accepted answer.
  virtual void learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s) = 0;
  // --proxy-dns remote (the engine only): the answer to an allowed query,
  // made without any resolver; nullopt when names are resolved locally.
  virtual std::optional<size_t> answer_remote(const char* transport, const IpAddr& server,
                                              std::span<const uint8_t> query,
                                              const dns::Question& q, std::span<uint8_t> out) {
    (void)transport, (void)server, (void)query, (void)q, (void)out;
    return std::nullopt;
  }

 protected:
  ~GateEnv() = default;
};

// What the gate keeps of a forwarded query: its question, and the header and
// first question as sent (all that SERVFAIL needs, whatever the query's size).
struct GateQuery {
  dns::Question q;
  uint16_t prefix_len = 0;
  uint8_t prefix[dns::kHeaderSize + dns::kMaxNameWire + 4];
  std::span<const uint8_t> bytes() const { return {prefix, prefix_len}; }
};

enum class GateAction : uint8_t { Drop, Answered, Forward };

// Judges one query. `transport` is "udp" or "tcp", `server` the address the
// tree asked; `has_upstream` says whether there is a resolver to relay it to
// (for a direct query: always, the server itself). Answered: the reply (same
// id as the query) is in `out`, its length in *n. Forward: *gq describes the
// query.
// --proxy-dns remote, for a GateEnv's answer_remote (the engine's, and the
// rootful forwarder's): an A query, or AAAA when the tree has IPv6
// (`tree_ipv6`), class IN, for a name the proxy can be asked for gets the
// synthetic address of its entry in `synth`; any other query an empty
// NOERROR; SERVFAIL when every entry is held (the caller's Stats count it,
// synthetic_full, and a limit_hit is logged). Logged as dns_answer.
size_t answer_synthetic(GateEnv& e, SynthMap& synth, bool tree_ipv6, const char* transport,
                        const IpAddr& server, std::span<const uint8_t> query,
                        const dns::Question& q, std::span<uint8_t> out);

GateAction gate_query(GateEnv& e, const char* transport, const IpAddr& server,
                      bool has_upstream, std::span<const uint8_t> msg, std::span<uint8_t> out,
                      size_t* n, GateQuery* gq);

// Checks, learns from and logs an upstream answer to `gq`; false when it is
// not one (dropped and counted).
bool gate_answer(GateEnv& e, const char* transport, const IpAddr& server, const GateQuery& gq,
                 std::span<const uint8_t> msg);

// SERVFAIL for a forwarded query whose upstream failed or timed out, logged;
// returns its length in `out` (the query's own id).
size_t gate_servfail(GateEnv& e, const char* transport, const IpAddr& server,
                     const GateQuery& gq, std::span<uint8_t> out);

// The same for the engine, which is its own GateEnv through an adapter.
GateAction gate_query(Engine& e, const char* transport, const IpAddr& server,
                      bool has_upstream, std::span<const uint8_t> msg, std::span<uint8_t> out,
                      size_t* n, GateQuery* gq);
bool gate_answer(Engine& e, const char* transport, const IpAddr& server, const GateQuery& gq,
                 std::span<const uint8_t> msg);
size_t gate_servfail(Engine& e, const char* transport, const IpAddr& server, const GateQuery& gq,
                     std::span<uint8_t> out);

}  // namespace cf::engine
