// Reading the members of a JSON document that a reader needs: what it skips
// is checked for syntax but never built. A 1,000-cell run's result.json
// files are mostly histograms (1 us buckets, merged and per CPU) that a
// comparison never reads; building them is most of the cost of loading a
// history of runs (docs/report.md, "Performance").
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat {

// What a selective reader does with a member of an object.
enum class MemberUse {
  keep,     // parsed as json::parse parses it
  skip,     // checked for syntax (RFC 8259), left out of the result
  descend,  // an object: its members decided one by one (any other value: kept)
};

// Decides the member `key` of the object at `path` (the keys leading to it
// from the root; empty for the root), given the members of that object kept
// so far (in document order: a member read after `key` is not there yet).
using MemberRule = std::function<MemberUse(const std::vector<std::string>& path, const std::string& key, const json& so_far)>;

// The document `text` as json::parse would give it, less the members `rule`
// skips. Invalid text throws json::parse_error, as json::parse does; a
// skipped member is checked for syntax and for UTF-8 in its strings, not
// for the range of its numbers. A root that is not an object is parsed whole.
json parse_selected(std::string_view text, const MemberRule& rule);

}  // namespace vmlat
