// Durations with units, as written in plans: "50us", "1ms", "1.5s", "2m".
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace vmlat {

using std::chrono::nanoseconds;

// Parses "<number><unit>" with unit one of ns, us, ms, s, m, h (a bare number
// is rejected: units are mandatory). Returns nullopt and sets *why on error.
std::optional<nanoseconds> parse_duration(std::string_view text, std::string* why = nullptr);

// Shortest exact rendering: 50000ns -> "50us", 1500000ns -> "1500us", 60s -> "60s".
std::string format_duration(nanoseconds value);

// Human rendering for tables: "12.3us", "4.56ms", "1.00s".
std::string format_latency(nanoseconds value);

// Seconds as a double, for metrics and JSON.
inline double to_seconds(nanoseconds value) { return static_cast<double>(value.count()) / 1e9; }

}  // namespace vmlat
