// --learn FILE: render the learnt profile and write it from a process of its
// own. See learn.hpp for the theory of operation.
#include "learn/learn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fmt/format.h>
#include <set>
#include <vector>

#include <toml++/toml.h>

#include "common/text.hpp"
#include "config/profile.hpp"
#include "config/settings.hpp"

namespace cf::learn {
namespace {

using config::Setting;

// The largest Ledger message the writer takes: 2 x 4096 entries of at most
// 270 bytes fit many times over.
constexpr size_t kMaxMessage = 16u << 20;
// The largest answer the engine reads back.
constexpr size_t kMaxAnswer = 64u << 10;
// How long the engine waits for the writer's answer.
constexpr int kAnswerWaitS = 30;

// The run's settings the learnt profile carries (learn.hpp).
bool carried(std::string_view key) {
  static const std::set<std::string_view> keys{
      "dns",       "hosts_file", "proxy",      "proxy_user",     "proxy_insecure",
      "proxy_ca",  "proxy_dns",  "proxy_only", "no_sniff_names", "allow_host_loopback"};
  return keys.count(key) != 0;
}

// The counts in `text`'s `# N flows` comments, by entry, for the array
// `key` written one entry per line (as render() writes it).
std::map<std::string, uint64_t> counts_in(std::string_view text, std::string_view key) {
  std::map<std::string, uint64_t> out;
  bool in = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    size_t b = line.find_first_not_of(" \t");
    if (b == std::string_view::npos) continue;
    line = line.substr(b);
    if (!in) {
      std::string_view after = line.starts_with(key) ? line.substr(key.size()) : std::string_view();
      size_t eq = after.find_first_not_of(" \t");
      if (eq != after.npos && after[eq] == '=' && after.find('[') != after.npos &&
          after.find(']') == after.npos)
        in = true;
      continue;
    }
    if (line.front() == ']') {
      in = false;
      continue;
    }
    if (line.front() != '"') continue;
    size_t close = line.find('"', 1);
    if (close == line.npos) continue;
    std::string_view entry = line.substr(1, close - 1);
    if (entry.find('\\') != entry.npos) continue;
    size_t hash = line.find('#', close);
    if (hash == line.npos) continue;
    std::string_view comment = line.substr(hash + 1);
    comment = comment.substr(std::min(comment.size(), comment.find_first_not_of(" \t")));
    uint64_t n = 0;
    size_t i = 0;
    while (i < comment.size() && comment[i] >= '0' && comment[i] <= '9' && i < 19)
      n = n * 10 + uint64_t(comment[i++] - '0');
    if (i == 0 || !comment.substr(i).starts_with(" flow")) continue;
    out[std::string(entry)] += n;
  }
  return out;
}

// Names in the order of their labels read from the right.
bool name_before(const std::string& a, const std::string& b) {
  auto labels = [](const std::string& s) {
    std::vector<std::string_view> v;
    std::string_view rest = s;
    while (true) {
      size_t dot = rest.rfind('.');
      if (dot == rest.npos) {
        v.push_back(rest);
        break;
      }
      v.push_back(rest.substr(dot + 1));
      rest = rest.substr(0, dot);
    }
    return v;
  };
  return labels(a) < labels(b);
}

bool cidr_before(const std::string& a, const std::string& b) {
  auto ca = Cidr::parse(a), cb = Cidr::parse(b);
  if (!ca || !cb) return a < b;
  return std::tie(ca->addr, ca->prefix) < std::tie(cb->addr, cb->prefix);
}

std::string array_with_counts(std::string_view key, std::vector<std::string> entries,
                              const std::map<std::string, uint64_t>& counts,
                              bool (*before)(const std::string&, const std::string&)) {
  std::sort(entries.begin(), entries.end(), before);
  std::string out = fmt::format("{} = [\n", key);
  for (const std::string& e : entries) {
    auto it = counts.find(e);
    uint64_t n = it == counts.end() ? 0 : it->second;
    out += fmt::format("  {},  # {} flow{}\n", config::toml_quote(e), n, n == 1 ? "" : "s");
  }
  return out + "]\n";
}

// Entries of the file's own list and of the Ledger, with their counts added.
template <class T>
std::vector<std::string> merged(const std::vector<T>& own, const Ledger::Counts& learnt,
                                std::map<std::string, uint64_t>& counts) {
  std::set<std::string> all;
  for (const T& v : own) {
    if constexpr (std::is_same_v<T, std::string>) all.insert(v);
    else all.insert(v.str());
  }
  for (const auto& [k, n] : learnt) {
    all.insert(k);
    counts[k] += n;
  }
  return {all.begin(), all.end()};
}

}  // namespace

Result<std::string> render(const Config& run, const Ledger& ledger,
                           const std::optional<std::string>& existing, const std::string& path) {
  config::OwnKeys own;
  std::map<std::string, uint64_t> domain_counts, exact_counts, cidr_counts;
  if (existing) {
    auto loaded = config::load_profile_own(*existing, path);
    if (!loaded) return loaded.error();
    own = std::move(*loaded);
    domain_counts = counts_in(*existing, "allow_domains");
    exact_counts = counts_in(*existing, "allow_domains_exact");
    cidr_counts = counts_in(*existing, "allow_cidrs");
  }
  const Config own_cfg = config::apply(own.layer);
  const Config defaults;
  Config wanted = run;
  if (ledger.host_loopback()) wanted.allow_host_loopback = true;
  // The file's own value of a key as TOML: a path exactly as the file wrote
  // it (a relative `extends` or hosts_file stays relative), else its value.
  toml::table raw;
  if (existing) {
    try {
      raw = toml::parse(*existing, path);
    } catch (const toml::parse_error&) {
      // (load_profile_own parsed it above: not reached.)
    }
  }
  auto own_value = [&](const Setting& s) -> std::optional<std::string> {
    if (s.path)
      if (auto v = raw[s.key].value<std::string>()) return config::toml_quote(*v);
    return s.dump(own_cfg);
  };

  std::string out =
      "# childflow profile learnt with --learn: it allows what the command tree used\n"
      "# and denies everything else. Replay: childflow --profile FILE -- COMMAND\n"
      "# `# N flows`: how many flows each entry carried in the learning runs;\n"
      "# --learn FILE merges another run into this file (other comments are not kept).\n";
  if (ledger.unreadable())
    out += fmt::format(
        "# The learning run let {} connection(s) through whose first bytes started like TLS\n"
        "# or HTTP/1 but named no readable host: a replay under these domain rules denies\n"
        "# them (unreadable_name). Add no_sniff_names = true if they must work.\n",
        ledger.unreadable());
  if (own.extends)
    out += fmt::format("extends = {}\n",
                       config::toml_quote(raw["extends"].value<std::string>().value_or(*own.extends)));

  const size_t password_field = config::field_offset(&Config::proxy_password);
  bool password_done = false;
  for (const Setting& s : config::settings()) {
    if (s.key.empty() || !s.dump) continue;
    if (s.key == "default_policy") {
      out += "default_policy = \"deny\"\n";
    } else if (s.key == "allow_domains") {
      auto names = merged(own_cfg.allow_domains, ledger.domains(), domain_counts);
      if (!names.empty()) out += array_with_counts(s.key, names, domain_counts, name_before);
    } else if (s.key == "allow_domains_exact") {
      auto names = merged(own_cfg.allow_domains_exact, ledger.exact(), exact_counts);
      if (!names.empty()) out += array_with_counts(s.key, names, exact_counts, name_before);
    } else if (s.key == "allow_cidrs") {
      auto cidrs = merged(own_cfg.allow_cidrs, ledger.cidrs(), cidr_counts);
      if (!cidrs.empty()) out += array_with_counts(s.key, cidrs, cidr_counts, cidr_before);
    } else if (s.field == password_field) {
      // proxy_password and proxy_password_file, decided once.
      if (password_done) continue;
      password_done = true;
      if (run.proxy_password_file) {
        out += fmt::format("proxy_password_file = {}\n", config::toml_quote(*run.proxy_password_file));
      } else if (own.layer.has_field(password_field) &&
                 (!run.proxy_password || run.proxy_password == own_cfg.proxy_password)) {
        // The file's own, as it wrote it (a file, or the password it holds).
        for (const Setting& r : config::settings())
          if (r.field == password_field && !r.key.empty() && r.dump(own_cfg))
            if (auto v = own_value(r)) out += fmt::format("{} = {}\n", r.key, *v);
      } else if (run.proxy_password) {
        out += "# proxy_password is not written here: give it with CHILDFLOW_PROXY_PASSWORD\n"
               "# or proxy_password_file = \"FILE\"\n";
      }
    } else if (carried(s.key) && s.dump(wanted) != s.dump(defaults)) {
      if (auto v = s.dump(wanted)) out += fmt::format("{} = {}\n", s.key, *v);
    } else if (own.layer.has(s)) {
      if (auto v = own_value(s)) out += fmt::format("{} = {}\n", s.key, *v);
    }
  }

  // What is written must load back (and, merged or not, hold its entries).
  auto check = config::load_profile_own(out, path);
  if (!check)
    return Error{fmt::format("the learnt profile would not load ({})", check.error().message)};
  return out;
}

namespace {

Status write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error("write");
    data.remove_prefix(size_t(n));
  }
  return {};
}

// Reads to end of file, at most `max` bytes; nullopt on an error or more.
std::optional<std::string> read_all(int fd, size_t max) {
  std::string out;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return std::nullopt;
    if (n == 0) return out;
    if (out.size() + size_t(n) > max) return std::nullopt;
    out.append(buf, size_t(n));
  }
}

// Steps 1-3 of the theory of operation.
Result<std::string> write_profile(const Config& run, const Ledger& ledger) {
  // A symbolic link is followed: its target is the profile replaced.
  std::string path = *run.learn;
  std::error_code ec;
  if (std::filesystem::is_symlink(path, ec)) {
    auto target = std::filesystem::weakly_canonical(path, ec);
    if (!ec) path = target.string();
  }
  std::optional<std::string> existing;
  mode_t mode = 0644;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    UniqueFd in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (!in) return errno_error(fmt::format("cannot read {}", path));
    existing = read_all(in.get(), 1u << 20);
    if (!existing) return Error{fmt::format("cannot read {} (or it is larger than 1 MiB)", path)};
    mode = st.st_mode & 07777;
  } else if (errno != ENOENT) {
    return errno_error(fmt::format("cannot look at {}", path));
  }
  Config at = run;
  at.learn = path;
  auto text = render(at, ledger, existing, path);
  if (!text) return text.error();

  std::string tmp = fmt::format("{}.{}.tmp", path, ::getpid());
  // A new file gets 0666 less the umask, as any file the user creates; a
  // replaced one keeps its mode and, where we may, its owner.
  UniqueFd out{::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, existing ? 0600 : 0666)};
  if (!out) return errno_error(fmt::format("cannot create {}", tmp));
  Status ok = write_all(out.get(), *text);
  if (ok && existing) {
    if (::fchmod(out.get(), mode) != 0) ok = errno_error(fmt::format("chmod {}", tmp));
    if (st.st_uid != ::geteuid() || st.st_gid != ::getegid())
      if (::fchown(out.get(), st.st_uid, st.st_gid) != 0) {
        // Best effort: only root may give a file away; the mode is kept.
      }
  }
  if (ok && ::fsync(out.get()) != 0) ok = errno_error(fmt::format("fsync {}", tmp));
  out.reset();
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0)
    ok = errno_error(fmt::format("rename {} to {}", tmp, path));
  if (!ok) {
    ::unlink(tmp.c_str());
    return ok.error();
  }
  // The rename itself is durable once the directory is.
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (UniqueFd d{::open(dir.empty() ? "/" : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)})
    ::fsync(d.get());
  const size_t names = ledger.domains().size() + ledger.exact().size();
  return fmt::format("{} {} name{} and {} address{} from {} flow{}", existing ? "merged" : "wrote",
                     names, names == 1 ? "" : "s",
                     ledger.cidrs().size(), ledger.cidrs().size() == 1 ? "" : "es",
                     ledger.flows(), ledger.flows() == 1 ? "" : "s");
}

// The writer process: never returns.
[[noreturn]] void writer_main(int sock, pid_t parent, const Config& run) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != parent) ::_exit(0);
  // Like the engine: nothing may ptrace it or read its memory (it holds a
  // copy of the Config, proxy password included), and it gains nothing.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE}) ::signal(s, SIG_IGN);
  // A process group of its own: the tree shares childflow's, and a
  // `kill(0, ...)` from it must not reach the writer.
  ::setpgid(0, 0);
  // Nothing of the run's but the socket: not the flow log, not the capture.
  if (sock != 3) {
    if (::dup2(sock, 3) < 0) ::_exit(1);
    sock = 3;
  }
  ::close_range(4, ~0U, 0);
  auto message = read_all(sock, kMaxMessage);
  if (!message || !message->ends_with("end\n")) ::_exit(0);  // the run stopped early
  std::string answer;
  auto ledger = Ledger::parse(*message);
  if (!ledger) {
    answer = "error: " + ledger.error().str();
  } else {
    auto wrote = write_profile(run, *ledger);
    answer = wrote ? "ok: " + *wrote : "error: " + wrote.error().str();
  }
  (void)write_all(sock, one_line(answer));
  ::_exit(0);
}

}  // namespace

Result<Writer> Writer::start(const Config& run) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    return errno_error("learn: socketpair");
  UniqueFd mine{sv[0]}, theirs{sv[1]};
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return errno_error("learn: fork");
  if (pid == 0) {
    mine.reset();
    writer_main(theirs.get(), parent, run);
  }
  return Writer(std::move(mine), pid);
}

Writer::Writer(Writer&& o) noexcept
    : sock_(std::move(o.sock_)), pid_(std::exchange(o.pid_, -1)) {}

Writer::~Writer() {
  sock_.reset();
  reap();
}

void Writer::reap() {
  if (pid_ <= 0) return;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

Result<std::string> Writer::finish(const Ledger& ledger) {
  if (!sock_) return Error{"the writer is gone", "learn"};
  Status sent = write_all(sock_.get(), ledger.serialize());
  ::shutdown(sock_.get(), SHUT_WR);
  // Bounded: a writer stuck on a dead file system must not hold the run's
  // exit. Past the wait it is left to die with childflow (PR_SET_PDEATHSIG;
  // the confined engine may signal no other process).
  timeval wait{kAnswerWaitS, 0};
  ::setsockopt(sock_.get(), SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
  auto answer = sent ? read_all(sock_.get(), kMaxAnswer) : std::nullopt;
  const bool timed_out = !answer && (errno == EAGAIN || errno == EWOULDBLOCK);
  sock_.reset();
  if (timed_out) {
    pid_ = -1;
    return Error{fmt::format("the process writing the profile gave no answer within {} s",
                             kAnswerWaitS),
                 "learn"};
  }
  reap();
  if (!answer || answer->empty())
    return Error{"the process writing the profile ended without an answer", "learn"};
  if (answer->starts_with("ok: ")) return answer->substr(4);
  if (answer->starts_with("error: ")) return Error{answer->substr(7), "learn"};
  return Error{*answer, "learn"};
}

}  // namespace cf::learn
