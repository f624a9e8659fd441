#include "vmlat/text.hpp"
#include "vmlat/local.hpp"

#include <atomic>
#include <csignal>
#include <fstream>
#include <sstream>

#include "vmlat/errors.hpp"
#include "vmlat/process.hpp"

namespace vmlat {

std::string CommandResult::describe() const {
  ExitStatus status;
  status.exit_code = exit_code;
  status.signal = signal;
  status.timed_out = timed_out;
  std::string s = status.describe();
  // The last non-empty line of stderr usually says why.
  std::string_view e(err);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.remove_suffix(1);
  auto nl = e.rfind('\n');
  auto last = nl == std::string_view::npos ? e : e.substr(nl + 1);
  if (!last.empty()) s += ": " + std::string(last.substr(0, 300));
  return s;
}

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class LocalJob final : public Job {
 public:
  LocalJob(Process p, std::filesystem::path out, std::filesystem::path err)
      : process_(std::move(p)), out_(std::move(out)), err_(std::move(err)) {}
  ~LocalJob() override { stop(std::chrono::milliseconds(2000)); }
  bool running() override { return process_.running(); }
  CommandResult stop(std::chrono::milliseconds grace) noexcept override {
    CommandResult r;
    try {
      auto s = process_.stop(grace);
      r.exit_code = s.exit_code;
      r.signal = s.signal;
      if (!collected_) {
        r.out = slurp(out_);
        r.err = slurp(err_);
        std::error_code ec;
        std::filesystem::remove(out_, ec);
        std::filesystem::remove(err_, ec);
        collected_ = true;
      }
    } catch (...) {
    }
    return r;
  }

 private:
  Process process_;
  std::filesystem::path out_, err_;
  bool collected_ = false;
};

class LocalExecutor final : public Executor {
 public:
  LocalExecutor(std::filesystem::path scratch, std::string name) : scratch_(std::move(scratch)), name_(std::move(name)) {
    std::filesystem::create_directories(scratch_);
  }
  std::string name() const override { return name_; }

  CommandResult run(const Command& command) override {
    auto [out, err] = output_paths();
    ProcessSpec spec{command.argv, {}, out, err, {}};
    Process p = Process::spawn(spec);
    ExitStatus status;
    bool interrupted = false;
    try {
      status = p.wait(Clock::now() + command.timeout);
    } catch (const Cancelled&) {
      if (!command.graceful_interrupt) {
        p.stop(std::chrono::milliseconds(2000));
        remove(out, err);
        throw;
      }
      // Let the program print its partial result.
      status = p.stop(command.interrupt_grace, SIGINT);
      interrupted = true;
    } catch (...) {
      p.stop(std::chrono::milliseconds(2000));
      remove(out, err);
      throw;
    }
    if (status.timed_out) p.stop(std::chrono::milliseconds(2000));
    CommandResult r;
    r.exit_code = status.exit_code;
    r.signal = status.signal;
    r.timed_out = status.timed_out;
    r.interrupted = interrupted;
    r.out = slurp(out);
    r.err = slurp(err);
    remove(out, err);
    return r;
  }

  std::unique_ptr<Job> start(const Command& command) override {
    auto [out, err] = output_paths();
    ProcessSpec spec{command.argv, {}, out, err, {}};
    return std::make_unique<LocalJob>(Process::spawn(spec), out, err);
  }

  std::optional<std::string> find_program(const std::string& name) override {
    auto p = find_in_path(name, libexec_dirs());
    if (p.empty()) return std::nullopt;
    return p.string();
  }

  std::string temp_dir() override {
    std::filesystem::create_directories(scratch_ / "tmp");
    return (std::filesystem::absolute(scratch_) / "tmp").string();
  }

 private:
  std::pair<std::filesystem::path, std::filesystem::path> output_paths() {
    auto n = std::to_string(counter_++);
    return {scratch_ / ("cmd-" + n + ".out"), scratch_ / ("cmd-" + n + ".err")};
  }
  static void remove(const std::filesystem::path& a, const std::filesystem::path& b) {
    std::error_code ec;
    std::filesystem::remove(a, ec);
    std::filesystem::remove(b, ec);
  }
  std::filesystem::path scratch_;
  std::string name_;
  std::atomic<unsigned> counter_{0};
};

}  // namespace

std::unique_ptr<Executor> make_local_executor(std::filesystem::path scratch_dir, std::string name) {
  return std::make_unique<LocalExecutor>(std::move(scratch_dir), std::move(name));
}

json collect_system_facts(Executor& where) {
  auto read = [&](std::vector<std::string> argv) -> std::optional<std::string> {
    Command c{std::move(argv), std::chrono::seconds(20)};
    auto r = where.run(c);
    if (!r.ok()) return std::nullopt;
    return trim(r.out);
  };
  auto or_null = [](const std::optional<std::string>& v) { return v ? json(*v) : json(nullptr); };
  json facts = json::object();
  auto release = read({"uname", "-r"});
  auto version = read({"uname", "-v"});
  facts["hostname"] = or_null(read({"uname", "-n"}));
  facts["machine"] = or_null(read({"uname", "-m"}));
  facts["kernel_release"] = or_null(release);
  facts["kernel_version"] = or_null(version);
  facts["kernel_cmdline"] = or_null(read({"cat", "/proc/cmdline"}));
  auto realtime = read({"cat", "/sys/kernel/realtime"});
  // /sys/kernel/realtime exists (and reads 1) only on PREEMPT_RT kernels;
  // older RT kernels only say so in uname -v.
  std::string model = "unknown";
  if (realtime && *realtime == "1") model = "PREEMPT_RT";
  else if (version) {
    if (version->find("PREEMPT_RT") != std::string::npos) model = "PREEMPT_RT";
    else if (version->find("PREEMPT_DYNAMIC") != std::string::npos) model = "PREEMPT_DYNAMIC";
    else if (version->find("PREEMPT ") != std::string::npos) model = "PREEMPT";
    else model = "none";
  }
  facts["preempt_model"] = model;
  facts["preempt_rt"] = model == "PREEMPT_RT";
  json cpu_count = nullptr;
  if (auto n = read({"nproc", "--all"})) {
    try {
      cpu_count = std::stoi(*n);
    } catch (...) {
    }
  }
  facts["cpu_count"] = cpu_count;
  json cpu_model = nullptr;
  if (auto info = read({"cat", "/proc/cpuinfo"})) {
    std::istringstream lines(*info);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("model name", 0) == 0) {
        auto colon = line.find(':');
        if (colon != std::string::npos) cpu_model = trim(line.substr(colon + 1));
        break;
      }
    }
  }
  facts["cpu_model"] = cpu_model;
  return facts;
}

}  // namespace vmlat
