// Reading result documents that may be incomplete or hand-edited: a missing
// key or a value of the wrong type reads as absent, never throws.
#pragma once

#include <optional>
#include <string>

#include "vmlat/json.hpp"

namespace vmlat::report {

// The member `key` of an object, or a null value.
inline const json& member(const json& j, const char* key) {
  static const json null_value;
  if (!j.is_object()) return null_value;
  auto it = j.find(key);
  return it == j.end() ? null_value : *it;
}

// A member as text: strings as they are, other values as JSON, "" if absent or null.
inline std::string text_of(const json& j, const char* key) {
  const json& v = member(j, key);
  if (v.is_null()) return {};
  return v.is_string() ? v.get<std::string>() : v.dump();
}

// A statistics object's missed periods as text: the count, or "unknown"
// where the probe does not count them (null: cyclictest, timerlat), never 0.
inline std::string missed_periods_text(const json& stats) {
  if (!stats.is_object()) return "–";
  const json& v = member(stats, "missed_periods");
  return v.is_number() ? v.dump() : std::string("unknown");
}

// A member that is an object, or nullptr.
inline const json* object_at(const json& j, const char* key) {
  const json& v = member(j, key);
  return v.is_object() ? &v : nullptr;
}

// An integer member (nanoseconds, counts), or nullopt.
inline std::optional<long long> integer_at(const json& j, const char* key) {
  const json& v = member(j, key);
  if (v.is_number_integer()) return v.get<long long>();
  return std::nullopt;
}

}  // namespace vmlat::report
