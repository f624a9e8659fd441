// Paths of this machine that a plan names for its hosts (identity_file,
// known_hosts) are relative to the working directory (docs/plan-format.md)
// and reach ssh and ansible-playbook, which runs in ansible/: they must be
// absolute by the time they do (issue 16).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "plan.hpp"

using namespace vmlat;
namespace fs = std::filesystem;

TEST(HostPaths, RelativeKeyAndKnownHostsBecomeAbsolute) {
  const fs::path dir = fs::temp_directory_path() / ("vmlat-host-paths-" + std::to_string(getpid()));
  fs::create_directories(dir);
  const fs::path plan_path = dir / "plan.toml";
  std::ofstream(plan_path) << "[hosts.lab1]\naddress = \"10.0.0.7\"\nidentity_file = \"keys/id_ed25519\"\n"
                              "known_hosts = \"~/.ssh/lab_known_hosts\"\n[hosts.lab2]\naddress = \"10.0.0.8\"\n"
                              "identity_file = \"/etc/vmlat/id\"\n[backend.host]\n[probe.cyclictest]\nplugin = \"cyclic\"\n";
  Diagnostics diags;
  const Plan plan = load_plan(plan_path, diags, nullptr);
  fs::remove_all(dir);
  ASSERT_TRUE(diags.empty()) << diags.str();
  ASSERT_EQ(plan.hosts.size(), 2u);
  EXPECT_EQ(plan.hosts[0].identity_file, (fs::current_path() / "keys/id_ed25519").string());
  EXPECT_EQ(plan.hosts[0].known_hosts, "~/.ssh/lab_known_hosts");  // ssh and Ansible expand "~"
  EXPECT_EQ(plan.hosts[1].identity_file, "/etc/vmlat/id");
  EXPECT_EQ(path_for_children(""), "");
  EXPECT_EQ(path_for_children("a/../b"), (fs::current_path() / "b").string());
}
