// Benchmark: time and payload size to expose the metrics of 1,000 cells x 2
// CPUs (docs/metrics.md). Target: under 100 ms. Prints figures; not a test.
//
//   ninja -C build vmlat_metrics_bench && build/vmlat_metrics_bench [cells] [cpus]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "metrics.hpp"
#include "vmlat/histogram.hpp"

using namespace vmlat;
using namespace vmlat::exporter;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int cells = argc > 1 ? std::atoi(argv[1]) : 1000;
  int cpus = argc > 2 ? std::atoi(argv[2]) : 2;
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> latency_us(3.0, 0.6);  // ~20us typical, long tail

  // Result documents as they come from disk: a realistic spread of 1us buckets.
  json run{{"schema", "vmlat-run/1"}, {"vmlat_version", "0.1.0"}, {"plan", {{"name", "bench"}}},
           {"started", "2026-11-25T13:00:00.000Z"}, {"finished", "2026-11-25T14:00:00.000Z"}};
  std::vector<json> results;
  std::size_t nonempty = 0;
  for (int c = 0; c < cells; ++c) {
    Histogram merged;
    json per_cpu = json::object();
    for (int cpu = 0; cpu < cpus; ++cpu) {
      Histogram h;
      for (int i = 0; i < 20000; ++i) h.add(std::chrono::nanoseconds(static_cast<long long>(latency_us(rng) * 1000)));
      nonempty += h.buckets().size();
      merged.merge(h);
      per_cpu[std::to_string(cpu)] = json{{"stats", stats_to_json(h.stats())}, {"histogram", h.to_json()}};
    }
    std::string id = "kvm-stress-native-1ms-k" + std::to_string(c);
    results.push_back(json{
        {"run_id", "20261125T130000Z-bench"},
        {"cell",
         {{"id", id},
          {"axes", {{"backend", "kvm"}, {"workload", "stress"}, {"probe", "native"}, {"period", "1ms"},
                    {"host_kernel", "rt"}, {"guest_kernel", "6.1-rt" + std::to_string(c % 7)}}},
          {"host", "local"}, {"period_ns", 1000000}, {"duration_ns", 60000000000LL}}},
        {"status", "measured"},
        {"host_facts", {{"kernel_release", "6.1.0-rt"}}},
        {"facts", {{"backend", {{"qemu_version", "8.2.1"}}}}},
        {"timings", {{"started", "2026-11-25T13:00:00Z"}, {"finished", "2026-11-25T13:01:00Z"}}},
        {"merged", {{"stats", stats_to_json(merged.stats())}, {"histogram", merged.to_json()}}},
        {"per_cpu", per_cpu},
        {"gates", {{{"gate", "worst-case"}, {"stat", "max"}, {"bound_ns", 100000}, {"verdict", "pass"}, {"value_ns", 90000}},
                   {{"gate", "p99"}, {"stat", "p99"}, {"bound_ns", 50000}, {"verdict", "pass"}, {"value_ns", 40000}}}}});
  }

  std::vector<double> build_ms, text_ms, ref_ms;
  std::size_t bytes = 0, series = 0;
  for (int round = 0; round < 7; ++round) {
    auto t0 = Clock::now();
    MetricSet set;
    for (const auto& r : results) add_cell_metrics(set, run, r);
    auto t1 = Clock::now();
    std::string text = to_text(set.families());
    auto t2 = Clock::now();
    std::string reference = to_text_reference(set.families());
    auto t3 = Clock::now();
    if (reference != text) std::printf("  WARNING: to_text differs from prometheus-cpp's TextSerializer\n");
    ref_ms.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
    build_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    text_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
    bytes = text.size();
    series = 0;
    for (char ch : text) series += ch == '\n';
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  double b = median(build_ms), t = median(text_ms);
  std::printf("metrics bench: %d cells x %d CPUs (%zu non-empty 1us buckets in all)\n", cells, cpus, nonempty);
  std::printf("  build families from result documents: %8.1f ms (median of 7)\n", b);
  std::printf("  serialize (text format 0.0.4):        %8.1f ms\n", t);
  std::printf("  total:                                %8.1f ms  (target < 100 ms: %s)\n", b + t,
              b + t < 100 ? "met" : "NOT met");
  std::printf("  (prometheus-cpp TextSerializer, same bytes: %.1f ms; what the Exposer and Gateway use)\n",
              median(ref_ms));
  std::printf("  payload: %zu bytes (%.1f MiB), %zu lines, %.0f bytes per cell\n", bytes,
              static_cast<double>(bytes) / (1024.0 * 1024.0), series, static_cast<double>(bytes) / cells);
  return 0;
}
