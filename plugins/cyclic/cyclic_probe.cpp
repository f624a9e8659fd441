// The cyclic probe: a periodic SCHED_FIFO task per CPU measuring its wake-up
// latency, run either as cyclictest (rt-tests) or as vmlat's own static
// vmlat-probe. See README.md.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <vmlat/text.hpp>
#include <vmlat/cpus.hpp>
#include <vmlat/plugin.hpp>
#include <vmlat/units.hpp>

#include "cyclictest_parse.hpp"
#include "native_parse.hpp"

namespace vmlat::cyclic {
namespace {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using std::chrono::seconds;

constexpr milliseconds kHelperTimeout = 20s;   // mktemp, cat, rm, --version, ...
constexpr milliseconds kRunMargin = 30s;       // on top of the cell's duration
constexpr milliseconds kInterruptGrace = 5s;   // to print a partial result after SIGINT

std::string first_line(std::string_view text) {
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string line = trim(std::string(text.substr(0, nl)));
    if (!line.empty()) return line;
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return {};
}

// The first non-empty line `argv` prints (stdout, else stderr), or null.
json version_line(Executor& target, std::vector<std::string> argv) {
  try {
    auto r = target.run(Command{std::move(argv), kHelperTimeout});
    if (r.signal != 0 || r.timed_out) return nullptr;
    std::string line = first_line(r.out);
    if (line.empty()) line = first_line(r.err);
    if (line.empty()) return nullptr;
    return line;
  } catch (const InfraError&) {
    return nullptr;
  }
}

// cyclictest options the probe sets from the cell and its settings, which
// extra_args must not repeat or override. Long options may be abbreviated
// (getopt_long), so any prefix of one of these names counts.
constexpr std::string_view kOwnedShort = "atpihHDlmqNSv";
constexpr std::string_view kOwnedLong[] = {"affinity", "threads",  "priority", "interval", "histogram",
                                           "histofall", "histfile", "duration", "loops",    "mlockall",
                                           "quiet",    "nsecs",    "smp",      "verbose",  "json",
                                           "policy"};

std::string owned_cyclictest_option(std::string_view arg) {
  if (arg.size() >= 3 && arg.substr(0, 2) == "--") {
    std::string_view name = arg.substr(2);
    name = name.substr(0, name.find('='));
    for (std::string_view owned : kOwnedLong)
      if (!name.empty() && owned.substr(0, name.size()) == name) return "--" + std::string(owned);
    return {};
  }
  if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-' && kOwnedShort.find(arg[1]) != std::string_view::npos)
    return std::string("-") + arg[1];
  return {};
}

class CyclicProbe final : public Probe {
 public:
  void configure(Settings& settings) override {
    engine_ = settings.choice("engine", "cyclictest", {"cyclictest", "native"});
    priority_ = static_cast<int>(settings.integer("priority", 95, 1, 99));
    const nanoseconds range = settings.duration("histogram_range", 20ms, 1us, 1s);
    if (range % 1us != 0ns)
      settings.error("histogram_range", "must be a whole number of microseconds (the buckets are 1us wide), not " +
                                            format_duration(range));
    else
      range_us_ = static_cast<std::uint64_t>(duration_cast<microseconds>(range).count());
    mlock_ = settings.boolean("mlock", true);
    extra_args_ = settings.string_list("extra_args", {});
    if (engine_ != "cyclictest" && !extra_args_.empty())
      settings.error("extra_args", "only engine = \"cyclictest\" takes extra_args (engine is \"" + engine_ + "\")");
    for (const auto& arg : extra_args_) {
      if (auto owned = owned_cyclictest_option(arg); !owned.empty()) {
        settings.error("extra_args", "\"" + arg + "\" would override " + owned +
                                         ", which the probe sets itself (from the cell or this table)");
        break;
      }
    }
    facts_ = json::object();
  }

  ProbeResult run(Executor& target, CellContext& ctx) override {
    const CellSpec& cell = ctx.cell();
    if (cell.period <= 0ns) throw InfraError("cyclic probe: the cell has no period");
    if (cell.duration <= 0ns) throw InfraError("cyclic probe: the cell has no duration");
    const std::vector<int> cpus = resolve_cpus(target, cell);
    facts_ = json{{"engine", engine_},
                  {"engine_version", nullptr},
                  {"argv", json::array()},
                  {"policy", "SCHED_FIFO"},
                  {"priority", priority_},
                  {"mlock", mlock_},
                  {"histogram_range_us", range_us_},
                  {"cpus", cpus}};
    ProbeResult result = engine_ == "native" ? run_native(target, ctx, cpus) : run_cyclictest(target, ctx, cpus);
    result.facts = facts_;
    return result;
  }

  json facts() const override { return facts_; }

 private:
  // The cell's CPUs, or every CPU a process started on `target` may run on
  // (Cpus_allowed_list, the list behind nproc; nproc's count as fallback).
  std::vector<int> resolve_cpus(Executor& target, const CellSpec& cell) {
    if (!cell.cpus.empty()) {
      std::vector<int> cpus = cell.cpus;
      std::sort(cpus.begin(), cpus.end());
      cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
      if (cpus.front() < 0) throw InfraError("cyclic probe: negative CPU number in the cell");
      return cpus;
    }
    auto status = target.run(Command{{"cat", "/proc/self/status"}, kHelperTimeout});
    if (status.ok()) {
      constexpr std::string_view key = "Cpus_allowed_list:";
      const auto at = status.out.find(key);
      if (at != std::string::npos) {
        const auto end = status.out.find('\n', at);
        const std::string list = status.out.substr(at + key.size(), end == std::string::npos ? end : end - at - key.size());
        try {
          return parse_cpu_list(list);
        } catch (const std::invalid_argument& e) {
          throw InfraError("cyclic probe: cannot read the CPUs of " + target.name() + ": " + e.what());
        }
      }
    }
    auto nproc = target.run(Command{{"nproc"}, kHelperTimeout});
    if (!nproc.ok())
      throw InfraError("cyclic probe: cannot count the CPUs of " + target.name() + ": nproc: " + nproc.describe());
    int n = 0;
    try {
      n = std::stoi(trim(nproc.out));
    } catch (const std::exception&) {
    }
    if (n <= 0) throw InfraError("cyclic probe: nproc on " + target.name() + " printed '" + trim(nproc.out) + "'");
    std::vector<int> cpus(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) cpus[static_cast<std::size_t>(i)] = i;
    return cpus;
  }

  // The measuring command: bounded by the cell's duration + margin; on an
  // interrupt the engine gets SIGINT and prints what it has measured.
  static Command measuring_command(std::vector<std::string> argv, const CellSpec& cell) {
    Command command{std::move(argv), duration_cast<milliseconds>(cell.duration) + kRunMargin};
    command.graceful_interrupt = true;
    command.interrupt_grace = kInterruptGrace;
    return command;
  }

  // Parses an engine's result. After an interrupt, a result that does not
  // parse is no result: the cell is interrupted without data, not broken.
  template <class Parse>
  static auto partial_ok(bool interrupted, CellContext& ctx, Parse parse) {
    try {
      return parse();
    } catch (const InfraError& e) {
      if (!interrupted) throw;
      ctx.log().warn(std::string("cyclic: the interrupted probe left no usable result: ") + e.what());
      throw Cancelled();
    }
  }

  static void check_cpus(const std::map<int, Histogram>& measured, const std::vector<int>& asked,
                         const std::string& engine) {
    std::vector<int> got;
    for (const auto& [cpu, histogram] : measured) got.push_back(cpu);
    if (got != asked)
      throw InfraError(engine + " measured CPUs " + format_cpu_list(got) + " but CPUs " + format_cpu_list(asked) +
                       " were asked for");
  }

  ProbeResult run_cyclictest(Executor& target, CellContext& ctx, const std::vector<int>& cpus) {
    const CellSpec& cell = ctx.cell();
    const auto program = target.find_program("cyclictest");
    if (!program) throw InfraError("cyclictest not found on " + target.name() + ": install the Debian package rt-tests");
    if (cell.period < 1us || cell.period % 1us != 0ns)
      throw InfraError("cyclictest takes its interval in whole microseconds, so it cannot run at a period of " +
                       format_duration(cell.period) + " (engine = \"native\" can)");
    facts_["engine_version"] = version_line(target, {*program, "--help"});

    // The JSON file lives on the target; it is read back through the executor.
    // In the target's temp dir: inside the run's work directory on this
    // machine (never /tmp), a tmpfs in a guest.
    auto made = target.run(Command{{"mktemp", "-p", target.temp_dir(), "vmlat-cyclictest.XXXXXX"}, kHelperTimeout});
    const std::string json_path = trim(made.out);
    if (!made.ok() || json_path.empty() || json_path.front() != '/')
      throw InfraError("cyclic probe: mktemp on " + target.name() + " failed: " + made.describe());
    struct RemoveOnExit {
      Executor& target;
      const std::string& path;
      ~RemoveOnExit() {
        // Also after an interrupt: the removal itself must not be cancelled.
        try {
          PhaseScope cleanup("cyclic-cleanup", Clock::now() + kHelperTimeout, /*interruptible=*/false);
          target.run(Command{{"rm", "-f", path}, kHelperTimeout});
        } catch (...) {
        }
      }
    } remove_on_exit{target, json_path};

    const auto period_us = duration_cast<microseconds>(cell.period).count();
    std::vector<std::string> argv{*program, "-q"};
    if (mlock_) argv.push_back("-m");
    argv.insert(argv.end(), {"-p", std::to_string(priority_), "-i", std::to_string(period_us), "-t",
                             std::to_string(cpus.size()), "-a", format_cpu_list(cpus)});
    if (cell.duration % 1s == 0ns) {
      argv.insert(argv.end(), {"-D", std::to_string(duration_cast<seconds>(cell.duration).count())});
    } else {
      // -D only takes whole seconds: count the wake-ups instead.
      const auto loops = (cell.duration + cell.period - 1ns) / cell.period;
      argv.insert(argv.end(), {"-l", std::to_string(loops)});
    }
    // -h also makes every thread use the same interval and priority. The text
    // histogram it prints is redundant with --json: drop it.
    argv.insert(argv.end(), {"-h", std::to_string(range_us_), "--histfile=/dev/null", "--json=" + json_path});
    argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());
    facts_["argv"] = argv;

    ctx.log().info("cyclic: running cyclictest on " + target.name() + " (CPUs " + format_cpu_list(cpus) + ", " +
                   format_duration(cell.duration) + ")");
    auto run = target.run(measuring_command(argv, cell));
    ctx.save_artifact("cyclictest.out", run.out);
    ctx.save_artifact("cyclictest.err", run.err);
    if (!run.ok()) {
      if (run.interrupted) throw Cancelled();  // stopped without a result
      throw InfraError("cyclictest failed on " + target.name() + ": " + run.describe());
    }

    ProbeResult result;
    result.interrupted = run.interrupted;
    {
      // After an interrupt the result must still be read back.
      PhaseScope collect("cyclic-collect", Clock::now() + kHelperTimeout, /*interruptible=*/false);
      auto read = target.run(Command{{"cat", json_path}, kHelperTimeout});
      // The raw file is evidence either way; it is named .json only if it is
      // JSON, so that every .json file of a run directory parses.
      if (read.ok()) ctx.save_artifact(json::accept(read.out) ? "cyclictest.json" : "cyclictest.json.invalid", read.out);
      result.per_cpu = partial_ok(run.interrupted, ctx, [&] {
        if (!read.ok())
          throw InfraError("cyclic probe: cannot read " + json_path + " on " + target.name() + ": " + read.describe());
        return parse_cyclictest_json(read.out, range_us_);
      });
    }
    check_cpus(result.per_cpu, cpus, "cyclictest");
    return result;
  }

  ProbeResult run_native(Executor& target, CellContext& ctx, const std::vector<int>& cpus) {
    const CellSpec& cell = ctx.cell();
    const auto program = target.find_program("vmlat-probe");
    if (!program)
      throw InfraError("vmlat-probe not found on " + target.name() +
                       ": it is built into build/libexec by the vmlat build (installed to libexec/vmlat); "
                       "set VMLAT_LIBEXEC_PATH or put it in PATH");
    if (cell.period < 1us)
      throw InfraError("vmlat-probe needs a period of at least 1us, not " + format_duration(cell.period));
    facts_["engine_version"] = version_line(target, {*program, "--version"});

    // Whole milliseconds, rounded up.
    const auto duration_ms = (cell.duration + 1ms - 1ns) / 1ms;
    std::vector<std::string> argv{*program,
                                  "--period-ns",
                                  std::to_string(cell.period.count()),
                                  "--duration-ms",
                                  std::to_string(duration_ms),
                                  "--cpus",
                                  format_cpu_list(cpus),
                                  "--priority",
                                  std::to_string(priority_),
                                  "--histogram-us",
                                  std::to_string(range_us_)};
    if (!mlock_) argv.push_back("--no-mlock");
    facts_["argv"] = argv;

    ctx.log().info("cyclic: running vmlat-probe on " + target.name() + " (CPUs " + format_cpu_list(cpus) + ", " +
                   format_duration(cell.duration) + ")");
    auto run = target.run(measuring_command(argv, cell));
    ctx.save_artifact("native-probe.out", run.out);
    ctx.save_artifact("native-probe.err", run.err);
    // 130: stopped by SIGINT/SIGTERM, with a complete (partial) result.
    const bool interrupted_exit = run.signal == 0 && !run.timed_out && run.exit_code == 130;
    if (!run.ok() && !interrupted_exit) {
      if (run.interrupted) throw Cancelled();  // stopped without a result
      throw InfraError("vmlat-probe failed on " + target.name() + ": " + run.describe());
    }

    NativeResult parsed = partial_ok(run.interrupted, ctx, [&] { return parse_native_output(run.out, range_us_); });
    if (parsed.period_ns != cell.period.count())
      throw InfraError("vmlat-probe measured a period of " + std::to_string(parsed.period_ns) + "ns, not the " +
                       std::to_string(cell.period.count()) + "ns asked for");
    if (parsed.priority != priority_)
      throw InfraError("vmlat-probe ran at priority " + std::to_string(parsed.priority) + ", not " +
                       std::to_string(priority_));
    check_cpus(parsed.per_cpu, cpus, "vmlat-probe");
    facts_["policy"] = parsed.policy == "fifo" ? json("SCHED_FIFO") : json(parsed.policy);
    ProbeResult result;
    result.interrupted = run.interrupted || interrupted_exit || parsed.interrupted;
    if (!result.interrupted) {
      for (const auto& [cpu, histogram] : parsed.per_cpu)
        if (histogram.samples() == 0)
          throw InfraError("vmlat-probe recorded no samples on CPU " + std::to_string(cpu));
    }
    if (result.interrupted) ctx.log().warn("cyclic: vmlat-probe was interrupted; its result is partial");
    result.per_cpu = std::move(parsed.per_cpu);
    return result;
  }

  std::string engine_ = "cyclictest";
  int priority_ = 95;
  std::uint64_t range_us_ = 20000;
  bool mlock_ = true;
  std::vector<std::string> extra_args_;
  json facts_ = json::object();
};

}  // namespace
}  // namespace vmlat::cyclic

VMLAT_PLUGIN(vmlat::cyclic::CyclicProbe, "cyclic", "probe", "0.1.0",
             "periodic SCHED_FIFO task per CPU measuring wake-up latency (cyclictest or vmlat-probe)")
