// The cyclic probe: a periodic SCHED_FIFO task per CPU measuring its wake-up
// latency, run as cyclictest (rt-tests), as vmlat's own static vmlat-probe,
// or as the kernel's timerlat tracer (rtla timerlat hist: IRQ and thread
// latency). See README.md.
#include <algorithm>
#include <cstdio>
#include <map>
#include <optional>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <memory>
#include <thread>
#include <vector>

#include <vmlat/frame.hpp>

#include <vmlat/local.hpp>
#include <vmlat/text.hpp>
#include <vmlat/cpus.hpp>
#include <vmlat/plugin.hpp>
#include <vmlat/units.hpp>

#include "cyclictest_parse.hpp"
#include "native_parse.hpp"
#include "rtla_parse.hpp"
#include "tracing.hpp"

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
// cyclictest --spike-nodes: preallocated by cyclictest; spikes beyond it are
// counted, not kept.
constexpr std::uint64_t kCyclictestSpikeNodes = 10000;
// The host-side ring buffer of a VM's vCPU threads, per CPU: it runs for the
// whole measurement, so it must hold the time back to the guest's spike.
constexpr std::uint64_t kHostTraceKb = 8192;
const std::vector<std::string> kDefaultTraceEvents = {
    "sched:sched_switch", "sched:sched_wakeup", "sched:sched_waking", "irq",
    "timer:hrtimer_start", "timer:hrtimer_expire_entry", "timer:hrtimer_expire_exit"};

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

// engine native, streaming: vmlat-probe --window-ms runs for as long as the
// stream lives; its output is read as it comes (Job::read_output, bounded),
// one frame per window. Every window is checked (parse_native_window) and
// against the one before: consecutive indices, each CPU's span starting where
// its previous span ended. A window that does not follow is an error, never
// bridged silently.
class NativeStream final : public ProbeStream {
 public:
  NativeStream(std::unique_ptr<Job> job, json facts, std::uint64_t range_us, std::int64_t period_ns, int priority,
               std::vector<int> cpus, std::string target_name)
      : job_(std::move(job)), facts_(std::move(facts)), range_us_(range_us), period_ns_(period_ns),
        priority_(priority), cpus_(std::move(cpus)), target_(std::move(target_name)) {}
  ~NativeStream() override { stop(); }

  std::optional<ProbeWindow> next(Deadline deadline) override {
    for (;;) {
      if (auto w = take()) return w;
      if (ended_) {
        if (!final_seen_)
          throw InfraError("vmlat-probe on " + target_ + " ended without its final window: " + end_.describe());
        return std::nullopt;
      }
      const bool alive = job_->running();
      std::string chunk = job_->read_output(kReadChunk);  // throws when the target is gone
      if (!chunk.empty()) {
        decoder_.feed(chunk);
        continue;
      }
      if (!alive) {
        // Its last bytes were read above; what stop() returns is the rest.
        end_ = job_->stop(kStopGrace);
        decoder_.feed(end_.out);
        decoder_.finish();
        ended_ = true;
        continue;
      }
      if (Clock::now() >= deadline) return std::nullopt;
      check_interrupt();
      std::this_thread::sleep_for(std::min<Clock::duration>(kPoll, std::max<Clock::duration>(deadline - Clock::now(), 0ns)));
    }
  }

  std::vector<ProbeWindow> stop() noexcept override {
    std::vector<ProbeWindow> out;
    if (stopped_) return out;
    stopped_ = true;
    try {
      if (!ended_) {
        // SIGTERM: the probe ends its current window and writes it (final).
        end_ = job_->stop(kStopGrace);
        decoder_.feed(end_.out);
        decoder_.finish();
        ended_ = true;
      }
      while (auto w = take()) out.push_back(std::move(*w));
    } catch (...) {
      // A broken last frame: the windows before it stand.
    }
    return out;
  }

  json facts() const override { return facts_; }


 private:
  static constexpr std::size_t kReadChunk = 1 << 20;
  static constexpr milliseconds kPoll{50};
  static constexpr milliseconds kStopGrace{5000};

  std::optional<ProbeWindow> take() {
    for (const auto& e : decoder_.take_errors())
      throw InfraError("vmlat-probe on " + target_ + ": corrupt window frame: " + e);
    auto f = decoder_.next();
    if (!f) return std::nullopt;
    if (f->kind != kNativeWindowFrameKind)
      throw InfraError("vmlat-probe on " + target_ + " printed a frame of kind '" + f->kind + "', expected '" +
                       std::string(kNativeWindowFrameKind) + "'");
    if (final_seen_) throw InfraError("vmlat-probe on " + target_ + " printed a window after its final one");
    NativeWindow w = parse_native_window(f->payload, range_us_);
    const std::string where = "vmlat-probe on " + target_ + ", window " + std::to_string(w.index);
    if (w.result.period_ns != period_ns_ || w.result.priority != priority_)
      throw InfraError(where + ": measured at period " + std::to_string(w.result.period_ns) + "ns, priority " +
                       std::to_string(w.result.priority) + ", not as asked");
    if (w.index != next_index_)
      throw InfraError(where + ": expected window " + std::to_string(next_index_) + " (a window was lost)");
    std::vector<int> got;
    for (const auto& [cpu, span] : w.span_mono_ns) got.push_back(cpu);
    if (!w.final && got != cpus_)
      throw InfraError(where + ": CPUs " + format_cpu_list(got) + ", expected " + format_cpu_list(cpus_));
    for (const auto& [cpu, span] : w.span_mono_ns) {
      auto prev = last_end_.find(cpu);
      if (prev != last_end_.end() && prev->second != span.first)
        throw InfraError(where + ", CPU " + std::to_string(cpu) + ": starts at " + std::to_string(span.first) +
                         " but the previous window ended at " + std::to_string(prev->second) +
                         ": the windows do not tile time");
      last_end_[cpu] = span.second;
    }
    ++next_index_;
    final_seen_ = w.final;
    ProbeWindow pw;
    pw.index = w.index;
    pw.span_mono_ns = w.span_mono_ns;
    pw.start_unix_ns = w.start_unix_ns;
    pw.end_unix_ns = w.end_unix_ns;
    pw.final = w.final;
    pw.result.per_cpu = std::move(w.result.per_cpu);
    pw.result.spikes = std::move(w.result.spikes);
    pw.result.interrupted = w.result.interrupted;
    pw.result.facts = facts_;
    return pw;
  }

  std::unique_ptr<Job> job_;
  json facts_;
  std::uint64_t range_us_;
  std::int64_t period_ns_;
  int priority_;
  std::vector<int> cpus_;
  std::string target_;
  frame::Decoder decoder_;
  std::map<int, std::int64_t> last_end_;
  std::uint64_t next_index_ = 0;
  bool final_seen_ = false, ended_ = false, stopped_ = false;
  CommandResult end_;
};

class CyclicProbe final : public Probe {
 public:
  void configure(Settings& settings) override {
    engine_ = settings.choice("engine", "cyclictest", {"cyclictest", "native", "timerlat"});
    priority_ = static_cast<int>(settings.integer("priority", 95, 1, 99));
    const nanoseconds range = settings.duration("histogram_range", 20ms, 1us, 1s);
    if (range % 1us != 0ns)
      settings.error("histogram_range", "must be a whole number of microseconds (the buckets are 1us wide), not " +
                                            format_duration(range));
    else
      range_us_ = static_cast<std::uint64_t>(duration_cast<microseconds>(range).count());
    if (engine_ == "timerlat" && range_us_ > 9999999) range_us_ = 9999999;
    mlock_ = settings.boolean("mlock", true);
    if (engine_ == "timerlat" && settings.has("mlock"))
      settings.error("mlock", "engine = \"timerlat\" measures with kernel threads: mlock does not apply");
    spikes_ = static_cast<std::uint64_t>(settings.integer("spikes", 10, 0, 1000));
    if (engine_ == "timerlat" && settings.has("spikes"))
      settings.error("spikes", "engine = \"timerlat\" records no spike list (rtla's histogram has no timestamps)");
    const nanoseconds threshold = settings.duration("spike_threshold", 100us, 1us, 1s);
    if (threshold % 1us != 0ns) settings.error("spike_threshold", "must be a whole number of microseconds");
    spike_threshold_us_ = static_cast<std::uint64_t>(duration_cast<microseconds>(threshold).count());
    if (engine_ != "cyclictest" && settings.has("spike_threshold"))
      settings.error("spike_threshold", "only engine = \"cyclictest\" takes spike_threshold (engine native keeps the "
                                        "worst wake-ups whatever their latency)");
    trace_.above = settings.duration("trace_above", 0ns, 0ns, 1h);
    if (trace_.above > 0ns && engine_ != "native" && trace_.above % 1us != 0ns)
      settings.error("trace_above", "engine \"" + engine_ + "\" takes trace_above in whole microseconds");
    trace_.events = settings.string_list("trace_events", kDefaultTraceEvents);
    for (const auto& e : trace_.events)
      if (auto why = check_trace_event(e); !why.empty()) {
        settings.error("trace_events", why);
        break;
      }
    trace_.buffer_kb = static_cast<std::uint64_t>(settings.integer("trace_buffer_kb", 1024, 16, 1 << 20));
    if (trace_.above == 0ns)
      for (const char* key : {"trace_events", "trace_buffer_kb"})
        if (settings.has(key)) settings.error(key, std::string(key) + " only matters with trace_above");
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

  std::vector<std::string> series() const override {
    if (engine_ == "timerlat") return {"thread", "irq"};
    return {default_series_name};
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
                  {"cpus", cpus},
                  {"spikes_per_cpu", engine_ == "timerlat" ? 0 : spikes_}};
    if (trace_.above > 0ns) facts_["trace"] = json{{"above_ns", trace_.above.count()}};
    ProbeResult result = engine_ == "native"     ? run_native(target, ctx, cpus)
                         : engine_ == "timerlat" ? run_timerlat(target, ctx, cpus)
                                                 : run_cyclictest(target, ctx, cpus);
    result.facts = facts_;
    return result;
  }

  json facts() const override { return facts_; }

  // engine native only: cyclictest and rtla print their histograms once, at
  // the end, so they cannot stream (the monitor runs them window after
  // window, with gaps between the runs).
  std::unique_ptr<ProbeStream> stream(Executor& target, CellContext& ctx, nanoseconds window) override {
    if (engine_ != "native") return nullptr;
    const CellSpec& cell = ctx.cell();
    if (cell.period < 1us)
      throw InfraError("vmlat-probe needs a period of at least 1us, not " + format_duration(cell.period));
    if (window < 1ms || window % 1ms != 0ns)
      throw InfraError("engine native streams windows of whole milliseconds, not " + format_duration(window));
    if (window < cell.period)
      throw InfraError("a window (" + format_duration(window) + ") must be at least one period (" +
                       format_duration(cell.period) + ") long");
    if (trace_.above > 0ns)
      throw InfraError("trace_above does not apply to a continuous measurement (the trace stops at the first spike): "
                       "leave it out of the probe monitored");
    const auto program = target.find_program("vmlat-probe");
    if (!program)
      throw InfraError("vmlat-probe not found on " + target.name() +
                       ": it is built into build/libexec by the vmlat build (installed to libexec/vmlat)");
    const std::vector<int> cpus = resolve_cpus(target, cell);
    std::vector<std::string> argv{*program,       "--period-ns",  std::to_string(cell.period.count()),
                                  "--window-ms",  std::to_string(window / 1ms),
                                  "--cpus",       format_cpu_list(cpus),
                                  "--priority",   std::to_string(priority_),
                                  "--histogram-us", std::to_string(range_us_),
                                  "--spikes",     std::to_string(spikes_)};
    if (!mlock_) argv.push_back("--no-mlock");
    json facts{{"engine", engine_},
               {"engine_version", version_line(target, {*program, "--version"})},
               {"argv", argv},
               {"policy", "SCHED_FIFO"},
               {"priority", priority_},
               {"mlock", mlock_},
               {"histogram_range_us", range_us_},
               {"cpus", cpus},
               {"spikes_per_cpu", spikes_},
               {"window_ns", window.count()},
               {"streaming", true}};
    facts_ = facts;
    ctx.log().info("cyclic: streaming vmlat-probe on " + target.name() + " (CPUs " + format_cpu_list(cpus) +
                   ", windows of " + format_duration(window) + ")");
    // No timeout: it runs until the stream is stopped.
    Command command{argv, std::chrono::hours(24 * 365 * 10)};
    return std::make_unique<NativeStream>(target.start(command), std::move(facts), range_us_, cell.period.count(),
                                          priority_, cpus, target.name());
  }

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
    if (cell.period < 1us || cell.period % 1us != 0ns)
      throw InfraError("cyclictest takes its interval in whole microseconds, so it cannot run at a period of " +
                       format_duration(cell.period) + " (engine = \"native\" can)");
    // The helpers around the run go in few round trips: an exec in a TCG
    // guest costs 0.1-0.15 s, and one at a time (which, --help, mktemp, cat,
    // which, --clocks, rm) they were most of a second of every Xen cell.
    // Now: the programs (find_programs: one exec in a guest), then its
    // version and the JSON file's mktemp together, and after the run the
    // JSON back, the clock offset and the removal together
    // (read_in_one_round_trip). A value a batch did not give is asked for on
    // its own, as before.
    auto found = target.find_programs({"cyclictest", "vmlat-probe"});
    const auto program = found["cyclictest"];
    if (!program) throw InfraError("cyclictest not found on " + target.name() + ": install the Debian package rt-tests");
    probe_program_ = found["vmlat-probe"];
    clocks_output_.reset();
    // The JSON file lives on the target; it is read back through the executor.
    // In the target's temp dir: inside the run's work directory on this
    // machine (never /tmp), a tmpfs in a guest.
    const std::vector<std::string> mktemp{"mktemp", "-p", target.temp_dir(), "vmlat-cyclictest.XXXXXX"};
    std::map<std::string, std::optional<std::string>> before;
    try {
      before = read_in_one_round_trip(target, {{"version", {*program, "--help"}}, {"json_path", mktemp}});
    } catch (const InfraError&) {
    }
    auto batched = [&](const char* key) -> std::optional<std::string> {
      auto it = before.find(key);
      if (it == before.end() || !it->second) return std::nullopt;
      return *it->second;
    };
    if (auto help = batched("version"); help && !first_line(*help).empty())
      facts_["engine_version"] = first_line(*help);
    else
      facts_["engine_version"] = version_line(target, {*program, "--help"});
    std::string json_path;
    if (auto made = batched("json_path"); made && !trim(*made).empty() && trim(*made).front() == '/' &&
                                           trim(*made).find('\n') == std::string::npos) {
      json_path = trim(*made);
    } else {
      auto r = target.run(Command{mktemp, kHelperTimeout});
      json_path = trim(r.out);
      if (!r.ok() || json_path.empty() || json_path.front() != '/')
        throw InfraError("cyclic probe: mktemp on " + target.name() + " failed: " + r.describe());
    }
    struct RemoveOnExit {
      Executor& target;
      const std::string& path;
      bool removed = false;
      ~RemoveOnExit() {
        if (removed) return;
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
    if (spikes_ > 0)
      argv.insert(argv.end(), {"--spike=" + std::to_string(spike_threshold_us_),
                               "--spike-nodes=" + std::to_string(kCyclictestSpikeNodes)});
    std::optional<TargetTrace> trace;
    if (trace_.above > 0ns) {
      // -b stops cyclictest (the whole run, not only the trace) at the first
      // wake-up over the bound, after writing a marker (--tracemark).
      argv.insert(argv.end(), {"-b", std::to_string(duration_cast<microseconds>(trace_.above).count()), "--tracemark"});
      trace.emplace(target, trace_, ctx);
      facts_["trace"]["ftrace"] = trace->facts();
    }
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
      // The JSON back, the clock offset for the spike times and the file
      // removed in one round trip; the JSON on its own if that did not give
      // it (then with cat's error).
      CommandResult read;
      bool read_batched = false;
      try {
        std::vector<std::pair<std::string, std::vector<std::string>>> after_commands{
            {"json", {"cat", json_path}}, {"rm", {"rm", "-f", json_path}}};
        if (spikes_ > 0 && probe_program_) after_commands.push_back({"clocks", {*probe_program_, "--clocks"}});
        auto after = read_in_one_round_trip(target, after_commands);
        if (auto it = after.find("clocks"); it != after.end() && it->second) clocks_output_ = *it->second;
        if (auto it = after.find("json"); it != after.end() && it->second) {
          read.out = *it->second;
          read.exit_code = 0;
          read_batched = true;
        }
        if (auto it = after.find("rm"); it != after.end() && it->second) remove_on_exit.removed = true;
      } catch (const InfraError&) {
      }
      if (!read_batched) read = target.run(Command{{"cat", json_path}, kHelperTimeout});
      // The raw file is evidence either way; it is named .json only if it is
      // JSON, so that every .json file of a run directory parses.
      if (read.ok()) ctx.save_artifact(json::accept(read.out) ? "cyclictest.json" : "cyclictest.json.invalid", read.out);
      result.per_cpu = partial_ok(run.interrupted, ctx, [&] {
        if (!read.ok())
          throw InfraError("cyclic probe: cannot read " + json_path + " on " + target.name() + ": " + read.describe());
        return parse_cyclictest_json(read.out, range_us_);
      });
      CyclictestStdout printed = parse_cyclictest_stdout(run.out, cyclictest_thread_cpus(read.out));
      if (spikes_ > 0) keep_cyclictest_spikes(target, ctx, printed, result);
      if (trace) {
        const bool fired = printed.break_value_us >= 0;
        facts_["trace"]["fired"] = fired ? json{{"latency_ns", printed.break_value_us * 1000}} : json(nullptr);
        if (fired) {
          if (trace->save("trace.txt")) result.traces.push_back("trace.txt");
          // cyclictest -b ends the run at the spike: what it measured is kept
          // as evidence, but it is not a measurement of the whole cell.
          result.invalid = "cyclictest stopped at the first wake-up over trace_above (" +
                           std::to_string(printed.break_value_us) + "us > " + format_duration(trace_.above) +
                           "), as -b does: the trace is saved (trace.txt) but the cell was not measured for its "
                           "duration; engine = \"native\" traces the spike and keeps measuring";
        }
      }
    }
    check_cpus(result.per_cpu, cpus, "cyclictest");
    return result;
  }

  // CLOCK_REALTIME - CLOCK_MONOTONIC on `target` (vmlat-probe --clocks), if
  // it can be read: maps cyclictest's monotonic spike times to wall-clock time.
  // `known`: what `vmlat-probe --clocks` printed, if it ran already.
  static std::optional<std::int64_t> realtime_offset(Executor& target, const std::optional<std::string>& known) {
    try {
      std::string printed;
      if (known) {
        printed = *known;
      } else {
        auto program = target.find_program("vmlat-probe");
        if (!program) return std::nullopt;
        auto r = target.run(Command{{*program, "--clocks"}, kHelperTimeout});
        if (!r.ok()) return std::nullopt;
        printed = r.out;
      }
      long long mono = 0, real = 0;
      char tail = 0;
      if (std::sscanf(printed.c_str(), "%lld %lld %c", &mono, &real, &tail) != 2) return std::nullopt;
      return real - mono;
    } catch (const InfraError&) {
      return std::nullopt;
    }
  }

  // The worst `spikes_` of what cyclictest --spike recorded, per CPU. Its
  // list holds the first kCyclictestSpikeNodes wake-ups over the threshold:
  // when more came, a CPU whose maximum is not among them gets no list.
  void keep_cyclictest_spikes(Executor& target, CellContext& ctx, const CyclictestStdout& printed,
                              ProbeResult& result) {
    std::map<int, std::vector<Spike>> by_cpu;
    for (const auto& sp : printed.spikes) by_cpu[sp.cpu].push_back(sp);
    const bool truncated = printed.spikes_total > printed.spikes.size();
    facts_["spikes"] = json{{"threshold_us", spike_threshold_us_},
                            {"recorded", printed.spikes.size()},
                            {"over_threshold", printed.spikes_total},
                            {"truncated", truncated}};
    const auto offset = by_cpu.empty() ? std::nullopt : realtime_offset(target, clocks_output_);
    for (auto& [cpu, list] : by_cpu) {
      std::stable_sort(list.begin(), list.end(), [](const Spike& a, const Spike& b) { return a.latency > b.latency; });
      auto h = result.per_cpu.find(cpu);
      if (h == result.per_cpu.end()) continue;
      if (list.front().latency != h->second.max()) {
        ctx.log().warn("cyclic: cyclictest's spike list of CPU " + std::to_string(cpu) +
                       " misses its maximum (" + std::to_string(printed.spikes_total) + " wake-ups over " +
                       std::to_string(spike_threshold_us_) + "us, " + std::to_string(printed.spikes.size()) +
                       " recorded): no spikes for that CPU; raise spike_threshold");
        continue;
      }
      if (list.size() > spikes_) list.resize(spikes_);
      for (auto& sp : list) {
        if (offset) sp.realtime_ns = sp.monotonic_ns + *offset;
        result.spikes.push_back(sp);
      }
    }
  }

  // rtla timerlat hist: the kernel's timerlat tracer wakes a thread per CPU
  // every period and records how late the timer IRQ ran and how late the
  // thread ran. Series "thread" (the default, what a task sees) and "irq".
  ProbeResult run_timerlat(Executor& target, CellContext& ctx, const std::vector<int>& cpus) {
    const CellSpec& cell = ctx.cell();
    const auto program = target.find_program("rtla");
    if (!program)
      throw InfraError("rtla not found on " + target.name() + ": install the Debian package rtla (guest images built "
                       "by build-guest include the host's rtla)");
    if (cell.period < 1us || cell.period % 1us != 0ns)
      throw InfraError("rtla timerlat takes its period in whole microseconds, so it cannot run at a period of " +
                       format_duration(cell.period));
    if (cell.duration < 1s || cell.duration % 1s != 0ns)
      throw InfraError("rtla timerlat hist takes its duration in whole seconds, not " + format_duration(cell.duration));
    facts_["engine_version"] = version_line(target, {*program, "--version"});
    facts_.erase("mlock");

    // rtla says only "Could not apply config" on a kernel without the
    // tracer: look first, and name the kernel.
    std::string tracefs = find_tracefs(target);
    if (tracefs.empty()) {
      // What rtla (libtracefs) would do itself.
      target.run(Command{{"mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"}, kHelperTimeout});
      tracefs = find_tracefs(target);
    }
    const auto release = target.run(Command{{"uname", "-r"}, kHelperTimeout});
    const std::string kernel = release.ok() ? trim(release.out) : "?";
    if (tracefs.empty())
      throw InfraError("engine timerlat: no tracefs on " + target.name() + " (kernel " + kernel +
                       "): the kernel has no ftrace (CONFIG_FTRACE) or tracefs cannot be mounted");
    auto tracers = target.run(Command{{"cat", tracefs + "/available_tracers"}, kHelperTimeout});
    const std::string available = trim(tracers.out);
    if (!tracers.ok() || (" " + available + " ").find(" timerlat ") == std::string::npos)
      throw InfraError("engine timerlat: the kernel of " + target.name() + " (" + kernel +
                       ") has no timerlat tracer (CONFIG_TIMERLAT_TRACER; its tracers: " +
                       (available.empty() ? "none" : available) +
                       "): use a kernel that has it, e.g. Debian's linux-image-rt-amd64");
    facts_["kernel"] = kernel;

    const std::string trace_file = trace_.above > 0ns ? target.temp_dir() + "/vmlat-timerlat-trace.txt" : "";
    std::vector<std::string> argv{*program, "timerlat", "hist", "-d",
                                  std::to_string(duration_cast<seconds>(cell.duration).count()), "-p",
                                  std::to_string(duration_cast<microseconds>(cell.period).count()), "-P",
                                  "f:" + std::to_string(priority_), "-c", format_cpu_list(cpus), "-E",
                                  std::to_string(range_us_), "--dma-latency", "0"};
    if (trace_.above > 0ns) {
      // -T stops the timerlat trace, and with it rtla's session, at the
      // first thread latency over the bound; -t=FILE saves that trace (rtla
      // 6.1 reads the file name after a '=').
      argv.insert(argv.end(), {"-T", std::to_string(duration_cast<microseconds>(trace_.above).count()), "-t=" + trace_file});
      for (const auto& e : trace_.events) argv.insert(argv.end(), {"-e", e});
    }
    facts_["argv"] = argv;
    ctx.log().info("cyclic: running rtla timerlat hist on " + target.name() + " (CPUs " + format_cpu_list(cpus) + ", " +
                   format_duration(cell.duration) + ")");
    auto run = target.run(measuring_command(argv, cell));
    ctx.save_artifact("rtla.out", run.out);
    ctx.save_artifact("rtla.err", run.err);
    if (!run.ok()) {
      if (run.interrupted) throw Cancelled();
      throw InfraError("rtla timerlat hist failed on " + target.name() + ": " + run.describe());
    }
    TimerlatHistograms parsed = partial_ok(run.interrupted, ctx, [&] { return parse_rtla_hist(run.out, range_us_); });
    check_cpus(parsed.thread, cpus, "rtla timerlat");
    ProbeResult result;
    result.interrupted = run.interrupted;
    result.default_series = "thread";
    result.per_cpu = std::move(parsed.thread);
    result.series["irq"] = std::move(parsed.irq);
    if (trace_.above > 0ns) {
      const bool fired = run.out.find("hit stop tracing") != std::string::npos ||
                         run.err.find("hit stop tracing") != std::string::npos;
      facts_["trace"]["fired"] = fired;
      PhaseScope collect("cyclic-collect", Clock::now() + kHelperTimeout, /*interruptible=*/false);
      auto read = target.run(Command{{"tail", "-c", std::to_string(kTraceReadBytes), trace_file}, kHelperTimeout});
      target.run(Command{{"rm", "-f", trace_file}, kHelperTimeout});
      if (read.ok() && !read.out.empty()) {
        ctx.save_artifact("trace.txt", read.out);
        result.traces.push_back("trace.txt");
      }
      if (fired)
        result.invalid = "rtla timerlat stopped at the first thread latency over trace_above (" +
                         format_duration(trace_.above) + "), as -T does: the trace is saved (trace.txt) but the cell "
                         "was not measured for its duration";
    }
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
    argv.insert(argv.end(), {"--spikes", std::to_string(spikes_)});
    std::optional<TargetTrace> trace;
    std::optional<HostTrace> host_trace;
    if (trace_.above > 0ns) {
      trace.emplace(target, trace_, ctx);
      facts_["trace"]["ftrace"] = trace->facts();
      argv.insert(argv.end(), {"--trace-above-ns", std::to_string(trace_.above.count()), "--tracefs", trace->tracefs()});
      // A guest: its vCPU threads' host-side events go to a host trace.
      if (auto vcpus = ctx.target_threads(); !vcpus.empty()) {
        host_trace.emplace(ctx.host(), vcpus, kHostTraceKb, ctx);
        host_trace->exchange(target);
      }
    }
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
    result.spikes = std::move(parsed.spikes);
    if (trace) {
      const json fired = parsed.trace.is_object() ? parsed.trace.value("fired", json(nullptr)) : json(nullptr);
      facts_["trace"]["probe"] = parsed.trace;
      facts_["trace"]["fired"] = fired;
      // The trace stopped at the spike; the measurement went on.
      if (!fired.is_null() && trace->save("trace.txt")) result.traces.push_back("trace.txt");
      if (host_trace) {
        if (!fired.is_null() && host_trace->save_around(target, fired["monotonic_ns"].get<std::int64_t>(), "host-trace.txt"))
          result.traces.push_back("host-trace.txt");
        facts_["trace"]["host"] = host_trace->facts();
      }
    }
    return result;
  }

  std::string engine_ = "cyclictest";
  int priority_ = 95;
  std::uint64_t range_us_ = 20000;
  bool mlock_ = true;
  std::vector<std::string> extra_args_;
  std::uint64_t spikes_ = 10;
  std::uint64_t spike_threshold_us_ = 100;
  TraceSettings trace_;
  json facts_ = json::object();
  std::optional<std::string> probe_program_;  // vmlat-probe on the target, as the cyclictest run found it
  std::optional<std::string> clocks_output_;  // its --clocks, read with the JSON
};

}  // namespace
}  // namespace vmlat::cyclic

VMLAT_PLUGIN(vmlat::cyclic::CyclicProbe, "cyclic", "probe", "0.2.0",
             "periodic SCHED_FIFO task per CPU measuring wake-up latency (cyclictest, vmlat-probe or rtla timerlat)")
