// OpenSSL through dlopen. See openssl.hpp.
#include "proxy/openssl.hpp"

#include <dlfcn.h>

#include <fmt/format.h>
#include <string>
#include <type_traits>

#include "common/result.hpp"

namespace cf::proxy::openssl {
namespace {

// The soname of the ABI this code was built against ("libssl.so.3"); its
// dependency, libcrypto, comes with it, and dlsym on libssl's handle finds
// libcrypto's functions too.
#define CF_OPENSSL_STR2(x) #x
#define CF_OPENSSL_STR(x) CF_OPENSSL_STR2(x)
constexpr const char* kSoname = "libssl.so." CF_OPENSSL_STR(OPENSSL_SHLIB_VERSION);

Result<Api> open_library() {
  void* h = ::dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
  if (!h)
    return Error{fmt::format("cannot load {} ({}): an https:// proxy needs OpenSSL {} "
                             "(Debian, Ubuntu: libssl3)",
                             kSoname, ::dlerror(), OPENSSL_VERSION_MAJOR)};
  Api a{};
  std::string missing;
  auto sym = [&](auto& fn, const char* name) {
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
    if (!fn) missing += missing.empty() ? name : std::string(", ") + name;
  };
#define CF_OPENSSL_SYM(name) sym(a.name, #name)
  CF_OPENSSL_SYM(TLS_client_method);
  CF_OPENSSL_SYM(SSL_CTX_new);
  CF_OPENSSL_SYM(SSL_CTX_free);
  CF_OPENSSL_SYM(SSL_CTX_ctrl);
  CF_OPENSSL_SYM(SSL_CTX_get_cert_store);
  CF_OPENSSL_SYM(SSL_CTX_load_verify_locations);
  CF_OPENSSL_SYM(SSL_CTX_set_verify);
  CF_OPENSSL_SYM(X509_get_default_cert_file_env);
  CF_OPENSSL_SYM(X509_get_default_cert_file);
  CF_OPENSSL_SYM(X509_get_default_cert_dir_env);
  CF_OPENSSL_SYM(X509_get_default_cert_dir);
  CF_OPENSSL_SYM(X509_STORE_load_file);
  CF_OPENSSL_SYM(X509_STORE_CTX_get_error);
  CF_OPENSSL_SYM(X509_verify_cert_error_string);
  CF_OPENSSL_SYM(SSL_new);
  CF_OPENSSL_SYM(SSL_free);
  CF_OPENSSL_SYM(SSL_ctrl);
  CF_OPENSSL_SYM(SSL_set_fd);
  CF_OPENSSL_SYM(SSL_get0_param);
  CF_OPENSSL_SYM(X509_VERIFY_PARAM_set1_ip_asc);
  CF_OPENSSL_SYM(SSL_set1_host);
  CF_OPENSSL_SYM(SSL_connect);
  CF_OPENSSL_SYM(SSL_get_verify_result);
  CF_OPENSSL_SYM(SSL_read);
  CF_OPENSSL_SYM(SSL_peek);
  CF_OPENSSL_SYM(SSL_write);
  CF_OPENSSL_SYM(SSL_shutdown);
  CF_OPENSSL_SYM(SSL_get_error);
  CF_OPENSSL_SYM(ERR_get_error);
  CF_OPENSSL_SYM(ERR_clear_error);
  CF_OPENSSL_SYM(ERR_error_string_n);
#undef CF_OPENSSL_SYM
  if (!missing.empty()) {
    ::dlclose(h);
    return Error{fmt::format("{} lacks {}", kSoname, missing)};
  }
  return a;  // the handle stays open for the life of the process
}

// Set by the first successful load().
const Api* g_api = nullptr;

}  // namespace

Result<const Api*> load() {
  static const Result<Api> lib = open_library();
  if (!lib) return lib.error();
  g_api = &lib.value();
  return g_api;
}

const Api& api() {
  CF_CHECK(g_api != nullptr);  // an SSL object exists only after load()
  return *g_api;
}

}  // namespace cf::proxy::openssl
