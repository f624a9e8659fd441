// SHA-256 (FIPS 180-4) for plan hashes.
#pragma once
#include <string>
#include <string_view>

namespace vmlat {
std::string sha256_hex(std::string_view data);
}
