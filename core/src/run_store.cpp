#include "run_store.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <thread>

#include "json_select.hpp"
#include "locks.hpp"

namespace vmlat {

namespace {

namespace fs = std::filesystem;

// One read of the file's size: a history of runs is a gigabyte of JSON,
// and a stream iterator copies it a character at a time.
std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::string text;
  const auto size = in.tellg();
  if (size > 0) {
    text.resize(static_cast<std::size_t>(size));
    in.seekg(0);
    if (!in.read(text.data(), size)) throw std::runtime_error("cannot read " + p.string());
    // A file that grew while being read: the rest too.
    text.append(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()));
  } else {
    text.assign((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  return text;
}

// Parsing from a buffer is several times faster than from an istream (a
// 1,000-cell run is ~100 MB of JSON).
json read_json(const fs::path& p, const CellContent& content) {
  const std::string text = read_text(p);
  try {
    if (!content.summary) return json::parse(text);
    return parse_selected(text, [&](const std::vector<std::string>& path, const std::string& key, const json& so_far) {
      // The result itself and each entry of its "series" hold a series.
      const bool holder = path.empty() || (path.size() == 2 && path[0] == "series");
      if (holder) {
        if (key == "merged" || (path.empty() && key == "series")) return MemberUse::descend;
        if (key == "per_cpu") return MemberUse::skip;
        if (path.empty() && (key == "spikes" || key == "traces" || key == "artifacts" || key == "warnings" || key == "plugins"))
          return MemberUse::skip;
        if (path.empty() && !content.facts && (key == "host_facts" || key == "facts")) return MemberUse::skip;
        return MemberUse::keep;
      }
      if (path.size() == 1 && path[0] == "series") return MemberUse::descend;  // an entry of "series"
      // A series' merged document: its histogram unless its statistics suffice.
      if (path.back() != "merged" || key != "histogram" || content.histograms) return MemberUse::keep;
      auto stats = so_far.find("stats");
      if (stats == so_far.end() || !stats->is_object()) return MemberUse::keep;
      for (const auto& k : content.stats_keys) {
        auto v = stats->find(k);
        if (v == stats->end() || !v->is_number_integer()) return MemberUse::keep;
      }
      return MemberUse::skip;
    });
  } catch (const std::exception& e) {
    throw std::runtime_error(p.string() + ": " + e.what());
  }
}

// The result.json files of a run's cells, in run order.
std::vector<fs::path> cell_paths(const StoredRun& r) {
  const fs::path dir = r.dir;
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
  return paths;
}

}  // namespace

StoredRun load_run_head(const std::string& dir_text) {
  fs::path dir = dir_text;
  if (!fs::exists(dir / "run.json") && fs::exists(dir / "latest" / "run.json")) dir = dir / "latest";
  if (!fs::exists(dir / "run.json"))
    throw std::runtime_error(dir.string() + " is not a run directory (no run.json, no latest/run.json)");
  StoredRun r;
  r.dir = dir.string();
  r.run = read_json(dir / "run.json", {});
  if (!r.run.is_object() || r.run.value("schema", std::string()) != "vmlat-run/1")
    throw std::runtime_error((dir / "run.json").string() + ": not a vmlat-run/1 document");
  // A run whose vmlat died (SIGKILL, CI timeout) still says "running":
  // whoever reads it sees it as abandoned.
  r.run["status"] = effective_run_status(dir, r.run);
  return r;
}

std::vector<std::string> load_run_cells(const std::vector<StoredRun*>& runs, const CellContent& content) {
  // One list of files across the runs, parsed by one parser per core:
  // parsing is most of reading a run (a 1,000-cell run is ~100 MB of JSON).
  struct File {
    std::size_t run, cell;
    fs::path path;
  };
  std::vector<File> files;
  for (std::size_t k = 0; k < runs.size(); ++k) {
    auto paths = cell_paths(*runs[k]);
    runs[k]->cells.assign(paths.size(), json());
    for (std::size_t i = 0; i < paths.size(); ++i) files.push_back({k, i, std::move(paths[i])});
  }
  std::vector<std::string> errors(files.size());
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    for (std::size_t i; (i = next++) < files.size();) {
      try {
        runs[files[i].run]->cells[files[i].cell] = read_json(files[i].path, content);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  };
  std::size_t threads = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  threads = std::min(threads, files.size() / 16 + 1);  // small runs: no threads
  std::vector<std::thread> pool;
  for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  std::vector<std::string> first(runs.size());
  for (std::size_t i = 0; i < files.size(); ++i)
    if (!errors[i].empty() && first[files[i].run].empty()) first[files[i].run] = errors[i];
  return first;
}

StoredRun load_run_dir(const std::string& dir, const CellContent& content) {
  StoredRun r = load_run_head(dir);
  auto errors = load_run_cells({&r}, content);
  if (!errors.front().empty()) throw std::runtime_error(errors.front());
  return r;
}

}  // namespace vmlat
