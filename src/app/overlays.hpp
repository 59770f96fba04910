// What the tree sees in /etc/resolv.conf and /etc/hosts (docs/tree.md),
// computed from the host's files as pure text transformations.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "common/addr.hpp"

namespace cf::app {

// Nameservers = the gateways; the host's search/domain/options lines are kept
// unless keep_host_lines is false (`-d` given).
std::string make_resolv_conf(std::string_view host_text, const IpAddr& gw4,
                             const std::optional<IpAddr>& gw6, bool keep_host_lines);

// The given entries first, then the host's entries for names they do not define.
std::string make_hosts(std::string_view file_text, std::string_view host_text);

// First `nameserver` of a resolv.conf text.
std::optional<IpAddr> first_nameserver(std::string_view resolv_text);

}  // namespace cf::app
