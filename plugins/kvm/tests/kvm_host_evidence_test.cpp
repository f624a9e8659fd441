// The host's side of a guest spike, end to end: a kvm cell (TCG here) whose
// one vCPU thread is pinned to host CPU 1, a SCHED_FIFO 99 busy loop of
// kBurst on that CPU started by the test while the guest measures, then
// `vmlat report --format json`: the worst wake-up must carry the run-queue
// wait of that vCPU over the same interval, at least half the burst, and
// name the burst task. Never asserts that latency is low.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <vmlat/json.hpp>
#include <vmlat/process.hpp>

#include "cli_fixture.hpp"
#include "fifo_burst.hpp"

using namespace vmlat;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

using vmlat::testing::FifoBurst;
using vmlat::testing::read_file;

constexpr std::int64_t kBurstNs = 400'000'000;
constexpr int kBurstCpu = 1;

class KvmHostEvidence : public vmlat::testing::CliTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (SCHED_FIFO on the host, QEMU's threads pinned)";
    if (find_in_path("qemu-system-x86_64").empty()) GTEST_SKIP() << "qemu-system-x86 not installed";
    if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 host CPUs (the burst takes one)";
    CliTest::SetUp();
  }
};

TEST_F(KvmHostEvidence, AFifoBurstOnTheVcpusCpuShowsAsItsRunQueueWaitBesideTheSpike) {
  std::ofstream(dir_ / "plan.toml") << R"([plan]
name = "kvm-host-evidence"
duration = "6s"
period = "1ms"
cpus = [0]

[timeouts]
boot = "120s"

[backend.kvm]
image = "nrt"
vcpus = 1
memory_mb = 256
vcpu_pin = [1]
emulator_pin = [0]
host_evidence = "5ms"

[probe.native]
plugin = "cyclic"
engine = "native"
priority = 95
)";
  Process p = start_vmlat({"run", (dir_ / "plan.toml").string(), "--results", (dir_ / "results").string()});
  ASSERT_TRUE(wait_for_cell_log("running vmlat-probe on guest", p)) << read_file(dir_ / "bg-stderr");
  std::this_thread::sleep_for(2s);  // well inside the 6 s measurement
  FifoBurst burst(kBurstCpu, kBurstNs);
  ASSERT_EQ(burst.wait(), 0) << "the burst could not run (affinity: 3, SCHED_FIFO: 4)";
  auto r = finish(p);
  ASSERT_EQ(r.code, 0) << r.out << r.err;

  auto run_dir = only_run_dir();
  auto run = json::parse(read_file(run_dir / "run.json"));
  ASSERT_EQ(run["cells"].size(), 1u);
  const auto cell_dir = run_dir / run["cells"][0]["dir"].get<std::string>();
  auto result = json::parse(read_file(cell_dir / "result.json"));
  ASSERT_EQ(result["status"], "measured") << result.dump(1);
  const json& facts = result["facts"]["backend"]["host_evidence"];
  ASSERT_TRUE(facts.is_object()) << result["facts"]["backend"].dump(1);
  EXPECT_GT(facts["samples"].get<long>(), 100) << facts.dump(1);
  ASSERT_TRUE(facts["clock"].is_object()) << facts.dump(1);
  EXPECT_EQ(facts["clock"]["exchanges"].size(), 4u) << facts.dump(1);
  EXPECT_NE(facts["vm_exits"].get<std::string>().find(result["facts"]["backend"]["accelerator"] == "tcg" ? "TCG" : "KVM"),
            std::string::npos)
      << facts["vm_exits"];
  EXPECT_TRUE(fs::exists(cell_dir / "host-evidence.jsonl"));

  auto rep = vmlat({"report", run_dir.string(), "--format", "json"});
  ASSERT_EQ(rep.code, 0) << rep.err;
  auto report = json::parse(rep.out);
  ASSERT_EQ(report["cells"].size(), 1u);
  const json& cell = report["cells"][0];
  ASSERT_FALSE(cell["spikes"].empty());
  ASSERT_EQ(cell["host_evidence"].size(), cell["spikes"].size());
  const json& worst = cell["spikes"][0];
  const json& e = cell["host_evidence"][0];
  ASSERT_TRUE(e.is_object()) << "the worst spike is not covered by the host's samples: " << cell["host_evidence"].dump(1);
  // The burst forced the spike: the guest's worst wake-up is most of it late.
  EXPECT_GE(worst["latency_ns"].get<long long>(), kBurstNs / 2) << worst.dump();
  EXPECT_EQ(e["vcpu"], 0);
  EXPECT_EQ(e["host_cpu"], kBurstCpu) << e.dump(1);
  EXPECT_GE(e["run_queue_wait_ns"].get<long long>(), kBurstNs / 2) << e.dump(1);
  // The same interval: the samples joined with the spike overlap the burst.
  EXPECT_LE(e["from_ns"].get<long long>(), burst.end_ns()) << e.dump(1);
  EXPECT_GE(e["to_ns"].get<long long>(), burst.start_ns()) << e.dump(1);
  EXPECT_LE(e["to_ns"].get<long long>() - e["from_ns"].get<long long>(), kBurstNs + 1'000'000'000) << e.dump(1);
  const std::string sentence = e["sentence"];
  std::cout << "the report says: " << sentence << "\n";
  EXPECT_NE(sentence.find("vCPU 0 waited"), std::string::npos) << sentence;
  EXPECT_NE(sentence.find("behind vmlat-burst/"), std::string::npos) << sentence;
  EXPECT_NE(sentence.find("(FIFO 99)"), std::string::npos) << sentence;

  // The HTML report shows the same sentence in the spike table.
  auto html = vmlat({"report", run_dir.string()});
  ASSERT_EQ(html.code, 0) << html.err;
  const std::string page = read_file(run_dir / "report.html");
  EXPECT_NE(page.find("class=\"host-evidence\" data-wait-ns=\"" + std::to_string(e["run_queue_wait_ns"].get<long long>())),
            std::string::npos);
}

}  // namespace
