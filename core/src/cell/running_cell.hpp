// The one owner of a cell's life (the counterpart of Telegraf's
// models.RunningInput): the only code that calls a backend's, a workload's
// or a probe's phases. `vmlat run`, `vmlat run-cell`, retests and every
// segment of `vmlat monitor` measure through it.
//
//   create plugins -> prepare -> boot -> start (workload) -> measure (the
//   caller's) -> stop (workload) -> teardown
//
// Each phase runs under its deadline (PhaseScope); teardown is owed from
// prepare on, and stop once the workload was asked to start, whatever
// happened before: any exception of any type is caught here, once, and
// becomes the cell's status.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "cell/plugins.hpp"
#include "cell/status.hpp"
#include "cell_support.hpp"
#include "plan.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

class PluginRegistry;

class RunningCell {
 public:
  // The caller's measurement, called once the cell is up. It may throw
  // anything (the cell is then an infrastructure error) or Cancelled.
  using Measure = std::function<void(RunningCell& cell)>;

  // How the life ended. `measured`: every phase completed; `interrupted`:
  // vmlat's own SIGINT/SIGTERM during it; `infra_error`: anything else,
  // with the phase it happened in.
  struct Ended {
    CellStatus status = CellStatus::infra_error;
    std::string error;
    std::string phase;
    json timings = json::object();  // "<phase>_s" -> seconds, and "wall_s"
    json facts = json::object();    // "backend", "workload", "probe": each plugin's facts()
  };

  // `on_phase` is told each phase as it begins (progress, remote events).
  RunningCell(const Plan& plan, PluginRegistry& registry, const Cell& cell, CellContextImpl& ctx,
              std::function<void(const std::string& phase)> on_phase = {});
  RunningCell(const RunningCell&) = delete;
  RunningCell& operator=(const RunningCell&) = delete;

  // Brings the cell up, calls `measure` within the measure phase's deadline
  // (`measure_timeout`), brings it down. Call once.
  Ended run(std::chrono::nanoseconds measure_timeout, const Measure& measure);

  // For the measurement: the probe, where it runs, the cell's context.
  Probe& probe() { return *plugins_.probe; }
  Executor& target();
  CellContextImpl& context() { return ctx_; }
  // The backend's facts now (a segment records them when it starts).
  json backend_facts() const;
  // Marks a sub-phase for messages and timeouts inside the measurement
  // ("stream" while a stream starts): the name an error is reported with.
  void phase(const std::string& name) { phase_ = name; }

 private:
  void timed(const std::string& name, std::chrono::nanoseconds timeout, bool interruptible, const std::function<void()>& fn,
             Ended& ended);
  std::string plugin_of(const std::string& phase) const;

  const Plan& plan_;
  PluginRegistry& registry_;
  const Cell& cell_;
  CellContextImpl& ctx_;
  std::function<void(const std::string&)> on_phase_;
  CellPlugins plugins_;
  std::string phase_ = "configure";
};

}  // namespace vmlat
