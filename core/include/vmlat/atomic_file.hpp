// Crash-safe file writes: temporary name, fsync, rename, fsync of the dir.
#pragma once

#include <filesystem>
#include <string_view>

namespace vmlat {

// Throws std::system_error naming the path on failure. The previous content
// (if any) stays intact until the rename.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);

}  // namespace vmlat
