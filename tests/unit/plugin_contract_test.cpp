// The contract every plugin in build/plugins passes: it loads, describes
// itself, accepts its defaults, rejects an unknown key with its
// file:line:col, and is created fresh for each cell. Plugin-specific bad
// values are tested next to each plugin and in tests/plans/.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "loader.hpp"
#include "plan.hpp"
#include "vmlat/plugin.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {

PluginRegistry& registry() {
  static PluginRegistry r({fs::path(VMLAT_BINARY_DIR) / "plugins"});
  return r;
}

std::vector<std::string> plugin_names() {
  std::vector<std::string> names;
  for (const auto& info : registry().all()) names.push_back(info.name);
  return names;
}

// Writes a plan declaring one instance of `plugin` with `body` as its table
// and returns the instance's diagnostics after configure() + finish().
std::string configure_with(const PluginInfo& info, const std::string& body, int* body_line) {
  auto path = fs::temp_directory_path() / ("vmlat-contract-" + std::to_string(getpid()) + ".toml");
  std::string text = "[" + info.kind + ".under-test]\nplugin = \"" + info.name + "\"\n";
  *body_line = 3;
  std::ofstream(path) << text << body;
  Diagnostics load_diags;
  Plan plan = load_plan(path, load_diags, nullptr);  // syntax only; the plugin is configured below
  const auto& instances = info.kind == "backend" ? plan.backends : info.kind == "workload" ? plan.workloads : plan.probes;
  if (!instances.count("under-test")) return "instance not parsed: " + load_diags.str();
  Diagnostics diags;
  auto plugin = registry().create(info.name);
  auto settings = instance_settings(instances.at("under-test"), diags);
  plugin->configure(settings);
  settings.finish();
  fs::remove(path);
  std::string s = diags.str();
  auto pos = s.find(path.string());
  while (pos != std::string::npos) {
    s.replace(pos, path.string().size(), "plan.toml");
    pos = s.find(path.string());
  }
  return s;
}

class PluginContract : public ::testing::TestWithParam<std::string> {
 protected:
  const PluginInfo& info() {
    const PluginInfo* i = registry().find(GetParam());
    if (!i) throw std::runtime_error(registry().why_missing(GetParam()));
    return *i;
  }
};

TEST_P(PluginContract, DescribesItself) {
  const auto& i = info();
  EXPECT_EQ(i.abi, abi_version);
  EXPECT_FALSE(i.version.empty());
  EXPECT_FALSE(i.summary.empty());
  EXPECT_TRUE(i.kind == "backend" || i.kind == "workload" || i.kind == "probe") << i.kind;
  EXPECT_EQ(i.file.filename(), "vmlat-plugin-" + i.name + ".so");
  auto plugin = registry().create(i.name);
  if (i.kind == "backend") {
    EXPECT_NE(dynamic_cast<Backend*>(plugin.get()), nullptr);
  } else if (i.kind == "workload") {
    EXPECT_NE(dynamic_cast<Workload*>(plugin.get()), nullptr);
  } else {
    EXPECT_NE(dynamic_cast<Probe*>(plugin.get()), nullptr);
  }
  // A fresh object per cell: two creations are two objects.
  EXPECT_NE(registry().create(i.name).get(), plugin.get());
}

TEST_P(PluginContract, AcceptsItsDefaults) {
  int line = 0;
  EXPECT_EQ(configure_with(info(), "", &line), "");
}

TEST_P(PluginContract, RejectsAnUnknownKeyWithItsLocation) {
  int line = 0;
  auto diags = configure_with(info(), "no_such_setting_xyz = 1\n", &line);
  EXPECT_NE(diags.find("plan.toml:" + std::to_string(line) + ":1: unknown key 'no_such_setting_xyz' in [" + info().kind +
                       ".under-test]"),
            std::string::npos)
      << diags;
}

INSTANTIATE_TEST_SUITE_P(Plugins, PluginContract, ::testing::ValuesIn(plugin_names()),
                         [](const auto& p) {
                           std::string n = p.param;
                           for (auto& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(PluginContractSetup, FindsThePluginsShippedInTree) {
  for (const char* name : {"host", "cyclic", "stress"}) EXPECT_NE(registry().find(name), nullptr) << name;
}

}  // namespace
