// IP addresses and prefixes as plain values: an IpAddr holds either family in
// 16 bytes (IPv4 in the first 4), so it can be a hash key and be compared
// without allocation. Parsing is strict and returns an error string that the
// caller puts in front of the user. A Mac is an Ethernet address (tap0's and
// the engine's).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/result.hpp"

struct sockaddr;
struct sockaddr_storage;

namespace cf {

enum class Family : uint8_t { V4 = 4, V6 = 6 };

using Mac = std::array<uint8_t, 6>;

struct IpAddr {
  Family family = Family::V4;
  std::array<uint8_t, 16> bytes{};

  static IpAddr v4(uint32_t host_order);
  static IpAddr v4_bytes(const uint8_t* p);
  static IpAddr v6_bytes(const uint8_t* p);
  static std::optional<IpAddr> parse(std::string_view text);

  bool is_v4() const { return family == Family::V4; }
  uint32_t v4_host_order() const;
  size_t size() const { return is_v4() ? 4 : 16; }
  std::string str() const;
  friend bool operator==(const IpAddr&, const IpAddr&) = default;
  friend auto operator<=>(const IpAddr&, const IpAddr&) = default;
};

// "ip:port", IPv6 in brackets (the flow log's remote_addr form).
std::string format_endpoint(const IpAddr& ip, uint16_t port);

// Builds a sockaddr_in/sockaddr_in6; returns its length.
unsigned to_sockaddr(const IpAddr& ip, uint16_t port, sockaddr_storage* out);
// Reads a sockaddr_in/in6 (v4-mapped v6 becomes v4); false for other families.
bool from_sockaddr(const sockaddr* sa, IpAddr* ip, uint16_t* port);

struct Cidr {
  IpAddr addr;
  uint8_t prefix = 0;

  // Errors: "not an IP prefix", "host bits set (did you mean 10.0.0.0/8?)".
  static Result<Cidr> parse(std::string_view text);
  bool contains(const IpAddr& ip) const;
  std::string str() const;
  friend bool operator==(const Cidr&, const Cidr&) = default;
};

}  // namespace cf
