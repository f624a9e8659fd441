// `vmlat run` end to end with the cyclic probe's spike list, named series and
// the timerlat engine: on this machine, and in kvm guests (TCG) with
// Debian's nrt and rt kernels. Latency values are never asserted to be low.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "cli_fixture.hpp"
#include "vmlat/json.hpp"
#include "vmlat/process.hpp"

namespace {

using namespace vmlat;
namespace fs = std::filesystem;
using vmlat::testing::read_file;

class ProbeE2E : public vmlat::testing::CliTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (SCHED_FIFO, mlockall, QEMU)";
    CliTest::SetUp();
    become_subreaper();
  }
  json result_of(const fs::path& run_dir, const json& cell) {
    return json::parse(read_file(run_dir / cell["dir"].get<std::string>() / "result.json"));
  }
};

// 2 s cells of `probe` in kvm guests (2 vCPUs, TCG here) of the given kernels.
std::string kvm_plan(const std::string& probe, const std::string& guest_kernels) {
  return R"([plan]
name = "kvm-)" + probe + R"("
duration = "2s"
period = "1ms"
cpus = "all"
[timeouts]
prepare = "15m"
boot = "180s"
[matrix]
backend = ["kvm"]
probe = [")" + probe + R"("]
guest_kernel = [)" + guest_kernels + R"(]
[backend.kvm]
memory_mb = 512
vcpus = 2
)";
}

// result.json "spikes": per CPU at most N, worst first, the worst exactly the
// CPU's maximum; over all CPUs the first is the merged maximum.
void expect_spikes(const json& result, std::size_t n) {
  const json& spikes = result["spikes"];
  ASSERT_TRUE(spikes.is_array()) << result.dump();
  ASSERT_FALSE(spikes.empty());
  EXPECT_EQ(spikes[0]["latency_ns"], result["merged"]["stats"]["max_ns"]);
  std::map<std::string, std::size_t> count;
  for (std::size_t i = 0; i < spikes.size(); ++i) {
    const json& s = spikes[i];
    const std::string cpu = std::to_string(s["cpu"].get<int>());
    if (count[cpu]++ == 0) {
      EXPECT_EQ(s["latency_ns"], result["per_cpu"][cpu]["stats"]["max_ns"]) << s.dump();
    }
    if (i > 0) {
      EXPECT_GE(spikes[i - 1]["latency_ns"].get<long long>(), s["latency_ns"].get<long long>());
    }
    EXPECT_TRUE(s["monotonic_ns"].is_number_integer()) << s.dump();
    EXPECT_TRUE(s["realtime_ns"].is_number_integer()) << s.dump();
  }
  for (const auto& [cpu, k] : count) EXPECT_LE(k, n) << "CPU " << cpu;
}

TEST_F(ProbeE2E, SpikeListsInResultJsonAreSortedAndEndAtTheMaximum) {
  auto plan = write_plan("plan.toml", R"([plan]
name = "spikes"
duration = "1s"
cpus = "all"
[matrix]
probe = ["cyclictest", "native"]
[backend.host]
[probe.cyclictest]
plugin = "cyclic"
spikes = 4
spike_threshold = "1us"
[probe.native]
plugin = "cyclic"
engine = "native"
spikes = 4
[[gate]]
bound = "10s"
)");
  auto r = vmlat({"run", plan.string(), "--results", (dir_ / "results").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto run_dir = only_run_dir();
  auto run = json::parse(read_file(run_dir / "run.json"));
  for (const auto& c : run["cells"]) {
    SCOPED_TRACE(c["id"].get<std::string>());
    auto result = result_of(run_dir, c);
    EXPECT_EQ(result["default_series"], "latency");
    EXPECT_EQ(result["series"], json::object());
    expect_spikes(result, 4);
  }
  EXPECT_EQ(vmlat::testing::count_leftovers(), 0);
}

TEST_F(ProbeE2E, GateOnASeriesTheProbeDoesNotRecordIsAPlanError) {
  auto plan = write_plan("plan.toml", R"([plan]
duration = "1s"
[backend.host]
[probe.cyclictest]
plugin = "cyclic"
[[gate]]
series = "irqq"
bound = "1ms"
)");
  auto r = vmlat({"validate", plan.string()});
  EXPECT_EQ(r.code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("plan.toml:7:10: gate 'irqq:max<=1ms': series 'irqq' is not recorded by probe 'cyclictest'"),
            std::string::npos)
      << r.err;
}

// A timerlat cell in a kvm guest of each Debian kernel: the rt kernel has
// the timerlat tracer (IRQ and thread histograms per vCPU, a gate on the irq
// series); Debian's nrt 6.1 kernel has none, and the cell says so, naming it.
TEST_F(ProbeE2E, TimerlatInKvmGuests) {
  if (find_in_path("qemu-system-x86_64").empty()) GTEST_SKIP() << "qemu-system-x86 not installed";
  auto plan = write_plan("plan.toml", kvm_plan("timerlat", "\"nrt\", \"rt\"") + R"([probe.timerlat]
plugin = "cyclic"
engine = "timerlat"
[[gate]]
name = "irq"
series = "irq"
bound = "10s"
[[gate]]
name = "thread"
bound = "10s"
)");
  auto r = vmlat({"run", plan.string(), "--results", (dir_ / "results").string()});
  EXPECT_EQ(r.code, 3) << r.out << r.err;  // the nrt cell cannot be measured
  auto run_dir = only_run_dir();
  auto run = json::parse(read_file(run_dir / "run.json"));
  ASSERT_EQ(run["cells"].size(), 2u);
  for (const auto& c : run["cells"]) {
    auto result = result_of(run_dir, c);
    const std::string flavour = result["cell"]["axes"]["guest_kernel"];
    const std::string release = result["facts"]["backend"]["guest"]["system"]["kernel_release"];
    SCOPED_TRACE(flavour + " " + release);
    if (flavour == "nrt") {
      EXPECT_EQ(result["status"], "infra-error");
      const std::string error = result["error"];
      EXPECT_NE(error.find("has no timerlat tracer"), std::string::npos) << error;
      EXPECT_NE(error.find(release), std::string::npos) << error;
      for (const auto& g : result["gates"]) EXPECT_EQ(g["verdict"], "error");
      continue;
    }
    ASSERT_EQ(result["status"], "measured") << result["error"];
    EXPECT_EQ(result["default_series"], "thread");
    for (const std::string cpu : {"0", "1"}) {
      const json& thread = result["per_cpu"][cpu]["stats"];
      const json& irq = result["series"]["irq"]["per_cpu"][cpu]["stats"];
      EXPECT_GT(thread["samples"].get<long>(), 100) << result["per_cpu"].dump();
      EXPECT_GT(irq["samples"].get<long>(), 100);
      // The thread wakes up after its timer IRQ ran.
      EXPECT_GE(thread["min_ns"].get<long long>(), irq["min_ns"].get<long long>());
    }
    std::map<std::string, std::string> verdicts;
    for (const auto& g : result["gates"]) verdicts[g["gate"]] = g["verdict"];
    EXPECT_EQ(verdicts, (std::map<std::string, std::string>{{"irq", "pass"}, {"thread", "pass"}}));
    EXPECT_EQ(result["gates"][0]["series"], "irq");
    EXPECT_EQ(result["gates"][0]["value_ns"], result["series"]["irq"]["merged"]["stats"]["max_ns"]);
    EXPECT_TRUE(fs::exists(run_dir / c["dir"].get<std::string>() / "rtla.out"));
  }
  // Metrics carry series="irq" for the irq series only.
  auto m = vmlat({"metrics", run_dir.string()});
  ASSERT_EQ(m.code, 0) << m.err;
  EXPECT_NE(m.out.find("series=\"irq\""), std::string::npos);
  EXPECT_EQ(m.out.find("series=\"thread\""), std::string::npos);
  EXPECT_EQ(vmlat::testing::count_leftovers(), 0);
}

// trace_above in a guest (native engine, a bound any TCG guest exceeds): the
// guest's trace stops at the spike with the marker, and the host's trace of
// the vCPU threads is cut to the same moment (guest clock mapped to the host's).
TEST_F(ProbeE2E, SpikeInAGuestIsTracedInTheGuestAndOnTheHost) {
  if (find_in_path("qemu-system-x86_64").empty()) GTEST_SKIP() << "qemu-system-x86 not installed";
  auto plan = write_plan("plan.toml", kvm_plan("native", "\"rt\"") + R"([probe.native]
plugin = "cyclic"
engine = "native"
trace_above = "10us"
)");
  auto r = vmlat({"run", plan.string(), "--results", (dir_ / "results").string()});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto run_dir = only_run_dir();
  auto run = json::parse(read_file(run_dir / "run.json"));
  const auto cell_dir = run_dir / run["cells"][0]["dir"].get<std::string>();
  auto result = json::parse(read_file(cell_dir / "result.json"));
  EXPECT_EQ(result["traces"], (json{"trace.txt", "host-trace.txt"}));
  const json& trace = result["facts"]["probe"]["trace"];
  ASSERT_TRUE(trace["fired"].is_object()) << trace.dump();
  const std::string marker = "vmlat-probe spike: cpu=" + std::to_string(trace["fired"]["cpu"].get<int>()) +
                             " latency_ns=" + std::to_string(trace["fired"]["latency_ns"].get<long long>());
  EXPECT_NE(read_file(cell_dir / "trace.txt").find(marker), std::string::npos);
  const json& host = trace["host"];
  EXPECT_EQ(host["threads"].size(), 2u) << host.dump();  // the two vCPU threads
  const std::string host_trace = read_file(cell_dir / "host-trace.txt");
  EXPECT_EQ(host_trace.rfind("# vmlat: host-side events of the vCPU threads around the guest's spike", 0), 0u);
  EXPECT_GT(host["clock_uncertainty_ns"].get<long long>(), 0);
  // TCG's vCPU threads are always busy: the window around the spike holds
  // their events, however much was traced after it.
  EXPECT_GT(host["events_in_window"].get<long long>(), 0) << host.dump();
  EXPECT_GE(host["events_in_buffer"].get<long long>(), host["events_in_window"].get<long long>());
  EXPECT_EQ(host["spike_host_monotonic_ns"].get<long long>(),
            trace["fired"]["monotonic_ns"].get<long long>() + host["clock_offset_ns"].get<long long>());
  // The host instance is gone again.
  EXPECT_FALSE(fs::exists("/sys/kernel/tracing/instances/vmlat-host"));
  EXPECT_EQ(vmlat::testing::count_leftovers(), 0);
}

}  // namespace
