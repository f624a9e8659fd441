#include "run/selection.hpp"

#include <fstream>
#include <map>
#include <set>
#include <ostream>

#include "vmlat/exit_codes.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

std::optional<json> read_json_file(const std::filesystem::path& path, std::string* why) {
  std::ifstream in(path);
  if (!in) {
    *why = "cannot read " + path.string();
    return std::nullopt;
  }
  try {
    return json::parse(in);
  } catch (const std::exception& e) {
    *why = path.string() + ": " + e.what();
    return std::nullopt;
  }
}

int select_cells(const Plan& plan, const RunOptions& options_in, std::ostream& err, Selection& s) {
  s.options = options_in;
  RunOptions& options = s.options;
  if (options.resume_dir) {
    std::string why;
    s.previous = read_json_file(*options.resume_dir / "run.json", &why);
    if (!s.previous || s.previous->value("schema", "") != "vmlat-run/1") {
      err << "vmlat: --resume: " << (s.previous ? options.resume_dir->string() + "/run.json is not a vmlat run" : why) << "\n";
      return exit_code::usage;
    }
    const json& previous = *s.previous;
    std::string sha = previous.contains("plan") ? text_or(previous["plan"], "sha256", "") : "";
    if (sha != plan.sha256) {
      err << "vmlat: --resume: the plan changed since run " << previous.value("run_id", "?") << " (sha256 " << sha.substr(0, 12)
          << "... then, " << plan.sha256.substr(0, 12) << "... now): start a new run\n";
      return exit_code::usage;
    }
    // The run's own selection, duration and inventory.
    const json o = previous.contains("options") && previous["options"].is_object() ? previous["options"] : json::object();
    options.only.clear();
    if (o.contains("only") && o["only"].is_array())
      for (const auto& pair : o["only"])
        if (pair.is_array() && pair.size() == 2 && pair[0].is_string() && pair[1].is_string())
          options.only.emplace_back(pair[0].get<std::string>(), pair[1].get<std::string>());
    options.duration.reset();
    if (o.contains("duration_ns") && o["duration_ns"].is_number()) options.duration = std::chrono::nanoseconds(o["duration_ns"].get<long long>());
    if (o.contains("inventory") && o["inventory"].is_string() && !options.inventory) options.inventory = o["inventory"].get<std::string>();
    // A fan-out job resumed measures its own share again.
    options.host_share.clear();
    if (o.contains("hosts") && o["hosts"].is_array())
      for (const auto& h : o["hosts"])
        if (h.is_string()) options.host_share.push_back(h.get<std::string>());
    options.this_host = o.contains("this_host") && o["this_host"].is_string() ? o["this_host"].get<std::string>() : "";
  }
  // --only: a cell is kept when, for every axis named, its value is one of
  // the values given for that axis (`--only backend=a --only backend=b`: a or b).
  std::map<std::string, std::set<std::string>> only;
  for (const auto& [axis, value] : options.only) only[axis].insert(value);
  for (auto& c : expand(plan)) {
    bool keep = true;
    for (const auto& [axis, values] : only) {
      const auto v = c.spec.axis(axis);
      if (!v || !values.count(*v)) keep = false;
    }
    if (options.duration) c.spec.duration = *options.duration;
    if (keep) s.cells.push_back(c);
  }
  for (std::size_t i = 0; i < s.cells.size(); ++i) s.cells[i].index = static_cast<int>(i + 1);
  if (s.cells.empty()) {
    err << "vmlat: no cell matches --only\n";
    return exit_code::usage;
  }
  return exit_code::pass;
}

}  // namespace vmlat
