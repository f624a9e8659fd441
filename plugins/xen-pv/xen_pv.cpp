// The xen-pv backend: the shared Xen cell lifecycle (common/xen_backend.cpp)
// with pv domains. See README.md.
#include "xen_backend.hpp"

namespace vmlat::xen {
namespace {

class XenPvBackend final : public XenBackend {
 public:
  XenPvBackend() : XenBackend(DomainType::pv) {}
};

}  // namespace
}  // namespace vmlat::xen

VMLAT_PLUGIN(vmlat::xen::XenPvBackend, "xen-pv", "backend", "0.1.0",
             "Xen PV domUs (direct kernel boot, PV console agent) on a Xen Dom0")
