// Small text helpers plugins need for command output.
#pragma once

#include <string>
#include <string_view>

namespace vmlat {

// `text` without leading and trailing spaces, tabs, CRs and newlines: a
// command's one-line answer ("6.1.0-56-amd64\n" -> "6.1.0-56-amd64").
inline std::string trim(std::string_view text) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  return std::string(text);
}

}  // namespace vmlat
