#include "cell/running_cell.hpp"

#include "vmlat/errors.hpp"
#include "vmlat/interrupt.hpp"
#include "vmlat/units.hpp"

namespace vmlat {

namespace {
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

RunningCell::RunningCell(const Plan& plan, PluginRegistry& registry, const Cell& cell, CellContextImpl& ctx,
                         std::function<void(const std::string&)> on_phase)
    : plan_(plan), registry_(registry), cell_(cell), ctx_(ctx), on_phase_(std::move(on_phase)) {}

Executor& RunningCell::target() { return plugins_.backend->probe_target(); }

json RunningCell::backend_facts() const { return plugins_.backend ? plugins_.backend->facts() : json::object(); }

// The plugin a phase calls into, for messages about what it threw.
std::string RunningCell::plugin_of(const std::string& name) const {
  const Instance& backend = plan_.backends.at(cell_.backend);
  const Instance& probe = plan_.probes.at(cell_.probe);
  const Instance* workload = cell_.workload == "none" ? nullptr : &plan_.workloads.at(cell_.workload);
  if (name == "measure" || name == "stream") return probe.plugin;
  if ((name == "start" || name == "stop") && workload) return workload->plugin;
  if (name == "configure") return backend.plugin + "/" + probe.plugin + (workload ? "/" + workload->plugin : "");
  return backend.plugin;
}

void RunningCell::timed(const std::string& name, std::chrono::nanoseconds timeout, bool interruptible,
                        const std::function<void()>& fn, Ended& ended) {
  phase_ = name;
  if (on_phase_) on_phase_(name);
  ctx_.log().info("phase " + name + " (timeout " + format_duration(timeout) + ")");
  const auto t0 = Clock::now();
  PhaseScope scope(name, t0 + std::chrono::duration_cast<Clock::duration>(timeout), interruptible);
  try {
    fn();
  } catch (...) {
    ended.timings[name + "_s"] = seconds_since(t0);
    throw;
  }
  ended.timings[name + "_s"] = seconds_since(t0);
}

RunningCell::Ended RunningCell::run(std::chrono::nanoseconds measure_timeout, const Measure& measure) {
  Ended ended;
  const auto started = Clock::now();
  const Instance* workload_instance = cell_.workload == "none" ? nullptr : &plan_.workloads.at(cell_.workload);
  bool teardown_owed = false, workload_running = false;
  try {
    phase_ = "configure";
    plugins_ = CellPlugins::create(plan_, cell_, registry_);
    teardown_owed = true;  // from prepare on, also for a prepare that failed halfway
    timed("prepare", plan_.timeouts.prepare, true, [&] { plugins_.backend->prepare(ctx_); }, ended);
    timed("boot", plan_.timeouts.boot, true, [&] {
      plugins_.backend->boot(ctx_);
      ctx_.target_threads_ = plugins_.backend->target_threads();
    }, ended);
    if (plugins_.workload) {
      timed("start", plan_.timeouts.start, true, [&] {
        Executor& where = plugins_.backend->placement(workload_instance->where);
        workload_running = true;
        plugins_.workload->start(where, ctx_);
      }, ended);
    }
    timed("measure", measure_timeout, true, [&] { measure(*this); }, ended);
    if (plugins_.workload) {
      timed("stop", plan_.timeouts.stop, false, [&] {
        workload_running = false;
        plugins_.workload->stop(ctx_);
      }, ended);
    }
    if (cancel_requested()) {
      ended.status = CellStatus::interrupted;
      ended.error = "interrupted by signal " + std::to_string(cancel_signal());
    } else {
      ended.status = CellStatus::measured;
    }
    ended.phase = phase_;
  } catch (const Cancelled&) {
    ended.status = CellStatus::interrupted;
    ended.error = "interrupted during " + phase_;
    ended.phase = phase_;
  } catch (const std::exception& e) {
    ended.status = CellStatus::infra_error;
    ended.error = e.what();
    ended.phase = phase_;
  } catch (...) {
    // Whatever a plugin throws is an infrastructure error of this cell;
    // the cleanup below still runs.
    ended.status = CellStatus::infra_error;
    ended.error = "plugin '" + plugin_of(phase_) + "' threw " + describe_current_exception() + " during " + phase_;
    ended.phase = phase_;
  }
  if (ended.status != CellStatus::measured) ctx_.log().error(ended.phase + ": " + ended.error);

  // Cleanup: uninterruptible, bounded, always.
  if (plugins_.workload && workload_running) {
    try {
      timed("stop", plan_.timeouts.stop, false, [&] { plugins_.workload->stop(ctx_); }, ended);
    } catch (...) {
      ctx_.log().warn("stopping the workload after an error: " + describe_current_exception());
    }
  }
  if (plugins_.backend && teardown_owed) {
    phase_ = "teardown";
    if (on_phase_) on_phase_("teardown");
    const auto t0 = Clock::now();
    PhaseScope scope("teardown", Clock::now() + std::chrono::duration_cast<Clock::duration>(plan_.timeouts.stop), false);
    try {
      plugins_.backend->teardown(ctx_);
    } catch (...) {
      // Something may still be running: the cell cannot count as measured.
      const std::string why = "teardown of backend '" + plan_.backends.at(cell_.backend).plugin +
                              "' failed: " + describe_current_exception();
      ctx_.log().error(why);
      if (ended.status == CellStatus::measured) {
        ended.status = CellStatus::infra_error;
        ended.error = why;
        ended.phase = "teardown";
      }
    }
    ended.timings["teardown_s"] = seconds_since(t0);
  }
  ended.timings["wall_s"] = seconds_since(started);

  for (auto* p : {plugins_.backend_plugin.get(), plugins_.workload_plugin.get(), plugins_.probe_plugin.get()}) {
    if (!p) continue;
    try {
      ended.facts[p == plugins_.backend_plugin.get() ? "backend" : p == plugins_.probe_plugin.get() ? "probe" : "workload"] =
          p->facts();
    } catch (...) {
      ctx_.log().warn("plugin facts: " + describe_current_exception());
    }
  }
  return ended;
}

}  // namespace vmlat
