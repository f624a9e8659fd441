// `vmlat run --only` (core/src/run/selection.cpp): values of one axis are
// alternatives, different axes must all hold; an axis a cell does not have
// (scoped away) never matches.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "run/selection.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> selected(const std::vector<std::pair<std::string, std::string>>& only) {
  const fs::path file = fs::temp_directory_path() / ("vmlat-selection-" + std::to_string(::getpid()) + ".toml");
  std::ofstream(file) << R"([plan]
name = "p"
[matrix]
backend = ["host", "a", "b"]
workload = ["none"]
probe = ["p"]
guest_kernel = ["nrt", "rt"]
[backend.host]
[backend.a]
plugin = "kvm"
[backend.b]
plugin = "kvm"
[probe.p]
plugin = "cyclic"
)";
  Diagnostics diags;
  const Plan plan = load_plan(file, diags, nullptr);
  fs::remove(file);
  EXPECT_TRUE(diags.empty()) << diags.str();
  RunOptions options;
  options.only = only;
  std::ostringstream err;
  Selection s;
  std::vector<std::string> ids;
  if (select_cells(plan, options, err, s) != 0) return {"error: " + err.str()};
  for (const auto& c : s.cells) ids.push_back(c.spec.id);
  return ids;
}

TEST(Selection, OnlyValuesOfOneAxisAreAlternatives) {
  EXPECT_EQ(selected({{"backend", "a"}}).size(), 2u);
  EXPECT_EQ(selected({{"backend", "a"}, {"backend", "b"}}).size(), 4u);
  EXPECT_EQ(selected({{"backend", "a"}, {"backend", "b"}, {"guest_kernel", "rt"}}).size(), 2u);
  // The host cell has no guest_kernel (scoped to guest backends): never matched by it.
  for (const auto& id : selected({{"guest_kernel", "nrt"}})) EXPECT_EQ(id.find("host"), std::string::npos) << id;
  EXPECT_EQ(selected({{"backend", "host"}}).size(), 1u);
  const auto none = selected({{"backend", "c"}});
  ASSERT_EQ(none.size(), 1u);
  EXPECT_NE(none[0].find("no cell matches --only"), std::string::npos) << none[0];
}

}  // namespace
