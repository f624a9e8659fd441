#include "vmlat/units.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <utility>

namespace vmlat {

namespace {
struct Unit {
  std::string_view suffix;
  long long ns;
};
// Longest suffixes first so "ms" is not read as "m" + garbage.
constexpr Unit kUnits[] = {{"ns", 1},           {"us", 1000},          {"µs", 1000},
                           {"ms", 1000000},     {"s", 1000000000},     {"m", 60000000000LL},
                           {"h", 3600000000000LL}};
}  // namespace

std::optional<nanoseconds> parse_duration(std::string_view text, std::string* why) {
  auto fail = [&](std::string message) -> std::optional<nanoseconds> {
    if (why) *why = std::move(message);
    return std::nullopt;
  };
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string_view number = text.substr(0, i);
  std::string_view suffix = text.substr(i);
  if (number.empty())
    return fail("'" + std::string(text) + "' is not a duration: expected a number with a unit, e.g. \"50us\", \"1ms\", \"60s\"");
  if (suffix.empty())
    return fail("'" + std::string(text) + "' has no unit: write e.g. \"" + std::string(number) + "us\" (units: ns, us, ms, s, m, h)");
  const Unit* unit = nullptr;
  for (const auto& u : kUnits)
    if (suffix == u.suffix) unit = &u;
  if (!unit)
    return fail("unknown unit '" + std::string(suffix) + "' in '" + std::string(text) + "' (units: ns, us, ms, s, m, h)");
  // from_chars: the same in every locale (std::stod reads "1.5" as 1 under
  // a locale whose decimal separator is ',').
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value, std::chars_format::fixed);
  if (ec != std::errc() || end != number.data() + number.size())
    return fail("'" + std::string(number) + "' is not a number in '" + std::string(text) + "'");
  double ns = value * static_cast<double>(unit->ns);
  if (ns > 9.2e18) return fail("'" + std::string(text) + "' is too large");
  double rounded = std::round(ns);
  if (std::fabs(rounded - ns) > 1e-6 * std::max(1.0, ns))
    return fail("'" + std::string(text) + "' is not a whole number of nanoseconds");
  return nanoseconds(static_cast<long long>(rounded));
}

std::string format_duration(nanoseconds value) {
  long long ns = value.count();
  if (ns == 0) return "0s";
  struct Step { long long ns; const char* suffix; };
  constexpr Step steps[] = {{3600000000000LL, "h"}, {60000000000LL, "m"}, {1000000000, "s"},
                            {1000000, "ms"},        {1000, "us"},         {1, "ns"}};
  for (const auto& s : steps)
    if (ns % s.ns == 0) return std::to_string(ns / s.ns) + s.suffix;
  return std::to_string(ns) + "ns";
}

std::string format_latency(nanoseconds value) {
  double ns = static_cast<double>(value.count());
  char buf[64];
  if (ns < 1000) std::snprintf(buf, sizeof buf, "%.0fns", ns);
  else if (ns < 1e6) std::snprintf(buf, sizeof buf, ns < 1e5 ? "%.1fus" : "%.0fus", ns / 1e3);
  else if (ns < 1e9) std::snprintf(buf, sizeof buf, "%.2fms", ns / 1e6);
  else std::snprintf(buf, sizeof buf, "%.2fs", ns / 1e9);
  return buf;
}

}  // namespace vmlat
