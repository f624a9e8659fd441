// The cell lifecycle shared by the xen-pv, xen-pvh and xen-hvm backends
// (plugins/common/xen/README.md, "The three backends"). Each plugin is this class
// with its domain type; vmlat runs it in Dom0 (a Xen host's cells run there
// through `vmlat run-cell`), so xl, the consoles and the device model's
// threads are all local.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <vmlat/plugin.hpp>

#include "xl_domain.hpp"

namespace vmlat::xen {

struct XenSettings {
  std::string image = "nrt";  // build-guest flavour without a guest_kernel axis
  std::string kernel, initrd;  // the user's own (absolute paths in Dom0)
  std::string cache = "/var/cache/vmlat/guests";
  int memory_mb = 256;
  int vcpus = 1;
  std::vector<int> vcpu_pin;  // vCPU i on vcpu_pin[i]
  std::string scheduler;      // "", "credit", "credit2", "null": required of the host
  int credit2_weight = 0;     // 0: Xen's
  int credit2_cap = -1;       // -1: Xen's
  std::string append;
  std::chrono::milliseconds shutdown_timeout{std::chrono::seconds(10)};
  int dm_priority = 0;        // hvm
  std::vector<int> dm_pin;    // hvm
  bool allow_rt_pv = false;   // pv
};

// Reads and checks the keys of `type` (keys of another type are unknown).
XenSettings read_xen_settings(Settings& settings, DomainType type);

// "vmlat-<cell id>-<pid>": only [A-Za-z0-9_.-], at most 63 characters.
std::string domain_name_for(const std::string& cell_id, long pid);

// The pid in a "vmlat-...-<pid>" name, or nullopt.
std::optional<long> pid_of_domain_name(const std::string& name);

// `xl vcpu-list NAME` rows: vCPU number -> hard affinity ("all", "1", "0-1").
std::vector<std::pair<int, std::string>> parse_vcpu_list(const std::string& text);

// The device model of domain `domid`: the process whose cmdline has
// "-xen-domid" followed by the id; -1 if there is none (under `proc`).
long find_device_model(int domid, const std::filesystem::path& proc = "/proc");

class XenBackend : public Backend {
 public:
  explicit XenBackend(DomainType type) : type_(type) {}
  ~XenBackend() override;

  void configure(Settings& settings) override;
  std::vector<std::string> placements() const override { return {"guest", "dom0", "host"}; }
  static constexpr const char* kHostTags = "xen";  // placement: Dom0 of a Xen host
  void prepare(CellContext& ctx) override;
  void boot(CellContext& ctx) override;
  Executor& probe_target() override;
  Executor& placement(const std::string& where) override;
  void teardown(CellContext& ctx) override;
  json facts() const override { return facts_; }

 private:
  std::string prefix() const { return "xen-" + to_string(type_); }
  void destroy_stale(CellContext& ctx, const std::vector<std::string>& domains);
  void resolve_image(CellContext& ctx);
  void apply_vcpu_pins();
  void check_vcpu_pins(const CommandResult& vcpu_list);
  void set_credit2(CellContext& ctx);
  void tune_device_model(CellContext& ctx);

  DomainType type_;
  XenSettings config_;
  json facts_ = json::object();
  std::unique_ptr<Executor> dom0_;
  std::unique_ptr<XlDomain> domain_;
  std::unique_ptr<kvm::GuestExecutor> agent_;
  std::filesystem::path work_;
  std::string kernel_, ramdisk_, cmdline_extra_;
};

}  // namespace vmlat::xen
