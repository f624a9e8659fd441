#include "cell/plugins.hpp"

#include "cell_support.hpp"
#include "loader.hpp"
#include "vmlat/errors.hpp"

namespace vmlat {

std::unique_ptr<Plugin> create_plugin(const Instance& instance, PluginRegistry& registry, Diagnostics& diags) {
  const std::string table = "[" + instance.kind + "." + instance.name + "]";
  const PluginInfo* info = registry.find(instance.plugin);
  if (!info) {
    diags.error(instance.plugin_location, table + ": " + registry.why_missing(instance.plugin));
    return nullptr;
  }
  if (info->kind != instance.kind) {
    diags.error(instance.plugin_location, table + ": plugin '" + instance.plugin + "' is a " + info->kind +
                                              " plugin, not a " + instance.kind + " (" + info->file.string() + ")");
    return nullptr;
  }
  std::unique_ptr<Plugin> plugin;
  try {
    plugin = registry.create(instance.plugin);
    auto s = instance_settings(instance, diags);
    plugin->configure(s);
    s.finish();
  } catch (const std::exception& e) {
    diags.error(instance.location, table + ": plugin '" + instance.plugin + "' failed to configure: " + e.what());
    return nullptr;
  } catch (...) {
    // A plugin may throw anything; it is reported like any error.
    diags.error(instance.location, table + ": plugin '" + instance.plugin + "' failed to configure: " +
                                       describe_current_exception());
    return nullptr;
  }
  // The descriptor's kind is the class's: a plugin whose class is not of it
  // is refused here, before anything calls it.
  const bool of_kind = instance.kind == "backend"    ? dynamic_cast<Backend*>(plugin.get()) != nullptr
                       : instance.kind == "workload" ? dynamic_cast<Workload*>(plugin.get()) != nullptr
                                                     : dynamic_cast<Probe*>(plugin.get()) != nullptr;
  if (!of_kind) {
    diags.error(instance.plugin_location, table + ": plugin '" + instance.plugin + "' does not implement the " +
                                              instance.kind + " interface (" + info->file.string() + ")");
    return nullptr;
  }
  return plugin;
}

CellPlugins CellPlugins::create(const Plan& plan, const Cell& cell, PluginRegistry& registry) {
  CellPlugins p;
  Diagnostics diags;
  auto make = [&](const Instance& instance) {
    auto plugin = create_plugin(instance, registry, diags);
    if (!plugin) throw PlanError(diags.str());
    return plugin;
  };
  p.backend_plugin = make(plan.backends.at(cell.backend));
  p.backend = dynamic_cast<Backend*>(p.backend_plugin.get());
  p.probe_plugin = make(plan.probes.at(cell.probe));
  p.probe = dynamic_cast<Probe*>(p.probe_plugin.get());
  if (cell.workload != "none") {
    p.workload_plugin = make(plan.workloads.at(cell.workload));
    p.workload = dynamic_cast<Workload*>(p.workload_plugin.get());
  }
  return p;
}

}  // namespace vmlat
