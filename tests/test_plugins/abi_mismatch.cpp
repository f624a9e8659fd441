// A plugin that claims another ABI version: the loader must refuse it,
// naming both versions and the file. Built with -DVMLAT_ABI_VERSION=999.
#include <vmlat/plugin.hpp>

namespace {
class AbiMismatch final : public vmlat::Probe {
 public:
  void configure(vmlat::Settings&) override {}
  vmlat::ProbeResult run(vmlat::Executor&, vmlat::CellContext&) override { return {}; }
};
}  // namespace

VMLAT_PLUGIN(AbiMismatch, "abi-mismatch", "probe", "0.0.1", "test plugin built for ABI 999")
