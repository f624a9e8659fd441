#include "agent.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace vmlat::agent {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {

void log(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "vmlat-agent: %s\n", buf);
  std::fflush(stderr);
}

std::string errno_text(int err) { return std::strerror(err); }

std::string read_small_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\0'))
    s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

std::int64_t clock_ns(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

std::string dump(const json& j) {
  // Child output is arbitrary bytes: never throw on invalid UTF-8.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool is_virtio_port_device(const struct stat& st) {
  if (!S_ISCHR(st.st_mode)) return false;
  char link[256];
  const std::string sys = "/sys/dev/char/" + std::to_string(major(st.st_rdev)) + ":" +
                          std::to_string(minor(st.st_rdev)) + "/subsystem";
  const ssize_t n = readlink(sys.c_str(), link, sizeof link - 1);
  if (n <= 0) return false;
  link[n] = '\0';
  const std::string_view v(link);
  return v.size() >= 12 && v.substr(v.size() - 12) == "virtio-ports";
}

// Optional non-negative integer field; throws std::invalid_argument on a wrong type.
std::optional<std::int64_t> opt_uint(const json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0)
    throw std::invalid_argument(std::string("'") + key + "' must be a non-negative integer");
  return it->get<std::int64_t>();
}

std::int64_t require_id(const json& req) {
  auto it = req.find("id");
  if (it == req.end() || !it->is_number_integer())
    throw std::invalid_argument("'id' must be an integer");
  return it->get<std::int64_t>();
}

bool has_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

}  // namespace

std::string find_virtio_port(const std::string& sysfs_root, const std::string& name) {
  DIR* d = opendir(sysfs_root.c_str());
  if (d == nullptr) return {};
  std::string found;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string entry = e->d_name;
    if (trim(read_small_file(sysfs_root + "/" + entry + "/name")) == name) {
      found = "/dev/" + entry;
      break;
    }
  }
  closedir(d);
  return found;
}

Agent::Agent(Options opts) : opts_(std::move(opts)) {}

Agent::~Agent() {
  if (port_fd_ >= 0) close(port_fd_);
  if (signal_fd_ >= 0) close(signal_fd_);
}

// ------------------------------------------------------------------ port

bool Agent::open_port() {
  const auto deadline = Clock::now() + std::chrono::milliseconds(opts_.port_timeout_ms);
  bool announced = false;
  for (;;) {
    std::string path = opts_.port;
    if (path.empty()) path = find_virtio_port("/sys/class/virtio-ports", opts_.port_name);
    struct stat st{};
    if (!path.empty() && stat(path.c_str(), &st) == 0) {
      port_path_ = path;
      if (S_ISSOCK(st.st_mode)) {
        kind_ = PortKind::Socket;
        port_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        if (path.size() >= sizeof addr.sun_path) {
          log("socket path too long: %s", path.c_str());
          return false;
        }
        std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
        if (port_fd_ < 0 || connect(port_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
          log("cannot connect to %s: %s", path.c_str(), errno_text(errno).c_str());
          return false;
        }
        fcntl(port_fd_, F_SETFL, fcntl(port_fd_, F_GETFL) | O_NONBLOCK);
      } else {
        port_fd_ = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (port_fd_ < 0) {
          log("cannot open %s: %s", path.c_str(), errno_text(errno).c_str());
          return false;
        }
        if (is_virtio_port_device(st)) {
          kind_ = PortKind::VirtioPort;
        } else if (isatty(port_fd_)) {
          kind_ = PortKind::Tty;
          termios t{};
          if (tcgetattr(port_fd_, &t) == 0) {
            cfmakeraw(&t);
            tcsetattr(port_fd_, TCSANOW, &t);
          }
        } else {
          kind_ = PortKind::Other;
        }
      }
      static const char* const kinds[] = {"virtio-serial port", "unix socket", "tty", "file"};
      log("using %s %s", kinds[static_cast<int>(kind_)], port_path_.c_str());
      return true;
    }
    if (Clock::now() >= deadline) {
      if (opts_.port.empty()) {
        std::string seen;
        if (DIR* d = opendir("/sys/class/virtio-ports")) {
          while (dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') continue;
            seen += std::string(" ") + e->d_name + "=" +
                    trim(read_small_file(std::string("/sys/class/virtio-ports/") + e->d_name + "/name"));
          }
          closedir(d);
        }
        log("no virtio-serial port named %s after %d ms (ports:%s)", opts_.port_name.c_str(),
            opts_.port_timeout_ms, seen.empty() ? " none" : seen.c_str());
      } else {
        log("port %s did not appear after %d ms", opts_.port.c_str(), opts_.port_timeout_ms);
      }
      return false;
    }
    if (!announced) {
      log("waiting for port %s", opts_.port.empty() ? opts_.port_name.c_str() : opts_.port.c_str());
      announced = true;
    }
    std::this_thread::sleep_for(20ms);
  }
}

// A virtio-serial port reports POLLHUP (and reads return 0) while no host
// program is connected to the chardev; writes would block until one is.
void Agent::check_connection() {
  pollfd p{port_fd_, POLLIN | POLLOUT, 0};
  if (poll(&p, 1, 0) < 0) return;
  if ((p.revents & POLLHUP) == 0) on_connected();
}

void Agent::on_connected() {
  connected_ = true;
  log("host connected");
  // out_offset_ is 0 here: a partly written frame is dropped on disconnect.
  out_.push_front(frame::encode("hello", dump(hello())));
  ++frames_out_;
}

void Agent::on_disconnected() {
  connected_ = false;
  decoder_.finish();
  for (const auto& e : decoder_.take_errors()) log("host frame error: %s", e.c_str());
  if (out_offset_ > 0 && !out_.empty()) {
    out_.pop_front();
    out_offset_ = 0;
  }
  log("host disconnected; %zu frame(s) held for the next connection", out_.size());
}

void Agent::read_port() {
  char buf[65536];
  for (;;) {
    const ssize_t n = read(port_fd_, buf, sizeof buf);
    if (n > 0) {
      decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      while (auto f = decoder_.next()) {
        ++frames_in_;
        handle_frame(*f);
        if (stopping_) return;  // nothing after `shutdown` is served
      }
      for (const auto& e : decoder_.take_errors()) {
        log("bad frame from host: %s", e.c_str());
        send_error("bad frame: " + e);
      }
      continue;
    }
    if (n == 0) {
      if (kind_ == PortKind::VirtioPort) {
        if (connected_) on_disconnected();
      } else {
        log("host closed %s", port_path_.c_str());
        stopping_ = true;
        exit_code_ = 3;
      }
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    log("read %s: %s", port_path_.c_str(), errno_text(errno).c_str());
    if (kind_ == PortKind::VirtioPort) {
      if (connected_) on_disconnected();
      std::this_thread::sleep_for(20ms);
    } else {
      stopping_ = true;
      exit_code_ = 3;
    }
    return;
  }
}

void Agent::write_port() {
  while (!out_.empty()) {
    const std::string& f = out_.front();
    const ssize_t n = write(port_fd_, f.data() + out_offset_, f.size() - out_offset_);
    if (n > 0) {
      out_offset_ += static_cast<std::size_t>(n);
      if (out_offset_ == f.size()) {
        out_.pop_front();
        out_offset_ = 0;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    log("write %s: %s", port_path_.c_str(), n < 0 ? errno_text(errno).c_str() : "wrote nothing");
    if (kind_ == PortKind::VirtioPort) {
      if (connected_) on_disconnected();
    } else {
      stopping_ = true;
      exit_code_ = 3;
    }
    return;
  }
}

void Agent::flush_blocking(std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  while (!out_.empty() && (connected_ || kind_ != PortKind::VirtioPort)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      log("gave up flushing %zu frame(s) to the host", out_.size());
      return;
    }
    pollfd p{port_fd_, POLLOUT, 0};
    const int r = poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno != EINTR) return;
    if (r > 0) {
      if ((p.revents & (POLLHUP | POLLERR)) != 0 && (p.revents & POLLOUT) == 0) return;
      write_port();
      if (stopping_ && exit_code_ != 0) return;
    }
  }
}

// ------------------------------------------------------------------ messages

void Agent::queue(const std::string& kind, const json& payload) {
  std::string frame;
  try {
    frame = frame::encode(kind, dump(payload));
  } catch (const std::exception& e) {
    log("cannot encode '%s' frame: %s", kind.c_str(), e.what());
    json err = {{"message", std::string("cannot encode reply: ") + e.what()}};
    if (payload.is_object() && payload.contains("id")) err["id"] = payload["id"];
    frame = frame::encode("error", dump(err));
  }
  out_.push_back(std::move(frame));
  ++frames_out_;
}

void Agent::send_error(const std::string& message, const json* id) {
  json e = {{"message", message}};
  if (id != nullptr) e["id"] = *id;
  queue("error", e);
}

json Agent::hello() const {
  utsname u{};
  uname(&u);
  const std::string rt = trim(read_small_file("/sys/kernel/realtime"));
  json h = {
      {"agent_version", kAgentVersion},
      {"kernel_release", u.release},
      {"uname_v", u.version},
      {"machine", u.machine},
      {"cmdline", trim(read_small_file("/proc/cmdline"))},
      {"nproc", sysconf(_SC_NPROCESSORS_ONLN)},
      {"realtime", rt == "1" ? 1 : 0},
      {"boot_ns", clock_ns(CLOCK_BOOTTIME)},
      {"pid", static_cast<int>(getpid())},
      {"port", port_path_},
      {"probe", access("/usr/bin/vmlat-probe", X_OK) == 0},
  };
  const std::string rt_runtime = trim(read_small_file("/proc/sys/kernel/sched_rt_runtime_us"));
  if (!rt_runtime.empty()) {
    try {
      h["sched_rt_runtime_us"] = std::stoll(rt_runtime);
    } catch (const std::exception&) {
    }
  }
  return h;
}

void Agent::handle_frame(const frame::Frame& f) {
  json req = json::parse(f.payload, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object()) {
    send_error("'" + f.kind + "' payload is not a JSON object");
    return;
  }
  const json* id = nullptr;
  if (auto it = req.find("id"); it != req.end()) id = &*it;
  try {
    if (f.kind == "exec") {
      handle_exec(req);
    } else if (f.kind == "stop") {
      handle_stop(req);
    } else if (f.kind == "read") {
      handle_read(req);
    } else if (f.kind == "shutdown") {
      handle_shutdown(req);
    } else if (f.kind == "ping") {
      json pong = {{"boot_ns", clock_ns(CLOCK_BOOTTIME)}};
      if (id != nullptr) pong["id"] = *id;
      queue("pong", pong);
    } else {
      send_error("unknown frame kind '" + f.kind + "'", id);
    }
  } catch (const std::exception& e) {
    send_error(f.kind + ": " + e.what(), id);
  }
}

void Agent::handle_exec(const json& req) {
  const std::int64_t id = require_id(req);
  const json id_json = id;
  if (by_id_.count(id) != 0) {
    send_error("id " + std::to_string(id) + " is still running", &id_json);
    return;
  }
  auto argv_it = req.find("argv");
  if (argv_it == req.end() || !argv_it->is_array() || argv_it->empty())
    throw std::invalid_argument("'argv' must be a non-empty array of strings");
  std::vector<std::string> args;
  for (const auto& a : *argv_it) {
    if (!a.is_string()) throw std::invalid_argument("'argv' must be a non-empty array of strings");
    args.push_back(a.get<std::string>());
    if (has_nul(args.back())) throw std::invalid_argument("'argv' strings must not contain NUL");
  }
  const auto timeout_ms = opt_uint(req, "timeout_ms");
  const auto grace_ms = opt_uint(req, "grace_ms");
  bool background = false;
  if (auto it = req.find("background"); it != req.end() && !it->is_null()) {
    if (!it->is_boolean()) throw std::invalid_argument("'background' must be a boolean");
    background = it->get<bool>();
  }
  std::string cwd;
  if (auto it = req.find("cwd"); it != req.end() && !it->is_null()) {
    if (!it->is_string()) throw std::invalid_argument("'cwd' must be a string");
    cwd = it->get<std::string>();
  }
  // Environment: the agent's, with "env" entries added or replaced.
  std::map<std::string, std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (auto it = req.find("env"); it != req.end() && !it->is_null()) {
    if (!it->is_object()) throw std::invalid_argument("'env' must be an object of strings");
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string() || k.empty() || k.find('=') != std::string::npos || has_nul(k) ||
          has_nul(v.get<std::string>()))
        throw std::invalid_argument("'env' must map names to strings");
      env[k] = v.get<std::string>();
    }
  }

  mkdir(opts_.workdir.c_str(), 0700);
  Child c;
  c.id = id;
  c.background = background;
  c.out_path = opts_.workdir + "/" + std::to_string(id) + ".out";
  c.err_path = opts_.workdir + "/" + std::to_string(id) + ".err";
  const int out_fd = open(c.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err_fd = open(c.err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int status_pipe[2] = {-1, -1};
  auto close_all = [&] {
    for (int fd : {out_fd, err_fd, null_fd, status_pipe[0], status_pipe[1]})
      if (fd >= 0) close(fd);
  };
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || pipe2(status_pipe, O_CLOEXEC) != 0) {
    const int err = errno;
    close_all();
    send_error("cannot set up process: " + errno_text(err), &id_json);
    return;
  }

  // Everything the child needs is prepared before fork().
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> cenv;
  for (auto& s : env_strings) cenv.push_back(s.data());
  cenv.push_back(nullptr);
  // execvpe() searches the PATH of the new environment.
  const char* const file = cargv[0];

  c.started = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close_all();
    send_error("fork: " + errno_text(err), &id_json);
    return;
  }
  if (pid == 0) {
    // Child: own process group (so `stop` reaches all of it), default signals.
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP}) signal(s, SIG_DFL);
    dup2(null_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    int err = 0;
    char stage = 'e';
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) {
      err = errno;
      stage = 'c';
    } else {
      execvpe(file, cargv.data(), cenv.data());
      err = errno;
    }
    char msg[2 + sizeof(int)];
    msg[0] = stage;
    std::memcpy(msg + 1, &err, sizeof err);
    ssize_t ignored = write(status_pipe[1], msg, 1 + sizeof err);
    (void)ignored;
    _exit(127);
  }
  setpgid(pid, pid);  // also from the parent, so kill(-pid) works right away
  close(status_pipe[1]);
  status_pipe[1] = -1;
  char msg[1 + sizeof(int)];
  ssize_t n;
  do {
    n = read(status_pipe[0], msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  close(status_pipe[0]);
  status_pipe[0] = -1;
  close(out_fd);
  close(err_fd);
  close(null_fd);

  if (n == static_cast<ssize_t>(sizeof msg)) {
    int err = 0;
    std::memcpy(&err, msg + 1, sizeof err);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    unlink(c.out_path.c_str());
    unlink(c.err_path.c_str());
    const std::string what = std::string(msg[0] == 'c' ? "chdir " + cwd : "exec " + args[0]) + ": " +
                             errno_text(err);
    log("id %lld: %s", static_cast<long long>(id), what.c_str());
    queue("exit", json{{"id", id},
                       {"pid", static_cast<int>(pid)},
                       {"exit_code", 127},
                       {"signal", 0},
                       {"timed_out", false},
                       {"stopped", false},
                       {"background", background},
                       {"duration_ms", 0},
                       {"stdout", ""},
                       {"stderr", what + "\n"},
                       {"stdout_truncated", false},
                       {"stderr_truncated", false},
                       {"error", what}});
    return;
  }

  c.pid = pid;
  if (timeout_ms && *timeout_ms > 0) c.deadline = c.started + std::chrono::milliseconds(*timeout_ms);
  c.term_grace_ms = grace_ms ? static_cast<int>(std::min<std::int64_t>(*grace_ms, 3600000))
                             : opts_.default_term_grace_ms;
  children_[pid] = c;
  by_id_[id] = pid;
  if (background) queue("started", json{{"id", id}, {"pid", static_cast<int>(pid)}});
}

void Agent::handle_stop(const json& req) {
  const std::int64_t id = require_id(req);
  const json id_json = id;
  const auto grace = opt_uint(req, "grace_ms");
  auto it = by_id_.find(id);
  if (it == by_id_.end()) {
    send_error("no running process with id " + std::to_string(id), &id_json);
    return;
  }
  int first_signal = SIGTERM;
  if (auto sig = req.find("signal"); sig != req.end()) {
    if (*sig == "INT") first_signal = SIGINT;
    else if (*sig != "TERM") {
      send_error("stop: \"signal\" must be \"TERM\" or \"INT\"", &id_json);
      return;
    }
  }
  Child& c = children_.at(it->second);
  c.stop_requested = true;
  terminate_group(c, grace ? static_cast<int>(std::min<std::int64_t>(*grace, 3600000)) : opts_.default_term_grace_ms,
                  first_signal);
}

void Agent::handle_read(const json& req) {
  const std::int64_t id = require_id(req);
  const json id_json = id;
  const auto max = opt_uint(req, "max_bytes");
  auto it = by_id_.find(id);
  if (it == by_id_.end()) {
    // Ended (its `exit`, with the rest of its output, is on its way or was sent).
    send_error("no running process with id " + std::to_string(id), &id_json);
    return;
  }
  Child& c = children_.at(it->second);
  // At least 4 bytes, so that a whole UTF-8 character always fits.
  const std::size_t limit = std::max<std::size_t>(
      4, std::min<std::size_t>(max && *max > 0 ? static_cast<std::size_t>(*max) : opts_.output_cap, opts_.output_cap));
  const off_t from = c.out_read;
  std::string data = read_stdout(c, limit);
  queue("output", json{{"id", id}, {"offset", static_cast<std::int64_t>(from)}, {"stdout", std::move(data)}});
}

std::string Agent::read_stdout(Child& c, std::size_t max) {
  bool truncated = false;
  std::string data = read_capped(c.out_path, &truncated, c.out_read);
  if (data.size() > max) data.resize(max);
  // Keep a multi-byte character whole for the next read: the payload is
  // JSON text, and a split character would be replaced.
  std::size_t end = data.size();
  std::size_t lead = end;
  while (lead > 0 && end - lead < 3 && (static_cast<unsigned char>(data[lead - 1]) & 0xC0) == 0x80) --lead;
  if (lead > 0) {
    const auto c0 = static_cast<unsigned char>(data[lead - 1]);
    const std::size_t need = c0 >= 0xF0 ? 4 : c0 >= 0xE0 ? 3 : c0 >= 0xC0 ? 2 : 1;
    if (c0 >= 0xC0 && end - (lead - 1) < need) end = lead - 1;
  }
  data.resize(end);
  c.out_read += static_cast<off_t>(data.size());
  constexpr off_t kBlock = 4096;
  const off_t whole = c.out_read / kBlock * kBlock;
  if (whole > c.out_punched) {
    const int fd = open(c.out_path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, c.out_punched, whole - c.out_punched) == 0)
        c.out_punched = whole;
      close(fd);
    }
  }
  return data;
}

void Agent::handle_shutdown(const json& /*req*/) {
  log("shutdown requested");
  const auto killed = kill_all_children();
  sync();
  queue("bye", json{{"killed", killed}, {"boot_ns", clock_ns(CLOCK_BOOTTIME)}});
  flush_blocking(3000ms);
  stopping_ = true;
  exit_code_ = 0;
  if (opts_.poweroff) {
    // Give the host side a moment to take the last bytes off the queue.
    std::this_thread::sleep_for(200ms);
    log("powering off");
    sync();
    reboot(RB_POWER_OFF);
    log("reboot(RB_POWER_OFF): %s", errno_text(errno).c_str());
    exit_code_ = 4;
  }
}

// ------------------------------------------------------------------ children

// The leader alone gets the first signal: tools that manage workers
// (stress-ng) then stop them cleanly, whereas a group-wide SIGTERM hits the
// workers mid-operation (stress-ng then reports "corrupted bogo-ops counter"
// and exits 2). The rest of the group is SIGKILLed once the leader has been
// reaped (finish_child) or at kill_at. Same rule as the host's Process::stop.
void Agent::terminate_group(Child& c, int grace_ms, int first_signal) {
  kill(-c.pid, SIGCONT);
  if (grace_ms <= 0) {
    kill(-c.pid, SIGKILL);
    c.kill_at.reset();
    return;
  }
  kill(c.pid, first_signal);
  const auto at = Clock::now() + std::chrono::milliseconds(grace_ms);
  if (!c.kill_at || at < *c.kill_at) c.kill_at = at;
}

void Agent::reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      if (pid < 0 && errno == EINTR) continue;
      return;
    }
    auto it = children_.find(pid);
    if (it == children_.end()) continue;  // an orphan we inherited as subreaper
    finish_child(it->second, status);
    by_id_.erase(it->second.id);
    children_.erase(it);
  }
}

std::string Agent::read_capped(const std::string& path, bool* truncated, off_t offset) const {
  *truncated = false;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  struct stat st{};
  fstat(fd, &st);
  if (st.st_size <= offset || lseek(fd, offset, SEEK_SET) != offset) {
    close(fd);
    return {};
  }
  const auto size = static_cast<std::size_t>(st.st_size - offset);
  const std::size_t want = std::min(size, opts_.output_cap);
  *truncated = size > opts_.output_cap;
  std::string data(want, '\0');
  std::size_t got = 0;
  while (got < want) {
    const ssize_t n = read(fd, data.data() + got, want - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  data.resize(got);
  close(fd);
  return data;
}

void Agent::finish_child(Child& c, int status) {
  if (c.stop_requested || c.timed_out) kill(-c.pid, SIGKILL);  // stragglers in the group
  int exit_code = -1;
  int sig = 0;
  if (WIFEXITED(status)) exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) sig = WTERMSIG(status);
  bool out_trunc = false, err_trunc = false;
  std::string out = read_capped(c.out_path, &out_trunc, c.out_read);
  std::string err = read_capped(c.err_path, &err_trunc);
  unlink(c.out_path.c_str());
  unlink(c.err_path.c_str());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - c.started).count();
  queue("exit", json{{"id", c.id},
                     {"pid", static_cast<int>(c.pid)},
                     {"exit_code", exit_code},
                     {"signal", sig},
                     {"timed_out", c.timed_out},
                     {"stopped", c.stop_requested},
                     {"background", c.background},
                     {"duration_ms", ms},
                     {"stdout", std::move(out)},
                     {"stderr", std::move(err)},
                     {"stdout_truncated", out_trunc},
                     {"stderr_truncated", err_trunc}});
}

void Agent::check_timers() {
  const auto now = Clock::now();
  for (auto& [pid, c] : children_) {
    if (c.deadline && now >= *c.deadline) {
      c.deadline.reset();
      c.timed_out = true;
      log("id %lld timed out; terminating", static_cast<long long>(c.id));
      terminate_group(c, c.term_grace_ms);
    }
    if (c.kill_at && now >= *c.kill_at) {
      c.kill_at.reset();
      log("id %lld ignored SIGTERM; killing", static_cast<long long>(c.id));
      kill(-pid, SIGKILL);
    }
  }
}

std::optional<int> Agent::next_timeout_ms() const {
  std::optional<Clock::time_point> next;
  for (const auto& [pid, c] : children_) {
    for (const auto& t : {c.deadline, c.kill_at}) {
      if (t && (!next || *t < *next)) next = t;
    }
  }
  if (!next) return std::nullopt;
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*next - Clock::now()).count() + 1;
  return static_cast<int>(std::clamp<long long>(ms, 0, 3600000));
}

std::vector<std::int64_t> Agent::kill_all_children() {
  std::vector<std::int64_t> ids;
  for (auto& [pid, c] : children_) {
    ids.push_back(c.id);
    kill(-pid, SIGCONT);
    kill(-pid, SIGTERM);
  }
  const auto deadline = Clock::now() + 1000ms;
  while (!children_.empty()) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid > 0) {
      if (auto it = children_.find(pid); it != children_.end()) {
        kill(-pid, SIGKILL);
        unlink(it->second.out_path.c_str());
        unlink(it->second.err_path.c_str());
        children_.erase(it);
      }
      continue;
    }
    if (pid < 0 && errno == ECHILD) break;
    if (Clock::now() >= deadline) {
      for (auto& [p, c] : children_) kill(-p, SIGKILL);
      // SIGKILL cannot be ignored; wait a little longer for the exits.
      const auto hard = Clock::now() + 1000ms;
      while (!children_.empty() && Clock::now() < hard) {
        const pid_t q = waitpid(-1, &status, WNOHANG);
        if (q > 0) {
          children_.erase(q);
        } else {
          std::this_thread::sleep_for(5ms);
        }
      }
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  children_.clear();
  by_id_.clear();
  return ids;
}

// ------------------------------------------------------------------ main loop

int Agent::run() {
  // Orphans of our children come to us rather than to /init.
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&mask, s);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd_ < 0) {
    log("signalfd: %s", errno_text(errno).c_str());
    return 2;
  }
  if (!open_port()) return 2;
  if (kind_ != PortKind::VirtioPort) on_connected();

  while (!stopping_) {
    if (kind_ == PortKind::VirtioPort && !connected_) check_connection();

    pollfd fds[2];
    fds[0] = {signal_fd_, POLLIN, 0};
    nfds_t nfds = 1;
    const bool watch_port = connected_ || kind_ != PortKind::VirtioPort;
    if (watch_port) {
      fds[1] = {port_fd_, static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT)), 0};
      nfds = 2;
    }
    int timeout = next_timeout_ms().value_or(-1);
    if (!watch_port) timeout = timeout < 0 ? 20 : std::min(timeout, 20);

    const int r = poll(fds, nfds, timeout);
    if (r < 0 && errno != EINTR) {
      log("poll: %s", errno_text(errno).c_str());
      return 2;
    }
    if (r > 0 && (fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo si{};
      bool stop_signal = false;
      while (read(signal_fd_, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo != SIGCHLD) stop_signal = true;
      }
      reap();
      if (stop_signal) {
        log("terminated by signal; stopping children");
        kill_all_children();
        return 0;
      }
    }
    if (r > 0 && nfds == 2 && fds[1].revents != 0) {
      if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_port();
      if (!stopping_ && kind_ == PortKind::VirtioPort && connected_ &&
          (fds[1].revents & POLLHUP) != 0) {
        on_disconnected();
      }
    }
    check_timers();
    if (!stopping_ && (connected_ || kind_ != PortKind::VirtioPort)) write_port();
  }
  if (exit_code_ != 0) kill_all_children();
  return exit_code_;
}

}  // namespace vmlat::agent
