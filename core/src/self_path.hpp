// Where the running vmlat is installed: directories relative to the
// executable, so an installed tree (/usr, /opt/vmlat, a copied bundle) finds
// its plugins and helpers wherever it was put.
#pragma once

#include <filesystem>
#include <optional>

namespace vmlat {

// `relative` resolved against the directory of /proc/self/exe, if that
// directory exists. Nothing when the executable cannot be read.
std::optional<std::filesystem::path> beside_executable(const std::filesystem::path& relative);

}  // namespace vmlat
