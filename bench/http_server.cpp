// bench/http_server.cpp — the HTTP server behind the connection-rate workload.
//
// Theory of operation
//   One thread, one epoll set, non-blocking sockets, level-triggered. The
//   listening socket is drained with accept4() on every readiness event; each
//   accepted connection reads until the end of the request head ("\r\n\r\n"),
//   answers one small fixed response with "Connection: close", and closes. The
//   server closes first, so TIME_WAIT stays on the server side and the client
//   side (the sandbox's host sockets) never runs out of ports.
//
//   It exists because wrk with `Connection: close` measures how fast a sandbox
//   opens and tears down TCP connections; a slow server (python's http.server)
//   would measure the server instead. It serves only the benchmark, never
//   anything else: it binds the address it is given (a documentation address
//   inside the benchmark's own network namespace).
//
// Limits
//   Request heads larger than 8 KiB are answered 431 and closed. A response
//   that does not fit the socket buffer in one write (never, at 100-odd bytes)
//   is treated as a failed connection and closed. No timeouts: the benchmark
//   kills the server when it is done.
//
// Usage: http_server ADDRESS PORT   (prints "ready" on stdout once listening)

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\n"
    "Content-Type: text/plain\r\n"
    "Content-Length: 13\r\n"
    "Connection: close\r\n"
    "\r\n"
    "hello, bench\n";

constexpr std::string_view kTooLarge =
    "HTTP/1.1 431 Request Header Fields Too Large\r\n"
    "Content-Length: 0\r\n"
    "Connection: close\r\n"
    "\r\n";

constexpr size_t kMaxHead = 8192;

// Bytes of the request head read so far, per connection fd.
using PendingHeads = std::unordered_map<int, std::string>;

int open_listener(const char* address, int port) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(port));
    if (inet_pton(AF_INET, address, &sa.sin_addr) != 1) {
        std::fprintf(stderr, "http_server: not an IPv4 address: %s\n", address);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::perror("http_server: socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        std::perror("http_server: bind");
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) != 0) {
        std::perror("http_server: listen");
        close(fd);
        return -1;
    }
    return fd;
}

void finish(int epfd, PendingHeads& heads, int fd) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, nullptr);
    heads.erase(fd);
    close(fd);
}

// Reads what the connection has; answers and closes once the head is complete.
void serve_readable(int epfd, PendingHeads& heads, int fd) {
    std::string& head = heads[fd];
    char buf[4096];
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            head.append(buf, static_cast<size_t>(n));
            if (head.find("\r\n\r\n") != std::string::npos) {
                (void)!write(fd, kResponse.data(), kResponse.size());
                finish(epfd, heads, fd);
                return;
            }
            if (head.size() > kMaxHead) {
                (void)!write(fd, kTooLarge.data(), kTooLarge.size());
                finish(epfd, heads, fd);
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        finish(epfd, heads, fd);  // EOF before a full head, or an error
        return;
    }
}

void accept_all(int epfd, int listener) {
    for (;;) {
        int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;  // EAGAIN, or a transient error: wait for the next event
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.fd = fd;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) close(fd);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: http_server ADDRESS PORT\n");
        return 2;
    }
    int listener = open_listener(argv[1], std::atoi(argv[2]));
    if (listener < 0) return 1;
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        std::perror("http_server: epoll_create1");
        return 1;
    }
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.fd = listener;
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &lev);
    std::printf("ready\n");
    std::fflush(stdout);

    PendingHeads heads;
    epoll_event events[256];
    for (;;) {
        int n = epoll_wait(epfd, events, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            std::perror("http_server: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; ++i) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_all(epfd, listener);
            } else {
                serve_readable(epfd, heads, fd);
            }
        }
    }
}
