// Benchmark: `vmlat report` of a 1,000-cell run and `vmlat compare` of two
// such runs (docs/report.md). Target: the report renders in under 2 s.
// Prints figures; not a test.
//
//   ninja -C build vmlat_report_bench vmlat
//   build/vmlat run plans/kvm-quick.toml --duration 2s      # real results to copy
//   build/vmlat_report_bench results/latest [cells] [--keep]
//
// The synthetic run directory is made from the real results of RUN_DIR: its
// cells' result.json copied round-robin (pretty-printed as the runner writes
// them) under new ids (a free axis `copy`); the NEW run of the comparison
// makes every 10th cell's max 50% worse.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "compare.hpp"
#include "report.hpp"
#include "run_store.hpp"
#include "vmlat/atomic_file.hpp"
#include "vmlat/process.hpp"

using namespace vmlat;
using namespace vmlat::report;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
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

template <typename F>
void timed(Timing& t, F&& f) {
  auto w0 = Clock::now();
  double c0 = cpu_seconds();
  f();
  t.add(std::chrono::duration<double, std::milli>(Clock::now() - w0).count(), (cpu_seconds() - c0) * 1000);
}

std::uintmax_t dir_bytes(const fs::path& dir) {
  std::uintmax_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

// 1,000 cells from the real ones; `worse`: every 10th cell's max x1.5.
void synthesize(const StoredRun& real, const fs::path& out, int cells, bool worse) {
  fs::create_directories(out / "cells");
  json run = real.run;
  run["run_id"] = out.filename().string();
  json list = json::array();
  for (int i = 0; i < cells; ++i) {
    json r = real.cells[static_cast<std::size_t>(i) % real.cells.size()];
    std::string id = r["cell"]["id"].get<std::string>() + "-c" + std::to_string(i);
    r["cell"]["id"] = id;
    r["cell"]["axes"]["copy"] = "c" + std::to_string(i / static_cast<int>(real.cells.size()));
    if (worse && i % 10 == 0 && r["merged"].is_object()) {
      auto max = r["merged"]["stats"]["max_ns"].get<long long>() * 3 / 2;
      r["merged"]["stats"]["max_ns"] = max;
      r["merged"]["histogram"]["max_ns"] = max;
    }
    fs::create_directories(out / "cells" / id);
    write_file_atomic(out / "cells" / id / "result.json", r.dump(2) + "\n");
    list.push_back(json{{"id", id}, {"index", i + 1}, {"axes", r["cell"]["axes"]}, {"status", r["status"]}, {"dir", "cells/" + id}});
  }
  run["cells"] = list;
  write_file_atomic(out / "run.json", run.dump(2) + "\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::string source = "results/latest";
  int cells = 1000;
  bool keep = false;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--keep") keep = true;
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
  fs::path base_dir = scratch / "base", new_dir = scratch / "new";
  synthesize(real, base_dir, cells, false);
  synthesize(real, new_dir, cells, true);
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
  std::printf("report bench: %d cells made from %zu real cells of %s (%zu non-empty 1us buckets per round-robin pass)\n",
              cells, real.cells.size(), source.c_str(), buckets);
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
  double html_path_s = (m(load_t.wall_ms) + m(html_t.wall_ms)) / 1000;
  double cli_s = cli_t.wall_ms.empty() ? html_path_s : m(cli_t.wall_ms) / 1000;
  std::printf("  target: a %d-cell HTML report in under 2 s: %.2f s (process), %s\n", cells, cli_s,
              cli_s < 2.0 ? "met" : "NOT met");
  if (keep) std::printf("  kept: %s (base, new)\n", scratch.c_str());
  else fs::remove_all(scratch);
  return 0;
}
