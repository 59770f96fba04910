#include "config/config.hpp"

#include <fmt/format.h>

namespace cf {

const char* name(Backend b) {
  switch (b) {
    case Backend::RootlessInternal: return "rootless-internal";
    case Backend::Rootful: return "rootful";
  }
  return "?";
}
const char* name(CapturePoint c) {
  switch (c) {
    case CapturePoint::Child: return "child";
    case CapturePoint::Egress: return "egress";
    case CapturePoint::WireEgress: return "wire-egress";
    case CapturePoint::Both: return "both";
  }
  return "?";
}
const char* name(TextOrJson f) {
  switch (f) {
    case TextOrJson::Text: return "text";
    case TextOrJson::Json: return "json";
  }
  return "?";
}
const char* name(ReportFormat f) {
  switch (f) {
    case ReportFormat::Text: return "text";
    case ReportFormat::Markdown: return "markdown";
    case ReportFormat::Json: return "json";
    case ReportFormat::Html: return "html";
  }
  return "?";
}
const char* name(DefaultPolicy p) {
  switch (p) {
    case DefaultPolicy::Allow: return "allow";
    case DefaultPolicy::Deny: return "deny";
  }
  return "?";
}
const char* name(ProxyScheme s) {
  switch (s) {
    case ProxyScheme::Http: return "http";
    case ProxyScheme::Https: return "https";
    case ProxyScheme::Socks5: return "socks5";
  }
  return "?";
}

const char* name(ProxyDns d) {
  switch (d) {
    case ProxyDns::Local: return "local";
    case ProxyDns::Remote: return "remote";
  }
  return "?";
}

std::string ProxyUri::str() const {
  bool v6 = host.find(':') != std::string::npos;
  return v6 ? fmt::format("{}://[{}]:{}", name(scheme), host, port)
            : fmt::format("{}://{}:{}", name(scheme), host, port);
}

}  // namespace cf
