// Provisioning many hosts (run/provision.hpp): one ansible-playbook for a
// wave of hosts, waves bounded and free of two hosts of one machine, the
// second inventory that limits and connects it, and Ansible's per-host
// report read back host by host. The real playbook against real hosts is
// tests/hosts/multihost_it.py.
#include <gtest/gtest.h>

#include <algorithm>

#include "run/provision.hpp"
#include "vmlat/errors.hpp"

using namespace vmlat;

namespace {

std::vector<std::string> names(std::size_t n, const std::string& stem = "h") {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(stem + std::to_string(i));
  return out;
}

ProvisionSetup setup(std::size_t max_parallel) {
  ProvisionSetup s;
  s.inventory = "/run dir/inventory.json";
  s.ansible_dir = "/src/ansible";
  s.bundle = "/tmp/my bundle=1.tar.gz";
  s.max_parallel = max_parallel;
  return s;
}

// The value after `flag` in argv ("" when absent); how often `flag` occurs.
std::string after(const std::vector<std::string>& argv, const std::string& flag) {
  auto it = std::find(argv.begin(), argv.end(), flag);
  return it == argv.end() || it + 1 == argv.end() ? "" : *(it + 1);
}
long occurrences(const std::vector<std::string>& argv, const std::string& word) {
  return std::count(argv.begin(), argv.end(), word);
}

}  // namespace

TEST(Provision, SixteenHostsAreOneWaveAndOneCommand) {
  const auto hosts = names(16);
  const auto waves = provisioning_waves(hosts, {}, 16);
  ASSERT_EQ(waves.size(), 1u);
  EXPECT_EQ(waves[0], hosts);  // in the run's order

  const auto argv = provisioning_argv(setup(16), "/w/wave-1.json", "vmlat_provision_0123", waves[0].size());
  EXPECT_EQ(argv.front(), "ansible-playbook");
  EXPECT_EQ(occurrences(argv, "ansible-playbook"), 1);
  EXPECT_EQ(after(argv, "--forks"), "16");
  EXPECT_EQ(after(argv, "--limit"), "vmlat_provision_0123");
  // Both inventories: the run's, then the wave's overlay.
  EXPECT_EQ(occurrences(argv, "-i"), 2);
  EXPECT_EQ(after(argv, "-i"), "/run dir/inventory.json");
  EXPECT_NE(std::find(argv.begin(), argv.end(), "/w/wave-1.json"), argv.end());
  EXPECT_NE(std::find(argv.begin(), argv.end(), "/src/ansible/provision.yml"), argv.end());
  // No host name on the command line: the group limits the play.
  for (const auto& h : hosts) EXPECT_EQ(std::find(argv.begin(), argv.end(), h), argv.end()) << h;
}

TEST(Provision, ForksFollowTheHostsUpToTheLimit) {
  EXPECT_EQ(after(provisioning_argv(setup(16), "/o.json", "g", 2), "--forks"), "2");
  EXPECT_EQ(after(provisioning_argv(setup(16), "/o.json", "g", 40), "--forks"), "16");
  EXPECT_EQ(after(provisioning_argv(setup(4), "/o.json", "g", 9), "--forks"), "4");
  EXPECT_EQ(after(provisioning_argv(setup(4), "/o.json", "g", 0), "--forks"), "1");
}

TEST(Provision, TheBundleIsOneJsonValueWhateverItsPath) {
  const auto argv = provisioning_argv(setup(16), "/o.json", "g", 2);
  const auto extra = json::parse(after(argv, "-e"));
  EXPECT_EQ(extra, (json{{"vmlat_common_bundle", "/tmp/my bundle=1.tar.gz"}}));
}

TEST(Provision, WavesAreBoundedAndKeepOrder) {
  const auto hosts = names(37);
  const auto waves = provisioning_waves(hosts, {}, 16);
  ASSERT_EQ(waves.size(), 3u);
  EXPECT_EQ(waves[0].size(), 16u);
  EXPECT_EQ(waves[1].size(), 16u);
  EXPECT_EQ(waves[2].size(), 5u);
  std::vector<std::string> all;
  for (const auto& w : waves) all.insert(all.end(), w.begin(), w.end());
  EXPECT_EQ(all, hosts);
  EXPECT_EQ(provisioning_waves(names(3), {}, 1).size(), 3u);
  EXPECT_TRUE(provisioning_waves({}, {}, 16).empty());
}

TEST(Provision, HostsOfOneMachineAreNeverInOneWave) {
  // a and b are one machine (two sshd on one box); so are c, d and e.
  std::vector<MachineGroup> machines{{{"a", "b"}, "box1", "one running kernel"}, {{"c", "d", "e"}, "box2", "one machine-id"}};
  const auto waves = provisioning_waves({"a", "b", "c", "x", "d", "e", "y"}, machines, 16);
  ASSERT_EQ(waves.size(), 3u);
  EXPECT_EQ(waves[0], (std::vector<std::string>{"a", "c", "x", "y"}));
  EXPECT_EQ(waves[1], (std::vector<std::string>{"b", "d"}));
  EXPECT_EQ(waves[2], (std::vector<std::string>{"e"}));
}

TEST(Provision, TheOverlayNamesTheWaveAndEachMaster) {
  // Host names that are also Ansible patterns or groups select only themselves.
  const auto overlay = provisioning_overlay({{"all", "/s/all"}, {"kvm", ""}, {"web.1", "/s/\"quoted\"\npath"}}, "vmlat_provision_ab");
  const auto& group = overlay["all"]["children"]["vmlat_provision_ab"]["hosts"];
  ASSERT_EQ(group.size(), 3u);
  EXPECT_EQ(group["all"]["ansible_control_path"], "/s/all");
  EXPECT_FALSE(group["kvm"].contains("ansible_control_path"));  // no master: Ansible connects itself
  EXPECT_EQ(group["web.1"]["ansible_control_path"], "/s/\"quoted\"\npath");
  EXPECT_EQ(json::parse(overlay.dump()), overlay);  // data, whatever it holds
}

TEST(Provision, TheReportIsReadHostByHost) {
  // As ansible/callback_plugins/vmlat_hosts.py writes it (one host failed a
  // looped assert, one could not be reached, one is fine).
  const std::string report = R"({"format": 1, "hosts": {
    "alpha": {"changed": 1, "failures": 0, "ignored": 0, "ok": 3, "rescued": 0, "skipped": 1, "unreachable": 0,
              "tasks": [{"msg": "", "status": "changed", "task": "Copy and unpack the bundle"},
                        {"msg": "REBOOT NEEDED: alpha: kvm_host: isolcpus", "status": "ok", "task": "Say so"}]},
    "beta":  {"changed": 0, "failures": 1, "ignored": 0, "ok": 1, "rescued": 0, "skipped": 0, "unreachable": 0,
              "tasks": [{"msg": "", "status": "ok", "task": "Check that a bundle was given"},
                        {"msg": "vmlat_common_keep_releases must be\na non-negative integer", "status": "failed", "task": "Check the numbers"}]},
    "gamma": {"changed": 0, "failures": 0, "ignored": 0, "ok": 0, "rescued": 0, "skipped": 0, "unreachable": 1,
              "tasks": [{"msg": "Failed to connect to the host via ssh: Connection refused", "status": "unreachable", "task": "Hash the bundle"}]}}})";
  const auto hosts = read_provisioning_report(report);
  ASSERT_EQ(hosts.size(), 3u);
  EXPECT_TRUE(hosts.at("alpha").ok());
  EXPECT_FALSE(hosts.at("beta").ok());
  EXPECT_FALSE(hosts.at("gamma").ok());
  EXPECT_EQ(hosts.at("beta").reason(), "task 'Check the numbers' failed: vmlat_common_keep_releases must be a non-negative integer");
  EXPECT_EQ(hosts.at("gamma").reason(), "unreachable: Failed to connect to the host via ssh: Connection refused");
  const auto log = hosts.at("alpha").log("alpha");
  EXPECT_NE(log.find("REBOOT NEEDED: alpha"), std::string::npos);
  EXPECT_NE(log.find("alpha : ok=3 changed=1 unreachable=0 failed=0 skipped=1 rescued=0 ignored=0\n"), std::string::npos);
  EXPECT_NE(hosts.at("beta").log("beta").find("failed=1"), std::string::npos);
}

TEST(Provision, AReportThatIsNotOneIsRefused) {
  EXPECT_THROW(read_provisioning_report("PLAY RECAP"), InfraError);
  EXPECT_THROW(read_provisioning_report(R"({"format": 2, "hosts": {}})"), InfraError);
  EXPECT_THROW(read_provisioning_report(R"({"format": 1, "hosts": {"a": 3}})"), InfraError);
  EXPECT_TRUE(read_provisioning_report(R"({"format": 1, "hosts": {}})").empty());
}
