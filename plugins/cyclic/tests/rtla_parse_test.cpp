// The timerlat and spike parsers against real captures: rtla timerlat hist
// in the rt guest (testdata/rtla-*.txt), cyclictest --spike output, and
// vmlat-probe --spikes; plus mutations of them.
#include <gtest/gtest.h>

#include <algorithm>
#include <regex>
#include <string>

#include <vmlat/errors.hpp>
#include <vmlat/frame.hpp>

#include "cyclictest_parse.hpp"
#include "native_parse.hpp"
#include "rtla_parse.hpp"
#include "testdata.hpp"

namespace {

using namespace std::chrono_literals;
using vmlat::InfraError;
using namespace vmlat::cyclic;

std::string rtla_error(const std::string& text, std::uint64_t range = 20000) {
  try {
    parse_rtla_hist(text, range);
  } catch (const InfraError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(RtlaParse, TwoCpusBothSeries) {
  auto h = parse_rtla_hist(testdata("rtla-2cpu-1ms-E20000.txt"), 20000);
  ASSERT_EQ(h.irq.size(), 2u);
  ASSERT_EQ(h.thread.size(), 2u);
  // Summary rows of the capture: count 1473 1473 1438 1438, max 17599 27838 20071 23509.
  EXPECT_EQ(h.irq.at(0).samples(), 1473u);
  EXPECT_EQ(h.thread.at(1).samples(), 1438u);
  EXPECT_EQ(h.irq.at(0).max(), 17599us);
  EXPECT_EQ(h.thread.at(0).max(), 27838us);
  EXPECT_EQ(h.thread.at(0).min(), 14us);
  EXPECT_EQ(h.irq.at(1).overflows(), 1u);  // max 20071 >= the 20000us range
  EXPECT_EQ(h.irq.at(0).overflows(), 0u);
  EXPECT_EQ(h.thread.at(0).mean(), 532us);
}

TEST(RtlaParse, AllOverflows) {
  auto h = parse_rtla_hist(testdata("rtla-1cpu-500us-E10-overflow.txt"), 10);
  ASSERT_EQ(h.thread.count(1), 1u);
  EXPECT_EQ(h.thread.at(1).samples(), 2974u);
  EXPECT_EQ(h.thread.at(1).overflows(), 2974u);
  EXPECT_EQ(h.irq.at(1).max(), 14947us);
}

TEST(RtlaParse, RejectsInconsistentOutput) {
  const std::string good = testdata("rtla-1cpu-500us-E10-overflow.txt");
  EXPECT_EQ(rtla_error(good, 10), "(no error)");
  EXPECT_TRUE(rtla_error("Could not apply config\n").find("before the 'Index' header") != std::string::npos);
  EXPECT_TRUE(rtla_error(std::regex_replace(good, std::regex("count:     2974"), "count:     2975"), 10)
                  .find("count 2975 != histogram 0 + over 2974") != std::string::npos);
  EXPECT_TRUE(rtla_error(good, 20000).find("does not match min") != std::string::npos);
  EXPECT_TRUE(rtla_error(std::regex_replace(good, std::regex("microseconds \\(us\\)"), "nanoseconds (ns)"), 10)
                  .find("without -n") != std::string::npos);
  EXPECT_TRUE(rtla_error(std::regex_replace(good, std::regex("Thr-001"), "Foo-001"), 10).find("unexpected column") !=
              std::string::npos);
  const std::string two = testdata("rtla-2cpu-1ms-E20000.txt");
  EXPECT_TRUE(rtla_error(std::regex_replace(two, std::regex("\nmax: .*\n"), "\n")).find("incomplete") !=
              std::string::npos);
  EXPECT_TRUE(rtla_error(two, 1000).find("outside the 1000us range") != std::string::npos);
}

TEST(CyclictestSpikes, ThreadsMapToCpusAndTimesToNanoseconds) {
  const std::string doc = testdata("ct-2cpu-1ms-spike20.json");
  auto cpus = cyclictest_thread_cpus(doc);
  ASSERT_EQ(cpus.size(), 2u);
  auto per_cpu = parse_cyclictest_json(doc, 20000);
  auto printed = parse_cyclictest_stdout(testdata("ct-2cpu-1ms-spike20.out"), cpus);
  ASSERT_TRUE(printed.spikes_reported);
  EXPECT_EQ(printed.spikes_total, printed.spikes.size());
  EXPECT_EQ(printed.break_value_us, -1);
  ASSERT_FALSE(printed.spikes.empty());
  // Every spike is over the trigger, and each CPU's worst is its histogram's max.
  std::map<int, std::chrono::nanoseconds> worst;
  for (const auto& s : printed.spikes) {
    EXPECT_GT(s.latency, 20us);
    EXPECT_EQ(s.monotonic_ns % 1000, 0);
    EXPECT_EQ(s.realtime_ns, -1);
    worst[s.cpu] = std::max(worst[s.cpu], s.latency);
  }
  for (const auto& [cpu, max] : worst) EXPECT_EQ(max, per_cpu.at(cpu).max()) << "CPU " << cpu;
  EXPECT_EQ(printed.spikes.front().cpu, cpus.at(1));  // "T: 1 Spike: 21"
  EXPECT_EQ(printed.spikes.front().monotonic_ns, 6886544802000);

  EXPECT_THROW(parse_cyclictest_stdout("T: 7 Spike:  21: TS:   1\n", cpus), InfraError);
  EXPECT_THROW(parse_cyclictest_stdout("T: 0 Spike: x: TS: 1\n", cpus), InfraError);
  auto broke = parse_cyclictest_stdout("# Break thread: 2104\n# Break value: 774\n", cpus);
  EXPECT_EQ(broke.break_value_us, 774);
}

TEST(NativeSpikes, SortedWorstIsMax) {
  auto r = parse_native_output(testdata("native-2cpu-1ms-spikes3.out"), 20000);
  ASSERT_EQ(r.per_cpu.size(), 2u);
  std::map<int, std::vector<vmlat::Spike>> by_cpu;
  for (const auto& s : r.spikes) by_cpu[s.cpu].push_back(s);
  for (const auto& [cpu, h] : r.per_cpu) {
    const auto& list = by_cpu[cpu];
    ASSERT_EQ(list.size(), 3u) << "CPU " << cpu;
    EXPECT_EQ(list.front().latency, h.max());
    EXPECT_GE(list[0].latency, list[1].latency);
    EXPECT_GE(list[1].latency, list[2].latency);
    EXPECT_GT(list[0].realtime_ns, list[0].monotonic_ns);
  }
  // Older probes print no spikes: still accepted.
  EXPECT_NO_THROW(parse_native_output(testdata("native-2cpu-1ms.out"), 20000));

  // A list whose worst is not max_ns, or that is not sorted, is rejected.
  auto decoded = vmlat::frame::decode_all(testdata("native-2cpu-1ms-spikes3.out"));
  auto payload = vmlat::json::parse(decoded.frames.at(0).payload);
  auto unsorted = payload;
  std::swap(unsorted["threads"][0]["spikes"][0], unsorted["threads"][0]["spikes"][2]);
  EXPECT_THROW(parse_native_payload(unsorted.dump(), 20000), InfraError);
  auto short_of_max = payload;
  short_of_max["threads"][0]["spikes"].erase(0);
  EXPECT_THROW(parse_native_payload(short_of_max.dump(), 20000), InfraError);
  auto too_many = payload;
  too_many["spikes_per_thread"] = 2;
  EXPECT_THROW(parse_native_payload(too_many.dump(), 20000), InfraError);
}

}  // namespace
