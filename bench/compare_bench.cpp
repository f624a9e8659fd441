// Benchmark: `vmlat compare` of a 1,000-cell run against a history of 30
// earlier runs (docs/report.md, "Performance"). Target: under 5 s. Prints
// figures and the ratio to the target; not a test.
//
//   ninja -C build vmlat_compare_bench vmlat
//   build/vmlat run plans/quickstart.toml            # real results to copy
//   build/vmlat_compare_bench results/latest [--cells N] [--runs N] [--rounds N] [--data DIR] [--json-out FILE]
//
// The results directory it makes holds `runs` earlier runs and the new one,
// each `cells` cells copied round-robin from the measured cells of RUN_DIR
// (pretty-printed as the runner writes them), every cell's latencies
// (statistics and histograms, merged and per CPU) scaled by exp(N(0, 0.1^2))
// per run and cell (run-to-run drift), from a fixed seed: the same arguments
// make the same directory. In the new run every 10th cell is twice as slow.
// --data DIR keeps the directory there and reuses it when its parameters
// match (the history of 30 x 1,000 pretty-printed cells is over 1 GB);
// --json-out FILE keeps the comparison's JSON output, so that two builds'
// verdicts can be compared byte for byte (cmp).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "commands.hpp"
#include "compare.hpp"
#include "gates/regression.hpp"
#include "run_store.hpp"
#include "synthetic_runs.hpp"
#include "vmlat/process.hpp"

using namespace vmlat;
using namespace vmlat::bench;
namespace fs = std::filesystem;

namespace {

constexpr double kDrift = 0.1;        // sd of log(latency scale) between runs
constexpr std::uint64_t kSeed = 18;  // issue 18

std::string run_id(int k, int runs) { return k == runs ? "bench-new" : "bench-" + std::to_string(100 + k).substr(1); }

std::string started(int k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2026-01-01T%02d:%02d:00Z", k / 60, k % 60);
  return buf;
}

// The parameters a data directory was made with: reused only when they match.
json stamp(const std::string& source, int cells, int runs) {
  return json{{"source", fs::weakly_canonical(source).string()}, {"cells", cells}, {"runs", runs},
              {"drift", kDrift}, {"seed", kSeed}, {"format", 2}};
}

void make_results(const StoredRun& real, const fs::path& results, int cells, int runs) {
  fs::remove_all(results);
  for (int k = 0; k <= runs; ++k) {
    std::mt19937_64 rng(kSeed * 1000 + static_cast<std::uint64_t>(k));
    std::normal_distribution<double> drift(0, kDrift);
    std::vector<double> f(static_cast<std::size_t>(cells));
    for (int i = 0; i < cells; ++i) f[static_cast<std::size_t>(i)] = std::exp(drift(rng)) * (k == runs && i % 10 == 0 ? 2 : 1);
    synthesize_run(real, results / run_id(k, runs), cells, run_id(k, runs), started(k),
                   [&](int i) { return f[static_cast<std::size_t>(i)]; });
    std::fprintf(stderr, "\r  made %d of %d runs", k + 1, runs + 1);
  }
  std::fprintf(stderr, "\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string source = "results/latest", data, json_out;
  int cells = 1000, runs = 30, rounds = 3;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "compare bench: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--cells") cells = std::atoi(next().c_str());
    else if (a == "--runs") runs = std::atoi(next().c_str());
    else if (a == "--rounds") rounds = std::atoi(next().c_str());
    else if (a == "--data") data = next();
    else if (a == "--json-out") json_out = next();
    else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "usage: vmlat_compare_bench [RUN_DIR] [--cells N] [--runs N] [--rounds N] [--data DIR] [--json-out FILE]\n");
      return 2;
    } else source = a;
  }
  if (cells <= 0 || runs <= 0 || rounds <= 0) {
    std::fprintf(stderr, "compare bench: --cells, --runs and --rounds must be positive\n");
    return 2;
  }
  StoredRun real;
  try {
    real = load_run_dir(source);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "compare bench: %s\n  make a real run first, e.g. build/vmlat run plans/quickstart.toml\n", e.what());
    return 2;
  }
  std::erase_if(real.cells, [](const json& c) { return c.value("status", "") != "measured"; });
  if (real.cells.empty()) {
    std::fprintf(stderr, "compare bench: %s has no measured cell\n", source.c_str());
    return 2;
  }
  const bool keep = !data.empty();
  const fs::path dir = keep ? fs::absolute(data) : fs::temp_directory_path() / ("vmlat-compare-bench-" + std::to_string(getpid()));
  const fs::path results = dir / "results", new_run = results / run_id(runs, runs);
  const json want = stamp(source, cells, runs);
  bool reused = false;
  try {
    reused = fs::exists(dir / "bench.json") && json::parse(read_text(dir / "bench.json")) == want;
  } catch (const std::exception&) {
  }
  if (!reused) {
    std::fprintf(stderr, "compare bench: making %d runs of %d cells in %s\n", runs + 1, cells, results.c_str());
    make_results(real, results, cells, runs);
    fs::create_directories(dir);
    write_text(dir / "bench.json", want.dump(2) + "\n");
  }
  const fs::path out_json = dir / "compare.json";

  // `vmlat compare RESULTS NEW` as a user runs it: a process, the page cache
  // warm (a first round untimed).
  Timing cli;
  int code = -1;
  const fs::path vmlat = fs::path(VMLAT_BINARY_DIR) / "vmlat";
  for (int round = 0; round <= rounds; ++round) {
    Timing one;
    timed(one, [&] {
      auto p = Process::spawn(ProcessSpec{{vmlat.string(), "compare", results.string(), new_run.string(), "--format", "json",
                                           "--output", out_json.string()},
                                          {}, dir / "compare.stdout", dir / "compare.stderr", {}});
      auto status = p.wait(Clock::now() + std::chrono::minutes(10), false);
      code = status.signal || status.timed_out ? -1 : status.exit_code;
    }, RUSAGE_CHILDREN);
    if (round > 0) cli.add(one.wall_ms.front(), one.cpu_ms.front());
  }
  // In this process: compare_command (what the CLI calls), the loading of
  // the runs as it reads them (a summary of each result.json), and the same
  // comparison from runs read whole (how compare read them before): its
  // output must be the command's, byte for byte.
  Timing in_process, load_summary, whole;
  const CellContent summary = content_for(report::CompareOptions{}.stats);
  std::string whole_json;
  for (int round = 0; round < rounds; ++round) {
    timed(in_process, [&] {
      report::CompareCommand c;
      c.bases = {results.string()};
      c.now = new_run.string();
      c.format = "json";
      c.output = (dir / "compare-in-process.json").string();
      std::ostringstream out, err;
      report::compare_command(c, out, err);
    });
    timed(load_summary, [&] {
      auto now = load_run_dir(new_run.string(), summary);
      auto history = load_baseline_runs(results.string(), "", "", new_run.string(), summary);
    });
    timed(whole, [&] {
      const StoredRun now_stored = load_run_dir(new_run.string());
      const auto history_stored = load_baseline_runs(results.string(), "", "", new_run.string());
      std::deque<report::Run> history_runs;
      std::vector<const report::Run*> history;
      for (const auto& r : history_stored) history.push_back(&history_runs.emplace_back(report::make_run(r)));
      const report::Run now = report::make_run(now_stored);
      whole_json = report::compare_json(report::compare_runs(history, now, report::CompareOptions{})).dump(2) + "\n";
    });
  }
  std::size_t regressed = 0, compared = 0, statistics = 0;
  try {
    const json doc = json::parse(read_text(out_json));
    compared = doc["summary"]["compared"].get<std::size_t>();
    regressed = doc["summary"]["regressed"].get<std::size_t>();
    statistics = doc["statistics"].get<std::size_t>();
  } catch (const std::exception& e) {
    std::printf("  WARNING: the comparison's output: %s (stderr: %s)\n", e.what(), read_text(dir / "compare.stderr").c_str());
  }
  if (!json_out.empty()) fs::copy_file(out_json, json_out, fs::copy_options::overwrite_existing);
  std::string cli_json;
  try {
    cli_json = read_text(out_json);
  } catch (const std::exception&) {
  }
  const bool same = !cli_json.empty() && cli_json == whole_json;

  auto m = Timing::median;
  std::printf("compare bench: %d earlier runs + 1 new, %d cells each, made from %zu real cells of %s%s\n", runs, cells,
              real.cells.size(), source.c_str(), reused ? " (data reused)" : "");
  std::printf("  input: %.1f MiB of run.json + result.json (%s)\n", static_cast<double>(dir_bytes(results)) / (1 << 20),
              results.c_str());
  std::printf("  median of %d rounds                        wall ms   cpu ms\n", rounds);
  std::printf("  `vmlat compare RESULTS NEW --format json`  %8.1f %8.1f   (process)\n", m(cli.wall_ms), m(cli.cpu_ms));
  std::printf("  compare_command in this process            %8.1f %8.1f\n", m(in_process.wall_ms), m(in_process.cpu_ms));
  std::printf("    of which reading the %d runs (summaries)  %8.1f %8.1f\n", runs + 1, m(load_summary.wall_ms),
              m(load_summary.cpu_ms));
  std::printf("  the same from runs read whole (before)     %8.1f %8.1f   ratio %.2f (wall), %.2f (cpu)\n", m(whole.wall_ms),
              m(whole.cpu_ms), m(whole.wall_ms) / m(in_process.wall_ms), m(whole.cpu_ms) / m(in_process.cpu_ms));
  std::printf("  verdicts: the command's JSON %s the whole-run comparison's, byte for byte (%zu bytes)\n",
              same ? "equals" : "DIFFERS FROM", cli_json.size());
  std::printf("  exit code %d; %zu cells compared, %zu regressed (%d made 2x worse), %zu statistics\n", code, compared,
              regressed, (cells + 9) / 10, statistics);
  const double s = m(cli.wall_ms) / 1000;
  std::printf("  target: a %d-cell compare against %d runs in under 5 s: %.2f s, ratio %.2f of the target, %s\n", cells, runs,
              s, s / 5.0, s < 5.0 ? "met" : "NOT met");
  if (!keep) fs::remove_all(dir);
  return same ? 0 : 1;
}
