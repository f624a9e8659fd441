#include "vmlat/cpus.hpp"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>
#include <utility>

namespace vmlat {

std::vector<int> parse_cpu_list(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("CPU list \"" + std::string(text) + "\": " + why);
  };
  auto number = [&](std::string_view s) {
    bool digits = !s.empty() && s.size() <= 5;
    for (char c : s) digits = digits && c >= '0' && c <= '9';
    if (!digits || std::stoi(std::string(s)) > 65535) throw bad("\"" + std::string(s) + "\" is not a CPU number");
    return std::stoi(std::string(s));
  };
  std::string_view rest = text;
  auto space = [](char c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; };
  while (!rest.empty() && space(rest.back())) rest.remove_suffix(1);
  while (!rest.empty() && space(rest.front())) rest.remove_prefix(1);
  if (rest.empty()) throw bad("empty");
  // Ranges first, merged at the end: "0-65535,0-65535,..." costs its length,
  // not 65536 insertions per range.
  std::vector<std::pair<int, int>> ranges;
  while (true) {
    const auto comma = rest.find(',');
    const std::string_view item = rest.substr(0, comma);
    const auto dash = item.find('-');
    if (dash == std::string_view::npos) {
      const int cpu = number(item);
      ranges.emplace_back(cpu, cpu);
    } else {
      const int first = number(item.substr(0, dash));
      const int last = number(item.substr(dash + 1));
      if (first > last) throw bad("range \"" + std::string(item) + "\" is reversed");
      ranges.emplace_back(first, last);
    }
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  std::sort(ranges.begin(), ranges.end());
  std::vector<int> cpus;
  int next = 0;  // the lowest CPU not yet listed
  for (const auto& [first, last] : ranges)
    for (int cpu = std::max(first, next); cpu <= last; ++cpu) cpus.push_back(cpu), next = cpu + 1;
  return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (int cpu : cpus) {
    if (!out.empty()) out += ',';
    out += std::to_string(cpu);
  }
  return out;
}

std::vector<int> online_cpus() {
  std::ifstream in("/sys/devices/system/cpu/online");
  std::string text;
  std::getline(in, text);
  std::vector<int> cpus;
  try {
    cpus = parse_cpu_list(text);
  } catch (const std::invalid_argument&) {
  }
  if (cpus.empty()) {
    const long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    for (long c = 0; c < std::max(1L, n); ++c) cpus.push_back(static_cast<int>(c));
  }
  return cpus;
}

}  // namespace vmlat
