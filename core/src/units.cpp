#include "vmlat/units.hpp"

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
  // Exact decimal arithmetic, not a double: the same in every locale
  // (std::stod reads "1.5" as 1 where the decimal separator is ','), and
  // exact beyond 2^53 ns, so that format_duration's output parses back.
  const auto point = number.find('.');
  const std::string_view whole = number.substr(0, point);
  std::string_view fraction = point == std::string_view::npos ? std::string_view() : number.substr(point + 1);
  if (fraction.find('.') != std::string_view::npos || (whole.empty() && fraction.empty()))
    return fail("'" + std::string(number) + "' is not a number in '" + std::string(text) + "'");
  while (!fraction.empty() && fraction.back() == '0') fraction.remove_suffix(1);
  constexpr unsigned __int128 kMax = 9223372036854775807;  // INT64_MAX ns: about 292 years
  const auto too_large = [&] { return fail("'" + std::string(text) + "' is too large (at most about 292 years)"); };
  unsigned __int128 ns = 0;
  for (char c : whole) {
    ns = ns * 10 + static_cast<unsigned>(c - '0');
    if (ns > kMax) return too_large();
  }
  ns *= static_cast<unsigned __int128>(unit->ns);
  if (ns > kMax) return too_large();
  // A fraction of more than 24 significant digits is never whole nanoseconds
  // (the largest unit, 3.6e12 ns, has 10^11 as its largest power of ten).
  if (fraction.size() > 24) return fail("'" + std::string(text) + "' is not a whole number of nanoseconds");
  unsigned __int128 digits = 0, scale = 1;
  for (char c : fraction) digits = digits * 10 + static_cast<unsigned>(c - '0'), scale *= 10;
  const unsigned __int128 part = digits * static_cast<unsigned __int128>(unit->ns);  // < 10^24 * 3.6e12 < 2^128
  if (part % scale != 0) return fail("'" + std::string(text) + "' is not a whole number of nanoseconds");
  ns += part / scale;
  if (ns > kMax) return too_large();
  return nanoseconds(static_cast<long long>(ns));
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
