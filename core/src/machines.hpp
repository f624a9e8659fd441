// Plan hosts that are one machine (docs/plan-format.md, "One machine under
// several names"): two [hosts] tables that reach the same machine — two
// sshd on one box, an alias (`localhost` and `127.0.0.1`), a host listed
// twice — must never measure at the same time, since their cells share the
// CPUs. A machine is known by its running kernel's boot id (two hosts with
// one boot id share a kernel, hence the CPUs, whatever their names or
// containers), and by /etc/machine-id when a boot id cannot be read. Both are
// read with the host's facts and kept only hashed (machine-id(5) asks that
// the ID itself never be shown).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "hosts.hpp"
#include "vmlat/json.hpp"

namespace vmlat {

struct Cell;

// The commands behind the identity facts (for read_in_one_round_trip).
const std::vector<std::pair<std::string, std::vector<std::string>>>& identity_fact_commands();
// facts.identity from the raw values (nullopt: unreadable): {"machine_id":
// hash or null, "boot_id": hash or null}, each hash 32 hex digits.
json identity_from(const std::function<std::optional<std::string>(const std::string&)>& read);

// Two or more plan hosts that are one machine, in the order of `hosts`.
struct MachineGroup {
  std::vector<std::string> hosts;
  std::string hostname;  // what the machine calls itself (uname -n), "?" when unknown
  std::string known_by;  // "one running kernel" or "one machine-id"
};
// Hosts whose facts have no identity (unreachable, an old kernel) are in no group.
std::vector<MachineGroup> same_machines(const std::vector<HostState>& hosts);
// The other hosts of `host`'s group (empty when it is alone on its machine).
std::vector<std::string> same_machine_as(const std::vector<MachineGroup>& groups, const std::string& host);
// "hosts a and b are one machine (lab1, one running kernel)".
std::string describe(const MachineGroup& group);

// For `vmlat hosts`: "vmlat run measures their cells one at a time", or
// what same_machine_problems() refuses.
std::string what_run_does(const MachineGroup& group, const std::vector<HostState>& hosts);

// Groups vmlat cannot serialise, one line each: this machine's own host (its
// cells run in this vmlat, under this machine's measurement lock) with a host
// reached over ssh that is this same machine, both given cells — the remote
// vmlat would wait for the lock this vmlat holds until the run ends.
std::vector<std::string> same_machine_problems(const std::vector<MachineGroup>& groups, const std::vector<HostState>& hosts,
                                               const std::vector<Cell>& cells);

struct MachineQueue;  // machines.cpp

// Turns on a machine, for the controller's per-host workers: the hosts of a
// group take turns (first come, first served, so their cells alternate);
// a host alone on its machine never waits.
class MachineTurns {
 public:
  explicit MachineTurns(const std::vector<MachineGroup>& groups);

  class Turn {
   public:
    Turn() = default;
    Turn(Turn&& other) noexcept : machine_(std::exchange(other.machine_, nullptr)) {}
    Turn& operator=(Turn&& other) noexcept;
    Turn(const Turn&) = delete;
    Turn& operator=(const Turn&) = delete;
    ~Turn() { release(); }
    void release();

   private:
    friend class MachineTurns;
    MachineQueue* machine_ = nullptr;
  };

  // Waits until no other host of `host`'s machine holds a turn and every host
  // that asked earlier had its turn. `waiting` is called once, with the
  // holder's name, if it has to wait. Returns without a turn (an empty one)
  // when the run is cancelled while waiting.
  Turn take(const std::string& host, const std::function<void(const std::string& holder)>& waiting = {});

 private:
  std::map<std::string, std::shared_ptr<MachineQueue>> machine_of_;
};

}  // namespace vmlat
