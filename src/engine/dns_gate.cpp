#include "engine/dns_gate.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/engine_impl.hpp"

namespace cf::engine {

namespace {

size_t answer_locally(GateEnv& e, const char* transport, const IpAddr& server,
                      std::span<const uint8_t> query, const dns::Question& q, uint8_t rcode,
                      std::span<uint8_t> out) {
  size_t n = rcode == dns::kRcodeNoError ? dns::build_empty_answer(query, q, out)
                                         : dns::build_error(query, q, rcode, out);
  e.recorder().dns_answer(transport, server, 53, q.qname, dns::qtype_name(q.qtype),
                          observe::DnsMode::SyntheticEmpty, n, {}, rcode, !e.is_gateway(server));
  return n;
}

// The engine as a GateEnv.
class EngineGate final : public GateEnv {
 public:
  explicit EngineGate(Engine& e) : e_(e) {}
  policy::Policy& policy() override { return e_.pol; }
  observe::Recorder& recorder() override { return e_.rec; }
  Stats& stats() override { return e_.st; }
  bool host_has_ipv6() const override { return e_.opts.host_has_ipv6; }
  bool is_gateway(const IpAddr& ip) const override { return e_.is_gateway(ip); }
  void learn(const std::string& name, const IpAddr& ip, uint32_t ttl_s) override {
    e_.learn(name, ip, ttl_s);
  }
  std::optional<size_t> answer_remote(const char* transport, const IpAddr& server,
                                      std::span<const uint8_t> query, const dns::Question& q,
                                      std::span<uint8_t> out) override;

 private:
  Engine& e_;
};

// --proxy-dns remote: answered here, never relayed (answer_synthetic).
std::optional<size_t> EngineGate::answer_remote(const char* transport, const IpAddr& server,
                                                std::span<const uint8_t> query,
                                                const dns::Question& q, std::span<uint8_t> out) {
  if (!e_.opts.proxy_dns_remote) return std::nullopt;
  return answer_synthetic(*this, e_.synth, e_.opts.plan.ipv6, transport, server, query, q, out);
}

}  // namespace

size_t answer_synthetic(GateEnv& e, SynthMap& synth, bool tree_ipv6, const char* transport,
                        const IpAddr& server, std::span<const uint8_t> query,
                        const dns::Question& q, std::span<uint8_t> out) {
  bool v4 = q.qtype == dns::kTypeA;
  bool address = q.qclass == dns::kClassIn && (v4 || q.qtype == dns::kTypeAaaa) &&
                 (v4 || tree_ipv6) && SynthMap::nameable(q.qname);
  if (!address) return answer_locally(e, transport, server, query, q, dns::kRcodeNoError, out);
  auto entry = synth.assign(q.qname);
  if (!entry) {
    ++e.stats().synthetic_full;
    e.recorder().limit_hit(observe::Limit::SynthNames, synth.cap());
    return answer_locally(e, transport, server, query, q, dns::kRcodeServFail, out);
  }
  IpAddr ip = v4 ? SynthMap::v4(*entry) : SynthMap::v6(*entry);
  size_t n = dns::build_address_answer(query, q, ip, kSynthTtlS, out);
  e.recorder().dns_answer(transport, server, 53, q.qname, dns::qtype_name(q.qtype),
                          observe::DnsMode::SyntheticRemote, n, {&ip, 1}, dns::kRcodeNoError,
                          !e.is_gateway(server));
  return n;
}

GateAction gate_query(GateEnv& e, const char* transport, const IpAddr& server,
                      bool has_upstream, std::span<const uint8_t> msg, std::span<uint8_t> out,
                      size_t* n, GateQuery* gq) {
  auto q = dns::parse_query(msg);
  if (!q) {
    ++e.stats().dropped_malformed;
    return GateAction::Drop;
  }
  ++e.stats().dns_queries;
  e.recorder().dns_query(transport, server, 53, q->qname, dns::qtype_name(q->qtype),
                         !e.is_gateway(server));
  uint8_t rcode = dns::kRcodeNoError;
  bool local = true;
  if (q->qdcount != 1) {
    rcode = dns::kRcodeFormErr;
  } else if (auto v = e.policy().judge_name(q->qname); !v.allow) {
    e.recorder().policy_violation(0, policy::Proto::Dns, q->qname, std::nullopt, std::nullopt, v,
                                  {});
  } else if (auto remote = e.answer_remote(transport, server, msg, *q, out)) {
    *n = *remote;
    return GateAction::Answered;
  } else if (q->qtype == dns::kTypeAaaa && !e.host_has_ipv6()) {
    // empty NOERROR: the host could not reach the addresses anyway
  } else if (!has_upstream) {
    rcode = dns::kRcodeServFail;
  } else {
    local = false;
  }
  if (local) {
    *n = answer_locally(e, transport, server, msg, *q, rcode, out);
    return GateAction::Answered;
  }
  if (q->question_end > sizeof gq->prefix) {  // the parser bounds names: never
    ++e.stats().dropped_malformed;
    return GateAction::Drop;
  }
  gq->prefix_len = uint16_t(q->question_end);
  std::memcpy(gq->prefix, msg.data(), gq->prefix_len);
  gq->q = std::move(*q);
  return GateAction::Forward;
}

bool gate_answer(GateEnv& e, const char* transport, const IpAddr& server, const GateQuery& gq,
                 std::span<const uint8_t> msg) {
  auto a = dns::parse_response(msg);
  if (!a || a->qname != gq.q.qname || a->qtype != gq.q.qtype || a->qclass != gq.q.qclass) {
    ++e.stats().dns_mismatched;
    return false;
  }
  std::vector<IpAddr> ips;
  ips.reserve(a->n_addrs);
  for (size_t k = 0; k < a->n_addrs; ++k) {
    ips.push_back(a->addrs[k].ip);
    for (const auto& name : a->names) e.learn(name, a->addrs[k].ip, a->addrs[k].ttl);
  }
  e.recorder().dns_answer(transport, server, 53, gq.q.qname, dns::qtype_name(gq.q.qtype),
                          observe::DnsMode::Relayed, msg.size(), ips, a->rcode,
                          !e.is_gateway(server));
  return true;
}

size_t gate_servfail(GateEnv& e, const char* transport, const IpAddr& server,
                     const GateQuery& gq, std::span<uint8_t> out) {
  return answer_locally(e, transport, server, gq.bytes(), gq.q, dns::kRcodeServFail, out);
}

GateAction gate_query(Engine& e, const char* transport, const IpAddr& server,
                      bool has_upstream, std::span<const uint8_t> msg, std::span<uint8_t> out,
                      size_t* n, GateQuery* gq) {
  EngineGate g(e);
  return gate_query(g, transport, server, has_upstream, msg, out, n, gq);
}

bool gate_answer(Engine& e, const char* transport, const IpAddr& server, const GateQuery& gq,
                 std::span<const uint8_t> msg) {
  EngineGate g(e);
  return gate_answer(g, transport, server, gq, msg);
}

size_t gate_servfail(Engine& e, const char* transport, const IpAddr& server, const GateQuery& gq,
                     std::span<uint8_t> out) {
  EngineGate g(e);
  return gate_servfail(g, transport, server, gq, out);
}

}  // namespace cf::engine
