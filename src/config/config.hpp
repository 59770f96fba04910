// The one Config value: everything a run, doctor, report or dump needs, after
// profiles and flags are merged and validated. Built by cli::parse (which uses
// config::load_profile and the layers of config/settings.hpp) and never
// changed afterwards.
//
// Field names mirror the profile keys (docs/profile.md); each field that a
// flag or key sets is described by one row of the settings table
// (config/settings.cpp), and --dump-profile writes them back as TOML that
// loads to an equal Config.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/addr.hpp"

namespace cf {

enum class Mode : uint8_t { Run, Doctor, Report, DumpProfile, Cleanup };
enum class Backend : uint8_t { RootlessInternal, Rootful };
enum class CapturePoint : uint8_t { Child, Egress, WireEgress, Both };
enum class TextOrJson : uint8_t { Text, Json };
enum class ReportFormat : uint8_t { Text, Markdown, Json, Html };
enum class DefaultPolicy : uint8_t { Allow, Deny };
enum class ProxyScheme : uint8_t { Http, Https, Socks5 };
// --proxy-dns: who resolves the tree's names (docs/proxy.md, "Names to the
// proxy"). Local: the engine relays DNS to the resolver and the proxy is
// asked for addresses. Remote: the engine answers from a synthetic range and
// the proxy is asked for the names.
enum class ProxyDns : uint8_t { Local, Remote };

const char* name(Backend b);        // "rootless-internal" | "rootful"
const char* name(CapturePoint c);   // "child" | "egress" | "wire-egress" | "both"
const char* name(TextOrJson f);     // "text" | "json"
const char* name(ReportFormat f);   // "text" | "markdown" | "json" | "html"
const char* name(DefaultPolicy p);  // "allow" | "deny"
const char* name(ProxyScheme s);    // "http" | "https" | "socks5"
const char* name(ProxyDns d);       // "local" | "remote"

struct ProxyUri {
  ProxyScheme scheme = ProxyScheme::Http;
  std::string host;  // name or address literal, without brackets
  uint16_t port = 0;
  std::string str() const;  // scheme://host:port, IPv6 in brackets
  friend bool operator==(const ProxyUri&, const ProxyUri&) = default;
};

struct Config {
  Mode mode = Mode::Run;

  // Sandbox and artefacts.
  Backend backend = Backend::RootlessInternal;
  std::optional<std::string> capture;  // absolute path
  CapturePoint capture_point = CapturePoint::Child;
  std::optional<IpAddr> dns;
  std::optional<std::string> hosts_file;  // absolute path
  bool as_root = false;  // beyond: the command runs as root inside
  std::optional<std::string> iface;
  bool summary = false;
  TextOrJson summary_format = TextOrJson::Text;
  std::optional<std::string> flow_log;  // absolute path
  // --learn FILE (command line only): write, or merge into, a profile that
  // allows what the tree used and denies the rest (learn/learn.hpp).
  std::optional<std::string> learn;  // absolute path

  // Proxy.
  std::optional<ProxyUri> proxy;
  std::optional<std::string> proxy_user;
  std::optional<std::string> proxy_password;
  // The file proxy_password was read from (absolute path), when it was:
  // --dump-profile writes this path instead of the password.
  std::optional<std::string> proxy_password_file;
  bool proxy_insecure = false;
  std::optional<std::string> proxy_ca;  // beyond: PEM CAs trusted for https://
  ProxyDns proxy_dns = ProxyDns::Local;  // beyond: names to the proxy

  // Policy.
  bool offline = false;
  bool block_private = false;
  bool block_metadata = false;
  DefaultPolicy default_policy = DefaultPolicy::Allow;
  std::vector<Cidr> allow_cidrs;
  std::vector<Cidr> deny_cidrs;
  std::vector<std::string> allow_domains;  // normalised names
  std::vector<std::string> allow_domains_exact;
  std::vector<std::string> deny_domains;
  std::vector<std::string> deny_domains_exact;
  bool proxy_only = false;
  bool fail_on_leak = false;

  // beyond.
  bool allow_host_loopback = false;
  // --no-sniff-names: TCP connections are not judged by the names in their
  // first bytes (TLS server_name, HTTP Host; docs/policy.md).
  bool no_sniff_names = false;
  uint32_t mtu = 65520;

  // Live lines on stderr (docs/cli.md): -1 -q (errors only), 0 default (one
  // line at exit when something was denied), 1 -v (denials, proxy failures,
  // connect errors as they happen), 2 -vv (and every flow), 3 CHILDFLOW_DEBUG
  // (and every DNS query, answer and connect attempt).
  int8_t verbosity = 0;

  // The command tree.
  std::vector<std::string> command;

  // Other modes.
  TextOrJson doctor_format = TextOrJson::Text;
  std::optional<std::string> report;  // flow log to read
  ReportFormat report_format = ReportFormat::Text;
  bool show_secrets = false;  // --dump-profile writes passwords instead of redacting them

  friend bool operator==(const Config&, const Config&) = default;
};

}  // namespace cf
