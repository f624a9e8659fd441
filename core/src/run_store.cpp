#include "run_store.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "locks.hpp"

namespace vmlat {

StoredRun load_run_dir(const std::string& dir_text) {
  namespace fs = std::filesystem;
  fs::path dir = dir_text;
  if (!fs::exists(dir / "run.json") && fs::exists(dir / "latest" / "run.json")) dir = dir / "latest";
  auto read = [](const fs::path& p) {
    // Parsing from a buffer is several times faster than from an istream
    // (a 1,000-cell run is ~100 MB of JSON).
    std::ifstream in(p, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      return json::parse(text);
    } catch (const std::exception& e) {
      throw std::runtime_error(p.string() + ": " + e.what());
    }
  };
  if (!fs::exists(dir / "run.json"))
    throw std::runtime_error(dir.string() + " is not a run directory (no run.json, no latest/run.json)");
  StoredRun r;
  r.dir = dir.string();
  r.run = read(dir / "run.json");
  if (!r.run.is_object() || r.run.value("schema", std::string()) != "vmlat-run/1")
    throw std::runtime_error((dir / "run.json").string() + ": not a vmlat-run/1 document");
  // A run whose vmlat died (SIGKILL, CI timeout) still says "running":
  // whoever reads it sees it as abandoned.
  r.run["status"] = effective_run_status(dir, r.run);
  const json& cells = r.run.contains("cells") && r.run["cells"].is_array() ? r.run["cells"] : json::array();
  std::vector<fs::path> paths;
  for (const auto& c : cells) {
    // Only cells/<id> with a plain id: a run directory may come from
    // elsewhere, and its run.json must not point the reader outside it.
    std::string id = c.is_object() ? c.value("id", std::string()) : std::string();
    bool plain = !id.empty() && id[0] != '.' && std::all_of(id.begin(), id.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    });
    if (!plain) continue;
    fs::path p = dir / "cells" / id / "result.json";
    if (fs::exists(p)) paths.push_back(p);
  }
  // A 1,000-cell run is ~100 MB of JSON, parsing is most of reading it: one
  // parser per core, results kept in run order, the first error reported.
  r.cells.resize(paths.size());
  std::vector<std::string> errors(paths.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < paths.size();) {
      try {
        r.cells[i] = read(paths[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  };
  std::size_t threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  threads = std::min(threads, paths.size() / 16 + 1);  // small runs: no threads
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  for (const auto& e : errors)
    if (!e.empty()) throw std::runtime_error(e);
  return r;
}

}  // namespace vmlat
