#include "run_store.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "locks.hpp"

namespace vmlat {

StoredRun load_run_dir(const std::string& dir_text) {
  namespace fs = std::filesystem;
  fs::path dir = dir_text;
  if (!fs::exists(dir / "run.json") && fs::exists(dir / "latest" / "run.json")) dir = dir / "latest";
  auto read = [](const fs::path& p) {
    std::ifstream in(p);
    if (!in) throw std::runtime_error("cannot read " + p.string());
    try {
      return json::parse(in);
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
  for (const auto& c : cells) {
    // Only cells/<id> with a plain id: a run directory may come from
    // elsewhere, and its run.json must not point the reader outside it.
    std::string id = c.is_object() ? c.value("id", std::string()) : std::string();
    bool plain = !id.empty() && id[0] != '.' && std::all_of(id.begin(), id.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '-';
    });
    if (!plain) continue;
    fs::path p = dir / "cells" / id / "result.json";
    if (fs::exists(p)) r.cells.push_back(read(p));
  }
  return r;
}

}  // namespace vmlat
