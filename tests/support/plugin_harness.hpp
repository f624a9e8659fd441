// Test harness for running plugins the way the runner does: plugins are
// loaded from the build tree with the core's registry, configured from a plan
// written to a temporary file, and given a CellContext that keeps artifacts
// in memory. Uses core internals (core/src), so tests only.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <vmlat/context.hpp>
#include <vmlat/local.hpp>
#include <vmlat/log.hpp>
#include <vmlat/plugin.hpp>

#include "loader.hpp"
#include "plan.hpp"

namespace vmlat::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vmlat-plugin-test.XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class MemoryLogger final : public Logger {
 public:
  void info(std::string_view m) override { lines.push_back("info: " + std::string(m)); }
  void warn(std::string_view m) override { lines.push_back("warn: " + std::string(m)); }
  void error(std::string_view m) override { lines.push_back("error: " + std::string(m)); }
  std::vector<std::string> lines;
};

class FakeCellContext final : public CellContext {
 public:
  FakeCellContext(CellSpec spec, const std::filesystem::path& dir)
      : spec_(std::move(spec)), cell_dir_(dir / "cell"), work_dir_(dir / "work") {
    std::filesystem::create_directories(cell_dir_);
    std::filesystem::create_directories(work_dir_);
    host_ = make_local_executor(work_dir_ / "host-executor", "host");
  }
  const CellSpec& cell() const override { return spec_; }
  const std::filesystem::path& cell_dir() const override { return cell_dir_; }
  const std::filesystem::path& work_dir() const override { return work_dir_; }
  void save_artifact(std::string_view name, std::string_view content) override {
    artifacts[std::string(name)] = std::string(content);
  }
  Logger& log() override { return logger; }
  Executor& host() override { return *host_; }

  std::map<std::string, std::string> artifacts;
  MemoryLogger logger;

 private:
  CellSpec spec_;
  std::filesystem::path cell_dir_, work_dir_;
  std::unique_ptr<Executor> host_;
};

// The plugins built in this tree.
inline PluginRegistry& registry() {
  static PluginRegistry r({std::filesystem::path(VMLAT_BINARY_DIR) / "plugins"});
  return r;
}

// Writes `plan_text` to a file and loads it: with the registry, so every
// instance's configure() runs and reports into the returned diagnostics.
struct LoadedPlan {
  Diagnostics diags;
  Plan plan;
};
inline std::unique_ptr<LoadedPlan> load_plan_text(const TempDir& dir, const std::string& plan_text) {
  auto path = dir.path() / "plan.toml";
  {
    std::ofstream out(path);
    out << plan_text;
  }
  auto loaded = std::make_unique<LoadedPlan>();
  loaded->plan = load_plan(path, loaded->diags, &registry());
  return loaded;
}

// A plugin instance of the loaded plan, configured from its table.
template <class Kind>
std::unique_ptr<Plugin> configured(const Plan& plan, const std::string& kind, const std::string& name) {
  const auto& instances = kind == "backend" ? plan.backends : kind == "workload" ? plan.workloads : plan.probes;
  const Instance& instance = instances.at(name);
  auto plugin = registry().create(instance.plugin);
  Diagnostics diags;
  auto settings = instance_settings(instance, diags);
  plugin->configure(settings);
  settings.finish();
  EXPECT_TRUE(diags.empty()) << diags.str();
  EXPECT_NE(dynamic_cast<Kind*>(plugin.get()), nullptr);
  return plugin;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Whether `sequence` appears, contiguous, in the argv recorded in facts.
inline bool argv_has(const json& argv, const std::vector<std::string>& sequence) {
  for (std::size_t i = 0; i + sequence.size() <= argv.size(); ++i) {
    bool all = true;
    for (std::size_t j = 0; j < sequence.size() && all; ++j) all = argv[i + j] == sequence[j];
    if (all) return true;
  }
  return false;
}

}  // namespace vmlat::testing
