// vmlat version and plugin ABI version.
#pragma once

// Bump VMLAT_ABI_VERSION whenever a class in core/include/vmlat changes layout
// or a virtual function is added, removed or changes signature: the loader
// refuses plugins built against another ABI.
#ifndef VMLAT_ABI_VERSION
#define VMLAT_ABI_VERSION 7
#endif

#define VMLAT_VERSION_STRING "0.1.0"

namespace vmlat {
inline constexpr int abi_version = VMLAT_ABI_VERSION;
inline constexpr const char* version_string = VMLAT_VERSION_STRING;
}  // namespace vmlat
