// The join of a guest's worst wake-ups with the host-side samples of its
// vCPU threads (core/src/report/host_evidence.cpp) on samples written here
// in the sampler's format: the bracketing samples, the clock mapping and its
// margin, who is named, and spikes the samples do not cover; the Markdown
// report's table of them, from a stored run.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "host_evidence.hpp"
#include "report.hpp"
#include "run_store.hpp"
#include "vmlat/units.hpp"

using namespace vmlat;
using namespace vmlat::report;

namespace {

// Guest CLOCK_MONOTONIC + 1000 s = host CLOCK_MONOTONIC.
constexpr long long kOffset = 1'000'000'000'000;

json result_with(json spikes, json clock) {
  return json{{"spikes", std::move(spikes)},
              {"facts", {{"backend", {{"host_evidence", {{"clock", std::move(clock)}}}}}}}};
}

std::string sample(long long t_ms, long long wait_ms, long long invol, int cpu, long long irq1, const std::string& behind = "") {
  const long long ms = 1'000'000;
  std::string vcpu0 = "{\"cpu\":0,\"invol\":0,\"mig\":0,\"run\":0,\"state\":\"S\",\"vol\":0,\"wait\":0}";
  std::string vcpu1 = "{\"cpu\":" + std::to_string(cpu) + ",\"invol\":" + std::to_string(invol) +
                      ",\"mig\":1,\"run\":5,\"state\":\"R\",\"vol\":3,\"wait\":" + std::to_string(wait_ms * ms) + "}";
  return "{" + (behind.empty() ? std::string() : "\"behind\":" + behind + ",") + "\"irq\":[7," + std::to_string(irq1) +
         "],\"t\":" + std::to_string(kOffset + t_ms * ms) + ",\"vcpu\":[" + vcpu0 + "," + vcpu1 + "]}\n";
}

const std::string kHead =
    "{\"clock\":\"CLOCK_MONOTONIC\",\"host_cpus\":2,\"period_ns\":10000000,\"pid\":42,"
    "\"vcpus\":[{\"index\":0,\"tid\":100},{\"index\":1,\"tid\":101}],\"vmlat_host_evidence\":1}\n";

std::string samples() {
  const std::string behind =
      "[{\"cpu\":1,\"tasks\":[{\"comm\":\"stress-ng\",\"pid\":7,\"policy\":\"OTHER\",\"prio\":0,\"tid\":7},"
      "{\"comm\":\"ksoftirqd/1\",\"pid\":20,\"policy\":\"FIFO\",\"prio\":1,\"tid\":20}],\"vcpu\":1}]";
  return kHead + sample(0, 0, 0, 1, 100) + sample(10, 0, 0, 1, 110) + sample(20, 3, 1, 1, 130, behind) +
         sample(30, 9, 2, 1, 150) + sample(40, 9, 2, 1, 160) + sample(50, 9, 2, 1, 170);
}

TEST(SpikeEvidence, TheSamplesBracketingTheSpikeGiveTheWaitOfItsVcpu) {
  // vCPU 1 woke up at guest 0.028 s, 7 ms late: due at host 1000.021 s.
  json r = result_with(json::array({{{"cpu", 1}, {"latency_ns", 7'000'000}, {"monotonic_ns", 28'000'000}, {"realtime_ns", 5}}}),
                       {{"offset_ns", kOffset}, {"uncertainty_ns", 500'000}, {"drift_ns", 0}});
  auto e = join_spike_evidence(r, samples());
  ASSERT_EQ(e.size(), 1u);
  ASSERT_TRUE(e[0]);
  EXPECT_EQ(e[0]->vcpu, 1);
  EXPECT_EQ(e[0]->tid, 101);
  EXPECT_EQ(e[0]->spike_host_ns, kOffset + 28'000'000);
  EXPECT_EQ(e[0]->due_host_ns, kOffset + 21'000'000);
  // [due - 0.5 ms, wake + 0.5 ms] = [20.5, 28.5] ms: the samples at 20 and 30 ms.
  EXPECT_EQ(e[0]->from_ns, kOffset + 20'000'000);
  EXPECT_EQ(e[0]->to_ns, kOffset + 30'000'000);
  EXPECT_EQ(e[0]->wait_ns, 6'000'000);
  EXPECT_EQ(e[0]->involuntary, 1);
  EXPECT_EQ(e[0]->migrations, 0);
  EXPECT_EQ(e[0]->host_cpu, 1);
  ASSERT_TRUE(e[0]->interrupts);
  EXPECT_EQ(*e[0]->interrupts, 20);
  EXPECT_FALSE(e[0]->exits);
  // The 20 ms sample's scan is the bracket's first: not inside (20, 30].
  EXPECT_TRUE(e[0]->behind.empty());
  EXPECT_NE(e[0]->sentence.find("vCPU 1 waited 6"), std::string::npos) << e[0]->sentence;
  EXPECT_NE(e[0]->sentence.find("spike at 1000.028000 s"), std::string::npos) << e[0]->sentence;
}

TEST(SpikeEvidence, TheClockMarginWidensTheIntervalAndNamesWhoWasRunnable) {
  // Same spike, a 2 ms uncertainty and 1 ms drift: [18, 31] ms -> samples 10 .. 40.
  json r = result_with(json::array({{{"cpu", 1}, {"latency_ns", 7'000'000}, {"monotonic_ns", 28'000'000}}}),
                       {{"offset_ns", kOffset}, {"uncertainty_ns", 2'000'000}, {"drift_ns", 1'000'000}});
  auto e = join_spike_evidence(r, samples());
  ASSERT_TRUE(e.at(0));
  EXPECT_EQ(e[0]->margin_ns, 3'000'000);
  EXPECT_EQ(e[0]->from_ns, kOffset + 10'000'000);
  EXPECT_EQ(e[0]->to_ns, kOffset + 40'000'000);
  EXPECT_EQ(e[0]->wait_ns, 9'000'000);
  // Real-time tasks first.
  ASSERT_EQ(e[0]->behind.size(), 2u);
  EXPECT_EQ(e[0]->behind[0], "ksoftirqd/1/20 (FIFO 1)");
  EXPECT_EQ(e[0]->behind[1], "stress-ng/7 (OTHER)");
  EXPECT_NE(e[0]->sentence.find("behind ksoftirqd/1/20 (FIFO 1), stress-ng/7 (OTHER)"), std::string::npos) << e[0]->sentence;
}

TEST(SpikeEvidence, SpikesTheSamplesDoNotCoverHaveNone) {
  json spikes = json::array({
      {{"cpu", 0}, {"latency_ns", 1'000'000}, {"monotonic_ns", 25'000'000}},   // vCPU 0: no wait, covered
      {{"cpu", 5}, {"latency_ns", 1'000'000}, {"monotonic_ns", 25'000'000}},   // no such vCPU
      {{"cpu", 1}, {"latency_ns", 1'000'000}, {"monotonic_ns", 80'000'000}},   // after the last sample
      {{"cpu", 1}, {"latency_ns", 1'000'000}, {"monotonic_ns", -1}},           // time unknown
  });
  auto e = join_spike_evidence(result_with(spikes, {{"offset_ns", kOffset}, {"uncertainty_ns", 0}}), samples());
  ASSERT_EQ(e.size(), 4u);
  ASSERT_TRUE(e[0]);
  EXPECT_EQ(e[0]->wait_ns, 0);
  EXPECT_NE(e[0]->sentence.find("did not wait on the host run queue"), std::string::npos) << e[0]->sentence;
  EXPECT_FALSE(e[1]);
  EXPECT_FALSE(e[2]);
  EXPECT_FALSE(e[3]);
  // Without a clock mapping nothing is joined; a broken file neither.
  auto none = join_spike_evidence(result_with(spikes, nullptr), samples());
  for (const auto& x : none) EXPECT_FALSE(x);
  auto broken = join_spike_evidence(result_with(spikes, {{"offset_ns", kOffset}}), "not json\n" + samples());
  for (const auto& x : broken) EXPECT_FALSE(x);
}

TEST(SpikeEvidence, TheMarkdownReportShowsTheHostBesideTheWorstWakeUpsEscaped) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("vmlat-md-evidence-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  for (const char* cell : {"guest", "bare"}) fs::create_directories(dir / "cells" / cell);
  // A host task whose name is markup and a table separator: shown as text.
  const std::string hostile = "[{\"cpu\":1,\"tasks\":[{\"comm\":\"<b>x|y</b>\",\"pid\":9,\"policy\":\"FIFO\",\"prio\":99,"
                              "\"tid\":9}],\"vcpu\":1}]";
  std::ofstream(dir / "cells" / "guest" / "host-evidence.jsonl")
      << kHead + sample(0, 0, 0, 1, 100) + sample(10, 0, 0, 1, 110) + sample(20, 3, 1, 1, 130) + sample(30, 9, 2, 1, 150, hostile) +
             sample(40, 9, 2, 1, 160);
  json spikes = json::array();
  // Seven spikes, worst first: the first on vCPU 1 covered, the rest after the samples.
  spikes.push_back({{"cpu", 1}, {"latency_ns", 7'000'000}, {"monotonic_ns", 28'000'000}});
  for (int i = 0; i < 6; ++i) spikes.push_back({{"cpu", 0}, {"latency_ns", 1'000'000 - i}, {"monotonic_ns", 90'000'000}});
  auto result = [&](const std::string& id, json s, json clock) {
    return json{{"schema", "vmlat-cell-result/1"}, {"cell", {{"id", id}, {"axes", json::object()}}}, {"status", "measured"},
                {"spikes", std::move(s)}, {"facts", {{"backend", {{"host_evidence", {{"clock", std::move(clock)}}}}}}}};
  };
  std::ofstream(dir / "cells" / "guest" / "result.json")
      << result("guest", spikes, {{"offset_ns", kOffset}, {"uncertainty_ns", 500'000}, {"drift_ns", 0}}).dump();
  // Spikes, but no samples of the host: no table.
  std::ofstream(dir / "cells" / "bare" / "result.json") << result("bare", spikes, nullptr).dump();
  std::ofstream(dir / "run.json") << json{{"schema", "vmlat-run/1"}, {"run_id", "r"}, {"status", "complete"},
                                          {"cells", {{{"id", "guest"}, {"status", "measured"}, {"dir", "cells/guest"}},
                                                     {{"id", "bare"}, {"status", "measured"}, {"dir", "cells/bare"}}}}}
                                              .dump();
  StoredRun stored = load_run_dir(dir.string());
  vmlat::report::Run run = make_run(stored);
  ReportInput in;
  in.run = &run;
  const std::string md = render_markdown(in);
  fs::remove_all(dir);

  const auto at = md.find("### Worst wake-ups and the host");
  ASSERT_NE(at, std::string::npos) << md;
  const std::string section = md.substr(at);
  EXPECT_NE(section.find("#### guest\n"), std::string::npos) << section;
  EXPECT_EQ(section.find("#### bare"), std::string::npos) << section;
  // The covered spike: its latency, the vCPU's wait (6 ms between the samples at 20 and 30 ms) and the sentence.
  const std::string row = "| 1 | 1 | " + format_latency(std::chrono::nanoseconds(7'000'000)) + " | " +
                          format_latency(std::chrono::nanoseconds(6'000'000)) + " | ";
  EXPECT_NE(section.find(row), std::string::npos) << section;
  EXPECT_NE(section.find("vCPU 1 waited 6"), std::string::npos) << section;
  EXPECT_NE(section.find("| 2 | 0 | "), std::string::npos) << section;
  EXPECT_NE(section.find("not covered by the host's samples"), std::string::npos) << section;
  // Five rows, then how many more.
  EXPECT_EQ(section.find("| 6 | "), std::string::npos) << section;
  EXPECT_NE(section.find("2 more in result.json"), std::string::npos) << section;
  // The hostile name is text: no tag, no extra table column.
  EXPECT_EQ(section.find("<b>"), std::string::npos) << section;
  EXPECT_NE(section.find("&lt;b&gt;x\\|y&lt;/b&gt;"), std::string::npos) << section;
}

}  // namespace
