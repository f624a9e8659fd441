// Timing helpers of the C++ benchmarks (bench/README.md): wall and CPU time
// of a step, medians over rounds, and the size of a directory.
#pragma once

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace vmlat::bench {

using Clock = std::chrono::steady_clock;

// This process's user + system time (RUSAGE_CHILDREN: its reaped children's).
inline double cpu_seconds(int who = RUSAGE_SELF) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Timing {
  std::vector<double> wall_ms, cpu_ms;
  void add(double wall, double cpu) {
    wall_ms.push_back(wall);
    cpu_ms.push_back(cpu);
  }
  static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
  }
};

// Runs f once, adding its wall and CPU milliseconds (of `who`) to t.
template <typename F>
void timed(Timing& t, F&& f, int who = RUSAGE_SELF) {
  auto w0 = Clock::now();
  double c0 = cpu_seconds(who);
  f();
  t.add(std::chrono::duration<double, std::milli>(Clock::now() - w0).count(), (cpu_seconds(who) - c0) * 1000);
}

inline std::uintmax_t dir_bytes(const std::filesystem::path& dir) {
  std::uintmax_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

}  // namespace vmlat::bench
