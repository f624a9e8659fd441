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

class Executor;
// Runs `commands` through `where` in one round trip (a constant `sh -c`
// script of ours; a round trip costs an ssh session, or an agent exec in a
// TCG guest) and returns each command's output by key (nullopt: it failed).
// Throws InfraError when the script itself could not run.
std::map<std::string, std::optional<std::string>> read_in_one_round_trip(
    Executor& where, const std::vector<std::pair<std::string, std::vector<std::string>>>& commands);

}  // namespace vmlat
