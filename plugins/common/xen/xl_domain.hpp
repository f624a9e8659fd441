// A Xen domain's lifecycle through `xl`, run by an Executor in Dom0 (argv
// vectors, never a shell), and the guest agent's channel over the domain's
// PV console.
//
// The agent speaks on the domain's first PV console (hvc0 in the guest, for
// PV, PVH and HVM alike), which xenconsoled serves in Dom0 as a pty named in
// xenstore (/local/domain/<id>/console/tty). That console is also where the
// guest kernel and /init print (PV, PVH), so the channel is a console channel
// (kvm::ChannelOptions): text between frames is kept as the console log,
// frames are verified as strictly as on QEMU's virtio-serial port. xl
// channel= (a second console) needs a QEMU backend per PV domain and did not
// come up with Xen 4.17 here (plugins/common/xen/README.md).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <vmlat/executor.hpp>
#include <vmlat/interrupt.hpp>
#include <vmlat/json.hpp>

#include "guest_channel.hpp"
#include "xl_config.hpp"

namespace vmlat::xen {

// The names in `xl list` output (Domain-0 included), in order.
std::vector<std::string> parse_xl_list(const std::string& text);
std::vector<std::string> list_domains(Executor& dom0);

// `xl info` as facts: every "key : value" line, plus the derived
// xen_version ("4.17.7") when xen_major/minor/extra are there.
json parse_xl_info(const std::string& text);
json xl_info_facts(Executor& dom0);

// Opens a console pty (a /dev/pts/N path), raw mode, non-blocking.
int open_console_pty(const std::string& tty);

class XlDomain {
 public:
  // `work_dir` (in Dom0) receives <name>.cfg.
  XlDomain(Executor& dom0, DomainSpec spec, std::filesystem::path work_dir);
  ~XlDomain();  // destroy()
  XlDomain(const XlDomain&) = delete;
  XlDomain& operator=(const XlDomain&) = delete;

  const DomainSpec& spec() const { return spec_; }
  const std::string& config_text() const { return config_; }
  const std::filesystem::path& config_path() const { return config_path_; }

  // `xl -N create`: xl parses the config and prints the domain configuration
  // it would build (JSON), without creating anything. InfraError quoting xl.
  json dry_run();

  // `xl create`, then the domain id and its console pty (xenconsoled writes
  // it to xenstore shortly after creation). Bounded by `deadline` and the
  // phase (check_interrupt()). InfraError quoting xl on failure; the domain,
  // if it got created, is destroyed by destroy()/the destructor.
  void create(Deadline deadline);
  bool created() const { return created_; }
  int domid() const { return domid_; }
  const std::string& console_tty() const { return tty_; }
  double create_seconds() const { return create_s_; }

  // The agent's executor over the console; console text goes to
  // `console_log` (a file in this process's file system: the Dom0 vmlat
  // runs in). Call after create().
  std::unique_ptr<kvm::GuestExecutor> connect_agent(const std::filesystem::path& console_log);

  // Stops the domain if it is there (`xl destroy`; also kills an HVM device
  // model) and checks with `xl list` that it is gone. Never throws;
  // uninterruptible; idempotent. Returns what it did, for the cell's facts.
  // `known_gone`: an `xl list` of the caller's has just not shown it (no
  // second one is run then).
  json destroy(bool known_gone = false) noexcept;

 private:
  Executor& dom0_;
  DomainSpec spec_;
  std::string config_;
  std::filesystem::path config_path_;
  bool created_ = false;
  bool destroyed_ = false;
  int domid_ = -1;
  std::string tty_;
  double create_s_ = 0;
};

}  // namespace vmlat::xen
