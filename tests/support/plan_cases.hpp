// The data-driven plan cases of tests/plans/<case>/ (see plan_cases_test.cpp):
// a case's plan is its plan.toml, or, for what a file in git cannot be or
// should not hold (a FIFO, a link to a device, megabytes of text), it is
// built from the case's `generate` spec into a scratch directory:
//
//   # comment
//   dir                  plan.toml is a directory
//   fifo                 plan.toml is a FIFO (named pipe)
//   link TARGET          plan.toml is a symbolic link to TARGET
//   text TEXT            appends TEXT to plan.toml
//   repeat N TEXT        appends TEXT N times; {i} in TEXT becomes 0 .. N-1
//
// TEXT runs to the end of the line; \n \t \\ and \xHH are escapes.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace vmlat::testing {

inline const std::filesystem::path kPlanCases = std::filesystem::path(VMLAT_SOURCE_DIR) / "tests" / "plans";

inline std::vector<std::string> plan_case_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(kPlanCases))
    if (std::filesystem::exists(e.path() / "plan.toml") || std::filesystem::exists(e.path() / "generate"))
      names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

inline std::string unescape(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\' || i + 1 == text.size()) {
      out += text[i];
      continue;
    }
    const char c = text[++i];
    if (c == 'n') out += '\n';
    else if (c == 't') out += '\t';
    else if (c == 'x' && i + 2 < text.size()) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else out += c;
  }
  return out;
}

inline std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
  return s;
}

// The plan of case `name`: its plan.toml, or built under `scratch` from its
// generate spec.
inline std::filesystem::path plan_case_path(const std::string& name, const std::filesystem::path& scratch) {
  namespace fs = std::filesystem;
  const fs::path dir = kPlanCases / name;
  if (!fs::exists(dir / "generate")) return dir / "plan.toml";
  const fs::path plan = scratch / name / "plan.toml";
  fs::remove_all(plan.parent_path());
  fs::create_directories(plan.parent_path());
  std::ifstream spec(dir / "generate");
  std::string text, line;
  bool file = false;
  while (std::getline(spec, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string verb;
    words >> verb;
    std::string rest;
    std::getline(words >> std::ws, rest);
    if (verb == "dir") fs::create_directory(plan);
    else if (verb == "fifo") {
      if (::mkfifo(plan.c_str(), 0600) != 0) throw std::runtime_error("mkfifo " + plan.string());
    } else if (verb == "link") fs::create_symlink(rest, plan);
    else if (verb == "text") text += unescape(rest), file = true;
    else if (verb == "repeat") {
      const auto space = rest.find(' ');
      const long count = std::stol(rest.substr(0, space));
      const std::string piece = unescape(space == std::string::npos ? "" : rest.substr(space + 1));
      for (long i = 0; i < count; ++i) text += replace_all(piece, "{i}", std::to_string(i));
      file = true;
    } else {
      throw std::runtime_error((dir / "generate").string() + ": unknown verb '" + verb + "'");
    }
  }
  if (file) std::ofstream(plan, std::ios::binary) << text;
  return plan;
}

}  // namespace vmlat::testing
