// OpenSSL (libssl and libcrypto), loaded when an https:// proxy needs it.
//
// Only an https:// proxy needs TLS, yet linking libssl made every run load
// libssl and libcrypto: about 4 ms of every start-up on a small VM, most of
// it the dynamic loader binding their 3,700-odd symbols (both are linked
// with -z now) and relocating libcrypto (docs/performance.md, "Start-up").
// So, as for libnftables (src/nft/), the library is opened with dlopen(3),
// by Upstream::create for an https:// proxy only, and its functions are
// reached through the table below. The types and the constants come from
// OpenSSL's headers; the binary has no link to it, so a call that bypasses
// the table does not link.
//
// Private to the proxy module (proxy.cpp); nothing else calls OpenSSL.
#pragma once
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/result.hpp"

namespace cf::proxy::openssl {

// The functions of OpenSSL childflow calls, under their own names. The two
// macros proxy.cpp needs are SSL_ctrl and SSL_CTX_ctrl calls
// (SSL_set_tlsext_host_name, SSL_CTX_set_min_proto_version).
struct Api {
  // The context: trust store, verification.
  decltype(&::TLS_client_method) TLS_client_method;
  decltype(&::SSL_CTX_new) SSL_CTX_new;
  decltype(&::SSL_CTX_free) SSL_CTX_free;
  decltype(&::SSL_CTX_ctrl) SSL_CTX_ctrl;
  decltype(&::SSL_CTX_get_cert_store) SSL_CTX_get_cert_store;
  decltype(&::SSL_CTX_load_verify_locations) SSL_CTX_load_verify_locations;
  decltype(&::SSL_CTX_set_verify) SSL_CTX_set_verify;
  decltype(&::X509_get_default_cert_file_env) X509_get_default_cert_file_env;
  decltype(&::X509_get_default_cert_file) X509_get_default_cert_file;
  decltype(&::X509_get_default_cert_dir_env) X509_get_default_cert_dir_env;
  decltype(&::X509_get_default_cert_dir) X509_get_default_cert_dir;
  decltype(&::X509_STORE_load_file) X509_STORE_load_file;
  decltype(&::X509_STORE_CTX_get_error) X509_STORE_CTX_get_error;
  decltype(&::X509_verify_cert_error_string) X509_verify_cert_error_string;
  // A session.
  decltype(&::SSL_new) SSL_new;
  decltype(&::SSL_free) SSL_free;
  decltype(&::SSL_ctrl) SSL_ctrl;
  decltype(&::SSL_set_fd) SSL_set_fd;
  decltype(&::SSL_get0_param) SSL_get0_param;
  decltype(&::X509_VERIFY_PARAM_set1_ip_asc) X509_VERIFY_PARAM_set1_ip_asc;
  decltype(&::SSL_set1_host) SSL_set1_host;
  decltype(&::SSL_connect) SSL_connect;
  decltype(&::SSL_get_verify_result) SSL_get_verify_result;
  decltype(&::SSL_read) SSL_read;
  decltype(&::SSL_peek) SSL_peek;
  decltype(&::SSL_write) SSL_write;
  decltype(&::SSL_shutdown) SSL_shutdown;
  decltype(&::SSL_get_error) SSL_get_error;
  // The error queue.
  decltype(&::ERR_get_error) ERR_get_error;
  decltype(&::ERR_clear_error) ERR_clear_error;
  decltype(&::ERR_error_string_n) ERR_error_string_n;
};

// Opens the library once (later calls return the same answer): the table,
// or an Error that names the library and why it did not load. dlopen reads
// files, so this runs before the engine confines itself (src/confine/).
Result<const Api*> load();

// The table; only once load() succeeded, which every SSL object implies.
const Api& api();

}  // namespace cf::proxy::openssl
