// The JSON type used across the API for facts and result documents.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace vmlat {
using json = nlohmann::ordered_json;

// The text of a document vmlat writes (run.json, result.json, ...): strings
// that are not valid UTF-8 (a quoted byte of a program's output) are
// written with U+FFFD in their place instead of failing the write.
inline std::string dump_json(const json& j, int indent = -1) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}
// A fact that may be missing, null or of another type (facts are read from
// machines and files, never guessed): its value, else `fallback`. Unlike
// json::value(), never throws.
inline std::string text_or(const json& j, const char* key, const std::string& fallback) {
  if (j.is_object() && j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
  return fallback;
}
inline bool flag_or(const json& j, const char* key, bool fallback) {
  if (j.is_object() && j.contains(key) && j[key].is_boolean()) return j[key].get<bool>();
  return fallback;
}
}  // namespace vmlat
