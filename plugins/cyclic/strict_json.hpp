// Strict readers for probe output documents (cyclictest's JSON, vmlat-probe's
// result): every problem throws an InfraError that names the document, the
// place and what was wrong, so a malformed result is rejected, never
// half-parsed.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "vmlat/errors.hpp"
#include "vmlat/json.hpp"

namespace vmlat::strict {

[[noreturn]] inline void fail(std::string_view document, const std::string& what) {
  throw InfraError(std::string(document) + ": " + what);
}

inline const json& field(std::string_view document, const json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) fail(document, where + ": missing \"" + key + "\"");
  return *it;
}

inline std::uint64_t unsigned_field(std::string_view document, const json& object, const char* key,
                                    const std::string& where) {
  const json& value = field(document, object, key, where);
  if (!value.is_number_unsigned())
    fail(document, where + ": \"" + key + "\" is " + value.dump() + ", not a non-negative integer");
  return value.get<std::uint64_t>();
}

// A thread's "cpu" field, range-checked.
inline int cpu_field(std::string_view document, const json& thread, const std::string& where) {
  const std::uint64_t cpu = unsigned_field(document, thread, "cpu", where);
  if (cpu > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
    fail(document, where + ": \"cpu\" " + std::to_string(cpu) + " is out of range");
  return static_cast<int>(cpu);
}

}  // namespace vmlat::strict
