// Proxy handshakes and the TLS pump; see proxy.hpp.
#include "proxy/proxy.hpp"

#include <dirent.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fmt/format.h>

#include "proxy/openssl.hpp"
#include "proxy/reply.hpp"

namespace cf::proxy {
namespace {

// OpenSSL's functions, through the table of the library loaded by
// Upstream::create (proxy/openssl.hpp).
const openssl::Api& ossl() { return openssl::api(); }

std::string base64(std::string_view in) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8 |
                 uint8_t(in[i + 2]);
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += t[v & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16 | uint32_t(uint8_t(in[i + 1])) << 8;
    out += t[v >> 18];
    out += t[(v >> 12) & 63];
    out += t[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

// --proxy-insecure: accept any chain problem, but never a name mismatch.
int insecure_verify(int preverify_ok, X509_STORE_CTX* ctx) {
  if (preverify_ok) return 1;
  int err = ossl().X509_STORE_CTX_get_error(ctx);
  return err == X509_V_ERR_HOSTNAME_MISMATCH || err == X509_V_ERR_IP_ADDRESS_MISMATCH ? 0 : 1;
}

std::string tls_error_text() {
  unsigned long e = ossl().ERR_get_error();
  ossl().ERR_clear_error();
  if (!e) return "TLS error";
  char buf[256];
  ossl().ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// The system trust store, loaded whole now. OpenSSL's default paths
// (SSL_CTX_set_default_verify_paths) read the certificate directory lazily,
// during a handshake; by then the engine may open no file (its seccomp
// filter, src/confine/). So: the default file, then every certificate of
// the default directories under its hashed name (`1a2b3c4d.0`, what
// OpenSSL's directory lookup would open), both overridable with
// SSL_CERT_FILE and SSL_CERT_DIR as for OpenSSL. A file that does not parse
// is skipped, as the lazy lookup would skip it.
bool hashed_cert_name(const char* n) {
  size_t i = 0;
  for (; i < 8; ++i)
    if (!std::isxdigit(static_cast<unsigned char>(n[i]))) return false;
  if (n[i++] != '.' || !n[i]) return false;
  for (; n[i]; ++i)
    if (!std::isdigit(static_cast<unsigned char>(n[i]))) return false;
  return true;
}

void load_system_trust(SSL_CTX* ctx) {
  X509_STORE* store = ossl().SSL_CTX_get_cert_store(ctx);
  const char* file = std::getenv(ossl().X509_get_default_cert_file_env());
  if (!file) file = ossl().X509_get_default_cert_file();
  if (::access(file, R_OK) == 0) ossl().X509_STORE_load_file(store, file);
  const char* dirs = std::getenv(ossl().X509_get_default_cert_dir_env());
  if (!dirs) dirs = ossl().X509_get_default_cert_dir();
  std::string_view rest(dirs);
  while (!rest.empty()) {
    size_t colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
    DIR* d = dir.empty() ? nullptr : ::opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d))
      if (hashed_cert_name(e->d_name))
        ossl().X509_STORE_load_file(store, (dir + "/" + e->d_name).c_str());
    ::closedir(d);
  }
  ossl().ERR_clear_error();
}

}  // namespace

Result<std::unique_ptr<Upstream>> Upstream::create(const Config& c) {
  std::unique_ptr<Upstream> u(new Upstream());
  u->uri_ = *c.proxy;
  u->user_ = c.proxy_user;
  u->password_ = c.proxy_password;
  u->insecure_ = c.proxy_insecure;
  if (u->uri_.scheme == ProxyScheme::Https) {
    // The only place OpenSSL is loaded: before the tree starts, and before
    // the engine confines itself.
    if (auto lib = openssl::load(); !lib) return Error{lib.error().message, "proxy: TLS"};
    u->ctx_ = ossl().SSL_CTX_new(ossl().TLS_client_method());
    if (!u->ctx_) return Error{tls_error_text(), "proxy: TLS context"};
    // SSL_CTX_set_min_proto_version, a macro.
    ossl().SSL_CTX_ctrl(u->ctx_, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, nullptr);
    load_system_trust(u->ctx_);
    if (c.proxy_ca &&
        ossl().SSL_CTX_load_verify_locations(u->ctx_, c.proxy_ca->c_str(), nullptr) != 1)
      return Error{tls_error_text(), "proxy: --proxy-ca " + *c.proxy_ca};
    ossl().SSL_CTX_set_verify(u->ctx_, SSL_VERIFY_PEER, u->insecure_ ? insecure_verify : nullptr);
  }
  return u;
}

Upstream::~Upstream() {
  if (ctx_) ossl().SSL_CTX_free(ctx_);
}

Handshake::Handshake(const Upstream& up, const IpAddr& dst, uint16_t port,
                     std::string_view name)
    : up_(up), dst_(dst), name_(name.substr(0, 255)), port_(port) {
  switch (up.uri().scheme) {
    case ProxyScheme::Https:
      state_ = State::TlsConnect;
      break;
    case ProxyScheme::Http:
      state_ = State::SendRequest;
      break;
    case ProxyScheme::Socks5:
      state_ = State::SendRequest;
      break;
  }
  if (up.uri().scheme == ProxyScheme::Socks5) {
    bool auth = up.user().has_value();
    out_ = auth ? std::string("\x05\x01\x02", 3) : std::string("\x05\x01\x00", 3);
    after_send_ = State::SocksMethod;
  } else {
    std::string target = name_.empty() ? format_endpoint(dst, port)
                                       : fmt::format("{}:{}", name_, port);
    out_ = fmt::format("CONNECT {} HTTP/1.1\r\nHost: {}\r\n", target, target);
    if (up.user())
      out_ += fmt::format("Proxy-Authorization: Basic {}\r\n",
                          base64(*up.user() + ":" + up.password().value_or("")));
    out_ += "\r\n";
    after_send_ = State::HttpReply;
  }
}

Handshake::~Handshake() {
  if (ssl_) ossl().SSL_free(ssl_);
}

SSL* Handshake::take_tls() {
  SSL* s = ssl_;
  ssl_ = nullptr;
  return s;
}

Step Handshake::fail(std::string msg) {
  state_ = State::Failed;
  error_ = std::move(msg);
  return Step::Failed;
}

// Maps a failed read/write to a Step (want) or an error; returns 1 when the
// caller should wait (want_ set), -1 when it failed.
int Handshake::io_error(int, int ret) {
  if (ssl_) {
    int e = ossl().SSL_get_error(ssl_, ret);
    if (e == SSL_ERROR_WANT_READ) {
      want_ = Step::WantRead;
      return 1;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      want_ = Step::WantWrite;
      return 1;
    }
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ret == 0)) {
      error_ = "proxy closed the connection during the handshake";
      return -1;
    }
    error_ = "proxy: TLS: " + tls_error_text();
    return -1;
  }
  if (ret == 0) {
    error_ = "proxy closed the connection during the handshake";
    return -1;
  }
  if (errno == EAGAIN || errno == EINTR) {
    want_ = Step::WantRead;
    return 1;
  }
  error_ = fmt::format("proxy: {}", strerror(errno));
  return -1;
}

Step Handshake::send_pending(int fd) {
  while (out_off_ < out_.size()) {
    int n = ssl_ ? ossl().SSL_write(ssl_, out_.data() + out_off_, int(out_.size() - out_off_))
                 : int(send(fd, out_.data() + out_off_, out_.size() - out_off_,
                            MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n <= 0) {
      if (!ssl_ && n < 0 && (errno == EAGAIN || errno == EINTR)) return Step::WantWrite;
      int r = io_error(fd, n);
      if (r > 0) return want_;
      return fail(error_);
    }
    out_off_ += size_t(n);
  }
  out_.clear();
  out_off_ = 0;
  state_ = after_send_;
  return Step::WantRead;
}

int Handshake::read_exact(int fd, uint8_t* buf, size_t n, bool consume) {
  int got = ssl_ ? ossl().SSL_peek(ssl_, buf, int(n))
                 : int(recv(fd, buf, n, MSG_PEEK | MSG_DONTWAIT));
  if (got <= 0) {
    int r = io_error(fd, got);
    return r > 0 ? 0 : -1;
  }
  if (size_t(got) < n) {
    want_ = Step::WantRead;
    // A TLS record may hold less than n; the rest comes with the next one.
    return 0;
  }
  if (consume) {
    int r = ssl_ ? ossl().SSL_read(ssl_, buf, int(n)) : int(recv(fd, buf, n, MSG_DONTWAIT));
    if (r != int(n)) {
      error_ = "proxy: short read";
      return -1;
    }
  }
  return 1;
}

void Handshake::queue_socks_connect() {
  out_.assign("\x05\x01\x00", 3);
  if (!name_.empty()) {
    out_ += '\x03';  // a domain name: its length, then its bytes
    out_ += char(name_.size());
    out_ += name_;
  } else if (dst_.is_v4()) {
    out_ += '\x01';
    out_.append(reinterpret_cast<const char*>(dst_.bytes.data()), 4);
  } else {
    out_ += '\x04';
    out_.append(reinterpret_cast<const char*>(dst_.bytes.data()), 16);
  }
  out_ += char(port_ >> 8);
  out_ += char(port_ & 0xff);
  after_send_ = State::SocksReply;
  state_ = State::SendRequest;
}

Step Handshake::advance(int fd) {
  for (;;) {
    switch (state_) {
      case State::TlsConnect: {
        if (!ssl_) {
          ssl_ = ossl().SSL_new(up_.tls());
          if (!ssl_) return fail("proxy: TLS: " + tls_error_text());
          ossl().SSL_set_fd(ssl_, fd);
          const std::string& host = up_.uri().host;
          if (IpAddr::parse(host)) {
            ossl().X509_VERIFY_PARAM_set1_ip_asc(ossl().SSL_get0_param(ssl_), host.c_str());
          } else {
            // SSL_set_tlsext_host_name, a macro: the name for SNI.
            ossl().SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                            const_cast<char*>(host.c_str()));
            ossl().SSL_set1_host(ssl_, host.c_str());
          }
        }
        int r = ossl().SSL_connect(ssl_);
        if (r == 1) {
          state_ = State::SendRequest;
          continue;
        }
        int e = ossl().SSL_get_error(ssl_, r);
        if (e == SSL_ERROR_WANT_READ) return Step::WantRead;
        if (e == SSL_ERROR_WANT_WRITE) return Step::WantWrite;
        long vr = ossl().SSL_get_verify_result(ssl_);
        if (vr != X509_V_OK)
          return fail(fmt::format("proxy: TLS certificate of {} rejected: {}", up_.uri().host,
                                  ossl().X509_verify_cert_error_string(vr)));
        if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
          return fail("proxy closed the connection during the TLS handshake");
        return fail("proxy: TLS handshake: " + tls_error_text());
      }
      case State::SendRequest: {
        Step s = send_pending(fd);
        if (state_ == State::SendRequest || state_ == State::Failed) return s;
        continue;
      }
      case State::HttpReply: {
        uint8_t buf[kMaxHttpReply];
        int got = ssl_ ? ossl().SSL_peek(ssl_, buf, sizeof buf)
                       : int(recv(fd, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT));
        if (got <= 0) {
          int r = io_error(fd, got);
          if (r > 0) return want_;
          return fail(error_);
        }
        Reply reply = parse_http_reply({reinterpret_cast<const char*>(buf), size_t(got)});
        if (reply.kind == Reply::Kind::NeedMore) return Step::WantRead;
        // Consume exactly the headers; what follows belongs to the tunnel.
        if (reply.length > 0) {
          int r = ssl_ ? ossl().SSL_read(ssl_, buf, int(reply.length))
                       : int(recv(fd, buf, reply.length, MSG_DONTWAIT));
          if (r != int(reply.length)) return fail("proxy: short read of the CONNECT reply");
        }
        if (reply.kind == Reply::Kind::Failed) return fail(std::move(reply.error));
        state_ = State::Done;
        return Step::Done;
      }
      case State::SocksMethod: {
        uint8_t b[2];
        int r = read_exact(fd, b, 2, true);
        if (r < 0) return fail(error_);
        if (r == 0) return want_;
        if (b[0] != 5) return fail("proxy: not a SOCKS5 reply");
        if (b[1] == 0xff) return fail("proxy: SOCKS5 server accepted none of our methods");
        if (b[1] == 0x02) {
          if (!up_.user()) return fail("proxy: SOCKS5 server requires a username and password");
          const std::string& u = *up_.user();
          std::string p = up_.password().value_or("");
          out_.clear();
          out_ += '\x01';
          out_ += char(std::min<size_t>(u.size(), 255));
          out_ += u.substr(0, 255);
          out_ += char(std::min<size_t>(p.size(), 255));
          out_ += p.substr(0, 255);
          after_send_ = State::SocksAuth;
          state_ = State::SendRequest;
          continue;
        }
        if (b[1] != 0x00) return fail("proxy: SOCKS5 server chose an unsupported method");
        queue_socks_connect();
        continue;
      }
      case State::SocksAuth: {
        uint8_t b[2];
        int r = read_exact(fd, b, 2, true);
        if (r < 0) return fail(error_);
        if (r == 0) return want_;
        if (b[1] != 0) return fail("proxy: authentication failed (SOCKS5 username/password rejected)");
        queue_socks_connect();
        continue;
      }
      case State::SocksReply: {
        // Peek at the first 5 bytes (they give the reply's length), then
        // take the whole reply.
        uint8_t b[kMaxSocksReply];
        int r = read_exact(fd, b, 5, false);
        if (r < 0) return fail(error_);
        if (r == 0) return want_;
        Reply head = parse_socks_reply({b, 5});
        if (head.kind == Reply::Kind::Failed) return fail(std::move(head.error));
        r = read_exact(fd, b, head.length, true);
        if (r < 0) return fail(error_);
        if (r == 0) return want_;
        Reply reply = parse_socks_reply({b, head.length});
        if (reply.kind != Reply::Kind::Done) return fail(std::move(reply.error));
        state_ = State::Done;
        return Step::Done;
      }
      case State::Done: return Step::Done;
      case State::Failed: return Step::Failed;
    }
  }
}

TlsPump::TlsPump(SSL* ssl, UniqueFd net) : ssl_(ssl), net_(std::move(net)) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0) {
    local_.reset(sv[0]);
    translator_.reset(sv[1]);
  } else {
    failed_ = true;
  }
}

TlsPump::~TlsPump() {
  if (ssl_) ossl().SSL_free(ssl_);
}

UniqueFd TlsPump::take_translator_end() { return std::move(translator_); }

// A failed tunnel closes the translator's side, so the child sees its
// connection end instead of waiting on it forever.
bool TlsPump::fail() {
  failed_ = true;
  if (local_) shutdown(local_.get(), SHUT_RDWR);
  return false;
}

bool TlsPump::pump() {
  if (failed_) return false;
  bool progress = true;
  while (progress) {
    progress = false;
    // Proxy -> translator.
    if (down_off_ == down_len_ && !net_eof_) {
      int n = ossl().SSL_read(ssl_, down_, sizeof down_);
      if (n > 0) {
        down_off_ = 0;
        down_len_ = size_t(n);
        progress = true;
      } else {
        int e = ossl().SSL_get_error(ssl_, n);
        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && n == 0)) {
          net_eof_ = true;
          shutdown(local_.get(), SHUT_WR);
          progress = true;
        } else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          return fail();
        }
      }
    }
    if (down_off_ < down_len_) {
      ssize_t n = send(local_.get(), down_ + down_off_, down_len_ - down_off_,
                       MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n > 0) {
        down_off_ += size_t(n);
        progress = true;
      } else if (n < 0 && errno != EAGAIN) {
        return fail();
      }
    }
    // Translator -> proxy.
    if (up_off_ == up_len_ && !local_eof_) {
      ssize_t n = recv(local_.get(), up_, sizeof up_, MSG_DONTWAIT);
      if (n > 0) {
        up_off_ = 0;
        up_len_ = size_t(n);
        progress = true;
      } else if (n == 0) {
        local_eof_ = true;
        progress = true;
      } else if (errno != EAGAIN) {
        return fail();
      }
    }
    if (up_off_ < up_len_) {
      int n = ossl().SSL_write(ssl_, up_ + up_off_, int(up_len_ - up_off_));
      if (n > 0) {
        up_off_ += size_t(n);
        progress = true;
      } else {
        int e = ossl().SSL_get_error(ssl_, n);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
          return fail();
        }
      }
    }
    if (local_eof_ && up_off_ == up_len_ && !shut_net_) {
      ossl().SSL_shutdown(ssl_);
      shutdown(net_.get(), SHUT_WR);
      shut_net_ = true;
    }
  }
  return !(net_eof_ && local_eof_ && down_off_ == down_len_ && up_off_ == up_len_);
}

}  // namespace cf::proxy
