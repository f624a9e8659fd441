// Executors and facts for the machine vmlat runs on.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "vmlat/executor.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

// Runs commands on this machine with the core's process API. Captured output
// goes through files under `scratch_dir`. find_program() also searches
// libexec_dirs(), so vmlat's own helpers (vmlat-probe) are found.
std::unique_ptr<Executor> make_local_executor(std::filesystem::path scratch_dir,
                                              std::string name = "host");

// Facts about a Linux system reached through `where` (this machine, a guest, a
// remote host): kernel_release, kernel_version (uname -v), kernel_cmdline,
// preempt_model ("PREEMPT_RT", "PREEMPT_DYNAMIC", "PREEMPT", "none" ...),
// preempt_rt (bool), cpu_model, cpu_count, machine, hostname. A fact that
// cannot be read is recorded as null, never guessed.
json collect_system_facts(Executor& where);

}  // namespace vmlat
