// How system facts are read (collect_system_facts in local.hpp), apart from
// how the raw values are fetched: one command each through an executor, or
// all of them in one ssh round trip (hosts.cpp).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vmlat/json.hpp"

namespace vmlat {

// The commands behind each raw value, by key: what to run to read it.
const std::vector<std::pair<std::string, std::vector<std::string>>>& system_fact_commands();
// The facts from raw values (nullopt: that value could not be read).
json system_facts_from(const std::function<std::optional<std::string>(const std::string&)>& read);

// read_in_one_round_trip() is declared in vmlat/local.hpp (plugins use it).

}  // namespace vmlat
