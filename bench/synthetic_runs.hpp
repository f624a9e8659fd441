// Synthetic run directories for the report and compare benchmarks
// (bench/README.md): a real run's measured cells copied round-robin under
// new ids, pretty-printed as the runner writes them, each cell's latencies
// optionally scaled.
#pragma once

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <functional>
#include <map>
#include <string>

#include "run_store.hpp"
#include "vmlat/json.hpp"

namespace vmlat::bench {

// Plain writes: a benchmark's data needs no fsync (tens of thousands of files).
inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out.flush()) throw std::runtime_error("cannot write " + p.string());
}
inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Every latency of a series document ({"stats", "histogram"}) times f:
// percentiles stay on their 1 us bucket edge, buckets move to the bucket of
// their scaled lower edge.
inline void scale_series(json& series, double f) {
  if (!series.is_object()) return;
  if (series.contains("stats") && series["stats"].is_object())
    for (auto it = series["stats"].begin(); it != series["stats"].end(); ++it) {
      const std::string& k = it.key();
      if (!it.value().is_number_integer() || k.size() < 3 || k.compare(k.size() - 3, 3, "_ns") != 0) continue;
      const double v = static_cast<double>(it.value().get<long long>()) * f;
      it.value() = k[0] == 'p' ? static_cast<long long>(std::floor(v / 1000)) * 1000 : std::llround(v);
    }
  if (!series.contains("histogram") || !series["histogram"].is_object()) return;
  json& h = series["histogram"];
  for (const char* k : {"min_ns", "max_ns", "sum_ns"})
    if (h.contains(k) && h[k].is_number_integer()) h[k] = std::llround(static_cast<double>(h[k].get<long long>()) * f);
  if (!h.contains("buckets") || !h["buckets"].is_array()) return;
  std::map<long long, long long> moved;
  for (const auto& b : h["buckets"])
    moved[static_cast<long long>(std::floor(static_cast<double>(b[0].get<long long>()) * f))] += b[1].get<long long>();
  json buckets = json::array();
  for (const auto& [b, c] : moved) buckets.push_back(json::array({b, c}));
  h["buckets"] = std::move(buckets);
}

// Scales the default series and every named series, merged and per CPU.
inline void scale_result(json& result, double f) {
  auto scale_holder = [&](json& holder) {
    if (holder.contains("merged")) scale_series(holder["merged"], f);
    if (holder.contains("per_cpu") && holder["per_cpu"].is_object())
      for (auto& cpu : holder["per_cpu"]) scale_series(cpu, f);
  };
  scale_holder(result);
  if (result.contains("series") && result["series"].is_object())
    for (auto& s : result["series"]) scale_holder(s);
}

// `cells` cells made from `real`'s (measured cells only) in `out`, the run
// `run_id` started at `started`; cell i's latencies times factor(i) (1: a copy).
inline void synthesize_run(const StoredRun& real, const std::filesystem::path& out, int cells, const std::string& run_id,
                           const std::string& started, const std::function<double(int)>& factor) {
  namespace fs = std::filesystem;
  fs::create_directories(out / "cells");
  json run = real.run;
  run["run_id"] = run_id;
  run["started"] = started;
  run["status"] = "complete";
  json list = json::array();
  for (int i = 0; i < cells; ++i) {
    json r = real.cells[static_cast<std::size_t>(i) % real.cells.size()];
    std::string id = r["cell"]["id"].get<std::string>() + "-c" + std::to_string(i);
    r["run_id"] = run_id;
    r["cell"]["id"] = id;
    r["cell"]["axes"]["copy"] = "c" + std::to_string(i / static_cast<int>(real.cells.size()));
    if (const double f = factor(i); f != 1) scale_result(r, f);
    fs::create_directories(out / "cells" / id);
    write_text(out / "cells" / id / "result.json", r.dump(2) + "\n");
    list.push_back(json{{"id", id}, {"index", i + 1}, {"axes", r["cell"]["axes"]}, {"status", r["status"]}, {"dir", "cells/" + id}});
  }
  run["cells"] = list;
  write_text(out / "run.json", run.dump(2) + "\n");
}

}  // namespace vmlat::bench
