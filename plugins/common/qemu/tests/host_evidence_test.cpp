// The host-side evidence sampler on a real thread of this process standing
// in for a vCPU thread: a busy thread pinned to CPU 1, a SCHED_FIFO 99 burst
// on that CPU; the samples must show the thread's run-queue wait growing by
// most of the burst and name the burst task as runnable there. Needs root
// (SCHED_FIFO) and 2 CPUs; ~1 s.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <vmlat/local.hpp>

#include "fifo_burst.hpp"
#include "host_evidence.hpp"

using namespace vmlat;
using namespace vmlat::kvm;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr std::int64_t kBurstNs = 300'000'000;

TEST(HostEvidence, AFifoBurstShowsAsRunQueueWaitAndNamesTheBurst) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (SCHED_FIFO)";
  if (::sysconf(_SC_NPROCESSORS_ONLN) < 2) GTEST_SKIP() << "needs 2 CPUs";
  const fs::path dir = fs::temp_directory_path() / ("vmlat-evidence-" + std::to_string(::getpid()));
  fs::create_directories(dir);

  std::atomic<bool> stop{false};
  std::atomic<pid_t> victim{0};
  std::thread spinner([&] {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(1, &set);
    ::sched_setaffinity(0, sizeof set, &set);
    victim = static_cast<pid_t>(::syscall(SYS_gettid));
    while (!stop) {
    }
  });
  while (victim == 0) std::this_thread::sleep_for(1ms);

  std::int64_t burst_start = 0, burst_end = 0;
  json facts;
  {
    // The sampler off the burst's CPU, as the backends place it.
    HostEvidence evidence(::getpid(), {{0, victim}}, dir / kHostEvidenceFile, 5ms, "tcg", sampler_cpus({}, {1}, {0, 1}));
    // Two local executors: the "guest" is this machine too, so the mapping
    // found must be an offset of zero within its uncertainty.
    auto host = make_local_executor(dir / "host", "host");
    auto guest = make_local_executor(dir / "guest", "guest");
    const bool mapped = evidence.exchange(*host, *guest);
    std::this_thread::sleep_for(200ms);
    {
      vmlat::testing::FifoBurst burst(1, kBurstNs);
      ASSERT_EQ(burst.wait(), 0) << "the burst could not run (affinity: 3, SCHED_FIFO: 4)";
      burst_start = burst.start_ns();
      burst_end = burst.end_ns();
    }
    std::this_thread::sleep_for(100ms);
    evidence.stop();
    facts = evidence.facts();
    if (mapped) {
      ASSERT_TRUE(facts["clock"].is_object()) << facts.dump(1);
      EXPECT_LE(std::llabs(facts["clock"]["offset_ns"].get<long long>()), facts["clock"]["uncertainty_ns"].get<long long>() + 1)
          << facts.dump(1);
    } else {
      EXPECT_TRUE(facts["clock"].is_null());
    }
  }
  stop = true;
  spinner.join();

  EXPECT_NE(facts["vm_exits"].get<std::string>().find("TCG"), std::string::npos) << facts["vm_exits"];
  EXPECT_EQ(facts["sampler_cpus"], json::array({0}));
  EXPECT_FALSE(facts.contains("error")) << facts.dump(1);
  std::ifstream in(dir / kHostEvidenceFile);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  json head = json::parse(line);
  EXPECT_EQ(head["clock"], "CLOCK_MONOTONIC");
  ASSERT_EQ(head["vcpus"].size(), 1u);
  EXPECT_EQ(head["vcpus"][0]["tid"], victim.load());
  long long first_wait = -1, wait_over_burst = 0, prev_wait = -1, prev_t = 0;
  std::size_t samples = 0;
  bool named = false;
  while (std::getline(in, line)) {
    json s = json::parse(line);
    ++samples;
    const json& v = s["vcpu"][0];
    ASSERT_TRUE(v.is_object()) << line;
    EXPECT_EQ(v["cpu"], 1) << line;
    const long long t = s["t"], wait = v["wait"];
    if (first_wait < 0) first_wait = wait;
    // The wait that grew between samples overlapping the burst.
    if (prev_wait >= 0 && t >= burst_start && prev_t <= burst_end) wait_over_burst += wait - prev_wait;
    prev_wait = wait;
    prev_t = t;
    ASSERT_EQ(s["irq"].size(), static_cast<std::size_t>(::sysconf(_SC_NPROCESSORS_CONF))) << line;
    if (s.contains("behind"))
      for (const auto& b : s["behind"])
        for (const auto& task : b["tasks"])
          if (task["comm"] == "vmlat-burst" && task["policy"] == "FIFO" && task["prio"] == 99 && b["cpu"] == 1) named = true;
  }
  EXPECT_EQ(samples, facts["samples"].get<std::size_t>());
  EXPECT_GT(samples, 50u);
  EXPECT_GE(wait_over_burst, kBurstNs / 2) << "the spinner's run-queue wait during the burst";
  EXPECT_LE(wait_over_burst, prev_wait - first_wait);
  EXPECT_TRUE(named) << "the burst task was never seen runnable on CPU 1";
  fs::remove_all(dir);
}

TEST(HostEvidence, TheSamplerRunsOffTheVcpusCpus) {
  EXPECT_EQ(sampler_cpus({2}, {1}, {0, 1, 2, 3}), (std::vector<int>{2}));  // the emulator threads' CPUs
  EXPECT_EQ(sampler_cpus({}, {2, 3}, {0, 1, 2, 3}), (std::vector<int>{0, 1}));
  EXPECT_TRUE(sampler_cpus({}, {}, {0, 1}).empty());      // unpinned vCPUs: anywhere
  EXPECT_TRUE(sampler_cpus({}, {0, 1}, {0, 1}).empty());  // no CPU is free of vCPUs
}

TEST(HostEvidence, AThreadThatEndsIsSampledAsNull) {
  const fs::path dir = fs::temp_directory_path() / ("vmlat-evidence-gone-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    // A tid that is no thread of this process.
    HostEvidence evidence(::getpid(), {{0, 0x7ffffff0}}, dir / kHostEvidenceFile, 5ms, "kvm");
    std::this_thread::sleep_for(50ms);
    evidence.stop();
    json facts = evidence.facts();
    EXPECT_NE(facts["vm_exits"].get<std::string>().find("not countable"), std::string::npos) << facts["vm_exits"];
    EXPECT_GT(facts["samples"].get<long>(), 2);
  }
  std::ifstream in(dir / kHostEvidenceFile);
  std::string line;
  std::getline(in, line);
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_TRUE(json::parse(line)["vcpu"][0].is_null()) << line;
  fs::remove_all(dir);
}

}  // namespace
