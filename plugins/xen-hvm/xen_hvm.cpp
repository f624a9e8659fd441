// The xen-hvm backend: the shared Xen cell lifecycle (common/xen_backend.cpp)
// with hvm domains. See README.md.
#include "xen_backend.hpp"

namespace vmlat::xen {
namespace {

class XenHvmBackend final : public XenBackend {
 public:
  XenHvmBackend() : XenBackend(DomainType::hvm) {}
};

}  // namespace
}  // namespace vmlat::xen

VMLAT_PLUGIN(vmlat::xen::XenHvmBackend, "xen-hvm", "backend", "0.1.0",
             "Xen HVM domUs (qemu-xen device model, its threads pinned and prioritised) on a Xen Dom0")
