// cf::rootful::FlowIds: the flow ids the conntrack reader and the capture's
// reader share: one id per flow whoever asks first, the last id towards a
// destination (for a denied one's violation), forgetting, the bound, and
// two threads asking at once.
#include "rootful/flow_ids.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>

#include <thread>
#include <vector>

#include "config/config.hpp"
#include "observe/recorder.hpp"

namespace cf::rootful {
namespace {

FlowKey key(uint16_t tree_port, const char* remote = "203.0.113.10", uint16_t remote_port = 80) {
  FlowKey k;
  k.proto = IPPROTO_TCP;
  k.tree = *IpAddr::parse("10.240.3.2");
  k.remote = *IpAddr::parse(remote);
  k.tree_port = tree_port;
  k.remote_port = remote_port;
  return k;
}

constexpr FlowIds::Reader kCap = FlowIds::Reader::Capture;
constexpr FlowIds::Reader kConf = FlowIds::Reader::Confirmed;

TEST(FlowIds, AViolationNeverTakesAnAllowedFlowsId) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  const IpAddr www = *IpAddr::parse("203.0.113.10");
  // Without capture, conntrack's flows name no destination.
  uint64_t direct = ids.of(key(40000), kConf);
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, www, 80), 0u);
  // A denied SYN first (captured, never confirmed), then an allowed flow to
  // the same destination: the violation is the denied one's.
  uint64_t denied = ids.of(key(40001), kCap);
  uint64_t allowed = ids.of(key(40002), kCap);
  EXPECT_EQ(ids.of(key(40002), kConf), allowed) << "conntrack finds the capture's id";
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, www, 80), denied);
  // An allowed flow first, confirmed: it is struck out.
  const IpAddr echo = *IpAddr::parse("203.0.113.20");
  uint64_t ok = ids.of(key(40003, "203.0.113.20", 7), kCap);
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, echo, 7), ok);
  ids.of(key(40003, "203.0.113.20", 7), kConf);
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, echo, 7), 0u) << "a confirmed flow names no violation";
  EXPECT_NE(direct, denied);
}

TEST(FlowIds, OneIdPerFlowWhoeverAsksFirst) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  uint64_t a = ids.of(key(40000), kCap);
  EXPECT_NE(a, 0u);
  EXPECT_EQ(ids.of(key(40000), kCap), a) << "the second reader finds the first's id";
  uint64_t b = ids.of(key(40001), kCap);
  EXPECT_NE(b, a);
  EXPECT_EQ(rec.next_flow_id(), b + 1) << "ids come from the Recorder's counter";
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, *IpAddr::parse("203.0.113.10"), 80), a)
      << "the first unconfirmed flow towards it";
  EXPECT_EQ(ids.last_to(IPPROTO_UDP, *IpAddr::parse("203.0.113.10"), 80), 0u);
  ids.forget(key(40000));
  EXPECT_NE(ids.of(key(40000), kCap), a) << "a forgotten flow's tuple is a new flow";
}

TEST(FlowIds, BoundedAgainstASprayingTree) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  for (uint32_t i = 0; i < FlowIds::kMaxFlows; ++i)
    ASSERT_NE(ids.of(key(uint16_t(i), "203.0.113.10", uint16_t(i)), kCap), 0u);
  EXPECT_EQ(ids.of(key(1, "203.0.113.20", 9), kCap), 0u) << "full: no id, nothing stored";
  EXPECT_NE(ids.of(key(5, "203.0.113.10", 5), kCap), 0u) << "known flows still have theirs";
}

TEST(FlowIds, TheCapturesNoteCarriesTheVerdictAndTheViolationsId) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  const IpAddr www = *IpAddr::parse("203.0.113.10");
  int asked = 0;
  FlowIds::Judge deny = [&](const FlowKey&) { return ++asked, FlowIds::Verdict{"deny_cidr", true}; };
  FlowIds::Judge allow = [&](const FlowKey&) { return ++asked, FlowIds::Verdict{}; };
  // A denied flow: the reason on each of its frames, asked once.
  FlowIds::Note a = ids.note(key(40000), deny);
  EXPECT_NE(a.id, 0u);
  EXPECT_STREQ(a.denied, "deny_cidr");
  FlowIds::Note again = ids.note(key(40000), deny);
  EXPECT_EQ(again.id, a.id);
  EXPECT_STREQ(again.denied, "deny_cidr");
  EXPECT_EQ(asked, 1) << "the policy is asked once per flow";
  // A retry from another port: the same destination's violation id.
  FlowIds::Note retry = ids.note(key(40001), deny);
  EXPECT_EQ(retry.id, a.id) << "one violation per destination, one id for its frames";
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, www, 80), a.id);
  // An allowed flow: its own id and no verdict.
  FlowIds::Note ok = ids.note(key(40002, "203.0.113.20", 7), allow);
  EXPECT_NE(ok.id, a.id);
  EXPECT_EQ(ok.denied, nullptr);
  // Conntrack confirms a flow the capture took for denied: it was let
  // through after all, so its later frames carry no verdict.
  FlowIds::Note late = ids.note(key(40003, "203.0.113.30", 443), deny);
  EXPECT_EQ(ids.of(key(40003, "203.0.113.30", 443), kConf), late.id);
  EXPECT_EQ(ids.note(key(40003, "203.0.113.30", 443), deny).denied, nullptr);
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, *IpAddr::parse("203.0.113.30"), 443), 0u);
  // The relay's refusals: one violation per connection, each its own id;
  // a connection the relay saw first is marked denied by it.
  FlowIds::Judge relayed = [](const FlowKey&) { return FlowIds::Verdict{"deny_cidr", false}; };
  const FlowKey p1 = key(41000, "203.0.113.40", 80), p2 = key(41001, "203.0.113.40", 80);
  uint64_t r1 = ids.note(p1, relayed).id;
  EXPECT_NE(ids.note(p2, relayed).id, r1) << "a relayed refusal never shares an id";
  const FlowKey p3 = key(41002, "203.0.113.40", 80);
  uint64_t r3 = ids.of(p3, kCap);
  ids.deny(p3, "deny_cidr");
  EXPECT_EQ(ids.note(p3, relayed).id, r3);
  EXPECT_STREQ(ids.note(p3, relayed).denied, "deny_cidr");
  // A flow conntrack saw first: the capture finds its id, no verdict.
  uint64_t direct = ids.of(key(40004), kConf);
  FlowIds::Note seen = ids.note(key(40004), deny);
  EXPECT_EQ(seen.id, direct);
  EXPECT_EQ(seen.denied, nullptr);
}

TEST(FlowIds, HostSidesUntilTheFlowIsForgotten) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  const HostKey h{IPPROTO_TCP, 61600, *IpAddr::parse("203.0.113.10"), 80};
  EXPECT_FALSE(ids.of_host(h));
  ids.host_side(h, key(40000));
  EXPECT_FALSE(ids.of_host(h)) << "only a known flow gets a host side";
  uint64_t id = ids.of(key(40000), kConf);
  ids.host_side(h, key(40000));
  ASSERT_TRUE(ids.of_host(h));
  EXPECT_EQ(ids.of(*ids.of_host(h), kConf), id);
  // The port reused by a later flow before conntrack forgot the first.
  ids.of(key(40001), kConf);
  ids.host_side(h, key(40001));
  EXPECT_EQ(ids.of_host(h)->tree_port, 40001);
  ids.forget(key(40000));
  ASSERT_TRUE(ids.of_host(h)) << "forgetting the old flow leaves the new one's host side";
  ids.forget(key(40001));
  EXPECT_FALSE(ids.of_host(h)) << "a forgotten flow's host side is asked again";
}

uint64_t fake_now = 0;
uint64_t fake_clock() { return fake_now; }

// What nobody forgets (a denied flow, a stray frame, the relay's tail)
// goes by itself, so the table never fills for good; confirmed flows stay.
TEST(FlowIds, UnconfirmedAndEndedFlowsAgeOut) {
  const Config c;
  observe::Recorder rec(c);
  fake_now = 100'000;
  FlowIds ids(rec, fake_clock);
  FlowIds::Judge deny = [](const FlowKey&) { return FlowIds::Verdict{"deny_cidr", true}; };
  const uint64_t denied = ids.note(key(40000), deny).id;
  const uint64_t confirmed = ids.of(key(40001, "203.0.113.20", 7), kConf);
  const uint64_t relayed = ids.of(key(40002, "203.0.113.30", 443), kConf);
  ids.ended(key(40002, "203.0.113.30", 443));
  fake_now += FlowIds::kGraceMs - 1000;
  EXPECT_EQ(ids.note(key(40002, "203.0.113.30", 443), deny).id, relayed)
      << "the relay's flow keeps its id through the grace (its FIN's frames)";
  fake_now += 2000;
  EXPECT_NE(ids.note(key(40002, "203.0.113.30", 443), deny).id, relayed) << "then it is gone";
  // The denied flow, seen again: it stays while frames come.
  fake_now += FlowIds::kUnconfirmedIdleMs - 1000;
  EXPECT_EQ(ids.note(key(40000), deny).id, denied);
  fake_now += FlowIds::kUnconfirmedIdleMs + 1000;
  ids.of(key(50000, "203.0.113.99", 1), kConf);  // any question sweeps
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, *IpAddr::parse("203.0.113.10"), 80), denied)
      << "the destination keeps its violation's id for the run";
  EXPECT_EQ(ids.note(key(40000), deny).id, denied) << "a new flow there shares it again";
  EXPECT_EQ(ids.of(key(40001, "203.0.113.20", 7), kConf), confirmed)
      << "a confirmed flow waits for conntrack's DESTROY";
}

TEST(FlowIds, BroadcastAndTheLikeAreNoFlow) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  FlowIds::Judge none = [](const FlowKey&) { return FlowIds::Verdict{nullptr, true, true}; };
  EXPECT_EQ(ids.note(key(40000, "224.0.0.251", 5353), none).id, 0u);
  EXPECT_EQ(ids.last_to(IPPROTO_TCP, *IpAddr::parse("224.0.0.251"), 5353), 0u) << "nothing kept";
}

TEST(FlowIds, TwoThreadsAgree) {
  const Config c;
  observe::Recorder rec(c);
  FlowIds ids(rec);
  std::vector<uint64_t> a(2000), b(2000);
  std::thread t([&] {
    for (uint16_t i = 0; i < 2000; ++i) a[i] = ids.of(key(i), kCap);
  });
  for (uint16_t i = 0; i < 2000; ++i) b[i] = ids.of(key(i), kCap);
  t.join();
  EXPECT_EQ(a, b);
}

}  // namespace
}  // namespace cf::rootful
