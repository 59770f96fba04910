// Capture: files per view, their interface descriptions, the egress view
// end to end through the writer, and tshark reading the result cleanly.
#include "capture/capture.hpp"

#include <gtest/gtest.h>
#include <stdio.h>
#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "frames.hpp"

namespace cf::capture {
namespace {

using namespace test_frames;

const IpAddr kChild4 = ip("10.240.0.2"), kGw4 = ip("10.240.0.1"), kHost4 = ip("198.51.100.2"),
             kRemote4 = ip("203.0.113.10");
const IpAddr kChild6 = ip("fd00:cf::2"), kHost6 = ip("2001:db8:1::2"),
             kRemote6 = ip("2001:db8:2::10");

Endpoints lab_endpoints() {
  Endpoints e;
  e.child4 = kChild4;
  e.child6 = kChild6;
  e.host4 = kHost4;
  e.host6 = kHost6;
  e.host_ifname = "eth0";
  return e;
}

Config config(const std::string& path, CapturePoint p) {
  Config c;
  c.capture = path;
  c.capture_point = p;
  return c;
}

Bytes read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

bool contains(const Bytes& hay, const std::string& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}
bool contains(const Bytes& hay, const IpAddr& a) {
  return std::search(hay.begin(), hay.end(), a.bytes.begin(), a.bytes.begin() + long(a.size())) !=
         hay.end();
}

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// A little conversation: ARP, an HTTP exchange over IPv4, DNS to the gateway,
// ping and an ICMP error over IPv4, a TCP SYN and ping over IPv6.
std::vector<std::pair<Direction, Bytes>> conversation() {
  std::vector<std::pair<Direction, Bytes>> v;
  Bytes arp = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x02, 0x08, 0x06,
               0, 1, 0x08, 0, 6, 4, 0, 1, 0x02, 0, 0, 0, 0, 0x02, 10, 240, 0, 2,
               0, 0, 0, 0, 0, 0, 10, 240, 0, 1};
  v.push_back({Direction::FromChild, arp});
  v.push_back({Direction::FromChild, eth(ipv4_packet(kChild4, kRemote4, 6, tcp(40000, 80, 0x02)), false)});
  v.push_back({Direction::ToChild, eth(ipv4_packet(kRemote4, kChild4, 6, tcp(80, 40000, 0x12)), false)});
  v.push_back({Direction::FromChild,
               eth(ipv4_packet(kChild4, kRemote4, 6,
                               tcp(40000, 80, 0x18, "GET / HTTP/1.1\r\nHost: www.example.test\r\n\r\n")),
                   false)});
  Bytes dns = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'w', 'w', 7, 'e', 'x', 'a',
               'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  v.push_back({Direction::FromChild, eth(ipv4_packet(kChild4, kGw4, 17, udp(41000, 53, dns)), false)});
  v.push_back({Direction::FromChild, eth(ipv4_packet(kChild4, kRemote4, 1, icmp(8, 0, 0x00010001, {'p', 'i', 'n', 'g'})), false)});
  v.push_back({Direction::ToChild, eth(ipv4_packet(kRemote4, kChild4, 1, icmp(0, 0, 0x00010001, {'p', 'i', 'n', 'g'})), false)});
  Bytes quoted = ipv4_packet(kChild4, kRemote4, 17, udp(40001, 9, {'x'}));
  v.push_back({Direction::ToChild, eth(ipv4_packet(kRemote4, kChild4, 1, icmp(3, 3, 0, quoted)), false)});
  v.push_back({Direction::FromChild, eth(ipv6_packet(kChild6, kRemote6, 6, tcp(40002, 443, 0x02)), true)});
  v.push_back({Direction::FromChild, eth(ipv6_packet(kChild6, kRemote6, 58, icmp(128, 0, 0x00020001, {'v', '6'})), true)});
  v.push_back({Direction::ToChild, eth(ipv6_packet(kRemote6, kChild6, 58, icmp(129, 0, 0x00020001, {'v', '6'})), true)});
  return v;
}

TEST(Capture, OutputPathsMatchTheSummary) {
  EXPECT_EQ(output_paths(config("/d/x.pcapng", CapturePoint::Both)),
            (std::vector<std::string>{"/d/x.child.pcapng", "/d/x.egress.pcapng"}));
  EXPECT_EQ(output_paths(config("/d/x", CapturePoint::Both)),
            (std::vector<std::string>{"/d/x.child.pcapng", "/d/x.egress.pcapng"}));
  EXPECT_EQ(output_paths(config("/d/x.pcap", CapturePoint::Both)),
            (std::vector<std::string>{"/d/x.pcap.child.pcapng", "/d/x.pcap.egress.pcapng"}));
  EXPECT_EQ(output_paths(config("/d/x.pcapng", CapturePoint::Egress)),
            (std::vector<std::string>{"/d/x.pcapng"}));
  Config none;
  EXPECT_TRUE(output_paths(none).empty());
}

// wire-egress: one file, frames as they are (the caller feeds it from the
// filtered packet socket), described as the wire on every link.
TEST(Capture, WireEgressWritesOneFileAsIs) {
  TempDir dir;
  std::string path = dir.path + "/w.pcapng";
  auto r = Capture::open(config(path, CapturePoint::WireEgress), lab_endpoints());
  ASSERT_TRUE(r) << r.error().str();
  EXPECT_EQ(r->paths(), std::vector<std::string>{path});
  Bytes f = eth(ipv4_packet(ip("198.51.100.2"), ip("203.0.113.10"), 6, tcp(40000, 80, 0x02)), false);
  r->frame(Direction::FromChild, f, {5, nullptr}, 77);
  ASSERT_TRUE(r->close());
  std::ifstream in(path, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(in)), {});
  EXPECT_NE(b.find("childflow view=wire-egress backend=rootless-internal kind=wire interface=any"),
            std::string::npos);
  EXPECT_NE(b.find(std::string(f.begin(), f.end())), std::string::npos) << "the frame, unchanged";
  EXPECT_NE(b.find("flow_id=5"), std::string::npos);
}

TEST(Capture, OpenErrorNamesThePath) {
  auto r = Capture::open(config("/nonexistent-cf-dir/x.pcapng", CapturePoint::Child), lab_endpoints());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().str(),
            "capture: cannot create /nonexistent-cf-dir/x.pcapng: No such file or directory");
}

TEST(Capture, BothViewsWriteTwoFiles) {
  TempDir dir;
  auto r = Capture::open(config(dir.path + "/x.pcapng", CapturePoint::Both), lab_endpoints());
  ASSERT_TRUE(r) << r.error().str();
  auto& cap = *r;
  auto conv = conversation();
  for (auto& [d, f] : conv) cap.frame(d, f);
  cap.flush();
  ASSERT_TRUE(cap.close());
  EXPECT_FALSE(exists(dir.path + "/x.pcapng"));

  Bytes child = read_all(dir.path + "/x.child.pcapng");
  Bytes egress = read_all(dir.path + "/x.egress.pcapng");
  EXPECT_TRUE(contains(child, "childflow view=child backend=rootless-internal kind=isolated interface=tap0"));
  EXPECT_TRUE(contains(egress, "childflow view=egress backend=rootless-internal kind=logical interface=eth0"));
  EXPECT_TRUE(contains(child, kChild4));
  EXPECT_TRUE(contains(child, kChild6));
  EXPECT_FALSE(contains(egress, kChild4));
  EXPECT_FALSE(contains(egress, kChild6));
  EXPECT_TRUE(contains(egress, kHost4));
  EXPECT_TRUE(contains(egress, kHost6));
  EXPECT_TRUE(contains(egress, "GET / HTTP/1.1"));
  // The egress file has every frame but the ARP request.
  size_t child_epb = 0, egress_epb = 0;
  for (size_t i = 0; i + 4 <= child.size();) {
    uint32_t type, len;
    memcpy(&type, &child[i], 4);
    memcpy(&len, &child[i + 4], 4);
    child_epb += type == kBlockEnhancedPacket;
    i += len;
  }
  for (size_t i = 0; i + 4 <= egress.size();) {
    uint32_t type, len;
    memcpy(&type, &egress[i], 4);
    memcpy(&len, &egress[i + 4], 4);
    egress_epb += type == kBlockEnhancedPacket;
    i += len;
  }
  EXPECT_EQ(child_epb, conv.size());
  EXPECT_EQ(egress_epb, conv.size() - 1);
  EXPECT_EQ(cap.frames(), conv.size());
}

TEST(Capture, EgressInterfaceFallsBackToEgress) {
  TempDir dir;
  Endpoints e = lab_endpoints();
  e.host_ifname.clear();
  e.host4 = ip("192.0.2.77");  // on no interface of this machine
  e.host6 = ip("2001:db8:ffff::77");
  auto r = Capture::open(config(dir.path + "/e.pcapng", CapturePoint::Egress), e);
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->close());
  EXPECT_TRUE(contains(read_all(dir.path + "/e.pcapng"),
                       "childflow view=egress backend=rootless-internal kind=logical interface=egress"));
}

// Runs a command, returns its stdout and stderr together and the exit status.
std::pair<std::string, int> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {"popen failed", -1};
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = pclose(p);
  return {out, st};
}

bool have_tshark() { return run("command -v tshark").second == 0; }

// tshark with every checksum check on: a wrong checksum is an expert warning.
const char* kTshark =
    "tshark -o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE -o udp.check_checksum:TRUE "
    "-V -r ";

void expect_clean(const std::string& out) {
  EXPECT_EQ(out.find("Malformed"), std::string::npos) << out;
  EXPECT_EQ(out.find("Expert Info (Warning"), std::string::npos) << out;
  EXPECT_EQ(out.find("Expert Info (Error"), std::string::npos) << out;
  EXPECT_EQ(out.find("incorrect, should be"), std::string::npos) << out;
  EXPECT_EQ(out.find("Bad checksum"), std::string::npos) << out;
}

TEST(Capture, TsharkReadsBothViewsCleanly) {
  if (!have_tshark()) GTEST_SKIP() << "tshark is not installed";
  TempDir dir;
  auto r = Capture::open(config(dir.path + "/x.pcapng", CapturePoint::Both), lab_endpoints());
  ASSERT_TRUE(r);
  auto& cap = *r;
  for (auto& [d, f] : conversation()) cap.frame(d, f);
  ASSERT_TRUE(cap.close());

  auto [child, st1] = run(std::string(kTshark) + dir.path + "/x.child.pcapng");
  ASSERT_EQ(st1, 0) << child;
  expect_clean(child);
  EXPECT_NE(child.find("Interface description: childflow view=child backend=rootless-internal "
                       "kind=isolated interface=tap0"),
            std::string::npos)
      << child;
  EXPECT_NE(child.find("Src: 10.240.0.2, Dst: 203.0.113.10"), std::string::npos) << child;
  EXPECT_NE(child.find("GET / HTTP/1.1"), std::string::npos) << child;
  EXPECT_NE(child.find("Target IP address: 10.240.0.1"), std::string::npos) << child;
  EXPECT_NE(child.find("Src: fd00:cf::2, Dst: 2001:db8:2::10"), std::string::npos) << child;
  EXPECT_NE(child.find("Direction: Outbound"), std::string::npos) << child;
  EXPECT_NE(child.find("Direction: Inbound"), std::string::npos) << child;

  auto [egress, st2] = run(std::string(kTshark) + dir.path + "/x.egress.pcapng");
  ASSERT_EQ(st2, 0) << egress;
  expect_clean(egress);
  EXPECT_NE(egress.find("Interface description: childflow view=egress backend=rootless-internal "
                        "kind=logical interface=eth0"),
            std::string::npos)
      << egress;
  EXPECT_NE(egress.find("Src: 198.51.100.2, Dst: 203.0.113.10"), std::string::npos) << egress;
  EXPECT_NE(egress.find("Src: 203.0.113.10, Dst: 198.51.100.2"), std::string::npos) << egress;
  EXPECT_NE(egress.find("Src: 2001:db8:1::2, Dst: 2001:db8:2::10"), std::string::npos) << egress;
  EXPECT_NE(egress.find("GET / HTTP/1.1"), std::string::npos) << egress;
  EXPECT_EQ(egress.find("10.240.0.2"), std::string::npos) << egress;
  EXPECT_EQ(egress.find("fd00:cf::2"), std::string::npos) << egress;
  EXPECT_EQ(egress.find("Address Resolution Protocol"), std::string::npos) << egress;
}

}  // namespace
}  // namespace cf::capture

namespace cf::capture {
namespace {

TEST(Capture, ResolverIsSubstitutedUnlessOnLoopback) {
  test_frames::TempDir dir;
  Endpoints e;
  e.child4 = test_frames::ip("10.240.0.2");
  e.host4 = test_frames::ip("198.51.100.2");
  e.gateway4 = test_frames::ip("10.240.0.1");
  e.resolver = test_frames::ip("203.0.113.53");
  Config c;
  c.capture = dir.path + "/r.pcapng";
  c.capture_point = CapturePoint::Egress;
  auto r = Capture::open(c, e);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->egress_addresses().resolver4, e.resolver);
  EXPECT_FALSE(r->egress_addresses().resolver6);
  e.resolver = test_frames::ip("127.0.0.53");
  auto r2 = Capture::open(c, e);
  ASSERT_TRUE(r2);
  EXPECT_FALSE(r2->egress_addresses().resolver4);
}

}  // namespace
}  // namespace cf::capture
