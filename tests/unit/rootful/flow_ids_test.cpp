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
