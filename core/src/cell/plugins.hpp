// The one place a plugin object is made (plan validation, the running cell):
// found in the registry, checked to be of its instance's kind, configured
// from the instance's table.
#pragma once

#include <memory>

#include "plan.hpp"
#include "vmlat/plugin.hpp"

namespace vmlat {

class PluginRegistry;

// The plugin of `instance`, configured; nullptr after putting what is wrong
// into `diags` (file:line:col of the instance): not found, another kind,
// configure() refused a setting or threw (whatever it threw).
std::unique_ptr<Plugin> create_plugin(const Instance& instance, PluginRegistry& registry, Diagnostics& diags);

// The three plugins of a cell, each created by create_plugin: the backend,
// the probe and the workload (none for workload "none").
struct CellPlugins {
  std::unique_ptr<Plugin> backend_plugin, workload_plugin, probe_plugin;
  Backend* backend = nullptr;
  Workload* workload = nullptr;
  Probe* probe = nullptr;
  // Throws PlanError with the diagnostics when one cannot be made.
  static CellPlugins create(const Plan& plan, const Cell& cell, PluginRegistry& registry);
};

}  // namespace vmlat
