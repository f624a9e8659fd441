// Executors and facts for the machine vmlat runs on.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

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

// Runs `commands` through `where` in one round trip (a constant `sh -c`
// script of ours, every argument shell-quoted: no value is ever parsed by
// the shell; a round trip costs an ssh session, or an agent exec of 0.1-0.15 s
// in a TCG guest) and returns each command's standard output by key, trailing
// newlines removed (nullopt: it failed or could not start), in `commands`'
// order. Throws InfraError when the script itself could not run (no sh on
// `where`): then run the commands one by one.
std::map<std::string, std::optional<std::string>> read_in_one_round_trip(
    Executor& where, const std::vector<std::pair<std::string, std::vector<std::string>>>& commands);

}  // namespace vmlat
