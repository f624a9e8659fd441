// SHA-256 (FIPS 180-4) for plan hashes and the report page's
// Content-Security-Policy hash of its script.
#pragma once
#include <string>
#include <string_view>

namespace vmlat {
std::string sha256_digest(std::string_view data);  // the 32 bytes
std::string sha256_hex(std::string_view data);
}
