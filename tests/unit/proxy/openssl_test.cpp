// OpenSSL is loaded only for an https:// proxy (proxy/openssl.hpp): this
// binary, like childflow, has no link to libssl, so the library is in the
// process only once an https:// Upstream asked for it.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include "proxy/openssl.hpp"
#include "proxy/proxy.hpp"

namespace cf::proxy {
namespace {

bool libssl_in_process() {
  void* h = ::dlopen("libssl.so.3", RTLD_NOW | RTLD_NOLOAD);
  if (h) ::dlclose(h);  // drops only the reference NOLOAD took
  return h != nullptr;
}

Config proxied(ProxyScheme scheme, uint16_t port) {
  Config c;
  c.proxy = ProxyUri{scheme, "proxy.example.test", port};
  return c;
}

// One test, in this order: the state it checks is the process's.
TEST(OpenSsl, LoadedForAnHttpsProxyOnly) {
  for (auto [scheme, port] : {std::pair{ProxyScheme::Http, uint16_t(3128)},
                              std::pair{ProxyScheme::Socks5, uint16_t(1080)}}) {
    auto up = Upstream::create(proxied(scheme, port));
    ASSERT_TRUE(up) << up.error().str();
    EXPECT_EQ((*up)->tls(), nullptr);
  }
  EXPECT_FALSE(libssl_in_process()) << "libssl was loaded without an https:// proxy";

  auto https = Upstream::create(proxied(ProxyScheme::Https, 3130));
  ASSERT_TRUE(https) << https.error().str();
  EXPECT_NE((*https)->tls(), nullptr);
  EXPECT_TRUE(libssl_in_process());

  // Later loads give the same table, every function resolved.
  auto lib = openssl::load();
  ASSERT_TRUE(lib) << lib.error().str();
  EXPECT_EQ(*lib, &openssl::api());
  EXPECT_NE((*lib)->SSL_connect, nullptr);
  EXPECT_NE((*lib)->ERR_error_string_n, nullptr);  // from libcrypto, through libssl
}

TEST(OpenSsl, AnUnreadableProxyCaStopsTheRun) {
  Config c = proxied(ProxyScheme::Https, 3130);
  c.proxy_ca = "/nonexistent/ca.pem";
  auto up = Upstream::create(c);
  ASSERT_FALSE(up);
  EXPECT_EQ(up.error().step, "proxy: --proxy-ca /nonexistent/ca.pem");
}

}  // namespace
}  // namespace cf::proxy
