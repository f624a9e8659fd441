#include "runner.hpp"

#include <unistd.h>

#include <cmath>
#include <condition_variable>
#include <thread>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>

#include "cell_support.hpp"
#include "loader.hpp"
#include "locks.hpp"
#include "hosts.hpp"
#include "machines.hpp"
#include "regression.hpp"
#include "remote.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/local.hpp"
#include "vmlat/plugin.hpp"
#include "vmlat/process.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::pass: return "pass";
    case Verdict::fail: return "fail";
    case Verdict::error: return "error";
    case Verdict::skipped: return "skipped";
    case Verdict::flaky: return "flaky";
  }
  return "?";
}

std::chrono::nanoseconds gate_statistic(const GateSpec& gate, const Histogram& merged) {
  if (gate.stat == "max") return merged.max();
  if (gate.stat == "min") return merged.min();
  if (gate.stat == "mean") return merged.mean();
  return merged.percentile(gate.quantile);
}

std::vector<GateResult> evaluate_gates(const Plan& plan, const CellSpec& cell, const std::string& cell_status,
                                       const std::string& cell_error, const Histogram* default_merged,
                                       const std::map<std::string, Histogram>* named) {
  std::vector<GateResult> results;
  for (const auto& gate : plan.gates) {
    if (!gate.matches(cell)) continue;
    if (gate.regression) {
      results.push_back(evaluate_regression_gate(gate, cell, cell_status, cell_error, default_merged));
      continue;
    }
    const Histogram* merged = default_merged;
    if (!gate.series.empty()) {
      merged = nullptr;
      if (named)
        if (auto it = named->find(gate.series); it != named->end()) merged = &it->second;
    }
    GateResult r;
    r.gate = gate.name;
    r.stat = gate.stat;
    r.series = gate.series;
    r.bound = gate.bound;
    if (cell_status == "skipped") {
      r.verdict = Verdict::skipped;
      r.message = cell_error;
    } else if (cell_status != "measured" || !merged || merged->empty()) {
      // A cell that was not measured never counts as passed.
      r.verdict = Verdict::error;
      r.message = cell_status != "measured" ? "not measured: " + cell_error
                  : !merged && !gate.series.empty() ? "the cell has no series '" + gate.series + "'"
                                                    : "the probe returned no samples";
    } else {
      r.value = gate_statistic(gate, *merged);
      r.verdict = r.value <= r.bound ? Verdict::pass : Verdict::fail;
      if (r.verdict == Verdict::fail) {
        auto over = r.value - r.bound;
        char pct[32];
        std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * static_cast<double>(over.count()) / static_cast<double>(r.bound.count()));
        r.message = gate.stat + " " + format_latency(r.value) + " exceeds bound " + format_latency(r.bound) + " by " +
                    format_latency(over) + " (" + pct + ")";
      }
    }
    results.push_back(r);
  }
  return results;
}

namespace {

std::string compact_utc() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

std::string clock_text(std::chrono::seconds s) {
  char buf[32];
  long long v = s.count();
  if (v >= 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", v / 3600, (v / 60) % 60, v % 60);
  else std::snprintf(buf, sizeof buf, "%lld:%02lld", v / 60, v % 60);
  return buf;
}

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct CellOutcome {
  std::string status = "pending";  // measured, infra-error, interrupted, skipped, not-run
  std::string error;
  std::string error_phase;
  std::optional<Histogram> merged;
  std::map<std::string, Histogram> series_merged;  // every series by name, the default included
  std::vector<GateResult> gates;
  json result;
  bool result_missing = false;  // result.json could not be written
};

json gate_results_json(const std::vector<GateResult>& gates) {
  json arr = json::array();
  for (const auto& g : gates) {
    json j{{"gate", g.gate}, {"stat", g.stat}, {"bound_ns", g.bound.count()}, {"verdict", verdict_name(g.verdict)}};
    if (!g.series.empty()) j["series"] = g.series;
    // A value was measured for pass, fail and flaky (the first attempt's),
    // and for an error decided by a retest that could not be measured.
    if (g.verdict == Verdict::pass || g.verdict == Verdict::fail || g.verdict == Verdict::flaky ||
        (g.verdict == Verdict::error && g.value.count() > 0)) {
      j["value_ns"] = g.value.count();
      j["excess_ns"] = std::max<long long>(0, (g.value - g.bound).count());
    }
    if (!g.message.empty()) j["message"] = g.message;
    for (auto it = g.extra.begin(); it != g.extra.end(); ++it) j[it.key()] = it.value();
    arr.push_back(j);
  }
  return arr;
}

json axes_json(const CellSpec& spec) {
  json axes = json::object();
  for (const auto& [k, v] : spec.axes) axes[k] = v;
  return axes;
}

json plugin_json(const Instance& instance, const PluginRegistry& registry) {
  json j{{"instance", instance.name}, {"plugin", instance.plugin}};
  if (auto* info = registry.find(instance.plugin)) {
    j["version"] = info->version;
    j["file"] = info->file.string();
  }
  return j;
}

// Live progress on a terminal, redrawn on every phase change and once a
// second in between: "[i/N] axes  phase  elapsed, ~remaining" with one host;
// with several, each host's state ("lab1: cell 2/4 measure | lab2:
// provisioning"). Finished cells get a line of their own. In `events` mode
// (a remote `vmlat run-cell`), phases go to `err` as "vmlat-event {json}"
// lines for the controller instead.
class Progress {
 public:
  Progress(bool enabled, std::ostream& err, std::size_t total, std::chrono::nanoseconds per_cell_estimate,
           bool events = false)
      : enabled_(enabled || events), events_(events), err_(err), total_(total), estimate_(per_cell_estimate),
        start_(Clock::now()) {
    if (enabled_ && !events_) ticker_ = std::thread([this] { tick(); });
  }
  ~Progress() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (ticker_.joinable()) ticker_.join();
  }
  // A host's state outside of cells: "connecting", "provisioning", "idle", "failed: ...".
  void host(const std::string& name, const std::string& state) {
    std::lock_guard lock(mutex_);
    hosts_[name].state = state;
    if (enabled_ && !events_) draw();
  }
  void cell(std::size_t index, const Cell& c, const std::string& phase) {
    if (!enabled_) return;
    std::lock_guard lock(mutex_);
    if (events_) {
      err_ << "vmlat-event " << dump_json(json{{"cell", c.spec.id}, {"index", index}, {"phase", phase}}) << "\n" << std::flush;
      return;
    }
    auto& h = hosts_[c.spec.host_name];
    h.index = index;
    h.axes.clear();
    for (const auto& [k, v] : c.spec.axes) h.axes += (h.axes.empty() ? "" : " ") + k + "=" + v;
    h.state = phase;
    h.in_cell = true;
    draw();
  }
  void begin_cell(const std::string& host) {
    std::lock_guard lock(mutex_);
    hosts_[host].cell_start = Clock::now();
  }
  void end_cell(std::size_t index, const Cell& c, const CellOutcome& o) {
    std::lock_guard lock(mutex_);
    ++done_;
    auto& h = hosts_[c.spec.host_name];
    h.in_cell = false;
    h.state = "idle";
    if (!enabled_ || events_) return;
    std::string verdict = o.status;
    for (const auto& g : o.gates)
      if (g.verdict == Verdict::fail) verdict = "gate failed";
    err_ << "\r\033[K[" << index << "/" << total_ << "] " << c.spec.id;
    if (hosts_.size() > 1) err_ << " on " << c.spec.host_name;
    err_ << ": " << verdict;
    if (o.merged && !o.merged->empty()) err_ << " (max " << format_latency(o.merged->max()) << ")";
    if (!o.error.empty()) err_ << ": " << o.error;
    err_ << "\n" << std::flush;
    draw();
  }

 private:
  struct HostView {
    std::string state = "idle";
    std::size_t index = 0;
    std::string axes;
    bool in_cell = false;
    Clock::time_point cell_start = Clock::now();
  };
  void draw() {  // with mutex_ held
    auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start_);
    if (hosts_.size() <= 1) {
      if (hosts_.empty() || !hosts_.begin()->second.in_cell) return;
      const auto& h = hosts_.begin()->second;
      // Remaining: the average of finished cells, or the plan's estimate before any.
      double per_cell = done_ > 0 ? std::chrono::duration<double>(Clock::now() - start_).count() / static_cast<double>(done_)
                                  : std::chrono::duration<double>(estimate_).count();
      double in_cell = std::chrono::duration<double>(Clock::now() - h.cell_start).count();
      double remaining = std::max(0.0, per_cell * static_cast<double>(total_ - done_) - in_cell);
      err_ << "\r\033[K[" << h.index << "/" << total_ << "] " << h.axes << "  " << h.state << "  elapsed "
           << clock_text(elapsed) << ", ~" << clock_text(std::chrono::seconds(static_cast<long long>(remaining)))
           << " left" << std::flush;
      return;
    }
    std::string line = "[" + std::to_string(done_) + "/" + std::to_string(total_) + " done]";
    for (const auto& [name, h] : hosts_)
      line += " " + name + ": " + (h.in_cell ? "cell " + std::to_string(h.index) + " " + h.state : h.state) + " |";
    line.pop_back();
    err_ << "\r\033[K" << line << " elapsed " << clock_text(elapsed) << std::flush;
  }
  void tick() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::seconds(1));
      if (!stopping_) draw();
    }
  }

  bool enabled_;
  bool events_;
  std::ostream& err_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::chrono::nanoseconds estimate_;
  Clock::time_point start_;
  std::map<std::string, HostView> hosts_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread ticker_;
};

struct RunState {
  const Plan& plan;
  PluginRegistry& registry;
  std::filesystem::path run_dir;
  std::string run_id;
  json run;
};

void write_run(RunState& st) {
  write_file_atomic(st.run_dir / "run.json", dump_json(st.run, 2) + "\n");
}

// Removes `dir` and the directories below it that hold no file (the
// scratch tree of cells that left nothing for diagnosis).
bool remove_empty_dirs(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec) || std::filesystem::is_symlink(dir, ec)) return false;
  bool empty = true;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec) && !entry.is_symlink(ec) && remove_empty_dirs(entry.path())) continue;
    empty = false;
  }
  return empty && std::filesystem::remove(dir, ec);
}

// During a run: a run.json that cannot be rewritten (disk full) keeps its
// previous content, which never says more than was true (a cell "running",
// never "measured" before its result.json exists); the run goes on.
bool write_run_or_warn(RunState& st, std::ostream& err) {
  try {
    write_run(st);
    return true;
  } catch (const std::exception& e) {
    err << "vmlat: cannot update " << (st.run_dir / "run.json").string() << ": " << e.what() << "\n";
    return false;
  }
}

}  // namespace

std::string implausible(const CellSpec& cell, const std::map<int, Histogram>& per_cpu,
                        std::optional<Clock::duration> measured_for) {
  using std::chrono::duration;
  namespace pl = plausibility;
  if (cell.period <= std::chrono::nanoseconds(0) || cell.duration <= std::chrono::nanoseconds(0)) return {};
  char buf[480];
  const double seconds = duration<double>(cell.duration).count();
  if (measured_for) {
    const double took = duration<double>(*measured_for).count();
    if (took < seconds * pl::min_time_fraction - pl::time_slack_s) {
      std::snprintf(buf, sizeof buf,
                    "the probe returned after %.2f s of a %.2f s measurement: it stopped early (killed or signalled "
                    "from outside?); its data is kept but is not a measurement",
                    took, seconds);
      return buf;
    }
  }
  const double expected = static_cast<double>(cell.duration.count()) / static_cast<double>(cell.period.count());
  const auto period_ns = static_cast<std::uint64_t>(cell.period.count());
  for (const auto& [cpu, h] : per_cpu) {
    const auto samples = static_cast<unsigned long long>(h.samples());
    // Unknown (a probe that does not count them): none counted here; the
    // skipped activations are bounded from the buckets below.
    const auto missed = static_cast<unsigned long long>(h.missed_periods().value_or(0));
    const double counted = static_cast<double>(samples + missed);
    const double most = expected * pl::max_fraction + pl::count_slack;
    if (counted > most) {
      std::snprintf(buf, sizeof buf,
                    "implausible result on CPU %d: %llu samples + %llu missed periods, but %s at a period of %s allow "
                    "at most %.0f: this is not a measurement of the cell",
                    cpu, samples, missed, format_duration(cell.duration).c_str(), format_duration(cell.period).c_str(),
                    most);
      return buf;
    }
    // Activations skipped after late wake-ups: counted by probes that count
    // them (missed_periods); for those that do not (cyclictest skips them
    // silently) at most floor(latency / period) per sample, from the buckets.
    unsigned long long skipped = 0;
    for (const auto& [bucket_us, count] : h.buckets()) skipped += count * (((bucket_us + 1) * 1000 - 1) / period_ns);
    skipped += h.overflows() * (static_cast<std::uint64_t>(h.max().count()) / period_ns);
    skipped = std::max(skipped, missed);
    const double least = expected * pl::min_fraction;
    if (static_cast<double>(samples + skipped) < least) {
      std::snprintf(buf, sizeof buf,
                    "implausible result on CPU %d: %llu samples and at most %llu skipped or missed periods, where %s at "
                    "a period of %s make %.0f activations: the probe measured less than %.0f%% of the time",
                    cpu, samples, skipped, format_duration(cell.duration).c_str(), format_duration(cell.period).c_str(),
                    expected, pl::min_fraction * 100);
      return buf;
    }
  }
  return {};
}

std::string sort_and_check_spikes(std::vector<Spike>& spikes, const std::map<int, Histogram>& per_cpu) {
  // Worst first; equal latencies in time order.
  std::stable_sort(spikes.begin(), spikes.end(), [](const Spike& a, const Spike& b) {
    if (a.latency != b.latency) return a.latency > b.latency;
    return a.monotonic_ns < b.monotonic_ns;
  });
  std::set<int> seen;
  for (const auto& sp : spikes) {
    if (!seen.insert(sp.cpu).second) continue;  // the CPU's worst is its first entry
    auto it = per_cpu.find(sp.cpu);
    if (it == per_cpu.end())
      return "the probe listed a spike on CPU " + std::to_string(sp.cpu) + ", which it did not measure";
    if (sp.latency != it->second.max())
      return "the worst spike on CPU " + std::to_string(sp.cpu) + " (" + std::to_string(sp.latency.count()) +
             " ns) is not the histogram's maximum (" + std::to_string(it->second.max().count()) +
             " ns): the spike list does not belong to this measurement";
  }
  return {};
}

namespace {

// One series as result.json stores it: per CPU stats and histogram, merged.
struct SeriesDocument {
  Histogram merged;
  json per_cpu = json::object();
};

SeriesDocument series_document(const std::map<int, Histogram>& by_cpu) {
  SeriesDocument d;
  for (const auto& [cpu, h] : by_cpu) {
    d.merged.merge(h);
    d.per_cpu[std::to_string(cpu)] = json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}};
  }
  return d;
}

template <typename T>
T* as_kind(Plugin* p, const Instance& instance) {
  auto* t = dynamic_cast<T*>(p);
  if (!t) throw PlanError("plugin '" + instance.plugin + "' does not implement the " + instance.kind + " interface");
  return t;
}

CellOutcome run_cell(RunState& st, const Cell& cell, const std::filesystem::path& cell_dir, FileLogger& cell_log,
                     Executor& host, const json& host_facts, Progress& progress) {
  const Plan& plan = st.plan;
  CellOutcome o;
  auto work_dir = st.run_dir / ".work" / cell.spec.id;
  std::filesystem::create_directories(work_dir);
  CellContextImpl ctx(cell.spec, cell_dir, work_dir, cell_log, host);
  const Instance& backend_inst = plan.backends.at(cell.backend);
  const Instance& probe_inst = plan.probes.at(cell.probe);
  const Instance* workload_inst = cell.workload == "none" ? nullptr : &plan.workloads.at(cell.workload);
  json timings = json::object();
  auto cell_started = Clock::now();
  std::string started_at = iso_now();
  json facts = json::object();

  std::unique_ptr<Plugin> backend_p, workload_p, probe_p;
  Backend* backend = nullptr;
  Workload* workload = nullptr;
  Probe* probe = nullptr;
  bool workload_running = false, booted = false;
  std::optional<ProbeResult> probe_result;
  std::optional<Clock::duration> measured_for;
  std::string phase = "configure";
  // The plugin a phase calls into, for messages about what it threw.
  auto plugin_of = [&](const std::string& name) -> std::string {
    if (name == "measure") return probe_inst.plugin;
    if ((name == "start" || name == "stop") && workload_inst) return workload_inst->plugin;
    if (name == "configure") return backend_inst.plugin + "/" + probe_inst.plugin + (workload_inst ? "/" + workload_inst->plugin : "");
    return backend_inst.plugin;
  };
  auto timed = [&](const std::string& name, std::chrono::nanoseconds timeout, bool interruptible, auto&& fn) {
    phase = name;
    progress.cell(static_cast<std::size_t>(cell.index), cell, name);
    cell_log.info("phase " + name + " (timeout " + format_duration(timeout) + ")");
    auto t0 = Clock::now();
    PhaseScope scope(name, t0 + std::chrono::duration_cast<Clock::duration>(timeout), interruptible);
    try {
      fn();
    } catch (...) {
      timings[name + "_s"] = seconds_since(t0);
      throw;
    }
    timings[name + "_s"] = seconds_since(t0);
  };

  try {
    backend_p = make_plugin(backend_inst, st.registry);
    backend = as_kind<Backend>(backend_p.get(), backend_inst);
    probe_p = make_plugin(probe_inst, st.registry);
    probe = as_kind<Probe>(probe_p.get(), probe_inst);
    if (workload_inst) {
      workload_p = make_plugin(*workload_inst, st.registry);
      workload = as_kind<Workload>(workload_p.get(), *workload_inst);
    }
    booted = true;  // from prepare on, teardown is owed (also for a prepare that failed halfway)
    timed("prepare", plan.timeouts.prepare, true, [&] { backend->prepare(ctx); });
    timed("boot", plan.timeouts.boot, true, [&] {
      backend->boot(ctx);
      ctx.target_threads_ = backend->target_threads();
    });
    if (workload) {
      timed("start", plan.timeouts.start, true, [&] {
        Executor& where = backend->placement(workload_inst->where);
        workload_running = true;
        workload->start(where, ctx);
      });
    }
    auto measure_started = Clock::now();
    timed("measure", cell.spec.duration + plan.timeouts.measure_margin, true,
          [&] { probe_result = probe->run(backend->probe_target(), ctx); });
    measured_for = Clock::now() - measure_started;
    if (workload) {
      timed("stop", plan.timeouts.stop, false, [&] {
        workload_running = false;
        workload->stop(ctx);
      });
    }
    if (cancel_requested()) {
      o.status = "interrupted";
      o.error = "interrupted by signal " + std::to_string(cancel_signal());
      o.error_phase = phase;
    } else if (probe_result && !probe_result->invalid.empty()) {
      o.status = "infra-error";
      o.error = probe_result->invalid;
      o.error_phase = "measure";
    } else if (probe_result && probe_result->interrupted) {
      // Only vmlat's own interrupt makes a cell "interrupted"; a probe that
      // somebody else stopped (kill -INT/-TERM) measured less than asked.
      o.status = "infra-error";
      o.error = "the probe was stopped by a signal vmlat did not send (kill from outside?); its partial data is kept but "
                "is not a measurement";
      o.error_phase = "measure";
    } else {
      o.status = "measured";
    }
  } catch (const Cancelled&) {
    o.status = "interrupted";
    o.error = "interrupted during " + phase;
    o.error_phase = phase;
  } catch (const std::exception& e) {
    o.status = "infra-error";
    o.error = e.what();
    o.error_phase = phase;
  } catch (...) {
    // Whatever a plugin throws is an infrastructure error of this cell;
    // cleanup below still runs.
    o.status = "infra-error";
    o.error = "plugin '" + plugin_of(phase) + "' threw " + describe_current_exception() + " during " + phase;
    o.error_phase = phase;
  }
  if (!o.error.empty()) cell_log.error(phase + ": " + o.error);

  // Cleanup: uninterruptible, bounded, always.
  if (workload && workload_running) {
    try {
      timed("stop", plan.timeouts.stop, false, [&] { workload->stop(ctx); });
    } catch (...) {
      cell_log.warn("stopping the workload after an error: " + describe_current_exception());
    }
  }
  if (backend && booted) {
    phase = "teardown";
    progress.cell(static_cast<std::size_t>(cell.index), cell, "teardown");
    auto t0 = Clock::now();
    PhaseScope scope("teardown", Clock::now() + std::chrono::duration_cast<Clock::duration>(plan.timeouts.stop), false);
    try {
      backend->teardown(ctx);
    } catch (...) {
      // Something may still be running: the cell cannot count as measured.
      std::string why = "teardown of backend '" + backend_inst.plugin + "' failed: " + describe_current_exception();
      cell_log.error(why);
      if (o.status == "measured") {
        o.status = "infra-error";
        o.error = why;
        o.error_phase = "teardown";
      }
    }
    timings["teardown_s"] = seconds_since(t0);
  }
  timings["wall_s"] = seconds_since(cell_started);

  for (auto* p : {backend_p.get(), workload_p.get(), probe_p.get()}) {
    if (!p) continue;
    try {
      facts[p == backend_p.get() ? "backend" : p == probe_p.get() ? "probe" : "workload"] = p->facts();
    } catch (...) {
      cell_log.warn("plugin facts: " + describe_current_exception());
    }
  }

  json per_cpu = json::object();
  json series_json = json::object();
  json spikes_json = json::array();
  if (probe_result && !probe_result->per_cpu.empty()) {
    SeriesDocument doc = series_document(probe_result->per_cpu);
    per_cpu = doc.per_cpu;
    o.merged = doc.merged;
    o.series_merged[probe_result->default_series] = doc.merged;
    for (const auto& [name, by_cpu] : probe_result->series) {
      SeriesDocument named = series_document(by_cpu);
      o.series_merged[name] = named.merged;
      series_json[name] = json{{"merged", json{{"stats", stats_to_json(named.merged.stats())}, {"histogram", named.merged.to_json()}}},
                               {"per_cpu", named.per_cpu}};
    }
    // Facts of this measurement complete (and override) the plugin's facts().
    if (!facts.contains("probe")) facts["probe"] = json::object();
    for (auto it = probe_result->facts.begin(); it != probe_result->facts.end(); ++it) facts["probe"][it.key()] = it.value();
    std::string spike_error = sort_and_check_spikes(probe_result->spikes, probe_result->per_cpu);
    for (const auto& sp : probe_result->spikes)
      spikes_json.push_back(json{{"cpu", sp.cpu},
                                 {"latency_ns", sp.latency.count()},
                                 {"monotonic_ns", sp.monotonic_ns < 0 ? json(nullptr) : json(sp.monotonic_ns)},
                                 {"realtime_ns", sp.realtime_ns < 0 ? json(nullptr) : json(sp.realtime_ns)}});
    if (o.status == "measured") {
      // Data that does not fit the cell is not a measurement (docs/results-format.md,
      // "Plausibility"), whichever of its series; it stays in result.json for diagnosis.
      std::string why = implausible(cell.spec, probe_result->per_cpu, measured_for);
      for (auto it = probe_result->series.begin(); why.empty() && it != probe_result->series.end(); ++it) {
        why = implausible(cell.spec, it->second, measured_for);
        if (!why.empty()) why = "series '" + it->first + "': " + why;
      }
      if (why.empty()) why = spike_error;
      if (!why.empty()) {
        o.status = "infra-error";
        o.error = why;
        o.error_phase = "measure";
        cell_log.error("measure: " + why);
      }
    }
  } else if (o.status == "measured") {
    o.status = "infra-error";
    o.error = "the probe returned no per-CPU results";
    o.error_phase = "measure";
  }
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr, &o.series_merged);
  // A gate on a series the measured cell lacks never lets the cell pass.
  // (Regression gates without a baseline have their own rule.)
  for (const auto& g : o.gates) {
    if (o.status != "measured" || g.verdict != Verdict::error || g.series.empty()) continue;
    o.status = "infra-error";
    o.error = "gate '" + g.gate + "' cannot be evaluated: " + g.message;
    o.error_phase = "measure";
  }

  json plugins{{"backend", plugin_json(backend_inst, st.registry)}, {"probe", plugin_json(probe_inst, st.registry)}};
  if (workload_inst) {
    plugins["workload"] = plugin_json(*workload_inst, st.registry);
    plugins["workload"]["where"] = workload_inst->where;
  }
  o.result = json{
      {"schema", "vmlat-cell-result/1"},
      {"run_id", st.run_id},
      {"cell",
       {{"id", cell.spec.id},
        {"index", cell.index},
        {"axes", axes_json(cell.spec)},
        {"host", cell.spec.host_name},
        {"period_ns", cell.spec.period.count()},
        {"duration_ns", cell.spec.duration.count()},
        {"cpus", cell.spec.cpus.empty() ? json("all") : json(cell.spec.cpus)}}},
      {"status", o.status},
      {"error", o.error.empty() ? json(nullptr) : json(o.error)},
      {"error_phase", o.error_phase.empty() ? json(nullptr) : json(o.error_phase)},
      {"plugins", plugins},
      {"host_facts", host_facts},
      {"facts", facts},
      {"timings", json{{"started", started_at}, {"finished", iso_now()}, {"phases", timings}}},
      {"merged", o.merged ? json{{"stats", stats_to_json(o.merged->stats())}, {"histogram", o.merged->to_json()}} : json(nullptr)},
      {"per_cpu", per_cpu},
      {"default_series", probe_result ? probe_result->default_series : std::string(default_series_name)},
      {"series", series_json},
      {"spikes", spikes_json},
      {"traces", probe_result ? json(probe_result->traces) : json::array()},
      {"gates", gate_results_json(o.gates)},
      {"artifacts", ctx.artifacts},
      {"warnings", cell_log.warnings}};
  // Keep the scratch dir of a failed cell for diagnosis.
  if (o.status == "measured") {
    std::error_code ec;
    std::filesystem::remove_all(work_dir, ec);
  }
  return o;
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s += std::string(width - s.size(), ' ');
  return s;
}

void print_summary(std::ostream& out, const std::vector<Cell>& cells, const std::vector<CellOutcome>& outcomes, bool with_hosts) {
  struct Row { std::string cell, host, samples, p99, max, gate, bound, verdict; };
  std::vector<Row> rows;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& o = outcomes[i];
    Row base{cells[i].spec.id, cells[i].spec.host_name, "-", "-", "-", "-", "-", o.status};
    if (o.merged && !o.merged->empty()) {
      auto s = o.merged->stats();
      base.samples = std::to_string(s.samples);
      base.p99 = format_latency(s.p99);
      base.max = format_latency(s.max);
    }
    if (o.status != "measured") base.verdict = (o.status == "infra-error" ? "ERROR" : o.status) + (o.error.empty() ? "" : ": " + o.error);
    if (o.gates.empty() || o.status != "measured") {
      if (o.status == "measured") base.verdict = "measured (no gate)";
      rows.push_back(base);
      continue;
    }
    for (const auto& g : o.gates) {
      Row r = base;
      r.gate = g.gate;
      r.bound = g.stat + " <= " + format_latency(g.bound);
      if (g.extra.contains("tolerance") && (g.verdict == Verdict::skipped || g.verdict == Verdict::error))
        r.bound = g.stat + " <= baseline+" + g.extra["tolerance"].get<std::string>();
      r.verdict = g.verdict == Verdict::pass    ? "PASS"
                  : g.verdict == Verdict::fail  ? "FAIL: " + g.message
                  : g.verdict == Verdict::flaky ? "FLAKY: " + g.message
                                                : std::string(verdict_name(g.verdict)) + (g.message.empty() ? "" : ": " + g.message);
      rows.push_back(r);
    }
  }
  std::vector<std::size_t> w = {4, 4, 7, 3, 3, 4, 5};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.cell.size());
    w[1] = std::max(w[1], r.host.size());
    w[2] = std::max(w[2], r.samples.size());
    w[3] = std::max(w[3], r.p99.size());
    w[4] = std::max(w[4], r.max.size());
    w[5] = std::max(w[5], r.gate.size());
    w[6] = std::max(w[6], r.bound.size());
  }
  out << pad("CELL", w[0]) << "  " << (with_hosts ? pad("HOST", w[1]) + "  " : "") << pad("SAMPLES", w[2]) << "  "
      << pad("P99", w[3]) << "  " << pad("MAX", w[4]) << "  " << pad("GATE", w[5]) << "  " << pad("BOUND", w[6]) << "  VERDICT\n";
  for (const auto& r : rows)
    out << pad(r.cell, w[0]) << "  " << (with_hosts ? pad(r.host, w[1]) + "  " : "") << pad(r.samples, w[2]) << "  "
        << pad(r.p99, w[3]) << "  " << pad(r.max, w[4]) << "  " << pad(r.gate, w[5]) << "  " << pad(r.bound, w[6]) << "  "
        << r.verdict << "\n";
}

}  // namespace

namespace {

std::optional<json> read_json(const std::filesystem::path& path, std::string* why) {
  std::ifstream in(path);
  if (!in) {
    *why = "cannot read " + path.string();
    return std::nullopt;
  }
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    *why = path.string() + ": " + e.what();
    return std::nullopt;
  }
}

// The cell's entry in run.json's cells[].
void record_in_run(json& entry, const CellOutcome& o) {
  entry["status"] = o.status;
  if (!o.error.empty()) entry["error"] = o.error;
  if (o.merged && !o.merged->empty()) entry["max_ns"] = o.merged->max().count();
  json verdicts = json::object();
  for (const auto& g : o.gates) verdicts[g.gate] = verdict_name(g.verdict);
  entry["gates"] = verdicts;
}

// A cell that was not measured (skipped, or the core failed around it),
// with its result document.
CellOutcome unmeasured_outcome(const Plan& plan, const Cell& cell, const std::string& run_id, const std::string& status,
                               const std::string& error, const std::string& phase, const json& host_facts) {
  CellOutcome o;
  o.status = status;
  o.error = error;
  o.error_phase = phase;
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, nullptr);
  o.result = json{{"schema", "vmlat-cell-result/1"},
                  {"run_id", run_id},
                  {"cell", {{"id", cell.spec.id}, {"index", cell.index}, {"axes", axes_json(cell.spec)}, {"host", cell.spec.host_name}}},
                  {"status", o.status},
                  {"error", o.error},
                  {"error_phase", phase.empty() ? json(nullptr) : json(phase)},
                  {"host_facts", host_facts},
                  {"gates", gate_results_json(o.gates)}};
  return o;
}

// A kept cell of a resumed run, rebuilt from its result.json.
std::optional<CellOutcome> kept_outcome(const Plan& plan, const Cell& cell, const std::filesystem::path& cell_dir) {
  std::string why;
  auto result = read_json(cell_dir / "result.json", &why);
  if (!result) return std::nullopt;
  CellOutcome o;
  o.status = result->value("status", "");
  if (o.status != "measured" && o.status != "skipped") return std::nullopt;
  if (result->contains("error") && (*result)["error"].is_string()) o.error = (*result)["error"].get<std::string>();
  try {
    if (result->contains("merged") && !(*result)["merged"].is_null()) {
      o.merged = Histogram::from_json((*result)["merged"]["histogram"]);
      o.series_merged[result->value("default_series", std::string(default_series_name))] = *o.merged;
    }
    if (auto it = result->find("series"); it != result->end() && it->is_object())
      for (const auto& [name, doc] : it->items()) o.series_merged[name] = Histogram::from_json(doc.at("merged").at("histogram"));
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged result is measured again
  }
  if (o.status == "measured" && !o.merged) return std::nullopt;
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr, &o.series_merged);
  o.result = *result;
  return o;
}

}  // namespace

namespace {

// Writes the cell's result.json; a cell whose result cannot be written is
// not measured, whatever it measured (docs/results-format.md).
void store_result(const Plan& plan, const Cell& cell, const std::filesystem::path& cell_dir, CellOutcome& o,
                  FileLogger& cell_log, std::ostream& err) {
  try {
    write_file_atomic(cell_dir / "result.json", dump_json(o.result, 2) + "\n");
  } catch (const std::exception& e) {
    std::string why = std::string("cannot write result.json: ") + e.what();
    err << "vmlat: " << cell.spec.id << ": " << why << "\n";
    cell_log.error(why);
    if (o.status == "measured" || o.status == "skipped") {
      o.status = "infra-error";
      o.error = why;
      o.error_phase = "store";
      o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, nullptr);
      o.result["status"] = o.status;
      o.result["error"] = o.error;
      o.result["error_phase"] = o.error_phase;
      o.result["gates"] = gate_results_json(o.gates);
    }
    o.result_missing = true;
  }
}

// One cell on this machine, inside this process: result.json written.
CellOutcome local_cell(RunState& st, const Cell& cell, std::size_t total, const std::filesystem::path& cell_dir,
                       FileLogger& cell_log, Executor& host, const json& host_facts, Progress& progress, bool skip_wrong_kernel,
                       std::ostream& err) {
  const Plan& plan = st.plan;
  CellOutcome o;
  // Without [hosts] (no placement), a cell that needs another kind of host
  // kernel is not runnable here.
  auto needs = cell.spec.axis("host_kernel");
  bool host_rt = flag_or(host_facts, "preempt_rt", false);
  if (skip_wrong_kernel && needs && *needs != "any" && (*needs == "rt") != host_rt) {
    std::string why = "not runnable here: the cell needs a" + std::string(*needs == "rt" ? " PREEMPT_RT" : " non-RT") +
                      " host kernel, this host runs " + text_or(host_facts, "kernel_release", "?") + " (" +
                      text_or(host_facts, "preempt_model", "?") + ")";
    cell_log.info(why);
    o = unmeasured_outcome(plan, cell, st.run_id, "skipped", why, "", host_facts);
  } else {
    cell_log.info("cell " + std::to_string(cell.index) + (total ? "/" + std::to_string(total) : "") + " " + cell.spec.id);
    try {
      o = run_cell(st, cell, cell_dir, cell_log, host, host_facts, progress);
    } catch (...) {  // the core's own failure around the cell (e.g. its directories): not a measurement
      o = unmeasured_outcome(plan, cell, st.run_id, "infra-error", describe_current_exception(), "setup", host_facts);
    }
  }
  store_result(plan, cell, cell_dir, o, cell_log, err);
  return o;
}

// The outcome of a cell a remote host ran, from the result.json that came
// back; gates are the controller's (the same plan, and baselines live here).
CellOutcome remote_outcome(RunState& st, const Cell& cell, const std::filesystem::path& cell_dir, const std::string& failure,
                           FileLogger& cell_log, std::ostream& err) {
  std::string why;
  auto result = read_json(cell_dir / "result.json", &why);
  CellOutcome o;
  if (!result || !result->is_object()) {
    o = unmeasured_outcome(st.plan, cell, st.run_id, "infra-error",
                           failure.empty() ? "the cell's result did not come back from host " + cell.spec.host_name + ": " + why : failure,
                           "remote", nullptr);
  } else {
    o.result = *result;
    o.status = text_or(o.result, "status", "infra-error");
    if (o.result.contains("error") && o.result["error"].is_string()) o.error = o.result["error"].get<std::string>();
    if (o.result.contains("error_phase") && o.result["error_phase"].is_string()) o.error_phase = o.result["error_phase"].get<std::string>();
    try {
      if (o.result.contains("merged") && o.result["merged"].is_object())
        o.merged = Histogram::from_json(o.result["merged"]["histogram"]);
    } catch (const std::exception& e) {
      o.status = "infra-error";
      o.error = std::string("the result from host ") + cell.spec.host_name + " has an unreadable histogram: " + e.what();
    }
    if (!failure.empty() && o.status == "measured") {  // the host failed after writing it
      o.status = "infra-error";
      o.error = failure;
      o.error_phase = "remote";
    }
    // A cell that came back as something else than asked for is not this cell.
    if (!o.result.contains("cell") || text_or(o.result["cell"], "id", "") != cell.spec.id) {
      o.status = "infra-error";
      o.error = "host " + cell.spec.host_name + " returned the result of another cell";
    }
    o.gates = evaluate_gates(st.plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr);
    o.result["status"] = o.status;
    o.result["error"] = o.error.empty() ? json(nullptr) : json(o.error);
    o.result["error_phase"] = o.error_phase.empty() ? json(nullptr) : json(o.error_phase);
    o.result["gates"] = gate_results_json(o.gates);
  }
  if (!o.error.empty()) cell_log.error(o.error);
  store_result(st.plan, cell, cell_dir, o, cell_log, err);
  return o;
}

// [plan] retest / [[gate]] retest: a cell whose gate failed is measured
// again, on the same host, up to N times; its first measurement stays the
// cell's result, each retest is kept in attempts/<id>.retest<k>/. Per gate
// that failed: passed on a retest -> flaky; failed on every retest -> fail
// (reproduced); a retest that could not be measured -> error (neither
// confirmed nor refuted: a broken lab never decides a verdict).
void retest_failures(RunState& st, const Cell& cell, CellOutcome& o, const std::filesystem::path& cell_dir,
                     const std::filesystem::path& run_dir, const std::function<CellOutcome(const std::filesystem::path&)>& measure,
                     std::ostream& err) {
  const Plan& plan = st.plan;
  if (o.status != "measured") return;
  int retests = 0;
  std::map<std::string, std::string> undecided;  // failing gate -> its first failure message
  for (const auto& g : o.gates) {
    if (g.verdict != Verdict::fail) continue;
    for (const auto& spec : plan.gates)
      if (spec.name == g.gate) retests = std::max(retests, spec.retest.value_or(plan.retest));
    undecided[g.gate] = g.message;
  }
  if (retests == 0 || undecided.empty()) return;
  std::map<std::string, std::pair<Verdict, std::string>> decided;
  json attempts = json::array();
  int done = 0;
  for (int k = 1; k <= retests && !undecided.empty() && !cancel_requested(); ++k) {
    auto dir = run_dir / "attempts" / (cell.spec.id + ".retest" + std::to_string(k));
    CellOutcome r = measure(dir);
    ++done;
    json verdicts = json::object();
    for (const auto& g : r.gates) verdicts[g.gate] = verdict_name(g.verdict);
    attempts.push_back(json{{"attempt", k},
                            {"dir", "attempts/" + dir.filename().string()},
                            {"status", r.status},
                            {"error", r.error.empty() ? json(nullptr) : json(r.error)},
                            {"max_ns", r.merged && !r.merged->empty() ? json(r.merged->max().count()) : json(nullptr)},
                            {"gates", verdicts}});
    if (r.status != "measured") {
      for (const auto& [gate, first] : undecided)
        decided[gate] = {Verdict::error, first + "; retest " + std::to_string(k) + " could not be measured (" + r.error +
                                             "): the failure is neither confirmed nor refuted"};
      undecided.clear();
      break;
    }
    for (const auto& g : r.gates) {
      auto it = undecided.find(g.gate);
      if (it == undecided.end() || g.verdict != Verdict::pass) continue;
      decided[g.gate] = {Verdict::flaky, it->second + "; passed on retest " + std::to_string(k) + " of " + std::to_string(retests) +
                                             " (" + format_latency(g.value) + "): flaky"};
      undecided.erase(it);
    }
  }
  for (const auto& [gate, first] : undecided)
    decided[gate] = {Verdict::fail, first + "; failed again on " + std::to_string(done) + " retest" + (done == 1 ? "" : "s") +
                                        ": reproduced"};
  for (auto& g : o.gates) {
    auto it = decided.find(g.gate);
    if (it == decided.end()) continue;
    g.verdict = it->second.first;
    g.message = it->second.second;
  }
  o.result["gates"] = gate_results_json(o.gates);
  o.result["retests"] = attempts;
  FileLogger cell_log(cell_dir / "cell.log", nullptr, cell.spec.id);
  for (const auto& [gate, verdict] : decided) cell_log.info("gate " + gate + ": " + verdict.second);
  store_result(plan, cell, cell_dir, o, cell_log, err);
}

std::string one_line(std::string s) {
  for (auto& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s.size() > 300 ? s.substr(0, 300) + "..." : s;
}

}  // namespace

int run_plan(const Plan& plan, PluginRegistry& registry, const RunOptions& options_in, std::ostream& out, std::ostream& err) {
  install_cancel_handlers();
  RunOptions options = options_in;
  std::optional<json> previous;
  if (options.resume_dir) {
    std::string why;
    previous = read_json(*options.resume_dir / "run.json", &why);
    if (!previous || previous->value("schema", "") != "vmlat-run/1") {
      err << "vmlat: --resume: " << (previous ? options.resume_dir->string() + "/run.json is not a vmlat run" : why) << "\n";
      return exit_code::usage;
    }
    std::string sha = previous->contains("plan") ? text_or((*previous)["plan"], "sha256", "") : "";
    if (sha != plan.sha256) {
      err << "vmlat: --resume: the plan changed since run " << previous->value("run_id", "?") << " (sha256 " << sha.substr(0, 12)
          << "... then, " << plan.sha256.substr(0, 12) << "... now): start a new run\n";
      return exit_code::usage;
    }
    // The run's own selection, duration and inventory.
    const json o = previous->contains("options") && (*previous)["options"].is_object() ? (*previous)["options"] : json::object();
    options.only.clear();
    if (o.contains("only") && o["only"].is_array())
      for (const auto& pair : o["only"])
        if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string())
          options.only.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    options.duration.reset();
    if (o.contains("duration_ns") && o["duration_ns"].is_number()) options.duration = std::chrono::nanoseconds(o["duration_ns"].get<long long>());
    if (o.contains("inventory") && o["inventory"].is_string() && !options.inventory) options.inventory = o["inventory"].get<std::string>();
  }
  auto all_cells = expand(plan);
  std::vector<Cell> cells;
  for (auto& c : all_cells) {
    bool keep = true;
    for (const auto& [axis, value] : options.only)
      if (c.spec.axis(axis) != value) keep = false;
    if (options.duration) c.spec.duration = *options.duration;
    if (keep) cells.push_back(c);
  }
  for (std::size_t i = 0; i < cells.size(); ++i) cells[i].index = static_cast<int>(i + 1);
  if (cells.empty()) {
    err << "vmlat: no cell matches --only\n";
    return exit_code::usage;
  }

  std::filesystem::path root = options.results_root ? *options.results_root : std::filesystem::path(plan.results_dir);
  // Shown as given (relative to the working directory when it was), used
  // absolute: the run directory's paths go to child processes (ansible,
  // QEMU, tar) that may run elsewhere.
  const bool show_relative = (options.resume_dir ? *options.resume_dir : root).is_relative();
  root = std::filesystem::absolute(root);
  std::string run_id = compact_utc() + "-" + plan.name;
  std::filesystem::path run_dir = root / run_id;
  auto holder = [&](const char* what) {
    return json{{"what", what}, {"run_id", run_id}, {"plan", plan.name}, {"pid", static_cast<long long>(::getpid())},
                {"since", iso_now()}, {"run_dir", std::filesystem::absolute(run_dir).string()}};
  };
  // The run directory's lock: a run being resumed must not be running.
  std::optional<FileLock> run_lock;
  if (previous) {
    run_dir = std::filesystem::absolute(*options.resume_dir).lexically_normal();
    if (run_dir.filename().empty()) run_dir = run_dir.parent_path();  // "results/<run>/"
    root = run_dir.parent_path();
    run_id = previous->value("run_id", run_dir.filename().string());
    try {
      run_lock = FileLock::try_lock(run_lock_path(run_dir), holder("run"));
    } catch (const std::exception& e) {
      err << "vmlat: --resume: " << e.what() << "\n";
      return exit_code::infra;
    }
    if (!run_lock) {
      err << "vmlat: --resume: run " << run_id << " is in progress: " << describe_holder(FileLock::holder(run_lock_path(run_dir)))
          << " holds it; wait for it to finish (or stop it) before resuming it\n";
      return exit_code::usage;
    }
    if (previous->value("status", "") == "running")
      err << "vmlat: run " << run_id << " was abandoned (its vmlat, pid " << previous->value("pid", 0LL)
          << ", stopped without finishing: killed?); resuming it\n";
  }

  // The hosts (the plan's, or the user's inventory), what they are, and
  // which cells each takes: all decided before anything runs.
  std::vector<HostSpec> host_specs = plan.hosts;
  bool placed = plan.hosts_declared;
  auto discovery = std::filesystem::temp_directory_path() / ("vmlat-hosts-" + std::to_string(::getpid()));
  struct RemoveDiscovery {
    std::filesystem::path dir;
    ~RemoveDiscovery() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } remove_discovery{discovery};
  if (options.inventory) {
    try {
      host_specs = hosts_from_inventory(*options.inventory, discovery / "inventory");
      placed = true;
    } catch (const std::exception& e) {
      err << "vmlat: --inventory: " << e.what() << "\n";
      return exit_code::usage;
    }
  }
  std::vector<HostState> hosts;
  if (placed) {
    if (options.progress) err << "vmlat: looking at " << host_specs.size() << " host(s)...\n" << std::flush;
    try {
      hosts = discover_hosts(host_specs, discovery);
    } catch (const Cancelled&) {
      err << "vmlat: interrupted while looking at the hosts\n";
      return exit_code::interrupted;
    }
  } else {
    HostState local;
    local.spec = host_specs.front();
    hosts.push_back(local);  // facts below, in the run's own work dir
  }
  Placement placement = place_cells(plan, cells, hosts, placed, registry);
  if (!placement.problems.empty()) {
    err << "vmlat: refused before anything ran: " << placement.problems.size() << " cell(s) cannot be placed on any host\n";
    for (const auto& p : placement.problems) err << "  " << p << "\n";
    for (const auto& h : hosts)
      err << "  host " << h.spec.name << ": tags [" << [&] {
        std::string t;
        for (const auto& tag : h.spec.tags) t += (t.empty() ? "" : ", ") + tag;
        return t;
      }() << "], " << h.summary() << "\n";
    return exit_code::infra;
  }
  // Plan hosts that are one machine take turns (machines.hpp).
  const auto machines = same_machines(hosts);
  if (auto problems = same_machine_problems(machines, hosts, cells); !problems.empty()) {
    err << "vmlat: refused before anything ran:\n";
    for (const auto& p : problems) err << "  " << p << "\n";
    return exit_code::infra;
  }
  for (const auto& g : machines) err << "vmlat: " << describe(g) << ": their cells run one at a time\n";
  auto host_of = [&](const std::string& name) -> HostState& {
    for (auto& h : hosts)
      if (h.spec.name == name) return h;
    return hosts.front();
  };
  bool any_local = std::any_of(cells.begin(), cells.end(), [&](const Cell& c) { return host_of(c.spec.host_name).spec.local(); });
  bool any_remote = std::any_of(cells.begin(), cells.end(), [&](const Cell& c) { return !host_of(c.spec.host_name).spec.local(); });

  // One measurement per host at a time: wait for (or, --no-wait, give up
  // on) whoever measures here now. Remote hosts take their own.
  std::optional<FileLock> host_lock;
  if (any_local) {
    HostLockFailure lock_failure;
    host_lock = acquire_host_lock(options.lock_dir, options.no_wait, holder("run"), err, &lock_failure);
    if (!host_lock) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;
  }
  if (!previous) {
    // A fresh directory, atomically: two runs started in the same second
    // never share one.
    try {
      std::filesystem::create_directories(root);
      const std::string base = run_id;
      for (int n = 2; !std::filesystem::create_directory(run_dir); ++n) run_dir = root / (base + "-" + std::to_string(n));
      run_id = run_dir.filename().string();
      run_lock = FileLock::try_lock(run_lock_path(run_dir), holder("run"));
    } catch (const std::exception& e) {
      err << "vmlat: cannot create the results directory " << run_dir << ": " << e.what() << "\n";
      return exit_code::infra;
    }
  }
  try {
    std::filesystem::create_directories(run_dir / "cells");
  } catch (const std::exception& e) {
    err << "vmlat: cannot create the results directory " << run_dir << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  FileLogger run_log(run_dir / "run.log", nullptr, "");
  run_log.info("vmlat " + std::string(version_string) + (previous ? " resumes run " : " run ") + run_id + " of plan " +
               plan.path.string() + " (sha256 " + plan.sha256 + ")");

  RunState st{plan, registry, run_dir, run_id, json::object()};
  auto host = make_local_executor(run_dir / ".work" / "host", "host");
  for (auto& h : hosts) {
    if (!h.spec.local() || !h.facts.empty()) continue;
    try {
      h.facts = collect_system_facts(*host);
    } catch (const std::exception& e) {
      h.facts = json{{"error", e.what()}};
    }
  }
  // The inventory of this run, for Ansible (the user's own, when given).
  std::filesystem::path inventory = options.inventory ? std::filesystem::absolute(*options.inventory) : run_dir / "inventory.json";
  if (placed && !options.inventory) {
    try {
      write_file_atomic(inventory, dump_json(inventory_for(host_specs), 2) + "\n");
    } catch (const std::exception& e) {
      err << "vmlat: cannot write " << inventory.string() << ": " << e.what() << "\n";
      return exit_code::infra;
    }
  }
  json hosts_json = json::object();
  for (const auto& h : hosts) {
    json j = h.facts.is_object() ? h.facts : json::object();
    if (placed) {
      j["vmlat_host"] = json{{"address", h.spec.local() ? json("local") : json(h.spec.address)},
                             {"port", h.spec.port ? json(h.spec.port) : json(nullptr)},
                             {"user", h.spec.user.empty() ? json(nullptr) : json(h.spec.user)},
                             {"tags", h.spec.tags},
                             {"reachable", h.reachable}};
      if (!h.reachable) j["vmlat_host"]["error"] = one_line(h.unreachable);
      j["vmlat_host"]["same_machine_as"] = same_machine_as(machines, h.spec.name);
    }
    hosts_json[h.spec.name] = j;
  }
  json command_line = options.command_line;
  json cells_json = json::array();
  for (const auto& c : cells)
    cells_json.push_back(json{{"id", c.spec.id}, {"index", c.index}, {"axes", axes_json(c.spec)}, {"host", c.spec.host_name},
                              {"status", "pending"}, {"dir", "cells/" + c.spec.id}});
  json run_options = json::object();
  if (!options.only.empty()) {
    json only = json::array();
    for (const auto& [k, v] : options.only) only.push_back({k, v});
    run_options["only"] = only;
  }
  if (options.duration) run_options["duration_ns"] = options.duration->count();
  if (options.inventory) run_options["inventory"] = inventory.string();
  if (previous) {
    st.run = *previous;
    st.run["status"] = "running";
    st.run["pid"] = static_cast<long long>(::getpid());
    st.run["finished"] = nullptr;
    st.run["exit_code"] = nullptr;
    for (auto it = hosts_json.begin(); it != hosts_json.end(); ++it) st.run["hosts"][it.key()] = it.value();
    if (!st.run.contains("resumed")) st.run["resumed"] = json::array();
    st.run["resumed"].push_back(json{{"at", iso_now()}, {"command_line", command_line}, {"vmlat_version", version_string}});
    st.run["cells"] = cells_json;  // statuses filled in below, kept cells first
  } else {
    st.run = json{{"schema", "vmlat-run/1"},
                  {"run_id", run_id},
                  {"vmlat_version", version_string},
                  {"plugin_abi", abi_version},
                  {"command_line", command_line},
                  {"options", run_options},
                  {"plan", {{"name", plan.name}, {"path", plan.path.string()}, {"sha256", plan.sha256}, {"description", plan.description}, {"text", plan.text}}},
                  {"started", iso_now()},
                  {"pid", static_cast<long long>(::getpid())},
                  {"finished", nullptr},
                  {"status", "running"},
                  {"exit_code", nullptr},
                  {"hosts", hosts_json},
                  {"cells", cells_json},
                  {"summary", nullptr}};
  }
  try {
    write_run(st);
  } catch (const std::exception& e) {
    err << "vmlat: cannot write " << (run_dir / "run.json").string() << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  preload_baselines(plan, err);

  auto estimate = plan.duration + std::chrono::seconds(3);
  Progress progress(options.progress, err, cells.size(), options.duration ? *options.duration + std::chrono::seconds(3) : estimate);
  std::vector<CellOutcome> outcomes(cells.size());
  std::mutex run_mutex;  // st.run, run.json, exporter hooks

  // Kept cells of a resumed run; the others queue on their host, in plan order.
  std::map<std::string, std::vector<std::size_t>> queues;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const Cell& cell = cells[i];
    if (previous) {
      auto cell_dir = run_dir / "cells" / cell.spec.id;
      if (auto kept = kept_outcome(plan, cell, cell_dir)) {
        outcomes[i] = *kept;
        record_in_run(st.run["cells"][i], outcomes[i]);
        st.run["cells"][i]["kept"] = true;
        progress.end_cell(static_cast<std::size_t>(cell.index), cell, outcomes[i]);
        continue;
      }
      // Measured again: the earlier attempt is kept aside, never overwritten.
      std::error_code ec;
      if (std::filesystem::exists(cell_dir, ec)) {
        auto aside = run_dir / "attempts" / cell.spec.id;
        int n = 1;
        while (std::filesystem::exists(aside.string() + "." + std::to_string(n), ec)) ++n;
        std::filesystem::create_directories(aside.parent_path(), ec);
        std::filesystem::rename(cell_dir, aside.string() + "." + std::to_string(n), ec);
      }
    }
    queues[cell.spec.host_name].push_back(i);
  }

  // The bundle the remote hosts are provisioned with, made once.
  RemoteRun remote_run{run_id, std::filesystem::absolute(plan.path), std::filesystem::absolute(run_dir), inventory, {}, {}, options.duration};
  std::string provisioning_problem;
  bool provision_any = false;
  for (const auto& [name, queue] : queues) {
    const auto& h = host_of(name).spec;
    if (!h.local() && h.provision && !options.no_provision) provision_any = true;
  }
  if (provision_any) {
    if (auto dir = find_ansible_dir()) remote_run.ansible_dir = *dir;
    else provisioning_problem = "cannot find vmlat's ansible/ (provision.yml) beside this vmlat";
    if (provisioning_problem.empty()) {
      try {
        if (options.bundle) {
          remote_run.bundle = std::filesystem::absolute(*options.bundle);
        } else {
          std::filesystem::create_directories(run_dir / ".work");
          remote_run.bundle = std::filesystem::absolute(run_dir / ".work" / "vmlat-bundle.tar.gz");
          progress.host("controller", "making the vmlat bundle");
          make_bundle(remote_run.ansible_dir, remote_run.bundle, run_dir / "bundle.log");
        }
      } catch (const std::exception& e) {
        provisioning_problem = e.what();
      }
    }
  }
  std::filesystem::path socket_dir;
  if (any_remote) {
    try {
      socket_dir = control_socket_dir(run_dir / ".work" / "ssh");
    } catch (const std::exception& e) {
      err << "vmlat: " << e.what() << "\n";
      return exit_code::infra;
    }
  }

  // Records a finished cell: run.json, exporters, progress.
  auto finish_cell = [&](std::size_t i, CellOutcome o) {
    std::lock_guard lock(run_mutex);
    outcomes[i] = std::move(o);
    record_in_run(st.run["cells"][i], outcomes[i]);
    write_run_or_warn(st, err);
    if (options.on_cell_done && outcomes[i].result.is_object()) options.on_cell_done(st.run, outcomes[i].result, run_dir);
    progress.end_cell(static_cast<std::size_t>(cells[i].index), cells[i], outcomes[i]);
  };
  auto mark_running = [&](std::size_t i) {
    std::lock_guard lock(run_mutex);
    st.run["cells"][i]["status"] = "running";
    write_run_or_warn(st, err);
  };
  auto not_run = [&](std::size_t i) {
    std::lock_guard lock(run_mutex);
    outcomes[i].status = "not-run";
    outcomes[i].error = "the run was interrupted before this cell";
    st.run["cells"][i]["status"] = "not-run";
  };

  // One worker per host: hosts in parallel, one cell at a time on each, and
  // hosts that are one machine in turns (preparing, a cell with its
  // retests, cleaning up).
  MachineTurns turns(machines);
  auto turn_on_machine = [&](const std::string& name) {
    return turns.take(name, [&](const std::string& holder) { progress.host(name, "waiting for " + holder + " (one machine)"); });
  };
  auto work_on = [&](const std::string& name, const std::vector<std::size_t>& queue) {
    HostState& h = host_of(name);
    auto preparing = turn_on_machine(name);
    auto host_dir = run_dir / "hosts" / name;
    std::unique_ptr<RemoteHost> remote;
    std::string host_problem;  // every cell of the host fails with it
    if (!h.spec.local()) {
      std::error_code ec;
      std::filesystem::create_directories(host_dir, ec);
      remote = std::make_unique<RemoteHost>(h.spec, remote_run, run_dir / ".work" / "hosts" / name, socket_dir, h.master);
      try {
        if (!h.reachable) throw InfraError(h.unreachable);
        progress.host(name, "connecting");
        remote->connect();
        if (h.spec.provision && !options.no_provision) {
          if (!provisioning_problem.empty()) throw InfraError("cannot provision " + name + ": " + provisioning_problem);
          progress.host(name, "provisioning");
          run_log.info("provisioning host " + name + " (ansible-playbook provision.yml --limit " + name + ")");
          remote->provision(host_dir / "provision.log");
        }
        remote->upload_plan();
      } catch (const Cancelled&) {
        host_problem = "interrupted while preparing host " + name;
      } catch (const std::exception& e) {
        host_problem = one_line(e.what());
      }
      if (!host_problem.empty()) {
        progress.host(name, "failed");
        run_log.error("host " + name + ": " + host_problem);
      }
    }
    preparing.release();
    // One measurement of a cell into `dir`: cells/<id>, or attempts/<id>.retest<k>.
    auto ssh_log_of = [&](const std::filesystem::path& dir) { return host_dir / ("cell-" + dir.filename().string() + ".ssh.log"); };
    auto measure_into = [&](const Cell& cell, const std::filesystem::path& dir,
                            const std::function<void()>& on_teardown = {}) -> CellOutcome {
      std::error_code dir_error;
      std::filesystem::create_directories(dir, dir_error);
      FileLogger cell_log(dir / "cell.log", &run_log, cell.spec.id);
      if (h.spec.local()) return local_cell(st, cell, cells.size(), dir, cell_log, *host, h.facts, progress, !placed, err);
      if (!host_problem.empty()) {
        auto o = unmeasured_outcome(plan, cell, run_id, "infra-error", "host " + name + ": " + host_problem, "host", h.facts);
        cell_log.error(o.error + (std::filesystem::exists(host_dir / "provision.log") ? " (see hosts/" + name + "/provision.log)" : ""));
        store_result(plan, cell, dir, o, cell_log, err);
        return o;
      }
      std::string failure;
      progress.cell(static_cast<std::size_t>(cell.index), cell, "remote");
      auto ssh_log = ssh_log_of(dir);
      try {
        int code = remote->run_cell(cell.spec.id, cell.index, ssh_log,
                                    [&](const std::string& phase) { progress.cell(static_cast<std::size_t>(cell.index), cell, phase); },
                                    dir, on_teardown);
        if (code == exit_code::usage)
          failure = "vmlat on host " + name + " refused the cell (exit 2): see hosts/" + name + "/" + ssh_log.filename().string();
      } catch (const std::exception& e) {
        failure = one_line(e.what());
      }
      // The cell log that came back replaces ours; add what the controller saw.
      FileLogger back(dir / "cell.log", nullptr, "controller");
      if (!failure.empty()) back.error(failure);
      return remote_outcome(st, cell, dir, failure, back, err);
    };
    for (std::size_t k = 0; k < queue.size(); ++k) {
      const std::size_t i = queue[k];
      const Cell& cell = cells[i];
      auto turn = turn_on_machine(name);
      if (cancel_requested()) {
        not_run(i);
        continue;
      }
      progress.begin_cell(name);
      mark_running(i);
      auto cell_dir = run_dir / "cells" / cell.spec.id;
      // While this cell tears down, the next one's remote vmlat starts
      // (RemoteHost::prespawn); it waits for "go" before touching the host.
      std::function<void()> prespawn_next;
      if (remote && host_problem.empty() && k + 1 < queue.size())
        prespawn_next = [&, next = &cells[queue[k + 1]]] {
          if (!cancel_requested())
            remote->prespawn(next->spec.id, next->index, ssh_log_of(run_dir / "cells" / next->spec.id));
        };
      CellOutcome o = measure_into(cell, cell_dir, prespawn_next);
      retest_failures(st, cell, o, cell_dir, run_dir, [&](const std::filesystem::path& dir) { return measure_into(cell, dir); }, err);
      finish_cell(i, std::move(o));
    }
    if (remote) {
      auto turn = turn_on_machine(name);
      progress.host(name, "cleaning up");
      remote->cleanup();
    }
    progress.host(name, host_problem.empty() ? "done" : "failed");
  };
  {
    std::vector<std::thread> workers;
    for (const auto& [name, queue] : queues) workers.emplace_back(work_on, name, queue);
    for (auto& w : workers) w.join();
  }
  if (!socket_dir.empty() && socket_dir.string().rfind("/tmp/vmlat-ssh-", 0) == 0) {
    std::error_code ec;
    std::filesystem::remove_all(socket_dir, ec);
  }

  int measured = 0, infra = 0, interrupted = 0, skipped = 0, failed_gates = 0, passed_gates = 0, gate_errors = 0, flaky_gates = 0;
  std::vector<json> cell_results;
  for (const auto& o : outcomes) {
    // A gate of a measured cell that could not be evaluated (its baseline is unreadable): exit 3.
    for (const auto& g : o.gates)
      if (o.status == "measured" && g.verdict == Verdict::error) ++gate_errors;
    if (o.status == "measured") ++measured;
    else if (o.status == "infra-error") ++infra;
    else if (o.status == "skipped") ++skipped;
    else ++interrupted;
    for (const auto& g : o.gates) {
      if (g.verdict == Verdict::fail) ++failed_gates;
      if (g.verdict == Verdict::pass) ++passed_gates;
      if (g.verdict == Verdict::flaky) ++flaky_gates;
    }
    if (o.result.is_object()) cell_results.push_back(o.result);
  }
  int code = exit_code::pass;
  if (cancel_requested()) code = exit_code::interrupted;
  else if (failed_gates || (flaky_gates && plan.flaky_fails)) code = exit_code::gate_failed;
  else if (infra || gate_errors) code = exit_code::infra;

  st.run["finished"] = iso_now();
  st.run["status"] = cancel_requested() ? "interrupted" : "complete";
  st.run["exit_code"] = code;
  st.run["summary"] = json{{"cells", cells.size()},   {"measured", measured},       {"infra_errors", infra},
                           {"skipped", skipped},      {"interrupted", interrupted}, {"gates_passed", passed_gates},
                           {"gates_failed", failed_gates}, {"gates_flaky", flaky_gates}};
  if (!write_run_or_warn(st, err) && code == exit_code::pass) code = exit_code::infra;
  std::error_code ec;
  // The bundle is made again from the build whenever needed; the remote
  // sessions' scratch only matters while they run (their logs are in hosts/).
  if (!remote_run.bundle.empty() && !options.bundle) std::filesystem::remove(remote_run.bundle, ec);
  std::filesystem::remove_all(run_dir / ".work" / "hosts", ec);
  remove_empty_dirs(run_dir / ".work");
  // A "latest" link next to the runs, for humans and CI scripts.
  auto latest = root / "latest";
  std::filesystem::remove(latest, ec);
  std::filesystem::create_directory_symlink(run_id, latest, ec);

  if (!options.junit_path.empty()) {
    try {
      write_file_atomic(options.junit_path, junit_xml(plan.name, st.run, cell_results));
    } catch (const std::exception& e) {
      err << "vmlat: cannot write JUnit file " << options.junit_path << ": " << e.what() << "\n";
      if (code == exit_code::pass) code = exit_code::infra;
    }
  }
  if (options.on_run_done) {
    int after_export = options.on_run_done(code, st.run, cell_results, run_dir);
    if (after_export != code) {  // e.g. the metrics export failed: run.json says so too
      code = after_export;
      st.run["exit_code"] = code;
      write_run_or_warn(st, err);
    }
  }
  print_summary(out, cells, outcomes, placed);
  out << "\n" << measured << "/" << cells.size() << " cells measured";
  if (infra) out << ", " << infra << " infrastructure error(s)";
  if (skipped) out << ", " << skipped << " not runnable here";
  if (interrupted) out << ", " << interrupted << " interrupted/not run";
  out << "; gates: " << passed_gates << " passed, " << failed_gates << " failed";
  if (gate_errors) out << ", " << gate_errors << " could not be evaluated";
  if (flaky_gates) out << ", " << flaky_gates << " flaky" << (plan.flaky_fails ? " (counted as failed: [plan] flaky = \"fail\")" : "");
  out << "\n";
  out << "results: " << (show_relative ? run_dir.lexically_proximate(std::filesystem::current_path()) : run_dir).string()
      << "\n";
  run_log.info("finished with exit code " + std::to_string(code));
  kill_all_children();
  return code;
}

int run_single_cell(const Plan& plan, PluginRegistry& registry, const CellRunOptions& options, std::ostream& out,
                    std::ostream& err) {
  install_cancel_handlers();
  const std::string mine = std::string(version_string) + "/" + std::to_string(abi_version);
  if (!options.expect_version.empty() && options.expect_version != mine) {
    err << "vmlat run-cell: the controller runs vmlat " << options.expect_version << ", this host has " << mine
        << ": provision the host again (vmlat provision PLAN) so that both run the same build\n";
    return exit_code::usage;
  }
  auto cells = expand(plan);
  auto it = std::find_if(cells.begin(), cells.end(), [&](const Cell& c) { return c.spec.id == options.cell_id; });
  if (it == cells.end()) {
    err << "vmlat run-cell: plan " << plan.name << " has no cell '" << options.cell_id << "'\n";
    return exit_code::usage;
  }
  if (options.wait_go) {
    // Started early (the previous cell is still tearing down): nothing is
    // touched before the controller says "go". Byte by byte, so that no
    // byte after the line is taken from the cancel reader below.
    std::string line;
    char c = 0;
    for (;;) {
      const ssize_t n = ::read(0, &c, 1);
      if (n < 0 && errno == EINTR) {
        if (cancel_requested()) return exit_code::interrupted;
        continue;
      }
      if (n <= 0) return exit_code::interrupted;  // EOF: not wanted after all
      if (c == '\n') break;
      if (line.size() < 16) line += c;
    }
    if (line != "go") {
      err << "vmlat run-cell: --wait-go: expected \"go\" on stdin, got \"" << line << "\"\n";
      return exit_code::usage;
    }
  }
  if (options.cancel_on_eof) {
    // The controller keeps our stdin open for the whole cell: EOF means it
    // wants the cell stopped, or it is gone.
    std::thread([] {
      char buf[256];
      while (true) {
        ssize_t n = ::read(0, buf, sizeof buf);
        if (n == 0 || (n < 0 && errno != EINTR)) break;
      }
      request_cancel();
    }).detach();
  }
  Cell cell = *it;
  cell.index = options.index;
  cell.spec.host_name = options.host_name.empty() ? cell.spec.host_name : options.host_name;
  if (options.duration) cell.spec.duration = *options.duration;

  json who{{"what", "cell"}, {"run_id", options.run_id + "/" + cell.spec.id}, {"plan", plan.name},
           {"pid", static_cast<long long>(::getpid())}, {"since", iso_now()}};
  HostLockFailure lock_failure;
  std::ostringstream lock_messages;
  auto host_lock = acquire_host_lock(options.lock_dir, false, who, lock_messages, &lock_failure);
  if (!lock_messages.str().empty()) err << lock_messages.str();
  if (!host_lock) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;

  auto cell_dir = options.out_dir / "cells" / cell.spec.id;
  try {
    std::filesystem::create_directories(cell_dir);
  } catch (const std::exception& e) {
    err << "vmlat run-cell: cannot create " << cell_dir.string() << ": " << e.what() << "\n";
    return exit_code::infra;
  }
  FileLogger run_log(options.out_dir / "run.log", nullptr, "");
  FileLogger cell_log(cell_dir / "cell.log", &run_log, cell.spec.id);
  RunState st{plan, registry, options.out_dir, options.run_id, json::object()};
  auto host = make_local_executor(options.out_dir / ".work" / cell.spec.id / "host", "host");
  json host_facts;
  try {
    host_facts = collect_system_facts(*host);
  } catch (const std::exception& e) {
    host_facts = json{{"error", e.what()}};
  }
  Progress progress(false, out, 1, cell.spec.duration, /*events=*/true);
  auto o = local_cell(st, cell, 0, cell_dir, cell_log, *host, host_facts, progress, false, err);
  remove_empty_dirs(options.out_dir / ".work");
  kill_all_children();
  if (options.send_back) {
    out << "vmlat-archive v1\n" << std::flush;
    try {
      // tar writes to our own stdout (the controller's ssh channel).
      auto tar = Process::spawn(ProcessSpec{{"tar", "-C", (options.out_dir / "cells").string(), "-cf", "-", "--", cell.spec.id},
                                            {}, "/proc/self/fd/1", options.out_dir / "send-back.err", {}});
      auto status = tar.wait(Clock::now() + std::chrono::minutes(5), false);
      if (!status.success()) err << "vmlat run-cell: tar of the cell directory failed: " << status.describe() << "\n";
    } catch (const std::exception& e) {
      err << "vmlat run-cell: cannot send the cell back: " << e.what() << "\n";
    }
  }
  if (cancel_requested()) return exit_code::interrupted;
  for (const auto& g : o.gates)
    if (g.verdict == Verdict::fail) return exit_code::gate_failed;
  return o.status == "measured" || o.status == "skipped" ? exit_code::pass : exit_code::infra;
}

namespace {

// The hosts of a plan (or inventory) and what they are; nullopt after
// printing why not.
std::optional<std::vector<HostState>> hosts_of(const Plan& plan, const std::optional<std::filesystem::path>& inventory,
                                               const std::filesystem::path& scratch, std::ostream& err, int* code) {
  std::vector<HostSpec> specs = plan.hosts;
  if (inventory) {
    try {
      specs = hosts_from_inventory(*inventory, scratch / "inventory");
    } catch (const std::exception& e) {
      err << "vmlat: --inventory: " << e.what() << "\n";
      *code = exit_code::usage;
      return std::nullopt;
    }
  }
  try {
    return discover_hosts(specs, scratch);
  } catch (const Cancelled&) {
    *code = exit_code::interrupted;
    return std::nullopt;
  }
}

struct ScratchDir {
  std::filesystem::path dir;
  explicit ScratchDir(const std::string& what)
      : dir(std::filesystem::temp_directory_path() / ("vmlat-" + what + "-" + std::to_string(::getpid()))) {
    std::filesystem::create_directories(dir);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

}  // namespace

int list_hosts(const Plan& plan, const std::optional<std::filesystem::path>& inventory, bool as_json, std::ostream& out,
               std::ostream& err) {
  install_cancel_handlers();
  ScratchDir scratch("hosts");
  int code = exit_code::pass;
  auto hosts = hosts_of(plan, inventory, scratch.dir, err, &code);
  if (!hosts) return code;
  json list = json::array();
  bool all_reachable = true;
  const auto machines = same_machines(*hosts);
  for (const auto& h : *hosts) {
    all_reachable = all_reachable && h.reachable;
    list.push_back(json{{"name", h.spec.name},
                        {"address", h.spec.local() ? json("local") : json(h.spec.address)},
                        {"port", h.spec.port ? json(h.spec.port) : json(nullptr)},
                        {"user", h.spec.user.empty() ? json(nullptr) : json(h.spec.user)},
                        {"tags", h.spec.tags},
                        {"reachable", h.reachable},
                        {"error", h.reachable ? json(nullptr) : json(one_line(h.unreachable))},
                        {"same_machine_as", same_machine_as(machines, h.spec.name)},
                        {"facts", h.facts}});
  }
  if (as_json) {
    out << dump_json(list, 2) << "\n";
  } else {
    std::vector<std::size_t> w = {4, 7, 9, 4};
    auto address = [](const HostState& h) {
      return h.spec.local() ? std::string("local") : (h.spec.user.empty() ? "" : h.spec.user + "@") + h.spec.address +
                                                        (h.spec.port ? ":" + std::to_string(h.spec.port) : "");
    };
    auto tags = [](const HostState& h) {
      std::string t;
      for (const auto& tag : h.spec.tags) t += (t.empty() ? "" : ",") + tag;
      return t.empty() ? std::string("-") : t;
    };
    for (const auto& h : *hosts) {
      w[0] = std::max(w[0], h.spec.name.size());
      w[1] = std::max(w[1], address(h).size());
      w[3] = std::max(w[3], tags(h).size());
    }
    out << pad("HOST", w[0]) << "  " << pad("ADDRESS", w[1]) << "  " << pad("REACHABLE", w[2]) << "  " << pad("TAGS", w[3])
        << "  FACTS\n";
    for (const auto& h : *hosts)
      out << pad(h.spec.name, w[0]) << "  " << pad(address(h), w[1]) << "  " << pad(h.reachable ? "yes" : "no", w[2]) << "  "
          << pad(tags(h), w[3]) << "  " << one_line(h.summary()) << "\n";
    for (const auto& g : machines) out << describe(g) << ": " << what_run_does(g, *hosts) << "\n";
  }
  return all_reachable ? exit_code::pass : exit_code::infra;
}

int provision_hosts(const Plan& plan, const RunOptions& options, std::ostream& out, std::ostream& err) {
  install_cancel_handlers();
  ScratchDir scratch("provision");
  int code = exit_code::pass;
  auto hosts = hosts_of(plan, options.inventory, scratch.dir, err, &code);
  if (!hosts) return code;
  auto ansible_dir = find_ansible_dir();
  if (!ansible_dir) {
    err << "vmlat provision: cannot find vmlat's ansible/ (provision.yml) beside this vmlat\n";
    return exit_code::infra;
  }
  std::vector<HostSpec> specs;
  for (const auto& h : *hosts) specs.push_back(h.spec);
  auto inventory = options.inventory ? std::filesystem::absolute(*options.inventory) : scratch.dir / "inventory.json";
  if (!options.inventory) write_file_atomic(inventory, dump_json(inventory_for(specs), 2) + "\n");
  RemoteRun run{"provision-" + compact_utc(), std::filesystem::absolute(plan.path), scratch.dir, inventory, *ansible_dir, {}, {}};
  try {
    run.bundle = options.bundle ? std::filesystem::absolute(*options.bundle) : scratch.dir / "vmlat-bundle.tar.gz";
    if (!options.bundle) make_bundle(*ansible_dir, run.bundle, scratch.dir / "bundle.log");
  } catch (const std::exception& e) {
    err << "vmlat provision: " << e.what() << "\n";
    return exit_code::infra;
  }
  auto logs = options.results_root ? *options.results_root : std::filesystem::path(plan.results_dir) / "provision";
  std::filesystem::create_directories(logs);
  auto socket_dir = control_socket_dir(scratch.dir / "ssh");
  std::mutex out_mutex;
  std::vector<std::thread> workers;
  int failures = 0;
  for (const auto& h : *hosts) {
    if (h.spec.local() || !h.spec.provision) continue;
    workers.emplace_back([&, h] {
      std::string verdict = "provisioned";
      auto log = logs / (h.spec.name + ".log");
      try {
        if (!h.reachable) throw InfraError(h.unreachable);
        RemoteHost remote(h.spec, run, scratch.dir / "hosts" / h.spec.name, socket_dir, h.master);
        remote.connect();
        remote.provision(log);
      } catch (const std::exception& e) {
        verdict = "FAILED: " + one_line(e.what());
      }
      std::lock_guard lock(out_mutex);
      if (verdict != "provisioned") ++failures;
      out << h.spec.name << ": " << verdict << " (log: " << log.string() << ")\n";
    });
  }
  for (auto& w : workers) w.join();
  if (workers.empty()) out << "no remote host to provision (hosts without an address are this machine)\n";
  if (cancel_requested()) return exit_code::interrupted;
  return failures ? exit_code::infra : exit_code::pass;
}

}  // namespace vmlat
