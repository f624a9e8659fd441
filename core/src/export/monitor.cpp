#include "monitor.hpp"

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>

#include "../cell_support.hpp"
#include "../loader.hpp"
#include "../locks.hpp"
#include "../runner.hpp"
#include "metrics.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/errors.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/local.hpp"
#include "vmlat/log.hpp"
#include "vmlat/plugin.hpp"
#include "vmlat/process.hpp"
#include "vmlat/units.hpp"
#include "vmlat/version.hpp"

namespace vmlat::exporter {

namespace {

class Snapshot final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mutex_);
    return families_;
  }
  void set(std::vector<prometheus::MetricFamily> f) {
    std::lock_guard lock(mutex_);
    families_ = std::move(f);
  }

 private:
  mutable std::mutex mutex_;
  std::vector<prometheus::MetricFamily> families_;
};

Deadline after(std::chrono::nanoseconds d) { return Clock::now() + std::chrono::duration_cast<Clock::duration>(d); }

json hist_doc(const Histogram& h) { return json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}}; }

}  // namespace

int run_monitor(const Plan& plan, PluginRegistry& registry, const MonitorOptions& options, std::ostream& out,
                std::ostream& err) {
  install_cancel_handlers();
  auto cells = expand(plan);
  if (cells.empty()) {
    err << "vmlat monitor: the plan has no cells\n";
    return exit_code::usage;
  }
  const Cell* chosen = &cells.front();
  if (!options.cell_id.empty()) {
    chosen = nullptr;
    for (const auto& c : cells)
      if (c.spec.id == options.cell_id) chosen = &c;
    if (!chosen) {
      err << "vmlat monitor: no cell '" << options.cell_id << "' in plan " << plan.name << "; cells:";
      for (const auto& c : cells) err << " " << c.spec.id;
      err << "\n";
      return exit_code::usage;
    }
  }
  Cell cell = *chosen;
  cell.spec.duration = options.window;

  // The monitor measures too: one measurement per host at a time.
  HostLockFailure lock_failure;
  auto host_lock = acquire_host_lock(options.lock_dir, options.no_wait,
                                     json{{"what", "monitor"}, {"run_id", cell.spec.id}, {"plan", plan.name},
                                          {"pid", static_cast<long long>(::getpid())}, {"since", iso_now()}},
                                     err, &lock_failure);
  if (!host_lock) return lock_failure == HostLockFailure::interrupted ? exit_code::interrupted : exit_code::infra;

  char tmpl[] = "/tmp/vmlat-monitor-XXXXXX";
  if (!mkdtemp(tmpl)) {
    err << "vmlat monitor: cannot create a scratch directory in /tmp\n";
    return exit_code::infra;
  }
  const std::filesystem::path scratch = tmpl;
  std::filesystem::create_directories(scratch / "cell");
  std::filesystem::create_directories(scratch / "work");
  auto cleanup_scratch = [&] {
    std::error_code ec;
    std::filesystem::remove_all(scratch, ec);
  };

  auto snapshot = std::make_shared<Snapshot>();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(options.listen, 2);
    exposer->RegisterCollectable(snapshot);
  } catch (const std::exception& e) {
    err << "vmlat monitor: cannot listen on " << options.listen << ": " << e.what() << "\n";
    cleanup_scratch();
    return exit_code::usage;
  }
  std::string bound = options.listen;
  if (auto ports = exposer->GetListeningPorts(); !ports.empty()) {
    auto colon = options.listen.rfind(':');
    bound = (colon == std::string::npos ? std::string("0.0.0.0") : options.listen.substr(0, colon)) + ":" +
            std::to_string(ports.front());
  }

  FileLogger log(scratch / "monitor.log", nullptr, "", &err);
  auto host = make_local_executor(scratch / "host", "host");
  json host_facts;
  try {
    host_facts = collect_system_facts(*host);
  } catch (const std::exception& e) {
    host_facts = json{{"error", e.what()}};
  }
  // As the runner: a cell that needs another kind of host kernel is not runnable here.
  if (auto needs = cell.spec.axis("host_kernel"); needs && *needs != "any") {
    bool host_rt = host_facts.contains("preempt_rt") && host_facts["preempt_rt"].is_boolean() &&
                   host_facts["preempt_rt"].get<bool>();
    if ((*needs == "rt") != host_rt) {
      err << "vmlat monitor: cell " << cell.spec.id << " is not runnable here: it needs a"
          << (*needs == "rt" ? " PREEMPT_RT" : " non-RT") << " host kernel\n";
      exposer.reset();
      cleanup_scratch();
      return exit_code::infra;
    }
  }
  CellContextImpl ctx(cell.spec, scratch / "cell", scratch / "work", log, *host);

  const Instance& backend_inst = plan.backends.at(cell.backend);
  const Instance& probe_inst = plan.probes.at(cell.probe);
  const Instance* workload_inst = cell.workload == "none" ? nullptr : &plan.workloads.at(cell.workload);
  std::unique_ptr<Plugin> backend_p, workload_p, probe_p;
  Backend* backend = nullptr;
  Workload* workload = nullptr;
  Probe* probe = nullptr;
  bool booted = false, workload_running = false;
  int code = exit_code::pass;

  const std::string started = iso_now();
  const std::string monitor_id = "monitor-" + started;
  std::map<int, Histogram> cumulative;
  std::uint64_t windows = 0;
  const auto t_start = Clock::now();

  auto publish = [&](const std::map<int, Histogram>& window) {
    json run{{"plan", {{"name", plan.name}}}, {"vmlat_version", version_string}, {"started", started}, {"finished", nullptr}};
    Histogram merged, window_merged;
    json per_cpu = json::object();
    for (const auto& [cpu, h] : cumulative) {
      merged.merge(h);
      per_cpu[std::to_string(cpu)] = hist_doc(h);
    }
    for (const auto& [cpu, h] : window) window_merged.merge(h);
    json gates = json::array();
    for (const auto& g : evaluate_gates(plan, cell.spec, "measured", "", &merged)) {
      json j{{"gate", g.gate}, {"stat", g.stat}, {"bound_ns", g.bound.count()}, {"verdict", verdict_name(g.verdict)}};
      if (g.verdict == Verdict::pass || g.verdict == Verdict::fail) j["value_ns"] = g.value.count();
      gates.push_back(j);
    }
    json facts = json::object();
    try {
      if (backend) facts["backend"] = backend->facts();
      if (probe) facts["probe"] = probe->facts();
    } catch (const std::exception&) {
    }
    json axes = json::object();
    for (const auto& [k, v] : cell.spec.axes) axes[k] = v;
    json result{{"run_id", monitor_id},
                {"cell",
                 {{"id", cell.spec.id},
                  {"axes", axes},
                  {"host", cell.spec.host_name},
                  {"period_ns", cell.spec.period.count()},
                  {"duration_ns", cell.spec.duration.count()}}},
                {"status", "measured"},
                {"plugins", {{"backend", {{"plugin", backend_inst.plugin}}}}},
                {"host_facts", host_facts},
                {"facts", facts},
                {"timings", {{"started", started}, {"finished", iso_now()}}},
                {"merged", hist_doc(merged)},
                {"per_cpu", per_cpu},
                {"gates", gates}};
    MetricSet set;
    add_cell_metrics(set, run, result);
    const LabelList L = cell_labels(run, result);
    auto with = [](LabelList l, const std::string& cpu) {
      l.emplace_back("cpu", cpu);
      return l;
    };
    set.gauge("vmlat_monitor_window_max_seconds", "Worst-case latency of the last completed window", with(L, "all"),
              to_seconds(window_merged.max()));
    for (const auto& [cpu, h] : window)
      set.gauge("vmlat_monitor_window_max_seconds", "Worst-case latency of the last completed window",
                with(L, std::to_string(cpu)), to_seconds(h.max()));
    set.counter("vmlat_monitor_windows_total", "Windows measured since the monitor started", L,
                static_cast<double>(windows));
    set.gauge("vmlat_monitor_window_seconds", "Length of one monitor window", L, to_seconds(options.window));
    set.gauge("vmlat_monitor_window_end_timestamp_seconds", "When the last window ended (Unix time)", L,
              std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
    snapshot->set(set.take());
    return std::pair{window_merged, merged};
  };

  std::string phase = "configure";
  try {
    backend_p = make_plugin(backend_inst, registry);
    backend = dynamic_cast<Backend*>(backend_p.get());
    probe_p = make_plugin(probe_inst, registry);
    probe = dynamic_cast<Probe*>(probe_p.get());
    if (workload_inst) {
      workload_p = make_plugin(*workload_inst, registry);
      workload = dynamic_cast<Workload*>(workload_p.get());
      if (!workload) throw PlanError("plugin '" + workload_inst->plugin + "' is not a workload");
    }
    if (!backend || !probe) throw PlanError("the cell's backend or probe plugin has the wrong kind");
    out << "vmlat monitor: cell " << cell.spec.id << " of plan " << plan.name << ", windows of "
        << format_duration(options.window) << ", metrics on http://" << bound << "/metrics (Ctrl-C stops)\n"
        << std::flush;
    phase = "prepare";
    {
      PhaseScope scope("prepare", after(plan.timeouts.prepare));
      booted = true;
      backend->prepare(ctx);
    }
    phase = "boot";
    {
      PhaseScope scope("boot", after(plan.timeouts.boot));
      backend->boot(ctx);
    }
    if (workload) {
      phase = "start";
      PhaseScope scope("start", after(plan.timeouts.start));
      workload_running = true;
      workload->start(backend->placement(workload_inst->where), ctx);
    }
    phase = "measure";
    int consecutive_errors = 0;
    while (!cancel_requested()) {
      if (options.stop_after && Clock::now() - t_start >= *options.stop_after) break;
      ProbeResult r;
      try {
        PhaseScope scope("measure", after(options.window + plan.timeouts.measure_margin));
        r = probe->run(backend->probe_target(), ctx);
      } catch (const Cancelled&) {
        break;
      } catch (const std::exception& e) {
        log.error(std::string("window failed: ") + e.what());
        if (++consecutive_errors >= 3) throw;
        continue;
      }
      consecutive_errors = 0;
      if (r.per_cpu.empty()) {
        if (r.interrupted) break;
        log.error("the probe returned no per-CPU results");
        if (++consecutive_errors >= 3) throw InfraError("the probe returned no per-CPU results three times");
        continue;
      }
      for (const auto& [cpu, h] : r.per_cpu) cumulative[cpu].merge(h);
      ++windows;
      auto [w, all] = publish(r.per_cpu);
      out << "window " << windows << ": " << w.samples() << " samples, max " << format_latency(w.max())
          << "; since start: " << all.samples() << " samples, max " << format_latency(all.max()) << "\n"
          << std::flush;
      if (r.interrupted) break;
    }
  } catch (const Cancelled&) {
  } catch (const std::exception& e) {
    err << "vmlat monitor: " << phase << ": " << e.what() << "\n";
    code = exit_code::infra;
  }
  if (workload && workload_running) {
    try {
      PhaseScope scope("stop", after(plan.timeouts.stop), false);
      workload->stop(ctx);
    } catch (const std::exception& e) {
      if (code == exit_code::pass && !cancel_requested()) {
        err << "vmlat monitor: the workload: " << e.what() << "\n";
        code = exit_code::infra;
      }
    }
  }
  if (backend && booted) {
    PhaseScope scope("teardown", after(plan.timeouts.stop), false);
    backend->teardown(ctx);
  }
  kill_all_children();
  exposer.reset();
  cleanup_scratch();
  out << "vmlat monitor: stopped after " << windows << " window" << (windows == 1 ? "" : "s") << "\n";
  return code;
}

}  // namespace vmlat::exporter
