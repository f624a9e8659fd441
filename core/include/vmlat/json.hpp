// The JSON type used across the API for facts and result documents.
#pragma once

#include <nlohmann/json.hpp>

namespace vmlat {
using json = nlohmann::ordered_json;
}
