// CPU lists in the kernel's format ("0-3,5,7": /sys/devices/system/cpu/online,
// Cpus_allowed_list in /proc/<pid>/status, taskset -c, cyclictest -a).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace vmlat {

// "0-3,5,7" -> {0,1,2,3,5,7}: sorted, without duplicates, surrounding white
// space ignored. Throws std::invalid_argument saying what is wrong on anything
// else (an empty list, a reversed range, a number above 65535 ...).
std::vector<int> parse_cpu_list(std::string_view text);

// {0,1,2,5} -> "0,1,2,5": every CPU spelled out, as cyclictest -a and
// vmlat-probe --cpus take it.
std::string format_cpu_list(const std::vector<int>& cpus);

// This machine's online CPUs (/sys/devices/system/cpu/online; sysconf's count
// when that cannot be read).
std::vector<int> online_cpus();

}  // namespace vmlat
