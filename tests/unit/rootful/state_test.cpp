// cf::rootful: the run record's text (what --cleanup trusts: only names of
// our own making) and the parser of the denied sets' listing.
#include <gtest/gtest.h>

#include "fixtures.hpp"
#include "rootful/host.hpp"
#include "rootful/state.hpp"

namespace cf::rootful {
namespace {

using namespace fixtures;

TEST(RunRecord, RoundTrips) {
  state::Record r{"0badcafe", 4242, 123456, 4026531992, "childflow_0badcafe", "cf0badcafe"};
  auto back = state::parse(state::render(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->run, r.run);
  EXPECT_EQ(back->pid, r.pid);
  EXPECT_EQ(back->start_time, r.start_time);
  EXPECT_EQ(back->netns, r.netns);
  EXPECT_EQ(back->table, r.table);
  EXPECT_EQ(back->link, r.link);
}

TEST(RunRecord, CarriesTheIfacePin) {
  state::Record r = record();
  EXPECT_EQ(state::render(r).find("pin"), std::string::npos) << "no --iface, no pin line";
  r.pin_iface = "eth1";
  r.pin_mark = r.pin_table = 0x43461234;
  r.pin_pref4 = 32765;
  r.pin_pref6 = 32764;
  auto back = state::parse(state::render(r));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->pin_iface, "eth1");
  EXPECT_EQ(back->pin_mark, 0x43461234u);
  EXPECT_EQ(back->pin_table, 0x43461234u);
  EXPECT_EQ(back->pin_pref4, 32765u);
  EXPECT_EQ(back->pin_pref6, 32764u);
  // A table outside our range is not ours to flush.
  state::Record other = r;
  other.pin_table = other.pin_mark = 254;
  EXPECT_FALSE(state::parse(state::render(other)));
  other = r;
  other.pin_mark = 0x43460001;
  EXPECT_FALSE(state::parse(state::render(other)));
}

TEST(RunRecord, RecordsOfEarlierRunsStillParse) {
  // Written before --iface and --proxy shared one chooser: an IPv4 and an
  // IPv6 preference of their own, and TPROXY's keys, in one record.
  auto r = state::parse(
      "run 0badcafe\npid 4242\nstart_time 1\nnetns 2\ntable childflow_0badcafe\nlink "
      "cf0badcafe\nmark 1667629057\nroute_table 1667629057\nrule_priority 100\npin eth1 "
      "1128660992 1128660992 32765 32764\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->mark, 0x63660001u);
  EXPECT_EQ(r->route_table, 0x63660001u);
  EXPECT_EQ(r->rule_priority, 100u);
  EXPECT_EQ(r->pin_iface, "eth1");
  EXPECT_EQ(r->pin_table, 0x43460000u);
  EXPECT_EQ(r->pin_pref4, 32765u);
  EXPECT_EQ(r->pin_pref6, 32764u);
}

TEST(RunRecord, OnlyOurOwnNamesAreTrusted) {
  state::Record r = record();
  state::Record other = r;
  other.table = "filter";  // a table childflow did not create
  EXPECT_FALSE(state::parse(state::render(other)));
  other = r;
  other.link = "eth0";
  EXPECT_FALSE(state::parse(state::render(other)));
  EXPECT_FALSE(state::parse(""));
  EXPECT_FALSE(state::parse("run 0badcafe\npid 1\n"));
  EXPECT_FALSE(state::parse(state::render(r) + "extra 1\n"));
  r.pid = 0;
  EXPECT_FALSE(state::parse(state::render(r)));
}

TEST(RunRecord, DescribesTheCaller) {
  state::Record r = state::describe_self("0badcafe");
  EXPECT_EQ(r.table, "childflow_0badcafe");
  EXPECT_EQ(r.link, "cf0badcafe");
  EXPECT_TRUE(state::alive(r));
  r.start_time += 1;  // the same pid, another process
  EXPECT_FALSE(state::alive(r));
  EXPECT_EQ(state::new_run_id().size(), 8u);
}

TEST(DeniedSets, ParsesEveryShape) {
  auto d4p = parse_denied(
      "table inet childflow_x {\n\tset denied4p {\n\t\ttype ipv4_addr . inet_proto . "
      "inet_service\n\t\tsize 4096\n\t\tflags dynamic\n\t\telements = { 203.0.113.11 . udp . "
      "53,\n\t\t\t     203.0.113.10 . tcp . 80 }\n\t}\n}\n");
  ASSERT_EQ(d4p.size(), 2u);
  EXPECT_EQ(d4p[0].proto, policy::Proto::Udp);
  EXPECT_EQ(d4p[0].ip.str(), "203.0.113.11");
  EXPECT_EQ(d4p[0].port, 53);
  EXPECT_EQ(d4p[1].proto, policy::Proto::Tcp);
  EXPECT_EQ(d4p[1].port, 80);
  auto d4 = parse_denied(
      "\tset denied4 {\n\t\ttype ipv4_addr . inet_proto\n\t\telements = { 203.0.113.10 . icmp "
      "}\n\t}\n");
  ASSERT_EQ(d4.size(), 1u);
  EXPECT_EQ(d4[0].proto, policy::Proto::Icmp4);
  EXPECT_FALSE(d4[0].port);
  auto d6 = parse_denied(
      "\tset denied6 {\n\t\ttype ipv6_addr . inet_proto\n\t\telements = { 2001:db8::1 . "
      "ipv6-icmp }\n\t}\n");
  ASSERT_EQ(d6.size(), 1u);
  EXPECT_EQ(d6[0].proto, policy::Proto::Icmp6);
  EXPECT_TRUE(parse_denied("\tset denied6p {\n\t\ttype ipv6_addr . inet_proto . "
                           "inet_service\n\t\tflags dynamic\n\t}\n")
                  .empty());
}

}  // namespace
}  // namespace cf::rootful
