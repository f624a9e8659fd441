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
#include <sstream>

#include "cell_support.hpp"
#include "loader.hpp"
#include "locks.hpp"
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
                                       const std::string& cell_error, const Histogram* merged) {
  std::vector<GateResult> results;
  for (const auto& gate : plan.gates) {
    if (!gate.matches(cell)) continue;
    GateResult r;
    r.gate = gate.name;
    r.stat = gate.stat;
    r.bound = gate.bound;
    if (cell_status == "skipped") {
      r.verdict = Verdict::skipped;
      r.message = cell_error;
    } else if (cell_status != "measured" || !merged || merged->empty()) {
      // A cell that was not measured never counts as passed.
      r.verdict = Verdict::error;
      r.message = cell_status == "measured" ? "the probe returned no samples" : "not measured: " + cell_error;
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
  std::vector<GateResult> gates;
  json result;
  bool result_missing = false;  // result.json could not be written
};

json gate_results_json(const std::vector<GateResult>& gates) {
  json arr = json::array();
  for (const auto& g : gates) {
    json j{{"gate", g.gate}, {"stat", g.stat}, {"bound_ns", g.bound.count()}, {"verdict", verdict_name(g.verdict)}};
    if (g.verdict == Verdict::pass || g.verdict == Verdict::fail) {
      j["value_ns"] = g.value.count();
      j["excess_ns"] = std::max<long long>(0, (g.value - g.bound).count());
    }
    if (!g.message.empty()) j["message"] = g.message;
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

// Live progress on a terminal: "[i/N] axes  phase  elapsed, ~remaining",
// redrawn on every phase change and once a second in between.
class Progress {
 public:
  Progress(bool enabled, std::ostream& err, std::size_t total, std::chrono::nanoseconds per_cell_estimate)
      : enabled_(enabled), err_(err), total_(total), estimate_(per_cell_estimate), start_(Clock::now()) {
    if (enabled_) ticker_ = std::thread([this] { tick(); });
  }
  ~Progress() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (ticker_.joinable()) ticker_.join();
  }
  void cell(std::size_t index, const Cell& c, const std::string& phase) {
    if (!enabled_) return;
    std::lock_guard lock(mutex_);
    index_ = index;
    axes_.clear();
    for (const auto& [k, v] : c.spec.axes) axes_ += (axes_.empty() ? "" : " ") + k + "=" + v;
    phase_ = phase;
    draw();
  }
  void begin_cell() {
    std::lock_guard lock(mutex_);
    cell_start_ = Clock::now();
  }
  void end_cell(std::size_t index, const Cell& c, const CellOutcome& o) {
    std::lock_guard lock(mutex_);
    ++done_;
    phase_.clear();
    if (!enabled_) return;
    std::string verdict = o.status;
    for (const auto& g : o.gates)
      if (g.verdict == Verdict::fail) verdict = "gate failed";
    err_ << "\r\033[K[" << index << "/" << total_ << "] " << c.spec.id << ": " << verdict;
    if (o.merged && !o.merged->empty()) err_ << " (max " << format_latency(o.merged->max()) << ")";
    if (!o.error.empty()) err_ << ": " << o.error;
    err_ << "\n" << std::flush;
  }

 private:
  void draw() {  // with mutex_ held
    if (phase_.empty()) return;
    auto elapsed = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - start_);
    // Remaining: the average of finished cells, or the plan's estimate before any.
    double per_cell = done_ > 0 ? std::chrono::duration<double>(Clock::now() - start_).count() / static_cast<double>(done_)
                                : std::chrono::duration<double>(estimate_).count();
    double in_cell = std::chrono::duration<double>(Clock::now() - cell_start_).count();
    double remaining = std::max(0.0, per_cell * static_cast<double>(total_ - done_) - in_cell);
    err_ << "\r\033[K[" << index_ << "/" << total_ << "] " << axes_ << "  " << phase_ << "  elapsed " << clock_text(elapsed)
         << ", ~" << clock_text(std::chrono::seconds(static_cast<long long>(remaining))) << " left" << std::flush;
  }
  void tick() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::seconds(1));
      if (!stopping_) draw();
    }
  }

  bool enabled_;
  std::ostream& err_;
  std::size_t total_;
  std::size_t done_ = 0;
  std::chrono::nanoseconds estimate_;
  Clock::time_point start_;
  Clock::time_point cell_start_ = Clock::now();
  std::size_t index_ = 0;
  std::string axes_, phase_;
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
    const auto missed = static_cast<unsigned long long>(h.missed_periods());
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

namespace {

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
    timed("boot", plan.timeouts.boot, true, [&] { backend->boot(ctx); });
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
  if (probe_result && !probe_result->per_cpu.empty()) {
    Histogram merged;
    for (const auto& [cpu, h] : probe_result->per_cpu) {
      merged.merge(h);
      per_cpu[std::to_string(cpu)] = json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}};
    }
    o.merged = merged;
    // Facts of this measurement complete (and override) the plugin's facts().
    if (!facts.contains("probe")) facts["probe"] = json::object();
    for (auto it = probe_result->facts.begin(); it != probe_result->facts.end(); ++it) facts["probe"][it.key()] = it.value();
    if (o.status == "measured") {
      // Data that does not fit the cell is not a measurement (docs/results-format.md,
      // "Plausibility"); it stays in result.json for diagnosis.
      std::string why = implausible(cell.spec, probe_result->per_cpu, measured_for);
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
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr);

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

void print_summary(std::ostream& out, const std::vector<Cell>& cells, const std::vector<CellOutcome>& outcomes) {
  struct Row { std::string cell, samples, p99, max, gate, bound, verdict; };
  std::vector<Row> rows;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const auto& o = outcomes[i];
    Row base{cells[i].spec.id, "-", "-", "-", "-", "-", o.status};
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
      r.verdict = g.verdict == Verdict::pass ? "PASS" : g.verdict == Verdict::fail ? "FAIL: " + g.message : std::string(verdict_name(g.verdict));
      rows.push_back(r);
    }
  }
  std::vector<std::size_t> w = {4, 7, 3, 3, 4, 5};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.cell.size());
    w[1] = std::max(w[1], r.samples.size());
    w[2] = std::max(w[2], r.p99.size());
    w[3] = std::max(w[3], r.max.size());
    w[4] = std::max(w[4], r.gate.size());
    w[5] = std::max(w[5], r.bound.size());
  }
  out << pad("CELL", w[0]) << "  " << pad("SAMPLES", w[1]) << "  " << pad("P99", w[2]) << "  " << pad("MAX", w[3]) << "  "
      << pad("GATE", w[4]) << "  " << pad("BOUND", w[5]) << "  VERDICT\n";
  for (const auto& r : rows)
    out << pad(r.cell, w[0]) << "  " << pad(r.samples, w[1]) << "  " << pad(r.p99, w[2]) << "  " << pad(r.max, w[3]) << "  "
        << pad(r.gate, w[4]) << "  " << pad(r.bound, w[5]) << "  " << r.verdict << "\n";
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
    if (result->contains("merged") && !(*result)["merged"].is_null())
      o.merged = Histogram::from_json((*result)["merged"]["histogram"]);
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged result is measured again
  }
  if (o.status == "measured" && !o.merged) return std::nullopt;
  o.gates = evaluate_gates(plan, cell.spec, o.status, o.error, o.merged ? &*o.merged : nullptr);
  o.result = *result;
  return o;
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
    std::string sha = (*previous)["plan"].value("sha256", "");
    if (sha != plan.sha256) {
      err << "vmlat: --resume: the plan changed since run " << previous->value("run_id", "?") << " (sha256 " << sha.substr(0, 12)
          << "... then, " << plan.sha256.substr(0, 12) << "... now): start a new run\n";
      return exit_code::usage;
    }
    // The run's own selection and duration.
    const json& o = previous->contains("options") ? (*previous)["options"] : json::object();
    options.only.clear();
    for (const auto& pair : o.value("only", json::array())) options.only.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    options.duration.reset();
    if (o.contains("duration_ns") && o["duration_ns"].is_number()) options.duration = std::chrono::nanoseconds(o["duration_ns"].get<long long>());
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
  std::string run_id = compact_utc() + "-" + plan.name;
  std::filesystem::path run_dir = root / run_id;
  auto holder = [&](const char* what) {
    return json{{"what", what}, {"run_id", run_id}, {"plan", plan.name}, {"pid", static_cast<long long>(::getpid())},
                {"since", iso_now()}, {"run_dir", std::filesystem::absolute(run_dir).string()}};
  };
  // The run directory's lock: a run being resumed must not be running.
  std::optional<FileLock> run_lock;
  if (previous) {
    run_dir = *options.resume_dir;
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
  // One measurement per host at a time: wait for (or, --no-wait, give up
  // on) whoever measures here now.
  HostLockFailure lock_failure;
  std::optional<FileLock> host_lock = acquire_host_lock(options.lock_dir, options.no_wait, holder("run"), err, &lock_failure);
  if (!host_lock) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;
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
  json host_facts;
  try {
    host_facts = collect_system_facts(*host);
  } catch (const std::exception& e) {
    host_facts = json{{"error", e.what()}};
  }
  json command_line = options.command_line;
  json cells_json = json::array();
  for (const auto& c : cells)
    cells_json.push_back(json{{"id", c.spec.id}, {"index", c.index}, {"axes", axes_json(c.spec)}, {"status", "pending"},
                              {"dir", "cells/" + c.spec.id}});
  json run_options = json::object();
  if (!options.only.empty()) {
    json only = json::array();
    for (const auto& [k, v] : options.only) only.push_back({k, v});
    run_options["only"] = only;
  }
  if (options.duration) run_options["duration_ns"] = options.duration->count();
  if (previous) {
    st.run = *previous;
    st.run["status"] = "running";
    st.run["pid"] = static_cast<long long>(::getpid());
    st.run["finished"] = nullptr;
    st.run["exit_code"] = nullptr;
    st.run["hosts"][plan.hosts.front().name] = host_facts;
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
                  {"hosts", {{plan.hosts.front().name, host_facts}}},
                  {"cells", cells_json},
                  {"summary", nullptr}};
  }
  try {
    write_run(st);
  } catch (const std::exception& e) {
    err << "vmlat: cannot write " << (run_dir / "run.json").string() << ": " << e.what() << "\n";
    return exit_code::infra;
  }

  auto estimate = plan.duration + std::chrono::seconds(3);
  bool show_progress = options.progress;
  Progress progress(show_progress, err, cells.size(), options.duration ? *options.duration + std::chrono::seconds(3) : estimate);
  std::vector<CellOutcome> outcomes(cells.size());
  std::vector<json> cell_results;
  for (std::size_t i = 0; i < cells.size(); ++i) {
    const Cell& cell = cells[i];
    CellOutcome& o = outcomes[i];
    if (previous) {
      auto cell_dir = run_dir / "cells" / cell.spec.id;
      if (auto kept = kept_outcome(plan, cell, cell_dir)) {
        o = *kept;
        cell_results.push_back(o.result);
        record_in_run(st.run["cells"][i], o);
        st.run["cells"][i]["kept"] = true;
        progress.end_cell(static_cast<std::size_t>(cell.index), cell, o);
        continue;
      }
      // Measured again: the earlier attempt is kept aside, never overwritten.
      if (std::filesystem::exists(cell_dir)) {
        auto aside = run_dir / "attempts" / cell.spec.id;
        int n = 1;
        while (std::filesystem::exists(aside.string() + "." + std::to_string(n))) ++n;
        std::filesystem::create_directories(aside.parent_path());
        std::filesystem::rename(cell_dir, aside.string() + "." + std::to_string(n));
      }
    }
    if (cancel_requested()) {
      o.status = "not-run";
      o.error = "the run was interrupted before this cell";
      st.run["cells"][i]["status"] = o.status;
      continue;
    }
    auto cell_dir = run_dir / "cells" / cell.spec.id;
    std::error_code dir_error;
    std::filesystem::create_directories(cell_dir, dir_error);
    FileLogger cell_log(cell_dir / "cell.log", &run_log, cell.spec.id);
    progress.begin_cell();
    st.run["cells"][i]["status"] = "running";
    write_run_or_warn(st, err);

    // A cell that needs another kind of host kernel is not runnable here.
    auto needs = cell.spec.axis("host_kernel");
    bool host_rt = host_facts.value("preempt_rt", false);
    if (needs && *needs != "any" && (*needs == "rt") != host_rt) {
      o.status = "skipped";
      o.error = "not runnable here: the cell needs a" + std::string(*needs == "rt" ? " PREEMPT_RT" : " non-RT") +
                " host kernel, this host runs " + host_facts.value("kernel_release", std::string("?")) + " (" +
                host_facts.value("preempt_model", std::string("?")) + ")";
      cell_log.info(o.error);
      o = unmeasured_outcome(plan, cell, run_id, "skipped", o.error, "", host_facts);
    } else {
      cell_log.info("cell " + std::to_string(cell.index) + "/" + std::to_string(cells.size()) + " " + cell.spec.id);
      try {
        o = run_cell(st, cell, cell_dir, cell_log, *host, host_facts, progress);
      } catch (...) {  // the core's own failure around the cell (e.g. its directories): not a measurement
        o = unmeasured_outcome(plan, cell, run_id, "infra-error", describe_current_exception(), "setup", host_facts);
      }
    }
    try {
      write_file_atomic(cell_dir / "result.json", dump_json(o.result, 2) + "\n");
    } catch (const std::exception& e) {
      // A cell without its result file is not measured, whatever it measured.
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
    cell_results.push_back(o.result);
    record_in_run(st.run["cells"][i], o);
    write_run_or_warn(st, err);
    if (options.on_cell_done) options.on_cell_done(st.run, o.result, run_dir);
    progress.end_cell(static_cast<std::size_t>(cell.index), cell, o);
  }

  int measured = 0, infra = 0, interrupted = 0, skipped = 0, failed_gates = 0, passed_gates = 0;
  for (const auto& o : outcomes) {
    if (o.status == "measured") ++measured;
    else if (o.status == "infra-error") ++infra;
    else if (o.status == "skipped") ++skipped;
    else ++interrupted;
    for (const auto& g : o.gates) {
      if (g.verdict == Verdict::fail) ++failed_gates;
      if (g.verdict == Verdict::pass) ++passed_gates;
    }
  }
  int code = exit_code::pass;
  if (cancel_requested()) code = exit_code::interrupted;
  else if (failed_gates) code = exit_code::gate_failed;
  else if (infra) code = exit_code::infra;

  st.run["finished"] = iso_now();
  st.run["status"] = cancel_requested() ? "interrupted" : "complete";
  st.run["exit_code"] = code;
  st.run["summary"] = json{{"cells", cells.size()},   {"measured", measured},       {"infra_errors", infra},
                           {"skipped", skipped},      {"interrupted", interrupted}, {"gates_passed", passed_gates},
                           {"gates_failed", failed_gates}};
  if (!write_run_or_warn(st, err) && code == exit_code::pass) code = exit_code::infra;
  std::error_code ec;
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
  print_summary(out, cells, outcomes);
  out << "\n" << measured << "/" << cells.size() << " cells measured";
  if (infra) out << ", " << infra << " infrastructure error(s)";
  if (skipped) out << ", " << skipped << " not runnable here";
  if (interrupted) out << ", " << interrupted << " interrupted/not run";
  out << "; gates: " << passed_gates << " passed, " << failed_gates << " failed\n";
  out << "results: " << run_dir.string() << "\n";
  run_log.info("finished with exit code " + std::to_string(code));
  kill_all_children();
  return code;
}

}  // namespace vmlat
