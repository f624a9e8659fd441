#include "guest_exec.hpp"

#include <algorithm>
#include <thread>

#include <vmlat/errors.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/local.hpp>
#include <vmlat/text.hpp>

namespace vmlat::libvirt {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

// Each agent command's own bound: a TCG guest under stress answers slowly,
// but an agent that does not answer in this time is gone.
constexpr std::chrono::seconds kAgentTimeout{30};
// guest-exec-status is polled with a growing pause: a short command's end is
// seen within ~10-20 ms, a long measurement is asked about every 0.5 s (each
// question wakes qemu-ga in the guest being measured).
constexpr milliseconds kFirstPause{10}, kLongestPause{500};

// A signal to a process group, with whichever kill the guest has: procps's
// needs "-s SIG -- -PGID", busybox's reads "--" as a bad pid (then the
// second form). Constant text; the signal and the pid are its arguments.
constexpr const char* kKillScript = "kill -s \"$1\" -- \"-$2\" 2>/dev/null || kill -\"$1\" \"-$2\"";

json call(AgentCommand& agent, const json& request, std::chrono::seconds timeout = kAgentTimeout) {
  const std::string reply = agent(request.dump(), timeout);
  json doc;
  try {
    doc = json::parse(reply);
  } catch (const std::exception& e) {
    throw InfraError("the QEMU guest agent's reply to " + request.value("execute", std::string("?")) +
                     " is not JSON: " + e.what());
  }
  if (!doc.is_object() || !doc.contains("return"))
    throw InfraError("the QEMU guest agent's reply to " + request.value("execute", std::string("?")) +
                     " has no \"return\": " + valid_utf8(reply.substr(0, 200)));
  return doc["return"];
}

std::string decoded(const json& status, const char* key) {
  auto it = status.find(key);
  if (it == status.end() || !it->is_string()) return {};
  try {
    return base64_decode(it->get<std::string>());
  } catch (const std::invalid_argument&) {
    throw InfraError(std::string("the QEMU guest agent's ") + key + " is not base64");
  }
}

std::string argv0(const Command& c) { return c.argv.empty() ? std::string("(nothing)") : c.argv.front(); }

}  // namespace

std::string base64_decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 != 0) throw std::invalid_argument("base64: length not a multiple of 4");
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (std::size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text[i + k];
      if (c == '=' && i + 4 == text.size() && k >= 2) {
        v[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0 || (v[k] = value(c)) < 0) throw std::invalid_argument("base64: bad character");
    }
    const unsigned n = (unsigned(v[0]) << 18) | (unsigned(v[1]) << 12) | (unsigned(v[2]) << 6) | unsigned(v[3]);
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

struct GuestExecExecutor::Exec {
  std::shared_ptr<AgentCommand> agent;
  std::int64_t pid = 0;
  std::optional<CommandResult> done;

  // Its status, asked once more unless it is known to have ended.
  bool ended() {
    if (done) return true;
    json status = call(*agent, json{{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}});
    done = status_result(status);
    return done.has_value();
  }

  // Waits for its end until `deadline`; `interruptible`: Ctrl-C and the
  // phase deadline apply (check_interrupt() between questions).
  bool wait(Deadline deadline, bool interruptible) {
    milliseconds pause = kFirstPause;
    for (;;) {
      if (ended()) return true;
      const auto now = Clock::now();
      if (now >= deadline) return false;
      if (interruptible) check_interrupt();
      std::this_thread::sleep_for(std::min<Clock::duration>(pause, deadline - now));
      pause = std::min(pause * 2, kLongestPause);
    }
  }

  // `signal` to its process group; never throws (a process that ended
  // meanwhile, or an agent that is gone, leaves nothing to signal).
  void signal(const char* name) noexcept {
    try {
      if (done) return;
      json r = call(*agent, json{{"execute", "guest-exec"},
                                 {"arguments", {{"path", "sh"}, {"arg", {"-c", kKillScript, "sh", name, std::to_string(pid)}},
                                                {"capture-output", false}}}});
      // Collected, so that qemu-ga forgets it.
      Exec kill{agent, r.at("pid").get<std::int64_t>(), std::nullopt};
      kill.wait(Clock::now() + 5s, false);
    } catch (...) {
    }
  }

  // Ends it: `first` signal, `grace` to end, then SIGKILL. Never throws.
  void end(const char* first, milliseconds grace) noexcept {
    try {
      if (done) return;
      signal(first);
      if (wait(Clock::now() + grace, false)) return;
      signal("KILL");
      wait(Clock::now() + 3s, false);
    } catch (...) {
    }
  }
};

std::vector<std::string> GuestExecExecutor::session_argv(const std::vector<std::string>& argv) {
  // setsid (busybox's and util-linux's) stops reading options at the first
  // word that is not one, and execs it in place: the pid guest-exec returns
  // leads the command's process group.
  std::vector<std::string> out{"setsid"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

json GuestExecExecutor::exec_request(const std::vector<std::string>& argv) {
  const auto wrapped = session_argv(argv);
  return json{{"execute", "guest-exec"},
              {"arguments",
               {{"path", wrapped.front()},
                {"arg", std::vector<std::string>(wrapped.begin() + 1, wrapped.end())},
                {"capture-output", true}}}};
}

std::optional<CommandResult> GuestExecExecutor::status_result(const json& status) {
  if (!status.is_object()) throw InfraError("the QEMU guest agent's guest-exec-status is not an object");
  if (!status.value("exited", false)) return std::nullopt;
  CommandResult r;
  r.exit_code = status.value("exitcode", -1);
  r.signal = status.value("signal", 0);
  r.out = decoded(status, "out-data");
  r.err = decoded(status, "err-data");
  for (const char* key : {"out-truncated", "err-truncated"})
    if (status.value(key, false)) {
      if (!r.err.empty() && r.err.back() != '\n') r.err += '\n';
      r.err += std::string("the QEMU guest agent truncated the output (") + key + ")";
    }
  return r;
}

GuestExecExecutor::GuestExecExecutor(AgentCommand agent, std::string name)
    : name_(std::move(name)), agent_(std::make_shared<AgentCommand>(std::move(agent))) {}

GuestExecExecutor::~GuestExecExecutor() = default;

std::shared_ptr<GuestExecExecutor::Exec> GuestExecExecutor::spawn(const Command& command) {
  if (command.argv.empty()) throw InfraError("guest-exec executor: empty argv");
  json r = call(*agent_, exec_request(command.argv));
  if (!r.is_object() || !r.contains("pid") || !r["pid"].is_number_integer())
    throw InfraError("the QEMU guest agent's guest-exec returned no pid: " + r.dump());
  return std::make_shared<Exec>(Exec{agent_, r["pid"].get<std::int64_t>(), std::nullopt});
}

CommandResult GuestExecExecutor::run(const Command& command) {
  std::shared_ptr<Exec> e;
  try {
    e = spawn(command);
  } catch (const AgentError& err) {
    if (!err.replied()) throw InfraError(std::string("the QEMU guest agent: ") + err.what());
    // qemu-ga could not start it (no such program): as a shell would say.
    CommandResult r;
    r.exit_code = 127;
    r.err = err.what();
    return r;
  }
  const auto timeout = std::max(command.timeout, milliseconds(1));
  try {
    if (!e->wait(Clock::now() + timeout, true)) {
      e->end("KILL", 0ms);
      CommandResult r = e->done.value_or(CommandResult{});
      r.timed_out = true;
      return r;
    }
  } catch (const Cancelled&) {
    if (!command.graceful_interrupt) {
      e->end("KILL", 0ms);
      throw;
    }
    // SIGINT, as on this machine: cyclictest and vmlat-probe print their
    // partial result (SIGKILL after the grace).
    e->end("INT", command.interrupt_grace);
    CommandResult r = e->done.value_or(CommandResult{});
    r.interrupted = true;
    return r;
  } catch (const PhaseTimeout&) {
    e->end("KILL", 0ms);
    throw;
  } catch (const AgentError& err) {
    throw InfraError(std::string("the QEMU guest agent, while ") + argv0(command) + " ran: " + err.what());
  }
  return *e->done;
}

namespace {

class GuestExecJob final : public Job {
 public:
  explicit GuestExecJob(std::shared_ptr<GuestExecExecutor::Exec> e) : e_(std::move(e)) {}
  ~GuestExecJob() override {
    if (!collected_) stop(2s);
  }
  bool running() override {
    if (collected_) return false;
    try {
      return !e_->ended();
    } catch (...) {
      return false;
    }
  }
  // qemu-ga hands a command's output over only once it has ended.
  std::string read_output(std::size_t max_bytes) override {
    if (collected_) return {};
    bool ended = false;
    try {
      ended = e_->ended();
    } catch (const std::exception& err) {
      throw InfraError(std::string("the QEMU guest agent: ") + err.what());
    }
    if (!ended) return {};
    std::string& out = e_->done->out;
    const std::string chunk = out.substr(0, std::max<std::size_t>(max_bytes, 1));
    out.erase(0, chunk.size());
    return chunk;
  }
  CommandResult stop(milliseconds grace) noexcept override {
    if (collected_) return {};
    collected_ = true;
    e_->end("TERM", grace);
    if (e_->done) return *e_->done;
    CommandResult r;
    r.err = "no exit status from the QEMU guest agent after stop";
    return r;
  }

 private:
  std::shared_ptr<GuestExecExecutor::Exec> e_;
  bool collected_ = false;
};

}  // namespace

std::unique_ptr<Job> GuestExecExecutor::start(const Command& command) {
  try {
    return std::make_unique<GuestExecJob>(spawn(command));
  } catch (const AgentError& err) {
    throw InfraError("cannot start " + argv0(command) + " in the guest through the QEMU guest agent: " + err.what());
  }
}

std::optional<std::string> GuestExecExecutor::find_program(const std::string& name) {
  if (name.empty()) return std::nullopt;
  auto r = run(name.find('/') != std::string::npos ? Command{{"test", "-x", name}, 20s} : Command{{"which", name}, 20s});
  if (!r.ok()) return std::nullopt;
  if (name.find('/') != std::string::npos) return name;
  std::string path = trim(r.out);
  if (path.empty() || path.front() != '/' || path.find('\n') != std::string::npos) return std::nullopt;
  return path;
}

std::map<std::string, std::optional<std::string>> GuestExecExecutor::find_programs(const std::vector<std::string>& names) {
  // One guest-exec for all (each costs a round trip through libvirt).
  const bool plain = std::all_of(names.begin(), names.end(), [](const std::string& n) {
    return !n.empty() && n.front() != '-' && n.find_first_of("/\n\r\t \036\037") == std::string::npos;
  });
  if (names.size() < 2 || !plain) return Executor::find_programs(names);
  std::vector<std::pair<std::string, std::vector<std::string>>> commands;
  for (const auto& n : names) commands.push_back({n, {"which", n}});
  std::map<std::string, std::optional<std::string>> raw;
  try {
    raw = read_in_one_round_trip(*this, commands);
  } catch (const PhaseTimeout&) {
    throw;
  } catch (const InfraError&) {
    return Executor::find_programs(names);
  }
  std::map<std::string, std::optional<std::string>> found;
  for (const auto& n : names) {
    auto it = raw.find(n);
    std::optional<std::string> path = it == raw.end() ? std::nullopt : it->second;
    if (path) path = trim(*path);
    found[n] = path && !path->empty() && path->front() == '/' ? path : std::nullopt;
  }
  return found;
}

json GuestExecExecutor::wait_ready(Deadline deadline) {
  std::string last = "no answer yet";
  milliseconds pause = 100ms;
  for (;;) {
    try {
      call(*agent_, json{{"execute", "guest-ping"}}, std::chrono::seconds(5));
      break;
    } catch (const AgentError& e) {
      last = e.what();
    }
    if (Clock::now() >= deadline)
      throw PhaseTimeout("the QEMU guest agent did not answer guest-ping in time (last: " + last + ")");
    check_interrupt();
    interruptible_sleep(pause);
    pause = std::min(pause * 2, milliseconds(1000));
  }
  json info;
  try {
    info = call(*agent_, json{{"execute", "guest-info"}});
  } catch (const AgentError& e) {
    throw InfraError(std::string("the QEMU guest agent's guest-info: ") + e.what());
  }
  bool exec = false, status = false;
  for (const auto& c : info.value("supported_commands", json::array())) {
    const std::string n = c.value("name", std::string());
    if (n == "guest-exec") exec = c.value("enabled", false);
    if (n == "guest-exec-status") status = c.value("enabled", false);
  }
  if (!exec || !status)
    throw InfraError("the QEMU guest agent (version " + info.value("version", std::string("?")) +
                     ") does not offer guest-exec and guest-exec-status (blocked by its configuration: qemu-ga -b / "
                     "block-rpcs, or allow-rpcs)");
  return json{{"version", info.value("version", std::string("?"))}};
}

}  // namespace vmlat::libvirt
