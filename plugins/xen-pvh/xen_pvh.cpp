// The xen-pvh backend: the shared Xen cell lifecycle (common/xen_backend.cpp)
// with pvh domains. See README.md.
#include "xen_backend.hpp"

namespace vmlat::xen {
namespace {

class XenPvhBackend final : public XenBackend {
 public:
  XenPvhBackend() : XenBackend(DomainType::pvh) {}
};

}  // namespace
}  // namespace vmlat::xen

VMLAT_PLUGIN(vmlat::xen::XenPvhBackend, "xen-pvh", "backend", "0.1.0",
             "Xen PVH domUs (direct kernel boot, PV console agent) on a Xen Dom0")
