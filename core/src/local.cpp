#include "vmlat/text.hpp"
#include "vmlat/local.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <limits>
#include <csignal>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

#include "facts.hpp"
#include "ssh.hpp"

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

std::map<std::string, std::optional<std::string>> Executor::find_programs(const std::vector<std::string>& names) {
  std::map<std::string, std::optional<std::string>> found;
  for (const auto& n : names) found[n] = find_program(n);
  return found;
}

std::string Job::read_output(std::size_t) {
  throw InfraError("this executor cannot read the output of a running command (Job::read_output)");
}

namespace {


// The output file of a job, read from where the last read stopped. What
// was read is punched out of the file (FALLOC_FL_PUNCH_HOLE): the file keeps
// its size (the child appends with O_APPEND), its blocks are freed, so a job
// that prints for days uses the disk of what was not read yet.
class OutputReader {
 public:
  explicit OutputReader(std::filesystem::path path) : path_(std::move(path)) {}
  OutputReader(const OutputReader&) = delete;
  OutputReader& operator=(const OutputReader&) = delete;
  ~OutputReader() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::string read(std::size_t max_bytes) {
    if (fd_ < 0) {
      fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd_ < 0) throw InfraError("cannot read " + path_.string() + ": " + std::strerror(errno));
    }
    std::string out;
    char buf[64 * 1024];
    while (out.size() < max_bytes) {
      const std::size_t want = std::min(sizeof buf, max_bytes - out.size());
      const ssize_t n = ::pread(fd_, buf, want, offset_);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw InfraError("cannot read " + path_.string() + ": " + std::strerror(errno));
      if (n == 0) break;
      out.append(buf, static_cast<std::size_t>(n));
      offset_ += n;
    }
    constexpr off_t kBlock = 4096;
    const off_t whole = offset_ / kBlock * kBlock;
    if (whole > punched_ && !punch_unsupported_) {
      if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, punched_, whole - punched_) == 0)
        punched_ = whole;
      else
        punch_unsupported_ = true;  // the file system keeps it all (documented)
    }
    return out;
  }
  // What is left after `offset_` (the whole file if nothing was read).
  std::string rest() {
    if (fd_ < 0 && offset_ == 0) return slurp(path_);
    try {
      return read(std::numeric_limits<std::size_t>::max());
    } catch (const InfraError&) {
      return {};
    }
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  off_t offset_ = 0, punched_ = 0;
  bool punch_unsupported_ = false;
};

class LocalJob final : public Job {
 public:
  LocalJob(Process p, std::filesystem::path out, std::filesystem::path err)
      : process_(std::move(p)), out_(std::move(out)), err_(std::move(err)), reader_(out_) {}
  ~LocalJob() override { stop(std::chrono::milliseconds(2000)); }
  bool running() override { return process_.running(); }
  CommandResult stop(std::chrono::milliseconds grace) noexcept override {
    CommandResult r;
    try {
      auto s = process_.stop(grace);
      r.exit_code = s.exit_code;
      r.signal = s.signal;
      if (!collected_) {
        r.out = reader_.rest();
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
  std::string read_output(std::size_t max_bytes) override {
    if (collected_) return {};
    return reader_.read(max_bytes);
  }

 private:
  Process process_;
  std::filesystem::path out_, err_;
  OutputReader reader_;
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

json system_facts_from(const std::function<std::optional<std::string>(const std::string&)>& read) {
  auto or_null = [](const std::optional<std::string>& v) { return v ? json(trim(*v)) : json(nullptr); };
  json facts = json::object();
  auto release = read("kernel_release");
  auto version = read("kernel_version");
  facts["hostname"] = or_null(read("hostname"));
  facts["machine"] = or_null(read("machine"));
  facts["kernel_release"] = or_null(release);
  facts["kernel_version"] = or_null(version);
  facts["kernel_cmdline"] = or_null(read("kernel_cmdline"));
  auto realtime = read("realtime");
  // /sys/kernel/realtime exists (and reads 1) only on PREEMPT_RT kernels;
  // older RT kernels only say so in uname -v.
  std::string model = "unknown";
  if (realtime && trim(*realtime) == "1") model = "PREEMPT_RT";
  else if (version) {
    if (version->find("PREEMPT_RT") != std::string::npos) model = "PREEMPT_RT";
    else if (version->find("PREEMPT_DYNAMIC") != std::string::npos) model = "PREEMPT_DYNAMIC";
    else if (version->find("PREEMPT ") != std::string::npos) model = "PREEMPT";
    else model = "none";
  }
  facts["preempt_model"] = model;
  facts["preempt_rt"] = model == "PREEMPT_RT";
  // Xen's control domain says so in its capabilities; a host cell measured
  // there is the seed's "Dom0" row, not bare metal.
  json xen_role = nullptr;
  if (auto type = read("hypervisor_type"); type && trim(*type) == "xen") {
    auto caps = read("xen_capabilities");
    xen_role = caps && caps->find("control_d") != std::string::npos ? "dom0" : "domU";
  }
  facts["xen_role"] = xen_role;
  json cpu_count = nullptr;
  if (auto n = read("cpu_count")) {
    try {
      cpu_count = std::stoi(trim(*n));
    } catch (...) {
    }
  }
  facts["cpu_count"] = cpu_count;
  json cpu_model = nullptr;
  if (auto info = read("cpuinfo")) {
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
  // Settings that move latency, so that two runs' differences can be
  // explained (vmlat compare lists the ones that differ).
  json tuning = nullptr;
  if (auto text = read("tuning")) {
    tuning = json::object();
    json governors = json::array(), modules = json::object();
    std::istringstream lines(*text);
    std::string line;
    while (std::getline(lines, line)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = line.substr(0, eq), value = trim(line.substr(eq + 1));
      if (key == "governor") {
        if (std::find(governors.begin(), governors.end(), value) == governors.end()) governors.push_back(value);
      } else if (key.rfind("module:", 0) == 0) {
        // module:kvm_intel/parameters/ple_gap -> kvm_intel.ple_gap
        std::string name = key.substr(7);
        auto slash = name.find("/parameters/");
        if (slash != std::string::npos) modules[name.substr(0, slash) + "." + name.substr(slash + 12)] = value;
      } else if (key == "sched_rt_runtime_us" || key == "sched_rt_period_us") {
        try {
          tuning[key] = std::stoll(value);
        } catch (const std::exception&) {
          tuning[key] = value;
        }
      } else {
        tuning[key] = value;
      }
    }
    tuning["cpufreq_governors"] = governors;
    tuning["kvm_module_parameters"] = modules;
  }
  facts["tuning"] = tuning;
  return facts;
}

const std::vector<std::pair<std::string, std::vector<std::string>>>& system_fact_commands() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> commands = {
      {"hostname", {"uname", "-n"}},
      {"machine", {"uname", "-m"}},
      {"kernel_release", {"uname", "-r"}},
      {"kernel_version", {"uname", "-v"}},
      {"kernel_cmdline", {"cat", "/proc/cmdline"}},
      {"realtime", {"cat", "/sys/kernel/realtime"}},
      {"cpu_count", {"nproc", "--all"}},
      {"cpuinfo", {"cat", "/proc/cpuinfo"}},
      {"hypervisor_type", {"cat", "/sys/hypervisor/type"}},
      {"xen_capabilities", {"cat", "/proc/xen/capabilities"}},
      // Settings known to move latency (docs/results-format.md, "tuning"),
      // in one round trip: key=value lines from a constant script of ours.
      {"tuning",
       {"sh", "-c",
        "r() { [ -r \"$2\" ] && printf '%s=%s\\n' \"$1\" \"$(cat \"$2\" 2>/dev/null)\"; }; "
        "r clocksource /sys/devices/system/clocksource/clocksource0/current_clocksource; "
        "r sched_rt_runtime_us /proc/sys/kernel/sched_rt_runtime_us; "
        "r sched_rt_period_us /proc/sys/kernel/sched_rt_period_us; "
        "r isolated_cpus /sys/devices/system/cpu/isolated; "
        "r nohz_full_cpus /sys/devices/system/cpu/nohz_full; "
        "r smt /sys/devices/system/cpu/smt/control; "
        "for f in /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor; do r governor \"$f\"; done; "
        "for f in /sys/module/kvm*/parameters/*; do r \"module:${f#/sys/module/}\" \"$f\"; done; true"}}};
  return commands;
}

std::map<std::string, std::optional<std::string>> read_in_one_round_trip(
    Executor& where, const std::vector<std::pair<std::string, std::vector<std::string>>>& commands) {
  // Prints "key RS value US" records (GS as the value: the command failed).
  std::string script =
      "r() { k=$1; shift; if o=$(\"$@\" 2>/dev/null); then printf '%s\\036%s\\037' \"$k\" \"$o\"; "
      "else printf '%s\\036\\035\\037' \"$k\"; fi; }";
  for (const auto& [key, argv] : commands) script += "; r " + remote_command_line({key}) + " " + remote_command_line(argv);
  auto r = where.run(Command{{"sh", "-c", script}, std::chrono::seconds(60)});
  if (!r.ok()) throw InfraError(r.describe());
  std::map<std::string, std::optional<std::string>> raw;
  std::size_t at = 0;
  while (at < r.out.size()) {
    auto end = r.out.find('\037', at);
    if (end == std::string::npos) break;
    std::string record = r.out.substr(at, end - at);
    at = end + 1;
    auto sep = record.find('\036');
    if (sep == std::string::npos) continue;
    std::string value = record.substr(sep + 1);
    raw[record.substr(0, sep)] = value == "\035" ? std::nullopt : std::optional<std::string>(value);
  }
  return raw;
}

json collect_system_facts(Executor& where) {
  // One round trip where a shell runs the script (a guest's agent exec under
  // TCG costs ~0.1-0.3 s per command); one command each otherwise.
  try {
    const auto raw = read_in_one_round_trip(where, system_fact_commands());
    if (raw.size() == system_fact_commands().size())
      return system_facts_from([&](const std::string& key) -> std::optional<std::string> {
        auto it = raw.find(key);
        return it == raw.end() ? std::nullopt : it->second;
      });
  } catch (const PhaseTimeout&) {
    throw;
  } catch (const InfraError&) {
    // No shell there (or it failed): the commands one by one.
  }
  std::map<std::string, std::vector<std::string>> argv_of(system_fact_commands().begin(), system_fact_commands().end());
  return system_facts_from([&](const std::string& key) -> std::optional<std::string> {
    auto r = where.run(Command{argv_of.at(key), std::chrono::seconds(20)});
    if (!r.ok()) return std::nullopt;
    return r.out;
  });
}

}  // namespace vmlat
