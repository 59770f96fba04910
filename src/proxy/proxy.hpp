// Upstream proxy connectors: the client side of HTTP CONNECT (RFC 9110 9.3.6),
// the same inside TLS for https:// proxies, and SOCKS5 CONNECT (RFC 1928) with
// username/password (RFC 1929).
//
// Theory of operation. The engine opens a non-blocking TCP connection to the
// proxy for each child connection and, once it is connected, drives one
// Handshake with every readiness event: advance() does as much as the socket
// allows and says whether it wants to read, to write, is done, or failed (with
// an error that names the cause, e.g. "proxy: CONNECT refused: HTTP/1.1 403
// Forbidden"). The proxy is asked for an address, or for a host name under
// --proxy-dns remote (the engine's synthetic addresses stand for names).
// Replies are read exactly: the HTTP response up to its blank line (found
// with a peek), SOCKS replies by their fixed lengths, so any byte the
// destination sends afterwards stays in the socket for the TCP translator.
// Replies are bounded (8 KiB of headers) and anything malformed fails the
// handshake; nothing here blocks or throws. The replies are parsed by the
// pure functions of proxy/reply.hpp (fuzzed), advance() does the I/O.
//
// For https:// proxies the tunnel lives inside TLS, so after the handshake a
// TlsPump moves bytes between the TLS session and one end of a socketpair; the
// TCP translator uses the other end exactly as it uses a plain socket.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/addr.hpp"
#include "common/result.hpp"
#include "common/unique_fd.hpp"
#include "config/config.hpp"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace cf::proxy {

enum class Step : uint8_t { WantRead, WantWrite, Done, Failed };

// What every handshake of one run shares.
class Upstream {
 public:
  // Builds the TLS context for https:// proxies. The Error names the cause.
  static Result<std::unique_ptr<Upstream>> create(const Config& c);
  ~Upstream();
  const ProxyUri& uri() const { return uri_; }
  const std::optional<std::string>& user() const { return user_; }
  const std::optional<std::string>& password() const { return password_; }
  SSL_CTX* tls() const { return ctx_; }
  bool insecure() const { return insecure_; }

 private:
  Upstream() = default;
  ProxyUri uri_;
  std::optional<std::string> user_, password_;
  bool insecure_ = false;
  SSL_CTX* ctx_ = nullptr;
};

class Handshake {
 public:
  // Asks for dst:port, or, when `name` is not empty (--proxy-dns remote),
  // for name:port: `CONNECT name:port` (HTTP, HTTPS), address type 3, a
  // domain name (SOCKS5). The name is 1..255 bytes of host-name characters
  // (the engine's SynthMap::nameable); dst then only names the flow.
  Handshake(const Upstream& up, const IpAddr& dst, uint16_t port, std::string_view name = {});
  ~Handshake();
  Handshake(const Handshake&) = delete;
  Handshake& operator=(const Handshake&) = delete;

  // Drives the handshake on the connected socket fd.
  Step advance(int fd);
  const std::string& error() const { return error_; }
  // After Done on an https:// proxy: the TLS session (ownership moves).
  SSL* take_tls();

 private:
  enum class State : uint8_t {
    TlsConnect,   // https: TLS handshake with the proxy
    SendRequest,  // writing out_ (CONNECT request or a SOCKS message)
    HttpReply,    // reading the CONNECT response headers
    SocksMethod,  // reading the method selection reply (2 bytes)
    SocksAuth,    // reading the RFC 1929 status (2 bytes)
    SocksReply,   // reading the CONNECT reply (4 + address + 2 bytes)
    Done,
    Failed,
  };
  Step fail(std::string msg);
  Step send_pending(int fd);
  // Reads exactly n bytes when available; 1 done, 0 want more, -1 error.
  int read_exact(int fd, uint8_t* buf, size_t n, bool consume);
  int io_error(int fd, int ret);
  void queue_socks_connect();

  const Upstream& up_;
  IpAddr dst_;
  std::string name_;
  uint16_t port_;
  State state_;
  State after_send_ = State::Failed;
  SSL* ssl_ = nullptr;
  std::string out_;
  size_t out_off_ = 0;
  std::string error_;
  Step want_ = Step::WantRead;
};

// Moves bytes between a TLS session and a local socketpair end.
class TlsPump {
 public:
  // `net` is the TCP socket to the proxy; returns the local end the TCP
  // translator should use, or an invalid fd on failure.
  TlsPump(SSL* ssl, UniqueFd net);
  ~TlsPump();
  UniqueFd take_translator_end();
  int net_fd() const { return net_.get(); }
  int local_fd() const { return local_.get(); }
  // Moves what can move without blocking. Returns false when the tunnel is
  // finished (both directions closed) or failed.
  bool pump();

 private:
  bool fail();
  SSL* ssl_;
  UniqueFd net_, local_, translator_;
  uint8_t up_[16384];
  size_t up_len_ = 0, up_off_ = 0;
  uint8_t down_[16384];
  size_t down_len_ = 0, down_off_ = 0;
  bool local_eof_ = false, net_eof_ = false, failed_ = false, shut_net_ = false;
};

}  // namespace cf::proxy
