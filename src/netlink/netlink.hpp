// Links, addresses, routes and neighbours through libnl-route-3: the few
// rtnetlink requests the sandbox needs to give the tree its view of the
// network (lo up; tap0 with a MAC, an MTU, addresses, default routes and
// static neighbour entries for the gateway). No `ip` binary is involved.
//
// Every request acts on the network namespace of the calling thread at the
// time the socket was opened. Each call is one synchronous request/ack round
// trip; nothing here is on a packet path.
//
// Errors are returned, never thrown, as an Error whose step names the request
// and the interface and whose message is the cause; together
// "netlink: RTM_NEWADDR on tap0: Operation not permitted".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/addr.hpp"
#include "common/result.hpp"

struct nl_sock;

namespace cf::netlink {

// A link as the requests below name it.
struct Link {
  std::string name;
  int index = 0;
};

// A connected NETLINK_ROUTE socket (close-on-exec).
class Socket {
 public:
  static Result<Socket> open();

  // Looks a link up by name: "netlink: no link tap0: Object not found".
  Result<Link> find_link(std::string_view name);

  // RTM_NEWLINK: sets the link's hardware address and MTU (the link must be
  // down to change a tap's MAC).
  Status set_mac_and_mtu(const Link& link, const Mac& mac, uint32_t mtu);
  // RTM_NEWLINK: sets IFF_UP.
  Status set_up(const Link& link);
  // RTM_NEWADDR: adds addr/prefix; nodad adds IFA_F_NODAD (IPv6: usable at
  // once, no tentative state).
  Status add_address(const Link& link, const IpAddr& addr, uint8_t prefix, bool nodad);
  // RTM_NEWROUTE: default route (0.0.0.0/0 or ::/0) via gateway on link, main
  // table, protocol static.
  Status add_default_route(const Link& link, const IpAddr& gateway);
  // RTM_NEWNEIGH: NUD_PERMANENT entry addr -> mac on link (replaces any entry).
  Status add_permanent_neighbour(const Link& link, const IpAddr& addr, const Mac& mac);

 private:
  struct Free {
    void operator()(nl_sock* s) const;
  };
  explicit Socket(nl_sock* s) : sock_(s) {}
  std::unique_ptr<nl_sock, Free> sock_;
};

}  // namespace cf::netlink
