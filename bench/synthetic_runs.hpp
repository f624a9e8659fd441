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
#include <random>
#include <set>
#include <vector>
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

// The leaves of facts and timings (JSON pointers) whose values differ
// between the real cells: boot and phase times, pids, thread ids, ... —
// what differs from cell to cell in a real run of any size.
inline std::vector<std::string> varying_leaves(const std::vector<json>& real) {
  std::map<std::string, std::set<std::string>> values;
  for (const auto& r : real)
    for (const char* k : {"facts", "timings"})
      if (r.contains(k)) {
        const json leaves = r[k].flatten();
        for (auto it = leaves.begin(); it != leaves.end(); ++it) values["/" + std::string(k) + it.key()].insert(it.value().dump());
      }
  std::vector<std::string> out;
  for (const auto& [path, seen] : values)
    if (seen.size() > 1) out.push_back(path);
  return out;
}

// What makes two cells of one real run differ, given to each copy (seeded
// by its number, so two runs made alike get the same): every histogram
// count drawn again from a Poisson law of its mean (the merged histogram
// stays the sum of the CPUs'), statistics and the worst wake-ups a few
// percent off (the wake-ups later), and the facts that differ between the
// real cells (`leaves`) changed: numbers by a few percent, text marked with
// the copy. A page or a compressor then meets a run's variety, not the same
// few cells again and again.
inline void vary_copy(json& result, int copy, const std::vector<std::string>& leaves) {  std::mt19937_64 rng(0x5eedu + static_cast<std::uint64_t>(copy));
  auto resample = [&](json& h) {
    if (!h.is_object() || !h.contains("buckets") || !h["buckets"].is_array()) return;
    json buckets = json::array();
    for (const auto& b : h["buckets"]) {
      const auto mean = static_cast<double>(b[1].get<long long>());
      const long long c = std::poisson_distribution<long long>(mean)(rng);
      if (c > 0) buckets.push_back(json::array({b[0], c}));
    }
    h["buckets"] = std::move(buckets);
  };
  // Statistics a few percent off too, all of a series by one factor (their order kept).
  auto restate = [&](json& series) {
    if (!series.is_object() || !series.contains("stats") || !series["stats"].is_object()) return;
    const double f = std::uniform_real_distribution<double>(0.95, 1.05)(rng);
    for (auto it = series["stats"].begin(); it != series["stats"].end(); ++it)
      if (it.value().is_number_integer() && it.key().size() > 3 && it.key().compare(it.key().size() - 3, 3, "_ns") == 0)
        it.value() = std::llround(static_cast<double>(it.value().get<long long>()) * f);
  };
  auto holder = [&](json& r) {
    if (r.contains("merged")) restate(r["merged"]);
    if (r.contains("per_cpu") && r["per_cpu"].is_object())
      for (auto& cpu : r["per_cpu"]) restate(cpu);
    if (!r.contains("per_cpu") || !r["per_cpu"].is_object() || r["per_cpu"].empty()) {
      if (r.contains("merged") && r["merged"].is_object()) resample(r["merged"]["histogram"]);
      return;
    }
    std::map<long long, long long> sum;
    for (auto& cpu : r["per_cpu"]) {
      resample(cpu["histogram"]);
      for (const auto& b : cpu["histogram"]["buckets"]) sum[b[0].get<long long>()] += b[1].get<long long>();
    }
    if (!r.contains("merged") || !r["merged"].is_object() || !r["merged"].contains("histogram")) return;
    json buckets = json::array();
    for (const auto& [k, c] : sum) buckets.push_back(json::array({k, c}));
    r["merged"]["histogram"]["buckets"] = std::move(buckets);
  };
  holder(result);
  if (result.contains("series") && result["series"].is_object())
    for (auto& s : result["series"]) holder(s);
  std::uniform_real_distribution<double> jitter(0.95, 1.05);
  if (result.contains("spikes") && result["spikes"].is_array())
    for (auto& sp : result["spikes"]) {
      const long long later = static_cast<long long>(copy) * 37'000'000'000LL + std::uniform_int_distribution<long long>(0, 999'999'999)(rng);
      for (const char* k : {"monotonic_ns", "realtime_ns"})
        if (sp.contains(k) && sp[k].is_number_integer()) sp[k] = sp[k].get<long long>() + later;
      if (sp.contains("latency_ns") && sp["latency_ns"].is_number_integer())
        sp["latency_ns"] = std::llround(static_cast<double>(sp["latency_ns"].get<long long>()) * jitter(rng));
    }
  for (const auto& path : leaves) {
    const json::json_pointer at(path);
    if (!result.contains(at)) continue;
    json& v = result[at];
    if (v.is_number_float()) v = v.get<double>() * jitter(rng);
    else if (v.is_number_integer()) v = std::llround(static_cast<double>(v.get<long long>()) * jitter(rng));
    else if (v.is_string()) v = v.get<std::string>() + " #" + std::to_string(copy);
  }
}

// `cells` cells made from `real`'s (measured cells only) in `out`, the run
// `run_id` started at `started`; cell i's latencies times factor(i) (1: a
// copy), and with `vary` each copy made different as vary_copy says.
inline void synthesize_run(const StoredRun& real, const std::filesystem::path& out, int cells, const std::string& run_id,
                           const std::string& started, const std::function<double(int)>& factor, bool vary = false) {
  namespace fs = std::filesystem;
  fs::create_directories(out / "cells");
  json run = real.run;
  run["run_id"] = run_id;
  run["started"] = started;
  run["status"] = "complete";
  json list = json::array();
  const std::vector<std::string> leaves = vary ? varying_leaves(real.cells) : std::vector<std::string>{};
  for (int i = 0; i < cells; ++i) {
    json r = real.cells[static_cast<std::size_t>(i) % real.cells.size()];
    std::string id = r["cell"]["id"].get<std::string>() + "-c" + std::to_string(i);
    r["run_id"] = run_id;
    r["cell"]["id"] = id;
    r["cell"]["axes"]["copy"] = "c" + std::to_string(i / static_cast<int>(real.cells.size()));
    if (vary) vary_copy(r, i, leaves);
    if (const double f = factor(i); f != 1) scale_result(r, f);
    fs::create_directories(out / "cells" / id);
    write_text(out / "cells" / id / "result.json", r.dump(2) + "\n");
    list.push_back(json{{"id", id}, {"index", i + 1}, {"axes", r["cell"]["axes"]}, {"status", r["status"]}, {"dir", "cells/" + id}});
  }
  run["cells"] = list;
  write_text(out / "run.json", run.dump(2) + "\n");
}

}  // namespace vmlat::bench
