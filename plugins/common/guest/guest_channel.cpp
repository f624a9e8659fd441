#include "guest_channel.hpp"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <sstream>
#include <vector>

#include <vmlat/text.hpp>
#include <vmlat/errors.hpp>

namespace vmlat::kvm {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

namespace {

constexpr std::size_t kReadChunk = 64 * 1024;
constexpr milliseconds kSendTimeout = 10s;
constexpr milliseconds kSlice = 200ms;

int poll_ms(Deadline deadline) {
  const auto left = duration_cast<milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 1000 * 60));
}

std::string argv0(const Command& c) { return c.argv.empty() ? std::string("(empty argv)") : c.argv.front(); }

}  // namespace

bool is_agent_kind(std::string_view kind) {
  static constexpr std::string_view kinds[] = {"hello", "started", "exit", "bye", "pong", "error", "output"};
  return std::find(std::begin(kinds), std::end(kinds), kind) != std::end(kinds);
}

// ---------------------------------------------------------------- channel

GuestChannel::GuestChannel(int fd, ChannelOptions options) : fd_(fd), options_(std::move(options)) {
  struct stat st {};
  socket_ = ::fstat(fd_, &st) != 0 || S_ISSOCK(st.st_mode);
  if (options_.console_text) decoder_.keep_text(true);
}

GuestChannel::~GuestChannel() {
  if (fd_ >= 0) ::close(fd_);
}

void GuestChannel::send(std::string_view kind, const json& body) {
  const std::string bytes = frame::encode(kind, body.dump());
  std::size_t done = 0;
  const Deadline deadline = Clock::now() + kSendTimeout;
  while (done < bytes.size()) {
    pollfd p{fd_, POLLOUT, 0};
    const int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0) {
      if (errno == EINTR) continue;
      throw InfraError(std::string("guest channel: poll: ") + std::strerror(errno));
    }
    if (r == 0)
      throw InfraError("guest channel: the guest did not read its channel for " +
                       std::to_string(kSendTimeout.count() / 1000) + "s (sending '" + std::string(kind) + "')");
    // A tty has no SIGPIPE to suppress (a closed pty reads and writes EIO).
    const ssize_t n = socket_ ? ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL)
                              : ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw InfraError("guest channel: sending '" + std::string(kind) + "' failed: " + std::strerror(errno) +
                       " (QEMU exited or the guest went away?)");
    }
    done += static_cast<std::size_t>(n);
  }
}

void GuestChannel::check_decoder() {
  auto errors = decoder_.take_errors();
  if (!errors.empty()) {
    std::string message = "guest channel: " + errors.front();
    if (errors.size() > 1) message += " (and " + std::to_string(errors.size() - 1) + " more decoding errors)";
    throw InfraError(message);
  }
}

void GuestChannel::absorb() {
  check_decoder();
  if (options_.console_text) {
    const std::string text = decoder_.take_text();
    accounted_ += text.size();
    if (!text.empty()) options_.console_text(text);
  }
  while (auto f = decoder_.next()) {
    accounted_ += frame::encode(f->kind, f->payload).size();
    queue_.push_back(std::move(*f));
  }
  // Every byte read is either in a verified frame or still buffered; the
  // rest was skipped by the decoder as text between frames, which a
  // virtio-serial channel never carries.
  const std::uint64_t skipped = received_ - accounted_ - decoder_.buffered();
  if (skipped > 0)
    throw InfraError("guest channel: " + std::to_string(skipped) +
                     " bytes of garbage outside any frame (the channel carries only vmlat frames)");
}

std::optional<Message> GuestChannel::receive(Deadline deadline) {
  for (;;) {
    if (!queue_.empty()) {
      frame::Frame f = std::move(queue_.front());
      queue_.pop_front();
      if (!is_agent_kind(f.kind))
        throw InfraError("guest channel: unexpected message kind '" + f.kind + "' from the guest agent");
      json body;
      try {
        body = json::parse(f.payload);
      } catch (const std::exception& e) {
        throw InfraError("guest channel: frame '" + f.kind + "': payload is not JSON: " + e.what());
      }
      if (!body.is_object())
        throw InfraError("guest channel: frame '" + f.kind + "': payload is not a JSON object");
      return Message{std::move(f.kind), std::move(body)};
    }
    if (closed_) throw InfraError("guest channel: the guest side closed the connection (QEMU exited or the agent died)");

    pollfd p{fd_, POLLIN, 0};
    const int r = ::poll(&p, 1, poll_ms(deadline));
    if (r < 0) {
      if (errno == EINTR) {
        if (Clock::now() >= deadline) return std::nullopt;
        continue;
      }
      throw InfraError(std::string("guest channel: poll: ") + std::strerror(errno));
    }
    if (r == 0) {
      if (Clock::now() >= deadline) return std::nullopt;
      continue;
    }
    char buf[kReadChunk];
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    // ECONNRESET: QEMU's socket went away; EIO: the pty's other side (xenconsoled) closed.
    if (n < 0 && errno != ECONNRESET && errno != EIO)
      throw InfraError(std::string("guest channel: read: ") + std::strerror(errno));
    if (n <= 0) {
      closed_ = true;
      const std::size_t pending = decoder_.buffered();
      decoder_.finish();  // reports a frame cut short as truncated
      if (options_.console_text) {
        const std::string text = decoder_.take_text();
        if (!text.empty()) options_.console_text(text);
      }
      check_decoder();
      // (On a console the tail may be text that only looked like a marker.)
      if (pending > 0 && !options_.console_text)
        throw InfraError("guest channel: truncated: the connection closed with " + std::to_string(pending) +
                         " bytes of an unfinished frame");
      continue;
    }
    received_ += static_cast<std::uint64_t>(n);
    decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    absorb();
  }
}

// ---------------------------------------------------------------- executor

struct GuestExecutor::State {
  std::unique_ptr<GuestChannel> channel;
  std::string name;
  json hello = nullptr;
  std::int64_t next_id = 1;
  std::map<std::int64_t, json> exits;
  std::map<std::int64_t, std::string> errors;
  std::map<std::int64_t, json> started;
  std::map<std::int64_t, json> outputs;  // `output` replies to `read`
  bool bye = false;
  std::optional<std::string> broken;

  // Reads and dispatches at most one message. False if none came by `deadline`.
  bool pump(Deadline deadline) {
    if (broken) throw InfraError(*broken);
    std::optional<Message> m;
    try {
      m = channel->receive(deadline);
    } catch (const InfraError& e) {
      broken = e.what();
      throw;
    }
    if (!m) return false;
    const json& b = m->body;
    auto id_of = [&]() -> std::optional<std::int64_t> {
      auto it = b.find("id");
      if (it == b.end() || !it->is_number_integer()) return std::nullopt;
      return it->get<std::int64_t>();
    };
    if (m->kind == "hello") {
      hello = b;
    } else if (m->kind == "exit") {
      auto id = id_of();
      if (!id) fail("guest channel: 'exit' without an integer id");
      exits[*id] = b;
    } else if (m->kind == "started") {
      auto id = id_of();
      if (!id) fail("guest channel: 'started' without an integer id");
      started[*id] = b;
    } else if (m->kind == "output") {
      auto id = id_of();
      if (!id) fail("guest channel: 'output' without an integer id");
      outputs[*id] = b;
    } else if (m->kind == "error") {
      std::string message = b.value("message", std::string("(no message)"));
      if (auto id = id_of()) {
        errors[*id] = message;
      } else {
        fail("guest agent reported an error: " + message);
      }
    } else if (m->kind == "bye") {
      bye = true;
    }
    return true;
  }

  [[noreturn]] void fail(const std::string& message) {
    broken = message;
    throw InfraError(message);
  }

  // Pumps until done() or `deadline`; check_interrupt() between reads when
  // interruptible. True if done().
  bool wait_until(Deadline deadline, bool interruptible, const std::function<bool()>& done) {
    while (!done()) {
      if (interruptible) check_interrupt();
      const auto now = Clock::now();
      if (now >= deadline) return false;
      pump(std::min(deadline, now + kSlice));
    }
    return true;
  }

  // Drains what is already there without waiting.
  void drain() {
    for (int i = 0; i < 1000 && pump(Clock::now()); ++i) {
    }
  }

  void send(std::string_view kind, const json& body) {
    if (broken) throw InfraError(*broken);
    try {
      channel->send(kind, body);
    } catch (const InfraError& e) {
      broken = e.what();
      throw;
    }
  }

  // Sends stop for `id` and waits (uninterruptibly) for its exit or an error
  // saying it is no longer running. Never throws.
  void stop_and_wait(std::int64_t id, milliseconds grace, milliseconds extra, const char* signal = "TERM") noexcept {
    try {
      if (exits.count(id)) return;
      errors.erase(id);
      send("stop", json{{"id", id}, {"grace_ms", grace.count()}, {"signal", signal}});
      wait_until(Clock::now() + grace + extra, false, [&] { return exits.count(id) > 0 || errors.count(id) > 0; });
    } catch (...) {
    }
  }

  static CommandResult result_of(const json& e) {
    CommandResult r;
    r.exit_code = e.value("exit_code", -1);
    r.signal = e.value("signal", 0);
    r.timed_out = e.value("timed_out", false);
    r.out = e.value("stdout", std::string());
    r.err = e.value("stderr", std::string());
    if (auto it = e.find("error"); it != e.end() && it->is_string()) {
      if (!r.err.empty() && r.err.back() != '\n') r.err += '\n';
      r.err += it->get<std::string>();
    }
    return r;
  }

  CommandResult take(std::int64_t id) {
    CommandResult r = result_of(exits.at(id));
    exits.erase(id);
    started.erase(id);
    errors.erase(id);
    outputs.erase(id);
    return r;
  }
};

namespace {

class GuestJob final : public Job {
 public:
  GuestJob(std::weak_ptr<GuestExecutor::State> state, std::int64_t id) : state_(std::move(state)), id_(id) {}
  ~GuestJob() override {
    if (!collected_) stop(2s);
  }
  bool running() override {
    auto s = state_.lock();
    if (!s || collected_) return false;
    try {
      s->drain();
    } catch (...) {
      return false;
    }
    return s->exits.count(id_) == 0;
  }
  // `read` asks the agent for the output since the last one; once the
  // process has ended, its `exit` carries the rest.
  std::string read_output(std::size_t max_bytes) override {
    if (collected_ || ended_) return {};
    auto s = state_.lock();
    if (!s) throw InfraError("the guest executor is gone");
    if (auto rest = take_rest(*s)) return *rest;
    s->outputs.erase(id_);
    s->errors.erase(id_);
    s->send("read", json{{"id", id_}, {"max_bytes", static_cast<std::int64_t>(std::max<std::size_t>(max_bytes, 4))}});
    auto answered = [&] { return s->outputs.count(id_) > 0 || s->errors.count(id_) > 0 || s->exits.count(id_) > 0; };
    if (!s->wait_until(Clock::now() + kReadTimeout, true, answered))
      throw InfraError("the guest agent did not answer a read of a running command's output within " +
                       std::to_string(kReadTimeout.count() / 1000) + "s");
    if (auto it = s->outputs.find(id_); it != s->outputs.end()) {
      std::string data = it->second.value("stdout", std::string());
      s->outputs.erase(it);
      return data;
    }
    if (auto rest = take_rest(*s)) return *rest;
    std::string message = s->errors[id_];
    s->errors.erase(id_);
    if (message.find("unknown frame kind") != std::string::npos)
      throw InfraError("the guest agent (version " + s->hello.value("agent_version", std::string("?")) +
                       ") cannot stream a command's output: rebuild the guest image with this vmlat's agent");
    // "no running process": it ended; its exit (with the rest) follows.
    if (!s->wait_until(Clock::now() + kReadTimeout, true, [&] { return s->exits.count(id_) > 0; }))
      throw InfraError("the guest agent said the command ended but sent no exit: " + message);
    return take_rest(*s).value_or(std::string());
  }

  CommandResult stop(milliseconds grace) noexcept override {
    CommandResult r;
    if (collected_) return r;
    collected_ = true;
    auto s = state_.lock();
    if (!s) {
      r.err = "the guest executor is gone";
      return r;
    }
    try {
      PhaseScope scope("guest-job-stop", Clock::now() + grace + 10s, false);
      s->stop_and_wait(id_, grace, 5s);
      if (s->exits.count(id_)) return s->take(id_);
      r.err = s->errors.count(id_) ? s->errors[id_] : "no exit from the guest agent after stop";
    } catch (const std::exception& e) {
      r.err = e.what();
    } catch (...) {
    }
    return r;
  }

 private:
  // The output its exit carries (moved out: stop() returns the exit
  // without it), once it has ended.
  std::optional<std::string> take_rest(GuestExecutor::State& s) {
    auto it = s.exits.find(id_);
    if (it == s.exits.end()) return std::nullopt;
    std::string rest = it->second.value("stdout", std::string());
    it->second["stdout"] = "";
    ended_ = true;
    return rest;
  }

  static constexpr milliseconds kReadTimeout = 30s;
  std::weak_ptr<GuestExecutor::State> state_;
  std::int64_t id_;
  bool collected_ = false;
  bool ended_ = false;  // its exit was seen and its output taken
};

}  // namespace

GuestExecutor::GuestExecutor(std::unique_ptr<GuestChannel> channel, std::string name)
    : state_(std::make_shared<State>()) {
  state_->channel = std::move(channel);
  state_->name = std::move(name);
}

GuestExecutor::~GuestExecutor() = default;

std::string GuestExecutor::name() const { return state_->name; }

const json& GuestExecutor::hello() const { return state_->hello; }

json GuestExecutor::wait_hello(Deadline deadline) {
  State& s = *state_;
  if (!s.wait_until(deadline, true, [&] { return !s.hello.is_null(); }))
    throw InfraError("the guest agent did not say hello in time");
  return s.hello;
}

bool GuestExecutor::shutdown(Deadline deadline) noexcept {
  State& s = *state_;
  try {
    s.send("shutdown", json::object());
    return s.wait_until(deadline, false, [&] { return s.bye; });
  } catch (...) {
    return s.bye;
  }
}

CommandResult GuestExecutor::run(const Command& command) {
  State& s = *state_;
  if (command.argv.empty()) throw InfraError("guest executor: empty argv");
  const std::int64_t id = s.next_id++;
  const auto timeout = std::max(command.timeout, milliseconds(1));
  s.send("exec", json{{"id", id}, {"argv", command.argv}, {"timeout_ms", timeout.count()}, {"background", false}});
  // The agent enforces the timeout (SIGTERM, SIGKILL 2s later); the host
  // waits a little longer for its report before giving up on it.
  const Deadline host_deadline = Clock::now() + timeout + 10s;
  auto done = [&] { return s.exits.count(id) > 0 || s.errors.count(id) > 0; };
  try {
    if (!s.wait_until(host_deadline, true, done)) {
      s.stop_and_wait(id, 0ms, 3s);
      CommandResult r = s.exits.count(id) ? s.take(id) : CommandResult{};
      r.timed_out = true;
      return r;
    }
  } catch (const Cancelled&) {
    if (!command.graceful_interrupt) {
      s.stop_and_wait(id, 0ms, 2s);
      throw;
    }
    // SIGINT, as on this machine: cyclictest and vmlat-probe print their
    // partial result (SIGKILL after the grace).
    s.stop_and_wait(id, command.interrupt_grace, 3s, "INT");
    CommandResult r = s.exits.count(id) ? s.take(id) : CommandResult{};
    r.interrupted = true;
    return r;
  } catch (const PhaseTimeout&) {
    s.stop_and_wait(id, 0ms, 2s);
    throw;
  }
  if (s.errors.count(id) && !s.exits.count(id)) {
    std::string message = s.errors[id];
    s.errors.erase(id);
    throw InfraError("the guest agent refused to run " + argv0(command) + ": " + message);
  }
  return s.take(id);
}

std::unique_ptr<Job> GuestExecutor::start(const Command& command) {
  State& s = *state_;
  if (command.argv.empty()) throw InfraError("guest executor: empty argv");
  const std::int64_t id = s.next_id++;
  s.send("exec", json{{"id", id}, {"argv", command.argv}, {"background", true}});
  auto done = [&] { return s.started.count(id) > 0 || s.exits.count(id) > 0 || s.errors.count(id) > 0; };
  if (!s.wait_until(Clock::now() + 30s, true, done))
    throw InfraError("the guest agent did not start " + argv0(command) + " within 30s");
  if (s.errors.count(id) && !s.started.count(id) && !s.exits.count(id)) {
    std::string message = s.errors[id];
    s.errors.erase(id);
    throw InfraError("the guest agent refused to start " + argv0(command) + ": " + message);
  }
  if (s.exits.count(id) && !s.started.count(id)) {
    CommandResult r = s.take(id);
    throw InfraError("cannot start " + argv0(command) + " in the guest: " + r.describe());
  }
  return std::make_unique<GuestJob>(state_, id);
}

std::optional<std::string> GuestExecutor::find_program(const std::string& name) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    auto r = run(Command{{"test", "-x", name}, 20s});
    if (r.ok()) return name;
    return std::nullopt;
  }
  auto r = run(Command{{"which", name}, 20s});
  if (!r.ok()) return std::nullopt;
  std::string path = trim(r.out);
  if (path.empty() || path.front() != '/' || path.find('\n') != std::string::npos) return std::nullopt;
  return path;
}

std::map<std::string, std::optional<std::string>> GuestExecutor::find_programs(const std::vector<std::string>& names) {
  auto plain = [](const std::string& n) {
    return !n.empty() && n.front() != '-' && n.find_first_of("/\n\r\t ") == std::string::npos;
  };
  if (names.size() < 2 || !std::all_of(names.begin(), names.end(), plain)) return Executor::find_programs(names);
  // One line per name, in order: its path, or empty. The names are
  // positional parameters of a constant script, never parsed by the shell.
  std::vector<std::string> argv{"sh", "-c", "for p do which \"$p\" || echo; done", "sh"};
  argv.insert(argv.end(), names.begin(), names.end());
  CommandResult r;
  try {
    r = run(Command{argv, 20s});
  } catch (const InfraError&) {
    return Executor::find_programs(names);
  }
  std::vector<std::string> lines;
  std::string line;
  std::istringstream in(r.out);
  while (std::getline(in, line)) lines.push_back(trim(line));
  if (!r.ok() || lines.size() != names.size()) return Executor::find_programs(names);
  std::map<std::string, std::optional<std::string>> found;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::string& path = lines[i];
    found[names[i]] = path.empty() || path.front() != '/' ? std::nullopt : std::optional<std::string>(path);
  }
  return found;
}

}  // namespace vmlat::kvm
