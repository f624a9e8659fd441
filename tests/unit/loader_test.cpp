#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "loader.hpp"
#include "vmlat/plugin.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("vmlat-loader-" + name + "-" + std::to_string(getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
fs::path built_plugin(const std::string& name) { return fs::path(VMLAT_BINARY_DIR) / "plugins" / ("vmlat-plugin-" + name + ".so"); }
}  // namespace

TEST(Loader, RefusesAPluginBuiltForAnotherAbi) {
  PluginRegistry registry({fs::path(VMLAT_BINARY_DIR) / "test-plugins"});
  EXPECT_EQ(registry.find("abi-mismatch"), nullptr);
  const PluginInfo* refused = nullptr;
  for (const auto& p : registry.all())
    if (p.file.filename() == "vmlat-plugin-abi-mismatch.so") refused = &p;
  ASSERT_NE(refused, nullptr);
  const auto& info = *refused;
  EXPECT_EQ(info.abi, 999);
  EXPECT_NE(info.refused.find("ABI 999"), std::string::npos) << info.refused;
  EXPECT_NE(info.refused.find("ABI " + std::to_string(abi_version)), std::string::npos) << info.refused;
  auto why = registry.why_missing("abi-mismatch");
  EXPECT_NE(why.find("vmlat-plugin-abi-mismatch.so"), std::string::npos) << why;
  EXPECT_THROW(registry.create("abi-mismatch"), PlanError);
}

TEST(Loader, LoadsAndDescribesTheBuiltPlugins) {
  PluginRegistry registry({fs::path(VMLAT_BINARY_DIR) / "plugins"});
  const PluginInfo* host = registry.find("host");
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(host->kind, "backend");
  EXPECT_EQ(host->abi, abi_version);
  EXPECT_FALSE(host->version.empty());
  auto plugin = registry.create("host");
  EXPECT_NE(dynamic_cast<Backend*>(plugin.get()), nullptr);
}

TEST(Loader, RefusesAWorldWritablePlugin) {
  auto dir = temp_dir("ww");
  auto copy = dir / "vmlat-plugin-host.so";
  fs::copy_file(built_plugin("host"), copy);
  ::chmod(copy.c_str(), 0646);
  PluginRegistry registry({dir});
  EXPECT_EQ(registry.find("host"), nullptr);
  auto why = registry.why_missing("host");
  EXPECT_NE(why.find("world-writable"), std::string::npos) << why;
  EXPECT_NE(why.find(copy.string()), std::string::npos) << why;
  ::chmod(copy.c_str(), 0644);
  PluginRegistry fixed({dir});
  EXPECT_NE(fixed.find("host"), nullptr);
  fs::remove_all(dir);
}

TEST(Loader, RefusesAPluginOwnedBySomeoneElse) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  auto dir = temp_dir("owner");
  auto copy = dir / "vmlat-plugin-host.so";
  fs::copy_file(built_plugin("host"), copy);
  ASSERT_EQ(::chown(copy.c_str(), 65534, 65534), 0);
  PluginRegistry registry({dir});
  EXPECT_EQ(registry.find("host"), nullptr);
  EXPECT_NE(registry.why_missing("host").find("owned by uid 65534"), std::string::npos) << registry.why_missing("host");
  fs::remove_all(dir);
}

TEST(Loader, FirstDirectoryWinsAndMissingPluginsAreExplained) {
  auto dir = temp_dir("order");
  fs::copy_file(built_plugin("host"), dir / "vmlat-plugin-host.so");
  PluginRegistry registry({dir, fs::path(VMLAT_BINARY_DIR) / "plugins"});
  ASSERT_NE(registry.find("host"), nullptr);
  EXPECT_EQ(registry.find("host")->file.parent_path(), dir);
  auto why = registry.why_missing("hots");
  EXPECT_NE(why.find("did you mean 'host'"), std::string::npos) << why;
  fs::remove_all(dir);
}

TEST(Loader, TheDocumentedSkeletonLoadsAndValidatesItsSettings) {
  PluginRegistry registry({fs::path(VMLAT_BINARY_DIR) / "example-plugins"});
  const PluginInfo* info = registry.find("skeleton");
  ASSERT_NE(info, nullptr) << registry.why_missing("skeleton");
  EXPECT_EQ(info->kind, "workload");
  EXPECT_NE(dynamic_cast<Workload*>(registry.create("skeleton").get()), nullptr);
}
