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
}  // namespace vmlat
