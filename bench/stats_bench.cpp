// Benchmark of vmlat_stats (docs/statistics.md): the cost of a tail fit, of a
// verdict against a history, of a change-point search. Prints figures and
// ratios to their budgets; not a test.
//
//   ninja -C build vmlat_stats_bench
//   build/vmlat_stats_bench [RUN_DIR ...]
//
// Budgets (issue 18): the tail model adds at most 20% to `vmlat report` of a
// 1,000-cell run (0.46 s today): ~90 us per cell for up to 3 fits (merged and
// 2 CPUs); `vmlat compare` of 1,000 cells against 30 runs in < 5 s, of which
// the verdicts and the correction must be a small part.
// With RUN_DIRs, every measured cell's histograms (merged and per CPU) are
// fitted too and the fits are printed: what the model says of real data.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "simulate.hpp"
#include "stats/changepoint.hpp"
#include "stats/history.hpp"
#include "stats/tail.hpp"

using namespace vmlat;
using namespace vmlat::stats;
namespace fs = std::filesystem;

namespace {

// CPU time of this process in us: the figures hold on a shared, loaded
// machine (wall time there counts other engineers' builds).
double cpu_us() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e6 + static_cast<double>(t.tv_nsec) / 1e3;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Median CPU time per call of f over `reps` rounds of `calls` calls.
template <typename F>
double per_call_us(int reps, std::size_t calls, F&& f) {
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const double t0 = cpu_us();
    f();
    t.push_back((cpu_us() - t0) / static_cast<double>(calls));
  }
  return median(t);
}

void bench_tail() {
  std::printf("== tail fit (peaks over threshold, grouped GPD likelihood, 1 h + 24 h return levels, one bound)\n");
  const double budget_cell_us = 0.2 * 0.46e6 / 1000;  // 20% of the report's 0.46 s, per cell
  for (std::size_t n : {20000u, 60000u, 600000u}) {
    std::vector<Histogram> hs;
    std::mt19937_64 rng(7);
    for (int i = 0; i < 200; ++i) {
      sim::Latency lat;
      lat.xi = -0.2 + 0.6 * (i % 7) / 6.0;
      lat.sigma_us = 5 + i % 20;
      hs.push_back(lat.histogram(n, rng));
    }
    for (auto method : {IntervalMethod::delta, IntervalMethod::profile}) {
      TailOptions o;
      o.interval = method;
      o.bounds_ns = {500000};
      std::size_t fitted = 0, buckets = 0;
      for (const auto& h : hs) {
        fitted += fit_tail(h, n / 1000.0, o).fitted();
        buckets += h.buckets().size();
      }
      // The fit's cost where the report pays it: after the report's own
      // statistics of the same histogram (Histogram::stats()), so the map is
      // as warm as there. Marginal time = (stats + fit) - stats.
      std::size_t sink = 0;
      const double stats_only = per_call_us(5, hs.size(), [&] {
        for (const auto& h : hs) sink += h.stats().samples;
      });
      const double with_fit = per_call_us(5, hs.size(), [&] {
        for (const auto& h : hs) sink += h.stats().samples + fit_tail(h, n / 1000.0, o).exceedances;
      });
      const double us = with_fit - stats_only;
      std::printf("  %7zu samples (%4zu buckets), %-7s: %7.1f us per fit (Histogram::stats() alone %.1f us);"
                  " 3 fits = %5.1f%% of the %.0f us per cell budget (%zu/%zu fitted)%s\n",
                  n, buckets / hs.size(), method == IntervalMethod::delta ? "delta" : "profile", us, stats_only,
                  100 * 3 * us / budget_cell_us, budget_cell_us, fitted, hs.size(), sink ? "" : " ");
    }
  }
}

void bench_real(const std::vector<std::string>& dirs) {
  for (const auto& dir : dirs) {
    std::printf("== real cells of %s\n", dir.c_str());
    for (const auto& entry : fs::directory_iterator(fs::path(dir) / "cells")) {
      std::ifstream in(entry.path() / "result.json");
      if (!in) continue;
      json j;
      try {
        j = json::parse(in);
      } catch (const std::exception&) {
        continue;
      }
      if (!j.contains("merged") || j["merged"].is_null()) continue;
      const double duration_s = j["cell"].value("duration_ns", 0.0) / 1e9;
      std::vector<std::pair<std::string, Histogram>> series{{"merged", Histogram::from_json(j["merged"]["histogram"])}};
      if (j.contains("per_cpu") && j["per_cpu"].is_object())
        for (const auto& [cpu, s] : j["per_cpu"].items()) series.emplace_back("cpu" + cpu, Histogram::from_json(s["histogram"]));
      for (const auto& [name, h] : series) {
        TailOptions o;
        TailFit f;
        const double us = per_call_us(5, 20, [&] {
          for (int i = 0; i < 20; ++i) f = fit_tail(h, duration_s, o);
        });
        std::printf("  %-40s %-7s %6zu samples, u %6.0f us, k %4zu, xi %+.2f, gof p %.3f, 1h %8.0f us [%8.0f, %8.0f], max %8.0f us;"
                    " %5.1f us/fit%s%s\n",
                    entry.path().filename().c_str(), name.c_str(), static_cast<std::size_t>(f.samples),
                    f.threshold_ns / 1000, static_cast<std::size_t>(f.exceedances), f.xi, f.gof_p,
                    f.return_levels.empty() ? NAN : f.return_levels[0].value_ns / 1000,
                    f.return_levels.empty() ? NAN : f.return_levels[0].low_ns / 1000,
                    f.return_levels.empty() ? NAN : f.return_levels[0].high_ns / 1000, f.max_ns / 1000, us,
                    f.fitted() ? "" : "; empirical: ", f.reason.c_str());
      }
    }
  }
}

void bench_history() {
  std::printf("== verdicts against a history (1,000 cells x 4 statistics, 30 earlier runs)\n");
  const std::size_t cells = 1000, runs = 30;
  sim::Latency lat;
  std::mt19937_64 rng(3);
  std::vector<std::vector<sim::RunStats>> hist(cells);
  std::vector<sim::RunStats> now(cells);
  for (std::size_t c = 0; c < cells; ++c) {
    for (std::size_t r = 0; r < runs; ++r) hist[c].push_back(sim::run_stats(lat, 60000, rng));
    now[c] = sim::run_stats(lat, 60000, rng);
  }
  const double t0 = cpu_us();
  (void)gumbel_pivot_p_above(runs, 1.0);
  std::printf("  Gumbel pivot for %zu runs, built once per process: %.1f ms\n", runs, (cpu_us() - t0) / 1000);
  std::vector<StatisticTest> tests;
  HistoryOptions o;
  std::size_t regressed = 0;
  const double us = per_call_us(5, cells * 4, [&] {
    tests.clear();
    std::vector<double> v(runs);
    for (std::size_t c = 0; c < cells; ++c) {
      auto one = [&](double sim::RunStats::*field, StatisticKind kind, double res) {
        for (std::size_t r = 0; r < runs; ++r) v[r] = hist[c][r].*field;
        tests.push_back(test_statistic(v, now[c].*field, kind, res, o));
      };
      one(&sim::RunStats::p50_ns, StatisticKind::percentile, 1000);
      one(&sim::RunStats::p99_ns, StatisticKind::percentile, 1000);
      one(&sim::RunStats::p999_ns, StatisticKind::percentile, 1000);
      one(&sim::RunStats::max_ns, StatisticKind::maximum, 0);
    }
    const auto verdicts = judge(tests, o);
    regressed = std::count_if(verdicts.begin(), verdicts.end(), [](const auto& v) { return v.verdict == Verdict::regressed; });
  });
  std::printf("  %.2f us per statistic (test + its share of the correction): %.1f ms for the run, %.2f%% of 5 s;"
              " %zu regressed (an unchanged run)\n",
              us, us * cells * 4 / 1000, 100 * us * cells * 4 / 5e6, regressed);
}

void bench_changepoints() {
  std::printf("== change points (E-divisive + pooled t, Benjamini-Bogomolov over the series)\n");
  for (std::size_t runs : {30u, 100u}) {
    std::mt19937_64 rng(5);
    std::normal_distribution<double> noise(0, 0.05);
    std::vector<std::vector<double>> series(4000);
    for (std::size_t s = 0; s < series.size(); ++s)
      for (std::size_t r = 0; r < runs; ++r)
        series[s].push_back(100000 * std::exp(noise(rng)) * (s % 100 == 0 && r >= runs - 5 ? 1.5 : 1));
    std::size_t found = 0;
    const double us = per_call_us(3, series.size(), [&] {
      const auto cps = change_points(series);
      found = 0;
      for (const auto& c : cps) found += c.size();
    });
    std::printf("  %zu series of %zu runs: %.1f us per series (%.0f ms in all); %zu change points (40 planted)\n",
                series.size(), runs, us, us * series.size() / 1000, found);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> dirs(argv + 1, argv + argc);
  for (const auto& dir : dirs) {
    if (dir == "--help" || dir == "-h") {
      std::printf("usage: vmlat_stats_bench [RUN_DIR ...]\n"
                  "Times the tail fit, the history verdicts and the change points on simulated data, then fits\n"
                  "the cells of each RUN_DIR (a run directory of vmlat, e.g. results/latest).\n");
      return 0;
    }
    std::error_code ec;
    if (!fs::is_directory(fs::path(dir) / "cells", ec)) {
      std::fprintf(stderr, "vmlat_stats_bench: %s is not a run directory (no cells/ in it)\n", dir.c_str());
      return 2;
    }
  }
  bench_tail();
  bench_history();
  bench_changepoints();
  try {
    bench_real(dirs);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vmlat_stats_bench: %s\n", e.what());
    return 3;
  }
  return 0;
}
