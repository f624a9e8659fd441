// Base64 (RFC 4648, with padding): the standard alphabet for the report
// page's Content-Security-Policy hash, the URL-safe one for Pushgateway
// grouping labels.
#pragma once
#include <string>
#include <string_view>

namespace vmlat {
std::string base64(std::string_view data, bool url_safe = false);
}
