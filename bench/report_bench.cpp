// Benchmark: `vmlat report` of a 1,000-cell run and `vmlat compare` of two
// such runs (docs/report.md). Targets: the report renders in under 2 s; the
// page of 1,000 cells is at most 3 MiB and opens in Chromium in at most
// 1.5 s, that of 10,000 cells in at most 3 s. Prints figures; not a test.
//
//   ninja -C build vmlat_report_bench vmlat
//   build/vmlat run plans/kvm-quick.toml --duration 2s      # real results to copy
//   build/vmlat_report_bench results/latest [cells] [--keep] [--pages-only]
//
// The synthetic run directory is made from the real results of RUN_DIR: its
// cells' result.json copied round-robin (pretty-printed as the runner writes
// them) under new ids (a free axis `copy`), each copy made different
// (synthetic_runs.hpp vary_copy); the NEW run of the comparison makes every
// 10th cell's latencies 50% worse. The pages: `vmlat report` of such runs
// of `cells` and 10 x `cells` cells, their size, and Chromium's time to open
// them as tests/support/chromium_cdp.py measures it (the browser test's way;
// when chromium is installed).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "bench_timing.hpp"
#include "compare.hpp"
#include "report.hpp"
#include "run_store.hpp"
#include "synthetic_runs.hpp"
#include "tails.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/process.hpp"

using namespace vmlat;
using namespace vmlat::report;
namespace fs = std::filesystem;
using namespace vmlat::bench;

namespace {

// Load, render (HTML, Markdown, JSON), `vmlat report` as a process, compare
// and the tail model's cost, medians of 5 rounds.
void rendering(const StoredRun& real, const fs::path& scratch, int cells) {
  fs::path base_dir = scratch / "base", new_dir = scratch / "new";
  synthesize_run(real, base_dir, cells, "base", "2026-01-01T00:00:00Z", [](int) { return 1.0; }, true);
  synthesize_run(real, new_dir, cells, "new", "2026-01-01T00:01:00Z", [](int i) { return i % 10 == 0 ? 1.5 : 1.0; }, true);
  std::size_t buckets = 0;
  for (const auto& c : real.cells) buckets += c["merged"]["histogram"]["buckets"].size();

  constexpr int kRounds = 5;
  Timing load_t, html_t, md_t, json_t, report_t, compare_t;
  std::size_t html_bytes = 0, md_bytes = 0, json_bytes = 0, compare_bytes = 0;
  int compare_code = -1;
  for (int round = 0; round < kRounds; ++round) {
    // What `vmlat report RUN_DIR` does: load, build, render, write.
    timed(report_t, [&] {
      StoredRun stored;
      timed(load_t, [&] { stored = load_run_dir(base_dir.string()); });
      Run run = make_run(stored);
      std::string html;
      timed(html_t, [&] { html = render_html(ReportInput{&run, nullptr, nullptr}); });
      write_file_atomic(base_dir / "report.html", html);
      html_bytes = html.size();
      timed(md_t, [&] { md_bytes = render_markdown(ReportInput{&run, nullptr, nullptr}).size(); });
      timed(json_t, [&] { json_bytes = render_json(ReportInput{&run, nullptr, nullptr}).dump(2).size(); });
    });
    // What `vmlat compare BASE NEW` does.
    timed(compare_t, [&] {
      StoredRun b = load_run_dir(base_dir.string()), n = load_run_dir(new_dir.string());
      Run base = make_run(b), now = make_run(n);
      Comparison c = compare_runs(base, now, CompareOptions{});
      compare_bytes = compare_text(c).size();
      compare_code = c.exit_code();
    });
  }
  // The tail model's cost: what `vmlat report DIR` does (load, build, HTML)
  // with and without it, alternating which goes first; and the fits alone
  // (merged and per CPU, one worker per core) with the models they chose.
  Timing with_t, without_t, fits_t;
  std::size_t fits = 0, gpd = 0;
  for (int round = 0; round < kRounds; ++round)
    for (int k = 0; k < 2; ++k) {
      const bool tails = (round + k) % 2 == 0;
      timed(tails ? with_t : without_t, [&] {
        StoredRun stored = load_run_dir(base_dir.string());
        Run run = make_run(stored);
        ReportInput in{&run, nullptr, nullptr};
        in.tails = tails;
        html_bytes = render_html(in).size();
      });
    }
  {
    StoredRun stored = load_run_dir(base_dir.string());
    Run run = make_run(stored);
    for (int round = 0; round < kRounds; ++round)
      timed(fits_t, [&] {
        fits = gpd = 0;
        for (const auto& t : run_tails(run)) {
          if (!t) continue;
          fits += 1 + t->per_cpu.size();
          gpd += t->fit.fitted();
          for (const auto& [cpu, f] : t->per_cpu) gpd += f.fitted();
        }
      });
  }
  // The command itself, as a process (start-up and the write included).
  Timing cli_t;
  fs::path vmlat = fs::path(VMLAT_BINARY_DIR) / "vmlat";
  if (fs::exists(vmlat))
    for (int round = 0; round < kRounds; ++round) {
      auto w0 = Clock::now();
      auto p = Process::spawn(ProcessSpec{{vmlat.string(), "report", base_dir.string()}, {}, {}, {}, {}});
      auto status = p.wait(Clock::now() + std::chrono::minutes(2), false);
      if (!status.success()) std::printf("  WARNING: vmlat report: %s\n", status.describe().c_str());
      cli_t.add(std::chrono::duration<double, std::milli>(Clock::now() - w0).count(), 0);
    }

  auto m = Timing::median;
  std::printf("  %zu non-empty 1us buckets per round-robin pass\n", buckets);
  std::printf("  input: %.1f MiB of run.json + result.json\n", static_cast<double>(dir_bytes(base_dir)) / (1 << 20));
  std::printf("  median of %d rounds          wall ms   cpu ms\n", kRounds);
  std::printf("  load run dir (JSON parse)  %8.1f %8.1f\n", m(load_t.wall_ms), m(load_t.cpu_ms));
  std::printf("  render html                %8.1f %8.1f   %.1f MiB\n", m(html_t.wall_ms), m(html_t.cpu_ms),
              static_cast<double>(html_bytes) / (1 << 20));
  std::printf("  render markdown            %8.1f %8.1f   %.1f KiB\n", m(md_t.wall_ms), m(md_t.cpu_ms),
              static_cast<double>(md_bytes) / 1024);
  std::printf("  render json                %8.1f %8.1f   %.1f KiB\n", m(json_t.wall_ms), m(json_t.cpu_ms),
              static_cast<double>(json_bytes) / 1024);
  std::printf("  report (load+html+write, and md+json) %8.1f %8.1f\n", m(report_t.wall_ms), m(report_t.cpu_ms));
  if (!cli_t.wall_ms.empty())
    std::printf("  `vmlat report DIR` process %8.1f            (html only)\n", m(cli_t.wall_ms));
  std::printf("  compare (load 2 runs + compare + text) %8.1f %8.1f   %.1f KiB, exit code %d (%d cells made worse)\n",
              m(compare_t.wall_ms), m(compare_t.cpu_ms), static_cast<double>(compare_bytes) / 1024, compare_code,
              (cells + 9) / 10);
  const double with_wall = m(with_t.wall_ms), without_wall = m(without_t.wall_ms);
  std::printf("  tail model: load + build + html with tails %8.1f %8.1f\n", with_wall, m(with_t.cpu_ms));
  std::printf("              the same without tails      %8.1f %8.1f\n", without_wall, m(without_t.cpu_ms));
  std::printf("              the fits alone (%zu: merged and per CPU, %zu gpd) %8.1f %8.1f\n", fits, gpd,
              m(fits_t.wall_ms), m(fits_t.cpu_ms));
  std::printf("  target: tails add at most 20%%: with / without = %.3f (wall), %.3f (cpu), %s\n", with_wall / without_wall,
              m(with_t.cpu_ms) / m(without_t.cpu_ms), with_wall / without_wall <= 1.2 ? "met" : "NOT met");
  double html_path_s = (m(load_t.wall_ms) + m(html_t.wall_ms)) / 1000;
  double cli_s = cli_t.wall_ms.empty() ? html_path_s : m(cli_t.wall_ms) / 1000;
  std::printf("  target: a %d-cell HTML report in under 2 s: %.2f s (process), %s\n", cells, cli_s,
              cli_s < 2.0 ? "met" : "NOT met");
}

// The page of `cells` and of 10 x `cells` cells: `vmlat report` as a process,
// the page's size, and Chromium's time to open it (median of 3 fresh browsers).
void pages(const StoredRun& real, const fs::path& scratch, int cells, bool keep) {
  const fs::path vmlat = fs::path(VMLAT_BINARY_DIR) / "vmlat";
  const fs::path cdp = fs::path(VMLAT_SOURCE_DIR) / "tests" / "support" / "chromium_cdp.py";
  const bool chromium = fs::exists("/usr/bin/chromium");
  std::printf("  the page                     cells   render s   size MiB   Chromium: load   first paint   loaded and drawn (ms, median of 3)\n");
  for (int n : {cells, cells * 10}) {
    const fs::path dir = scratch / ("page-" + std::to_string(n));
    synthesize_run(real, dir, n, "page", "2026-01-01T00:02:00Z", [](int) { return 1.0; }, true);
    const auto w0 = Clock::now();
    auto p = Process::spawn(ProcessSpec{{vmlat.string(), "report", dir.string()}, {}, {}, {}, {}});
    auto status = p.wait(Clock::now() + std::chrono::minutes(20), false);
    const double render_s = std::chrono::duration<double>(Clock::now() - w0).count();
    if (!status.success()) {
      std::printf("  WARNING: vmlat report of %d cells: %s\n", n, status.describe().c_str());
      continue;
    }
    const fs::path page = dir / "report.html";
    const double mib = static_cast<double>(fs::file_size(page)) / (1 << 20);
    std::string times = "(chromium not installed)";
    if (chromium) {
      const fs::path out = scratch / ("cdp-" + std::to_string(n) + ".txt");
      auto t = Process::spawn(ProcessSpec{{"python3", cdp.string(), "--time", page.string(), "--rounds", "3"}, {}, out, out, {}});
      auto ts = t.wait(Clock::now() + std::chrono::minutes(20), false);
      std::string last, line;
      std::ifstream in(out);
      while (std::getline(in, line))
        if (!line.empty()) last = line;
      json m = ts.success() ? json::parse(last, nullptr, false) : json();
      if (m.is_object() && m.contains("median")) {
        const json& med = m["median"];
        char buf[160];
        std::snprintf(buf, sizeof buf, "%8.0f %13.0f %12.0f   target %s: %s", med.value("load", -1.0), med.value("fcp", -1.0),
                      med.value("painted", -1.0), n <= 1000 ? "1500" : "3000",
                      med.value("painted", 1e9) <= (n <= 1000 ? 1500 : 3000) ? "met" : "NOT met");
        times = buf;
      } else {
        times = "chromium_cdp.py failed: " + last;
      }
    }
    std::printf("  %-26s %7d %10.2f %10.2f   %s%s\n", "", n, render_s, mib, times.c_str(),
                n <= 1000 ? (mib <= 3.0 ? "; size <= 3 MiB: met" : "; size <= 3 MiB: NOT met") : "");
    std::fflush(stdout);
    if (!keep) fs::remove_all(dir);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string source = "results/latest";
  int cells = 1000;
  bool keep = false, pages_only = false;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") keep = true;
    else if (a == "--pages-only") pages_only = true;
    else positional.push_back(a);
  }
  if (!positional.empty()) source = positional[0];
  if (positional.size() > 1) cells = std::atoi(positional[1].c_str());
  StoredRun real;
  try {
    real = load_run_dir(source);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "report bench: %s\n  make a real run first, e.g. build/vmlat run plans/kvm-quick.toml --duration 2s\n", e.what());
    return 2;
  }
  std::erase_if(real.cells, [](const json& c) { return c.value("status", "") != "measured"; });
  if (real.cells.empty() || cells <= 0) {
    std::fprintf(stderr, "report bench: %s has no measured cell\n", source.c_str());
    return 2;
  }
  fs::path scratch = fs::temp_directory_path() / ("vmlat-report-bench-" + std::to_string(getpid()));
  std::printf("report bench: %d cells made from %zu real cells of %s\n", cells, real.cells.size(), source.c_str());
  std::fflush(stdout);
  if (!pages_only) rendering(real, scratch, cells);
  pages(real, scratch, cells, keep);
  if (keep) std::printf("  kept: %s\n", scratch.c_str());
  else fs::remove_all(scratch);
  return 0;
}
